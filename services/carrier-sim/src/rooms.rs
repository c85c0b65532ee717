//! Rooms: conferences and multiparty calls, their members and each member's state. This module only
//! keeps the state; the member's own call task (see `room_exec`) posts the callbacks, so a lock is
//! never held across a webhook.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::webhooks::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    Conference,
    Mpc,
}

impl RoomKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conference => "conference",
            Self::Mpc => "mpc",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Callback {
    pub url: String,
    pub method: Method,
}

/// How a member joins.
#[derive(Debug, Clone)]
pub struct JoinSpec {
    pub call_uuid: String,
    pub party: String,
    pub role: Option<String>,
    pub muted: bool,
    pub held: bool,
    pub end_on_exit: bool,
    pub max_members: usize,
    pub callback: Option<Callback>,
    pub hold_music: Option<String>,
}

/// A member as the API and `GET /sim/rooms` see it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub member_id: String,
    pub call_uuid: String,
    pub party: String,
    pub role: Option<String>,
    /// `in_call`, `on_hold`, `muted` or `left`.
    pub state: &'static str,
    pub muted: bool,
    pub deaf: bool,
    pub held: bool,
    pub joined_at: DateTime<Utc>,
    pub left_reason: Option<String>,
    #[serde(skip)]
    pub callback: Option<Callback>,
    #[serde(skip)]
    pub hold_music: Option<String>,
}

#[derive(Debug)]
struct Member {
    view: MemberView,
    end_on_exit: bool,
    left: bool,
    /// Cancelled to make the member leave (kicked, or the room ended); the member's task leaves.
    exit: CancellationToken,
    exit_reason: Option<String>,
}

#[derive(Debug)]
struct Room {
    kind: RoomKind,
    uuid: String,
    created_at: DateTime<Utc>,
    ended: bool,
    next_member: u64,
    members: Vec<Member>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RoomView {
    pub name: String,
    pub kind: RoomKind,
    pub uuid: String,
    pub created_at: DateTime<Utc>,
    pub ended: bool,
    pub members: Vec<MemberView>,
}

pub struct Joined {
    pub room_uuid: String,
    pub member_id: String,
    /// The member started the room (the first to join).
    pub first: bool,
    pub exit: CancellationToken,
}

pub struct Left {
    /// The room ended with this exit (empty, or an end-on-exit member left).
    pub ended: bool,
    pub reason: String,
}

#[derive(Debug)]
pub struct Rooms {
    inner: Mutex<(HashMap<String, Room>, VecDeque<String>)>,
    cap: usize,
}

impl Rooms {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
            cap,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Room>, &mut VecDeque<String>) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (rooms, order) = &mut *guard;
        f(rooms, order)
    }

    /// Adds a member, creating the room on first join (or anew once it has ended).
    pub fn join(&self, name: &str, kind: RoomKind, spec: JoinSpec) -> Result<Joined, String> {
        self.with(|rooms, order| {
            let fresh = rooms.get(name).is_none_or(|r| r.ended);
            if fresh {
                if !rooms.contains_key(name) {
                    while order.len() >= self.cap {
                        if let Some(old) = order.pop_front() {
                            rooms.remove(&old);
                        }
                    }
                    order.push_back(name.to_owned());
                }
                rooms.insert(
                    name.to_owned(),
                    Room {
                        kind,
                        uuid: uuid::Uuid::new_v4().to_string(),
                        created_at: Utc::now(),
                        ended: false,
                        next_member: 1,
                        members: Vec::new(),
                    },
                );
            }
            let room = rooms
                .get_mut(name)
                .ok_or_else(|| format!("room {name} vanished"))?;
            if room.kind != kind {
                return Err(format!("{name} is a {} room", room.kind.as_str()));
            }
            let present = room.members.iter().filter(|m| !m.left).count();
            if present >= spec.max_members {
                return Err(format!("{name} is full ({present} members)"));
            }
            let member_id = room.next_member.to_string();
            room.next_member += 1;
            let exit = CancellationToken::new();
            room.members.push(Member {
                view: MemberView {
                    member_id: member_id.clone(),
                    call_uuid: spec.call_uuid,
                    party: spec.party,
                    role: spec.role,
                    state: "in_call",
                    muted: spec.muted,
                    deaf: false,
                    held: spec.held,
                    joined_at: Utc::now(),
                    left_reason: None,
                    callback: spec.callback,
                    hold_music: spec.hold_music,
                },
                end_on_exit: spec.end_on_exit,
                left: false,
                exit: exit.clone(),
                exit_reason: None,
            });
            Ok(Joined {
                room_uuid: room.uuid.clone(),
                member_id,
                first: present == 0,
                exit,
            })
        })
    }

    /// Marks a member as gone; when that ends the room, everyone else is made to leave too.
    pub fn leave(&self, name: &str, member_id: &str, default_reason: &str) -> Option<Left> {
        self.with(|rooms, _| {
            let room = rooms.get_mut(name)?;
            let member = room
                .members
                .iter_mut()
                .find(|m| m.view.member_id == member_id && !m.left)?;
            member.left = true;
            let reason = member
                .exit_reason
                .clone()
                .unwrap_or_else(|| default_reason.to_owned());
            member.view.left_reason = Some(reason.clone());
            let ends_room = member.end_on_exit;
            let remaining = room.members.iter().filter(|m| !m.left).count();
            // Only the exit that ends the room reports it; members sent away by it do not.
            let ended = !room.ended && (ends_room || remaining == 0);
            if ended {
                room.ended = true;
                for other in room.members.iter_mut().filter(|m| !m.left) {
                    other.exit_reason = Some("the room ended".to_owned());
                    other.exit.cancel();
                }
            }
            Some(Left { ended, reason })
        })
    }

    /// Makes a present member leave the room (its call goes on with its next element).
    pub fn kick(&self, name: &str, member_id: &str, reason: &str) -> bool {
        self.update(name, member_id, |m| {
            m.exit_reason = Some(reason.to_owned());
            m.exit.cancel();
        })
        .is_some()
    }

    /// Changes a present member and returns it as it now is.
    fn update(
        &self,
        name: &str,
        member_id: &str,
        f: impl FnOnce(&mut Member),
    ) -> Option<MemberView> {
        self.with(|rooms, _| {
            let room = rooms.get_mut(name)?;
            let member = room
                .members
                .iter_mut()
                .find(|m| m.view.member_id == member_id && !m.left)?;
            f(member);
            Some(view_of(member))
        })
    }

    pub fn set_held(&self, name: &str, member_id: &str, held: bool) -> Option<MemberView> {
        self.update(name, member_id, |m| m.view.held = held)
    }

    pub fn set_muted(&self, name: &str, member_id: &str, muted: bool) -> Option<MemberView> {
        self.update(name, member_id, |m| m.view.muted = muted)
    }

    pub fn set_deaf(&self, name: &str, member_id: &str, deaf: bool) -> Option<MemberView> {
        self.update(name, member_id, |m| m.view.deaf = deaf)
    }

    /// The present members a comma-separated id list (or `all`) names.
    pub fn resolve(&self, name: &str, ids: &str) -> Vec<MemberView> {
        let Some(room) = self.view(name) else {
            return Vec::new();
        };
        let wanted: Vec<&str> = ids.split(',').map(str::trim).collect();
        room.members
            .into_iter()
            .filter(|m| m.state != "left")
            .filter(|m| wanted.contains(&"all") || wanted.contains(&m.member_id.as_str()))
            .collect()
    }

    pub fn name_by_uuid(&self, uuid: &str) -> Option<String> {
        self.with(|rooms, _| {
            rooms
                .iter()
                .find(|(_, r)| r.uuid == uuid)
                .map(|(name, _)| name.clone())
        })
    }

    pub fn view(&self, name: &str) -> Option<RoomView> {
        self.with(|rooms, _| {
            rooms.get(name).map(|r| RoomView {
                name: name.to_owned(),
                kind: r.kind,
                uuid: r.uuid.clone(),
                created_at: r.created_at,
                ended: r.ended,
                members: r.members.iter().map(view_of).collect(),
            })
        })
    }

    pub fn clear(&self) {
        self.with(|rooms, order| {
            for m in rooms.values().flat_map(|r| r.members.iter()) {
                m.exit.cancel();
            }
            rooms.clear();
            order.clear();
        });
    }
}

fn view_of(m: &Member) -> MemberView {
    let mut view = m.view.clone();
    view.state = if m.left {
        "left"
    } else if view.held {
        "on_hold"
    } else if view.muted {
        "muted"
    } else {
        "in_call"
    };
    view
}

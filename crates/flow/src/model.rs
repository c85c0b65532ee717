//! A compiled PHLO: nodes with typed options and parsed templates, ready for the engine.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::nodes::Component;

/// A node's stable id (`node_id` in the definition).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub Uuid);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for NodeId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(NodeId)
    }
}

/// The component type names of the definition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Start,
    SendSms,
    IvrMenu,
    GetInput,
    InitiateCall,
    CallForward,
    Hangup,
    PlayAudio,
    RecordAudio,
    MultiPartyCall,
    ConferenceBridge,
    HttpRequest,
    Counter,
    Branch,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Start,
        Kind::SendSms,
        Kind::IvrMenu,
        Kind::GetInput,
        Kind::InitiateCall,
        Kind::CallForward,
        Kind::Hangup,
        Kind::PlayAudio,
        Kind::RecordAudio,
        Kind::MultiPartyCall,
        Kind::ConferenceBridge,
        Kind::HttpRequest,
        Kind::Counter,
        Kind::Branch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::SendSms => "send_sms",
            Kind::IvrMenu => "ivr_menu",
            Kind::GetInput => "get_input",
            Kind::InitiateCall => "initiate_call",
            Kind::CallForward => "call_forward",
            Kind::Hangup => "hangup",
            Kind::PlayAudio => "play_audio",
            Kind::RecordAudio => "record_audio",
            Kind::MultiPartyCall => "multi_party_call",
            Kind::ConferenceBridge => "conference_bridge",
            Kind::HttpRequest => "http_request",
            Kind::Counter => "counter",
            Kind::Branch => "branch",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Voice components act on the token's call and need one.
    pub fn needs_call(self) -> bool {
        matches!(
            self,
            Kind::IvrMenu
                | Kind::GetInput
                | Kind::CallForward
                | Kind::Hangup
                | Kind::PlayAudio
                | Kind::RecordAudio
                | Kind::MultiPartyCall
                | Kind::ConferenceBridge
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and when a node posts its variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackConfig {
    pub url: String,
    /// POST (JSON body) or GET (variables flattened into the query string).
    pub method: String,
    /// States (and, for conferences, member events) that trigger a post; empty means every one.
    pub events: Vec<String>,
}

impl CallbackConfig {
    pub fn wants(&self, event: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event)
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub component: Component,
    /// State → next node. A state without a transition ends the token.
    pub transitions: BTreeMap<String, NodeId>,
    pub callback: Option<CallbackConfig>,
}

impl Node {
    pub fn kind(&self) -> Kind {
        self.component.kind()
    }
}

/// A validated PHLO. Build it with [`crate::compile`].
#[derive(Debug, Clone)]
pub struct Phlo {
    pub name: String,
    pub description: Option<String>,
    pub nodes: BTreeMap<NodeId, Node>,
    pub start: NodeId,
}

impl Phlo {
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id)
    }

    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.values().find(|n| n.name == name)
    }
}

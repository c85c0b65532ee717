//! SMS and MMS: messages sent through the Message API (or a `Message` element) go through the
//! recipient's script (`queued → sent → delivered`, or a failure with Plivo's error code) with a
//! status callback at each step; inbound messages are posted to the application's message URL,
//! whose `<Message>` reply is sent in turn.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Sim;
use crate::calls::{Call, plivo_time};
use crate::events::EventKind;
use crate::rooms::Callback;
use crate::scripts::SmsOutcome;
use crate::webhooks::{Fetch, Method};
use crate::xml::{self, Node};

const RATE: f64 = 0.005;

#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    pub message_uuid: String,
    pub direction: &'static str,
    pub from: String,
    pub to: String,
    pub text: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub media_urls: Vec<String>,
    /// The final (or latest) status.
    pub status: String,
    pub error_code: Option<String>,
    /// Every status reported, in order.
    pub statuses: Vec<String>,
    pub units: u32,
    pub callback_url: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct Messages {
    list: Mutex<VecDeque<MessageView>>,
    cap: usize,
}

impl Messages {
    pub fn new(cap: usize) -> Self {
        Self {
            list: Mutex::new(VecDeque::new()),
            cap,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut VecDeque<MessageView>) -> T) -> T {
        f(&mut self.list.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn add(&self, m: MessageView) {
        self.with(|list| {
            if list.len() >= self.cap {
                list.pop_front();
            }
            list.push_back(m);
        });
    }

    fn set_status(&self, uuid: &str, status: &str, code: Option<&str>) {
        self.with(|list| {
            if let Some(m) = list.iter_mut().rev().find(|m| m.message_uuid == uuid) {
                m.status = status.to_owned();
                m.error_code = code.map(str::to_owned);
                m.statuses.push(status.to_owned());
            }
        });
    }

    pub fn get(&self, uuid: &str) -> Option<MessageView> {
        self.with(|list| list.iter().find(|m| m.message_uuid == uuid).cloned())
    }

    pub fn list(&self) -> Vec<MessageView> {
        self.with(|list| list.iter().cloned().collect())
    }

    pub fn clear(&self) {
        self.with(VecDeque::clear);
    }
}

/// A message to send to one recipient.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub src: String,
    pub dst: String,
    pub text: String,
    pub kind: String,
    pub media_urls: Vec<String>,
    pub callback: Option<Callback>,
}

/// Units a text costs: 160 GSM characters per SMS (153 per part when split), 70 (67) otherwise.
pub fn units(text: &str, kind: &str) -> u32 {
    if kind == "mms" {
        return 1;
    }
    let len = text.chars().count();
    let (single, part) = if text.is_ascii() {
        (160, 153)
    } else {
        (70, 67)
    };
    let n = if len <= single { 1 } else { len.div_ceil(part) };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Queues a message and acts out its delivery in the background; returns its UUID.
pub fn send(sim: &Sim, out: Outgoing) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let units = units(&out.text, &out.kind);
    sim.messages.add(MessageView {
        message_uuid: uuid.clone(),
        direction: "outbound",
        from: out.src.clone(),
        to: out.dst.clone(),
        text: out.text.clone(),
        kind: out.kind.clone(),
        media_urls: out.media_urls.clone(),
        status: "queued".to_owned(),
        error_code: None,
        statuses: vec!["queued".to_owned()],
        units,
        callback_url: out.callback.as_ref().map(|c| c.url.clone()),
        created_at: Utc::now(),
    });
    let outcome = sim.scripts.get(&out.dst).sms;
    tokio::spawn(deliver(sim.clone(), uuid.clone(), out, outcome, units));
    uuid
}

async fn deliver(sim: Sim, uuid: String, out: Outgoing, outcome: SmsOutcome, units: u32) {
    // Plivo's error codes: 20 network error, 80 destination temporarily unavailable,
    // 100 prohibited by the carrier.
    let steps: &[(&str, Option<&str>)] = match outcome {
        SmsOutcome::Deliver => &[("queued", None), ("sent", None), ("delivered", None)],
        SmsOutcome::Fail => &[("queued", None), ("failed", Some("20"))],
        SmsOutcome::Undeliverable => &[
            ("queued", None),
            ("sent", None),
            ("undelivered", Some("80")),
        ],
        SmsOutcome::Reject => &[("queued", None), ("rejected", Some("100"))],
    };
    for (i, (status, code)) in steps.iter().enumerate() {
        if i > 0 {
            sim.sleep(0.5).await;
            sim.messages.set_status(&uuid, status, *code);
        }
        let Some(cb) = &out.callback else {
            continue;
        };
        let mut params = vec![
            ("MessageUUID".to_owned(), uuid.clone()),
            ("ParentMessageUUID".to_owned(), uuid.clone()),
            ("To".to_owned(), out.dst.clone()),
            ("From".to_owned(), out.src.clone()),
            ("Status".to_owned(), (*status).to_owned()),
            ("Type".to_owned(), out.kind.clone()),
            ("Units".to_owned(), units.to_string()),
            ("TotalRate".to_owned(), format!("{RATE:.5}")),
            (
                "TotalAmount".to_owned(),
                format!("{:.5}", RATE * f64::from(units)),
            ),
            ("PartInfo".to_owned(), "1 of 1".to_owned()),
            ("Sequence".to_owned(), "1".to_owned()),
            ("MessageTime".to_owned(), plivo_time(Utc::now())),
        ];
        if let Some(code) = code {
            params.push(("ErrorCode".to_owned(), (*code).to_owned()));
        }
        let fetch = Fetch {
            url: cb.url.clone(),
            method: cb.method,
            params,
        };
        let _ = sim.webhooks.send(&fetch).await;
    }
}

/// A `Message` element in call XML (or a message-URL reply): one message per `dst`.
pub fn send_from_xml(sim: &Sim, call: &Call, verb: &Node) {
    for out in outgoing_from_xml(verb) {
        let dst = out.dst.clone();
        let text = out.text.clone();
        let message_uuid = send(sim, out);
        call.log_party(EventKind::MessageSent {
            to: dst,
            text,
            message_uuid,
        });
    }
}

fn outgoing_from_xml(verb: &Node) -> Vec<Outgoing> {
    let src = verb.attr("src").unwrap_or_default().to_owned();
    let callback = verb.attr("callbackUrl").map(|url| Callback {
        url: url.to_owned(),
        method: Method::parse(verb.attr("callbackMethod")),
    });
    verb.attr("dst")
        .unwrap_or_default()
        .split('<')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|dst| Outgoing {
            src: src.clone(),
            dst: dst.to_owned(),
            text: verb.text.clone(),
            kind: verb.attr("type").unwrap_or("sms").to_owned(),
            media_urls: Vec::new(),
            callback: callback.clone(),
        })
        .collect()
}

/// Delivers an inbound SMS to the application; returns its UUID at once.
pub fn receive(sim: &Sim, from: &str, to: &str, text: &str, url: Callback) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let units = units(text, "sms");
    sim.messages.add(MessageView {
        message_uuid: uuid.clone(),
        direction: "inbound",
        from: from.to_owned(),
        to: to.to_owned(),
        text: text.to_owned(),
        kind: "sms".to_owned(),
        media_urls: Vec::new(),
        status: "received".to_owned(),
        error_code: None,
        statuses: vec!["received".to_owned()],
        units,
        callback_url: Some(url.url.clone()),
        created_at: Utc::now(),
    });
    let params = vec![
        ("From".to_owned(), from.to_owned()),
        ("To".to_owned(), to.to_owned()),
        ("Text".to_owned(), text.to_owned()),
        ("Type".to_owned(), "sms".to_owned()),
        ("MessageUUID".to_owned(), uuid.clone()),
        ("Units".to_owned(), units.to_string()),
        ("TotalRate".to_owned(), "0.00000".to_owned()),
        ("TotalAmount".to_owned(), "0.00000".to_owned()),
    ];
    let fetch = Fetch {
        url: url.url,
        method: url.method,
        params,
    };
    let sim = sim.clone();
    tokio::spawn(async move {
        // The reply may be a `<Response><Message …>` document: send what it asks for.
        let Ok(reply) = sim.webhooks.send(&fetch).await else {
            return;
        };
        if !reply.is_success() || reply.body.trim().is_empty() {
            return;
        }
        if let Ok(verbs) = xml::parse_response(&reply.body) {
            for verb in verbs.iter().filter(|v| v.name == "Message") {
                for out in outgoing_from_xml(verb) {
                    send(&sim, out);
                }
            }
        }
    });
    uuid
}

//! Reaching a party: how its phone reacts to a call (its script's `answer`), and call screening,
//! where an answered party hears a confirmation prompt and must press the confirm key.

use crate::Sim;
use crate::calls::Call;
use crate::events::EventKind;
use crate::scripts::{Answer, Script};
use crate::webhooks::Fetch;
use crate::xml::{self, Node};
use crate::xml_exec::play;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ring {
    Answered { machine: bool },
    Busy,
    NoAnswer,
    Failed,
}

/// Rings a party with the given script for at most `timeout` simulated seconds.
pub async fn ring(sim: &Sim, script: &Script, timeout: f64) -> Ring {
    match script.answer {
        Answer::Fail => Ring::Failed,
        Answer::Busy => {
            sim.sleep(script.answer_delay().min(timeout)).await;
            Ring::Busy
        }
        Answer::NoAnswer => {
            let gives_up = script.answer_after_secs.map_or(timeout, |s| s.min(timeout));
            sim.sleep(gives_up).await;
            Ring::NoAnswer
        }
        Answer::Answer | Answer::Voicemail => {
            let delay = script.answer_delay();
            if delay > timeout {
                sim.sleep(timeout).await;
                return Ring::NoAnswer;
            }
            sim.sleep(delay).await;
            Ring::Answered {
                machine: script.answer == Answer::Voicemail,
            }
        }
    }
}

/// What screening asks of an answered party.
#[derive(Debug, Clone)]
pub struct Screening {
    /// Where the confirmation prompt's XML comes from.
    pub sound: Option<Fetch>,
    pub key: String,
    /// Simulated seconds to wait for a key before refusing.
    pub timeout: f64,
}

/// Plays the confirmation prompt to the leg's party and returns whether it pressed the key.
pub async fn screen(sim: &Sim, leg: &Call, script: &Script, screening: &Screening) -> bool {
    let party = leg.info.party.as_str();
    if let Some(fetch) = &screening.sound {
        match prompt(sim, fetch).await {
            Ok(verbs) => {
                for verb in flatten(&verbs) {
                    play(sim, leg, party, verb).await;
                }
            }
            Err(error) => leg.log(party, EventKind::AppError { error }),
        }
    }
    match &script.confirm_key {
        Some(key) => {
            leg.log(
                party,
                EventKind::Pressed {
                    digits: key.clone(),
                },
            );
            *key == screening.key
        }
        None => {
            sim.sleep(screening.timeout).await;
            leg.log(
                party,
                EventKind::Silent {
                    seconds: screening.timeout,
                },
            );
            false
        }
    }
}

async fn prompt(sim: &Sim, fetch: &Fetch) -> Result<Vec<Node>, String> {
    let reply = sim
        .webhooks
        .send(fetch)
        .await
        .map_err(|e| format!("{}: {e}", fetch.url))?;
    if !reply.is_success() {
        return Err(format!("{}: HTTP {}", fetch.url, reply.status));
    }
    xml::parse_response(&reply.body).map_err(|e| format!("{}: {e}", fetch.url))
}

/// The audible elements of a prompt document, including those nested in an input element.
fn flatten(verbs: &[Node]) -> Vec<&Node> {
    let mut out = Vec::new();
    for verb in verbs {
        match verb.name.as_str() {
            "Speak" | "Play" | "Wait" => out.push(verb),
            _ => out.extend(flatten(&verb.children)),
        }
    }
    out
}

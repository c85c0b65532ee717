//! Scripts: how each simulated party (a callee we dial, a caller who dials in, an SMS recipient)
//! behaves. A party without a script answers after a second, presses nothing, talks for five seconds
//! and receives its messages, so a demo works before anyone writes a script.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What a party does when it is called.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    #[default]
    Answer,
    Busy,
    NoAnswer,
    /// An answering machine picks up: the call is answered, and reported as a machine when the
    /// caller asked for machine detection.
    Voicemail,
    /// The call cannot be placed at all (bad number, network failure).
    Fail,
}

/// What happens to a message sent to this party.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsOutcome {
    #[default]
    Deliver,
    Fail,
    Undeliverable,
    Reject,
}

/// One party's script. Every field is optional in JSON; `talk_secs: null` means "talks until the
/// other side hangs up", which is why its default is given by a function rather than `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    #[serde(default)]
    pub answer: Answer,
    /// Seconds of ringing before the party answers (or rejects, for `busy`); for `no_answer` it
    /// gives up ringing after this long if it is shorter than the caller's ring timeout.
    #[serde(default)]
    pub answer_after_secs: Option<f64>,
    /// One entry per input prompt, in order: keys to press (`"1234#"`), or `""` for silence. For a
    /// speech prompt an entry that is not only keys is what the party says.
    #[serde(default)]
    pub digits: Vec<String>,
    /// Each prompt waits, in real time and as long as its timeout, for an entry posted to
    /// `POST /sim/calls/{uuid}/input` (a person answering from a terminal) instead of taking the
    /// next of `digits`.
    #[serde(default)]
    pub live_input: bool,
    /// Seconds the party speaks when recorded.
    #[serde(default = "default_record_secs")]
    pub record_secs: f64,
    /// The key pressed when a screened call asks for confirmation; none = never confirms.
    #[serde(default)]
    pub confirm_key: Option<String>,
    /// Seconds a dialled party talks once connected before it hangs up.
    #[serde(default = "default_talk_secs")]
    pub talk_secs: Option<f64>,
    /// Seconds after the answer at which this party hangs up, wherever the call is.
    #[serde(default)]
    pub hangup_after_secs: Option<f64>,
    #[serde(default)]
    pub sms: SmsOutcome,
}

fn default_record_secs() -> f64 {
    3.0
}

fn default_talk_secs() -> Option<f64> {
    Some(5.0)
}

impl Default for Script {
    fn default() -> Self {
        Self {
            answer: Answer::default(),
            answer_after_secs: None,
            digits: Vec::new(),
            live_input: false,
            record_secs: default_record_secs(),
            confirm_key: None,
            talk_secs: default_talk_secs(),
            hangup_after_secs: None,
            sms: SmsOutcome::default(),
        }
    }
}

impl Script {
    /// Seconds of ringing before the party picks up (or rejects the call).
    pub fn answer_delay(&self) -> f64 {
        self.answer_after_secs.unwrap_or(1.0)
    }

    pub fn validate(&self) -> Result<(), String> {
        let numbers = [
            ("answer_after_secs", self.answer_after_secs),
            ("record_secs", Some(self.record_secs)),
            ("talk_secs", self.talk_secs),
            ("hangup_after_secs", self.hangup_after_secs),
        ];
        for (name, value) in numbers {
            if let Some(v) = value
                && (!v.is_finite() || v < 0.0)
            {
                return Err(format!("{name} must be a non-negative number of seconds"));
            }
        }
        Ok(())
    }
}

/// Numbers are matched without a leading `+` and surrounding spaces: Plivo itself reports numbers
/// without the `+`, and an application may send either form.
pub fn number_key(number: &str) -> String {
    let n = number.trim();
    n.strip_prefix('+').unwrap_or(n).to_owned()
}

/// The scripts of every party, by number.
#[derive(Debug)]
pub struct Scripts {
    by_number: Mutex<BTreeMap<String, Script>>,
    cap: usize,
}

impl Scripts {
    pub fn new(cap: usize) -> Self {
        Self {
            by_number: Mutex::new(BTreeMap::new()),
            cap,
        }
    }

    pub fn get(&self, number: &str) -> Script {
        let map = self.by_number.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&number_key(number)).cloned().unwrap_or_default()
    }

    /// Replaces the party's script; refuses new numbers beyond the cap so memory stays bounded.
    pub fn set(&self, number: &str, script: Script) -> Result<(), String> {
        script.validate()?;
        let mut map = self.by_number.lock().unwrap_or_else(|p| p.into_inner());
        let key = number_key(number);
        if !map.contains_key(&key) && map.len() >= self.cap {
            return Err(format!(
                "at most {} scripts; reset or delete some",
                self.cap
            ));
        }
        map.insert(key, script);
        Ok(())
    }

    pub fn remove(&self, number: &str) -> bool {
        let mut map = self.by_number.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&number_key(number)).is_some()
    }

    pub fn all(&self) -> BTreeMap<String, Script> {
        self.by_number
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn clear(&self) {
        self.by_number
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// A party's input entries, consumed one per prompt during one call.
#[derive(Debug, Default)]
pub struct InputCursor {
    entries: Vec<String>,
    next: usize,
}

impl InputCursor {
    pub fn new(entries: Vec<String>) -> Self {
        Self { entries, next: 0 }
    }

    /// The next entry, or `None` when the script has nothing more to say (silence).
    pub fn next_entry(&mut self) -> Option<String> {
        let entry = self.entries.get(self.next).cloned();
        if entry.is_some() {
            self.next += 1;
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_take_defaults_and_null_talk_means_forever() {
        let s: Script = serde_json::from_str("{}").unwrap();
        assert_eq!(s, Script::default());
        let s: Script =
            serde_json::from_str(r#"{"talk_secs": null, "answer": "no_answer"}"#).unwrap();
        assert_eq!(s.talk_secs, None);
        assert_eq!(s.answer, Answer::NoAnswer);
        assert!(serde_json::from_str::<Script>(r#"{"answr": "busy"}"#).is_err());
    }

    #[test]
    fn numbers_match_with_or_without_plus() {
        let scripts = Scripts::new(10);
        let busy = Script {
            answer: Answer::Busy,
            ..Script::default()
        };
        scripts.set("+14155550101", busy.clone()).unwrap();
        assert_eq!(scripts.get("14155550101"), busy);
        assert!(
            scripts
                .set(
                    "+1",
                    Script {
                        record_secs: -1.0,
                        ..Script::default()
                    }
                )
                .is_err()
        );
    }
}

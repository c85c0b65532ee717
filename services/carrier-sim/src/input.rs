//! `GetDigits` and `GetInput`: the party hears the nested prompts, then gives its next scripted
//! entry. Keys go through Plivo's rules (finish key, digit count, valid digits); silence waits out
//! the timeout and falls through to the next element without calling the action URL.

use crate::calls::Stop;
use crate::events::EventKind;
use crate::session::CallCtx;
use crate::xml::Node;
use crate::xml_exec::{Step, follow_action, play};

const KEYS: &str = "0123456789*#";

/// What the party's entry amounted to.
enum Entry {
    Silence,
    Keys {
        digits: String,
        /// Ended by the finish key or the digit count, rather than by the digit timeout.
        terminated: bool,
    },
    Invalid,
    Speech(String),
}

struct Rules<'a> {
    finish_on_key: &'a str,
    num_digits: usize,
    valid: &'a str,
}

/// Presses `keys` one after another until the finish key or the digit count stops the input.
fn press(keys: &str, rules: &Rules<'_>) -> Entry {
    let mut digits = String::new();
    for key in keys.chars() {
        if !rules.finish_on_key.is_empty() && rules.finish_on_key.contains(key) {
            return Entry::Keys {
                digits,
                terminated: true,
            };
        }
        if !rules.valid.contains(key) {
            return Entry::Invalid;
        }
        digits.push(key);
        if digits.chars().count() >= rules.num_digits {
            return Entry::Keys {
                digits,
                terminated: true,
            };
        }
    }
    Entry::Keys {
        digits,
        terminated: false,
    }
}

fn classify(entry: Option<String>, rules: &Rules<'_>, speech_ok: bool, dtmf_ok: bool) -> Entry {
    let Some(entry) = entry.filter(|e| !e.is_empty()) else {
        return Entry::Silence;
    };
    let all_keys = entry.chars().all(|c| KEYS.contains(c));
    if speech_ok && (!all_keys || !dtmf_ok) {
        return Entry::Speech(entry);
    }
    press(&entry, rules)
}

/// Runs a `GetDigits` or `GetInput` element.
pub async fn gather(ctx: &CallCtx, verb: &Node) -> Result<Step, Stop> {
    let get_input = verb.name == "GetInput";
    let input_type = verb
        .attr("inputType")
        .unwrap_or("dtmf")
        .to_ascii_lowercase();
    let (dtmf_ok, speech_ok) = if get_input {
        (input_type.contains("dtmf"), input_type.contains("speech"))
    } else {
        (true, false)
    };
    let finish_on_key = match verb.attr("finishOnKey") {
        Some(k) if k.eq_ignore_ascii_case("none") => "",
        Some(k) => k,
        None => "#",
    };
    let rules = Rules {
        finish_on_key,
        num_digits: verb
            .num("numDigits", if get_input { 32.0 } else { 99.0 })
            .max(1.0) as usize,
        valid: verb.attr("validDigits").unwrap_or(KEYS),
    };
    let (timeout, digit_timeout, attempts) = if get_input {
        let digit_end = verb
            .attr("digitEndTimeout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2.0);
        (verb.num("executionTimeout", 15.0), digit_end, 1)
    } else {
        let retries = verb.num("retries", 1.0).max(1.0) as u32;
        (
            verb.num("timeout", 5.0),
            verb.num("digitTimeout", 2.0),
            retries,
        )
    };

    for _ in 0..attempts {
        for prompt in &verb.children {
            ctx.guard(play(&ctx.sim, &ctx.call, ctx.party(), prompt))
                .await?;
        }
        let entry = ctx.next_input(timeout).await?;
        match classify(entry, &rules, speech_ok, dtmf_ok) {
            Entry::Silence => {
                // A live party's silence has been waited for already, in real time.
                if !ctx.script.live_input {
                    ctx.pause(timeout).await?;
                }
                ctx.log(EventKind::Silent { seconds: timeout });
            }
            Entry::Invalid => {
                if let Some(url) = verb.attr("invalidDigitsSound") {
                    ctx.log(EventKind::Heard {
                        text: None,
                        url: Some(url.to_owned()),
                        voice: None,
                        language: None,
                    });
                }
            }
            Entry::Speech(speech) => {
                ctx.log(EventKind::Said {
                    speech: speech.clone(),
                });
                ctx.pause(1.0).await?;
                let extra = vec![
                    ("InputType".into(), "speech".into()),
                    ("Speech".into(), speech),
                    ("SpeechConfidenceScore".into(), "0.95".into()),
                    ("BilledAmount".into(), "0.00000".into()),
                ];
                return Ok(follow_action(ctx, verb, extra).await);
            }
            Entry::Keys { digits, terminated } => {
                ctx.log(EventKind::Pressed {
                    digits: digits.clone(),
                });
                if !terminated {
                    // Plivo waits for another key before it takes the input as complete.
                    ctx.pause(digit_timeout).await?;
                }
                if digits.is_empty() {
                    // Only the finish key: Plivo counts that as no input.
                    continue;
                }
                let mut extra = Vec::new();
                if get_input {
                    extra.push(("InputType".into(), "dtmf".into()));
                }
                extra.push(("Digits".into(), digits));
                return Ok(follow_action(ctx, verb, extra).await);
            }
        }
    }
    Ok(Step::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(n: usize) -> Rules<'static> {
        Rules {
            finish_on_key: "#",
            num_digits: n,
            valid: KEYS,
        }
    }

    fn keys(e: Entry) -> Option<(String, bool)> {
        match e {
            Entry::Keys { digits, terminated } => Some((digits, terminated)),
            _ => None,
        }
    }

    #[test]
    fn keys_follow_finish_key_count_and_validity() {
        assert_eq!(
            keys(press("1234#", &rules(99))),
            Some(("1234".into(), true))
        );
        assert_eq!(keys(press("1234", &rules(2))), Some(("12".into(), true)));
        assert_eq!(keys(press("12", &rules(99))), Some(("12".into(), false)));
        let strict = Rules {
            valid: "12",
            ..rules(9)
        };
        assert!(matches!(press("13", &strict), Entry::Invalid));
        assert!(matches!(
            classify(Some(String::new()), &rules(1), false, true),
            Entry::Silence
        ));
        assert!(matches!(
            classify(Some("sales".into()), &rules(1), true, true),
            Entry::Speech(_)
        ));
    }
}

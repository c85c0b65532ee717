//! Prompts (Speak Text or Play Audio) shared by the voice components.
//!
//! Written as `{"type": "speak", "text": "...", "language": "en-US", "voice": "WOMAN"}`,
//! `{"type": "play", "url": "https://..."}`, or a plain string as shorthand for speak.

use phlo_template::Template;
use serde_json::Value;

use crate::effect::Prompt;
use crate::engine::Context;
use crate::options::{OptionReader, check_url, kind};

#[derive(Debug, Clone)]
pub enum PromptOption {
    Speak {
        text: Template,
        language: String,
        voice: String,
    },
    Play {
        url: Template,
    },
}

pub(crate) fn parse_one<'a>(
    r: &mut OptionReader<'a, '_>,
    field: &str,
    value: &'a Value,
) -> Option<PromptOption> {
    match value {
        Value::String(_) => r.template_at(field, value).map(|text| PromptOption::Speak {
            text,
            language: "en-US".to_owned(),
            voice: "WOMAN".to_owned(),
        }),
        Value::Object(map) => {
            let mut p = r.nested(map, field.to_owned());
            let kind = p.choice("type", &["speak", "play"], "speak");
            let prompt = if kind == "play" {
                let url = p.required_template("url", "the URL of an mp3 or wav file");
                if let Some(literal) = url.as_ref().and_then(Template::as_literal)
                    && let Err(msg) = check_url(literal)
                {
                    let f = p.field("url");
                    p.error(&f, "invalid_url", msg);
                }
                url.map(|url| PromptOption::Play { url })
            } else {
                let text = p.required_template("text", "the text to speak");
                let language = literal_word(&mut p, "language", "en-US", is_language);
                let voice =
                    literal_word(&mut p, "voice", "WOMAN", |v| !v.is_empty() && v.len() <= 64);
                text.map(|text| PromptOption::Speak {
                    text,
                    language,
                    voice,
                })
            };
            p.finish();
            prompt
        }
        other => {
            r.error(
                field,
                "wrong_type",
                format!(
                    "expected a prompt (an object or a string), found {}",
                    kind(other)
                ),
            );
            None
        }
    }
}

/// An optional single prompt under `key`.
pub(crate) fn parse_optional(
    r: &mut OptionReader<'_, '_>,
    key: &'static str,
) -> Option<PromptOption> {
    let value = r.raw(key)?;
    let field = r.field(key);
    parse_one(r, &field, value)
}

/// A list of prompts under `key` (a single prompt is accepted as a list of one).
pub(crate) fn parse_list(r: &mut OptionReader, key: &'static str) -> Vec<PromptOption> {
    let Some(value) = r.raw(key) else {
        return Vec::new();
    };
    let field = r.field(key);
    match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| parse_one(r, &format!("{field}[{i}]"), v))
            .collect(),
        other => parse_one(r, &field, other).into_iter().collect(),
    }
}

pub fn render(ctx: &Context, prompt: &PromptOption) -> Result<Prompt, String> {
    Ok(match prompt {
        PromptOption::Speak {
            text,
            language,
            voice,
        } => Prompt::Speak {
            text: ctx.render(text)?,
            language: language.clone(),
            voice: voice.clone(),
        },
        PromptOption::Play { url } => Prompt::Play {
            url: ctx.render(url)?,
        },
    })
}

pub(crate) fn render_all(ctx: &Context, prompts: &[PromptOption]) -> Result<Vec<Prompt>, String> {
    prompts.iter().map(|p| render(ctx, p)).collect()
}

fn literal_word(
    r: &mut OptionReader,
    key: &'static str,
    default: &str,
    valid: fn(&str) -> bool,
) -> String {
    match r.raw(key) {
        None => default.to_owned(),
        Some(Value::String(s)) if valid(s) => s.clone(),
        Some(other) => {
            let field = r.field(key);
            r.error(
                &field,
                "invalid_value",
                format!("{other} is not a valid {key}; the default is {default}"),
            );
            default.to_owned()
        }
    }
}

fn is_language(s: &str) -> bool {
    let mut parts = s.split('-');
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.chars().all(|c| c.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

//! HTTP Request: call an API and expose its answer to later nodes (`{{Node.response.body.key}}`).
//! `success` on 2xx, else `failed`. `status_code` is set to 400 when the response's content type is not
//! the expected one, or when an expected JSON key is missing (the seed's rule). The runtime performs the
//! request (outside any transaction, SSRF-guarded); this module only builds it and reads the answer.

use phlo_template::Template;
use serde_json::{Map, Value, json};

use crate::effect::{Effect, HttpAuth, HttpBody, HttpRequest};
use crate::engine::{Context, EngineError, Reaction, WaitOn, unexpected};
use crate::event::{Event, HttpResult, Vars};
use crate::limits::{MAX_JSON_DEPTH, MAX_RESPONSE_HEADER_BYTES, too_deep};
use crate::model::Node;
use crate::nodes::{CARRIER_GRACE_SECS, check_literal, vars};
use crate::options::{OptionReader, check_url, kind};

pub const STATES: &[&str] = &["success", "failed"];
pub const METHODS: &[&str] = &["get", "post", "put", "delete"];
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct Options {
    pub method: &'static str,
    pub url: Option<Template>,
    pub headers: Vec<(String, Template)>,
    pub params: Vec<(String, Template)>,
    pub body: Option<BodyOption>,
    pub auth: AuthOption,
    pub timeout: u64,
    pub max_response_bytes: u64,
    /// Expected response format: content type and, for JSON, keys that must be present.
    pub expect_content_type: Option<String>,
    pub expect_keys: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum BodyOption {
    Json(JsonTemplate),
    FormUrlencoded(Vec<(String, Template)>),
    FormData(Vec<(String, Template)>),
}

/// A JSON body whose strings are templates.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Literal(Value),
    Text(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

#[derive(Debug, Clone)]
pub enum AuthOption {
    None,
    Basic {
        username: Template,
        password: Template,
    },
    Bearer {
        token: Template,
    },
    Oauth2 {
        token_url: Template,
        client_id: Template,
        client_secret: Template,
        scope: Option<Template>,
    },
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let method = if r.raw("method").is_none() {
        let f = r.field("method");
        r.error(
            &f,
            "missing_option",
            "`method` is required: GET, POST, PUT or DELETE",
        );
        "get"
    } else {
        r.choice("method", METHODS, "get")
    };
    let url = r.required_template(
        "url",
        "the URL to call, e.g. https://api.example.com/orders",
    );
    let f = r.field("url");
    check_literal(r, &f, url.as_ref(), "invalid_url", check_url);
    let headers = r.template_map("headers");
    for (name, _) in &headers {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            let f = format!("{}.{name}", r.field("headers"));
            r.error(
                &f,
                "invalid_value",
                format!("`{name}` is not a valid header name"),
            );
        }
    }
    let params = r.template_map("params");
    let body = parse_body(r, method);
    let auth = parse_auth(r);
    let timeout = r.uint("timeout", 1..=60, 10);
    let max_response_bytes = r.uint(
        "max_response_bytes",
        1..=10 * 1024 * 1024,
        DEFAULT_MAX_RESPONSE_BYTES,
    );
    let (expect_content_type, expect_keys) = parse_response(r);
    Options {
        method,
        url,
        headers,
        params,
        body,
        auth,
        timeout,
        max_response_bytes,
        expect_content_type,
        expect_keys,
    }
}

fn parse_body(r: &mut OptionReader, method: &str) -> Option<BodyOption> {
    let map = r.object("body")?;
    let field = r.field("body");
    if method == "get" {
        r.error(
            &field,
            "invalid_value",
            "a body is sent only with POST, PUT and DELETE: remove it or change `method`",
        );
    }
    let mut b = r.nested(map, field);
    let kind_word = match b.raw("type") {
        None => "json".to_owned(),
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(other) => other.to_string(),
    };
    let content = b.raw("content");
    let content_field = b.field("content");
    let body = match kind_word.as_str() {
        "json" | "application/json" => Some(BodyOption::Json(match content {
            Some(v) => json_template(&mut b, &content_field, v),
            None => JsonTemplate::Literal(json!({})),
        })),
        "form_urlencoded" | "x-www-form-urlencoded" | "application/x-www-form-urlencoded" => Some(
            BodyOption::FormUrlencoded(form_fields(&mut b, &content_field, content)),
        ),
        "form_data" | "form-data" | "multipart/form-data" => Some(BodyOption::FormData(
            form_fields(&mut b, &content_field, content),
        )),
        other => {
            let f = b.field("type");
            b.error(
                &f,
                "invalid_value",
                format!("`{other}` is not a body type: use json, form_urlencoded or form_data"),
            );
            None
        }
    };
    b.finish();
    body
}

fn json_template(r: &mut OptionReader, field: &str, value: &Value) -> JsonTemplate {
    match value {
        Value::String(_) => match r.template_at(field, value) {
            Some(t) => JsonTemplate::Text(t),
            None => JsonTemplate::Literal(Value::Null),
        },
        Value::Array(items) => JsonTemplate::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| json_template(r, &format!("{field}[{i}]"), v))
                .collect(),
        ),
        Value::Object(map) => JsonTemplate::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json_template(r, &format!("{field}.{k}"), v)))
                .collect(),
        ),
        other => JsonTemplate::Literal(other.clone()),
    }
}

fn form_fields(
    r: &mut OptionReader,
    field: &str,
    content: Option<&Value>,
) -> Vec<(String, Template)> {
    match content {
        None => Vec::new(),
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| {
                r.template_at(&format!("{field}.{k}"), v)
                    .map(|t| (k.clone(), t))
            })
            .collect(),
        Some(other) => {
            r.error(
                field,
                "wrong_type",
                format!("expected an object of form fields, found {}", kind(other)),
            );
            Vec::new()
        }
    }
}

fn parse_auth(r: &mut OptionReader) -> AuthOption {
    let Some(map) = r.object("auth") else {
        return AuthOption::None;
    };
    let field = r.field("auth");
    let mut a = r.nested(map, field);
    let kind = a.choice("type", &["none", "basic", "bearer", "oauth2"], "none");
    let req = |a: &mut OptionReader<'_, '_>, key: &'static str, what: &str| {
        a.required_template(key, what).unwrap_or_default()
    };
    let auth = match kind {
        "basic" => AuthOption::Basic {
            username: req(&mut a, "username", "the user name"),
            password: req(&mut a, "password", "the password"),
        },
        "bearer" => AuthOption::Bearer {
            token: req(&mut a, "token", "the bearer token"),
        },
        "oauth2" => {
            let token_url = req(&mut a, "token_url", "the OAuth2 token endpoint");
            let f = a.field("token_url");
            check_literal(&mut a, &f, Some(&token_url), "invalid_url", check_url);
            AuthOption::Oauth2 {
                token_url,
                client_id: req(&mut a, "client_id", "the OAuth2 client id"),
                client_secret: req(&mut a, "client_secret", "the OAuth2 client secret"),
                scope: a.template("scope"),
            }
        }
        _ => AuthOption::None,
    };
    a.finish();
    auth
}

fn parse_response(r: &mut OptionReader) -> (Option<String>, Vec<String>) {
    let Some(map) = r.object("response") else {
        return (None, Vec::new());
    };
    let field = r.field("response");
    let mut o = r.nested(map, field);
    let content_type = match o.raw("content_type") {
        None => None,
        Some(Value::String(s)) if s.contains('/') => Some(essence(s)),
        Some(other) => {
            let f = o.field("content_type");
            o.error(
                &f,
                "invalid_value",
                format!("{other} is not a content type such as application/json"),
            );
            None
        }
    };
    let keys = o
        .template_list("keys", None)
        .iter()
        .map(|t| t.source().to_owned())
        .collect();
    o.finish();
    (content_type, keys)
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    Ok(match event {
        Event::Enter => match build(o, ctx) {
            Ok(request) => Reaction::wait(
                WaitOn::Http,
                // OAuth2 may take a token request first, hence twice the timeout.
                2 * o.timeout + CARRIER_GRACE_SECS,
                vars(json!({ "url": request.url, "method": request.method })),
                vec![Effect::Http(request)],
            ),
            Err(e) => Reaction::failed("failed", failed_vars(), e),
        },
        Event::Http(HttpResult::Response {
            status,
            content_type,
            headers,
            body,
            truncated,
        }) => response(
            o,
            *status,
            content_type.as_deref(),
            headers,
            body,
            *truncated,
        ),
        Event::Http(HttpResult::Error { message }) => {
            Reaction::failed("failed", failed_vars(), message.clone())
        }
        Event::Timeout => Reaction::failed(
            "failed",
            failed_vars(),
            format!("no response within {} s", o.timeout),
        ),
        _ => return Err(unexpected(node, event)),
    })
}

fn failed_vars() -> Vars {
    vars(json!({ "content_type": null, "status_code": null, "response": null }))
}

fn build(o: &Options, ctx: &Context) -> Result<HttpRequest, String> {
    let raw_url = o
        .url
        .as_ref()
        .map(|t| ctx.render(t))
        .transpose()?
        .unwrap_or_default();
    check_url(&raw_url)?;
    let mut url =
        url::Url::parse(&raw_url).map_err(|e| format!("`{raw_url}` is not a URL: {e}"))?;
    if !o.params.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (k, t) in &o.params {
            pairs.append_pair(k, &ctx.render(t)?);
        }
    }
    let mut headers = Vec::new();
    for (k, t) in &o.headers {
        let value = ctx.render(t)?;
        if value.contains(['\r', '\n']) {
            return Err(format!(
                "header `{k}` rendered a line break, which would split the request"
            ));
        }
        headers.push((k.clone(), value));
    }
    let body = match &o.body {
        None => None,
        Some(BodyOption::Json(t)) => Some(HttpBody::Json {
            value: render_json(ctx, t)?,
        }),
        Some(BodyOption::FormUrlencoded(f)) => Some(HttpBody::FormUrlencoded {
            fields: render_fields(ctx, f)?,
        }),
        Some(BodyOption::FormData(f)) => Some(HttpBody::FormData {
            fields: render_fields(ctx, f)?,
        }),
    };
    let auth = match &o.auth {
        AuthOption::None => HttpAuth::None,
        AuthOption::Basic { username, password } => HttpAuth::Basic {
            username: ctx.render(username)?,
            password: ctx.render(password)?,
        },
        AuthOption::Bearer { token } => HttpAuth::Bearer {
            token: ctx.render(token)?,
        },
        AuthOption::Oauth2 {
            token_url,
            client_id,
            client_secret,
            scope,
        } => HttpAuth::Oauth2 {
            token_url: ctx.render(token_url)?,
            client_id: ctx.render(client_id)?,
            client_secret: ctx.render(client_secret)?,
            scope: scope
                .as_ref()
                .map(|s| ctx.render(s))
                .transpose()?
                .filter(|s| !s.is_empty()),
        },
    };
    Ok(HttpRequest {
        method: o.method.to_ascii_uppercase(),
        url: url.to_string(),
        headers,
        body,
        auth,
        timeout_secs: u32::try_from(o.timeout).unwrap_or(60),
        max_response_bytes: o.max_response_bytes,
    })
}

fn render_json(ctx: &Context, t: &JsonTemplate) -> Result<Value, String> {
    Ok(match t {
        JsonTemplate::Literal(v) => v.clone(),
        JsonTemplate::Text(t) => Value::String(ctx.render(t)?),
        JsonTemplate::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| render_json(ctx, i))
                .collect::<Result<_, _>>()?,
        ),
        JsonTemplate::Object(fields) => {
            let mut map = Map::new();
            for (k, v) in fields {
                map.insert(k.clone(), render_json(ctx, v)?);
            }
            Value::Object(map)
        }
    })
}

fn render_fields(
    ctx: &Context,
    fields: &[(String, Template)],
) -> Result<Vec<(String, String)>, String> {
    fields
        .iter()
        .map(|(k, t)| Ok((k.clone(), ctx.render(t)?)))
        .collect()
}

fn response(
    o: &Options,
    status: u16,
    content_type: Option<&str>,
    headers: &[(String, String)],
    body: &str,
    truncated: bool,
) -> Reaction {
    let actual = content_type.map(essence).unwrap_or_default();
    let is_json = actual == "application/json" || actual.ends_with("+json");
    let parsed = if is_json {
        serde_json::from_str::<Value>(body).ok()
    } else {
        None
    };
    // Checked before anything is stored: both would become run variables.
    if let Some(path) = parsed.as_ref().and_then(too_deep) {
        return Reaction::failed(
            "failed",
            failed_vars(),
            format!("the response body nests deeper than {MAX_JSON_DEPTH} levels (at {path})"),
        );
    }
    let header_bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    if header_bytes > MAX_RESPONSE_HEADER_BYTES {
        return Reaction::failed(
            "failed",
            failed_vars(),
            format!(
                "the response headers are {header_bytes} bytes; the limit is {MAX_RESPONSE_HEADER_BYTES}"
            ),
        );
    }
    let mut header_map = Map::new();
    for (k, v) in headers {
        let k = k.to_ascii_lowercase();
        let joined = match header_map.get(&k).and_then(Value::as_str) {
            Some(prev) => format!("{prev}, {v}"),
            None => v.clone(),
        };
        header_map.insert(k, Value::String(joined));
    }
    let body_value = parsed
        .clone()
        .unwrap_or_else(|| Value::String(body.to_owned()));
    let mut problem = None;
    // Expected keys are JSON keys: without a content type they still call for a JSON response.
    let expects_json = match &o.expect_content_type {
        Some(expected) => expected == "application/json" || expected.ends_with("+json"),
        None => !o.expect_keys.is_empty(),
    };
    if let Some(expected) = o.expect_content_type.as_ref().filter(|e| **e != actual) {
        problem = Some(format!(
            "expected a {expected} response, got {}",
            if actual.is_empty() { "none" } else { &actual }
        ));
    } else if expects_json {
        match &parsed {
            None => problem = Some("the response is not valid JSON".to_owned()),
            Some(json) => {
                let missing: Vec<&str> = o
                    .expect_keys
                    .iter()
                    .map(String::as_str)
                    .filter(|k| lookup(json, k).is_none())
                    .collect();
                if !missing.is_empty() {
                    problem = Some(format!(
                        "the response lacks the expected keys: {}",
                        missing.join(", ")
                    ));
                }
            }
        }
    }
    let status_code = if problem.is_some() { 400 } else { status };
    let variables = vars(json!({
        "content_type": content_type,
        "status_code": status_code,
        "response": { "body": body_value, "headers": header_map, "truncated": truncated },
    }));
    match problem {
        Some(p) => Reaction::failed("failed", variables, p),
        None if (200..300).contains(&status) => Reaction::done("success", variables),
        None => Reaction::failed(
            "failed",
            variables,
            format!("the server answered HTTP {status}"),
        ),
    }
}

/// The media type without parameters, lower-cased: `Application/JSON; charset=utf-8` → `application/json`.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Finds a dotted path (`order.items.0.sku`) in a JSON value.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

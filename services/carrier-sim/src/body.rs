//! Request bodies of the REST API. Plivo's SDKs send JSON whose values may be strings, numbers or
//! booleans for the same parameter (`"ring_timeout": 45` or `"45"`), and older clients send forms,
//! so parameters are read leniently by name rather than through a strict struct.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::webhooks::Method;

#[derive(Debug, Default)]
pub struct ApiBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for ApiBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        if is_form {
            let map = url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect();
            return Ok(Self(map));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::bad_request("the body must be a JSON object")),
            Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
        }
    }
}

impl ApiBody {
    /// A parameter as text; absent, null and blank all mean "not given".
    pub fn str(&self, key: &str) -> Option<String> {
        match self.0.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    pub fn required(&self, key: &str) -> Result<String, ApiError> {
        self.str(key)
            .ok_or_else(|| ApiError::bad_request(format!("{key} parameter is missing")))
    }

    pub fn num(&self, key: &str, default: f64) -> Result<f64, ApiError> {
        match self.str(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("{key} must be a non-negative number"))
                }),
        }
    }

    pub fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.str(key).map(|v| v.to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v == "true" => Ok(Some(true)),
            Some(v) if v == "false" => Ok(Some(false)),
            Some(_) => Err(ApiError::bad_request(format!(
                "{key} must be true or false"
            ))),
        }
    }

    pub fn method(&self, key: &str) -> Method {
        Method::parse(self.str(key).as_deref())
    }

    /// An optional http(s) URL parameter.
    pub fn url(&self, key: &str) -> Result<Option<String>, ApiError> {
        let Some(v) = self.str(key) else {
            return Ok(None);
        };
        match url::Url::parse(&v) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(v)),
            _ => Err(ApiError::bad_request(format!(
                "{key} must be an http(s) URL"
            ))),
        }
    }

    /// A URL parameter with its `<key-prefix>_method` companion, e.g. `hangup_url`/`hangup_method`.
    pub fn target(
        &self,
        url_key: &str,
        method_key: &str,
    ) -> Result<Option<(String, Method)>, ApiError> {
        Ok(self.url(url_key)?.map(|u| (u, self.method(method_key))))
    }

    /// A list given as a JSON array or as a comma-separated string.
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.0.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }
}

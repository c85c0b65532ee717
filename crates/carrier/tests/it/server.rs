//! A local Plivo-shaped API server that records every request and answers from a script.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// As received (percent-encoded), query excluded.
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The JSON body; `Null` when there was none.
    pub body: Value,
}

/// What the server answers: status, body, and a delay before answering.
pub type Script = Arc<dyn Fn(&Method, &str) -> (u16, String, Duration) + Send + Sync>;

#[derive(Clone)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Script,
}

pub struct Server {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// A server answering every request with `status` and `body`.
    pub async fn answering(status: u16, body: &str) -> Self {
        let body = body.to_owned();
        Self::start(Arc::new(move |_, _| (status, body.clone(), Duration::ZERO))).await
    }

    pub async fn start(script: Script) -> Self {
        let shared = Shared {
            seen: Arc::default(),
            script,
        };
        let seen = Arc::clone(&shared.seen);
        let app = axum::Router::new().fallback(answer).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, seen }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The only request received.
    pub fn one(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "expected one request, got {seen:#?}");
        seen.into_iter().next().unwrap()
    }
}

async fn answer(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.unwrap_or_default();
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let seen = Seen {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        authorization: header(header::AUTHORIZATION),
        content_type: header(header::CONTENT_TYPE),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    shared.seen.lock().unwrap().push(seen);
    let (status, body, delay) = (shared.script)(&parts.method, parts.uri.path());
    tokio::time::sleep(delay).await;
    let status = StatusCode::from_u16(status).unwrap();
    if body.is_empty() {
        status.into_response()
    } else {
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

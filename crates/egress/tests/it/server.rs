//! A local HTTP server that records every request it receives and answers by path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use phlo_egress::{Egress, EgressConfig};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Vec<Seen>>>,
    token_hits: Arc<AtomicUsize>,
}

pub struct Server {
    pub addr: SocketAddr,
    shared: Shared,
}

impl Server {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, shared }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The only request received, failing if there were others.
    pub fn one(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "expected one request, got {seen:#?}");
        seen.into_iter().next().unwrap()
    }

    pub fn token_hits(&self) -> usize {
        self.shared.token_hits.load(Ordering::SeqCst)
    }
}

/// An egress that may reach the test server (127.0.0.1 only).
pub fn allowed() -> Egress {
    Egress::new(EgressConfig {
        allow: EgressConfig::parse_allow("127.0.0.1/32").unwrap(),
        ..EgressConfig::default()
    })
    .unwrap()
}

/// An egress with the default configuration: no allow-list.
pub fn guarded() -> Egress {
    Egress::new(EgressConfig::default()).unwrap()
}

async fn answer(State(shared): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().map(str::to_owned);
    shared.seen.lock().unwrap().push(Seen {
        method: parts.method,
        path: path.clone(),
        query: query.clone(),
        headers: parts.headers,
        body,
    });
    match path.as_str() {
        "/token" => {
            let n = shared.token_hits.fetch_add(1, Ordering::SeqCst) + 1;
            let token =
                format!(r#"{{"access_token":"tok-{n}","token_type":"bearer","expires_in":3600}}"#);
            ([(header::CONTENT_TYPE, "application/json")], token).into_response()
        }
        "/status/500" => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        "/unauthorized" => (StatusCode::UNAUTHORIZED, "expired").into_response(),
        "/big" => "x".repeat(100_000).into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "late".into_response()
        }
        // `/redirect?<target>`: the whole query is the Location.
        "/redirect" => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, query.unwrap_or_default())
            .body(Body::empty())
            .unwrap_or_default(),
        "/loop" => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, "/loop")
            .body(Body::empty())
            .unwrap_or_default(),
        _ => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::HeaderName::from_static("x-custom"), "Yes"),
            ],
            r#"{"ok":true}"#,
        )
            .into_response(),
    }
}

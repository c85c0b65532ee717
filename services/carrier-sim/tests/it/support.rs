//! Test harness: the simulator in-process on port 0 with time scaled down 50×, and a small
//! "application" that serves XML per path and records every webhook it receives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use phlo_carrier_sim::Config;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub const AUTH_ID: &str = "MASIMULATORACCOUNT01";
pub const TOKEN: &str = "sim-token";

/// Simulated seconds become 1/50 of a real second.
pub const SCALE: f64 = 0.02;

pub struct Sim {
    pub base: String,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Sim {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let config = Config {
            time_scale: SCALE,
            webhook_timeout: Duration::from_secs(3),
            ..Config::default()
        };
        let shutdown = CancellationToken::new();
        tokio::spawn(phlo_carrier_sim::run(config, listener, shutdown.clone()));
        Self {
            base,
            http: reqwest::Client::new(),
            shutdown,
        }
    }

    /// A request to the Plivo-compatible API, authenticated.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}/v1/Account/{AUTH_ID}{path}", self.base))
            .basic_auth(AUTH_ID, Some(TOKEN))
    }

    pub async fn script(&self, number: &str, script: Value) {
        let r = self
            .http
            .put(format!("{}/sim/numbers/{number}", self.base))
            .json(&script)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    pub async fn get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Places an inbound call to the app and returns its UUID.
    pub async fn inbound(&self, from: &str, to: &str, app: &App) -> String {
        let body = serde_json::json!({
            "from": from, "to": to,
            "answer_url": app.url("/answer"), "hangup_url": app.url("/hangup"),
        });
        let v = self.post("/sim/calls", body).await;
        v["call_uuid"].as_str().unwrap().to_owned()
    }

    pub async fn call(&self, uuid: &str) -> Value {
        self.get(&format!("/sim/calls/{uuid}")).await
    }

    /// Waits (up to 10 real seconds) for the call to reach a final status.
    pub async fn finished(&self, uuid: &str) -> Value {
        for _ in 0..500 {
            let call = self.call(uuid).await;
            let status = call["status"].as_str().unwrap_or_default().to_owned();
            if !["queued", "ringing", "in-progress"].contains(&status.as_str()) {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("call {uuid} did not end: {:#}", self.call(uuid).await);
    }
}

/// The events of `kind` in a call's log, optionally only `party`'s.
pub fn events<'a>(call: &'a Value, kind: &str, party: Option<&str>) -> Vec<&'a Value> {
    call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .filter(|e| party.is_none_or(|p| e["party"] == p))
        .collect()
}

/// One webhook the application received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    pub method: String,
    pub url: String,
    pub params: HashMap<String, String>,
    pub pairs: Vec<(String, String)>,
    pub headers: HeaderMap,
}

impl Hit {
    pub fn p(&self, key: &str) -> &str {
        self.params.get(key).map_or("", String::as_str)
    }
}

#[derive(Default)]
struct AppState {
    docs: Mutex<HashMap<String, (u16, String)>>,
    hits: Mutex<Vec<Hit>>,
    base: Mutex<String>,
}

/// The application under the simulator: XML per path, every request recorded.
#[derive(Clone)]
pub struct App {
    pub base: String,
    state: Arc<AppState>,
}

impl App {
    pub async fn start() -> Self {
        let state = Arc::new(AppState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        *state.base.lock().unwrap() = base.clone();
        let router = Router::new().fallback(record).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Serves `xml` (a `<Response>` body) at `path`.
    pub fn xml(&self, path: &str, xml: &str) {
        let doc = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Response>{xml}</Response>");
        self.state
            .docs
            .lock()
            .unwrap()
            .insert(path.to_owned(), (200, doc));
    }

    pub fn respond(&self, path: &str, status: u16, body: &str) {
        self.state
            .docs
            .lock()
            .unwrap()
            .insert(path.to_owned(), (status, body.to_owned()));
    }

    pub fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.state.hits.lock().unwrap();
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }

    /// Waits (up to 10 real seconds) for the `n`th request to `path` (1-based).
    pub async fn wait(&self, path: &str, n: usize) -> Hit {
        for _ in 0..500 {
            if let Some(hit) = self.hits(path).get(n - 1) {
                return hit.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no request #{n} to {path}; got {:?}", self.all_paths());
    }

    pub fn all_paths(&self) -> Vec<String> {
        self.state
            .hits
            .lock()
            .unwrap()
            .iter()
            .map(|h| h.path.clone())
            .collect()
    }
}

async fn record(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    if let Some(q) = parts.uri.query() {
        pairs.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let path = parts.uri.path().to_owned();
    let url = format!("{}{}", state.base.lock().unwrap(), parts.uri);
    state.hits.lock().unwrap().push(Hit {
        path: path.clone(),
        method: parts.method.to_string(),
        url,
        params: pairs.iter().cloned().collect(),
        pairs: url::form_urlencoded::parse(&body).into_owned().collect(),
        headers: parts.headers,
    });
    let doc = state.docs.lock().unwrap().get(&path).cloned();
    match doc {
        Some((status, body)) => (
            StatusCode::from_u16(status).unwrap(),
            [("content-type", "text/xml")],
            body,
        )
            .into_response(),
        None => (StatusCode::OK, "").into_response(),
    }
}

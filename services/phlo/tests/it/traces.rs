//! One run is one trace, across the gateway, worker and callback processes: a fake OTLP/HTTP collector
//! in the test decodes what the processes export (protobuf `ExportTraceServiceRequest`, the default
//! protocol), and a run triggered with a caller's `traceparent` must come back as one tree of spans
//! under the caller's span, with the same context reaching the HTTP Request node's server and every
//! attempt of a callback (a NAK'd retry and a retry the scheduler published from Postgres included).
//!
//! The processes log at `warn` (the tests' default): the spans are exported all the same. They are
//! asserted while the processes run and are then `kill -9`ed, so everything seen was exported by the
//! batch processor's periodic export (`OTEL_BSP_SCHEDULE_DELAY`), not by a flush at exit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};

use crate::support::{Stack, recorder};

const START: &str = "7ace0000-0000-4000-8000-000000000000";
const HTTP_1: &str = "7ace0000-0000-4000-8000-000000000001";
const BRANCH_1: &str = "7ace0000-0000-4000-8000-000000000002";
const COUNTER_1: &str = "7ace0000-0000-4000-8000-000000000003";

/// Generous: a deadline only fails a test that hangs.
const PATIENCE: Duration = Duration::from_secs(60);

/// A span as the fake collector received it; ids in lowercase hex.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    /// Empty for a root span.
    parent: String,
    start: u64,
    attributes: BTreeMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// A fake OTLP/HTTP collector: `POST /v1/traces` with protobuf bodies.
struct Collector {
    endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let sink = spans.clone();
        let app = Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let sink = sink.clone();
                async move {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    if content_type != "application/x-protobuf" {
                        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, content_type.to_owned());
                    }
                    match ExportTraceServiceRequest::decode(body.as_ref()) {
                        Ok(request) => {
                            sink.lock().expect("lock").extend(decode(request));
                            (StatusCode::OK, String::new())
                        }
                        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { endpoint, spans }
    }

    fn trace(&self, trace_id: &str) -> Trace {
        let spans = self.spans.lock().expect("lock");
        Trace {
            spans: spans
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .map(|s| (s.span_id.clone(), s.clone()))
                .collect(),
        }
    }
}

fn decode(request: ExportTraceServiceRequest) -> Vec<Span> {
    let text = |v: Option<&AnyValue>| match v {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    };
    let attributes = |kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]| {
        kvs.iter()
            .map(|kv| {
                let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
                (kv.key.clone(), text(value))
            })
            .collect::<BTreeMap<_, _>>()
    };
    let mut out = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                out.push(Span {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    start: span.start_time_unix_nano,
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The spans of one trace, by span id.
struct Trace {
    spans: HashMap<String, Span>,
}

impl Trace {
    fn find(&self, what: impl Fn(&Span) -> bool) -> Vec<&Span> {
        self.spans.values().filter(|s| what(s)).collect()
    }

    /// The `phlo.step` span of the run's step (token, seq).
    fn step(&self, run_id: &str, token: i64, seq: i64) -> Option<&Span> {
        self.spans.values().find(|s| {
            s.name == "phlo.step"
                && s.attr("run_id") == run_id
                && s.attr("token") == token.to_string()
                && s.attr("seq") == seq.to_string()
        })
    }

    /// Whether `ancestor` is a parent, grandparent, ... of `span` (ids).
    fn descends(&self, span: &str, ancestor: &str) -> bool {
        let mut at = self.spans.get(span);
        while let Some(s) = at {
            if s.parent == ancestor {
                return true;
            }
            at = self.spans.get(&s.parent);
        }
        false
    }

    /// The tree below `root` (a span id), one span per line, for `--nocapture`.
    fn render(&self, root: &str, depth: usize, out: &mut String) {
        let mut children = self.find(|s| s.parent == root);
        children.sort_by_key(|s| s.start);
        for span in children {
            let detail: Vec<String> = ["queue", "seq", "attempt", "outcome", "http.route"]
                .iter()
                .filter(|k| !span.attr(k).is_empty())
                .map(|k| format!("{k}={}", span.attr(k)))
                .collect();
            out.push_str(&format!(
                "{}{} [{}] {}\n",
                "  ".repeat(depth),
                span.name,
                span.service,
                detail.join(" ")
            ));
            self.render(&span.span_id, depth + 1, out);
        }
    }

    /// Spans whose parent is neither in the trace nor `remote` (the caller's span).
    fn dangling(&self, remote: &str) -> Vec<&Span> {
        self.find(|s| s.parent != remote && !self.spans.contains_key(&s.parent))
    }
}

/// `(trace id, parent id)` of a `traceparent` header value.
fn parse_traceparent(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {value:?}");
    assert_eq!(parts[0], "00", "version of {value:?}");
    (parts[1].to_owned(), parts[2].to_owned())
}

fn traceparent_of(headers: &HeaderMap) -> (String, String) {
    let value = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no traceparent in {headers:?}"));
    parse_traceparent(value)
}

/// A webhook receiver that answers 503 to its first `failures` requests, then 200.
struct Webhook {
    url: String,
    hits: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Webhook {
    async fn start(failures: usize) -> Webhook {
        let hits: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
        let log = hits.clone();
        let app = Router::new().fallback(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                let mut log = log.lock().expect("lock");
                log.push(headers);
                if log.len() <= failures {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/hooks/shipped",
            listener.local_addr().expect("addr")
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        Webhook { url, hits }
    }

    fn hits(&self) -> Vec<HeaderMap> {
        self.hits.lock().expect("lock").clone()
    }
}

fn order_api(path: &str) -> (u16, &'static str, String) {
    match path {
        "/orders/17" => (
            200,
            "application/json",
            json!({ "order": { "status": "shipped" } }).to_string(),
        ),
        _ => (404, "application/json", "{}".to_owned()),
    }
}

/// Start → HTTP Request (a local server) → Branch (with a callback) → Counter.
fn order_phlo(api_port: u16, webhook: &str) -> Value {
    json!({ "name": "Traced order", "nodes": [
        { "node_id": START, "name": "Start", "type": "start",
          "transitions": { "api_request": HTTP_1 } },
        { "node_id": HTTP_1, "name": "HTTP_Request_1", "type": "http_request",
          "options": { "method": "GET", "url": format!("http://127.0.0.1:{api_port}/orders/17"), "timeout": 5 },
          "transitions": { "success": BRANCH_1 } },
        { "node_id": BRANCH_1, "name": "Branch_1", "type": "branch",
          "options": { "lhs": "{{HTTP_Request_1.response.body.order.status}}",
                       "conditions": [{ "alias": "shipped", "operation": "equals", "rhs": "shipped" }] },
          "transitions": { "shipped": COUNTER_1 },
          "callback": { "url": webhook } },
        { "node_id": COUNTER_1, "name": "Counter_1", "type": "counter", "options": { "max_count": 1 } },
    ]})
}

#[tokio::test(flavor = "multi_thread")]
async fn one_run_is_one_trace_from_the_api_request_to_every_callback_attempt() {
    let collector = Collector::start().await;
    let api = recorder(order_api).await;
    let webhook = Webhook::start(2).await;
    let mut stack = Stack::start_with(
        1,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
    )
    .await;
    // Attempt 1 fails and is retried 0.5 s later by a NAK (within the 1 s NAK limit); attempt 2 fails and
    // its 3 s retry is parked in Postgres, then published by the scheduler; attempt 3 is delivered.
    stack.spawn_callback(&[
        ("PHLO_CALLBACK_SCHEDULE", "0.5,3"),
        ("PHLO_CALLBACK_JITTER", "0"),
        ("PHLO_CALLBACK_NAK_MAX_SECS", "1"),
    ]);
    let acct = stack.account().await;
    let phlo_id = stack
        .create_phlo(&acct, order_phlo(api.addr.port(), &webhook.url))
        .await;

    // The caller's trace: the run must continue it.
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = uuid::Uuid::new_v4().simple().to_string()[..16].to_owned();
    let r = stack
        .http
        .post(stack.url(&format!("/v1/account/{}/phlo/{phlo_id}", acct.auth_id)))
        .basic_auth(&acct.auth_id, Some(&acct.token))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({}))
        .send()
        .await
        .expect("run request");
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.expect("json");
    let run_id = body["phlo_run_id"].as_str().expect("run id").to_owned();
    let run = stack.wait_run(&acct, &run_id, PATIENCE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let steps: Vec<(i64, i64, String, String)> = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["token"].as_i64().expect("token"),
                s["seq"].as_i64().expect("seq"),
                s["node_name"].as_str().expect("node").to_owned(),
                s["outcome"].as_str().expect("outcome").to_owned(),
            )
        })
        .collect();
    let journal: Vec<(&str, &str)> = steps
        .iter()
        .map(|(_, _, node, outcome)| (node.as_str(), outcome.as_str()))
        .collect();
    assert_eq!(
        journal,
        [
            ("Start", "done"),
            ("HTTP_Request_1", "wait"),
            ("HTTP_Request_1", "done"),
            ("Branch_1", "done"),
            ("Counter_1", "done"),
        ]
    );

    // The callback: three attempts, the last delivered.
    let deadline = Instant::now() + PATIENCE;
    let delivery = loop {
        let (status, log) = stack
            .call(
                &acct,
                reqwest::Method::GET,
                &format!("/v1/runs/{run_id}/callbacks"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{log}");
        if log["objects"][0]["status"] == "delivered" {
            break log["objects"][0].clone();
        }
        assert!(Instant::now() < deadline, "callback not delivered: {log:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let outcomes: Vec<&str> = delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"], "{delivery:#}");
    let hooks = webhook.hits();
    assert_eq!(hooks.len(), 3, "webhook requests");
    assert!(
        hooks
            .iter()
            .all(|h| h.get("webhook-id").and_then(|v| v.to_str().ok())
                == delivery["webhook_id"].as_str()),
        "one delivery, three attempts"
    );

    // Every span of the run, once the processes have exported them: a step span per step row, an
    // attempt span per attempt, and no span whose parent is missing.
    let deadline = Instant::now() + PATIENCE;
    let trace = loop {
        let trace = collector.trace(&trace_id);
        let steps_seen = steps
            .iter()
            .all(|(token, seq, ..)| trace.step(&run_id, *token, *seq).is_some());
        let attempts = trace.find(|s| s.name == "phlo.callback.attempt").len();
        if steps_seen && attempts == 3 && trace.dangling(&caller_span).is_empty() {
            break trace;
        }
        assert!(
            Instant::now() < deadline,
            "the run's spans never all arrived (steps: {steps_seen}, attempts: {attempts}, dangling: {:#?}); \
             trace: {:#?}",
            trace.dangling(&caller_span),
            trace.spans.values().collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let mut tree = String::new();
    trace.render(&caller_span, 1, &mut tree);
    println!("the run's trace, under the caller's span:\n{tree}");

    // The API request continues the caller's span.
    let requests = trace.find(|s| s.name == "http.request");
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let request = requests[0];
    assert_eq!(request.parent, caller_span, "{request:#?}");
    assert_eq!(
        request.attr("http.route"),
        "/v1/account/{auth_id}/phlo/{phlo_id}"
    );
    assert_eq!(
        request.service, "phlo",
        "exported by the `phlo gateway` process"
    );

    // Each step descends from the API request, and from the step before it (a later message) or shares
    // its parent (the same message: consecutive steps a worker applies in one transaction).
    let mut previous: Option<&Span> = None;
    for (token, seq, node, _) in &steps {
        let span = trace.step(&run_id, *token, *seq).expect("step span");
        assert!(
            trace.descends(&span.span_id, &request.span_id),
            "step {seq} ({node}) does not descend from the API request: {span:#?}"
        );
        if let Some(before) = previous {
            assert!(
                trace.descends(&span.span_id, &before.span_id) || span.parent == before.parent,
                "step {seq} ({node}) neither follows nor sits beside step {}: {span:#?} {before:#?}",
                seq - 1
            );
        }
        previous = Some(span);
    }
    let step = |seq: i64| trace.step(&run_id, 0, seq).expect("step span");

    // The HTTP Request node's server got the trace context of a span below the node's waiting step,
    // and the step that took its answer descends from that span.
    let received = api.received.lock().expect("lock").clone();
    assert_eq!(received.len(), 1, "requests to the order API");
    let (api_trace, api_parent) = traceparent_of(&received[0].headers);
    assert_eq!(api_trace, trace_id, "the HTTP Request node's traceparent");
    assert!(
        trace.spans.contains_key(&api_parent),
        "its parent span {api_parent} is in the trace"
    );
    assert!(trace.descends(&api_parent, &step(1).span_id));
    assert!(trace.descends(&step(2).span_id, &api_parent));

    // Every callback attempt (the NAK'd retry and the scheduler's included) is in the run's trace, below
    // the step that recorded the callback, and the webhook got that attempt's span as its parent.
    let recorded_by = step(3);
    for (n, hook) in hooks.iter().enumerate() {
        let (hook_trace, hook_parent) = traceparent_of(hook);
        assert_eq!(
            hook_trace,
            trace_id,
            "attempt {} left the run's trace",
            n + 1
        );
        let attempt = trace
            .spans
            .get(&hook_parent)
            .unwrap_or_else(|| panic!("attempt {}: no span {hook_parent}", n + 1));
        assert_eq!(attempt.name, "phlo.callback.attempt", "{attempt:#?}");
        assert_eq!(attempt.attr("attempt"), (n + 1).to_string(), "{attempt:#?}");
        assert_eq!(attempt.attr("run_id"), run_id, "{attempt:#?}");
        // The message that brought the attempt carried the step's context itself: the first one, the
        // NAK'd one and the one the scheduler published from Postgres alike.
        let message = trace
            .spans
            .get(&attempt.parent)
            .unwrap_or_else(|| panic!("attempt {}: its parent is not in the trace", n + 1));
        assert_eq!(
            (message.name.as_str(), message.attr("queue")),
            ("phlo.consume", "callback"),
            "{message:#?}"
        );
        assert_eq!(
            message.parent,
            recorded_by.span_id,
            "attempt {}'s message is not a child of the Branch_1 step",
            n + 1
        );
    }
    let outcomes: Vec<&str> = (1..=3)
        .map(|n| {
            trace
                .find(|s| s.name == "phlo.callback.attempt" && s.attr("attempt") == n.to_string())
                .first()
                .map_or("", |s| s.attr("outcome"))
        })
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"]);
    stack.cleanup().await;
}

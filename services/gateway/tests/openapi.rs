//! The OpenAPI document (`openapi.json`, served at `GET /v1/openapi.json`) describes exactly the routes
//! the router registers: every `.route(...)` of `src/routes/mod.rs` is a path of the document with the
//! same methods, and the document describes no route that does not exist. Also: valid JSON with the
//! required top-level keys, every `$ref` resolves, every path parameter is declared, every response
//! code is one the gateway returns, and every error response is the `{api_id, error}` body.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

const DOCUMENT: &str = include_str!("../openapi.json");
const ROUTES: &str = include_str!("../src/routes/mod.rs");

/// Routes served by the gateway outside `routes::router()` (merged in `lib.rs` from `phlo_service`).
const HEALTH_ROUTES: &[(&str, &str)] = &[("/healthz", "get"), ("/readyz", "get")];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON")
}

/// Every `.route("path", get(..).post(..))` of the router source, as path → methods. Handles calls
/// that rustfmt spreads over several lines; axum's `{x}` and `{*x}` become OpenAPI's `{x}`.
fn router_routes(source: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut routes = BTreeMap::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        let call = &rest[at + ".route(".len()..];
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1usize;
        let mut end = call.len();
        for (i, c) in call.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let args = &call[..end];
        let path_start = args.find('"').expect("a route path literal") + 1;
        let path_len = args[path_start..]
            .find('"')
            .expect("the end of the path literal");
        let path = args[path_start..path_start + path_len].replace("{*", "{");
        let handlers = &args[path_start + path_len + 1..];
        assert!(
            !handlers.contains("any("),
            "{path}: `any(...)` routes cannot be checked method by method"
        );
        let methods: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| {
                handlers.match_indices(&format!("{m}(")).any(|(i, _)| {
                    // `get(` as a whole word: not the tail of another identifier such as `forget(`.
                    i == 0 || !handlers[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                })
            })
            .map(|m| (*m).to_owned())
            .collect();
        assert!(
            !methods.is_empty(),
            "{path}: no method found in `{handlers}`"
        );
        assert!(
            routes.insert(path.clone(), methods).is_none(),
            "{path} is registered twice"
        );
        rest = &call[end..];
    }
    routes
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (key, op) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&key.as_str()) {
                ops.push((path.clone(), key.clone(), op));
            }
        }
    }
    ops
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("non-local $ref {r}"));
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("$ref {r} does not resolve"));
            resolve(doc, target)
        }
        None => value,
    }
}

#[test]
fn the_parser_reads_multi_line_routes() {
    let source = r#"
        Router::new()
            .route("/a", get(x::a).post(x::b))
            .route(
                "/a/{id}/{*rest}",
                delete(x::forget(1)),
            )
            .route("/b", put(x::c))
    "#;
    let routes = router_routes(source);
    let expected: BTreeMap<String, BTreeSet<String>> = [
        ("/a", &["get", "post"][..]),
        ("/a/{id}/{rest}", &["delete"][..]),
        ("/b", &["put"][..]),
    ]
    .into_iter()
    .map(|(p, m)| (p.to_owned(), m.iter().map(|s| (*s).to_owned()).collect()))
    .collect();
    assert_eq!(routes, expected);
}

#[test]
fn the_document_is_openapi_3_with_the_required_keys() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("`openapi` version string");
    assert!(
        version.starts_with("3.0.") || version.starts_with("3.1."),
        "{version}"
    );
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        doc["info"]["version"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert!(doc["paths"].as_object().is_some_and(|p| !p.is_empty()));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["basicAuth"]["type"], "http");
    assert_eq!(schemes["basicAuth"]["scheme"], "basic");
    assert_eq!(schemes["adminBearer"]["type"], "http");
    assert_eq!(schemes["adminBearer"]["scheme"], "bearer");
    assert_eq!(doc["security"], serde_json::json!([{ "basicAuth": [] }]));
    // The error body of every error: Plivo's `{api_id, error}`, plus validation `problems`.
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["api_id", "error"]));
    assert_eq!(
        resolve(&doc, &error["properties"]["problems"]["items"])["required"],
        serde_json::json!(["severity", "code", "field", "message"])
    );
}

#[test]
fn every_route_of_the_router_is_documented_with_the_same_methods() {
    let doc = document();
    let routes = router_routes(ROUTES);
    assert!(routes.len() >= 10, "the parser found only {routes:?}");
    assert_eq!(
        routes.len(),
        ROUTES.matches(".route(").count(),
        "every `.route(` was parsed"
    );
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, method, _) in operations(&doc) {
        documented.entry(path).or_default().insert(method);
    }
    for (path, methods) in &routes {
        assert_eq!(
            documented.get(path),
            Some(methods),
            "{path}: the router has {methods:?}"
        );
    }
    // Nothing documented that the gateway does not serve.
    for (path, methods) in &documented {
        let served = routes.get(path).cloned().unwrap_or_else(|| {
            HEALTH_ROUTES
                .iter()
                .filter(|(p, _)| p == path)
                .map(|(_, m)| (*m).to_owned())
                .collect()
        });
        assert_eq!(&served, methods, "{path} is documented but not served so");
    }
}

#[test]
fn every_operation_is_complete_and_consistent() {
    let doc = document();
    let allowed: BTreeSet<&str> = [
        "200", "201", "400", "401", "403", "404", "405", "409", "413", "429", "500", "502", "503",
    ]
    .into_iter()
    .collect();
    let mut operation_ids = BTreeSet::new();
    for (path, method, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(
            operation_ids.insert(id.to_owned()),
            "operationId {id} is used twice"
        );
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path}: no summary"
        );

        // Every `{param}` of the path is declared as a required path parameter, and nothing else is.
        let mut declared = BTreeSet::new();
        let params = doc["paths"][&path]["parameters"]
            .as_array()
            .into_iter()
            .chain(op["parameters"].as_array());
        for p in params.flatten() {
            let p = resolve(&doc, p);
            if p["in"] == "path" {
                assert_eq!(p["required"], true, "{method} {path}: path parameter {p}");
                declared.insert(p["name"].as_str().expect("parameter name").to_owned());
            }
        }
        let in_path: BTreeSet<String> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(str::to_owned)
            .collect();
        assert_eq!(declared, in_path, "{method} {path}: path parameters");

        // Responses: a success, only codes the gateway returns, errors as `{api_id, error}`.
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(
            responses.keys().any(|c| c.starts_with('2')),
            "{method} {path}: no success response"
        );
        let public = op
            .get("security")
            .is_some_and(|s| s == &serde_json::json!([]));
        for (code, response) in responses {
            assert!(
                allowed.contains(code.as_str()),
                "{method} {path}: status {code}"
            );
            let response = resolve(&doc, response);
            assert!(
                response["description"].is_string(),
                "{method} {path} {code}: no description"
            );
            let schema = &response["content"]["application/json"]["schema"];
            assert!(
                !schema.is_null(),
                "{method} {path} {code}: no application/json schema"
            );
            if code.starts_with('4') || (code.starts_with('5') && !public) {
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Error",
                    "{method} {path} {code}"
                );
            }
        }
        // Authenticated operations document 401 (and the 5xx of their database lookup); public ones don't.
        assert_eq!(
            responses.contains_key("401"),
            !public,
            "{method} {path}: 401 vs security"
        );
        if !public {
            assert!(responses.contains_key("503"), "{method} {path}: no 503");
        }
        // Whatever an account calls can be over its rate limit; the operator's routes cannot.
        let account = op
            .get("security")
            .is_none_or(|s| s == &serde_json::json!([{ "basicAuth": [] }]));
        assert_eq!(
            responses.contains_key("429"),
            account && !public,
            "{method} {path}: 429 vs an account's route"
        );
        // Whatever reads a JSON body can answer 400 and 413.
        if op.get("requestBody").is_some() {
            for code in ["400", "413"] {
                assert!(
                    responses.contains_key(code),
                    "{method} {path}: a body but no {code}"
                );
            }
        }
    }
    // The two Plivo routes that create something answer 201.
    let status = |path: &str, method: &str| {
        doc["paths"][path][method]["responses"]
            .as_object()
            .map(|r| r.keys().cloned().collect::<Vec<_>>())
    };
    assert!(
        status("/v1/account/{auth_id}/phlo/{phlo_id}", "post")
            .unwrap_or_default()
            .contains(&"201".to_owned())
    );
    assert!(
        status("/v1/phlo", "post")
            .unwrap_or_default()
            .contains(&"201".to_owned())
    );
    assert!(
        status("/v1/accounts", "post")
            .unwrap_or_default()
            .contains(&"201".to_owned())
    );
    assert_eq!(
        doc["paths"]["/v1/accounts"]["post"]["security"],
        serde_json::json!([{ "adminBearer": [] }])
    );
}

#[test]
fn every_ref_resolves() {
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("non-local $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "$ref {r} does not resolve");
    }
}

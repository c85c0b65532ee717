//! Input limits: each is reported at save time with the node and field when the definition alone
//! breaks it, and fails the node at run time (naming the field) when rendered values or responses do.

use phlo_flow::condition::{MAX_REGEX_PATTERN_LEN, compile_regex};
use phlo_flow::event::HttpResult;
use phlo_flow::limits::{MAX_JSON_DEPTH, MAX_RESPONSE_HEADER_BYTES};
use phlo_flow::nodes::MAX_RECIPIENTS;
use phlo_flow::{Event, MAX_NODES, Problem, validate};
use phlo_template::MAX_TEMPLATE_LEN;
use serde_json::{Value, json};

use crate::support::*;

const START: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const NODE: &str = "aaaaaaaa-0000-4000-8000-000000000002";

fn one_node(kind: &str, name: &str, options: Value) -> Value {
    json!({
        "name": "limits",
        "nodes": [
            { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": NODE } },
            { "node_id": NODE, "name": name, "type": kind, "options": options },
        ]
    })
}

fn problem<'p>(problems: &'p [Problem], code: &str, field: &str) -> &'p Problem {
    problems
        .iter()
        .find(|p| p.code == code && p.field == field)
        .unwrap_or_else(|| panic!("no {code} at {field} in {problems:#?}"))
}

fn branch_on(rhs: &str) -> Value {
    one_node(
        "branch",
        "Branch_1",
        json!({ "lhs": "{{Start.http.params.v}}",
                "conditions": [{ "alias": "re", "operation": "matches", "rhs": rhs }] }),
    )
}

#[test]
fn regexes_are_capped_in_length_and_compiled_size_at_save() {
    let long = "a".repeat(MAX_REGEX_PATTERN_LEN + 1);
    let problems = validate(&branch_on(&long));
    let p = problem(&problems, "invalid_regex", "options.conditions[0].rhs");
    assert_eq!(p.node_id.as_deref(), Some(NODE));
    assert_eq!(p.node_name.as_deref(), Some("Branch_1"));
    assert_eq!(
        p.message,
        format!("the regular expression is 1025 bytes; the limit is {MAX_REGEX_PATTERN_LEN}")
    );

    // Short, but compiles to far more than the size limit.
    let problems = validate(&branch_on("(a{1000}){1000}"));
    let p = problem(&problems, "invalid_regex", "options.conditions[0].rhs");
    assert!(p.message.contains("compiles to more than"), "{}", p.message);

    assert!(compile_regex(&"a".repeat(MAX_REGEX_PATTERN_LEN)).is_ok());
    assert!(validate(&branch_on("^[0-9]{1,6}$")).is_empty());
}

#[test]
fn a_rendered_regex_over_the_limits_stops_the_token() {
    let options = json!({
        "lhs": "{{Start.http.params.v}}",
        "conditions": [{ "alias": "re", "operation": "matches", "rhs": "{{Start.http.params.p}}" }],
    });
    let phlo = phlo_with("branch", "Branch_1", options, &["re", "no_match"]);
    let long = "a".repeat(MAX_REGEX_PATTERN_LEN + 1);
    for (pattern, expected) in [
        (long.as_str(), "the regular expression is 1025 bytes"),
        ("(a{1000}){1000}", "compiles to more than"),
    ] {
        let c = params_ctx(json!({ "v": "aaa", "p": pattern }));
        let reason = stopped(&run(&phlo, &c, Event::Enter));
        assert!(reason.contains(expected), "{reason}");
    }
}

#[test]
fn templates_over_the_source_cap_are_reported_with_node_and_field() {
    let message = "x{{ Start.http.params.v }}".repeat(MAX_TEMPLATE_LEN / 20);
    let definition = one_node(
        "send_sms",
        "Send_SMS_1",
        json!({ "from": "+14155550100", "to": "+14155552671", "message": message }),
    );
    let problems = validate(&definition);
    let p = problem(&problems, "template_syntax", "options.message");
    assert_eq!(p.node_name.as_deref(), Some("Send_SMS_1"));
    assert!(p.message.contains("the limit is 16384"), "{}", p.message);
}

/// A template that runs out of its render budget fails the node, naming the field.
#[test]
fn a_template_over_its_render_budget_fails_the_node_with_the_field() {
    let phlo = phlo_with(
        "send_sms",
        "Send_SMS_1",
        json!({ "from": "+14155550100", "to": "+14155552671",
                "message": "{% for i in (1..100000000) %}{% endfor %}" }),
        &["sent", "failed"],
    );
    let step = run(&phlo, &params_ctx(json!({})), Event::Enter);
    done(&step, "failed");
    let error = error_of(&step).unwrap();
    assert_eq!(
        error,
        "options.message: the template ran more than 10000 loop iterations"
    );
}

#[test]
fn node_and_recipient_counts_are_capped() {
    let mut nodes = vec![json!({ "node_id": START, "name": "Start", "type": "start" })];
    for i in 0..MAX_NODES {
        nodes.push(json!({ "node_id": format!("bbbbbbbb-0000-4000-8000-{i:012}"), "name": format!("H_{i}"), "type": "hangup" }));
    }
    let problems = validate(&json!({ "name": "big", "nodes": nodes }));
    let p = problem(&problems, "too_large", "nodes");
    assert_eq!(
        p.message,
        format!("{} nodes; the limit is {MAX_NODES}", MAX_NODES + 1)
    );

    let to: Vec<String> = (0..=MAX_RECIPIENTS)
        .map(|i| format!("+1415555{i:04}"))
        .collect();
    let definition = one_node(
        "send_sms",
        "Send_SMS_1",
        json!({ "from": "+14155550100", "to": to.join(","), "message": "hi" }),
    );
    let problems = validate(&definition);
    let p = problem(&problems, "too_large", "options.to");
    assert_eq!(p.node_name.as_deref(), Some("Send_SMS_1"));
}

fn http_answer(headers: Vec<(String, String)>, body: &str) -> Event {
    Event::Http(HttpResult::Response {
        status: 200,
        content_type: Some("application/json".into()),
        headers,
        body: body.into(),
        truncated: false,
    })
}

#[test]
fn http_responses_too_deep_or_with_huge_headers_fail_the_node() {
    let phlo = phlo_with(
        "http_request",
        "HTTP_Request_1",
        json!({ "method": "get", "url": "https://api.example.com/x" }),
        &["success", "failed"],
    );
    let c = params_ctx(json!({}));
    let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));

    let ok = run(&phlo, &c, http_answer(vec![], &nested(MAX_JSON_DEPTH)));
    done(&ok, "success");

    let deep = run(&phlo, &c, http_answer(vec![], &nested(MAX_JSON_DEPTH + 1)));
    let vars = done(&deep, "failed");
    assert_eq!(
        vars["response"],
        Value::Null,
        "nothing of the body is stored"
    );
    let error = error_of(&deep).unwrap();
    assert!(
        error.starts_with(&format!(
            "the response body nests deeper than {MAX_JSON_DEPTH} levels (at $[0][0]"
        )),
        "{error}"
    );

    let big = vec![("x-big".to_owned(), "v".repeat(MAX_RESPONSE_HEADER_BYTES))];
    let step = run(&phlo, &c, http_answer(big, "{}"));
    done(&step, "failed");
    assert!(
        error_of(&step)
            .unwrap()
            .contains("the response headers are")
    );
}

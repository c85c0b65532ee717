//! Validation reports every problem at once, each with the node and field it concerns.

use phlo_flow::{Problem, Severity, validate};
use serde_json::json;

fn find<'a>(
    problems: &'a [Problem],
    code: &str,
    node_name: Option<&str>,
    field: &str,
) -> &'a Problem {
    problems
        .iter()
        .find(|p| p.code == code && p.node_name.as_deref() == node_name && p.field == field)
        .unwrap_or_else(|| {
            panic!("no `{code}` problem for {node_name:?} at `{field}` in {problems:#?}")
        })
}

const START: &str = "aaaaaaaa-0000-4000-8000-000000000000";
const SMS: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const CALL: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const COUNTER: &str = "aaaaaaaa-0000-4000-8000-000000000003";
const BRANCH: &str = "aaaaaaaa-0000-4000-8000-000000000004";
const HTTP: &str = "aaaaaaaa-0000-4000-8000-000000000005";
const IVR: &str = "aaaaaaaa-0000-4000-8000-000000000006";
const WEIRD: &str = "aaaaaaaa-0000-4000-8000-000000000007";
const SECOND_START: &str = "aaaaaaaa-0000-4000-8000-000000000008";
const DUP: &str = "aaaaaaaa-0000-4000-8000-000000000009";
const ORPHAN: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const MISSING: &str = "aaaaaaaa-0000-4000-8000-0000000000ff";

#[test]
fn one_definition_with_every_problem_reports_them_all() {
    let definition = json!({
        "name": "everything wrong",
        "nodes": [
            { "node_id": START, "name": "Start", "type": "start",
              "transitions": { "api_request": SMS, "incoming_call": IVR } },
            // Bad E.164 literal, Liquid that does not parse, an unknown option, a state it lacks.
            { "node_id": SMS, "name": "Send_SMS_1", "type": "send_sms",
              "options": { "from": "+14155550100", "to": ["+1-415-CALL-NOW"], "message": "Hi {{ Start.http.params.name ",
                           "colour": "blue" },
              "transitions": { "sent": CALL, "delivered": CALL } },
            // Missing required option (`to`), bad SIP address, wrong option type, a transition to a missing node.
            { "node_id": CALL, "name": "Initiate_Call_1", "type": "initiate_call",
              "options": { "from": "sip:@nowhere", "machine_detection": "yes" },
              "transitions": { "answered": MISSING, "no_answer": COUNTER } },
            // max count < 1.
            { "node_id": COUNTER, "name": "Counter_1", "type": "counter", "options": { "max_count": 0 },
              "transitions": { "count_not_reached": BRANCH } },
            // Invalid regex.
            { "node_id": BRANCH, "name": "Branch_1", "type": "branch",
              "options": { "lhs": "{{Start.http.params.code}}",
                           "conditions": [{ "alias": "code", "operation": "matches", "rhs": "([0-9]+" }] },
              "transitions": { "code": HTTP } },
            // Bad URL and a timeout out of range.
            { "node_id": HTTP, "name": "HTTP_Request_1", "type": "http_request",
              "options": { "method": "GET", "url": "ftp//example", "timeout": 600 } },
            { "node_id": IVR, "name": "IVR_Menu_1", "type": "ivr_menu",
              "options": { "allowed_inputs": ["1", "2"], "input_timeout": 5 },
              "transitions": { "3": WEIRD, "1": DUP } },
            // Unknown type.
            { "node_id": WEIRD, "name": "Fax_1", "type": "send_fax" },
            // A second Start.
            { "node_id": SECOND_START, "name": "Start_2", "type": "start" },
            // Duplicate name.
            { "node_id": DUP, "name": "Counter_1", "type": "hangup" },
            // Unreachable (a warning).
            { "node_id": ORPHAN, "name": "Orphan", "type": "hangup" },
        ]
    });
    let problems = validate(&definition);

    let bad_phone = find(
        &problems,
        "invalid_phone",
        Some("Send_SMS_1"),
        "options.to[0]",
    );
    assert_eq!(bad_phone.node_id.as_deref(), Some(SMS));
    assert!(bad_phone.message.contains("E.164"), "{}", bad_phone.message);
    let liquid = find(
        &problems,
        "template_syntax",
        Some("Send_SMS_1"),
        "options.message",
    );
    assert!(liquid.message.contains("Liquid"), "{}", liquid.message);
    find(
        &problems,
        "unknown_option",
        Some("Send_SMS_1"),
        "options.colour",
    );
    let state = find(
        &problems,
        "unknown_state",
        Some("Send_SMS_1"),
        "transitions.delivered",
    );
    assert!(
        state.message.contains("sent, failed"),
        "the message lists the real states: {}",
        state.message
    );

    let missing = find(
        &problems,
        "missing_option",
        Some("Initiate_Call_1"),
        "options.to",
    );
    assert_eq!(missing.node_id.as_deref(), Some(CALL));
    find(
        &problems,
        "invalid_phone",
        Some("Initiate_Call_1"),
        "options.from",
    );
    find(
        &problems,
        "wrong_type",
        Some("Initiate_Call_1"),
        "options.machine_detection",
    );
    let dangling = find(
        &problems,
        "missing_node",
        Some("Initiate_Call_1"),
        "transitions.answered",
    );
    assert!(dangling.message.contains(MISSING));

    let count = find(
        &problems,
        "out_of_range",
        Some("Counter_1"),
        "options.max_count",
    );
    assert_eq!(count.node_id.as_deref(), Some(COUNTER));
    find(
        &problems,
        "invalid_regex",
        Some("Branch_1"),
        "options.conditions[0].rhs",
    );
    find(
        &problems,
        "invalid_url",
        Some("HTTP_Request_1"),
        "options.url",
    );
    let timeout = find(
        &problems,
        "out_of_range",
        Some("HTTP_Request_1"),
        "options.timeout",
    );
    assert!(timeout.message.contains("1 to 60"), "{}", timeout.message);
    find(
        &problems,
        "unknown_state",
        Some("IVR_Menu_1"),
        "transitions.3",
    );
    find(&problems, "unknown_type", Some("Fax_1"), "type");
    find(&problems, "several_starts", Some("Start_2"), "type");
    let dup = find(&problems, "duplicate_name", Some("Counter_1"), "name");
    assert_eq!(
        dup.node_id.as_deref(),
        Some(DUP),
        "the second node with the name is the one reported"
    );
    let orphan = find(&problems, "unreachable", Some("Orphan"), "node_id");
    assert_eq!(orphan.severity, Severity::Warning);

    for p in &problems {
        assert!(
            !p.message.is_empty() && p.node_id.is_some(),
            "every problem here belongs to a node: {p:?}"
        );
    }
}

#[test]
fn a_definition_without_start_says_so() {
    let problems = validate(
        &json!({ "name": "x", "nodes": [{ "node_id": SMS, "name": "Bye", "type": "hangup" }] }),
    );
    let p = find(&problems, "no_start", None, "nodes");
    assert_eq!(p.severity, Severity::Error);
}

#[test]
fn document_shape_problems_name_their_place() {
    let problems = validate(&json!({ "nodes": "lots", "owner": "me" }));
    find(&problems, "missing_field", None, "name");
    find(&problems, "wrong_type", None, "nodes");
    find(&problems, "unknown_field", None, "owner");

    let problems = validate(&json!({ "name": "n", "nodes": [
        { "name": "Start", "type": "start" },
        { "node_id": "not-a-uuid", "name": "Send SMS", "type": "send_sms", "options": [] },
        42,
    ]}));
    find(
        &problems,
        "missing_field",
        Some("Start"),
        "nodes[0].node_id",
    );
    find(&problems, "invalid_value", Some("Send SMS"), "node_id");
    let name = find(&problems, "invalid_value", Some("Send SMS"), "name");
    assert!(
        name.message.contains("Send_SMS"),
        "suggests a usable name: {}",
        name.message
    );
    find(&problems, "wrong_type", Some("Send SMS"), "options");
    find(&problems, "wrong_type", None, "nodes[2]");
}

#[test]
fn invalid_json_is_one_problem_with_its_position() {
    let Err(problems) = phlo_flow::compile_str("{\"name\": \"x\",\n \"nodes\": [}") else {
        panic!("invalid JSON compiled");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].code, "invalid_json");
    assert!(
        problems[0].message.contains("line 2"),
        "{}",
        problems[0].message
    );
}

#[test]
fn callbacks_are_checked() {
    let problems = validate(&json!({ "name": "n", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": COUNTER } },
        { "node_id": COUNTER, "name": "Counter_1", "type": "counter", "options": { "max_count": 2 },
          "callback": { "url": "not a url", "method": "PATCH", "events": ["count_reached", "sent"], "secret": "x" } },
    ]}));
    find(&problems, "invalid_url", Some("Counter_1"), "callback.url");
    find(
        &problems,
        "invalid_value",
        Some("Counter_1"),
        "callback.method",
    );
    find(
        &problems,
        "unknown_state",
        Some("Counter_1"),
        "callback.events[1]",
    );
    find(
        &problems,
        "unknown_field",
        Some("Counter_1"),
        "callback.secret",
    );
}

#[test]
fn liquid_that_parses_but_names_unknown_variables_is_fine() {
    let problems = validate(&json!({ "name": "n", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": BRANCH } },
        { "node_id": BRANCH, "name": "Branch_1", "type": "branch",
          "options": { "lhs": "{{ Nowhere.value | default: 'x' }}",
                       "conditions": [{ "alias": "x", "operation": "equals", "rhs": "x" }] } },
    ]}));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn start_is_reserved_and_literal_lists_are_bounded() {
    let numbers: Vec<String> = (0..101).map(|i| format!("+1415555{i:04}")).collect();
    let problems = validate(&json!({ "name": "n", "nodes": [
        { "node_id": START, "name": "Begin", "type": "start", "transitions": { "api_request": SMS } },
        { "node_id": SMS, "name": "Start", "type": "send_sms",
          "options": { "from": "+14155550100", "to": numbers, "message": "hi" }, "transitions": { "sent": CALL } },
        { "node_id": CALL, "name": "Play_1", "type": "play_audio", "options": { "prompts": [] } },
    ]}));
    let reserved = find(&problems, "invalid_value", Some("Start"), "name");
    assert!(
        reserved.message.contains("reserved"),
        "{}",
        reserved.message
    );
    let many = find(&problems, "too_large", Some("Start"), "options.to");
    assert!(many.message.contains("101 recipients"), "{}", many.message);
    find(
        &problems,
        "missing_option",
        Some("Play_1"),
        "options.prompts",
    );
}

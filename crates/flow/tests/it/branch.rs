//! Branch: every operator both ways, numeric vs text comparison, first match wins, no_match, stops.

use phlo_flow::{Event, Outcome, Phlo};
use serde_json::{Value, json};

use crate::support::{
    ctx, done, error_of, expected_callback, params_ctx, phlo_with, phlo_with_callback, run, stopped,
};

/// One condition `yes` comparing `{{Start.http.params.v}}` with `rhs`.
fn one_condition(operation: &str, rhs: &str) -> Phlo {
    let options = json!({
        "lhs": "{{Start.http.params.v}}",
        "conditions": [{ "alias": "yes", "operation": operation, "rhs": rhs }],
    });
    phlo_with("branch", "Branch_1", options, &["yes", "no_match"])
}

#[test]
fn every_operator_holds_and_fails() {
    #[rustfmt::skip]
    let cases = [
        // (operation, lhs, rhs, holds)
        ("equals", "hello", "hello", true),
        ("equals", "hello", "Hello", false),
        ("equals", " hello ", "hello", true),
        ("not_equals", "hello", "world", true),
        ("not_equals", "hello", "hello", false),
        ("contains", "order shipped", "ship", true),
        ("contains", "order shipped", "Ship", false),
        ("not_contains", "order shipped", "lost", true),
        ("not_contains", "order shipped", "order", false),
        ("starts_with", "+14155550100", "+1415", true),
        ("starts_with", "+14155550100", "+44", false),
        ("ends_with", "report.pdf", ".pdf", true),
        ("ends_with", "report.pdf", ".doc", false),
        ("greater_than", "7", "5", true),
        ("greater_than", "5", "7", false),
        ("greater_than", "5", "5", false),
        ("less_than", "5", "7", true),
        ("less_than", "7", "5", false),
        ("less_than", "5", "5", false),
        ("greater_or_equal", "5", "5", true),
        ("greater_or_equal", "6", "5", true),
        ("greater_or_equal", "4", "5", false),
        ("less_or_equal", "5", "5", true),
        ("less_or_equal", "4", "5", true),
        ("less_or_equal", "6", "5", false),
        ("is_empty", "", "", true),
        ("is_empty", "   ", "", true),
        ("is_empty", "x", "", false),
        ("is_not_empty", "x", "", true),
        ("is_not_empty", " ", "", false),
        ("matches", "A-1234", r"^[A-Z]-\d{4}$", true),
        ("matches", "A-123", r"^[A-Z]-\d{4}$", false),
        ("matches", "yes please", "(?i)^YES", true),
        ("in", "b", "a,b,c", true),
        ("in", "b", " a , b , c ", true),
        ("in", " c ", "a, b, c", true),
        ("in", "d", "a, b, c", false),
        ("in", "a b", "a b, c", true),
        ("in", "2.0", "1, 2, 3", true),
        ("in", "", "a, b", false),
    ];
    for (operation, lhs, rhs, holds) in cases {
        let step = run(
            &one_condition(operation, rhs),
            &params_ctx(json!({ "v": lhs })),
            Event::Enter,
        );
        let (state, expected) = if holds {
            (
                "yes",
                json!({ "lhs": lhs, "operation": operation, "rhs": rhs, "matched": "yes" }),
            )
        } else {
            ("no_match", json!({ "lhs": lhs, "matched": null }))
        };
        let vars = done(&step, state);
        assert_eq!(Value::Object(vars), expected, "{lhs:?} {operation} {rhs:?}");
        assert_eq!(error_of(&step), None);
        assert!(step.effects.is_empty());
    }
}

#[test]
fn numbers_compare_numerically_and_text_textually() {
    #[rustfmt::skip]
    let cases = [
        // (operation, lhs, rhs, holds)
        ("greater_than", "10", "9", true), // textually "10" < "9"
        ("less_than", "10", "9", false),
        ("less_than", "9", "10", true),
        ("greater_than", "2.5", "2.25", true),
        ("greater_than", "-1", "-2", true),
        ("less_than", "-10", "2", true),
        ("greater_than", " 10 ", "9", true),
        ("greater_than", "1e3", "999", true),
        ("equals", "1.0", "1", true),
        ("equals", "007", "7", true),
        ("not_equals", "1.0", "1", false),
        ("greater_or_equal", "1.0", "1", true),
        ("less_or_equal", "1", "1.00", true),
        ("less_than", "abc", "abd", true),
        ("greater_than", "abc", "abd", false),
        ("greater_than", "b", "abc", true),
        ("greater_than", "abc", "10", true), // one side is not a number: text
        ("less_than", "10", "9a", true),
        ("equals", "NaN", "NaN", true), // not finite, so compared as text
        ("greater_than", "inf", "10", true),
        // Integers too long for an f64 stay exact.
        ("equals", "12345678901234567", "12345678901234568", false),
        ("less_than", "12345678901234567", "12345678901234568", true),
        ("equals", "12345678901234567890", "12345678901234567890", true),
    ];
    for (operation, lhs, rhs, holds) in cases {
        let step = run(
            &one_condition(operation, rhs),
            &params_ctx(json!({ "v": lhs })),
            Event::Enter,
        );
        let state = match &step.outcome {
            Outcome::Done { state, .. } => state.as_str(),
            other => panic!("{other:?}"),
        };
        let expected = if holds { "yes" } else { "no_match" };
        assert_eq!(state, expected, "{lhs:?} {operation} {rhs:?}");
    }
}

fn tiers() -> Phlo {
    let options = json!({
        "lhs": "{{Start.http.params.score}}",
        "conditions": [
            { "alias": "gold", "operation": "greater_or_equal", "rhs": "{{Start.http.params.gold}}" },
            { "alias": "silver", "operation": "greater_than", "rhs": 50 },
            { "alias": "positive", "operation": "greater_than", "rhs": "0" },
            { "alias": "vip", "operation": "in", "rhs": "-1, -2" },
        ],
    });
    phlo_with(
        "branch",
        "Branch_1",
        options,
        &["gold", "silver", "positive", "vip", "no_match"],
    )
}

#[test]
fn the_first_matching_condition_wins_and_rhs_templates_render() {
    #[rustfmt::skip]
    let cases = [
        // (score, gold threshold, state, rhs shown)
        ("95", "90", "gold", Some("90")),
        ("95", "99", "silver", Some("50")), // gold's rhs comes from the context
        ("90", "90", "gold", Some("90")),
        ("51", "90", "silver", Some("50")),
        ("50", "90", "positive", Some("0")),
        ("-2", "90", "vip", Some("-1, -2")),
        ("-5", "90", "no_match", None),
        ("", "90", "no_match", None), // "" vs numbers compares as text: "" < "0"
    ];
    for (score, gold, state, rhs) in cases {
        let c = params_ctx(json!({ "score": score, "gold": gold }));
        let vars = done(&run(&tiers(), &c, Event::Enter), state);
        assert_eq!(vars["lhs"], json!(score));
        assert_eq!(
            vars["matched"],
            if state == "no_match" {
                Value::Null
            } else {
                json!(state)
            }
        );
        assert_eq!(
            vars.get("rhs"),
            rhs.map(|r| json!(r)).as_ref(),
            "{score} vs {gold}"
        );
    }
}

#[test]
fn lhs_renders_from_any_node_and_missing_variables_are_empty() {
    let options = json!({
        "lhs": "{{Get_Input_1.input}}{{Start.http.params.suffix}}",
        "conditions": [
            { "alias": "empty", "operation": "is_empty" },
            { "alias": "one", "operation": "equals", "rhs": "1" },
        ],
    });
    let phlo = phlo_with("branch", "Branch_1", options, &["empty", "one", "no_match"]);
    let vars = done(&run(&phlo, &ctx(json!({})), Event::Enter), "empty");
    assert_eq!(
        Value::Object(vars),
        json!({ "lhs": "", "operation": "is_empty", "rhs": "", "matched": "empty" })
    );
    let c = ctx(json!({ "Get_Input_1": { "input": "1" } }));
    done(&run(&phlo, &c, Event::Enter), "one");
    let c = ctx(
        json!({ "Get_Input_1": { "input": "1" }, "Start": { "http": { "params": { "suffix": "2" } } } }),
    );
    assert_eq!(
        done(&run(&phlo, &c, Event::Enter), "no_match")["lhs"],
        json!("12")
    );
}

#[test]
fn render_errors_and_invalid_regexes_stop_the_token() {
    let regex_phlo = |rhs: &str| {
        let options = json!({
            "lhs": "{{Start.http.params.v}}",
            "conditions": [
                { "alias": "never", "operation": "equals", "rhs": "zzz" },
                { "alias": "re", "operation": "matches", "rhs": rhs },
            ],
        });
        phlo_with("branch", "Branch_1", options, &["never", "re", "no_match"])
    };
    let c = params_ctx(json!({ "v": "abc", "pattern": "([a-z", "ok": "^a" }));
    done(
        &run(&regex_phlo("{{Start.http.params.ok}}"), &c, Event::Enter),
        "re",
    );

    let reason = stopped(&run(
        &regex_phlo("{{Start.http.params.pattern}}"),
        &c,
        Event::Enter,
    ));
    assert!(
        reason.starts_with("condition `re`: `([a-z` is not a valid regular expression"),
        "{reason}"
    );

    let reason = stopped(&run(
        &regex_phlo("{{ 1 | divided_by: 0 }}"),
        &c,
        Event::Enter,
    ));
    assert!(
        reason.starts_with("options.conditions[1].rhs: template failed to render"),
        "{reason}"
    );

    let options = json!({
        "lhs": "{{ 1 | divided_by: 0 }}",
        "conditions": [{ "alias": "yes", "operation": "is_empty" }],
    });
    let phlo = phlo_with("branch", "Branch_1", options, &["yes", "no_match"]);
    let step = run(&phlo, &c, Event::Enter);
    let reason = stopped(&step);
    assert!(
        reason.starts_with("options.lhs: template failed to render: Invalid argument"),
        "{reason}"
    );
    assert!(step.effects.is_empty());
}

#[test]
fn callbacks_follow_the_events_filter() {
    let url = "https://hooks.example.com/branch";
    let options = json!({
        "lhs": "{{Start.http.params.v}}",
        "conditions": [{ "alias": "yes", "operation": "equals", "rhs": "1" }],
    });
    let callback = json!({ "url": url, "events": ["no_match"] });
    let phlo = phlo_with_callback(
        "branch",
        "Branch_1",
        options,
        &["yes", "no_match"],
        callback,
    );
    let matched = run(&phlo, &params_ctx(json!({ "v": "1" })), Event::Enter);
    done(&matched, "yes");
    assert!(matched.effects.is_empty(), "`yes` is not subscribed");
    let missed = run(&phlo, &params_ctx(json!({ "v": "2" })), Event::Enter);
    let vars = done(&missed, "no_match");
    let expected = expected_callback(url, "POST", "branch", "Branch_1", "no_match", &vars);
    assert_eq!(missed.effects, vec![expected]);
}

//! Counter: asks the runtime to increment (run or PHLO scope), then compares the count with max_count.

use phlo_flow::effect::{CounterIncrement, CounterScope};
use phlo_flow::{Effect, EngineError, Event, Phlo, WaitOn};
use serde_json::{Value, json};

use crate::support::{
    NODE_ID, ctx, done, enter_and_wait, error_of, expected_callback, phlo_with, phlo_with_callback,
    run,
};

const STATES: &[&str] = &["count_reached", "count_not_reached"];

fn counter_phlo(options: Value) -> Phlo {
    phlo_with("counter", "Counter_1", options, STATES)
}

#[test]
fn entering_asks_for_one_increment_in_the_configured_scope() {
    #[rustfmt::skip]
    let cases = [
        (json!({ "max_count": 3 }), CounterScope::Run),
        (json!({ "max_count": 3, "scope": "run" }), CounterScope::Run),
        (json!({ "max_count": 3, "scope": "phlo" }), CounterScope::Phlo),
        (json!({ "max_count": "3", "scope": "PHLO" }), CounterScope::Phlo),
    ];
    for (options, scope) in cases {
        let (wait, effects) = enter_and_wait(&counter_phlo(options.clone()), &ctx(json!({})));
        let increment = CounterIncrement {
            scope,
            node_id: NODE_ID.into(),
        };
        assert_eq!(effects, vec![Effect::Counter(increment)], "{options}");
        assert_eq!(wait.on, WaitOn::Counter);
        assert!(wait.variables.is_empty());
        assert_eq!(wait.timeout_secs, 60);
    }
}

#[test]
fn the_count_is_compared_with_max_count() {
    #[rustfmt::skip]
    let cases = [
        // (max_count, count after the increment, state)
        (3, 1, "count_not_reached"),
        (3, 2, "count_not_reached"),
        (3, 3, "count_reached"),
        (3, 4, "count_reached"),
        (3, 1_000, "count_reached"),
        (1, 1, "count_reached"),
        (1, 0, "count_not_reached"),
        (5, -1, "count_not_reached"),
        (1_000_000_000, 999_999_999, "count_not_reached"),
        (1_000_000_000, 1_000_000_000, "count_reached"),
    ];
    for (max_count, count, state) in cases {
        for scope in ["run", "phlo"] {
            let phlo = counter_phlo(json!({ "max_count": max_count, "scope": scope }));
            let step = run(&phlo, &ctx(json!({})), Event::Counter { count });
            let vars = done(&step, state);
            assert_eq!(
                Value::Object(vars),
                json!({ "count": count, "max_count": max_count }),
                "{count}/{max_count} ({scope})"
            );
            assert_eq!(error_of(&step), None);
            assert!(step.effects.is_empty());
        }
    }
}

#[test]
fn a_loop_guard_reaches_the_count_on_the_third_pass() {
    let phlo = counter_phlo(json!({ "max_count": 3 }));
    let states: Vec<String> = (1..=4)
        .map(|count| {
            let step = run(&phlo, &ctx(json!({})), Event::Counter { count });
            match step.outcome {
                phlo_flow::Outcome::Done { state, .. } => state,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        states,
        [
            "count_not_reached",
            "count_not_reached",
            "count_reached",
            "count_reached"
        ]
    );
}

#[test]
fn callbacks_follow_the_events_filter() {
    let url = "https://hooks.example.com/counter";
    let callback = json!({ "url": url, "events": ["count_reached"] });
    let options = json!({ "max_count": 2, "scope": "phlo" });
    let phlo = phlo_with_callback("counter", "Counter_1", options, STATES, callback);
    let (_, effects) = enter_and_wait(&phlo, &ctx(json!({})));
    assert_eq!(
        effects.len(),
        1,
        "only the increment while waiting: {effects:?}"
    );

    let below = run(&phlo, &ctx(json!({})), Event::Counter { count: 1 });
    done(&below, "count_not_reached");
    assert!(
        below.effects.is_empty(),
        "count_not_reached is not subscribed"
    );

    let at = run(&phlo, &ctx(json!({})), Event::Counter { count: 2 });
    let vars = done(&at, "count_reached");
    let expected = expected_callback(url, "POST", "counter", "Counter_1", "count_reached", &vars);
    assert_eq!(at.effects, vec![expected]);
}

#[test]
fn other_events_are_refused() {
    let phlo = counter_phlo(json!({ "max_count": 2 }));
    for (event, name) in [
        (Event::Timeout, "timeout"),
        (Event::PromptFinished, "prompt_finished"),
    ] {
        let err = phlo_flow::step(&phlo, NODE_ID.parse().unwrap(), &ctx(json!({})), &event);
        let expected = EngineError::UnexpectedEvent {
            node: "Counter_1".into(),
            kind: "counter",
            event: name,
        };
        assert_eq!(err, Err(expected));
    }
}

//! Counter: counts how often tokens reach it; `count_reached` once the count is at least `max_count`.
//! Scope `run` (default) counts within one run, the loop guard ("three wrong inputs then hang up");
//! scope `phlo` shares one count across all runs of the PHLO. The runtime increments the count in the
//! step's own transaction, so each applied step counts exactly once.

use serde_json::json;

use crate::effect::{CounterIncrement, CounterScope, Effect};
use crate::engine::{EngineError, Reaction, WaitOn, unexpected};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::vars;
use crate::options::OptionReader;

pub const STATES: &[&str] = &["count_reached", "count_not_reached"];

#[derive(Debug, Clone)]
pub struct Options {
    pub max_count: u64,
    pub scope: CounterScope,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let max_count = r.required_uint(
        "max_count",
        1..=1_000_000_000,
        "how many passes reach the count, at least 1",
    );
    let scope = match r.choice("scope", &["run", "phlo"], "run") {
        "phlo" => CounterScope::Phlo,
        _ => CounterScope::Run,
    };
    Options {
        max_count: max_count.unwrap_or(1),
        scope,
    }
}

pub(crate) fn react(o: &Options, node: &Node, event: &Event) -> Result<Reaction, EngineError> {
    Ok(match event {
        Event::Enter => Reaction::wait(
            WaitOn::Counter,
            60,
            Default::default(),
            vec![Effect::Counter(CounterIncrement {
                scope: o.scope,
                node_id: node.id.to_string(),
            })],
        ),
        Event::Counter { count } => {
            let reached = u64::try_from(*count).is_ok_and(|c| c >= o.max_count);
            let state = if reached {
                "count_reached"
            } else {
                "count_not_reached"
            };
            Reaction::done(
                state,
                vars(json!({ "count": count, "max_count": o.max_count })),
            )
        }
        _ => return Err(unexpected(node, event)),
    })
}

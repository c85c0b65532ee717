//! Liquid compile and render with arbitrary contexts. The input is the template source, then a NUL
//! byte, then the variables as JSON (an object; anything else renders against a fixed context).
//! Beyond not crashing: liquid panics (which the crate turns into errors) count as crashes here, the
//! output cap holds, and rendering is deterministic (up to the order of an object's keys).

#![no_main]

use libfuzzer_sys::fuzz_target;
use phlo_template::{MAX_OUTPUT_LEN, ParseError, RenderError, Template};
use serde_json::{Map, Value, json};

fn fallback() -> Map<String, Value> {
    let value = json!({
        "Start": { "http": { "params": { "name": "Ada", "n": "12" } } },
        "people": [{ "name": "a" }, { "name": "b" }],
        "int": 7,
        "text": "hello, world",
        "nil": null,
    });
    value.as_object().cloned().unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let (source, context) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let globals = match serde_json::from_slice::<Value>(context) {
        Ok(Value::Object(map)) => map,
        _ => fallback(),
    };
    let template = match Template::parse(source) {
        Ok(t) => t,
        Err(ParseError::Panicked(p)) => panic!("liquid's parser panicked: {p}"),
        Err(_) => return,
    };
    let first = template.render(&globals);
    match &first {
        Ok(text) => assert!(text.len() <= MAX_OUTPUT_LEN),
        Err(RenderError::Panicked(p)) => panic!("liquid's renderer panicked: {p}"),
        Err(_) => {}
    }
    // A second render must agree, except when the first ran out of time (the only nondeterministic
    // limit). liquid prints whole objects in hash order (see the template crate's
    // `fuzz_regression_objects_render_the_same_keys_and_values`), so outputs are compared as multisets
    // of characters: everything else about them must be equal.
    let timed_out = |r: &Result<String, RenderError>| {
        matches!(r, Err(RenderError::Budget(phlo_template::Exceeded::Time { .. })))
    };
    let second = template.render(&globals);
    if !timed_out(&first) && !timed_out(&second) {
        let canonical = |r: Result<String, RenderError>| {
            r.map(|text| {
                let mut chars: Vec<char> = text.chars().collect();
                chars.sort_unstable();
                chars
            })
        };
        assert_eq!(canonical(first), canonical(second), "non-deterministic render");
    }
});

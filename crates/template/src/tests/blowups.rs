//! Each way a small template can ask for unbounded CPU or memory, and the
//! budget error that stops it. None of these may allocate what they ask for.

use serde_json::json;

use super::{render, render_err};
use crate::*;

fn render_with(source: &str, globals: serde_json::Value) -> Result<String, RenderError> {
    let Json::Object(map) = globals else {
        unreachable!()
    };
    Template::parse(source).unwrap().render(&map)
}

fn budget_err(source: &str) -> Exceeded {
    match render_err(source) {
        RenderError::Budget(e) => e,
        other => panic!("{source}: expected a budget error, got {other:?}"),
    }
}

#[test]
fn a_huge_range_is_not_built() {
    assert_eq!(
        budget_err("{% for i in (1..100000000) %}{% endfor %}"),
        Exceeded::LoopIterations {
            limit: MAX_LOOP_ITERATIONS
        }
    );
    // Even at the extremes of i64, and with nothing left after `offset`.
    assert!(matches!(
        budget_err("{% for i in (-9223372036854775807..9223372036854775807) %}{% endfor %}"),
        Exceeded::LoopIterations { .. }
    ));
    // Only the items the loop visits count, so `limit` keeps a huge range cheap.
    assert_eq!(
        render("{% for i in (1..100000000) limit: 3 %}{{ i }},{% endfor %}"),
        "1,2,3,"
    );
    assert_eq!(
        render("{% for i in (1..100000000) offset: 99999998 %}{{ i }},{% endfor %}"),
        "99999999,100000000,"
    );
}

#[test]
fn nested_loops_share_one_budget() {
    assert!(matches!(
        budget_err("{% for i in (1..1000) %}{% for j in (1..1000) %}{% endfor %}{% endfor %}"),
        Exceeded::LoopIterations { .. }
    ));
    let at_limit = "{% for i in (1..100) %}{% for j in (1..99) %}{% endfor %}{% endfor %}";
    assert_eq!(render(at_limit), "");
}

#[test]
fn doubling_a_string_stops_at_the_value_cap() {
    let e = budget_err(
        "{% assign x = 'aaaaaaaa' %}{% for i in (1..64) %}{% assign x = x | append: x %}{% endfor %}",
    );
    assert!(
        matches!(e, Exceeded::ValueTooLarge { size, limit: MAX_VALUE_BYTES } if size == 2 * MAX_VALUE_BYTES),
        "{e:?}"
    );
    // The same within one output expression.
    let e = budget_err(
        "{% assign x = 'aaaaaaaa' %}{% for i in (1..64) %}{% capture x %}{{ x }}{{ x }}{% endcapture %}{% endfor %}",
    );
    assert!(matches!(e, Exceeded::ValueTooLarge { .. }), "{e:?}");
}

#[test]
fn replace_and_join_refuse_before_building() {
    let big = "x".repeat(64 * 1024);
    // An empty search inserts the replacement between every character: 64 KiB × 64 KiB.
    let e = render_with("{{ big | replace: '', big }}", json!({ "big": big })).unwrap_err();
    assert!(
        matches!(e, RenderError::Budget(Exceeded::ValueTooLarge { size, .. }) if size > 4_000_000_000),
        "{e:?}"
    );
    let e = render_with("{{ big | split: '' | join: big }}", json!({ "big": big })).unwrap_err();
    assert!(
        matches!(e, RenderError::Budget(Exceeded::ValueTooLarge { .. })),
        "{e:?}"
    );
    // Ordinary uses are untouched.
    assert_eq!(render("{{ 'a-b-c' | replace: '-', '+' }}"), "a+b+c");
    assert_eq!(render("{{ 'abc' | replace: '', '.' }}"), ".a.b.c.");
    assert_eq!(render("{{ Start.list | join: ', ' }}"), "1, 2, 3");
    assert_eq!(render("{{ Start.list | join }}"), "1 2 3");
}

#[test]
fn rebuilding_a_big_value_in_a_loop_runs_out_of_work() {
    let big = "x".repeat(1024 * 1024);
    let e = render_with(
        "{% for i in (1..1000) %}{% assign y = big | upcase %}{% endfor %}",
        json!({ "big": big }),
    )
    .unwrap_err();
    assert_eq!(
        e,
        RenderError::Budget(Exceeded::Work {
            limit: MAX_RENDER_WORK_BYTES
        })
    );
    // Copies count too, not only filters.
    let e = render_with(
        "{% for i in (1..1000) %}{% assign y = big %}{% endfor %}",
        json!({ "big": big }),
    )
    .unwrap_err();
    assert!(
        matches!(e, RenderError::Budget(Exceeded::Work { .. })),
        "{e:?}"
    );
}

#[test]
fn buffering_blocks_are_capped() {
    let big = "x".repeat(1024 * 1024);
    for source in [
        "{% capture c %}{% for i in (1..100) %}{{ big }}{% endfor %}{% endcapture %}",
        "{% ifchanged %}{% for i in (1..100) %}{{ big }}{% endfor %}{% endifchanged %}",
    ] {
        let e = render_with(source, json!({ "big": big })).unwrap_err();
        assert!(
            matches!(e, RenderError::Budget(Exceeded::ValueTooLarge { .. })),
            "{source}: {e:?}"
        );
    }
}

#[test]
fn tablerow_is_refused_at_parse() {
    let e = parse_err_text("{% tablerow i in (1..3) %}{{ i }}{% endtablerow %}");
    assert!(e.contains("`tablerow` is not supported"), "{e}");
}

fn parse_err_text(source: &str) -> String {
    Template::parse(source).expect_err(source).to_string()
}

/// The replaced tags behave as liquid-lib's did.
#[test]
fn replaced_tags_keep_their_behaviour() {
    assert_eq!(
        render(
            "{% for p in people %}{{ forloop.index }}/{{ forloop.length }}:{{ p.name }}{% unless forloop.last %},{% endunless %}{% endfor %}"
        ),
        "1/2:a,2/2:b"
    );
    assert_eq!(
        render("{% for i in (1..3) reversed %}{{ i }}{% endfor %}"),
        "321"
    );
    assert_eq!(
        render("{% for i in (1..5) offset: 1 limit: 2 %}{{ i }}{% endfor %}"),
        "23"
    );
    assert_eq!(
        render("{% for i in Start.empty %}x{% else %}none{% endfor %}"),
        "none"
    );
    assert_eq!(
        render("{% for i in (1..9) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
        "12"
    );
    assert_eq!(
        render("{% for i in (1..4) %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% endfor %}"),
        "134"
    );
    assert_eq!(
        render(
            "{% for i in (1..2) %}{% for j in (1..2) %}{{ forloop.parentloop.index }}{{ j }} {% endfor %}{% endfor %}"
        ),
        "11 12 21 22 "
    );
    assert_eq!(
        render("{% capture c %}[{{ int }}]{% endcapture %}{{ c }}{{ c }}"),
        "[42][42]"
    );
    assert_eq!(
        render(
            "{% for i in (1..4) %}{% ifchanged %}{{ i | divided_by: 2 }}{% endifchanged %}{% endfor %}"
        ),
        "012"
    );
    // liquid-lib padded with nils when `limit` reached past the end; Shopify does not.
    assert_eq!(
        render(
            "{% for p in people offset: 1 limit: 5 %}[{{ p.name }}]{{ forloop.length }}{% endfor %}"
        ),
        "[b]1"
    );
    assert_eq!(render("{% for i in (1..3) limit: -1 %}x{% endfor %}"), "");
    assert_eq!(render("{% assign n = int | plus: 1 %}{{ n }}"), "43");
    assert_eq!(render("{% for i in (3..1) %}x{% endfor %}"), "");
}

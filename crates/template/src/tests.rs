use proptest::prelude::*;
use serde_json::json;

use super::*;

fn globals() -> Map<String, Json> {
    let value = json!({
        "Start": {
            "http": { "params": { "name": "Ada", "age": 36 } },
            "vars": { "flag": true },
            "list": [1, 2, 3],
            "empty": [],
            "created": "2024-01-02T03:04:05Z",
        },
        "Send_SMS_1": { "to.iso2": "US", "to": "+14155550100" },
        "int": 42,
        "float": 1.5,
        "whole_float": 3.0,
        "big": 18446744073709551615u64,
        "yes": true,
        "no": false,
        "null": null,
        "text": "hello",
        "people": [{ "name": "a" }, { "name": "b" }],
    });
    match value {
        Json::Object(map) => map,
        _ => unreachable!(),
    }
}

fn render(source: &str) -> String {
    let template = Template::parse(source).unwrap_or_else(|e| panic!("parse {source:?}: {e}"));
    template
        .render(&globals())
        .unwrap_or_else(|e| panic!("render {source:?}: {e}"))
}

fn render_err(source: &str) -> RenderError {
    Template::parse(source)
        .unwrap_or_else(|e| panic!("parse {source:?}: {e}"))
        .render(&globals())
        .expect_err(source)
}

fn parse_err(source: &str) -> ParseError {
    Template::parse(source).expect_err(source)
}

#[test]
fn missing_variable_is_empty() {
    assert_eq!(render("[{{ missing }}]"), "[]");
}

#[test]
fn missing_variable_takes_default() {
    assert_eq!(render("{{ missing | default: 'dflt' }}"), "dflt");
}

#[test]
fn nested_miss_takes_default() {
    assert_eq!(render("{{ Start.nope.deeper | default: 'deep' }}"), "deep");
    assert_eq!(render("[{{ a.b.c.d }}]"), "[]");
    assert_eq!(render("[{{ Start.http.params.nope.x }}]"), "[]");
}

#[test]
fn missing_is_falsy_in_if() {
    assert_eq!(
        render("{% if Start.vars.nope %}x{% else %}y{% endif %}"),
        "y"
    );
    assert_eq!(
        render("{% if Start.vars.flag %}x{% else %}y{% endif %}"),
        "x"
    );
    assert_eq!(render("{% unless missing.x %}u{% endunless %}"), "u");
}

#[test]
fn missing_equals_nil() {
    assert_eq!(render("{% if missing == nil %}t{% endif %}"), "t");
    assert_eq!(render("{% if missing.deep == nil %}t{% endif %}"), "t");
    assert_eq!(render("{% if missing == empty %}t{% endif %}"), "t");
}

#[test]
fn missing_has_size_zero() {
    assert_eq!(render("{{ missing | size }}"), "0");
}

#[test]
fn for_loop_over_global_array() {
    assert_eq!(
        render("{% for i in Start.list %}{{ i }},{% endfor %}"),
        "1,2,3,"
    );
    assert_eq!(
        render("{% for p in people %}{{ forloop.index }}={{ p.name }} {% endfor %}"),
        "1=a 2=b "
    );
    assert_eq!(
        render("{% for i in missing %}x{% else %}none{% endfor %}"),
        "none"
    );
    assert_eq!(render("{% for i in (1..3) %}{{ i }}{% endfor %}"), "123");
}

#[test]
fn nested_object_value_renders() {
    assert_eq!(render("Hi {{ Start.http.params.name }}"), "Hi Ada");
    assert_eq!(render("{{ Start.http.params.age | plus: 1 }}"), "37");
}

#[test]
fn bracket_access_with_dotted_key() {
    assert_eq!(render(r#"{{ Send_SMS_1["to.iso2"] }}"#), "US");
    assert_eq!(render("{{ Send_SMS_1['to'] }}"), "+14155550100");
}

#[test]
fn scalars_render_like_liquid() {
    assert_eq!(render("{{ int }}"), "42");
    assert_eq!(render("{{ float }}"), "1.5");
    assert_eq!(render("{{ whole_float }}"), "3");
    assert_eq!(render("{{ big }}"), "18446744073709552000");
    assert_eq!(render("{{ yes }}/{{ no }}"), "true/false");
    assert_eq!(render("[{{ null }}]"), "[]");
    assert_eq!(render("{{ null | default: 'n' }}"), "n");
}

#[test]
fn array_and_size_lookups() {
    assert_eq!(render("{{ Start.list.size }}"), "3");
    assert_eq!(
        render("{{ Start.list.first }}-{{ Start.list.last }}"),
        "1-3"
    );
    assert_eq!(render("{{ Start.list[-1] }}"), "3");
    assert_eq!(render("[{{ Start.list[10] }}]"), "[]");
    assert_eq!(render("[{{ Start.empty.first }}]"), "[]");
    assert_eq!(render("{{ text.size }}"), "5");
    assert_eq!(render("{{ Start.http.params.size }}"), "2");
    assert_eq!(render("{{ Start.list | join: '+' }}"), "1+2+3");
}

#[test]
fn property_of_scalar_is_empty() {
    assert_eq!(render("[{{ text.first_name }}]"), "[]");
    assert_eq!(render("{{ int.x | default: 'd' }}"), "d");
}

#[test]
fn missing_global_named_size_is_empty() {
    assert_eq!(render("[{{ size }}]"), "[]");
}

#[test]
fn assign_and_capture_still_work() {
    assert_eq!(
        render("{% assign x = Start.http.params.name %}{{ x }}"),
        "Ada"
    );
    assert_eq!(
        render("{% capture c %}{{ int }}!{% endcapture %}{{ c }}"),
        "42!"
    );
    assert_eq!(render("{% assign text = 'shadow' %}{{ text }}"), "shadow");
}

#[test]
fn default_applies_to_empty_and_false() {
    assert_eq!(render("{{ Start.empty | default: 'e' }}"), "e");
    assert_eq!(render("{{ no | default: 'f' }}"), "f");
}

#[test]
fn literals_skip_liquid() {
    let t = Template::parse("+14155550100").unwrap();
    assert_eq!(t.as_literal(), Some("+14155550100"));
    assert_eq!(t.render(&Map::new()).unwrap(), "+14155550100");
    // Half-markup that liquid would also print verbatim.
    let t = Template::parse("a } b {x} %} }} {").unwrap();
    assert_eq!(t.as_literal(), Some("a } b {x} %} }} {"));
    assert_eq!(t.render(&Map::new()).unwrap(), "a } b {x} %} }} {");
    let t = Template::parse("{{ x }}").unwrap();
    assert_eq!(t.as_literal(), None);
    assert_eq!(t.source(), "{{ x }}");
}

#[test]
fn render_errors_are_errors() {
    assert!(matches!(
        render_err("{{ 1 | divided_by: 0 }}"),
        RenderError::Liquid(_)
    ));
    assert!(matches!(
        render_err("{% include 'other' %}"),
        RenderError::Liquid(_)
    ));
    let e = render_err("{{ 1 | divided_by: 0 }}").to_string();
    assert!(!e.contains('\n'), "{e}");
}

#[test]
fn parse_errors_are_errors() {
    for source in [
        "{{ unclosed",
        "{% if %}",
        "{% if x %}",
        "{% nosuchtag %}",
        "{{ x | nosuchfilter }}",
    ] {
        let e = parse_err(source);
        assert!(matches!(e, ParseError::Liquid(_)), "{source}: {e:?}");
        assert!(!e.to_string().contains('\n'), "{e}");
    }
}

#[test]
fn source_size_is_capped() {
    let ok = "x".repeat(MAX_TEMPLATE_LEN);
    assert!(Template::parse(&ok).is_ok());
    let e = parse_err(&"x".repeat(MAX_TEMPLATE_LEN + 1));
    assert_eq!(e.to_string(), "template is 16385 bytes; the limit is 16384");
}

#[test]
fn output_size_is_capped() {
    let at_limit = format!("{{% for i in (1..{}) %}}x{{% endfor %}}", MAX_OUTPUT_LEN);
    assert_eq!(render(&at_limit).len(), MAX_OUTPUT_LEN);
    let over = format!(
        "{{% for i in (1..{}) %}}x{{% endfor %}}",
        MAX_OUTPUT_LEN + 1
    );
    assert_eq!(
        render_err(&over),
        RenderError::OutputTooLong {
            limit: MAX_OUTPUT_LEN
        }
    );
}

/// Each of these recursed past a 2 MiB stack in liquid before `stack.rs`.
/// The caller here has only 256 KiB, so inline work would abort the test.
#[test]
fn deep_nesting_does_not_overflow() {
    let cases = [
        format!("{{{{ {}0{} }}}}", "a[".repeat(5400), "]".repeat(5400)),
        format!("{}x{}", "{%if 1%}".repeat(960), "{%endif%}".repeat(960)),
        format!("{{% if {}1 %}}x{{% endif %}}", "1 or ".repeat(3200)),
        format!("{{% if no %}}{}{{% endif %}}", "{%elsif no%}".repeat(1300)),
        format!(
            "{}x{}",
            "{%capture c%}".repeat(600),
            "{%endcapture%}".repeat(600)
        ),
    ];
    for source in cases {
        let outcome = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let template = Template::parse(&source)?;
                let _ = template.render(&globals());
                Ok::<_, ParseError>(template.clone())
            })
            .unwrap()
            .join()
            .unwrap();
        // Dropping the last clone here must not overflow either.
        drop(outcome.unwrap());
    }
}

#[test]
fn template_is_shareable() {
    fn assert_traits<T: Clone + Send + Sync + fmt::Debug + 'static>() {}
    assert_traits::<Template>();
    let t = Template::parse("{{ int }}").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = t.clone();
            std::thread::spawn(move || t.render(&globals()).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "42");
    }
}

/// Source text made of liquid's own tokens, which reaches far more of the
/// parser than random unicode does.
fn liquid_soup() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "{{",
        "}}",
        "{%",
        "%}",
        "{{-",
        "-}}",
        "|",
        ":",
        ",",
        ".",
        "[",
        "]",
        "(",
        "..",
        ")",
        " ",
        "'",
        "\"",
        "default",
        "size",
        "date",
        "divided_by",
        "if",
        "endif",
        "else",
        "for",
        "in",
        "endfor",
        "assign",
        "=",
        "==",
        "capture",
        "endcapture",
        "raw",
        "endraw",
        "Start",
        "http",
        "params",
        "name",
        "missing",
        "people",
        "int",
        "1",
        "0",
        "-1",
        "nil",
        "true",
        "%Y",
    ]);
    prop::collection::vec(token, 0..24).prop_map(|t| t.concat())
}

/// Objects have at most one key: liquid turns looked-up objects into a
/// `HashMap`, so rendering or iterating a multi-key object has no stable
/// order, and that is liquid's behaviour rather than ours.
fn fuzz_globals() -> Map<String, Json> {
    let value = json!({
        "Start": { "http": { "params": { "name": "Ada" } } },
        "people": [{ "name": "a" }, { "name": "b" }],
        "int": 7,
        "nil": null,
    });
    match value {
        Json::Object(map) => map,
        _ => unreachable!(),
    }
}

fn check_no_panic(source: &str) {
    if let Ok(t) = Template::parse(source) {
        let first = t.render(&fuzz_globals());
        if let Err(RenderError::Panicked(p)) = &first {
            panic!("liquid panicked on {source:?}: {p}");
        }
        assert_eq!(
            first,
            t.render(&fuzz_globals()),
            "non-deterministic: {source:?}"
        );
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(source in "\\PC{0,64}") {
        check_no_panic(&source);
    }

    #[test]
    fn liquid_tokens_never_panic(source in liquid_soup()) {
        check_no_panic(&source);
    }

    #[test]
    fn literals_render_to_themselves(source in "[^{]{0,64}") {
        let t = Template::parse(&source).unwrap();
        prop_assert_eq!(t.as_literal(), Some(source.as_str()));
        prop_assert_eq!(t.render(&globals()).unwrap(), source);
    }
}

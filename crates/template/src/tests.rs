//! Rendering rules, mostly the Shopify-style handling of missing values.

mod blowups;
mod hostile;

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
fn other_stdlib_tags_see_globals() {
    assert_eq!(
        render("{% case Start.http.params.name %}{% when 'Ada' %}hi{% else %}?{% endcase %}"),
        "hi"
    );
    assert_eq!(
        render("{% for i in Start.list %}{% cycle 'a', 'b' %}{% endfor %}"),
        "aba"
    );
    assert_eq!(render("{% increment n %}{% increment n %}"), "01");
    assert_eq!(
        render(
            "{% for p in people %}{% for i in Start.list limit: 1 %}{{ forloop.parentloop.index }}{{ p.name }}{% endfor %}{% endfor %}"
        ),
        "1a2b"
    );
    assert_eq!(
        render("{% raw %}{{ missing }}{% endraw %}"),
        "{{ missing }}"
    );
    assert_eq!(render("a{% comment %}{{ x }}{% endcomment %}b"), "ab");
}

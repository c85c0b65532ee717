//! Keeps the user documentation honest: every example PHLO in `docs/examples/` and every complete PHLO
//! in `docs/phlo-format.md` compiles without a single problem, every component and Start trigger has
//! an example, and what the reference says about states, options, problem codes, limits and Liquid is
//! what the code does.
//!
//! The reference is parsed simply, so keep its shapes: a component section is a `### \`kind\` — Title`
//! heading with a `**States:** \`a\`, \`b\`` line (`<path>` stands for states taken from the example's
//! options, e.g. `<allowed_inputs>`), an options table whose rows start with `` | `option` | `` and a
//! `**Example:**` line linking `examples/*.json`; problem codes are the `` | `code` | severity | `` rows
//! of the "Problem codes" section.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use phlo_flow::{Event, Kind, Phlo, Problem, Severity};
use serde_json::{Value, json};

use crate::support::{ctx, done, error_of, phlo_with, run, stopped};

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn reference() -> String {
    read(&docs_dir().join("phlo-format.md"))
}

/// Every `docs/examples/*.json`, by file name, parsed.
fn examples() -> BTreeMap<String, Value> {
    let dir = docs_dir().join("examples");
    let mut out = BTreeMap::new();
    for entry in
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let value = serde_json::from_str(&read(&path))
                .unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
            out.insert(name, value);
        }
    }
    out
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}\n")).collect()
}

/// Compiles a definition and insists on zero problems, warnings included.
fn compile_clean(what: &str, definition: &Value) -> Phlo {
    match phlo_flow::compile(definition) {
        Ok((phlo, warnings)) => {
            assert!(
                warnings.is_empty(),
                "{what} compiles with warnings:\n{}",
                list(&warnings)
            );
            phlo
        }
        Err(problems) => panic!("{what} does not compile:\n{}", list(&problems)),
    }
}

/// The raw JSON nodes of `kind` in a definition.
fn nodes_of(definition: &Value, kind: Kind) -> Vec<&Value> {
    definition["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .filter(|n| n["type"] == kind.as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// One markdown section: its heading (level and text) and the lines up to the next heading.
/// Lines inside code fences never start a section.
struct Section {
    level: usize,
    title: String,
    lines: Vec<String>,
}

fn sections(markdown: &str) -> Vec<Section> {
    let mut out = vec![Section {
        level: 0,
        title: String::new(),
        lines: Vec::new(),
    }];
    let mut in_fence = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        if !in_fence && level > 0 && line[level..].starts_with(' ') {
            out.push(Section {
                level,
                title: line[level..].trim().to_owned(),
                lines: Vec::new(),
            });
        } else if let Some(current) = out.last_mut() {
            current.lines.push(line.to_owned());
        }
    }
    out
}

fn section<'a>(all: &'a [Section], title: &str) -> &'a Section {
    all.iter()
        .find(|s| s.title == title)
        .unwrap_or_else(|| panic!("the reference has no section `{title}`"))
}

/// The text between each pair of backticks on a line.
fn code_spans(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The ```json blocks of a markdown text, in order.
fn json_blocks(lines: &[String]) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in lines {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence.starts_with("```json") => current = Some(String::new()),
            Some(_) if fence.starts_with("```") => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// The component sections of the reference: the `### \`kind\` — Title` sections under `## Components`.
fn component_sections(all: &[Section]) -> BTreeMap<Kind, &Section> {
    let mut out = BTreeMap::new();
    let mut in_components = false;
    for s in all {
        if s.level <= 2 {
            in_components = s.title == "Components";
            continue;
        }
        if !(in_components && s.level == 3) {
            continue;
        }
        let name = code_spans(&s.title).into_iter().next().unwrap_or_default();
        let kind = Kind::parse(&name)
            .unwrap_or_else(|| panic!("section `{}` names no component", s.title));
        assert!(
            out.insert(kind, s).is_none(),
            "two sections document `{kind}`"
        );
    }
    out
}

/// The line of a section that starts with `prefix` (e.g. `**States:**`); exactly one must exist.
fn tagged_line<'a>(s: &'a Section, prefix: &str) -> &'a str {
    let found: Vec<&String> = s.lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(
        found.len(),
        1,
        "section `{}` needs exactly one `{prefix}` line",
        s.title
    );
    found[0]
}

/// The example files linked from a section's `**Example:**` line.
fn linked_examples(s: &Section) -> Vec<String> {
    let line = tagged_line(s, "**Example:**");
    let links: Vec<String> = line
        .split("](examples/")
        .skip(1)
        .map(|rest| rest.split(')').next().unwrap_or_default().to_owned())
        .collect();
    assert!(
        !links.is_empty(),
        "section `{}` links no example: {line}",
        s.title
    );
    links
}

/// Values at a simple path in a node's options: `allowed_inputs`, `conditions[].alias` (`[]`: each item).
fn resolve(options: &Value, path: &str) -> Vec<String> {
    let mut current = vec![options];
    for segment in path.split('.') {
        let (key, each) = match segment.strip_suffix("[]") {
            Some(key) => (key, true),
            None => (segment, false),
        };
        current = current
            .into_iter()
            .filter_map(|v| v.get(key))
            .flat_map(|v| {
                if each {
                    v.as_array().map(|a| a.iter().collect()).unwrap_or_default()
                } else {
                    vec![v]
                }
            })
            .collect();
    }
    // A path that ends at a list stands for its items (`allowed_inputs`).
    current
        .into_iter()
        .flat_map(|v| {
            v.as_array()
                .map(|a| a.iter().collect())
                .unwrap_or_else(|| vec![v])
        })
        .map(|v| match v {
            Value::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        })
        .collect()
}

const TRIGGER_EXAMPLES: [&str; 3] = [
    "api_request.json",
    "incoming_call.json",
    "incoming_message.json",
];

#[test]
fn every_example_compiles_without_problems() {
    let examples = examples();
    assert!(
        examples.len() >= 16,
        "expected an example per trigger and component, found {:?}",
        examples.keys()
    );
    for (name, definition) in &examples {
        compile_clean(&format!("docs/examples/{name}"), definition);
    }
}

#[test]
fn every_component_and_start_trigger_has_an_example() {
    let examples = examples();
    let compiled: BTreeMap<&String, Phlo> = examples
        .iter()
        .map(|(n, d)| (n, compile_clean(n, d)))
        .collect();
    for kind in Kind::ALL {
        assert!(
            compiled
                .values()
                .any(|p| p.nodes.values().any(|n| n.kind() == kind)),
            "no example uses a `{kind}` node"
        );
        if kind != Kind::Start {
            let file = format!("{kind}.json");
            let definition = examples
                .get(&file)
                .unwrap_or_else(|| panic!("docs/examples/{file} is missing"));
            assert!(
                !nodes_of(definition, kind).is_empty(),
                "{file} has no `{kind}` node"
            );
        }
    }
    for (file, trigger) in
        TRIGGER_EXAMPLES
            .iter()
            .zip(["api_request", "incoming_call", "incoming_message"])
    {
        let phlo = compiled
            .get(&file.to_string())
            .unwrap_or_else(|| panic!("docs/examples/{file} is missing"));
        let start = phlo.node(phlo.start).unwrap();
        assert!(
            start.transitions.contains_key(trigger),
            "{file} does not follow the `{trigger}` trigger"
        );
    }
}

#[test]
fn examples_readme_lists_every_example() {
    let readme = read(&docs_dir().join("examples/README.md"));
    for name in examples().keys() {
        assert!(
            readme.contains(&format!("({name})")),
            "docs/examples/README.md does not link {name}"
        );
    }
}

#[test]
fn every_json_block_of_the_reference_is_json_and_complete_phlos_compile() {
    let markdown = reference();
    let lines: Vec<String> = markdown.lines().map(str::to_owned).collect();
    let mut complete = 0;
    for (i, block) in json_blocks(&lines).iter().enumerate() {
        let value: Value = serde_json::from_str(block)
            .unwrap_or_else(|e| panic!("json block #{} is not JSON ({e}):\n{block}", i + 1));
        if value.get("nodes").is_some() {
            compile_clean(
                &format!("json block #{} of docs/phlo-format.md", i + 1),
                &value,
            );
            complete += 1;
        }
    }
    assert!(
        complete >= 2,
        "the reference should show complete PHLOs, found {complete}"
    );
}

#[test]
fn reference_states_match_the_code() {
    let markdown = reference();
    let all = sections(&markdown);
    let components = component_sections(&all);
    let examples = examples();
    for kind in Kind::ALL {
        let s = components
            .get(&kind)
            .unwrap_or_else(|| panic!("the reference has no section for `{kind}`"));
        let documented = code_spans(tagged_line(s, "**States:**"));
        assert!(
            !documented.is_empty(),
            "`{kind}`: the States line lists nothing"
        );
        for file in linked_examples(s) {
            let definition = examples
                .get(&file)
                .unwrap_or_else(|| panic!("`{kind}` links a missing example {file}"));
            let phlo = compile_clean(&file, definition);
            let raw = nodes_of(definition, kind);
            assert!(
                !raw.is_empty(),
                "`{kind}` links {file}, which has no `{kind}` node"
            );
            for node in raw {
                let expected: Vec<String> = documented
                    .iter()
                    .flat_map(|state| {
                        match state.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
                            Some(path) => resolve(&node["options"], path),
                            None => vec![state.clone()],
                        }
                    })
                    .collect();
                let id = node["node_id"].as_str().unwrap().parse().unwrap();
                let actual = phlo.node(id).unwrap().component.states();
                assert_eq!(
                    actual, expected,
                    "`{kind}` node {} of {file}: the documented states differ",
                    node["name"]
                );
            }
        }
    }
}

#[test]
fn reference_documents_every_option_the_examples_use() {
    let markdown = reference();
    let all = sections(&markdown);
    let components = component_sections(&all);
    for (file, definition) in examples() {
        for kind in Kind::ALL {
            let s = components[&kind];
            let documented: BTreeSet<String> = s
                .lines
                .iter()
                .filter(|l| l.starts_with("| `"))
                .filter_map(|l| code_spans(l).into_iter().next())
                .collect();
            for node in nodes_of(&definition, kind) {
                for key in node["options"]
                    .as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                {
                    assert!(
                        documented.contains(key),
                        "{file} uses option `{key}` of `{kind}`, which its section does not list"
                    );
                }
            }
        }
    }
}

/// The code of every problem the source can emit, with its severity: the second-to-last argument of
/// `.error(..)`, `.warning(..)`, `check_literal(..)` and `.checked_list(..)` calls, and `code: "..."` fields.
fn emitted_codes() -> BTreeMap<String, Severity> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    let mut codes = BTreeMap::new();
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = read(&path);
        for (call, severity) in [
            (".error(", Severity::Error),
            (".warning(", Severity::Warning),
            ("check_literal(", Severity::Error),
            (".checked_list(", Severity::Error),
        ] {
            for (at, _) in text.match_indices(call) {
                if text[..at].ends_with("fn ") {
                    continue;
                }
                let args = call_args(&text[at + call.len()..]);
                if let Some(code) = args
                    .len()
                    .checked_sub(2)
                    .and_then(|i| snake_literal(&args[i]))
                {
                    codes.insert(code, severity);
                }
            }
        }
        for (at, _) in text.match_indices("code: \"") {
            let rest = &text[at + "code: ".len()..];
            let literal = rest.split_inclusive('"').take(2).collect::<String>();
            if let Some(code) = snake_literal(&literal) {
                codes.insert(code, Severity::Error);
            }
        }
    }
    codes
}

/// The top-level arguments of a call, given the text after its opening parenthesis.
fn call_args(text: &str) -> Vec<String> {
    let mut args = vec![String::new()];
    let mut depth = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let arg = args.last_mut().unwrap();
                arg.push(c);
                while let Some(s) = chars.next() {
                    arg.push(s);
                    if s == '\\' {
                        arg.extend(chars.next());
                    } else if s == '"' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                depth += 1;
                args.last_mut().unwrap().push(c);
            }
            ')' | ']' | '}' if depth == 0 => break,
            ')' | ']' | '}' => {
                depth -= 1;
                args.last_mut().unwrap().push(c);
            }
            ',' if depth == 0 => args.push(String::new()),
            _ => args.last_mut().unwrap().push(c),
        }
    }
    args.into_iter()
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect()
}

/// `"snake_case"` → `snake_case`; anything else (a variable, a message) → None.
fn snake_literal(arg: &str) -> Option<String> {
    let inner = arg.strip_prefix('"')?.strip_suffix('"')?;
    let valid = inner.starts_with(|c: char| c.is_ascii_lowercase())
        && inner.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    valid.then(|| inner.to_owned())
}

#[test]
fn reference_lists_every_problem_code_the_code_emits() {
    let emitted = emitted_codes();
    for sure in [
        "invalid_json",
        "missing_option",
        "unknown_option",
        "out_of_range",
        "invalid_phone",
        "unreachable",
    ] {
        assert!(
            emitted.contains_key(sure),
            "the source scan missed `{sure}`; found {emitted:?}"
        );
    }
    let markdown = reference();
    let all = sections(&markdown);
    let documented: BTreeMap<String, String> = section(&all, "Problem codes")
        .lines
        .iter()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect();
    for (code, severity) in &emitted {
        let expected = match severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match documented.get(code) {
            Some(doc) => assert_eq!(
                doc, expected,
                "`{code}` is documented as {doc} but is a {expected}"
            ),
            None => panic!(
                "the code emits `{code}` ({expected}), which the Problem codes table does not list"
            ),
        }
    }
    for code in documented.keys() {
        assert!(
            emitted.contains_key(code),
            "the Problem codes table lists `{code}`, which the code never emits"
        );
    }
}

#[test]
fn the_validation_example_reports_the_documented_problems() {
    let markdown = reference();
    let all = sections(&markdown);
    let validation = section(&all, "Validation");
    let blocks = json_blocks(&validation.lines);
    let node: Value =
        serde_json::from_str(blocks.first().expect("the Validation section shows a node")).unwrap();
    let documented: BTreeSet<(String, String)> = validation
        .lines
        .iter()
        .filter(|l| l.starts_with("- `") && l.contains("` at `"))
        .map(|l| {
            let spans = code_spans(l);
            (spans[0].clone(), spans[1].clone())
        })
        .collect();
    assert!(
        !documented.is_empty(),
        "the Validation section lists no problems for its example"
    );
    let definition = json!({
        "name": "validation example",
        "nodes": [
            { "node_id": "11111111-1111-4111-8111-000000000001", "name": "Start", "type": "start",
              "transitions": { "api_request": node["node_id"] } },
            node,
        ]
    });
    let reported: BTreeSet<(String, String)> = phlo_flow::validate(&definition)
        .into_iter()
        .map(|p| (p.code, p.field))
        .collect();
    assert_eq!(reported, documented, "the Validation section's example");
}

#[test]
fn reference_limits_match_the_code() {
    let markdown = reference();
    let all = sections(&markdown);
    let limits = section(&all, "Limits").lines.join("\n");
    let numbers = [
        ("MAX_NODES", phlo_flow::MAX_NODES as u64),
        ("MAX_NAME_LEN", phlo_flow::MAX_NAME_LEN as u64),
        ("MAX_RECIPIENTS", phlo_flow::nodes::MAX_RECIPIENTS as u64),
        ("CARRIER_GRACE_SECS", phlo_flow::nodes::CARRIER_GRACE_SECS),
        ("MAX_PLAY_SECS", phlo_flow::nodes::play_audio::MAX_PLAY_SECS),
        ("MAX_TEMPLATE_LEN", phlo_template::MAX_TEMPLATE_LEN as u64),
        ("MAX_OUTPUT_LEN", phlo_template::MAX_OUTPUT_LEN as u64),
        ("MAX_LOOP_ITERATIONS", phlo_template::MAX_LOOP_ITERATIONS),
        (
            "MAX_REGEX_PATTERN_LEN",
            phlo_flow::condition::MAX_REGEX_PATTERN_LEN as u64,
        ),
        ("MAX_JSON_DEPTH", phlo_flow::limits::MAX_JSON_DEPTH as u64),
    ];
    for (name, value) in numbers {
        let found = limits
            .split(|c: char| !c.is_ascii_digit())
            .any(|word| word == value.to_string());
        assert!(
            found,
            "the Limits section does not mention {name} = {value}"
        );
    }
    assert_eq!(
        phlo_flow::nodes::call_forward::MAX_CALL_SECS,
        4 * 3600,
        "the Limits section says 4 hours"
    );
    assert_eq!(
        phlo_flow::condition::MAX_REGEX_BYTES,
        1 << 20,
        "the Limits section says 1 MiB"
    );
    assert_eq!(
        (
            phlo_template::MAX_VALUE_BYTES,
            phlo_template::MAX_RENDER_WORK_BYTES,
            phlo_template::MAX_RENDER_TIME.as_secs(),
            phlo_flow::limits::MAX_RESPONSE_HEADER_BYTES,
        ),
        (16 << 20, 64 << 20, 1, 64 << 10),
        "the Limits section says 16 MiB per value, 64 MiB built, 1 s and 64 KiB of headers"
    );
    assert_eq!(
        phlo_flow::nodes::http_request::DEFAULT_MAX_RESPONSE_BYTES,
        1 << 20,
        "the reference says 1 MiB"
    );
}

/// Renders `template` as a Send SMS message with the given globals.
fn render(template: &str, globals: &Value) -> String {
    let phlo = phlo_with(
        "send_sms",
        "Send_SMS_1",
        json!({ "from": "+14155550100", "to": "+14155550101", "message": template }),
        &["sent", "failed"],
    );
    let step = run(&phlo, &ctx(globals.clone()), Event::Enter);
    match step.effects.first() {
        Some(phlo_flow::Effect::SendSms(sms)) => sms.text.clone(),
        _ => panic!("`{template}` did not render: {:?}", error_of(&step)),
    }
}

#[test]
fn liquid_behaves_as_the_reference_says() {
    let globals = json!({
        "Start": { "http": { "params": { "order_id": "A-17" } }, "request": { "params": { "order_id": "A-17" } } },
        "Send_SMS_1": { "to.iso2": "US" },
        "HTTP_Request_1": { "response": { "body": { "order": { "id": 42 }, "items": [{ "sku": "A1" }, { "sku": "B2" }] } } },
    });
    let cases = [
        (
            "{{Start.http.params.order_id}}/{{Start.request.params.order_id}}",
            "A-17/A-17",
        ),
        (r#"{{Send_SMS_1["to.iso2"]}}"#, "US"),
        ("{{HTTP_Request_1.response.body.order.id}}", "42"),
        (
            "{{HTTP_Request_1.response.body.items[0].sku}} {{HTTP_Request_1.response.body.items.first.sku}} {{HTTP_Request_1.response.body.items.size}}",
            "A1 A1 2",
        ),
        ("[{{Nope.x.y}}]", "[]"),
        ("{{Nope.x | default: 'n/a'}}", "n/a"),
        (
            "{{'2025-03-07T14:30:00-08:00' | date: '%A %-d %B'}}",
            "Friday 7 March",
        ),
        ("{{'not a date' | date: '%Y'}}", "not a date"),
    ];
    for (template, expected) in cases {
        assert_eq!(render(template, &globals), expected, "{template}");
    }

    // A render error: the failure state where the component has one, else the token ends.
    let broken = "{{HTTP_Request_1.response.body.items.nope}}";
    let sms = phlo_with(
        "send_sms",
        "Send_SMS_1",
        json!({ "from": "+14155550100", "to": "+14155550101", "message": broken }),
        &["sent", "failed"],
    );
    let step = run(&sms, &ctx(globals.clone()), Event::Enter);
    done(&step, "failed");
    assert!(error_of(&step).is_some(), "the reason is recorded");
    let branch = phlo_with(
        "branch",
        "Branch_1",
        json!({ "lhs": broken, "conditions": [{ "alias": "yes", "operation": "is_not_empty" }] }),
        &["yes", "no_match"],
    );
    stopped(&run(&branch, &ctx(globals), Event::Enter));

    // Templates are checked when the PHLO is saved.
    for bad in [
        "{{ x | no_such_filter }}",
        "{{ x | date: '%Q' }}",
        "Hi {{Start.http.params.name",
    ] {
        let definition = json!({
            "name": "t",
            "nodes": [
                { "node_id": "11111111-1111-4111-8111-000000000001", "name": "Start", "type": "start",
                  "transitions": { "api_request": "11111111-1111-4111-8111-000000000002" } },
                { "node_id": "11111111-1111-4111-8111-000000000002", "name": "Send_SMS_1", "type": "send_sms",
                  "options": { "from": "+14155550100", "to": "+14155550101", "message": bad } },
            ]
        });
        let codes: Vec<String> = phlo_flow::validate(&definition)
            .into_iter()
            .map(|p| p.code)
            .collect();
        assert_eq!(codes, ["template_syntax"], "{bad}");
    }
}

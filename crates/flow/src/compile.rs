//! Turns a definition (JSON) into a [`Phlo`], reporting every problem at once: the shape of the
//! document, each node's options, and the graph (one Start, unique ids and names, transitions that name
//! real states and real nodes, unreachable nodes as warnings).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{Map, Value};

use crate::model::{CallbackConfig, Kind, Node, NodeId, Phlo};
use crate::nodes::Component;
use crate::options::{OptionReader, check_url, kind};
use crate::problem::{Place, Problem, Problems, Severity};

/// The name under which Liquid sees the Start node's variables, whatever the node is called.
pub const START_NAME: &str = "Start";
/// Most nodes one PHLO may have.
pub const MAX_NODES: usize = 500;
/// Longest node name; names are Liquid identifiers (`{{Send_SMS_1.status}}`).
pub const MAX_NAME_LEN: usize = 64;

const TOP_FIELDS: &[&str] = &["name", "description", "nodes"];
const NODE_FIELDS: &[&str] = &[
    "node_id",
    "name",
    "type",
    "options",
    "transitions",
    "callback",
    "description",
];

/// Compiles a definition; on success also returns the warnings.
pub fn compile(definition: &Value) -> Result<(Phlo, Vec<Problem>), Vec<Problem>> {
    let mut problems = Problems::default();
    let phlo = build(definition, &mut problems);
    match phlo {
        Some(phlo) if !problems.has_errors() => Ok((phlo, problems.into_vec())),
        _ => Err(problems.into_vec()),
    }
}

/// Every problem of a definition, errors and warnings.
pub fn validate(definition: &Value) -> Vec<Problem> {
    match compile(definition) {
        Ok((_, warnings)) => warnings,
        Err(problems) => problems,
    }
}

/// Parses JSON text first; a syntax error is one problem with its line and column.
pub fn compile_str(json: &str) -> Result<(Phlo, Vec<Problem>), Vec<Problem>> {
    match serde_json::from_str::<Value>(json) {
        Ok(v) => compile(&v),
        Err(e) => Err(vec![Problem {
            severity: Severity::Error,
            code: "invalid_json".into(),
            node_id: None,
            node_name: None,
            field: "$".into(),
            message: format!("the definition is not valid JSON: {e}"),
        }]),
    }
}

struct Parsed {
    place: Place,
    prefix: String,
    id: Option<NodeId>,
    name: Option<String>,
    component: Option<Component>,
    transitions: Vec<(String, Value)>,
    callback: Option<CallbackConfig>,
}

fn build(definition: &Value, problems: &mut Problems) -> Option<Phlo> {
    let top = Place::default();
    let Value::Object(map) = definition else {
        problems.error(
            &top,
            "$",
            "wrong_type",
            format!("expected a PHLO object, found {}", kind(definition)),
        );
        return None;
    };
    unknown_fields(problems, &top, "", map, TOP_FIELDS);
    let name = match map.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.trim().len() <= 200 => {
            s.trim().to_owned()
        }
        Some(Value::String(_)) => {
            problems.error(
                &top,
                "name",
                "invalid_value",
                "the PHLO name must be 1 to 200 characters",
            );
            String::new()
        }
        Some(other) => {
            problems.error(
                &top,
                "name",
                "wrong_type",
                format!("expected a string, found {}", kind(other)),
            );
            String::new()
        }
        None => {
            problems.error(
                &top,
                "name",
                "missing_field",
                "`name` is required: give the PHLO a name",
            );
            String::new()
        }
    };
    let description = map
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if map
        .get("description")
        .is_some_and(|d| !d.is_string() && !d.is_null())
    {
        problems.error(&top, "description", "wrong_type", "expected a string");
    }
    let nodes = match map.get("nodes") {
        Some(Value::Array(nodes)) => nodes,
        Some(other) => {
            problems.error(
                &top,
                "nodes",
                "wrong_type",
                format!("expected a list of nodes, found {}", kind(other)),
            );
            return None;
        }
        None => {
            problems.error(
                &top,
                "nodes",
                "missing_field",
                "`nodes` is required: a PHLO needs at least a Start node",
            );
            return None;
        }
    };
    if nodes.len() > MAX_NODES {
        problems.error(
            &top,
            "nodes",
            "too_large",
            format!("{} nodes; the limit is {MAX_NODES}", nodes.len()),
        );
        return None;
    }
    let parsed: Vec<Parsed> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| parse_node(i, n, problems))
        .collect();
    graph(name, description, parsed, problems)
}

fn parse_node(index: usize, value: &Value, problems: &mut Problems) -> Parsed {
    let mut place = Place::default();
    let prefix = format!("nodes[{index}].");
    let mut out = Parsed {
        place: place.clone(),
        prefix: prefix.clone(),
        id: None,
        name: None,
        component: None,
        transitions: Vec::new(),
        callback: None,
    };
    let Value::Object(map) = value else {
        problems.error(
            &place,
            &format!("nodes[{index}]"),
            "wrong_type",
            format!("expected a node object, found {}", kind(value)),
        );
        return out;
    };
    place.node_id = map
        .get("node_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    place.node_name = map.get("name").and_then(Value::as_str).map(str::to_owned);
    // Once a node has an id, problems are located by it; before that, by its position.
    let prefix = if place.node_id.is_some() {
        String::new()
    } else {
        prefix
    };
    let at = |f: &str| format!("{prefix}{f}");
    unknown_fields(problems, &place, &prefix, map, NODE_FIELDS);

    match map.get("node_id") {
        Some(Value::String(s)) => match s.parse::<NodeId>() {
            Ok(id) => out.id = Some(id),
            Err(_) => problems.error(&place, &at("node_id"), "invalid_value", format!("`{s}` is not a UUID: node ids are UUIDs, e.g. 6f1c1f8e-8b0a-4c39-9f0e-0c7b4a1d2e3f")),
        },
        Some(other) => problems.error(&place, &at("node_id"), "wrong_type", format!("expected a UUID string, found {}", kind(other))),
        None => problems.error(&place, &at("node_id"), "missing_field", "`node_id` is required: give the node a UUID"),
    }
    match map.get("name") {
        Some(Value::String(s)) => match check_name(s) {
            Ok(()) => out.name = Some(s.clone()),
            Err(msg) => problems.error(&place, &at("name"), "invalid_value", msg),
        },
        Some(other) => problems.error(
            &place,
            &at("name"),
            "wrong_type",
            format!("expected a string, found {}", kind(other)),
        ),
        None => problems.error(
            &place,
            &at("name"),
            "missing_field",
            "`name` is required: Liquid refers to the node by it",
        ),
    }
    let kind_found = match map.get("type") {
        Some(Value::String(s)) => match Kind::parse(s) {
            Some(k) => Some(k),
            None => {
                let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                problems.error(
                    &place,
                    &at("type"),
                    "unknown_type",
                    format!("`{s}` is not a component: use one of {}", all.join(", ")),
                );
                None
            }
        },
        Some(other) => {
            problems.error(
                &place,
                &at("type"),
                "wrong_type",
                format!("expected a component name, found {}", kind(other)),
            );
            None
        }
        None => {
            problems.error(
                &place,
                &at("type"),
                "missing_field",
                "`type` is required, e.g. send_sms",
            );
            None
        }
    };
    let empty = Map::new();
    let options = match map.get("options") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(o)) => o,
        Some(other) => {
            problems.error(
                &place,
                &at("options"),
                "wrong_type",
                format!("expected an object, found {}", kind(other)),
            );
            &empty
        }
    };
    if let Some(k) = kind_found {
        let mut reader = OptionReader::new(options, &at("options"), &place, problems);
        let component = Component::parse(k, &mut reader);
        reader.finish();
        out.component = Some(component);
    }
    match map.get("transitions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(t)) => {
            out.transitions = t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        }
        Some(other) => problems.error(
            &place,
            &at("transitions"),
            "wrong_type",
            format!(
                "expected an object of state → node_id, found {}",
                kind(other)
            ),
        ),
    }
    if let Some(value) = map.get("callback").filter(|v| !v.is_null()) {
        out.callback = parse_callback(
            value,
            out.component.as_ref(),
            &place,
            &at("callback"),
            problems,
        );
    }
    out.place = place;
    out.prefix = prefix;
    out
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if first_ok
        && name.len() <= MAX_NAME_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        let suggestion: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Err(format!(
            "`{name}` cannot be used in Liquid: use up to {MAX_NAME_LEN} letters, digits and underscores, starting with a letter (e.g. `{}`)",
            suggestion.trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        ))
    }
}

fn parse_callback(
    value: &Value,
    component: Option<&Component>,
    place: &Place,
    field: &str,
    problems: &mut Problems,
) -> Option<CallbackConfig> {
    let Value::Object(map) = value else {
        problems.error(
            place,
            field,
            "wrong_type",
            format!("expected an object with `url`, found {}", kind(value)),
        );
        return None;
    };
    unknown_fields(
        problems,
        place,
        &format!("{field}."),
        map,
        &["url", "method", "events"],
    );
    let url = match map.get("url").filter(|v| !v.is_null()) {
        Some(Value::String(u)) => {
            if let Err(msg) = check_url(u) {
                problems.error(place, &format!("{field}.url"), "invalid_url", msg);
            }
            u.to_owned()
        }
        Some(other) => {
            problems.error(
                place,
                &format!("{field}.url"),
                "wrong_type",
                format!("expected a URL string, found {}", kind(other)),
            );
            String::new()
        }
        None => {
            problems.error(
                place,
                &format!("{field}.url"),
                "missing_field",
                "`url` is required: where to post the node's variables",
            );
            String::new()
        }
    };
    let method = match map.get("method").filter(|v| !v.is_null()).map(|m| {
        m.as_str()
            .map(str::to_ascii_uppercase)
            .unwrap_or_else(|| m.to_string())
    }) {
        None => "POST".to_owned(),
        Some(m) if m == "POST" || m == "GET" => m,
        Some(m) => {
            problems.error(
                place,
                &format!("{field}.method"),
                "invalid_value",
                format!("`{m}` is not supported: use POST or GET"),
            );
            "POST".to_owned()
        }
    };
    let mut events = Vec::new();
    match map.get("events") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let known = component.map(Component::callback_events);
            for (i, item) in items.iter().enumerate() {
                let f = format!("{field}.events[{i}]");
                match item.as_str() {
                    Some(e) if known.as_ref().is_none_or(|k| k.iter().any(|s| s == e)) => {
                        events.push(e.to_owned())
                    }
                    Some(e) => problems.error(
                        place,
                        &f,
                        "unknown_state",
                        format!(
                            "`{e}` is not an event of this node: use one of {}",
                            known.clone().unwrap_or_default().join(", ")
                        ),
                    ),
                    None => problems.error(place, &f, "wrong_type", "expected a state name"),
                }
            }
        }
        Some(other) => problems.error(
            place,
            &format!("{field}.events"),
            "wrong_type",
            format!("expected a list of states, found {}", kind(other)),
        ),
    }
    Some(CallbackConfig {
        url,
        method,
        events,
    })
}

fn unknown_fields(
    problems: &mut Problems,
    place: &Place,
    prefix: &str,
    map: &Map<String, Value>,
    known: &[&str],
) {
    for key in map.keys().filter(|k| !known.contains(&k.as_str())) {
        problems.error(
            place,
            &format!("{prefix}{key}"),
            "unknown_field",
            format!(
                "`{key}` is not a field here; known fields: {}",
                known.join(", ")
            ),
        );
    }
}

fn graph(
    name: String,
    description: Option<String>,
    parsed: Vec<Parsed>,
    problems: &mut Problems,
) -> Option<Phlo> {
    let top = Place::default();
    let mut by_id: HashMap<NodeId, usize> = HashMap::new();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, p) in parsed.iter().enumerate() {
        if let Some(id) = p.id
            && let Some(first) = by_id.insert(id, i)
        {
            by_id.insert(id, first);
            problems.error(
                &p.place,
                &format!("{}node_id", p.prefix),
                "duplicate_node_id",
                format!(
                    "node_id {id} is already used by node {}: node ids must be unique",
                    parsed[first].name.as_deref().unwrap_or("?")
                ),
            );
        }
        if let Some(n) = p.name.as_deref()
            && let Some(first) = by_name.insert(n, i)
        {
            by_name.insert(n, first);
            problems.error(&p.place, &format!("{}name", p.prefix), "duplicate_name", format!("the name `{n}` is already used by node {}: names must be unique because Liquid refers to nodes by name", parsed[first].place.node_id.as_deref().unwrap_or("?")));
        }
    }
    let starts: Vec<&Parsed> = parsed
        .iter()
        .filter(|p| {
            p.component
                .as_ref()
                .is_some_and(|c| c.kind() == Kind::Start)
        })
        .collect();
    match starts.len() {
        0 => problems.error(
            &top,
            "nodes",
            "no_start",
            "a PHLO needs exactly one node of type `start`; add one",
        ),
        1 => {}
        _ => {
            for extra in &starts[1..] {
                problems.error(
                    &extra.place,
                    &format!("{}type", extra.prefix),
                    "several_starts",
                    "a PHLO has exactly one Start node: remove this one or change its type",
                );
            }
        }
    }
    let start_id = starts.first().and_then(|s| s.id);
    // Liquid reaches the trigger as `{{Start.…}}` whatever the Start node is called, so no other node
    // may take that name.
    for p in &parsed {
        let is_start = p
            .component
            .as_ref()
            .is_some_and(|c| c.kind() == Kind::Start);
        if !is_start && p.name.as_deref() == Some(START_NAME) {
            problems.error(
                &p.place,
                &format!("{}name", p.prefix),
                "invalid_value",
                "`Start` is reserved for the Start node (Liquid reads the trigger as {{Start.…}}): rename this node",
            );
        }
    }

    let mut edges: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    for p in &parsed {
        let mut transitions = BTreeMap::new();
        let states = p.component.as_ref().map(Component::states);
        for (state, target) in &p.transitions {
            let f = format!("{}transitions.{state}", p.prefix);
            if let Some(states) = &states
                && !states.contains(state)
            {
                problems.error(
                    &p.place,
                    &f,
                    "unknown_state",
                    format!(
                        "`{state}` is not a state of {}: use one of {}",
                        p.component
                            .as_ref()
                            .map(|c| c.kind().as_str())
                            .unwrap_or_default(),
                        states.join(", ")
                    ),
                );
                continue;
            }
            let target_id = match target {
                Value::Null => continue,
                Value::String(s) => match s.parse::<NodeId>() {
                    Ok(id) => id,
                    Err(_) => {
                        problems.error(
                            &p.place,
                            &f,
                            "missing_node",
                            format!("`{s}` is not a node_id (a UUID of a node in this PHLO)"),
                        );
                        continue;
                    }
                },
                other => {
                    problems.error(
                        &p.place,
                        &f,
                        "wrong_type",
                        format!("expected a node_id, found {}", kind(other)),
                    );
                    continue;
                }
            };
            if !by_id.contains_key(&target_id) {
                problems.error(
                    &p.place,
                    &f,
                    "missing_node",
                    format!(
                        "no node has node_id {target_id}: add it or point this state elsewhere"
                    ),
                );
                continue;
            }
            if Some(target_id) == start_id {
                problems.error(
                    &p.place,
                    &f,
                    "invalid_value",
                    "nothing may lead back to the Start node: a run starts there once",
                );
                continue;
            }
            transitions.insert(state.clone(), target_id);
        }
        if let Some(id) = p.id {
            edges.insert(id, transitions.values().copied().collect());
        }
        if let (Some(id), Some(name), Some(component)) = (p.id, p.name.clone(), p.component.clone())
        {
            nodes.insert(
                id,
                Node {
                    id,
                    name,
                    component,
                    transitions,
                    callback: p.callback.clone(),
                },
            );
        }
    }

    if let Some(start) = start_id {
        let reachable = reachable_from(start, &edges);
        for p in &parsed {
            if let Some(id) = p.id
                && !reachable.contains(&id)
            {
                problems.warning(
                    &p.place,
                    &format!("{}node_id", p.prefix),
                    "unreachable",
                    "no transition leads here from Start, so this node never runs",
                );
            }
        }
    }
    if problems.has_errors() {
        return None;
    }
    Some(Phlo {
        name,
        description,
        nodes,
        start: start_id?,
    })
}

fn reachable_from(start: NodeId, edges: &BTreeMap<NodeId, Vec<NodeId>>) -> BTreeSet<NodeId> {
    let mut seen = BTreeSet::from([start]);
    let mut queue = VecDeque::from([start]);
    while let Some(id) = queue.pop_front() {
        for next in edges.get(&id).into_iter().flatten() {
            if seen.insert(*next) {
                queue.push_back(*next);
            }
        }
    }
    seen
}

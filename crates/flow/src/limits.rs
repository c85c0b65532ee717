//! Limits on input that reaches runs from outside and is not a definition: API payloads (checked by the
//! gateway with these constants) and HTTP Request responses (checked by the node). The definition's own
//! limits live where they are checked: node count in `compile`, recipients in `nodes`, regexes in
//! `condition`, templates in `phlo-template`.

use serde_json::Value;

/// Deepest JSON nesting accepted in an API payload or stored from an HTTP Request response. Real payloads
/// nest a handful of levels; the cap keeps every recursive walk over stored variables (rendering, storing,
/// dropping) far from the stack's limit.
pub const MAX_JSON_DEPTH: usize = 64;

/// Most bytes of response headers (names and values) an HTTP Request node stores as variables.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// The path to the first place where `value` nests deeper than [`MAX_JSON_DEPTH`] (`$.a[0].b…`), if any:
/// a flat object or array is one level. The walk stops at the cap, so a hostile value costs no more than
/// the cap to check.
pub fn too_deep(value: &Value) -> Option<String> {
    fn walk(value: &Value, level: usize, path: &mut String) -> bool {
        let mark = path.len();
        let found = match value {
            Value::Array(_) | Value::Object(_) if level == MAX_JSON_DEPTH => true,
            Value::Array(items) => items.iter().enumerate().any(|(i, item)| {
                path.truncate(mark);
                path.push_str(&format!("[{i}]"));
                walk(item, level + 1, path)
            }),
            Value::Object(map) => map.iter().any(|(k, item)| {
                path.truncate(mark);
                path.push('.');
                path.push_str(k);
                walk(item, level + 1, path)
            }),
            _ => false,
        };
        if !found {
            path.truncate(mark);
        }
        found
    }
    let mut path = String::from("$");
    walk(value, 0, &mut path).then_some(path)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn nested(levels: usize) -> Value {
        (0..levels).fold(json!(1), |v, _| json!({ "a": v }))
    }

    #[test]
    fn the_first_too_deep_place_is_named() {
        assert_eq!(too_deep(&nested(MAX_JSON_DEPTH)), None);
        assert_eq!(too_deep(&json!([[]])), None);
        assert_eq!(
            too_deep(&nested(1000)).map(|p| p.len()),
            Some(1 + 2 * MAX_JSON_DEPTH)
        );
        let path = too_deep(&json!({ "ok": 1, "x": [nested(MAX_JSON_DEPTH)] })).unwrap();
        assert!(path.starts_with("$.x[0].a.a."), "{path}");
        assert_eq!(path.matches(".a").count(), MAX_JSON_DEPTH - 2);
    }
}

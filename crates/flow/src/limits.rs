//! Limits on input that reaches runs from outside and is not a definition: API payloads (checked by the
//! gateway with these constants) and HTTP Request responses (checked by the node). The definition's own
//! limits live where they are checked: node count in `compile`, recipients in `nodes`, regexes in
//! `condition`, templates in `phlo-template`.

use serde_json::Value;

use crate::event::HttpResult;

/// Deepest JSON nesting accepted in an API payload or stored from an HTTP Request response. Real payloads
/// nest a handful of levels; the cap keeps every recursive walk over stored variables (rendering, storing,
/// dropping) far from the stack's limit.
pub const MAX_JSON_DEPTH: usize = 64;

/// Most bytes of response headers (names and values) an HTTP Request node stores as variables.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// Largest encoded HTTP Request result. The worker that made the request hands the result back as one
/// NATS message, and NATS refuses messages over its `max_payload` (1 MiB by default) — a refused result
/// would be retried, repeating the request, until the message gave up. 16 KiB are left for the rest of
/// the message and its headers.
pub const MAX_HTTP_RESULT_BYTES: usize = 1024 * 1024 - 16 * 1024;

/// `result`, made to fit in `max` bytes of JSON: headers over [`MAX_RESPONSE_HEADER_BYTES`] turn it into
/// an error (the node fails), and a body that does not fit is cut (`truncated`, as when it exceeds the
/// node's `max_response_bytes`).
pub fn fit_http_result(result: HttpResult, max: usize) -> HttpResult {
    let encoded = |r: &HttpResult| serde_json::to_vec(r).map_or(usize::MAX, |v| v.len());
    let HttpResult::Response {
        status,
        content_type,
        headers,
        mut body,
        mut truncated,
    } = result
    else {
        return result;
    };
    let header_bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
    if header_bytes > MAX_RESPONSE_HEADER_BYTES {
        return HttpResult::Error {
            message: format!(
                "the response headers are {header_bytes} bytes; the limit is {MAX_RESPONSE_HEADER_BYTES}"
            ),
        };
    }
    loop {
        let result = HttpResult::Response {
            status,
            content_type: content_type.clone(),
            headers: headers.clone(),
            body,
            truncated,
        };
        let size = encoded(&result);
        if size <= max {
            return result;
        }
        let HttpResult::Response { body: mut cut, .. } = result else {
            unreachable!("built above")
        };
        if cut.is_empty() {
            return HttpResult::Error {
                message: format!("the response does not fit in {max} bytes"),
            };
        }
        // Keep the share of the body that fits, as if escaping were even; when it is not, the next
        // round cuts again. Each round keeps strictly less, so this ends.
        let share = (cut.len() as u128 * max as u128 / size as u128) as usize;
        let mut keep = share.min(cut.len() - 1);
        while !cut.is_char_boundary(keep) {
            keep -= 1;
        }
        cut.truncate(keep);
        body = cut;
        truncated = true;
    }
}

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

    fn response(headers: Vec<(String, String)>, body: String) -> HttpResult {
        HttpResult::Response {
            status: 200,
            content_type: Some("text/plain".into()),
            headers,
            body,
            truncated: false,
        }
    }

    #[test]
    fn http_results_are_cut_to_fit_a_message() {
        let small = response(vec![("a".into(), "b".into())], "hello".into());
        assert_eq!(fit_http_result(small.clone(), MAX_HTTP_RESULT_BYTES), small);

        // Plain text, and text whose JSON escaping is six times as long.
        for unit in ["é", "\u{1}"] {
            let body = unit.repeat(2 * MAX_HTTP_RESULT_BYTES / unit.len());
            let fitted = fit_http_result(response(vec![], body.clone()), MAX_HTTP_RESULT_BYTES);
            assert!(serde_json::to_vec(&fitted).unwrap().len() <= MAX_HTTP_RESULT_BYTES);
            let HttpResult::Response {
                body: cut,
                truncated,
                ..
            } = fitted
            else {
                panic!("still a response")
            };
            assert!(truncated);
            assert!(body.starts_with(&cut), "not a prefix");
            assert!(
                cut.len() > MAX_HTTP_RESULT_BYTES / 8,
                "{unit:?}: {}",
                cut.len()
            );
        }

        let big = vec![("x-big".into(), "v".repeat(MAX_RESPONSE_HEADER_BYTES))];
        let HttpResult::Error { message } = fit_http_result(response(big, String::new()), 1 << 20)
        else {
            panic!("headers over the cap are an error")
        };
        assert!(message.starts_with("the response headers are"), "{message}");

        let error = HttpResult::Error {
            message: "refused".into(),
        };
        assert_eq!(fit_http_result(error.clone(), 10), error);
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

//! Integration tests of the carrier contract: XML (exact renders, parsing, properties), the voice
//! mapping, V3 signatures against the Python SDK, and the Plivo REST adapter against a local server.

mod plivo_api;
mod plivo_errors;
mod server;
mod signature;
mod strategy;
mod voice;
mod voice_dial;
mod xml_parse;
mod xml_props;
mod xml_render;

/// The XML declaration every rendered document starts with, followed by `<Response>body</Response>`.
pub fn doc(body: &str) -> String {
    format!(r#"<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>"#)
}

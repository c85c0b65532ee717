//! Plivo XML, parsed and checked as strictly as the carrier checks it: the root must be `Response`,
//! elements may only nest where Plivo allows, attributes must be known, and numeric and boolean
//! attributes must parse. A document that fails here hangs the call up as an application error,
//! which is the point: the simulator is a test of the XML our runner writes.

use roxmltree::Document;

/// Plivo's limit on an XML document.
pub const MAX_XML_BYTES: usize = 100 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    /// The element's text, whitespace collapsed (for `Speak`, including its SSML children's text).
    pub text: String,
    pub children: Vec<Node>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid XML: {0}")]
pub struct XmlError(pub String);

/// Names are space-separated lists: one string per list keeps the schema as compact as Plivo's docs.
const SSML: &str = "break cont emphasis lang p phoneme prosody s say-as sub w";
const PROMPTS: &str = "Speak Play Wait";
const RESPONSE_CHILDREN: &str = "Conference Dial DTMF GetDigits GetInput Hangup Message Play \
    PreAnswer Record Redirect Speak Wait MultiPartyCall Stream";

/// Attributes and children each verb accepts, from the `to_dict()` and `_nestable` of each element
/// in plivo-python 4.63.0 `plivo/xml/`.
fn schema(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "Response" => ("", RESPONSE_CHILDREN),
        "Speak" => ("voice language loop", SSML),
        "Play" => ("loop", ""),
        "Wait" => ("length silence minSilence beep", ""),
        "GetDigits" => (
            "action method timeout digitTimeout finishOnKey numDigits retries redirect playBeep \
             validDigits invalidDigitsSound log",
            PROMPTS,
        ),
        "GetInput" => (
            "action method inputType executionTimeout digitEndTimeout speechEndTimeout \
             finishOnKey numDigits speechModel hints language interimSpeechResultsCallback \
             interimSpeechResultsCallbackMethod log redirect profanityFilter",
            PROMPTS,
        ),
        "Dial" => (
            "action method hangupOnStar timeLimit timeout callerId callerName confirmSound \
             confirmTimeout confirmKey dialMusic callbackUrl callbackMethod redirect digitsMatch \
             digitsMatchBLeg sipHeaders",
            "Number User",
        ),
        "Number" => ("sendDigits sendOnPreanswer sendDigitsMode", ""),
        "User" => ("sendDigits sendOnPreanswer sipHeaders", ""),
        "Conference" => (
            "muted enterSound exitSound startConferenceOnEnter endConferenceOnExit stayAlone \
             waitSound maxMembers record recordFileFormat timeLimit hangupOnStar action method \
             callbackUrl callbackMethod digitsMatch floorEvent redirect relayDTMF sendDigits \
             recordWhenAlone transcriptionType transcriptionUrl transcriptionMethod",
            "",
        ),
        "MultiPartyCall" => (
            "role maxDuration maxParticipants recordMinMemberCount waitMusicUrl waitMusicMethod \
             waitTime agentHoldMusicUrl agentHoldMusicMethod customerHoldMusicUrl \
             customerHoldMusicMethod record recordParticipantTrack recordFileFormat \
             recordingCallbackUrl recordingCallbackMethod statusCallbackEvents statusCallbackUrl \
             statusCallbackMethod stayAlone coachMode mute hold startMpcOnEnter endMpcOnExit \
             enterSound enterSoundMethod exitSound exitSoundMethod onExitActionUrl \
             onExitActionMethod relayDTMFInputs startRecordingAudio startRecordingAudioMethod \
             stopRecordingAudio stopRecordingAudioMethod transcript transcriptionUrl",
            "",
        ),
        "Record" => (
            "action method fileFormat redirect timeout maxLength playBeep finishOnKey \
             recordSession startOnDialAnswer transcriptionType transcriptionUrl \
             transcriptionMethod transcriptionReportType callbackUrl callbackMethod \
             recordChannelType",
            "",
        ),
        "Hangup" => ("reason schedule", ""),
        "Redirect" => ("method", ""),
        "PreAnswer" => ("", "Speak Play Wait GetDigits Redirect Message DTMF"),
        "DTMF" => ("async", ""),
        "Message" => ("src dst type callbackUrl callbackMethod", ""),
        "Stream" => (
            "bidirectional audioTrack streamTimeout statusCallbackUrl statusCallbackMethod \
             contentType extraHeaders keepCallAlive",
            "",
        ),
        _ => return None,
    })
}

const NUMERIC: &str = "loop length timeout digitTimeout numDigits retries executionTimeout \
    timeLimit confirmTimeout maxMembers maxLength schedule maxDuration maxParticipants";
const BOOLEAN: &str = "redirect playBeep muted startConferenceOnEnter endConferenceOnExit \
    stayAlone hold mute startMpcOnEnter endMpcOnExit recordSession startOnDialAnswer hangupOnStar \
    log";

fn listed(list: &str, name: &str) -> bool {
    list.split_whitespace().any(|n| n == name)
}

fn err(msg: impl Into<String>) -> XmlError {
    XmlError(msg.into())
}

/// Parses a whole answer document and returns the verbs under `Response`.
pub fn parse_response(xml: &str) -> Result<Vec<Node>, XmlError> {
    if xml.len() > MAX_XML_BYTES {
        return Err(err(format!("document larger than {MAX_XML_BYTES} bytes")));
    }
    let doc = Document::parse(xml).map_err(|e| err(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "Response" {
        return Err(err(format!(
            "the root element must be Response, not {}",
            root.tag_name().name()
        )));
    }
    Ok(convert(root)?.children)
}

fn convert(el: roxmltree::Node<'_, '_>) -> Result<Node, XmlError> {
    let name = el.tag_name().name().to_owned();
    let (attrs_ok, children_ok) =
        schema(&name).ok_or_else(|| err(format!("unknown element <{name}>")))?;
    let mut attrs = Vec::new();
    for a in el.attributes() {
        let key = a.name();
        if !listed(attrs_ok, key) {
            return Err(err(format!("unknown attribute {key} on <{name}>")));
        }
        check_value(&name, key, a.value())?;
        attrs.push((key.to_owned(), a.value().to_owned()));
    }
    let mut children = Vec::new();
    for child in el.children().filter(roxmltree::Node::is_element) {
        let child_name = child.tag_name().name();
        let is_ssml = name == "Speak" && listed(SSML, child_name);
        if !is_ssml && schema(child_name).is_none() {
            return Err(err(format!("unknown element <{child_name}>")));
        }
        if !listed(children_ok, child_name) {
            return Err(err(format!("<{child_name}> cannot be nested in <{name}>")));
        }
        // SSML inside Speak only contributes text; its markup is not checked further.
        if name != "Speak" {
            children.push(convert(child)?);
        }
    }
    let text = if name == "Speak" {
        collapse(
            el.descendants()
                .filter_map(|n| n.text().filter(|_| n.is_text())),
        )
    } else {
        collapse(
            el.children()
                .filter_map(|n| n.text().filter(|_| n.is_text())),
        )
    };
    Ok(Node {
        name,
        attrs,
        text,
        children,
    })
}

fn collapse<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    let joined: Vec<&str> = parts.flat_map(str::split_whitespace).collect();
    joined.join(" ")
}

fn check_value(element: &str, key: &str, value: &str) -> Result<(), XmlError> {
    let bad = |what: &str| err(format!("{key}={value:?} on <{element}> is not {what}"));
    let v = value.trim();
    if listed(NUMERIC, key) && v.parse::<f64>().map_or(true, |n| !n.is_finite() || n < 0.0) {
        return Err(bad("a non-negative number"));
    }
    if listed(BOOLEAN, key) && !(v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"))
    {
        return Err(bad("true or false"));
    }
    if key == "method" || key.ends_with("Method") {
        let ok = v.eq_ignore_ascii_case("GET") || v.eq_ignore_ascii_case("POST") || v.is_empty();
        if !ok {
            return Err(bad("GET or POST"));
        }
    }
    if element == "MultiPartyCall"
        && key == "role"
        && !["agent", "customer", "supervisor"].contains(&v.to_ascii_lowercase().as_str())
    {
        return Err(bad("agent, customer or supervisor"));
    }
    Ok(())
}

impl Node {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// A numeric attribute (already checked at parse time), or its default.
    pub fn num(&self, name: &str, default: f64) -> f64 {
        self.attr(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    }

    pub fn flag(&self, name: &str, default: bool) -> bool {
        self.attr(name)
            .map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// A synthetic element, for documents the simulator writes itself.
    pub fn element(name: &str, attrs: Vec<(String, String)>, text: &str) -> Self {
        Self {
            name: name.to_owned(),
            attrs,
            text: text.to_owned(),
            children: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sdk_sample() {
        let verbs = parse_response(
            r#"<Response>
              <GetDigits action="http://a/ivr" method="POST" timeout="5" numDigits="1" retries="1" redirect="true">
                <Speak voice="WOMAN" language="en-US">Press 1
                   for <emphasis>sales</emphasis></Speak>
              </GetDigits>
              <Dial action="http://a/dial" timeout="30" callerId="+14155550100"><Number>+14155550101</Number></Dial>
              <Hangup/>
            </Response>"#,
        )
        .unwrap();
        assert_eq!(verbs.len(), 3);
        assert_eq!(verbs[0].children[0].text, "Press 1 for sales");
        assert_eq!(verbs[1].children[0].text, "+14155550101");
        assert_eq!(verbs[0].num("timeout", 0.0), 5.0);
    }

    #[test]
    fn rejects_what_plivo_rejects() {
        for bad in [
            "<Reply/>",
            "<Response><Say>hi</Say></Response>",
            "<Response><Speak colour=\"red\">hi</Speak></Response>",
            "<Response><GetDigits timeout=\"soon\"/></Response>",
            "<Response><Dial><Speak>x</Speak></Dial></Response>",
            "<Response><MultiPartyCall role=\"boss\">r</MultiPartyCall></Response>",
            "<Response><Speak>unclosed</Response>",
        ] {
            assert!(parse_response(bad).is_err(), "{bad}");
        }
    }
}

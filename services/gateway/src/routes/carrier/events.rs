//! Carrier webhook parameters (Plivo's PascalCase form fields) turned into the engine's carrier-neutral
//! events. Pure: the handlers parse, these translate.

use std::collections::BTreeMap;

use phlo_flow::event::{
    CallDetails, CallOutcome, ConferenceEvent, DialResult, MessageDetails, Recording, SmsReport,
};

pub type Params = BTreeMap<String, String>;

fn get(p: &Params, key: &str) -> Option<String> {
    p.get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(p: &Params, key: &str) -> Option<T> {
    get(p, key).and_then(|v| v.parse().ok())
}

/// The call fields every voice webhook carries.
pub fn call_details(p: &Params) -> CallDetails {
    CallDetails {
        uuid: get(p, "CallUUID").unwrap_or_default(),
        from: get(p, "From").unwrap_or_default(),
        to: get(p, "To").unwrap_or_default(),
        start_time: get(p, "StartTime").or_else(|| get(p, "SessionStart")),
        answer_time: get(p, "AnswerTime"),
        end_time: get(p, "EndTime"),
        hangup_cause: get(p, "HangupCause").or_else(|| get(p, "HangupCauseName")),
        duration: number(p, "Duration"),
        bill_duration: number(p, "BillDuration"),
        bill_rate: get(p, "BillRate"),
        bill_amount: get(p, "TotalCost").or_else(|| get(p, "BillAmount")),
        ring_status: None,
    }
}

/// `Digits` of GetDigits/GetInput; absent when the caller entered nothing (the fall-through redirect).
pub fn digits(p: &Params) -> String {
    get(p, "Digits").unwrap_or_default()
}

pub fn recording(p: &Params) -> Recording {
    let ms = |key: &str| number::<i64>(p, key);
    Recording {
        url: get(p, "RecordUrl").unwrap_or_default(),
        recording_uuid: get(p, "RecordingID").unwrap_or_default(),
        duration_ms: ms("RecordingDurationMs")
            .or_else(|| ms("RecordingDuration").map(|s| s * 1000))
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or_default(),
        start_time: ms("RecordingStartMs").map(|v| v / 1000),
        end_time: ms("RecordingEndMs").map(|v| v / 1000),
    }
}

/// The Dial action: how the forwarded call went.
pub fn dial(p: &Params) -> DialResult {
    let outcome = match get(p, "DialStatus").as_deref() {
        Some("completed") | Some("answer") => CallOutcome::Completed,
        Some("busy") => CallOutcome::Busy,
        Some("no-answer") | Some("timeout") => CallOutcome::NoAnswer,
        _ => CallOutcome::Failed,
    };
    DialResult {
        outcome,
        call: CallDetails {
            uuid: get(p, "DialBLegUUID").unwrap_or_default(),
            from: get(p, "DialBLegFrom").unwrap_or_default(),
            to: get(p, "DialBLegTo").unwrap_or_default(),
            hangup_cause: get(p, "DialHangupCause").or_else(|| get(p, "DialBLegHangupCauseName")),
            duration: number(p, "DialBLegDuration"),
            bill_duration: number(p, "DialBLegBillDuration"),
            ring_status: get(p, "DialRingStatus").map(|v| v == "true"),
            ..Default::default()
        },
    }
}

/// How an outbound leg that never reached its answer URL ended.
pub fn unanswered_leg(p: &Params) -> CallOutcome {
    match get(p, "CallStatus").as_deref() {
        Some("busy") => CallOutcome::Busy,
        Some("no-answer") | Some("timeout") => CallOutcome::NoAnswer,
        _ => CallOutcome::Failed,
    }
}

/// A member event of a conference (`ConferenceAction`) or multiparty call (`EventName`). `None` for
/// events the engine does not care about (mute, speak...).
pub fn conference(p: &Params, own_call: &str) -> Option<ConferenceEvent> {
    let action = get(p, "ConferenceAction").or_else(|| get(p, "EventName"))?;
    let member_call = get(p, "CallUUID")
        .or_else(|| get(p, "ParticipantCallUUID"))
        .unwrap_or_default();
    let (event, ended) = match action.as_str() {
        "enter" | "ParticipantJoin" => ("ConferenceEnter", false),
        // Only this token's own call leaving ends its node; others leaving are news.
        "exit" | "ParticipantExit" => ("ConferenceExit", member_call == own_call),
        "MPCEnd" | "ConferenceEnd" => ("ConferenceExit", true),
        _ => return None,
    };
    Some(ConferenceEvent {
        event: event.to_owned(),
        ended,
        error: None,
        from: get(p, "From").unwrap_or_default(),
        to: get(p, "To").unwrap_or_default(),
        direction: get(p, "Direction").unwrap_or_default(),
        caller_name: get(p, "CallerName"),
        bill_rate: get(p, "BillRate"),
        call_uuid: member_call,
        conference_uuid: get(p, "ConferenceUUID")
            .or_else(|| get(p, "MPCUUID"))
            .unwrap_or_default(),
        member_id: get(p, "ConferenceMemberID")
            .or_else(|| get(p, "MemberID"))
            .unwrap_or_default(),
    })
}

pub fn sms_report(p: &Params, recipient: usize) -> SmsReport {
    SmsReport {
        recipient,
        message_uuid: get(p, "MessageUUID").unwrap_or_default(),
        status: get(p, "Status").unwrap_or_default().to_ascii_lowercase(),
        error_code: get(p, "ErrorCode"),
        units: number(p, "Units"),
        total_rate: get(p, "TotalRate"),
        total_amount: get(p, "TotalAmount"),
    }
}

pub fn inbound_message(p: &Params) -> MessageDetails {
    MessageDetails {
        message_uuid: get(p, "MessageUUID").unwrap_or_default(),
        time: get(p, "MessageTime"),
        from: get(p, "From").unwrap_or_default(),
        to: get(p, "To").unwrap_or_default(),
        msg: get(p, "Text")
            .or_else(|| get(p, "Body"))
            .unwrap_or_default(),
        units: number(p, "Units"),
        total_rate: get(p, "TotalRate"),
        total_amount: get(p, "TotalAmount"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn dial_statuses_map_to_outcomes() {
        for (status, outcome) in [
            ("completed", CallOutcome::Completed),
            ("busy", CallOutcome::Busy),
            ("no-answer", CallOutcome::NoAnswer),
            ("timeout", CallOutcome::NoAnswer),
            ("failed", CallOutcome::Failed),
            ("cancel", CallOutcome::Failed),
        ] {
            let r = dial(&params(&[
                ("DialStatus", status),
                ("DialBLegUUID", "b-1"),
                ("DialRingStatus", "true"),
            ]));
            assert_eq!(r.outcome, outcome, "{status}");
            assert_eq!(r.call.uuid, "b-1");
            assert_eq!(r.call.ring_status, Some(true));
        }
    }

    #[test]
    fn recordings_keep_milliseconds_and_unix_seconds() {
        let r = recording(&params(&[
            ("RecordUrl", "https://r/1.mp3"),
            ("RecordingID", "rec-1"),
            ("RecordingDurationMs", "3200"),
            ("RecordingStartMs", "1700000000123"),
            ("RecordingEndMs", "1700000003323"),
        ]));
        assert_eq!(
            (r.duration_ms, r.start_time, r.end_time),
            (3200, Some(1_700_000_000), Some(1_700_000_003))
        );
        assert_eq!(
            recording(&params(&[("RecordingDuration", "4")])).duration_ms,
            4000
        );
    }

    #[test]
    fn only_the_own_call_leaving_ends_the_node() {
        let own = conference(
            &params(&[("ConferenceAction", "exit"), ("CallUUID", "me")]),
            "me",
        )
        .unwrap();
        assert!(own.ended);
        let other = conference(
            &params(&[("ConferenceAction", "exit"), ("CallUUID", "you")]),
            "me",
        )
        .unwrap();
        assert!(!other.ended);
        let mpc = conference(
            &params(&[("EventName", "ParticipantJoin"), ("MemberID", "7")]),
            "me",
        )
        .unwrap();
        assert_eq!(
            (mpc.event.as_str(), mpc.member_id.as_str()),
            ("ConferenceEnter", "7")
        );
        assert!(conference(&params(&[("EventName", "ParticipantSpeakStart")]), "me").is_none());
    }

    #[test]
    fn unanswered_legs_and_sms_reports() {
        assert_eq!(
            unanswered_leg(&params(&[("CallStatus", "busy")])),
            CallOutcome::Busy
        );
        assert_eq!(
            unanswered_leg(&params(&[("CallStatus", "no-answer")])),
            CallOutcome::NoAnswer
        );
        assert_eq!(
            unanswered_leg(&params(&[("CallStatus", "failed")])),
            CallOutcome::Failed
        );
        let r = sms_report(
            &params(&[
                ("Status", "Undelivered"),
                ("ErrorCode", "30"),
                ("Units", "2"),
            ]),
            3,
        );
        assert_eq!(
            (
                r.recipient,
                r.status.as_str(),
                r.error_code.as_deref(),
                r.units
            ),
            (3, "undelivered", Some("30"), Some(2))
        );
    }
}

//! `Record`: the party speaks for its script's `record_secs` (capped by `maxLength`), then the
//! recording is reported to the action URL. If the party hangs up while speaking, the recording
//! made so far is still delivered, as Plivo does: hanging up is how most voicemails end.

use chrono::Utc;

use crate::calls::Stop;
use crate::events::EventKind;
use crate::session::CallCtx;
use crate::webhooks::{Fetch, Method};
use crate::xml::Node;
use crate::xml_exec::{Step, follow_action};

pub async fn record(ctx: &CallCtx, verb: &Node) -> Result<Step, Stop> {
    let format = match verb.attr("fileFormat") {
        Some(f) if f.eq_ignore_ascii_case("wav") => "wav",
        _ => "mp3",
    };
    let id = uuid::Uuid::new_v4().to_string();
    let url = format!(
        "{}/recordings/{id}.{format}",
        ctx.sim.config.public_url.trim_end_matches('/')
    );
    let start_ms = Utc::now().timestamp_millis();

    // Session recordings run in the background: Plivo reports them at once with unknown lengths.
    if verb.flag("recordSession", false) || verb.flag("startOnDialAnswer", false) {
        let params = recording_params(&url, &id, -1.0, start_ms, -1);
        ctx.log(EventKind::Recorded {
            recording_id: id,
            url,
            duration_secs: -1.0,
            beep: false,
        });
        notify(ctx, verb, &params);
        if let Some(action) = verb.attr("action") {
            let fetch = ctx.fetch(action, Method::parse(verb.attr("method")), params);
            let _ = ctx.sim.webhooks.send(&fetch).await;
        }
        return Ok(Step::Continue);
    }

    let speak = ctx.script.record_secs.min(verb.num("maxLength", 60.0));
    let began = std::time::Instant::now();
    let interrupted = ctx.pause(speak).await.err();
    let secs = match &interrupted {
        // Real time back to simulated seconds: how much the party said before hanging up.
        Some(_) => (began.elapsed().as_secs_f64() / ctx.sim.config.time_scale).min(speak),
        None => speak,
    };
    let duration_ms = (secs * 1000.0).round() as i64;
    let params = recording_params(&url, &id, secs, start_ms, start_ms + duration_ms);
    ctx.log(EventKind::Recorded {
        recording_id: id,
        url,
        duration_secs: secs,
        beep: verb.flag("playBeep", true),
    });
    notify(ctx, verb, &params);
    match interrupted {
        Some(Stop::Hangup(h)) => {
            // The call is over: deliver the recording, ignore whatever XML comes back.
            if let Some(action) = verb.attr("action") {
                let fetch = ctx.fetch(action, Method::parse(verb.attr("method")), params);
                let _ = ctx.sim.webhooks.send(&fetch).await;
            }
            Err(Stop::Hangup(h))
        }
        Some(stop) => Err(stop),
        None => Ok(follow_action(ctx, verb, params).await),
    }
}

fn recording_params(
    url: &str,
    id: &str,
    secs: f64,
    start_ms: i64,
    end_ms: i64,
) -> Vec<(String, String)> {
    let (duration, duration_ms) = if secs < 0.0 {
        ("-1".to_owned(), "-1".to_owned())
    } else {
        (
            (secs.round() as i64).to_string(),
            ((secs * 1000.0).round() as i64).to_string(),
        )
    };
    vec![
        ("RecordUrl".into(), url.to_owned()),
        ("RecordingID".into(), id.to_owned()),
        ("RecordingDuration".into(), duration),
        ("RecordingDurationMs".into(), duration_ms),
        ("RecordingStartMs".into(), start_ms.to_string()),
        ("RecordingEndMs".into(), end_ms.to_string()),
    ]
}

/// The `callbackUrl` of a recording gets the same parameters, in the background.
fn notify(ctx: &CallCtx, verb: &Node, params: &[(String, String)]) {
    if let Some(url) = verb.attr("callbackUrl") {
        let mut all = ctx.call.base_params();
        all.extend(params.iter().cloned());
        ctx.sim.fire(Fetch {
            url: url.to_owned(),
            method: Method::parse(verb.attr("callbackMethod")),
            params: all,
        });
    }
}

//! `phlo call FROM TO [--digits 1,2]`: an incoming call through the carrier simulator, acted out
//! live. It prints what the caller hears, presses and says; the caller's answers to prompts come
//! from --digits, or else from the terminal (standard input, a line per prompt).
//!
//! Terminal answers need a simulator that takes live input (`live_input` scripts and
//! `POST /sim/calls/{uuid}/input`): the caller waits at each prompt, as long as the prompt's own
//! timeout, for a line typed here.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::print::{clock, json_line, str_of};
use super::sim_run::{Routing, ended_run, run_of};
use crate::client::{Gateway, Sim};

const POLL: Duration = Duration::from_millis(100);
/// How long the run may take to end once its call has.
const RUN_PATIENCE: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct Args {
    /// The caller's number.
    from: String,
    /// The PHLO's number (attached with `PUT /v1/numbers/{number}` or --phlo).
    to: String,
    /// The caller's answers, one per prompt, comma-separated: keys (`1`, `1234#`), nothing for
    /// silence (`1,,2`), or words to say to a speech prompt. Without it, answers are read from the
    /// terminal.
    #[arg(long)]
    digits: Option<String>,
    #[command(flatten)]
    routing: Routing,
}

pub async fn run(gateway: &Gateway, sim: &Sim, args: Args, json: bool) -> anyhow::Result<bool> {
    let app = args.routing.prepare(gateway, &args.to).await?;
    let original = script_caller(sim, &args).await?;
    let result = act_out(gateway, sim, &args, &app, json).await;
    // Later calls from the number behave as before this one, whatever happened to it.
    let restored = sim
        .put(&format!("/sim/numbers/{}", args.from), &original)
        .await;
    let completed = result?;
    restored?;
    Ok(completed)
}

async fn act_out(
    gateway: &Gateway,
    sim: &Sim,
    args: &Args,
    app: &str,
    json: bool,
) -> anyhow::Result<bool> {
    let placed = sim
        .post(
            "/sim/calls",
            &json!({
                "from": args.from, "to": args.to,
                "answer_url": format!("{app}/v1/carrier/voice/answer"),
                "hangup_url": format!("{app}/v1/carrier/voice/hangup"),
            }),
        )
        .await?;
    let uuid = str_of(&placed, "call_uuid").to_owned();
    if json {
        json_line(&json!({ "type": "call", "call_uuid": uuid, "from": args.from, "to": args.to }));
    } else {
        println!("call {uuid} from {} to {}", args.from, args.to);
    }
    let mut answers = args.digits.is_none().then(terminal_lines);
    let mut printed = 0;
    let call = loop {
        let call = sim.get(&format!("/sim/calls/{uuid}")).await?;
        let events = call["events"].as_array().cloned().unwrap_or_default();
        for event in events.iter().skip(printed) {
            print_event(event, json);
            if event["kind"] == "awaiting_input"
                && let Some(lines) = answers.as_mut()
            {
                answer(sim, &uuid, event, lines, json).await?;
            }
        }
        printed = printed.max(events.len());
        if is_final(&call) {
            break call;
        }
        tokio::time::sleep(POLL).await;
    };
    if json {
        json_line(&json!({
            "type": "call_ended", "call_uuid": uuid, "status": call["status"],
            "hangup_cause": call["hangup_cause"], "duration": call["duration"],
        }));
    } else {
        println!(
            "call ended: {} ({})",
            str_of(&call, "status"),
            str_of(&call, "hangup_cause")
        );
    }
    if !gateway.has_credentials() {
        eprintln!("set PHLO_AUTH_ID and PHLO_AUTH_TOKEN to see the run the call started");
        return Ok(call["status"] == "completed");
    }
    let Some(run_id) = run_of(gateway, "call", &uuid).await? else {
        anyhow::bail!(
            "no run was started by call {uuid}: is {} attached to a PHLO? (--phlo attaches it)",
            args.to
        );
    };
    let run = ended_run(gateway, &run_id, RUN_PATIENCE).await?;
    if json {
        json_line(&json!({
            "type": "run", "run_id": run_id, "status": run["status"], "error": run["error"],
            "step_count": run["step_count"],
        }));
    } else {
        let mut line = format!("run {run_id} {}", str_of(&run, "status"));
        if let Some(error) = run["error"].as_str() {
            line.push_str(&format!(": {error}"));
        }
        println!("{line}");
    }
    Ok(run["status"] == "completed")
}

/// Sets the caller's answers in its simulator script (keeping the rest of the script); returns
/// the script as it was.
async fn script_caller(sim: &Sim, args: &Args) -> anyhow::Result<Value> {
    let path = format!("/sim/numbers/{}", args.from);
    let original = sim.get(&path).await?["script"].clone();
    let mut script = original.clone();
    let Some(fields) = script.as_object_mut() else {
        anyhow::bail!("the simulator answered {path} without a script");
    };
    match &args.digits {
        Some(digits) => {
            fields.insert(
                "digits".into(),
                json!(digits.split(',').collect::<Vec<_>>()),
            );
            fields.remove("live_input");
        }
        None => {
            fields.insert("digits".into(), json!([]));
            fields.insert("live_input".into(), json!(true));
        }
    }
    sim.put(&path, &script).await.map_err(|e| {
        if args.digits.is_none() {
            e.context("this simulator does not take answers from the terminal: pass --digits")
        } else {
            e
        }
    })?;
    Ok(original)
}

/// Lines of standard input, read on a thread of their own so that the call goes on while nobody
/// types; `None` at the end of the input.
fn terminal_lines() -> mpsc::UnboundedReceiver<Option<String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            match line {
                Ok(line) => {
                    if tx.send(Some(line.trim().to_owned())).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(None);
    });
    rx
}

/// Waits (as long as the prompt waits) for a line and gives it to the caller; silence otherwise.
async fn answer(
    sim: &Sim,
    uuid: &str,
    event: &Value,
    lines: &mut mpsc::UnboundedReceiver<Option<String>>,
    json: bool,
) -> anyhow::Result<()> {
    let seconds = event["seconds"].as_f64().unwrap_or(5.0).max(0.0);
    // A person gets a prompt; a script piping its answers does not.
    let person = !json && std::io::stdin().is_terminal();
    if person {
        eprint!("your answer (keys, or words to say; empty for silence) within {seconds:.0}s> ");
    }
    let line = match tokio::time::timeout(Duration::from_secs_f64(seconds), lines.recv()).await {
        Ok(Some(Some(line))) => line,
        // The input has ended: silence, at once rather than after the prompt's timeout.
        Ok(Some(None) | None) => String::new(),
        // The prompt's time is up: the caller stayed silent.
        Err(_) => {
            if person {
                eprintln!();
            }
            return Ok(());
        }
    };
    if let Err(e) = sim
        .post(
            &format!("/sim/calls/{uuid}/input"),
            &json!({ "input": line }),
        )
        .await
    {
        eprintln!("warning: {e:#}");
    }
    Ok(())
}

fn is_final(call: &Value) -> bool {
    !matches!(
        call["status"].as_str(),
        Some("queued" | "ringing" | "in-progress") | None
    )
}

fn print_event(event: &Value, json: bool) {
    if json {
        let mut line = json!({ "type": "event" });
        if let (Some(line), Some(event)) = (line.as_object_mut(), event.as_object()) {
            line.extend(event.clone());
        }
        json_line(&line);
        return;
    }
    let s = |key| str_of(event, key);
    let what = match s("kind") {
        "heard" if event.get("text").is_some() => format!("heard: {:?}", s("text")),
        "heard" => format!("heard audio: {}", s("url")),
        "pressed" => format!("pressed: {}", s("digits")),
        "said" => format!("said: {:?}", s("speech")),
        "silent" => format!("silent for {}s", event["seconds"]),
        "awaiting_input" => format!("waiting for an answer ({}s)", event["seconds"]),
        "hung_up" => format!("hung up: {} ({})", s("reason"), s("cause")),
        "message_sent" => format!("sent SMS to {}: {:?}", s("to"), s("text")),
        "app_error" => format!("application error: {}", s("error")),
        "dialled" => format!("dialled {}", s("number")),
        "bridged" => format!("connected with {}", s("with")),
        "joined" => format!("joined {} {}", s("room_kind"), s("room")),
        "left" => format!("left {}: {}", s("room"), s("reason")),
        "recorded" => format!("recorded {}s", event["duration_secs"]),
        kind => {
            let mut rest = event.clone();
            if let Some(map) = rest.as_object_mut() {
                for key in ["at", "party", "kind"] {
                    map.remove(key);
                }
            }
            match rest.as_object() {
                Some(m) if !m.is_empty() => format!("{} {rest}", kind.replace('_', " ")),
                _ => kind.replace('_', " "),
            }
        }
    };
    println!("  {} {what}", clock(s("at")));
}

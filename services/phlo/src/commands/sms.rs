//! `phlo sms FROM TO TEXT`: an incoming SMS through the carrier simulator, the run it starts
//! followed step by step, and the replies the PHLO sent back.

use serde_json::json;

use super::follow::Follower;
use super::print::{json_line, str_of};
use super::sim_run::{Routing, run_of, same_number};
use crate::client::{Gateway, Sim};

#[derive(clap::Args)]
pub struct Args {
    /// The sender's number.
    from: String,
    /// The PHLO's number (attached with `PUT /v1/numbers/{number}` or --phlo).
    to: String,
    /// The message.
    text: String,
    #[command(flatten)]
    routing: Routing,
}

pub async fn run(gateway: &Gateway, sim: &Sim, args: Args, json: bool) -> anyhow::Result<bool> {
    let app = args.routing.prepare(gateway, &args.to).await?;
    let sent = sim
        .post(
            "/sim/messages",
            &json!({
                "from": args.from, "to": args.to, "text": args.text,
                "message_url": format!("{app}/v1/carrier/sms/inbound"),
            }),
        )
        .await?;
    let uuid = str_of(&sent, "message_uuid").to_owned();
    if json {
        json_line(
            &json!({ "type": "message", "message_uuid": uuid, "from": args.from, "to": args.to }),
        );
    } else {
        println!("message {uuid} from {} to {}", args.from, args.to);
    }
    if !gateway.has_credentials() {
        eprintln!("set PHLO_AUTH_ID and PHLO_AUTH_TOKEN to follow the run the message starts");
        return Ok(true);
    }
    let Some(run_id) = run_of(gateway, "sms", &uuid).await? else {
        anyhow::bail!(
            "no run was started by message {uuid}: is {} attached to a PHLO? (--phlo attaches it)",
            args.to
        );
    };
    let completed = Follower::new(&run_id, json).follow(gateway).await?;
    // The replies are the run's messages (the run lists the uuids its steps recorded) that the
    // simulator carried out to the sender.
    let run = gateway.get(&format!("/v1/runs/{run_id}"), &[]).await?;
    let sent = run["message_uuids"].as_array().cloned().unwrap_or_default();
    let messages = sim.get("/sim/messages").await?;
    for m in messages.as_array().into_iter().flatten().filter(|m| {
        m["direction"] == "outbound"
            && same_number(str_of(m, "to"), &args.from)
            && sent.contains(&m["message_uuid"])
    }) {
        if json {
            json_line(&json!({
                "type": "reply", "message_uuid": m["message_uuid"], "from": m["from"], "to": m["to"],
                "text": m["text"], "status": m["status"],
            }));
        } else {
            println!(
                "reply from {} to {}: {:?} ({})",
                str_of(m, "from"),
                str_of(m, "to"),
                str_of(m, "text"),
                str_of(m, "status")
            );
        }
    }
    Ok(completed)
}

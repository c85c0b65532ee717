//! The commands that talk to a gateway (and, for calls and SMS, to the carrier simulator). Each
//! returns whether it succeeded in the command's own terms (a run that failed, a definition with
//! errors): `false` exits 1; an error (unreachable, refused) exits 2.

mod apply;
mod call;
mod callbacks;
mod follow;
mod phlos;
mod print;
mod run;
mod runs;
mod sim_run;
mod sms;
mod when;

use std::path::PathBuf;

use clap::Subcommand;

use crate::client::{Gateway, Settings, Sim};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Create or update a PHLO from a definition file. The PHLO is the one named like the file's
    /// `name` (created when there is none), or the one given with --id; an update adds a revision
    /// unless the definition is unchanged. Prints the PHLO's id and revision; a definition with
    /// errors prints every problem with its node and field and exits 1.
    Apply {
        /// The PHLO definition (JSON).
        file: PathBuf,
        /// Update this PHLO (its id) instead of the one found by name.
        #[arg(long)]
        id: Option<String>,
    },
    /// Start a run of a PHLO (its `api_request` trigger) and print the run's id.
    Run(run::Args),
    /// Follow a run step by step until it ends: each step's node, state and variables as they
    /// happen. Exits 0 when the run completed, 1 when it failed, was cancelled or timed out.
    Follow {
        /// The run's id.
        run: String,
    },
    /// List runs, newest first, with filters.
    Runs(runs::Args),
    /// Callback deliveries.
    Callbacks {
        #[command(subcommand)]
        command: callbacks::Command,
    },
    /// Place a simulated incoming call on the carrier simulator; print what the caller hears and
    /// answer its prompts from the terminal (or with --digits), until the call ends.
    Call(call::Args),
    /// Send a simulated incoming SMS through the carrier simulator and follow the run it starts.
    Sms(sms::Args),
}

/// Runs `command` to completion on a runtime of its own.
pub fn dispatch(command: ClientCommand, settings: &Settings, json: bool) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let gateway = Gateway::new(settings)?;
        match command {
            ClientCommand::Apply { file, id } => {
                apply::run(&gateway, &file, id.as_deref(), json).await
            }
            ClientCommand::Run(args) => run::run(&gateway, args, json).await,
            ClientCommand::Follow { run } => follow::run(&gateway, &run, json).await,
            ClientCommand::Runs(args) => runs::run(&gateway, args, json).await,
            ClientCommand::Callbacks { command } => callbacks::run(&gateway, command, json).await,
            ClientCommand::Call(args) => {
                call::run(&gateway, &Sim::new(settings)?, args, json).await
            }
            ClientCommand::Sms(args) => sms::run(&gateway, &Sim::new(settings)?, args, json).await,
        }
    })
}

//! `phlo`: the command line for people and scripts.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod validate;

#[derive(Parser)]
#[command(name = "phlo", version, about = "Validate and run PHLOs")]
struct Cli {
    /// How to print results.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check PHLO definition files and print every problem with its node and field.
    /// Exits 1 when any file has an error (warnings alone pass).
    Validate {
        /// PHLO definition files (JSON).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files } => validate::run(&files, matches!(cli.output, Output::Json)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

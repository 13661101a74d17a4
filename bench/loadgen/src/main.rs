//! `loadgen`: the load of fleetwatch's ingest benchmark (`bench/ingest.sh`).
//!
//! - `generate` simulates a fleet and writes its scrapes as pre-encoded
//!   remote-write 1.0 bodies into one file, so sending costs next to
//!   nothing;
//! - `send` replays such a file against a remote-write endpoint and prints
//!   the ingest rate;
//! - `query` times a PromQL range query (median of several runs).

mod format;
mod generate;
mod logs;
mod query;
mod send;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Remote-write load for fleetwatch's ingest benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a fleet and write its scrapes as pre-encoded requests.
    Generate(generate::GenerateArgs),
    /// Replay a load file against a remote-write URL.
    Send(send::SendArgs),
    /// Time a range query (median of several runs).
    Query(query::QueryArgs),
    /// Write pod logs as pre-encoded Loki push bodies.
    LogsGenerate(logs::LogsGenerateArgs),
    /// Replay a logs load file against a Loki push URL.
    LogsSend(logs::LogsSendArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Generate(args) => generate::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Query(args) => query::run(&args),
        Command::LogsGenerate(args) => logs::generate(&args),
        Command::LogsSend(args) => logs::send(&args),
    }
}

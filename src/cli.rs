//! Command-line flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use fleetwatch_simulator::Scenario;

/// fleetwatch: metrics federation for fleets of KubeVirt clusters.
#[derive(Debug, Parser)]
#[command(name = "fleetwatch", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: remote-write ingest, storage, the Prometheus API.
    Aggregator(AggregatorArgs),
    /// Run a collector: scrape targets and ship samples to the hub.
    Collector(CollectorArgs),
    /// Serve simulated KubeVirt metrics for one cluster.
    Simulate(SimulateArgs),
    /// Run a hub, three simulated clusters and their collectors on this machine.
    Demo(DemoArgs),
    /// Work with rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
}

/// `fleetwatch rules ...`.
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Validate Prometheus rule files and PrometheusRule resources.
    Check {
        /// Rule files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run rule unit tests in promtool's format.
    Test {
        /// Unit-test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Flags of `fleetwatch aggregator`.
#[derive(Debug, Args)]
pub struct AggregatorArgs {
    /// Hub config file (YAML); defaults apply without one.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address; overrides the config file (default 127.0.0.1:9190).
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory; overrides the config file (default ./data).
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
}

/// Flags of `fleetwatch collector`.
#[derive(Debug, Args)]
pub struct CollectorArgs {
    /// Collector config file (Prometheus-shaped YAML).
    #[arg(long)]
    pub config: PathBuf,
    /// Directory for the collector's state: its remote-write queues under
    /// `queue/`. Overrides `storage.path`; default `./collector-data`.
    #[arg(long = "data-dir")]
    pub data_dir: Option<PathBuf>,
    /// Address of the collector's own /metrics and health endpoints.
    #[arg(long, default_value = "127.0.0.1:9191")]
    pub listen: String,
    /// Only validate the config file and exit.
    #[arg(long = "config.check")]
    pub config_check: bool,
}

/// Flags of `fleetwatch simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of VMs.
    #[arg(long, default_value_t = 100)]
    pub vms: usize,
    /// Cluster name (used for node names).
    #[arg(long, default_value = "sim")]
    pub cluster: String,
    /// Listen address for /metrics.
    #[arg(long, default_value = "127.0.0.1:9300")]
    pub listen: String,
    /// Scenarios to switch on: memory-pressure, migration-failures, cluster-down.
    #[arg(long = "scenario")]
    pub scenarios: Vec<Scenario>,
    /// Seed of the simulated fleet (same seed, same VMs).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory to write VM log lines into (Kubernetes pod log layout).
    #[arg(long = "log-dir")]
    pub log_dir: Option<PathBuf>,
    /// Serve one fixed snapshot instead of moving values (for tests and
    /// reproducible comparisons).
    #[arg(long)]
    pub frozen: bool,
}

/// Flags of `fleetwatch demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the hub keeps its data.
    #[arg(long = "data-dir", default_value = "./demo-data")]
    pub data_dir: PathBuf,
    /// Hub listen address.
    #[arg(long, default_value = "127.0.0.1:9190")]
    pub listen: String,
    /// VMs per simulated cluster.
    #[arg(long, default_value_t = 50)]
    pub vms: usize,
    /// Scrape interval of the demo collectors.
    #[arg(long = "scrape-interval", default_value = "5s")]
    pub scrape_interval: String,
}

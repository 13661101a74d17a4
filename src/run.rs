//! Starting each subcommand's components and stopping them on a signal.

use std::future::Future;

use anyhow::{Context, Result};
use fleetwatch_aggregator::{Hub, HubConfig};
use fleetwatch_collector::{Collector, CollectorConfig};
use fleetwatch_simulator::{Simulator, SimulatorOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{AggregatorArgs, Cli, CollectorArgs, Command, RulesCommand, SimulateArgs};

/// Runs the chosen subcommand to completion.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Aggregator(args) => aggregator(args).await,
        Command::Collector(args) => collector(args).await,
        Command::Simulate(args) => simulate(args).await,
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Rules(RulesCommand::Check { files }) => rules_check(&files),
        Command::Rules(RulesCommand::Test { files }) => rules_test(&files),
    }
}

/// Runs rule unit tests like `promtool test rules`: one report per file,
/// failing if any test fails.
fn rules_test(files: &[std::path::PathBuf]) -> Result<()> {
    let mut failed = 0;
    for path in files {
        let outcome = fleetwatch_rules::unittest::run_file(path);
        println!("{}", outcome.report);
        if !outcome.passed {
            failed += 1;
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} rule test files failed", files.len());
    }
    Ok(())
}

/// Checks rule files like `promtool check rules`: one report per file,
/// failing if any file is invalid.
fn rules_check(files: &[std::path::PathBuf]) -> Result<()> {
    let mut failed = 0;
    for path in files {
        println!("Checking {}", path.display());
        match fleetwatch_rules::load_rule_file(path) {
            Ok(file) => {
                let rules: usize = file.groups.iter().map(|g| g.rules.len()).sum();
                println!("  SUCCESS: {rules} rules found");
            }
            Err(e) => {
                failed += 1;
                println!("  FAILED:\n{e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} rule files failed the check", files.len());
    }
    Ok(())
}

/// A shutdown signal shared by every component of one process.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// A signal fired by SIGINT (Ctrl-C) or SIGTERM.
    pub fn on_signals() -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            let _ = tx.send(true);
        });
        Self(rx)
    }

    /// A future that resolves when shutdown is signalled.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

async fn aggregator(args: AggregatorArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => HubConfig::load(path)?,
        None => HubConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let listener = bind(&config.listen).await?;
    let hub = Hub::open(config).await?;
    let shutdown = Shutdown::on_signals();
    reload_rules_on_sighup(hub.state());
    hub.serve(listener, shutdown.wait()).await?;
    Ok(())
}

async fn collector(args: CollectorArgs) -> Result<()> {
    let config = CollectorConfig::load(&args.config)?;
    config.validate()?;
    if args.config_check {
        println!("{}: config is valid", args.config.display());
        return Ok(());
    }
    let data_dir = args
        .data_dir
        .or_else(|| config.storage.path.clone())
        .unwrap_or_else(|| std::path::PathBuf::from("./collector-data"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let collector = Collector::open(config, Some(&data_dir))?.with_config_path(args.config.clone());
    let listener = bind(&args.listen).await?;
    let shutdown = Shutdown::on_signals();
    reload_on_sighup(collector.reload_handle());
    let router = collector.metrics_router();
    let stop = shutdown.wait();
    let http = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
    });
    collector.run(shutdown.wait()).await?;
    http.await??;
    Ok(())
}

/// Reloads the collector's config on every SIGHUP (Unix only).
fn reload_on_sighup(handle: fleetwatch_collector::ReloadHandle) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use POST /-/reload");
            return;
        };
        // Ends with the process.
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            if let Err(e) = handle.reload().await {
                tracing::error!(error = %e, "config reload failed");
            }
        }
    });
    #[cfg(not(unix))]
    drop(handle);
}

/// Reloads the hub's rules on every SIGHUP (Unix only), as
/// `POST /-/reload` does.
fn reload_rules_on_sighup(state: std::sync::Arc<fleetwatch_aggregator::hub::AppState>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; use POST /-/reload");
            return;
        };
        // Ends with the process; the outcome is logged by the reload.
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the rules");
            let _ = fleetwatch_aggregator::hub::reload_rules(&state).await;
        }
    });
    #[cfg(not(unix))]
    drop(state);
}

async fn simulate(args: SimulateArgs) -> Result<()> {
    let sim = Simulator::new(SimulatorOptions {
        cluster: args.cluster.clone(),
        vms: args.vms,
        nodes: None,
        scenarios: args.scenarios.clone(),
        seed: args.seed,
        log_dir: args.log_dir.clone(),
    });
    let listener = bind(&args.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, cluster = %args.cluster, vms = args.vms, frozen = args.frozen, "simulator listening");
    let shutdown = Shutdown::on_signals();
    if args.frozen {
        let text = sim.render(fleetwatch_aggregator::api::now_ms());
        let router = axum::Router::new()
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let text = text.clone();
                    async move {
                        (
                            [(
                                axum::http::header::CONTENT_TYPE,
                                fleetwatch_model::exposition::TEXT_CONTENT_TYPE,
                            )],
                            text,
                        )
                    }
                }),
            )
            .route("/-/healthy", axum::routing::get(|| async { "Healthy\n" }));
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.wait())
            .await?;
    } else {
        fleetwatch_simulator::serve(sim, listener, shutdown.wait()).await?;
    }
    Ok(())
}

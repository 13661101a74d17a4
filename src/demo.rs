//! `fleetwatch demo`: a hub, three simulated KubeVirt clusters and their
//! collectors in one process, on loopback, until Ctrl-C.

mod webhook;

use std::time::Duration;

use anyhow::{Context, Result};
use fleetwatch_aggregator::config::ReceiverConfig;
use fleetwatch_aggregator::{Hub, HubConfig};
use fleetwatch_collector::{Collector, CollectorConfig};
use fleetwatch_simulator::{Scenario, Simulator, SimulatorOptions};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::cli::DemoArgs;
use crate::run::Shutdown;

/// The simulated clusters: name and the scenarios switched on.
const CLUSTERS: [(&str, &[Scenario]); 3] = [
    ("prod-east", &[]),
    ("prod-west", &[Scenario::MemoryPressure]),
    ("staging", &[Scenario::MigrationFailures]),
];

/// The collector config the demo gives each cluster: scrape its simulator,
/// tail its simulator's VM logs (`log_dir`, the pod log layout; checkpoint
/// and queue under `state_dir`).
fn collector_yaml(
    cluster: &str,
    target: &str,
    hub: &str,
    interval: &str,
    log_dir: &std::path::Path,
    state_dir: &std::path::Path,
) -> String {
    format!(
        r#"global:
  scrape_interval: {interval}
  scrape_timeout: {interval}
  external_labels:
    cluster: {cluster}
scrape_configs:
  - job_name: kubevirt
    static_configs:
      - targets: ['{target}']
remote_write:
  - url: http://{hub}/api/v1/write
logs:
  url: http://{hub}/loki/api/v1/push
  paths: ['{}/*/*/*.log']
  path: '{}'
"#,
        log_dir.display(),
        state_dir.display()
    )
}

/// The seed's alert rules, evaluated by the demo's hub.
const SEED_RULES: &str = include_str!("../deploy/rules/multi-cluster-alerts.yaml");

/// The demo's webhook receiver as the hub's config names it.
fn webhook_receiver(addr: &str) -> Result<ReceiverConfig> {
    let yaml = format!(
        "name: demo-webhook\nurl: http://{addr}/\ngroup_by: [cluster, alertname]\n\
         group_wait: 10s\ngroup_interval: 1m\nrepeat_interval: 1h\n"
    );
    serde_yaml::from_str(&yaml).context("demo webhook receiver config")
}

/// Waits (bounded) for one component to stop, logging how it ended.
async fn join_component(name: &str, task: JoinHandle<Result<()>>) {
    match tokio::time::timeout(Duration::from_secs(15), task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => {
            tracing::warn!(component = %name, error = %e, "component stopped with an error")
        }
        Ok(Err(e)) => tracing::warn!(component = %name, error = %e, "component task failed"),
        Err(_) => tracing::warn!(component = %name, "component did not stop within 15s"),
    }
}

/// Runs the demo until Ctrl-C.
pub async fn run(args: DemoArgs) -> Result<()> {
    let shutdown = Shutdown::on_signals();
    let mut tasks: Vec<(String, JoinHandle<Result<()>>)> = Vec::new();

    let hub_listener = TcpListener::bind(&args.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (is another hub running? try --listen)",
            args.listen
        )
    })?;
    let hub_addr = hub_listener.local_addr()?.to_string();
    // The seed's rules, with alerts delivered to a webhook receiver that
    // prints them.
    let rules_dir = args.data_dir.join("rules");
    std::fs::create_dir_all(&rules_dir)
        .with_context(|| format!("cannot create {}", rules_dir.display()))?;
    let rules_file = rules_dir.join("multi-cluster-alerts.yaml");
    std::fs::write(&rules_file, SEED_RULES)
        .with_context(|| format!("cannot write {}", rules_file.display()))?;
    let webhook_listener = TcpListener::bind("127.0.0.1:0").await?;
    let webhook_addr = webhook_listener.local_addr()?.to_string();
    let stop = shutdown.wait();
    tasks.push((
        "webhook receiver".to_string(),
        tokio::spawn(async move {
            Ok(axum::serve(webhook_listener, webhook::router())
                .with_graceful_shutdown(stop)
                .await?)
        }),
    ));
    let mut config = HubConfig {
        listen: hub_addr.clone(),
        data_dir: args.data_dir.clone(),
        rule_files: vec![rules_file.display().to_string()],
        receivers: vec![webhook_receiver(&webhook_addr)?],
        ..HubConfig::default()
    };
    config.global.evaluation_interval = Some(15_000);
    let hub = Hub::open(config).await?;
    // The hub stops last, so collectors can flush their queues into it.
    let (stop_hub, hub_stopped) = tokio::sync::watch::channel(false);
    let hub_task: JoinHandle<Result<()>> = tokio::spawn(async move {
        let mut rx = hub_stopped;
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        Ok(hub.serve(hub_listener, stop).await?)
    });

    let mut lines = Vec::new();
    for (i, (cluster, scenarios)) in CLUSTERS.iter().enumerate() {
        let log_dir = args.data_dir.join("logs").join(cluster);
        let sim = Simulator::new(SimulatorOptions {
            cluster: cluster.to_string(),
            vms: args.vms,
            nodes: None,
            scenarios: scenarios.to_vec(),
            seed: 1000 + i as u64,
            log_dir: Some(log_dir.clone()),
        });
        let sim_listener = TcpListener::bind("127.0.0.1:0").await?;
        let sim_addr = sim_listener.local_addr()?.to_string();
        let stop = shutdown.wait();
        tasks.push((
            format!("simulator {cluster}"),
            tokio::spawn(
                async move { Ok(fleetwatch_simulator::serve(sim, sim_listener, stop).await?) },
            ),
        ));

        let state_dir = args.data_dir.join("collector-logs").join(cluster);
        let yaml = collector_yaml(
            cluster,
            &sim_addr,
            &hub_addr,
            &args.scrape_interval,
            &log_dir,
            &state_dir,
        );
        let config = CollectorConfig::from_yaml_str(&yaml)?;
        config.validate()?;
        let collector = Collector::new(config)?;
        let metrics_listener = TcpListener::bind("127.0.0.1:0").await?;
        let metrics_addr = metrics_listener.local_addr()?.to_string();
        let router = collector.metrics_router();
        let stop = shutdown.wait();
        tasks.push((
            format!("collector {cluster} metrics"),
            tokio::spawn(async move {
                Ok(axum::serve(metrics_listener, router)
                    .with_graceful_shutdown(stop)
                    .await?)
            }),
        ));
        let stop = shutdown.wait();
        tasks.push((
            format!("collector {cluster}"),
            tokio::spawn(async move { Ok(collector.run(stop).await?) }),
        ));
        let scen: Vec<String> = scenarios.iter().map(|s| s.to_string()).collect();
        lines.push(format!(
            "  {cluster:<10} {} VMs{}  simulator http://{sim_addr}/metrics  collector http://{metrics_addr}/metrics",
            args.vms,
            if scen.is_empty() { String::new() } else { format!(" ({})", scen.join(", ")) }
        ));
    }

    println!(
        "\nfleetwatch demo is running.\n\n  hub        http://{hub_addr}  (Prometheus datasource URL for Grafana)\n{}\n\n\
         Data arrives every {}. Try:\n\
         \x20 curl -s 'http://{hub_addr}/api/v1/query' --data-urlencode 'query=count by (cluster) (kubevirt_vm_memory_usage_bytes)'\n\
         \x20 curl -s 'http://{hub_addr}/api/v1/query' --data-urlencode 'query=kubevirt_vm_memory_usage_bytes / kubevirt_vm_memory_available_bytes > 0.9'\n\
         \x20 curl -s 'http://{hub_addr}/api/v1/query' --data-urlencode 'query=sum by (cluster) (rate(kubevirt_vmi_cpu_usage_seconds_total[1m]))'\n\n\
         VM logs (Loki API, e.g. Grafana's Loki datasource on the same URL):\n\
         \x20 curl -s 'http://{hub_addr}/loki/api/v1/query_range' --data-urlencode 'query={{cluster=\"staging\"}} |= \"migration\" |= \"failed\"'\n\
         \x20 curl -s 'http://{hub_addr}/loki/api/v1/query' --data-urlencode 'query=sum by (cluster, namespace) (count_over_time({{container=\"compute\"}} |= \"failed\" [10m]))'\n\n\
         The seed's rules (VMHighMemory, VMMigrationFailed, ClusterDown) run every 15 s:\n\
         \x20 curl -s 'http://{hub_addr}/api/v1/alerts'    (pending and firing alerts)\n\
         \x20 curl -s 'http://{hub_addr}/api/v1/rules'\n\
         Firing and resolved alerts are printed here as the webhook receiver gets them ([webhook] lines).\n\n\
         Data is kept in {}. Press Ctrl-C to stop.\n",
        lines.join("\n"),
        args.scrape_interval,
        args.data_dir.display()
    );

    shutdown.wait().await;
    // Simulators and collectors first (collectors flush into the running
    // hub), then the hub.
    for (name, task) in tasks {
        join_component(&name, task).await;
    }
    let _ = stop_hub.send(true);
    join_component("hub", hub_task).await;
    println!("fleetwatch demo stopped.");
    Ok(())
}

//! `loadgen generate`: a fleet's scrapes, encoded as Prometheus would send
//! them.
//!
//! Each cluster is a [`Simulator`] (KubeVirt's metric families with their
//! real labels and values). Every scrape interval each cluster is rendered,
//! the selected families are taken with the labels a collector adds
//! (`cluster`, `job`, `instance`), and the series are cut into requests of
//! at most `batch` series with one sample each — what Prometheus's remote
//! write sends with its default `max_samples_per_send` of 2,000.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::Args;
use fleetwatch_model::remote_write::{encode_write_request, SeriesSamples};
use fleetwatch_model::{Labels, Sample};
use fleetwatch_simulator::{Simulator, SimulatorOptions};

use crate::format::{meta_path, Writer};

/// Per-VM families taken from the simulator, with the `job` a KubeVirt
/// scrape (virt-handler on the VM's node) gives them. The seed's three
/// `kubevirt_vm_*` names, then a dashboard's worth of `kubevirt_vmi_*`.
const VM_FAMILIES: &[&str] = &[
    "kubevirt_vm_memory_usage_bytes",
    "kubevirt_vm_memory_available_bytes",
    "kubevirt_vm_migration_failed_total",
    "kubevirt_vmi_cpu_usage_seconds_total",
    "kubevirt_vmi_memory_used_bytes",
    "kubevirt_vmi_network_receive_bytes_total",
    "kubevirt_vmi_network_transmit_bytes_total",
    // Present only while a migration runs or just finished: a little churn.
    "kubevirt_vmi_migration_data_remaining_bytes",
    "kubevirt_vmi_migration_succeeded",
    "kubevirt_vmi_migration_failed",
];

/// Node-exporter families per node.
const NODE_FAMILIES: &[&str] = &[
    "node_cpu_seconds_total",
    "node_memory_MemTotal_bytes",
    "node_memory_MemAvailable_bytes",
    "node_load1",
];

/// CPU modes of `node_cpu_seconds_total` kept (a collector's
/// `metric_relabel_configs` keeping what the fleet dashboards use, busy =
/// 1 - idle), so the whole fleet comes to about 60,000 series.
const NODE_CPU_MODES: &[&str] = &["idle"];

const VM_JOB: &str = "kubevirt-prometheus-metrics";
const NODE_JOB: &str = "node-exporter";

/// Flags of `loadgen generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of clusters (`cluster-1`, ...), each with its own fleet.
    #[arg(long, default_value_t = 3)]
    pub clusters: usize,
    /// VMs per cluster (one node per ten VMs).
    #[arg(long, default_value_t = 2000)]
    pub vms: usize,
    /// Hours of data, ending now.
    #[arg(long, default_value_t = 1.0)]
    pub hours: f64,
    /// Scrape interval.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Most series per request (Prometheus's `max_samples_per_send`).
    #[arg(long, default_value_t = 2000)]
    pub batch: usize,
    /// Seed of the fleets (cluster `i` uses `seed + i`).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output load file; `<out>.meta` is written beside it.
    #[arg(long)]
    pub out: PathBuf,
}

/// One cluster being generated.
struct Cluster {
    name: String,
    sim: Simulator,
    /// Hashes of every label set sent, to count distinct series.
    seen: HashSet<u64>,
    /// Series per family in the last scrape.
    last_counts: BTreeMap<&'static str, usize>,
}

/// One cluster's scrape: encoded bodies with their sample counts.
type Encoded = Vec<(u32, Vec<u8>)>;

impl Cluster {
    /// Advances the simulation to `t_ms` and encodes its scrape.
    fn scrape(&mut self, t_ms: i64, batch: usize) -> Encoded {
        // Rendering moves the values; the text itself is not needed.
        drop(self.sim.render(t_ms));
        let mut series: Vec<SeriesSamples> = Vec::new();
        for (families, job, port) in [
            (VM_FAMILIES, VM_JOB, "8443"),
            (NODE_FAMILIES, NODE_JOB, "9100"),
        ] {
            for &family in families {
                let before = series.len();
                for (labels, value) in self.sim.last_values(family) {
                    if family == "node_cpu_seconds_total"
                        && !labels
                            .get("mode")
                            .is_some_and(|m| NODE_CPU_MODES.contains(&m))
                    {
                        continue;
                    }
                    series.push(SeriesSamples {
                        labels: self.collector_labels(labels, job, port),
                        samples: vec![Sample::new(t_ms, value)],
                    });
                }
                self.last_counts.insert(family, series.len() - before);
            }
        }
        for s in &series {
            self.seen.insert(s.labels.series_hash().0);
        }
        series
            .chunks(batch)
            .map(|chunk| (chunk.len() as u32, encode_write_request(chunk)))
            .collect()
    }

    /// Adds what a collector adds: the external `cluster` label and the
    /// scrape's `job` and `instance` (the node the target runs on).
    fn collector_labels(&self, mut labels: Labels, job: &str, port: &str) -> Labels {
        let instance = match labels.get("node") {
            Some(node) => format!("{node}:{port}"),
            None => format!("virt-controller.{}:{port}", self.name),
        };
        labels.set("cluster", &self.name);
        labels.set("job", job);
        labels.set("instance", &instance);
        labels
    }
}

/// Runs `generate`.
pub fn run(args: &GenerateArgs) -> Result<()> {
    if args.clusters == 0 || args.vms == 0 || args.batch == 0 {
        bail!("--clusters, --vms and --batch must be at least 1");
    }
    let interval_ms = i64::try_from(args.interval.as_millis()).context("--interval too long")?;
    if interval_ms <= 0 {
        bail!("--interval must be positive");
    }
    if !(args.hours > 0.0 && args.hours <= 24.0) {
        bail!("--hours must be in (0, 24]");
    }
    let scrapes = ((args.hours * 3_600_000.0) / interval_ms as f64).round() as i64;
    if scrapes < 1 {
        bail!("--hours shorter than one --interval");
    }
    let now_ms = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("clock before 1970")?
            .as_millis(),
    )?;
    // The hour ending now, aligned on the interval like scrape times.
    let end_ms = now_ms - now_ms % interval_ms;
    let start_ms = end_ms - (scrapes - 1) * interval_ms;

    let mut clusters: Vec<Cluster> = (0..args.clusters)
        .map(|i| {
            let name = format!("cluster-{}", i + 1);
            Cluster {
                sim: Simulator::new(SimulatorOptions {
                    cluster: name.clone(),
                    vms: args.vms,
                    nodes: None,
                    scenarios: Vec::new(),
                    seed: args.seed + i as u64,
                    log_dir: None,
                }),
                name,
                seen: HashSet::new(),
                last_counts: BTreeMap::new(),
            }
        })
        .collect();

    let began = Instant::now();
    let mut writer = Writer::create(&args.out)?;
    let (mut samples, mut requests, mut bytes) = (0u64, 0u64, 8u64);
    for k in 0..scrapes {
        let t_ms = start_ms + k * interval_ms;
        // One thread per cluster; the bodies are written in cluster order.
        let encoded: Vec<Encoded> = std::thread::scope(|scope| {
            let handles: Vec<_> = clusters
                .iter_mut()
                .map(|c| scope.spawn(move || c.scrape(t_ms, args.batch)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("generator thread panicked"))
                })
                .collect::<Result<_>>()
        })?;
        let scrape = u32::try_from(k)?;
        for (n, body) in encoded.into_iter().flatten() {
            writer.write(scrape, n, &body)?;
            samples += u64::from(n);
            requests += 1;
            bytes += 12 + body.len() as u64;
        }
        if k % 40 == 0 || k == scrapes - 1 {
            eprintln!(
                "generate: scrape {}/{scrapes}, {samples} samples, {:.0} s",
                k + 1,
                began.elapsed().as_secs_f64()
            );
        }
    }
    writer.finish()?;

    let series: usize = clusters.iter().map(|c| c.seen.len()).sum();
    let mut per_family: BTreeMap<&str, usize> = BTreeMap::new();
    for (family, n) in clusters.iter().flat_map(|c| &c.last_counts) {
        *per_family.entry(family).or_default() += n;
    }
    for (family, n) in &per_family {
        eprintln!("generate: last scrape: {n} series of {family}");
    }
    let vm_count = args.clusters * args.vms;
    let meta = format!(
        "series={series}\nsamples={samples}\nrequests={requests}\nscrapes={scrapes}\n\
         start_ms={start_ms}\nend_ms={end_ms}\ninterval_ms={interval_ms}\n\
         clusters={}\nvms={vm_count}\nfile_bytes={bytes}\n",
        args.clusters
    );
    let meta_file = meta_path(&args.out);
    std::fs::write(&meta_file, &meta)
        .with_context(|| format!("cannot write {}", meta_file.display()))?;
    println!(
        "series={series} samples={samples} requests={requests} scrapes={scrapes} \
         start_ms={start_ms} end_ms={end_ms} file_bytes={bytes} seconds={:.1}",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

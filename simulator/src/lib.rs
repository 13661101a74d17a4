//! A simulated KubeVirt cluster that serves realistic metrics over HTTP in
//! the Prometheus text format, and writes VM log lines like a kubelet does.
//!
//! [`Simulator::new`] generates a fleet of VMs on nodes from a seed (same
//! seed, same VMs, nodes and hot VMs). Every [`Simulator::render`] moves the
//! values to the given wall-clock time and renders them:
//!
//! - per VM (labels `name`, `namespace`, `node`): the names the seed's alert
//!   rules use (`kubevirt_vm_memory_usage_bytes`,
//!   `kubevirt_vm_memory_available_bytes`, `kubevirt_vm_migration_failed_total`)
//!   and KubeVirt's own `kubevirt_vmi_*` families (memory, CPU, vCPU,
//!   network with `interface`, storage with `drive`, `kubevirt_vmi_info`,
//!   migration gauges). About a fifth of the VMs carry
//!   `kubernetes_vmi_label_*` labels on their `kubevirt_vmi_*` series, as
//!   KubeVirt exports VMI labels;
//! - per migration object: `kubevirt_vmi_migration_{succeeded,failed}`
//!   (labels `namespace`, `vmi`, `vmim`; the last three per VM), and the
//!   `kubevirt_vmi_migrations_in_*_phase` counts;
//! - per node (label `node`): node-exporter's `node_cpu_seconds_total`
//!   (`cpu`, `mode`), `node_memory_MemTotal_bytes`,
//!   `node_memory_MemAvailable_bytes` and `node_load1`.
//!
//! In the normal scenario about 5% of the VMs (at least one) run hot, with
//! usage/available between 0.91 and 0.98, and every other VM stays at or
//! below 0.80, so the seed's `VMHighMemory` rule finds exactly the hot VMs;
//! [`Scenario::MemoryPressure`] heats about 30% of them (a superset).
//! Counters only grow. See [`Scenario`] for the other scenarios.
//!
//! Decisions worth knowing:
//! - time is injected: `render(now_ms)` is a pure function of the seed and
//!   the sequence of `now_ms` values, so tests need no clock;
//! - rendering twice at the same instant yields the same text;
//! - label sets are pre-rendered; every line is byte for byte what
//!   `fleetwatch_model::exposition::write_sample_line` writes, with labels
//!   in name order and no timestamps;
//! - a VM keeps its virt-launcher pod (name `virt-launcher-<vm>`, and uid)
//!   across migrations, so its log file stays put; only its `node` label
//!   moves.

mod error;
mod fleet;
mod http;
mod logs;
mod render;
mod scenario;
mod step;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use fleetwatch_model::Labels;
use rand::rngs::StdRng;
use rand::SeedableRng;

pub use error::Error;
pub use http::serve;
pub use scenario::Scenario;

use fleet::Fleet;
use logs::LogQueue;
use scenario::Effects;

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulatorOptions {
    /// Cluster name; nodes are called `<cluster>-node-01`, ...
    pub cluster: String,
    /// Number of VMs (`vm-0001`, ...).
    pub vms: usize,
    /// Number of nodes; by default one per ten VMs, rounded up, at least one.
    pub nodes: Option<usize>,
    /// Scenarios switched on (none means [`Scenario::Normal`]).
    pub scenarios: Vec<Scenario>,
    /// Seed of the fleet: the same seed yields the same VMs, nodes and hot VMs.
    pub seed: u64,
    /// Where to write VM log lines (Kubernetes pod log layout); none by default.
    pub log_dir: Option<PathBuf>,
}

impl Default for SimulatorOptions {
    /// `sim`, 100 VMs, default nodes, normal scenario, seed 1, no logs.
    fn default() -> Self {
        Self {
            cluster: "sim".to_string(),
            vms: 100,
            nodes: None,
            scenarios: Vec::new(),
            seed: 1,
            log_dir: None,
        }
    }
}

/// The time the simulation started and was last moved to.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start_ms: i64,
    last_ms: i64,
}

/// Everything that changes, behind the lock.
#[derive(Debug)]
struct State {
    fleet: Fleet,
    rng: StdRng,
    clock: Option<Clock>,
    logs: Option<LogQueue>,
    /// Size of the last render, to allocate the next one at once.
    last_len: usize,
}

#[derive(Debug)]
struct Inner {
    cluster: String,
    effects: Effects,
    log_dir: Option<PathBuf>,
    state: Mutex<State>,
    /// Serialises log writing so lines reach their files in queue order.
    log_io: Mutex<()>,
}

/// A simulated KubeVirt cluster. Cloning is cheap: clones share the state.
#[derive(Debug, Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

/// Locks a mutex, recovering the data if a panicking holder poisoned it
/// (the state is always left consistent between statements that matter).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Simulator {
    /// Generates the fleet. Nothing moves until the first [`render`](Self::render).
    pub fn new(opts: SimulatorOptions) -> Self {
        let effects = Effects::from_scenarios(&opts.scenarios);
        let fleet = Fleet::generate(&opts.cluster, opts.vms, opts.nodes, opts.seed, &effects);
        // A separate stream for the evolution, so generation never shifts it.
        let rng = StdRng::seed_from_u64(opts.seed ^ 0x9e37_79b9_7f4a_7c15);
        let logs = opts
            .log_dir
            .as_ref()
            .map(|_| LogQueue::new((4 * opts.vms).max(1024)));
        Self {
            inner: Arc::new(Inner {
                cluster: opts.cluster,
                effects,
                log_dir: opts.log_dir,
                state: Mutex::new(State {
                    fleet,
                    rng,
                    clock: None,
                    logs,
                    last_len: 0,
                }),
                log_io: Mutex::new(()),
            }),
        }
    }

    /// The cluster's name.
    pub fn cluster(&self) -> &str {
        &self.inner.cluster
    }

    /// True when the [`Scenario::ClusterDown`] scenario is on: `/metrics`
    /// answers 503.
    pub fn is_down(&self) -> bool {
        self.inner.effects.down
    }

    /// Advances the simulation to wall-clock `now_ms` (values move as a
    /// function of the time elapsed since the first render) and renders the
    /// exposition text. A `now_ms` earlier than the previous one moves
    /// nothing; the text is then rendered from the current state. Also
    /// writes up to a few hundred queued log lines when a log dir is set.
    pub fn render(&self, now_ms: i64) -> String {
        let inner = &*self.inner;
        let mut st = lock(&inner.state);
        let State {
            fleet,
            rng,
            clock,
            logs,
            last_len,
        } = &mut *st;
        match clock {
            None => {
                step::boot(fleet, now_ms, &inner.effects, rng, logs.as_mut());
                *clock = Some(Clock {
                    start_ms: now_ms,
                    last_ms: now_ms,
                });
            }
            Some(c) if now_ms > c.last_ms => {
                let t = (now_ms - c.start_ms) as f64 / 1000.0;
                let dt = (now_ms - c.last_ms) as f64 / 1000.0;
                c.last_ms = now_ms;
                step::step(fleet, t, dt, now_ms, &inner.effects, rng, logs.as_mut());
            }
            Some(_) => {}
        }
        let mut text = String::with_capacity(*last_len + *last_len / 8 + 1024);
        render::render_text(fleet, &mut text);
        *last_len = text.len();

        let batch = logs
            .as_mut()
            .map(|q| q.take(logs::LINES_PER_RENDER))
            .unwrap_or_default();
        if let (Some(dir), false) = (&inner.log_dir, batch.is_empty()) {
            // Take the writer lock before releasing the state, so batches
            // are written in the order they were taken.
            let _io = lock(&inner.log_io);
            drop(st);
            if let Err(err) = logs::write_lines(dir, &batch) {
                tracing::warn!(error = %err, dir = %dir.display(), lines = batch.len(), "cannot write simulated vm logs");
            }
        }
        text
    }

    /// The exact `(labels, value)` pairs the last [`render`](Self::render)
    /// produced for metric `name`; the labels include `__name__`. Empty
    /// before the first render and for unknown names.
    pub fn last_values(&self, name: &str) -> Vec<(Labels, f64)> {
        let st = lock(&self.inner.state);
        if st.clock.is_none() {
            return Vec::new();
        }
        render::values(&st.fleet, name)
    }

    /// Names of the VMs whose `kubevirt_vm_memory_usage_bytes /
    /// kubevirt_vm_memory_available_bytes` exceeded 0.9 in the last render,
    /// sorted. Empty before the first render.
    pub fn hot_vms(&self) -> Vec<String> {
        let st = lock(&self.inner.state);
        if st.clock.is_none() {
            return Vec::new();
        }
        st.fleet.hot_vms()
    }

    /// The HTTP API: `GET /metrics` renders at the current time (503 under
    /// [`Scenario::ClusterDown`]), `GET /-/healthy` answers 200.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }
}

#[cfg(test)]
mod tests;

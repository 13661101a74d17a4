//! Kubernetes service discovery (`kubernetes_sd_configs`), as Prometheus
//! does it: roles `pod`, `endpoints`, `service` and `node`, the same
//! `__meta_kubernetes_*` labels, `namespaces` and `selectors`. Each
//! configured entry runs list + watch tasks against the API server
//! ([`watch`]) that keep stores of the objects current and wake the
//! collector's run loop on every change; the run loop then asks for the
//! targets ([`KubernetesSd::targets`]) and brings the scrape loops in line.
//! On reload, entries whose config changed are restarted.

mod client;
mod endpoints;
mod error;
mod kubeconfig;
mod labels;
mod lines;
mod node;
mod objects;
mod pod;
mod service;
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

pub use client::{KubeEnv, SERVICE_ACCOUNT_DIR};
pub use error::KubeError;
pub use labels::TargetLabels;

use crate::config::{CollectorConfig, KubernetesRole, KubernetesSdConfig};
use client::ApiClient;
use objects::{Endpoints, Node, Pod, Resource, Service};
use watch::{Store, WatchSpec};

/// How long to wait before building the API client again after it failed.
const CLIENT_RETRY: Duration = Duration::from_secs(10);
/// Changes are passed on at most this often (as Prometheus's discovery
/// manager does), so a burst of events costs one target rebuild.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(5);

/// The stores of one entry.
#[derive(Debug, Default, Clone)]
struct Stores {
    pods: Store<Pod>,
    services: Store<Service>,
    endpoints: Store<Endpoints>,
    nodes: Store<Node>,
}

#[derive(Debug)]
struct Running {
    config: KubernetesSdConfig,
    stores: Stores,
    task: JoinHandle<()>,
}

/// Every running `kubernetes_sd_configs` entry of a collector, keyed by
/// job name and position in the job's list.
#[derive(Debug)]
pub struct KubernetesSd {
    running: BTreeMap<(String, usize), Running>,
    /// Notified by the watches on every change.
    raw: Arc<Notify>,
    /// Notified at most every [`UPDATE_INTERVAL`] after changes.
    changed: Arc<Notify>,
    /// Forwards `raw` to `changed`.
    throttle: Option<JoinHandle<()>>,
    env: KubeEnv,
}

impl Default for KubernetesSd {
    fn default() -> Self {
        Self::with_env(KubeEnv::from_process())
    }
}

impl KubernetesSd {
    /// A discovery that resolves in-cluster settings from `env`.
    pub fn with_env(env: KubeEnv) -> Self {
        Self {
            running: BTreeMap::new(),
            raw: Arc::new(Notify::new()),
            changed: Arc::new(Notify::new()),
            throttle: None,
            env,
        }
    }

    /// Notified when some entry's objects changed (at most every
    /// [`UPDATE_INTERVAL`]; a notification is never lost).
    pub fn notifier(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }

    /// Whether any entry is running.
    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Starts the entries of `cfg` not running yet, restarts those whose
    /// config changed and stops those gone. Must run inside a Tokio runtime.
    pub fn sync(&mut self, cfg: &CollectorConfig) {
        let mut wanted = BTreeMap::new();
        for sc in &cfg.scrape_configs {
            for (i, sd) in sc.kubernetes_sd_configs.iter().enumerate() {
                wanted.insert((sc.job_name.clone(), i), sd);
            }
        }
        self.running.retain(|key, r| {
            let keep = wanted.get(key).is_some_and(|sd| **sd == r.config);
            if !keep {
                r.task.abort();
            }
            keep
        });
        if self.throttle.is_none() && !wanted.is_empty() {
            let (raw, changed) = (Arc::clone(&self.raw), Arc::clone(&self.changed));
            self.throttle = Some(tokio::spawn(async move {
                // Bounded by the task's abort in `stop`.
                loop {
                    raw.notified().await;
                    tokio::time::sleep(UPDATE_INTERVAL).await;
                    changed.notify_one();
                }
            }));
        }
        for (key, sd) in wanted {
            if self.running.contains_key(&key) {
                continue;
            }
            let stores = Stores::default();
            let task = tokio::spawn(run_entry(
                key.0.clone(),
                sd.clone(),
                self.env.clone(),
                stores.clone(),
                Arc::clone(&self.raw),
            ));
            tracing::info!(job = %key.0, role = %sd.role, "kubernetes_sd started");
            self.running.insert(
                key,
                Running {
                    config: sd.clone(),
                    stores,
                    task,
                },
            );
        }
    }

    /// The targets entry `index` of job `job` currently discovers, each
    /// with all its labels (`__address__` and the `__meta_kubernetes_*`
    /// labels), in a stable order.
    pub fn targets(&self, job: &str, index: usize) -> Vec<TargetLabels> {
        let Some(r) = self.running.get(&(job.to_string(), index)) else {
            return Vec::new();
        };
        build_targets(r.config.role, &r.stores)
    }

    /// Stops every entry.
    pub fn stop(&mut self) {
        for r in self.running.values() {
            r.task.abort();
        }
        self.running.clear();
        if let Some(t) = self.throttle.take() {
            t.abort();
        }
    }
}

impl Drop for KubernetesSd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn read<T: Clone>(store: &Store<T>) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, T>> {
    store.read().unwrap_or_else(PoisonError::into_inner)
}

fn build_targets(role: KubernetesRole, stores: &Stores) -> Vec<TargetLabels> {
    match role {
        KubernetesRole::Pod => read(&stores.pods)
            .values()
            .flat_map(pod::pod_targets)
            .collect(),
        KubernetesRole::Service => read(&stores.services)
            .values()
            .flat_map(service::service_targets)
            .collect(),
        KubernetesRole::Node => read(&stores.nodes)
            .values()
            .flat_map(node::node_targets)
            .collect(),
        KubernetesRole::Endpoints => {
            let lookup = StoreLookup(stores);
            read(&stores.endpoints)
                .values()
                .flat_map(|e| endpoints::endpoints_targets(e, &lookup))
                .collect()
        }
    }
}

struct StoreLookup<'a>(&'a Stores);

impl endpoints::Lookup for StoreLookup<'_> {
    fn service(&self, namespace: &str, name: &str) -> Option<Service> {
        read(&self.0.services)
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }
    fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        read(&self.0.pods)
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }
}

/// Runs one entry: builds its client (retrying until it can), then the
/// watches its role needs, per namespace.
async fn run_entry(
    job: String,
    sd: KubernetesSdConfig,
    env: KubeEnv,
    stores: Stores,
    changed: Arc<Notify>,
) {
    // Bounded by the task's abort.
    let client = loop {
        match ApiClient::new(&sd, &env) {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!(job = %job, error = %e, "kubernetes_sd cannot reach the API server; retrying");
                tokio::time::sleep(CLIENT_RETRY).await;
            }
        }
    };
    let namespaces = namespaces(&sd, &client, &job);
    let mut tasks = JoinSet::new();
    let roles: &[KubernetesRole] = match sd.role {
        KubernetesRole::Endpoints => &[
            KubernetesRole::Endpoints,
            KubernetesRole::Service,
            KubernetesRole::Pod,
        ],
        KubernetesRole::Pod => &[KubernetesRole::Pod],
        KubernetesRole::Service => &[KubernetesRole::Service],
        KubernetesRole::Node => &[KubernetesRole::Node],
    };
    for role in roles {
        let scopes: Vec<Option<String>> = match &namespaces {
            Some(names) if *role != KubernetesRole::Node => {
                names.iter().cloned().map(Some).collect()
            }
            _ => vec![None],
        };
        for ns in scopes {
            let selector = sd.selector(*role);
            let spec = WatchSpec {
                client: client.clone(),
                namespace: ns,
                label_selector: selector.and_then(|s| s.label.clone()),
                field_selector: selector.and_then(|s| s.field.clone()),
            };
            let changed = Arc::clone(&changed);
            match role {
                KubernetesRole::Pod => spawn(&mut tasks, spec, &stores.pods, changed),
                KubernetesRole::Service => spawn(&mut tasks, spec, &stores.services, changed),
                KubernetesRole::Endpoints => spawn(&mut tasks, spec, &stores.endpoints, changed),
                KubernetesRole::Node => spawn(&mut tasks, spec, &stores.nodes, changed),
            }
        }
    }
    // The watches never end on their own; aborting this task drops the
    // set, which aborts them.
    while tasks.join_next().await.is_some() {}
}

fn spawn<T: Resource>(
    tasks: &mut JoinSet<()>,
    spec: WatchSpec,
    store: &Store<T>,
    changed: Arc<Notify>,
) {
    tasks.spawn(watch::run(spec, Arc::clone(store), changed));
}

/// The namespaces to watch: `names` plus the own namespace when asked;
/// `None` means all.
fn namespaces(sd: &KubernetesSdConfig, client: &ApiClient, job: &str) -> Option<Vec<String>> {
    if sd.namespaces.names.is_empty() && !sd.namespaces.own_namespace {
        return None;
    }
    let mut out = sd.namespaces.names.clone();
    if sd.namespaces.own_namespace {
        match &client.own_namespace {
            Some(ns) => out.push(ns.clone()),
            None => {
                tracing::error!(job = %job, "kubernetes_sd own_namespace: cannot tell the collector's namespace (no service account namespace file)")
            }
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

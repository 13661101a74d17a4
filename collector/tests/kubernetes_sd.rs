//! `kubernetes_sd_configs` against a Kubernetes API stand-in: the pod,
//! endpoints and node roles give Prometheus's meta labels; watch events
//! change the targets; 410 Gone relists; a cut connection reconnects; bad
//! events are skipped and the known targets kept; and the collector
//! shows discovered targets (with their discovered labels) on
//! `/api/v1/targets` and scrapes them.

mod common;
#[path = "common/kube_api.rs"]
mod kube_api;

use common::wait_until;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::Server;
use fleetwatch_collector::kubernetes_sd::{KubeEnv, KubernetesSd, TargetLabels};
use fleetwatch_collector::{Collector, CollectorConfig};
use kube_api::KubeApi;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Every wait in this file ends after this long.
const BOUND: Duration = Duration::from_secs(20);

fn labels(pairs: &[(&str, &str)]) -> TargetLabels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A virt-handler pod as KubeVirt's DaemonSet creates it.
fn virt_handler(name: &str, node: &str, ip: &str, scrape_port: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "kubevirt", "uid": format!("uid-{name}"),
            "labels": {"kubevirt.io": "virt-handler", "prometheus.kubevirt.io": "true"},
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": scrape_port,
                "prometheus.io/path": "/metrics"
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                "name": "virt-handler", "uid": "ds-uid", "controller": true}]
        },
        "spec": {
            "nodeName": node,
            "initContainers": [{"name": "virt-launcher",
                "image": "quay.io/kubevirt/virt-launcher:v1.3.0"}],
            "containers": [{"name": "virt-handler",
                "image": "quay.io/kubevirt/virt-handler:v1.3.0",
                "ports": [{"name": "metrics", "containerPort": 8443, "protocol": "TCP"}]}]
        },
        "status": {
            "phase": "Running", "podIP": ip, "hostIP": "192.168.10.1",
            "conditions": [{"type": "Initialized", "status": "True"},
                           {"type": "Ready", "status": "True"}],
            "initContainerStatuses": [{"name": "virt-launcher", "containerID": "cri-o://init1"}],
            "containerStatuses": [{"name": "virt-handler", "containerID": format!("cri-o://{name}")}]
        }
    })
}

/// The labels Prometheus's pod role gives the pod of [`virt_handler`],
/// without the container part.
fn virt_handler_pod_labels(name: &str, node: &str, ip: &str, scrape_port: &str) -> TargetLabels {
    let uid = format!("uid-{name}");
    labels(&[
        ("__meta_kubernetes_namespace", "kubevirt"),
        ("__meta_kubernetes_pod_name", name),
        ("__meta_kubernetes_pod_ip", ip),
        ("__meta_kubernetes_pod_ready", "true"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_node_name", node),
        ("__meta_kubernetes_pod_host_ip", "192.168.10.1"),
        ("__meta_kubernetes_pod_uid", &uid),
        ("__meta_kubernetes_pod_controller_kind", "DaemonSet"),
        ("__meta_kubernetes_pod_controller_name", "virt-handler"),
        ("__meta_kubernetes_pod_label_kubevirt_io", "virt-handler"),
        ("__meta_kubernetes_pod_labelpresent_kubevirt_io", "true"),
        ("__meta_kubernetes_pod_label_prometheus_kubevirt_io", "true"),
        (
            "__meta_kubernetes_pod_labelpresent_prometheus_kubevirt_io",
            "true",
        ),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
            "true",
        ),
        (
            "__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape",
            "true",
        ),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_port",
            scrape_port,
        ),
        (
            "__meta_kubernetes_pod_annotationpresent_prometheus_io_port",
            "true",
        ),
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_path",
            "/metrics",
        ),
        (
            "__meta_kubernetes_pod_annotationpresent_prometheus_io_path",
            "true",
        ),
    ])
}

/// The two targets (container port, port-less init container) of [`virt_handler`].
fn virt_handler_targets(name: &str, node: &str, ip: &str, scrape_port: &str) -> Vec<TargetLabels> {
    let pod = virt_handler_pod_labels(name, node, ip, scrape_port);
    let id = format!("cri-o://{name}");
    let mut main = pod.clone();
    main.extend(labels(&[
        ("__address__", &format!("{ip}:8443")),
        ("__meta_kubernetes_pod_container_name", "virt-handler"),
        ("__meta_kubernetes_pod_container_id", &id),
        (
            "__meta_kubernetes_pod_container_image",
            "quay.io/kubevirt/virt-handler:v1.3.0",
        ),
        ("__meta_kubernetes_pod_container_init", "false"),
        ("__meta_kubernetes_pod_container_port_name", "metrics"),
        ("__meta_kubernetes_pod_container_port_number", "8443"),
        ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
    ]));
    let mut init = pod;
    init.extend(labels(&[
        ("__address__", ip),
        ("__meta_kubernetes_pod_container_name", "virt-launcher"),
        ("__meta_kubernetes_pod_container_id", "cri-o://init1"),
        (
            "__meta_kubernetes_pod_container_image",
            "quay.io/kubevirt/virt-launcher:v1.3.0",
        ),
        ("__meta_kubernetes_pod_container_init", "true"),
    ]));
    vec![main, init]
}

fn sd_config(kubeconfig: &Path, job: &str, sd: &str) -> CollectorConfig {
    let yaml = format!(
        "scrape_configs:\n  - job_name: {job}\n    kubernetes_sd_configs:\n      - kubeconfig_file: '{}'\n        {sd}\n",
        kubeconfig.display()
    );
    let cfg = CollectorConfig::from_yaml_str(&yaml).expect("config parses");
    cfg.validate().expect("config is valid");
    cfg
}

/// A started stand-in, a temporary directory and a kubeconfig in it.
async fn stand_in() -> (KubeApi, tempfile::TempDir, std::path::PathBuf) {
    let api = KubeApi::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = api.write_kubeconfig(dir.path());
    (api, dir, kubeconfig)
}

/// A collector running in the background with its HTTP API served.
struct Running {
    http: Server,
    stop: oneshot::Sender<()>,
    run: tokio::task::JoinHandle<Result<(), fleetwatch_collector::CollectorError>>,
}

impl Running {
    async fn start(collector: Collector) -> Self {
        let http = Server::start(collector.metrics_router()).await;
        let (stop, stop_rx) = oneshot::channel::<()>();
        let run = tokio::spawn(collector.run(async {
            let _ = stop_rx.await;
        }));
        Self { http, stop, run }
    }

    fn targets_url(&self) -> String {
        format!("http://{}/api/v1/targets", self.http.addr)
    }

    /// Stops the collector (it must stop cleanly) and its HTTP server.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(BOUND, self.run)
            .await
            .expect("collector stops")
            .expect("join")
            .expect("clean stop");
        self.http.stop().await;
    }
}

/// A discovery that is not in a cluster and has no `KUBECONFIG`.
fn discovery() -> KubernetesSd {
    KubernetesSd::with_env(KubeEnv::default())
}

fn pod_config(kubeconfig: &Path) -> CollectorConfig {
    sd_config(
        kubeconfig,
        "kubevirt",
        "role: pod\n        namespaces: {names: [kubevirt]}\n        selectors: [{role: pod, label: 'kubevirt.io=virt-handler'}]",
    )
}

#[tokio::test]
async fn pod_role_follows_watch_events_relists_on_410_and_reconnects() {
    let (api, _dir, kubeconfig) = stand_in().await;
    api.apply(
        "pods",
        virt_handler("virt-handler-a", "node-1", "10.128.0.15", "8443"),
    );
    // Not selected: another namespace, and another label.
    let mut other = virt_handler("virt-handler-x", "node-1", "10.128.0.99", "8443");
    other["metadata"]["namespace"] = json!("default");
    api.apply("pods", other);
    let mut controller = virt_handler("virt-controller-1", "node-1", "10.128.0.98", "8443");
    controller["metadata"]["labels"]["kubevirt.io"] = json!("virt-controller");
    api.apply("pods", controller);

    let cfg = pod_config(&kubeconfig);
    let mut sd = discovery();
    sd.sync(&cfg);
    let a = virt_handler_targets("virt-handler-a", "node-1", "10.128.0.15", "8443");
    wait_until("the first list", || sd.targets("kubevirt", 0) == a).await;
    let reqs = api.requests();
    assert!(
        reqs[0].starts_with(
            "LIST /api/v1/namespaces/kubevirt/pods?labelSelector=kubevirt.io%3Dvirt-handler"
        ),
        "{reqs:?}"
    );
    wait_until("the watch", || api.open_watches() == 1).await;
    let watch = api
        .requests()
        .into_iter()
        .find(|r| r.starts_with("WATCH"))
        .expect("a watch");
    assert!(watch.contains("watch=1"), "{watch}");
    assert!(watch.contains("allowWatchBookmarks=true"), "{watch}");
    assert!(watch.contains("resourceVersion=3"), "{watch}");
    assert!(
        watch.contains("labelSelector=kubevirt.io%3Dvirt-handler"),
        "{watch}"
    );

    // ADDED, MODIFIED, DELETED.
    api.apply(
        "pods",
        virt_handler("virt-handler-b", "node-2", "10.129.0.7", "8443"),
    );
    let b = virt_handler_targets("virt-handler-b", "node-2", "10.129.0.7", "8443");
    let ab: Vec<TargetLabels> = a.iter().chain(&b).cloned().collect();
    wait_until("ADDED", || sd.targets("kubevirt", 0) == ab).await;
    api.apply(
        "pods",
        virt_handler("virt-handler-b", "node-2", "10.129.0.7", "9443"),
    );
    let b2 = virt_handler_targets("virt-handler-b", "node-2", "10.129.0.7", "9443");
    let ab2: Vec<TargetLabels> = a.iter().chain(&b2).cloned().collect();
    wait_until("MODIFIED", || sd.targets("kubevirt", 0) == ab2).await;
    api.delete("pods", "kubevirt", "virt-handler-a");
    wait_until("DELETED", || sd.targets("kubevirt", 0) == b2).await;

    // 410 Gone: the watch ends with an ERROR 410 event, the version is
    // compacted, and only a new list shows a change made meanwhile.
    let lists = api.count("LIST ");
    api.apply_silently(
        "pods",
        virt_handler("virt-handler-c", "node-3", "10.130.0.2", "8443"),
    );
    api.expire();
    let c = virt_handler_targets("virt-handler-c", "node-3", "10.130.0.2", "8443");
    let b2c: Vec<TargetLabels> = b2.iter().chain(&c).cloned().collect();
    wait_until("the relist after 410", || sd.targets("kubevirt", 0) == b2c).await;
    assert_eq!(api.count("LIST "), lists + 1, "{:?}", api.requests());

    // A cut connection: the watch resumes from the last version seen
    // (no relist), and events sent meanwhile arrive.
    wait_until("the new watch", || api.open_watches() == 1).await;
    let (lists, watches) = (api.count("LIST "), api.count("WATCH "));
    api.drop_watches();
    api.delete("pods", "kubevirt", "virt-handler-c");
    wait_until("the event after reconnecting", || {
        sd.targets("kubevirt", 0) == b2
    })
    .await;
    assert_eq!(
        api.count("LIST "),
        lists,
        "no relist after a cut connection"
    );
    assert!(api.count("WATCH ") > watches, "watched again");

    sd.stop();
    api.stop().await;
}

#[tokio::test]
async fn bad_events_are_skipped_and_targets_kept() {
    let (api, _dir, kubeconfig) = stand_in().await;
    api.apply(
        "pods",
        virt_handler("virt-handler-a", "node-1", "10.128.0.15", "8443"),
    );
    let cfg = pod_config(&kubeconfig);
    let mut sd = discovery();
    sd.sync(&cfg);
    let a = virt_handler_targets("virt-handler-a", "node-1", "10.128.0.15", "8443");
    wait_until("the first list", || sd.targets("kubevirt", 0) == a).await;
    wait_until("the watch", || api.open_watches() == 1).await;

    // Malformed JSON, an object of the wrong shape, a 5 MiB line: skipped,
    // the stream goes on.
    api.inject("pods", "{\"type\": \"ADDED\", \"object\": {".to_string());
    api.inject(
        "pods",
        json!({"type": "MODIFIED", "object": {"metadata": 7}}).to_string(),
    );
    let huge = "x".repeat(5 << 20);
    api.inject(
        "pods",
        json!({"type": "ADDED", "object": {"metadata": {"name": huge}}}).to_string(),
    );
    api.inject(
        "pods",
        json!({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "1"}}}).to_string(),
    );
    assert_eq!(sd.targets("kubevirt", 0), a, "previous targets kept");
    api.apply(
        "pods",
        virt_handler("virt-handler-b", "node-2", "10.129.0.7", "8443"),
    );
    let b = virt_handler_targets("virt-handler-b", "node-2", "10.129.0.7", "8443");
    let ab: Vec<TargetLabels> = a.iter().chain(&b).cloned().collect();
    wait_until("an event after the bad ones", || {
        sd.targets("kubevirt", 0) == ab
    })
    .await;

    // An ERROR event (not 410): the watch ends and starts again, without
    // a relist; the targets stay.
    let watches = api.count("WATCH ");
    let status =
        json!({"kind": "Status", "status": "Failure", "message": "internal error", "code": 500});
    api.inject(
        "pods",
        json!({"type": "ERROR", "object": status}).to_string(),
    );
    wait_until("the watch after the ERROR event", || {
        api.count("WATCH ") > watches
    })
    .await;
    assert_eq!(
        sd.targets("kubevirt", 0),
        ab,
        "targets kept after an ERROR event"
    );
    assert_eq!(api.count("LIST "), 1, "{:?}", api.requests());
    api.delete("pods", "kubevirt", "virt-handler-a");
    wait_until("events after the ERROR event", || {
        sd.targets("kubevirt", 0) == b
    })
    .await;

    sd.stop();
    api.stop().await;
}

fn pod(ns: &str, name: &str, ip: &str, ports: Value) -> Value {
    json!({
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
            "labels": {"app": "virt-api"}},
        "spec": {"nodeName": "node-1",
            "containers": [{"name": "virt-api", "image": "virt-api:v1", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip, "hostIP": "192.168.10.1",
            "conditions": [{"type": "Ready", "status": "False"}]}
    })
}

#[tokio::test]
async fn endpoints_role_gives_prometheus_labels() {
    let (api, _dir, kubeconfig) = stand_in().await;
    api.apply(
        "services",
        json!({"metadata": {"name": "virt-api", "namespace": "kubevirt",
            "labels": {"app.kubernetes.io/component": "kubevirt"},
            "annotations": {"prometheus.io/scrape": "true"}},
            "spec": {"type": "ClusterIP", "clusterIP": "172.30.0.10",
                "ports": [{"name": "metrics", "port": 8443, "protocol": "TCP"}]}}),
    );
    api.apply(
        "pods",
        pod(
            "kubevirt",
            "virt-api-1",
            "10.128.0.20",
            json!([{"name": "metrics", "containerPort": 8443, "protocol": "TCP"},
                   {"name": "debug", "containerPort": 6060, "protocol": "TCP"}]),
        ),
    );
    api.apply(
        "endpoints",
        json!({"metadata": {"name": "virt-api", "namespace": "kubevirt",
            "labels": {"app": "virt-api"}},
            "subsets": [{
                "addresses": [{"ip": "10.128.0.20", "nodeName": "node-1",
                    "targetRef": {"kind": "Pod", "name": "virt-api-1", "namespace": "kubevirt"}}],
                "notReadyAddresses": [{"ip": "10.128.0.21", "hostname": "h2"}],
                "ports": [{"name": "metrics", "port": 8443, "protocol": "TCP"}]}]}),
    );
    let cfg = sd_config(&kubeconfig, "eps", "role: endpoints");
    let mut sd = discovery();
    sd.sync(&cfg);
    let group = labels(&[
        ("__meta_kubernetes_namespace", "kubevirt"),
        ("__meta_kubernetes_endpoints_name", "virt-api"),
        ("__meta_kubernetes_endpoints_label_app", "virt-api"),
        ("__meta_kubernetes_endpoints_labelpresent_app", "true"),
        ("__meta_kubernetes_service_name", "virt-api"),
        (
            "__meta_kubernetes_service_label_app_kubernetes_io_component",
            "kubevirt",
        ),
        (
            "__meta_kubernetes_service_labelpresent_app_kubernetes_io_component",
            "true",
        ),
        (
            "__meta_kubernetes_service_annotation_prometheus_io_scrape",
            "true",
        ),
        (
            "__meta_kubernetes_service_annotationpresent_prometheus_io_scrape",
            "true",
        ),
    ]);
    let pod_labels = labels(&[
        ("__meta_kubernetes_pod_name", "virt-api-1"),
        ("__meta_kubernetes_pod_ip", "10.128.0.20"),
        ("__meta_kubernetes_pod_ready", "false"),
        ("__meta_kubernetes_pod_phase", "Running"),
        ("__meta_kubernetes_pod_node_name", "node-1"),
        ("__meta_kubernetes_pod_host_ip", "192.168.10.1"),
        ("__meta_kubernetes_pod_uid", "uid-virt-api-1"),
        ("__meta_kubernetes_pod_label_app", "virt-api"),
        ("__meta_kubernetes_pod_labelpresent_app", "true"),
    ]);
    let with = |base: &TargetLabels, extra: &[(&str, &str)]| {
        let mut t = base.clone();
        t.extend(labels(extra));
        t
    };
    let mut ready = with(
        &group,
        &[
            ("__address__", "10.128.0.20:8443"),
            ("__meta_kubernetes_endpoint_port_name", "metrics"),
            ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
            ("__meta_kubernetes_endpoint_ready", "true"),
            ("__meta_kubernetes_endpoint_node_name", "node-1"),
            ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
            (
                "__meta_kubernetes_endpoint_address_target_name",
                "virt-api-1",
            ),
            ("__meta_kubernetes_pod_container_name", "virt-api"),
            ("__meta_kubernetes_pod_container_image", "virt-api:v1"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ("__meta_kubernetes_pod_container_port_number", "8443"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ],
    );
    ready.extend(pod_labels.clone());
    let not_ready = with(
        &group,
        &[
            ("__address__", "10.128.0.21:8443"),
            ("__meta_kubernetes_endpoint_port_name", "metrics"),
            ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
            ("__meta_kubernetes_endpoint_ready", "false"),
            ("__meta_kubernetes_endpoint_hostname", "h2"),
        ],
    );
    // The pod's port that no endpoint port covers.
    let mut extra = with(
        &group,
        &[
            ("__address__", "10.128.0.20:6060"),
            ("__meta_kubernetes_pod_container_name", "virt-api"),
            ("__meta_kubernetes_pod_container_image", "virt-api:v1"),
            ("__meta_kubernetes_pod_container_port_name", "debug"),
            ("__meta_kubernetes_pod_container_port_number", "6060"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ],
    );
    extra.extend(pod_labels);
    let want = vec![ready, not_ready, extra];
    wait_until("endpoints targets with service and pod labels", || {
        sd.targets("eps", 0) == want
    })
    .await;
    wait_until("the three watches", || api.open_watches() == 3).await;
    for plural in ["endpoints", "services", "pods"] {
        assert_eq!(api.count(&format!("LIST /api/v1/{plural}?")), 1, "{plural}");
    }
    sd.stop();
    api.stop().await;
}

#[tokio::test]
async fn node_role_gives_prometheus_labels() {
    let (api, _dir, kubeconfig) = stand_in().await;
    api.apply(
        "nodes",
        json!({"metadata": {"name": "node-1",
            "labels": {"kubernetes.io/hostname": "node-1", "kubevirt.io/schedulable": "true"},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"providerID": "baremetal://node-1"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "node-1.lab"},
                              {"type": "ExternalIP", "address": "203.0.113.5"},
                              {"type": "InternalIP", "address": "192.168.10.1"},
                              {"type": "InternalIP", "address": "192.168.10.99"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}),
    );
    // A node without addresses has no target.
    api.apply("nodes", json!({"metadata": {"name": "node-2"}}));
    let cfg = sd_config(
        &kubeconfig,
        "nodes",
        "role: node\n        selectors: [{role: node, field: 'metadata.name!=node-3'}]",
    );
    let mut sd = discovery();
    sd.sync(&cfg);
    let want = vec![labels(&[
        ("__address__", "192.168.10.1:10250"),
        ("instance", "node-1"),
        ("__meta_kubernetes_node_name", "node-1"),
        ("__meta_kubernetes_node_provider_id", "baremetal://node-1"),
        (
            "__meta_kubernetes_node_label_kubernetes_io_hostname",
            "node-1",
        ),
        (
            "__meta_kubernetes_node_labelpresent_kubernetes_io_hostname",
            "true",
        ),
        (
            "__meta_kubernetes_node_label_kubevirt_io_schedulable",
            "true",
        ),
        (
            "__meta_kubernetes_node_labelpresent_kubevirt_io_schedulable",
            "true",
        ),
        (
            "__meta_kubernetes_node_annotation_node_alpha_kubernetes_io_ttl",
            "0",
        ),
        (
            "__meta_kubernetes_node_annotationpresent_node_alpha_kubernetes_io_ttl",
            "true",
        ),
        ("__meta_kubernetes_node_address_Hostname", "node-1.lab"),
        ("__meta_kubernetes_node_address_ExternalIP", "203.0.113.5"),
        ("__meta_kubernetes_node_address_InternalIP", "192.168.10.1"),
    ])];
    wait_until("the node target", || sd.targets("nodes", 0) == want).await;
    assert!(
        api.requests()[0].starts_with("LIST /api/v1/nodes?fieldSelector=metadata.name%21%3Dnode-3"),
        "{:?}",
        api.requests()
    );
    sd.stop();
    api.stop().await;
}

/// The collector runs a pod-role job: `/api/v1/targets` shows the target
/// with its discovered labels, the target is scraped, and a deleted pod's
/// target goes away.
#[tokio::test]
async fn collector_scrapes_discovered_pods_and_shows_them() {
    let metrics =
        Server::start(Router::new().route("/custom", get(|| async { "kv_up 1\n" }))).await;
    let (api, _dir, kubeconfig) = stand_in().await;
    let port = metrics.addr.port().to_string();
    let mut p = virt_handler("virt-handler-a", "node-1", "127.0.0.1", &port);
    p["metadata"]["annotations"]["prometheus.io/path"] = json!("/custom");
    api.apply("pods", p);
    let yaml = format!(
        r#"
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: pods
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: '{}'
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_pod_container_init], regex: 'true', action: drop}}
      - {{source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], regex: '(.+)', target_label: __metrics_path__}}
      - {{source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port], regex: '([^:]+)(?::\d+)?;(\d+)', replacement: '$1:$2', target_label: __address__}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
"#,
        kubeconfig.display()
    );
    let cfg = CollectorConfig::from_yaml_str(&yaml).expect("config");
    let collector = Collector::new(cfg).expect("collector");
    let running = Running::start(collector).await;
    let url = running.targets_url();
    let client = reqwest::Client::new();
    let fetch = || async {
        let text = client.get(&url).send().await.ok()?.text().await.ok()?;
        serde_json::from_str::<Value>(&text).ok()
    };
    let deadline = tokio::time::Instant::now() + BOUND;
    let target = loop {
        let body = fetch().await.unwrap_or_default();
        let active = body["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(t) = active.into_iter().find(|t| t["health"] == "up") {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no healthy target: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let instance = format!("127.0.0.1:{port}");
    assert_eq!(
        target["labels"],
        json!({"instance": instance, "job": "pods", "pod": "virt-handler-a"})
    );
    assert_eq!(target["scrapeUrl"], format!("http://{instance}/custom"));
    let discovered: BTreeMap<String, String> =
        serde_json::from_value(target["discoveredLabels"].clone()).expect("labels");
    let mut want = virt_handler_targets("virt-handler-a", "node-1", "127.0.0.1", &port)[0].clone();
    want.extend(labels(&[
        (
            "__meta_kubernetes_pod_annotation_prometheus_io_path",
            "/custom",
        ),
        ("job", "pods"),
        ("__scheme__", "http"),
        ("__metrics_path__", "/metrics"),
        ("__scrape_interval__", "1s"),
        ("__scrape_timeout__", "1s"),
    ]));
    assert_eq!(discovered, want);
    let body = fetch().await.unwrap_or_default();
    let dropped = body["data"]["droppedTargets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        dropped.len(),
        1,
        "the init container target is dropped: {body}"
    );
    assert_eq!(
        dropped[0]["discoveredLabels"]["__meta_kubernetes_pod_container_name"],
        "virt-launcher"
    );

    api.delete("pods", "kubevirt", "virt-handler-a");
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let body = fetch().await.unwrap_or_default();
        if body["data"]["activeTargets"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "target not removed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    running.stop().await;
    api.stop().await;
    metrics.stop().await;
}

/// The active targets' `pod` labels, sorted, from `/api/v1/targets`.
async fn active_pods(client: &reqwest::Client, url: &str) -> Vec<String> {
    let Ok(resp) = client.get(url).send().await else {
        return Vec::new();
    };
    let body: Value =
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or_default();
    let mut pods: Vec<String> = body["data"]["activeTargets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["labels"]["job"].as_str().unwrap_or_default(),
                t["labels"]["pod"].as_str().unwrap_or_default()
            )
        })
        .collect();
    pods.sort();
    pods
}

async fn wait_for_pods(client: &reqwest::Client, url: &str, want: &[&str]) {
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let got = active_pods(client, url).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "targets {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A reload restarts the entries whose settings changed (a new selector
/// is listed and watched) and leaves unchanged entries running.
#[tokio::test]
async fn reload_restarts_changed_entries_only() {
    let (api, _dir, kubeconfig) = stand_in().await;
    api.apply(
        "pods",
        virt_handler("virt-handler-a", "node-1", "10.128.0.15", "8443"),
    );
    let mut controller = virt_handler("virt-controller-1", "node-1", "10.128.0.98", "8443");
    controller["metadata"]["labels"]["kubevirt.io"] = json!("virt-controller");
    api.apply("pods", controller);
    let config = |component: &str| {
        format!(
            r#"
scrape_configs:
  - job_name: selected
    kubernetes_sd_configs:
      - {{role: pod, kubeconfig_file: '{k}', selectors: [{{role: pod, label: 'kubevirt.io={component}'}}]}}
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_pod_container_init], regex: 'true', action: drop}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
  - job_name: all
    kubernetes_sd_configs:
      - {{role: pod, kubeconfig_file: '{k}', namespaces: {{names: [kubevirt]}}}}
    relabel_configs:
      - {{source_labels: [__meta_kubernetes_pod_container_init], regex: 'true', action: drop}}
      - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
"#,
            k = kubeconfig.display()
        )
    };
    let path = kubeconfig.with_file_name("collector.yml");
    std::fs::write(&path, config("virt-handler")).expect("write config");
    let cfg = CollectorConfig::load(&path).expect("config");
    let collector = Collector::new(cfg)
        .expect("collector")
        .with_config_path(path.clone());
    let reload = collector.reload_handle();
    let running = Running::start(collector).await;
    let url = running.targets_url();
    let client = reqwest::Client::new();
    wait_for_pods(
        &client,
        &url,
        &[
            "all/virt-controller-1",
            "all/virt-handler-a",
            "selected/virt-handler-a",
        ],
    )
    .await;
    let all_lists = "LIST /api/v1/namespaces/kubevirt/pods?";
    assert_eq!(api.count(all_lists), 1);

    std::fs::write(&path, config("virt-controller")).expect("write config");
    reload.reload().await.expect("reload");
    wait_for_pods(
        &client,
        &url,
        &[
            "all/virt-controller-1",
            "all/virt-handler-a",
            "selected/virt-controller-1",
        ],
    )
    .await;
    assert_eq!(
        api.count("LIST /api/v1/pods?labelSelector=kubevirt.io%3Dvirt-controller"),
        1,
        "{:?}",
        api.requests()
    );
    assert_eq!(api.count(all_lists), 1, "the unchanged entry kept running");

    running.stop().await;
    api.stop().await;
}

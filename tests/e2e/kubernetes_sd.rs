//! Config compatibility of `kubernetes_sd_configs`: a real-world
//! Prometheus scrape config (`collector/tests/fixtures/prometheus-kubernetes-pods.yml`:
//! the classic annotation-driven `kubernetes-pods` job and a KubeVirt
//! virt-handler job selecting pods by label) is loaded by the collector
//! binary as it is, pointed at a Kubernetes API stand-in through
//! `KUBECONFIG` (the collector is not in a cluster). The targets after
//! relabeling are checked exactly on `/api/v1/targets`, and the pod whose
//! IP and annotated port lead to a loopback server is really scraped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::support::*;
use crate::kube_api::KubeApi;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("collector/tests/fixtures/prometheus-kubernetes-pods.yml")
}

fn pod(ns: &str, name: &str, labels: Value, annotations: Value, port: (&str, u16)) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
            "labels": labels, "annotations": annotations,
            "ownerReferences": [{"kind": "DaemonSet", "name": "virt-handler", "controller": true}]},
        "spec": {"nodeName": "node-1",
            "initContainers": [{"name": "virt-launcher", "image": "quay.io/kubevirt/virt-launcher:v1.3.0"}],
            "containers": [{"name": name, "image": "quay.io/kubevirt/virt-handler:v1.3.0",
                "ports": [{"name": port.0, "containerPort": port.1, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
            "conditions": [{"type": "Ready", "status": "True"}]}
    })
}

/// Targets by job (`job` of the discovered labels: dropped targets have
/// no `scrapePool`).
fn by_job(targets: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for t in targets {
        out.entry(
            t["discoveredLabels"]["job"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
        .or_default()
        .push(t.clone());
    }
    out
}

#[test]
fn prometheus_kubernetes_pods_config_discovers_and_scrapes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rt = test_runtime();
    let scrapes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&scrapes);
    let target = LoopbackServer::start(
        &rt,
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                async { "kubevirt_virt_handler_up 1\n" }
            }),
        ),
    );
    let metrics_port = target.addr.port();
    let api = rt.block_on(KubeApi::start());
    let port = metrics_port.to_string();
    api.apply(
        "pods",
        pod(
            "kubevirt",
            "virt-handler-a",
            json!({"kubevirt.io": "virt-handler", "prometheus.kubevirt.io": "true"}),
            json!({"prometheus.io/scrape": "true", "prometheus.io/port": port, "prometheus.io/path": "/metrics"}),
            ("metrics", 8443),
        ),
    );
    api.apply(
        "pods",
        pod(
            "default",
            "web-1",
            json!({"app": "web"}),
            json!({"prometheus.io/scrape": "false"}),
            ("http", 8080),
        ),
    );
    let kubeconfig = api.write_kubeconfig(tmp.path());

    let (mut collector, listen) = start_collector_with_env(
        "collector",
        &fixture(),
        &tmp.path().join("data"),
        tmp.path(),
        &[
            ("KUBECONFIG", kubeconfig.to_str()),
            ("KUBERNETES_SERVICE_HOST", None),
            ("KUBERNETES_SERVICE_PORT", None),
        ],
    );
    let client = http();
    let url = format!("http://{listen}/api/v1/targets");
    // A 15 s interval: the first scrape is within one interval.
    let body: Value = wait_for(
        "a healthy kubernetes-pods target",
        Duration::from_secs(40),
        || collector.log(),
        || {
            let body: Value = client.get(&url).send().ok()?.json().ok()?;
            let active = body["data"]["activeTargets"].as_array()?.clone();
            active
                .iter()
                .any(|t| t["scrapePool"] == "kubernetes-pods" && t["health"] == "up")
                .then_some(body)
        },
    );
    collector.assert_running();
    let active = by_job(body["data"]["activeTargets"].as_array().expect("active"));
    let instance = format!("127.0.0.1:{metrics_port}");
    let pods = &active["kubernetes-pods"];
    assert_eq!(pods.len(), 1, "{pods:?}");
    assert_eq!(
        pods[0]["labels"],
        json!({"instance": instance, "job": "kubernetes-pods",
            "kubevirt_io": "virt-handler", "prometheus_kubevirt_io": "true",
            "kubernetes_namespace": "kubevirt", "kubernetes_pod_name": "virt-handler-a"})
    );
    assert_eq!(pods[0]["scrapeUrl"], format!("http://{instance}/metrics"));
    assert_eq!(pods[0]["discoveredLabels"]["__address__"], "127.0.0.1:8443");
    assert_eq!(
        pods[0]["discoveredLabels"]["__meta_kubernetes_pod_annotation_prometheus_io_port"],
        port
    );
    let handlers = &active["kubevirt-virt-handler"];
    assert_eq!(handlers.len(), 1, "{handlers:?}");
    assert_eq!(
        handlers[0]["labels"],
        json!({"instance": "127.0.0.1:8443", "job": "kubevirt-virt-handler",
            "node": "node-1", "namespace": "kubevirt", "pod": "virt-handler-a"})
    );
    assert_eq!(handlers[0]["scrapeUrl"], "https://127.0.0.1:8443/metrics");
    assert_eq!(
        handlers[0]["discoveredLabels"]["__meta_kubernetes_pod_container_port_name"],
        "metrics"
    );
    // Dropped: web-1's two containers (scrape "false") in kubernetes-pods; the init
    // container (no port name) in kubevirt-virt-handler.
    let dropped = by_job(body["data"]["droppedTargets"].as_array().expect("dropped"));
    let names = |job: &str| -> Vec<(String, String)> {
        dropped
            .get(job)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|t| {
                let l = &t["discoveredLabels"];
                (
                    l["__meta_kubernetes_pod_name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    l["__meta_kubernetes_pod_container_name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect()
    };
    assert_eq!(
        names("kubernetes-pods"),
        [
            ("web-1".to_string(), "web-1".to_string()),
            ("web-1".to_string(), "virt-launcher".to_string())
        ]
    );
    assert_eq!(
        names("kubevirt-virt-handler"),
        [("virt-handler-a".to_string(), "virt-launcher".to_string())]
    );
    assert!(
        scrapes.load(Ordering::Relaxed) >= 1,
        "the loopback target was scraped"
    );
    // Each job listed with its own scope and selector.
    let requests = api.requests();
    assert!(
        requests.iter().any(|r| r.starts_with("LIST /api/v1/pods?")),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.starts_with(
            "LIST /api/v1/namespaces/kubevirt/pods?labelSelector=kubevirt.io%3Dvirt-handler"
        )),
        "{requests:?}"
    );

    assert!(
        collector.terminate(Duration::from_secs(10)),
        "clean exit:\n{}",
        collector.log()
    );
    rt.block_on(api.stop());
    target.stop(&rt);
}

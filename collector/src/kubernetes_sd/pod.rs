//! Role `pod`: one target per declared container port (`podIP:port`), or
//! per container without ports (`podIP` alone), init containers included;
//! a pod without an IP yet has no targets.

use super::labels::{add_object_meta, join_host_port, merged, meta, TargetLabels, NAMESPACE_LABEL};
use super::objects::{Container, ContainerPort, Pod};

/// The pod-level labels (also attached to endpoints targets of the pod):
/// IP, ready, phase, node, host IP, UID, name, labels, annotations and
/// the controlling owner.
pub fn pod_labels(pod: &Pod) -> TargetLabels {
    let mut ls = TargetLabels::new();
    ls.insert(meta("pod_ip"), pod.status.pod_ip.clone());
    ls.insert(meta("pod_ready"), pod_ready(pod));
    ls.insert(meta("pod_phase"), pod.status.phase.clone());
    ls.insert(meta("pod_node_name"), pod.spec.node_name.clone());
    ls.insert(meta("pod_host_ip"), pod.status.host_ip.clone());
    ls.insert(meta("pod_uid"), pod.metadata.uid.clone());
    add_object_meta(&mut ls, &pod.metadata, "pod");
    if let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        if !owner.kind.is_empty() {
            ls.insert(meta("pod_controller_kind"), owner.kind.clone());
        }
        if !owner.name.is_empty() {
            ls.insert(meta("pod_controller_name"), owner.name.clone());
        }
    }
    ls
}

/// `true`, `false` or `unknown`: the pod's `Ready` condition, lowercased.
fn pod_ready(pod: &Pod) -> String {
    pod.status
        .conditions
        .iter()
        .find(|c| c.kind == "Ready")
        .map(|c| c.status.to_lowercase())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Every container of the pod with whether it is an init container.
pub fn containers(pod: &Pod) -> impl Iterator<Item = (&Container, bool)> {
    pod.spec
        .containers
        .iter()
        .map(|c| (c, false))
        .chain(pod.spec.init_containers.iter().map(|c| (c, true)))
}

/// The labels of one container port.
pub fn port_labels(c: &Container, port: &ContainerPort, init: bool) -> TargetLabels {
    TargetLabels::from([
        (meta("pod_container_name"), c.name.clone()),
        (meta("pod_container_image"), c.image.clone()),
        (meta("pod_container_port_name"), port.name.clone()),
        (
            meta("pod_container_port_number"),
            port.container_port.to_string(),
        ),
        (meta("pod_container_port_protocol"), port.protocol.clone()),
        (meta("pod_container_init"), init.to_string()),
    ])
}

fn container_id(pod: &Pod, name: &str, init: bool) -> String {
    let statuses = if init {
        &pod.status.init_container_statuses
    } else {
        &pod.status.container_statuses
    };
    statuses
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.container_id.clone())
        .unwrap_or_default()
}

/// The targets of one pod.
pub fn pod_targets(pod: &Pod) -> Vec<TargetLabels> {
    let ip = &pod.status.pod_ip;
    if ip.is_empty() {
        return Vec::new();
    }
    let mut group = pod_labels(pod);
    group.insert(NAMESPACE_LABEL.to_string(), pod.metadata.namespace.clone());
    let mut out = Vec::new();
    for (c, init) in containers(pod) {
        let id = container_id(pod, &c.name, init);
        if c.ports.is_empty() {
            let address = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.clone()
            };
            out.push(merged(
                &group,
                TargetLabels::from([
                    ("__address__".to_string(), address),
                    (meta("pod_container_name"), c.name.clone()),
                    (meta("pod_container_id"), id),
                    (meta("pod_container_image"), c.image.clone()),
                    (meta("pod_container_init"), init.to_string()),
                ]),
            ));
            continue;
        }
        for port in &c.ports {
            let mut t = port_labels(c, port, init);
            t.insert(
                "__address__".to_string(),
                join_host_port(ip, port.container_port),
            );
            t.insert(meta("pod_container_id"), id.clone());
            out.push(merged(&group, t));
        }
    }
    out
}

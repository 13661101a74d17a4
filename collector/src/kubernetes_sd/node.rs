//! Role `node`: one target per node, `__address__` its first address in
//! Prometheus's preference order (InternalIP, InternalDNS, ExternalIP,
//! ExternalDNS, LegacyHostIP, Hostname) and the kubelet's port,
//! `instance` the node's name.

use std::collections::BTreeMap;

use super::labels::{add_object_meta, join_host_port, meta, sanitize, TargetLabels};
use super::objects::Node;

const PREFERENCE: [&str; 6] = [
    "InternalIP",
    "InternalDNS",
    "ExternalIP",
    "ExternalDNS",
    "LegacyHostIP",
    "Hostname",
];

/// The node's target, or none when it has no usable address.
pub fn node_targets(node: &Node) -> Vec<TargetLabels> {
    let mut by_type: BTreeMap<&str, &str> = BTreeMap::new();
    for a in &node.status.addresses {
        by_type.entry(a.kind.as_str()).or_insert(a.address.as_str());
    }
    let Some(host) = PREFERENCE.iter().find_map(|t| by_type.get(t)) else {
        tracing::warn!(node = %node.metadata.name, "no node address found; node skipped");
        return Vec::new();
    };
    let mut t = TargetLabels::new();
    t.insert(meta("node_provider_id"), node.spec.provider_id.clone());
    add_object_meta(&mut t, &node.metadata, "node");
    for (kind, address) in &by_type {
        t.insert(
            sanitize(&meta(&format!("node_address_{kind}"))),
            address.to_string(),
        );
    }
    t.insert(
        "__address__".to_string(),
        join_host_port(host, node.status.daemon_endpoints.kubelet_endpoint.port),
    );
    t.insert("instance".to_string(), node.metadata.name.clone());
    vec![t]
}

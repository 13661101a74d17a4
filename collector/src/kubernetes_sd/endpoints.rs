//! Role `endpoints`: one target per address and port of each Endpoints
//! object, with its service's labels and, for addresses of pods, the
//! pod's labels; container ports of those pods that no endpoint port
//! covers get targets of their own, as Prometheus does.

use std::collections::BTreeMap;

use super::labels::{add_object_meta, join_host_port, merged, meta, TargetLabels, NAMESPACE_LABEL};
use super::objects::{EndpointAddress, Endpoints, Pod, Service, ServicePort};
use super::pod::{containers, pod_labels, port_labels};
use super::service::service_labels;

/// Finds the service and pods the endpoints refer to, by namespace and name.
pub trait Lookup {
    /// The service `ns/name`.
    fn service(&self, namespace: &str, name: &str) -> Option<Service>;
    /// The pod `ns/name`.
    fn pod(&self, namespace: &str, name: &str) -> Option<Pod>;
}

/// The targets of one Endpoints object.
pub fn endpoints_targets(eps: &Endpoints, lookup: &dyn Lookup) -> Vec<TargetLabels> {
    let ns = &eps.metadata.namespace;
    let mut group = TargetLabels::new();
    group.insert(NAMESPACE_LABEL.to_string(), ns.clone());
    if let Some(svc) = lookup.service(ns, &eps.metadata.name) {
        group.extend(service_labels(&svc));
    }
    add_object_meta(&mut group, &eps.metadata, "endpoints");

    // Pods seen behind an address, with the endpoint ports they serve.
    let mut seen: BTreeMap<(String, String), (Pod, Vec<u16>)> = BTreeMap::new();
    let mut out = Vec::new();
    for subset in &eps.subsets {
        for port in &subset.ports {
            let ready = subset.addresses.iter().map(|a| (a, "true"));
            let not_ready = subset.not_ready_addresses.iter().map(|a| (a, "false"));
            for (addr, ready) in ready.chain(not_ready) {
                let mut t = address_labels(addr, port, ready);
                if let Some(pod) = pod_of(addr, ns, lookup) {
                    t.extend(pod_labels(&pod));
                    if let Some(labels) = containers(&pod).find_map(|(c, init)| {
                        c.ports
                            .iter()
                            .find(|cp| cp.container_port == port.port)
                            .map(|cp| port_labels(c, cp, init))
                    }) {
                        t.extend(labels);
                    }
                    let key = (pod.metadata.namespace.clone(), pod.metadata.name.clone());
                    seen.entry(key)
                        .or_insert_with(|| (pod, Vec::new()))
                        .1
                        .push(port.port);
                }
                out.push(merged(&group, t));
            }
        }
    }
    for (pod, ports) in seen.values() {
        if pod.status.pod_ip.is_empty() {
            continue;
        }
        for (c, init) in containers(pod) {
            for cp in c
                .ports
                .iter()
                .filter(|cp| !ports.contains(&cp.container_port))
            {
                let mut t = port_labels(c, cp, init);
                t.insert(
                    "__address__".to_string(),
                    join_host_port(&pod.status.pod_ip, cp.container_port),
                );
                t.extend(pod_labels(pod));
                out.push(merged(&group, t));
            }
        }
    }
    out
}

fn address_labels(addr: &EndpointAddress, port: &ServicePort, ready: &str) -> TargetLabels {
    let mut t = TargetLabels::from([
        (
            "__address__".to_string(),
            join_host_port(&addr.ip, port.port),
        ),
        (meta("endpoint_port_name"), port.name.clone()),
        (meta("endpoint_port_protocol"), port.protocol.clone()),
        (meta("endpoint_ready"), ready.to_string()),
    ]);
    if let Some(r) = &addr.target_ref {
        t.insert(meta("endpoint_address_target_kind"), r.kind.clone());
        t.insert(meta("endpoint_address_target_name"), r.name.clone());
    }
    if let Some(node) = &addr.node_name {
        t.insert(meta("endpoint_node_name"), node.clone());
    }
    if !addr.hostname.is_empty() {
        t.insert(meta("endpoint_hostname"), addr.hostname.clone());
    }
    t
}

fn pod_of(addr: &EndpointAddress, ns: &str, lookup: &dyn Lookup) -> Option<Pod> {
    let r = addr.target_ref.as_ref().filter(|r| r.kind == "Pod")?;
    let pod_ns = if r.namespace.is_empty() {
        ns
    } else {
        &r.namespace
    };
    lookup.pod(pod_ns, &r.name)
}

//! Role `service`: one target per service port, `__address__` the
//! service's DNS name and port.

use super::labels::{add_object_meta, join_host_port, merged, meta, TargetLabels, NAMESPACE_LABEL};
use super::objects::Service;

/// The service-level labels (also attached to its endpoints' targets).
pub fn service_labels(svc: &Service) -> TargetLabels {
    let mut ls = TargetLabels::new();
    ls.insert(NAMESPACE_LABEL.to_string(), svc.metadata.namespace.clone());
    add_object_meta(&mut ls, &svc.metadata, "service");
    ls
}

/// The targets of one service.
pub fn service_targets(svc: &Service) -> Vec<TargetLabels> {
    let group = service_labels(svc);
    let host = format!("{}.{}.svc", svc.metadata.name, svc.metadata.namespace);
    svc.spec
        .ports
        .iter()
        .map(|p| {
            let mut t = TargetLabels::from([
                ("__address__".to_string(), join_host_port(&host, p.port)),
                (meta("service_port_name"), p.name.clone()),
                (meta("service_port_number"), p.port.to_string()),
                (meta("service_port_protocol"), p.protocol.clone()),
                (meta("service_type"), svc.spec.kind.clone()),
            ]);
            if svc.spec.kind == "ExternalName" {
                t.insert(
                    meta("service_external_name"),
                    svc.spec.external_name.clone(),
                );
            } else {
                t.insert(meta("service_cluster_ip"), svc.spec.cluster_ip.clone());
            }
            if svc.spec.kind == "LoadBalancer" {
                t.insert(
                    meta("service_loadbalancer_ip"),
                    svc.spec.load_balancer_ip.clone(),
                );
            }
            merged(&group, t)
        })
        .collect()
}

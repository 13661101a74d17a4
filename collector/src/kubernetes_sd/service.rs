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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_target_per_port_with_prometheus_labels() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "kubevirt-prometheus-metrics", "namespace": "kubevirt",
                "labels": {"prometheus.kubevirt.io": "true"}},
            "spec": {"type": "LoadBalancer", "clusterIP": "172.30.1.2", "loadBalancerIP": "198.51.100.7",
                "ports": [{"name": "metrics", "port": 443, "protocol": "TCP"}]}
        }))
        .unwrap();
        let want: TargetLabels = [
            (
                "__address__",
                "kubevirt-prometheus-metrics.kubevirt.svc:443",
            ),
            ("__meta_kubernetes_namespace", "kubevirt"),
            (
                "__meta_kubernetes_service_name",
                "kubevirt-prometheus-metrics",
            ),
            (
                "__meta_kubernetes_service_label_prometheus_kubevirt_io",
                "true",
            ),
            (
                "__meta_kubernetes_service_labelpresent_prometheus_kubevirt_io",
                "true",
            ),
            ("__meta_kubernetes_service_port_name", "metrics"),
            ("__meta_kubernetes_service_port_number", "443"),
            ("__meta_kubernetes_service_port_protocol", "TCP"),
            ("__meta_kubernetes_service_type", "LoadBalancer"),
            ("__meta_kubernetes_service_cluster_ip", "172.30.1.2"),
            ("__meta_kubernetes_service_loadbalancer_ip", "198.51.100.7"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(service_targets(&svc), vec![want]);
    }
}

//! The label helpers every role shares, as Prometheus's kubernetes SD
//! names things: `__meta_kubernetes_<role>_name`, `_label_<name>`,
//! `_labelpresent_<name>`, `_annotation_<name>`, `_annotationpresent_<name>`.

use std::collections::BTreeMap;

use super::objects::ObjectMeta;

/// A discovered target: all its labels (`__address__` included).
pub type TargetLabels = BTreeMap<String, String>;

/// The prefix of every label this discovery sets.
pub const META_PREFIX: &str = "__meta_kubernetes_";
/// `__meta_kubernetes_namespace`.
pub const NAMESPACE_LABEL: &str = "__meta_kubernetes_namespace";

/// A label name with every character outside `[a-zA-Z0-9_]` replaced by `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `__meta_kubernetes_<suffix>`.
pub fn meta(suffix: &str) -> String {
    format!("{META_PREFIX}{suffix}")
}

/// Adds the name, labels and annotations of `m` for `role` (`pod`, `node`,
/// `service`, `endpoints`).
pub fn add_object_meta(out: &mut TargetLabels, m: &ObjectMeta, role: &str) {
    out.insert(meta(&format!("{role}_name")), m.name.clone());
    for (kind, map) in [("label", &m.labels), ("annotation", &m.annotations)] {
        for (k, v) in map {
            let n = sanitize(k);
            out.insert(meta(&format!("{role}_{kind}_{n}")), v.clone());
            out.insert(
                meta(&format!("{role}_{kind}present_{n}")),
                "true".to_string(),
            );
        }
    }
}

/// `host:port`, with IPv6 hosts in brackets.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `group` with `target`'s labels on top (the target's win).
pub fn merged(group: &TargetLabels, target: TargetLabels) -> TargetLabels {
    let mut out = group.clone();
    out.extend(target);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_and_adds_meta() {
        assert_eq!(sanitize("prometheus.io/scrape"), "prometheus_io_scrape");
        assert_eq!(
            sanitize("app.kubernetes.io/name-x"),
            "app_kubernetes_io_name_x"
        );
        let m = ObjectMeta {
            name: "n".into(),
            labels: [("a.b/c".to_string(), "v".to_string())].into(),
            ..Default::default()
        };
        let mut out = TargetLabels::new();
        add_object_meta(&mut out, &m, "node");
        assert_eq!(out["__meta_kubernetes_node_name"], "n");
        assert_eq!(out["__meta_kubernetes_node_label_a_b_c"], "v");
        assert_eq!(out["__meta_kubernetes_node_labelpresent_a_b_c"], "true");
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    }
}

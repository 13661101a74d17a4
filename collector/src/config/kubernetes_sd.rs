//! `kubernetes_sd_configs`: Prometheus's keys for discovering targets
//! from the Kubernetes API (roles `pod`, `endpoints`, `service`, `node`),
//! and Prometheus's HTTP client keys (`basic_auth`, `authorization`,
//! `bearer_token(_file)`, `tls_config`, proxy...) for the API server.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

use super::http_client::{with_http_client_keys, HttpClientConfig};
use crate::CollectorError;

with_http_client_keys! {
/// One entry of `kubernetes_sd_configs`; the HTTP client keys apply to
/// `api_server` only.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    /// Which objects become targets.
    pub role: KubernetesRole,
    /// The API server's URL. Absent: in-cluster (the service account), or
    /// `kubeconfig_file`.
    #[serde(default)]
    pub api_server: Option<String>,
    /// A kubeconfig file whose current context names the cluster and user.
    #[serde(default)]
    pub kubeconfig_file: Option<PathBuf>,
    /// The namespaces watched (default: all).
    #[serde(default)]
    pub namespaces: NamespaceDiscovery,
    /// Label and field selectors passed to the API, per role.
    #[serde(default)]
    pub selectors: Vec<SelectorConfig>,
}
}

/// The Kubernetes object kind a discovery watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub enum KubernetesRole {
    /// One target per pod container port.
    Pod,
    /// One target per endpoint address and port of each Endpoints object.
    Endpoints,
    /// One target per service port.
    Service,
    /// One target per node (its kubelet).
    Node,
}

impl KubernetesRole {
    /// The role's name in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::Endpoints => "endpoints",
            Self::Service => "service",
            Self::Node => "node",
        }
    }

    /// The selector roles allowed with this discovery role, as in Prometheus.
    pub fn selector_roles(self) -> &'static [KubernetesRole] {
        match self {
            Self::Pod => &[Self::Pod],
            Self::Endpoints => &[Self::Pod, Self::Service, Self::Endpoints],
            Self::Service => &[Self::Service],
            Self::Node => &[Self::Node],
        }
    }
}

impl TryFrom<String> for KubernetesRole {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "pod" => Ok(Self::Pod),
            "endpoints" => Ok(Self::Endpoints),
            "service" => Ok(Self::Service),
            "node" => Ok(Self::Node),
            other => Err(format!(
                "unknown kubernetes_sd role {other:?}: expected pod, endpoints, service or node"
            )),
        }
    }
}

impl fmt::Display for KubernetesRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `namespaces`: which namespaces are watched.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceDiscovery {
    /// Also watch the collector's own namespace.
    #[serde(default)]
    pub own_namespace: bool,
    /// Namespaces to watch; none (and no `own_namespace`) means all.
    #[serde(default)]
    pub names: Vec<String>,
}

/// One entry of `selectors`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorConfig {
    /// The object kind the selectors apply to.
    pub role: KubernetesRole,
    /// A label selector (`labelSelector`), e.g. `kubevirt.io=virt-handler`.
    #[serde(default)]
    pub label: Option<String>,
    /// A field selector (`fieldSelector`), e.g. `spec.nodeName=node-1`.
    #[serde(default)]
    pub field: Option<String>,
}

impl KubernetesSdConfig {
    /// Whether any HTTP client setting (credentials, TLS) is given.
    pub fn has_http_client_config(&self) -> bool {
        self.http_client_config() != HttpClientConfig::default()
    }

    /// The selector for objects of `role`, if configured.
    pub fn selector(&self, role: KubernetesRole) -> Option<&SelectorConfig> {
        self.selectors.iter().find(|s| s.role == role)
    }
}

/// Checks one `kubernetes_sd_configs` entry as Prometheus does: not both
/// `api_server` and `kubeconfig_file`, client settings only with
/// `api_server`, selectors of roles the discovery role watches, one
/// selector per role, well-formed URL and selectors.
pub(crate) fn validate(sd: &KubernetesSdConfig, at: &str) -> Result<(), CollectorError> {
    if sd.api_server.is_some() && sd.kubeconfig_file.is_some() {
        return Err(CollectorError::invalid(
            at,
            "cannot use 'kubeconfig_file' and 'api_server' simultaneously",
        ));
    }
    if sd.kubeconfig_file.is_some() && sd.has_http_client_config() {
        return Err(CollectorError::invalid(
            at,
            "cannot use a custom HTTP client configuration together with 'kubeconfig_file'",
        ));
    }
    if sd.api_server.is_none() && sd.kubeconfig_file.is_none() && sd.has_http_client_config() {
        return Err(CollectorError::invalid(
            at,
            "to use a custom HTTP client configuration please provide the 'api_server' URL explicitly",
        ));
    }
    super::http_client::validate(&sd.http_client_config(), at)?;
    if let Some(url) = &sd.api_server {
        check_api_server(url)
            .map_err(|r| CollectorError::invalid(format!("{at}.api_server"), r))?;
    }
    if let Some(name) = sd.namespaces.names.iter().find(|n| !is_dns_label(n)) {
        return Err(CollectorError::invalid(
            format!("{at}.namespaces.names"),
            format!("{name:?} is not a valid namespace name"),
        ));
    }
    let mut seen = Vec::new();
    for (i, sel) in sd.selectors.iter().enumerate() {
        let sat = format!("{at}.selectors[{i}]");
        if !sd.role.selector_roles().contains(&sel.role) {
            let allowed: Vec<&str> = sd
                .role
                .selector_roles()
                .iter()
                .map(|r| r.as_str())
                .collect();
            return Err(CollectorError::invalid(
                format!("{sat}.role"),
                format!(
                    "selector role {:?} is not allowed with role {:?} (allowed: {})",
                    sel.role.as_str(),
                    sd.role.as_str(),
                    allowed.join(", ")
                ),
            ));
        }
        if seen.contains(&sel.role) {
            return Err(CollectorError::invalid(
                format!("{sat}.role"),
                format!("duplicated selector role {:?}", sel.role.as_str()),
            ));
        }
        seen.push(sel.role);
        for (key, value) in [("label", &sel.label), ("field", &sel.field)] {
            if let Some(v) = value {
                check_selector(v)
                    .map_err(|r| CollectorError::invalid(format!("{sat}.{key}"), r))?;
            }
        }
    }
    Ok(())
}

fn check_api_server(url: &str) -> Result<(), String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} must use http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

/// A namespace name: a DNS label (lowercase alphanumerics and `-`, at most 63).
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A light syntax check of a label or field selector: comma-separated
/// non-empty requirements, balanced parentheses, no control characters.
fn check_selector(s: &str) -> Result<(), String> {
    if s.chars().any(char::is_control) {
        return Err(format!("selector {s:?} contains control characters"));
    }
    let mut depth = 0i32;
    let mut term = String::new();
    for c in s.chars().chain(std::iter::once(',')) {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                if term.trim().is_empty() {
                    return Err(format!("selector {s:?} has an empty requirement"));
                }
                term.clear();
                continue;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("selector {s:?} has unbalanced parentheses"));
        }
        term.push(c);
    }
    if depth != 0 {
        return Err(format!("selector {s:?} has unbalanced parentheses"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<KubernetesSdConfig, String> {
        serde_yaml::from_str(yaml).map_err(|e| e.to_string())
    }

    fn check(yaml: &str) -> Result<(), String> {
        let sd = parse(yaml)?;
        validate(&sd, "sd").map_err(|e| e.to_string())
    }

    #[test]
    fn accepts_prometheus_shapes() {
        let sd = parse(
            "role: endpoints\napi_server: https://k8s:6443\nnamespaces: {own_namespace: true, names: [kubevirt]}\n\
             selectors: [{role: pod, label: 'kubevirt.io=virt-handler'}, {role: service, field: 'metadata.name=x'}]\n\
             bearer_token_file: /t\ntls_config: {ca_file: /ca, insecure_skip_verify: true}\n",
        )
        .unwrap();
        assert_eq!(sd.role, KubernetesRole::Endpoints);
        assert_eq!(
            sd.selector(KubernetesRole::Pod)
                .and_then(|s| s.label.as_deref()),
            Some("kubevirt.io=virt-handler")
        );
        assert!(validate(&sd, "sd").is_ok());
        assert!(check("role: pod\nselectors: [{role: pod, label: 'a in (x,y),!b'}]").is_ok());
        assert!(check(
            "role: pod\napi_server: http://a\nbasic_auth: {username: u, password: p}\n\
             proxy_url: 'http://proxy:3128'\nfollow_redirects: false\nenable_http2: false"
        )
        .is_ok());
    }

    #[test]
    fn rejects_bad_configs_with_a_reason() {
        let cases = [
            ("role: pods", "unknown kubernetes_sd role \"pods\""),
            ("role: endpointslice", "unknown kubernetes_sd role"),
            (
                "role: pod\napi_server: http://a\nkubeconfig_file: /k",
                "simultaneously",
            ),
            (
                "role: pod\nbearer_token_file: /t",
                "provide the 'api_server'",
            ),
            (
                "role: pod\nkubeconfig_file: /k\ntls_config: {insecure_skip_verify: true}",
                "together with 'kubeconfig_file'",
            ),
            (
                "role: pod\nselectors: [{role: node, label: a=b}]",
                "selector role \"node\" is not allowed with role \"pod\"",
            ),
            (
                "role: endpoints\nselectors: [{role: pod}, {role: pod}]",
                "duplicated selector role",
            ),
            (
                "role: pod\nselectors: [{role: pod, label: 'a=b,'}]",
                "empty requirement",
            ),
            (
                "role: pod\nselectors: [{role: pod, label: 'a in (x'}]",
                "unbalanced",
            ),
            ("role: pod\napi_server: 'ftp://x'", "must use http or https"),
            (
                "role: pod\nnamespaces: {names: [Bad_NS]}",
                "not a valid namespace",
            ),
            ("role: pod\nfoo: 1", "unknown field `foo`"),
            (
                "role: pod\napi_server: http://a\nbasic_auth: {username: u}\nbearer_token: t",
                "at most one of basic_auth, authorization and bearer_token",
            ),
            (
                "role: pod\nbasic_auth: {username: u}",
                "provide the 'api_server'",
            ),
            (
                "role: pod\napi_server: http://a\ntls_config: {cert_file: /c}",
                "needs both a certificate",
            ),
        ];
        for (yaml, want) in cases {
            let err = check(yaml).expect_err(yaml);
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn errors_name_the_place_in_the_whole_config() {
        let cfg = crate::CollectorConfig::from_yaml_str(
            "scrape_configs: [{job_name: j, kubernetes_sd_configs: [{role: node, selectors: [{role: pod}]}]}]",
        )
        .unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("scrape_configs[0].kubernetes_sd_configs[0].selectors[0].role"),
            "{e}"
        );
        let e = crate::CollectorConfig::from_yaml_str(
            "scrape_configs: [{job_name: j, kubernetes_sd_configs: [{role: ingress}]}]",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unknown kubernetes_sd role \"ingress\""), "{e}");
    }

    #[test]
    fn secrets_are_not_printed() {
        let sd = parse("role: node\napi_server: http://a\nbearer_token: hunter2").unwrap();
        assert!(!format!("{sd:?}").contains("hunter2"));
    }
}

//! The API server connection of one `kubernetes_sd_configs` entry:
//! `api_server` with the entry's own credentials and TLS settings, a
//! `kubeconfig_file`, or (neither given) the pod's service account when
//! running in a cluster, else the kubeconfig named by `KUBECONFIG`.

use std::path::PathBuf;
use std::time::Duration;

use super::error::KubeError;
use super::kubeconfig::{self, ClusterAccess};
use crate::config::{BasicAuth, HttpClientConfig, KubernetesSdConfig, Secret, TlsConfig};
use crate::http_client::HttpClient;

/// Where a pod's service account credentials are mounted.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// How long connecting to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A watch that sends nothing (not even a bookmark) this long is dead;
/// longer than the longest watch the server is asked for (10 minutes).
const READ_TIMEOUT: Duration = Duration::from_secs(660);
/// TCP keepalive, so a vanished peer is noticed sooner.
const TCP_KEEPALIVE: Duration = Duration::from_secs(30);

/// What the process environment says about the cluster.
#[derive(Debug, Clone, Default)]
pub struct KubeEnv {
    /// `KUBERNETES_SERVICE_HOST`.
    pub service_host: Option<String>,
    /// `KUBERNETES_SERVICE_PORT`.
    pub service_port: Option<String>,
    /// `KUBECONFIG`.
    pub kubeconfig: Option<String>,
    /// The service account directory.
    pub service_account_dir: PathBuf,
}

impl KubeEnv {
    /// The environment of this process.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            service_host: var("KUBERNETES_SERVICE_HOST"),
            service_port: var("KUBERNETES_SERVICE_PORT"),
            kubeconfig: var("KUBECONFIG"),
            service_account_dir: PathBuf::from(SERVICE_ACCOUNT_DIR),
        }
    }
}

/// A client for one API server.
#[derive(Clone)]
pub struct ApiClient {
    base: reqwest::Url,
    http: HttpClient,
    /// The namespace `namespaces.own_namespace` means, when known.
    pub own_namespace: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// Builds the client `sd` describes in environment `env`.
    pub fn new(sd: &KubernetesSdConfig, env: &KubeEnv) -> Result<Self, KubeError> {
        let sa_namespace = || {
            std::fs::read_to_string(env.service_account_dir.join("namespace"))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        if let Some(server) = &sd.api_server {
            return Self::build(server, &sd.http_client_config(), sa_namespace());
        }
        let kubeconfig = match &sd.kubeconfig_file {
            Some(p) => Some(p.clone()),
            None => match (&env.service_host, &env.service_port) {
                (Some(host), Some(port)) => {
                    return Self::in_cluster(host, port, env, sa_namespace())
                }
                _ => env
                    .kubeconfig
                    .as_ref()
                    .and_then(|k| k.split(':').find(|p| !p.is_empty()))
                    .map(PathBuf::from),
            },
        };
        let Some(path) = kubeconfig else {
            return Err(KubeError::NoApiServer(
                "not running in a cluster (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset), and neither api_server, kubeconfig_file nor KUBECONFIG is set".to_string(),
            ));
        };
        let access = kubeconfig::load(&path)?;
        let namespace = access
            .namespace
            .clone()
            .or_else(|| Some("default".to_string()));
        Self::from_access(access, namespace)
    }

    fn in_cluster(
        host: &str,
        port: &str,
        env: &KubeEnv,
        namespace: Option<String>,
    ) -> Result<Self, KubeError> {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let dir = &env.service_account_dir;
        let cfg = HttpClientConfig {
            bearer_token_file: Some(dir.join("token")),
            tls_config: TlsConfig {
                ca_file: Some(dir.join("ca.crt")),
                ..TlsConfig::default()
            },
            ..HttpClientConfig::default()
        };
        Self::build(&format!("https://{host}:{port}"), &cfg, namespace)
    }

    fn from_access(access: ClusterAccess, namespace: Option<String>) -> Result<Self, KubeError> {
        let text = |what: &str, pem: Option<Vec<u8>>| {
            pem.map(|p| {
                String::from_utf8(p).map_err(|_| {
                    KubeError::Client(format!("the kubeconfig's {what} is not PEM text"))
                })
            })
            .transpose()
        };
        let cfg = HttpClientConfig {
            basic_auth: access.basic.map(|(u, p)| BasicAuth {
                username: Some(u),
                password: Some(Secret(p)),
                ..BasicAuth::default()
            }),
            bearer_token: access.token.map(Secret),
            bearer_token_file: access.token_file,
            tls_config: TlsConfig {
                ca: text("certificate-authority", access.ca_pem)?,
                cert: text("client-certificate", access.cert_pem)?,
                key: text("client-key", access.key_pem)?.map(Secret),
                insecure_skip_verify: access.insecure,
                ..TlsConfig::default()
            },
            ..HttpClientConfig::default()
        };
        // kubectl prefers a token to basic auth; the collector sends one.
        let cfg = if cfg.bearer_token.is_some() || cfg.bearer_token_file.is_some() {
            HttpClientConfig {
                basic_auth: None,
                ..cfg
            }
        } else {
            cfg
        };
        Self::build(&access.server, &cfg, namespace)
    }

    /// The client of `server` with the HTTP client settings `cfg`.
    fn build(
        server: &str,
        cfg: &HttpClientConfig,
        namespace: Option<String>,
    ) -> Result<Self, KubeError> {
        let base = reqwest::Url::parse(server)
            .map_err(|e| KubeError::Client(format!("server {server:?}: {e}")))?;
        let http = HttpClient::with_builder(cfg, |b| {
            b.connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(READ_TIMEOUT)
                .tcp_keepalive(TCP_KEEPALIVE)
        })
        .map_err(|e| KubeError::Client(e.to_string()))?;
        Ok(Self {
            base,
            http,
            own_namespace: namespace,
        })
    }

    /// A GET of `path` (e.g. `/api/v1/pods`) with `query`, authenticated
    /// (credential files are re-read for every request).
    pub fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::RequestBuilder, KubeError> {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{path}"));
        Ok(self.http.get(url).query(query))
    }
}

/// The path of a list or watch of `plural` in `namespace` (all when `None`).
pub fn resource_path(plural: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("/api/v1/namespaces/{ns}/{plural}"),
        None => format!("/api/v1/{plural}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(yaml: &str) -> KubernetesSdConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn resolves_in_cluster_then_kubeconfig_env() {
        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("sa");
        std::fs::create_dir(&sa).unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["kubernetes".to_string()]).unwrap();
        std::fs::write(sa.join("ca.crt"), ca.cert.pem()).unwrap();
        std::fs::write(sa.join("token"), "tok\n").unwrap();
        std::fs::write(sa.join("namespace"), "monitoring").unwrap();
        let mut env = KubeEnv {
            service_host: Some("10.0.0.1".into()),
            service_port: Some("443".into()),
            kubeconfig: None,
            service_account_dir: sa.clone(),
        };
        let c = ApiClient::new(&sd("role: pod"), &env).unwrap();
        assert_eq!(c.base.as_str(), "https://10.0.0.1/");
        assert_eq!(c.own_namespace.as_deref(), Some("monitoring"));
        let req = c.get("/api/v1/pods", &[]).unwrap().build().unwrap();
        assert_eq!(req.headers()["authorization"], "Bearer tok");

        env.service_host = None;
        let e = ApiClient::new(&sd("role: pod"), &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not running in a cluster"), "{e}");
        let kc = dir.path().join("kc");
        std::fs::write(
            &kc,
            "current-context: c\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n\
             clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1/prefix'}}]\nusers: [{name: u, user: {token: t2}}]\n",
        )
        .unwrap();
        env.kubeconfig = Some(kc.display().to_string());
        let c = ApiClient::new(&sd("role: pod"), &env).unwrap();
        let req = c
            .get("/api/v1/nodes", &[("watch", "1".into())])
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(
            req.url().as_str(),
            "http://127.0.0.1:1/prefix/api/v1/nodes?watch=1"
        );
        assert_eq!(req.headers()["authorization"], "Bearer t2");
        assert_eq!(c.own_namespace.as_deref(), Some("default"));
    }

    #[test]
    fn api_server_uses_its_own_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("t");
        std::fs::write(&tok, "secret1").unwrap();
        let c = ApiClient::new(
            &sd(&format!(
                "role: node\napi_server: 'https://k:6443'\nauthorization: {{credentials_file: '{}'}}",
                tok.display()
            )),
            &KubeEnv::default(),
        )
        .unwrap();
        let h = |c: &ApiClient| {
            c.get("/api/v1/nodes", &[])
                .unwrap()
                .build()
                .unwrap()
                .headers()["authorization"]
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(h(&c), "Bearer secret1");
        std::fs::write(&tok, "secret2").unwrap();
        assert_eq!(h(&c), "Bearer secret2", "token files are re-read");
        let c = ApiClient::new(
            &sd("role: node\napi_server: 'https://k:6443'\nbasic_auth: {username: u, password: p}"),
            &KubeEnv::default(),
        )
        .unwrap();
        assert_eq!(h(&c), "Basic dTpw", "basic_auth is sent");
    }
}

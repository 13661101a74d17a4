//! The API server connection of one `kubernetes_sd_configs` entry:
//! `api_server` with the entry's own credentials and TLS settings, a
//! `kubeconfig_file`, or (neither given) the pod's service account when
//! running in a cluster, else the kubeconfig named by `KUBECONFIG`.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::HeaderValue;

use super::error::KubeError;
use super::kubeconfig::{self, read_small_file, ClusterAccess};
use crate::config::KubernetesSdConfig;

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

/// How requests authenticate.
#[derive(Clone)]
enum Credential {
    None,
    /// A fixed `Authorization` header value.
    Header(HeaderValue),
    /// `<scheme> <contents of file>`, read for every request (tokens rotate).
    File {
        scheme: String,
        path: PathBuf,
    },
}

/// A client for one API server.
#[derive(Clone)]
pub struct ApiClient {
    base: reqwest::Url,
    http: reqwest::Client,
    credential: Credential,
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
            return Self::from_sd(server, sd, sa_namespace());
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
        Self::from_access(access, namespace, true)
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
        let access = ClusterAccess {
            server: format!("https://{host}:{port}"),
            ca_pem: Some(read_small_file(&dir.join("ca.crt"))?),
            token_file: Some(dir.join("token")),
            ..ClusterAccess::default()
        };
        Self::from_access(access, namespace, true)
    }

    fn from_sd(
        server: &str,
        sd: &KubernetesSdConfig,
        namespace: Option<String>,
    ) -> Result<Self, KubeError> {
        let tls = &sd.tls_config;
        let identity_pem = match (&tls.cert_file, &tls.key_file) {
            (Some(c), Some(k)) => {
                let mut pem = read_small_file(c)?;
                pem.push(b'\n');
                pem.extend(read_small_file(k)?);
                Some(pem)
            }
            _ => None,
        };
        let mut access = ClusterAccess {
            server: server.to_string(),
            ca_pem: tls.ca_file.as_deref().map(read_small_file).transpose()?,
            insecure: tls.insecure_skip_verify,
            token: sd.bearer_token.as_ref().map(|s| s.0.clone()),
            token_file: sd.bearer_token_file.clone(),
            identity_pem,
            ..ClusterAccess::default()
        };
        let authorization = sd.authorization.as_ref();
        if authorization.is_some() {
            access.token = None;
            access.token_file = None;
        }
        let mut client = Self::from_access(access, namespace, sd.follow_redirects)?;
        if let Some(a) = authorization {
            client.credential = match (&a.credentials, &a.credentials_file) {
                (Some(s), _) => Credential::Header(header(&format!("{} {}", a.kind, s.0))?),
                (None, Some(p)) => Credential::File {
                    scheme: a.kind.clone(),
                    path: p.clone(),
                },
                (None, None) => Credential::None,
            };
        }
        Ok(client)
    }

    fn from_access(
        access: ClusterAccess,
        namespace: Option<String>,
        follow_redirects: bool,
    ) -> Result<Self, KubeError> {
        let base = reqwest::Url::parse(&access.server)
            .map_err(|e| KubeError::Client(format!("server {:?}: {e}", access.server)))?;
        let credential = if let Some(t) = &access.token {
            Credential::Header(header(&format!("Bearer {t}"))?)
        } else if let Some(p) = &access.token_file {
            Credential::File {
                scheme: "Bearer".to_string(),
                path: p.clone(),
            }
        } else if let Some((u, p)) = &access.basic {
            use base64::Engine;
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            Credential::Header(header(&format!("Basic {b}"))?)
        } else {
            Credential::None
        };
        let mut b = builder(&access);
        if !follow_redirects {
            b = b.redirect(reqwest::redirect::Policy::none());
        }
        let http = b.build().map_err(|e| KubeError::Client(e.to_string()))?;
        Ok(Self {
            base,
            http,
            credential,
            own_namespace: namespace,
        })
    }

    /// A GET of `path` (e.g. `/api/v1/pods`) with `query`, authenticated.
    pub fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::RequestBuilder, KubeError> {
        let mut url = self.base.clone();
        let prefix = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{prefix}{path}"));
        let mut req = self.http.get(url).query(query);
        match &self.credential {
            Credential::None => {}
            Credential::Header(h) => req = req.header(reqwest::header::AUTHORIZATION, h.clone()),
            Credential::File { scheme, path } => {
                let token = read_small_file(path)?;
                let token = String::from_utf8_lossy(&token);
                let h = header(&format!("{scheme} {}", token.trim()))?;
                req = req.header(reqwest::header::AUTHORIZATION, h);
            }
        }
        Ok(req)
    }
}

/// A sensitive `Authorization` header value.
fn header(value: &str) -> Result<HeaderValue, KubeError> {
    let mut h = HeaderValue::from_str(value).map_err(|_| {
        KubeError::Client("credentials contain characters not allowed in a header".to_string())
    })?;
    h.set_sensitive(true);
    Ok(h)
}

fn builder(access: &ClusterAccess) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .user_agent(crate::remote_write::USER_AGENT)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .tcp_keepalive(TCP_KEEPALIVE)
        .danger_accept_invalid_certs(access.insecure);
    if let Some(pem) = &access.ca_pem {
        match reqwest::Certificate::from_pem_bundle(pem) {
            Ok(certs) => {
                for c in certs {
                    b = b.add_root_certificate(c);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot parse the Kubernetes CA certificates"),
        }
    }
    if let Some(pem) = &access.identity_pem {
        match reqwest::Identity::from_pem(pem) {
            Ok(id) => b = b.identity(id),
            Err(e) => tracing::error!(error = %e, "cannot parse the Kubernetes client certificate"),
        }
    }
    b
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
        std::fs::write(sa.join("ca.crt"), "").unwrap();
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
    }
}

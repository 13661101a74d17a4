//! The parts of a kubeconfig file discovery uses: the current context's
//! cluster (server, CA, TLS verification), user (token, token file,
//! client certificate, basic auth) and namespace. Relative paths are
//! relative to the kubeconfig's directory, as kubectl resolves them.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::error::KubeError;

/// How to reach and authenticate to one cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterAccess {
    /// The API server URL.
    pub server: String,
    /// PEM CA certificates.
    pub ca_pem: Option<Vec<u8>>,
    /// Skip server certificate verification.
    pub insecure: bool,
    /// A bearer token.
    pub token: Option<String>,
    /// A file holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// PEM client certificate (with `key_pem`).
    pub cert_pem: Option<Vec<u8>>,
    /// PEM private key of the client certificate.
    pub key_pem: Option<Vec<u8>>,
    /// Basic auth user and password.
    pub basic: Option<(String, String)>,
    /// The context's namespace.
    pub namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Kubeconfig {
    #[serde(default, rename = "current-context")]
    current_context: String,
    #[serde(default)]
    contexts: Vec<Named<Context>>,
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    name: String,
    #[serde(alias = "context", alias = "cluster", alias = "user")]
    value: T,
}

#[derive(Debug, Deserialize)]
struct Context {
    cluster: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    server: String,
    #[serde(default)]
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    exec: Option<serde_yaml::Value>,
    #[serde(default, rename = "auth-provider")]
    auth_provider: Option<serde_yaml::Value>,
}

/// Most bytes read from a kubeconfig or a file it names.
const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads a file of at most 4 MiB.
pub fn read_small_file(path: &Path) -> Result<Vec<u8>, KubeError> {
    let err = |source| KubeError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(err)?.len();
    if len > MAX_FILE_BYTES {
        return Err(err(std::io::Error::other(format!(
            "file is {len} bytes, more than the {MAX_FILE_BYTES} allowed"
        ))));
    }
    std::fs::read(path).map_err(err)
}

/// Loads the current context of the kubeconfig at `path`.
pub fn load(path: &Path) -> Result<ClusterAccess, KubeError> {
    let text = read_small_file(path)?;
    let bad = |reason: String| KubeError::Kubeconfig {
        path: path.to_path_buf(),
        reason,
    };
    let cfg: Kubeconfig = serde_yaml::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let ctx = cfg
        .contexts
        .iter()
        .find(|c| c.name == cfg.current_context)
        .ok_or_else(|| {
            bad(format!(
                "current-context {:?} is not defined",
                cfg.current_context
            ))
        })?;
    let cluster = cfg
        .clusters
        .iter()
        .find(|c| c.name == ctx.value.cluster)
        .ok_or_else(|| bad(format!("cluster {:?} is not defined", ctx.value.cluster)))?;
    let default_user = Named {
        name: String::new(),
        value: User::default(),
    };
    let user = if ctx.value.user.is_empty() {
        &default_user
    } else {
        cfg.users
            .iter()
            .find(|u| u.name == ctx.value.user)
            .ok_or_else(|| bad(format!("user {:?} is not defined", ctx.value.user)))?
    };
    let (c, u) = (&cluster.value, &user.value);
    if u.exec.is_some() || u.auth_provider.is_some() {
        return Err(bad(format!(
            "user {:?}: exec and auth-provider credentials are not supported; use a token or a client certificate",
            user.name
        )));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let ca_pem = pem(dir, &c.certificate_authority, &c.certificate_authority_data)
        .map_err(|r| bad(format!("certificate-authority: {r}")))?;
    let cert = pem(dir, &u.client_certificate, &u.client_certificate_data)
        .map_err(|r| bad(format!("client-certificate: {r}")))?;
    let key =
        pem(dir, &u.client_key, &u.client_key_data).map_err(|r| bad(format!("client-key: {r}")))?;
    if cert.is_some() != key.is_some() {
        return Err(bad(format!(
            "user {:?}: a client certificate needs its key and the other way round",
            user.name
        )));
    }
    Ok(ClusterAccess {
        server: c.server.clone(),
        ca_pem,
        insecure: c.insecure_skip_tls_verify,
        token: u.token.clone(),
        token_file: u.token_file.as_ref().map(|p| dir.join(p)),
        cert_pem: cert,
        key_pem: key,
        basic: u.username.clone().zip(u.password.clone()),
        namespace: ctx.value.namespace.clone(),
    })
}

/// A PEM from a file (relative to `dir`) or from base64 data.
fn pem(
    dir: &Path,
    file: &Option<PathBuf>,
    data: &Option<String>,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(d) = data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|e| format!("invalid base64: {e}"))?;
        return Ok(Some(bytes));
    }
    match file {
        Some(f) => read_small_file(&dir.join(f))
            .map(Some)
            .map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_current_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "CA").unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\n\
             contexts:\n- {name: a, context: {cluster: x, user: u}}\n- {name: b, context: {cluster: y, user: u, namespace: ns1}}\n\
             clusters:\n- {name: x, cluster: {server: 'https://x'}}\n- {name: y, cluster: {server: 'https://y:6443', certificate-authority: ca.pem}}\n\
             users:\n- {name: u, user: {token: abc, client-certificate-data: Q0VSVA==, client-key-data: S0VZ}}\n",
        )
        .unwrap();
        let a = load(&path).unwrap();
        assert_eq!(a.server, "https://y:6443");
        assert_eq!(a.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(a.token.as_deref(), Some("abc"));
        assert_eq!(a.cert_pem.as_deref(), Some(&b"CERT"[..]));
        assert_eq!(a.key_pem.as_deref(), Some(&b"KEY"[..]));
        assert_eq!(a.namespace.as_deref(), Some("ns1"));
    }

    #[test]
    fn names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        for (text, want) in [
            ("current-context: z\ncontexts: []\n", "current-context \"z\" is not defined"),
            (
                "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\n",
                "cluster \"c\" is not defined",
            ),
            (
                "current-context: a\ncontexts: [{name: a, context: {cluster: c, user: u}}]\nclusters: [{name: c, cluster: {server: 'https://c'}}]\nusers: [{name: u, user: {exec: {command: x}}}]\n",
                "not supported",
            ),
            ("[", "kubeconfig"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = load(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}

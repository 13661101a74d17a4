//! The HTTP client settings of a scrape job and of a remote-write endpoint,
//! with Prometheus's `http_client_config` key names and defaults:
//! `basic_auth`, `authorization`, `bearer_token(_file)`, `tls_config`,
//! `follow_redirects`, `enable_http2` and the proxy keys.
//!
//! The keys are explicit fields of [`ScrapeConfig`] and
//! [`RemoteWriteConfig`] (serde's `flatten` does not work with
//! `deny_unknown_fields`); [`HttpClientConfig`] gathers them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{KubernetesSdConfig, LogsConfig, RemoteWriteConfig, ScrapeConfig};
use crate::CollectorError;

/// A secret from the config (a password, a token): never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// `basic_auth`: HTTP basic authentication.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user name.
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the user name, read on every request.
    #[serde(default)]
    pub username_file: Option<PathBuf>,
    /// The password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding the password, read on every request.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// `authorization`: an `Authorization: <type> <credentials>` header.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    /// The scheme (default `Bearer`).
    #[serde(default = "default_auth_type", rename = "type")]
    pub auth_type: String,
    /// The credentials.
    #[serde(default)]
    pub credentials: Option<Secret>,
    /// A file holding the credentials, read on every request (so rotated
    /// service account tokens work).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

fn default_auth_type() -> String {
    "Bearer".to_string()
}

/// A TLS protocol version, as Prometheus spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.0 (accepted; the collector speaks TLS 1.2 and 1.3 only).
    #[serde(rename = "TLS10")]
    Tls10,
    /// TLS 1.1 (accepted; the collector speaks TLS 1.2 and 1.3 only).
    #[serde(rename = "TLS11")]
    Tls11,
    /// TLS 1.2.
    #[serde(rename = "TLS12")]
    Tls12,
    /// TLS 1.3.
    #[serde(rename = "TLS13")]
    Tls13,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Tls10 => "TLS10",
            Self::Tls11 => "TLS11",
            Self::Tls12 => "TLS12",
            Self::Tls13 => "TLS13",
        })
    }
}

/// `tls_config`: how `https` servers are verified and how the client
/// identifies itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM CA certificates; they replace the built-in roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The same, inline.
    #[serde(default)]
    pub ca: Option<String>,
    /// PEM client certificate (chain), for mutual TLS; needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The same, inline.
    #[serde(default)]
    pub cert: Option<String>,
    /// PEM private key of the client certificate.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// The same, inline.
    #[serde(default)]
    pub key: Option<Secret>,
    /// The name the server certificate is verified against, instead of
    /// the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any server certificate (no chain or name check).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Lowest TLS version (default `TLS12`).
    #[serde(default)]
    pub min_version: Option<TlsVersion>,
    /// Highest TLS version (default `TLS13`).
    #[serde(default)]
    pub max_version: Option<TlsVersion>,
}

/// Everything that shapes one HTTP client: auth, TLS, redirects, proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpClientConfig {
    /// `basic_auth`.
    pub basic_auth: Option<BasicAuth>,
    /// `authorization`.
    pub authorization: Option<Authorization>,
    /// `bearer_token` (legacy; same as `authorization.credentials`).
    pub bearer_token: Option<Secret>,
    /// `bearer_token_file` (legacy; same as `authorization.credentials_file`).
    pub bearer_token_file: Option<PathBuf>,
    /// `tls_config`.
    pub tls_config: TlsConfig,
    /// `follow_redirects` (default true).
    pub follow_redirects: bool,
    /// `enable_http2` (default true).
    pub enable_http2: bool,
    /// `proxy_url`: an `http://` or `https://` proxy for every request.
    pub proxy_url: Option<String>,
    /// `no_proxy`: comma-separated hosts, domains and CIDRs not proxied.
    pub no_proxy: Option<String>,
    /// `proxy_from_environment`: use `HTTP(S)_PROXY` / `NO_PROXY`.
    pub proxy_from_environment: bool,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        Self {
            basic_auth: None,
            authorization: None,
            bearer_token: None,
            bearer_token_file: None,
            tls_config: TlsConfig::default(),
            follow_redirects: true,
            enable_http2: true,
            proxy_url: None,
            no_proxy: None,
            proxy_from_environment: false,
        }
    }
}

/// Declares a config struct with its own fields followed by the HTTP client
/// keys (`basic_auth`, `authorization`, `bearer_token(_file)`,
/// `tls_config`, `follow_redirects`, `enable_http2`, the proxy keys), so
/// every section that talks HTTP spells them the same way.
macro_rules! with_http_client_keys {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        $vis struct $name {
            $($fields)*
            /// `basic_auth`: HTTP basic authentication.
            #[serde(default)]
            pub basic_auth: Option<$crate::config::BasicAuth>,
            /// `authorization`: an `Authorization: <type> <credentials>` header.
            #[serde(default)]
            pub authorization: Option<$crate::config::Authorization>,
            /// `bearer_token` (legacy form of `authorization.credentials`).
            #[serde(default)]
            pub bearer_token: Option<$crate::config::Secret>,
            /// `bearer_token_file`: a file holding the bearer token, re-read
            /// for every request.
            #[serde(default)]
            pub bearer_token_file: Option<std::path::PathBuf>,
            /// `tls_config`: TLS settings for an `https` server.
            #[serde(default)]
            pub tls_config: $crate::config::TlsConfig,
            /// Whether HTTP redirects are followed (default true).
            #[serde(default = "crate::config::default_true")]
            pub follow_redirects: bool,
            /// Accepted for compatibility; the collector speaks HTTP/1.1.
            #[serde(default = "crate::config::default_true")]
            pub enable_http2: bool,
            /// `proxy_url`: an `http://` or `https://` proxy for every request.
            #[serde(default)]
            pub proxy_url: Option<String>,
            /// `no_proxy`: hosts, domains and CIDRs not proxied.
            #[serde(default)]
            pub no_proxy: Option<String>,
            /// `proxy_from_environment`: use `HTTP(S)_PROXY` / `NO_PROXY`.
            #[serde(default)]
            pub proxy_from_environment: bool,
        }
    };
}
pub(crate) use with_http_client_keys;

/// Implements the accessors of the HTTP client keys for a config struct
/// holding them as explicit fields.
macro_rules! http_client_keys {
    ($t:ty) => {
        impl $t {
            /// The HTTP client settings of this entry.
            pub fn http_client_config(&self) -> HttpClientConfig {
                HttpClientConfig {
                    basic_auth: self.basic_auth.clone(),
                    authorization: self.authorization.clone(),
                    bearer_token: self.bearer_token.clone(),
                    bearer_token_file: self.bearer_token_file.clone(),
                    tls_config: self.tls_config.clone(),
                    follow_redirects: self.follow_redirects,
                    enable_http2: self.enable_http2,
                    proxy_url: self.proxy_url.clone(),
                    no_proxy: self.no_proxy.clone(),
                    proxy_from_environment: self.proxy_from_environment,
                }
            }

            /// Makes the relative file names of the HTTP client keys
            /// relative to `base` (the config file's directory), as
            /// Prometheus does.
            pub(crate) fn resolve_http_paths(&mut self, base: &Path) {
                let files = [
                    &mut self.bearer_token_file,
                    &mut self.tls_config.ca_file,
                    &mut self.tls_config.cert_file,
                    &mut self.tls_config.key_file,
                ];
                let auth_files = self
                    .basic_auth
                    .iter_mut()
                    .flat_map(|b| [&mut b.username_file, &mut b.password_file].into_iter());
                let cred_files = self
                    .authorization
                    .iter_mut()
                    .map(|a| &mut a.credentials_file);
                for f in files.into_iter().chain(auth_files).chain(cred_files) {
                    if let Some(p) = f.as_mut() {
                        if p.is_relative() {
                            *p = base.join(&*p);
                        }
                    }
                }
            }
        }
    };
}

http_client_keys!(ScrapeConfig);
http_client_keys!(RemoteWriteConfig);
http_client_keys!(KubernetesSdConfig);
http_client_keys!(LogsConfig);

/// Makes every relative credentials and TLS file name of `cfg` relative to
/// `base`.
pub(crate) fn resolve_paths(cfg: &mut super::CollectorConfig, base: &Path) {
    for sc in &mut cfg.scrape_configs {
        sc.resolve_http_paths(base);
        for sd in &mut sc.kubernetes_sd_configs {
            sd.resolve_http_paths(base);
        }
    }
    for rw in &mut cfg.remote_write {
        rw.resolve_http_paths(base);
    }
    if let Some(logs) = &mut cfg.logs {
        logs.resolve_http_paths(base);
    }
}

/// Checks the HTTP client keys of the entry at `at` (e.g.
/// `scrape_configs[0]`): at most one auth method, at most one source per
/// value, and that the TLS files load and the proxy URL parses.
pub(crate) fn validate(cfg: &HttpClientConfig, at: &str) -> Result<(), CollectorError> {
    check_keys(cfg)
        .map_err(|(key, reason)| CollectorError::invalid(format!("{at}.{key}"), reason))?;
    crate::http_client::HttpClient::new(cfg)
        .map(|_| ())
        .map_err(|e| CollectorError::invalid(format!("{at}.{}", e.key()), e.to_string()))
}

fn check_keys(cfg: &HttpClientConfig) -> Result<(), (String, String)> {
    let bearer = cfg.bearer_token.is_some() || cfg.bearer_token_file.is_some();
    let methods = [
        ("basic_auth", cfg.basic_auth.is_some()),
        ("authorization", cfg.authorization.is_some()),
        ("bearer_token", bearer),
    ];
    let set: Vec<&str> = methods.iter().filter(|m| m.1).map(|m| m.0).collect();
    if set.len() > 1 {
        return Err((
            set[1].to_string(),
            format!(
                "at most one of basic_auth, authorization and bearer_token/bearer_token_file may be set; found {}",
                set.join(" and ")
            ),
        ));
    }
    let basic = cfg.basic_auth.as_ref();
    let authz = cfg.authorization.as_ref();
    let t = &cfg.tls_config;
    // (first key set, second key set, the second key's name, both names)
    let exclusive = [
        (
            cfg.bearer_token.is_some(),
            cfg.bearer_token_file.is_some(),
            "bearer_token_file",
            "bearer_token and bearer_token_file",
        ),
        (
            basic.is_some_and(|b| b.username.is_some()),
            basic.is_some_and(|b| b.username_file.is_some()),
            "basic_auth.username_file",
            "basic_auth username and username_file",
        ),
        (
            basic.is_some_and(|b| b.password.is_some()),
            basic.is_some_and(|b| b.password_file.is_some()),
            "basic_auth.password_file",
            "basic_auth password and password_file",
        ),
        (
            authz.is_some_and(|a| a.credentials.is_some()),
            authz.is_some_and(|a| a.credentials_file.is_some()),
            "authorization.credentials_file",
            "authorization credentials and credentials_file",
        ),
        (
            t.ca.is_some(),
            t.ca_file.is_some(),
            "tls_config.ca_file",
            "tls_config ca and ca_file",
        ),
        (
            t.cert.is_some(),
            t.cert_file.is_some(),
            "tls_config.cert_file",
            "tls_config cert and cert_file",
        ),
        (
            t.key.is_some(),
            t.key_file.is_some(),
            "tls_config.key_file",
            "tls_config key and key_file",
        ),
        (
            cfg.proxy_url.is_some(),
            cfg.proxy_from_environment,
            "proxy_from_environment",
            "proxy_url and proxy_from_environment",
        ),
    ];
    if let Some((_, _, key, both)) = exclusive.iter().find(|e| e.0 && e.1) {
        return Err((key.to_string(), format!("at most one of {both} may be set")));
    }
    if let Some(a) = authz {
        if a.auth_type.eq_ignore_ascii_case("basic") {
            return Err((
                "authorization.type".to_string(),
                "authorization type cannot be \"Basic\"; use basic_auth instead".to_string(),
            ));
        }
        if a.auth_type.is_empty() || !a.auth_type.bytes().all(|c| c.is_ascii_graphic()) {
            return Err((
                "authorization.type".to_string(),
                format!("{:?} is not a valid HTTP authorization scheme", a.auth_type),
            ));
        }
    }
    let has_cert = t.cert.is_some() || t.cert_file.is_some();
    let has_key = t.key.is_some() || t.key_file.is_some();
    if has_cert != has_key {
        return Err((
            if has_cert {
                "tls_config.cert_file"
            } else {
                "tls_config.key_file"
            }
            .to_string(),
            "a client certificate needs both a certificate (cert_file) and a key (key_file)"
                .to_string(),
        ));
    }
    if let (Some(min), Some(max)) = (t.min_version, t.max_version) {
        if min > max {
            return Err((
                "tls_config.min_version".to_string(),
                format!("min_version {min} is above max_version {max}"),
            ));
        }
    }
    if t.max_version.is_some_and(|v| v < TlsVersion::Tls12) {
        return Err((
            "tls_config.max_version".to_string(),
            "the collector speaks TLS 1.2 and 1.3 only; max_version must be TLS12 or TLS13"
                .to_string(),
        ));
    }
    if cfg.no_proxy.is_some() && cfg.proxy_url.is_none() {
        return Err((
            "no_proxy".to_string(),
            "no_proxy needs proxy_url".to_string(),
        ));
    }
    Ok(())
}

//! The HTTP client of one scrape job or one remote-write endpoint, built
//! from its [`HttpClientConfig`]: TLS (own CA, client certificate, server
//! name, lowest version), redirects, proxy, and the `Authorization` header
//! added to every request (credential files re-read each time).

mod auth;
mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{CollectorConfig, HttpClientConfig};
use crate::CollectorError;

use auth::Auth;

/// Largest credentials, CA, certificate or key file read (1 MiB).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Why a client could not be built or a credential could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    /// A file named in the config could not be read.
    #[error("cannot read {key} {path}: {source}")]
    ReadFile {
        /// The config key, e.g. `tls_config.ca_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file named in the config is larger than [`MAX_FILE_BYTES`].
    #[error("{key} {path} is larger than {MAX_FILE_BYTES} bytes")]
    FileTooLarge {
        /// The config key.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A CA, certificate or key does not hold what it should.
    #[error("{key} {source_name}: {reason}")]
    Pem {
        /// The config key, e.g. `tls_config.key_file`.
        key: &'static str,
        /// The file, or `(inline)`.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS settings do not fit together (e.g. the key does not match
    /// the certificate).
    #[error("{key}: {reason}")]
    Tls {
        /// The config key.
        key: &'static str,
        /// What rustls said.
        reason: String,
    },
    /// A credential cannot be sent in an HTTP header.
    #[error("{key}: the credentials contain characters not allowed in an HTTP header")]
    InvalidHeader {
        /// The config key.
        key: &'static str,
    },
    /// `proxy_url` or `no_proxy` is not usable.
    #[error("proxy_url {url:?}: {reason}")]
    Proxy {
        /// The configured proxy URL.
        url: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// reqwest refused to build the client.
    #[error("cannot build the http client: {0}")]
    Build(String),
}

impl HttpClientError {
    /// The config key (relative to the scrape job or endpoint) the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            Self::ReadFile { key, .. }
            | Self::FileTooLarge { key, .. }
            | Self::Pem { key, .. }
            | Self::Tls { key, .. }
            | Self::InvalidHeader { key } => key,
            Self::Proxy { .. } => "proxy_url",
            Self::Build(_) => "tls_config",
        }
    }
}

/// An HTTP client with its job's or endpoint's settings; cheap to clone.
/// [`HttpClient::get`] and [`HttpClient::post`] add the configured
/// `Authorization` header to every request.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    auth: Option<Arc<Auth>>,
}

impl From<reqwest::Client> for HttpClient {
    /// A client without auth, with `client`'s settings.
    fn from(client: reqwest::Client) -> Self {
        Self {
            inner: client,
            auth: None,
        }
    }
}

impl HttpClient {
    /// Builds the client `cfg` describes (validated: at most one auth
    /// method). CA, certificate and key files are read now; credential
    /// files on every request.
    pub fn new(cfg: &HttpClientConfig) -> Result<Self, HttpClientError> {
        Self::with_builder(cfg, |b| b)
    }

    /// Like [`HttpClient::new`], with `customize` applied to the reqwest
    /// builder first (e.g. for timeouts the config has no keys for).
    pub fn with_builder(
        cfg: &HttpClientConfig,
        customize: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Result<Self, HttpClientError> {
        let mut builder = customize(reqwest::Client::builder())
            .user_agent(crate::remote_write::USER_AGENT)
            .use_preconfigured_tls(tls::client_config(&cfg.tls_config)?)
            // This build has no HTTP/2: `enable_http2` cannot add it.
            .http1_only();
        if !cfg.follow_redirects {
            builder = builder.redirect(reqwest::redirect::Policy::none());
        }
        builder = match &cfg.proxy_url {
            Some(url) => {
                let proxy_err = |reason: String| HttpClientError::Proxy {
                    url: url.clone(),
                    reason,
                };
                let parsed = reqwest::Url::parse(url).map_err(|e| proxy_err(e.to_string()))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(proxy_err("must be an http:// or https:// URL".to_string()));
                }
                let proxy = reqwest::Proxy::all(parsed)
                    .map_err(|e| proxy_err(e.to_string()))?
                    .no_proxy(
                        cfg.no_proxy
                            .as_deref()
                            .and_then(reqwest::NoProxy::from_string),
                    );
                builder.proxy(proxy)
            }
            None if cfg.proxy_from_environment => builder,
            None => builder.no_proxy(),
        };
        let inner = builder
            .build()
            .map_err(|e| HttpClientError::Build(crate::remote_write::error_chain(&e)))?;
        Ok(Self {
            inner,
            auth: Auth::from_config(cfg).map(Arc::new),
        })
    }

    /// A `GET` of `url` with the configured auth.
    pub fn get<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.authorize(self.inner.get(url))
    }

    /// A `POST` to `url` with the configured auth.
    pub fn post<U: reqwest::IntoUrl>(&self, url: U) -> reqwest::RequestBuilder {
        self.authorize(self.inner.post(url))
    }

    /// The underlying reqwest client (no auth added).
    pub fn inner(&self) -> &reqwest::Client {
        &self.inner
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            None => req,
            Some(auth) => auth.apply(req),
        }
    }
}

/// One client per scrape job, by job name, for a validated config.
pub fn scrape_clients(
    cfg: &CollectorConfig,
) -> Result<HashMap<String, HttpClient>, CollectorError> {
    cfg.scrape_configs
        .iter()
        .enumerate()
        .map(|(i, sc)| {
            let client = HttpClient::new(&sc.http_client_config()).map_err(|e| {
                CollectorError::invalid(format!("scrape_configs[{i}].{}", e.key()), e.to_string())
            })?;
            Ok((sc.job_name.clone(), client))
        })
        .collect()
}

/// Reads a file named by config key `key`, refusing files larger than
/// [`MAX_FILE_BYTES`].
pub(crate) fn read_limited(
    key: &'static str,
    path: &std::path::Path,
) -> Result<Vec<u8>, HttpClientError> {
    use std::io::Read;
    let read_err = |source| HttpClientError::ReadFile {
        key,
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(read_err)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(HttpClientError::FileTooLarge {
            key,
            path: path.to_path_buf(),
        });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests;

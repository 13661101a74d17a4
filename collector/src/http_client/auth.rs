//! The `Authorization` header of every request: basic auth or
//! `<type> <credentials>`, with values from the config or from files read
//! on every request (rotated tokens are picked up at once).

use std::path::PathBuf;

use reqwest::header::{HeaderValue, AUTHORIZATION};

use super::{read_limited, HttpClientError};
use crate::config::HttpClientConfig;

/// Where one credential comes from.
#[derive(Debug, Clone)]
pub(super) enum Credential {
    /// Written in the config (not shown by `Debug`).
    Inline(crate::config::Secret),
    /// Read from a file on every request; surrounding whitespace trimmed.
    File {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
    },
}

impl Credential {
    fn new(
        inline: Option<&crate::config::Secret>,
        file: Option<&PathBuf>,
        key: &'static str,
    ) -> Option<Self> {
        match (inline, file) {
            (_, Some(path)) => Some(Self::File {
                key,
                path: path.clone(),
            }),
            (Some(s), None) => Some(Self::Inline(s.clone())),
            (None, None) => None,
        }
    }

    fn read(&self) -> Result<String, HttpClientError> {
        match self {
            Self::Inline(s) => Ok(s.0.clone()),
            Self::File { key, path } => {
                let bytes = read_limited(key, path)?;
                let text = String::from_utf8(bytes).map_err(|_| HttpClientError::Pem {
                    key,
                    source_name: path.display().to_string(),
                    reason: "is not UTF-8 text".to_string(),
                })?;
                Ok(text.trim().to_string())
            }
        }
    }
}

/// The configured authentication of one client.
#[derive(Debug, Clone)]
pub(super) enum Auth {
    /// `basic_auth`.
    Basic {
        username: Option<Credential>,
        password: Option<Credential>,
    },
    /// `authorization` or `bearer_token(_file)`: `<scheme> <credentials>`.
    Scheme {
        scheme: String,
        credentials: Option<Credential>,
        /// The config key, for errors about the value.
        key: &'static str,
    },
}

impl Auth {
    /// The auth `cfg` asks for, if any (`basic_auth` first, then
    /// `authorization`, then the legacy bearer keys; validation allows
    /// only one).
    pub(super) fn from_config(cfg: &HttpClientConfig) -> Option<Self> {
        if let Some(b) = &cfg.basic_auth {
            let username = match (&b.username, &b.username_file) {
                (_, Some(path)) => Some(Credential::File {
                    key: "basic_auth.username_file",
                    path: path.clone(),
                }),
                (Some(u), None) => Some(Credential::Inline(crate::config::Secret(u.clone()))),
                (None, None) => None,
            };
            return Some(Self::Basic {
                username,
                password: Credential::new(
                    b.password.as_ref(),
                    b.password_file.as_ref(),
                    "basic_auth.password_file",
                ),
            });
        }
        if let Some(a) = &cfg.authorization {
            return Some(Self::Scheme {
                scheme: a.auth_type.clone(),
                credentials: Credential::new(
                    a.credentials.as_ref(),
                    a.credentials_file.as_ref(),
                    "authorization.credentials_file",
                ),
                key: "authorization.credentials",
            });
        }
        if cfg.bearer_token.is_some() || cfg.bearer_token_file.is_some() {
            return Some(Self::Scheme {
                scheme: "Bearer".to_string(),
                credentials: Credential::new(
                    cfg.bearer_token.as_ref(),
                    cfg.bearer_token_file.as_ref(),
                    "bearer_token_file",
                ),
                key: "bearer_token",
            });
        }
        None
    }

    /// Adds the header to `req`, reading credential files now. A
    /// credential that cannot be read makes the request fail when sent,
    /// with this error (its message names the file) as the cause, so the
    /// scrape or send reports it.
    pub(super) fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.resolve() {
            Ok(Header::Nothing) => req,
            Ok(Header::Basic(user, pass)) => req.basic_auth(user, pass),
            Ok(Header::Value(v)) => req.header(AUTHORIZATION, v),
            Err(e) => fail_request(req, &e),
        }
    }

    /// What to send now.
    fn resolve(&self) -> Result<Header, HttpClientError> {
        let read = |c: &Option<Credential>| c.as_ref().map(Credential::read).transpose();
        match self {
            Self::Basic { username, password } => Ok(Header::Basic(
                read(username)?.unwrap_or_default(),
                read(password)?,
            )),
            Self::Scheme {
                scheme,
                credentials,
                key,
            } => match read(credentials)? {
                Some(cred) if !cred.is_empty() => {
                    sensitive(&format!("{scheme} {cred}"), key).map(Header::Value)
                }
                _ => Ok(Header::Nothing),
            },
        }
    }
}

/// The `Authorization` header of one request.
enum Header {
    /// None (no credentials configured, or an empty credentials file).
    Nothing,
    /// Basic auth with this user and password.
    Basic(String, Option<String>),
    /// This value.
    Value(HeaderValue),
}

fn sensitive(value: &str, key: &'static str) -> Result<HeaderValue, HttpClientError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| HttpClientError::InvalidHeader { key })?;
    v.set_sensitive(true);
    Ok(v)
}

/// Makes `req` fail with `error` as its cause when sent (nothing reaches
/// the network). reqwest has no public way to put an own error into a
/// request builder; a query parameter whose serialization fails with the
/// message is the one that keeps it as the error's source.
fn fail_request(req: reqwest::RequestBuilder, error: &HttpClientError) -> reqwest::RequestBuilder {
    struct Fail(String);
    impl serde::Serialize for Fail {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom(&self.0))
        }
    }
    req.query(&Fail(error.to_string()))
}

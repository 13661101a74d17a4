//! The rustls client configuration of one [`TlsConfig`]: trusted roots
//! (the CA file replaces the built-in ones), client certificate, server
//! name, TLS versions, or no verification at all.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{read_limited, HttpClientError};
use crate::config::{TlsConfig, TlsVersion};

/// Builds the rustls client configuration of `cfg`, reading its files.
pub(super) fn client_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, HttpClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(cfg);
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| tls_err("tls_config.min_version", e))?;
    let webpki = if cfg.insecure_skip_verify {
        None
    } else {
        let roots = Arc::new(roots(cfg)?);
        Some(
            WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
                .build()
                .map_err(|e| tls_err("tls_config.ca_file", e))?,
        )
    };
    let name = cfg
        .server_name
        .clone()
        .map(ServerName::try_from)
        .transpose()
        .map_err(|e| tls_err("tls_config.server_name", e))?;
    let verifier = Arc::new(Verifier {
        webpki,
        name,
        provider,
    });
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity(cfg)? {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| tls_err("tls_config.key_file", e))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn tls_err(key: &'static str, e: impl std::fmt::Display) -> HttpClientError {
    HttpClientError::Tls {
        key,
        reason: e.to_string(),
    }
}

/// The TLS versions between `min_version` (default TLS 1.2) and
/// `max_version`; rustls has nothing older than TLS 1.2.
fn versions(cfg: &TlsConfig) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = cfg.min_version.unwrap_or(TlsVersion::Tls12);
    let max = cfg.max_version.unwrap_or(TlsVersion::Tls13);
    [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| *v >= min && *v <= max)
    .map(|(_, p)| p)
    .collect()
}

/// A PEM from the config: a file (read now) or inline text.
fn pem_source(
    key: &'static str,
    file: Option<&std::path::PathBuf>,
    inline: Option<&str>,
) -> Result<Option<(Vec<u8>, String)>, HttpClientError> {
    match (file, inline) {
        (Some(path), _) => Ok(Some((read_limited(key, path)?, path.display().to_string()))),
        (None, Some(text)) => Ok(Some((text.as_bytes().to_vec(), "(inline)".to_string()))),
        (None, None) => Ok(None),
    }
}

/// The certificates of a PEM source; at least one.
fn certificates(
    key: &'static str,
    pem: &[u8],
    name: &str,
) -> Result<Vec<CertificateDer<'static>>, HttpClientError> {
    let pem_err = |reason: String| HttpClientError::Pem {
        key,
        source_name: name.to_string(),
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_err("holds no PEM certificate".to_string()));
    }
    Ok(certs)
}

/// The trusted roots: the CA's certificates, else the built-in roots.
fn roots(cfg: &TlsConfig) -> Result<RootCertStore, HttpClientError> {
    const KEY: &str = "tls_config.ca_file";
    let Some((pem, name)) = pem_source(KEY, cfg.ca_file.as_ref(), cfg.ca.as_deref())? else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(KEY, &pem, &name)? {
        roots.add(cert).map_err(|e| HttpClientError::Pem {
            key: KEY,
            source_name: name.clone(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate chain and key, when configured.
fn identity(cfg: &TlsConfig) -> Result<Option<Identity>, HttpClientError> {
    const CERT: &str = "tls_config.cert_file";
    const KEY: &str = "tls_config.key_file";
    let cert = pem_source(CERT, cfg.cert_file.as_ref(), cfg.cert.as_deref())?;
    let key = pem_source(
        KEY,
        cfg.key_file.as_ref(),
        cfg.key.as_ref().map(|k| k.0.as_str()),
    )?;
    let (Some((cert_pem, cert_name)), Some((key_pem, key_name))) = (cert, key) else {
        return Ok(None);
    };
    let certs = certificates(CERT, &cert_pem, &cert_name)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| HttpClientError::Pem {
        key: KEY,
        source_name: key_name,
        reason: format!("holds no usable PEM private key: {e}"),
    })?;
    Ok(Some((certs, key)))
}

/// Checks the server's certificate: with the webpki verifier (against
/// `name`, `tls_config.server_name`, when set, instead of the URL's host),
/// or not at all (`insecure_skip_verify`). The handshake signatures are
/// always checked.
#[derive(Debug)]
struct Verifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    name: Option<ServerName<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.webpki {
            None => Ok(ServerCertVerified::assertion()),
            Some(v) => v.verify_server_cert(
                end_entity,
                intermediates,
                self.name.as_ref().unwrap_or(server_name),
                ocsp_response,
                now,
            ),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

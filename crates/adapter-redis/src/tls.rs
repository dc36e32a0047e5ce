//! The TLS client configuration of `rediss://` nodes: the trusted roots (`security.ca_file`, or
//! the platform's) and the optional client identity for mutual TLS, with the `ring` crypto
//! provider named explicitly, so the result does not depend on which providers other crates
//! happen to enable. Reads the PEM files; decides nothing about connections or retries.

use std::path::Path;
use std::sync::Arc;

use fred::types::config::{TlsConfig, TlsConnector};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::RedisSecurity;
use crate::error::{Error, SecurityFile};

/// Builds the TLS configuration every `rediss://` node uses.
///
/// # Errors
///
/// [`Error::TlsFile`] naming the field of a file that cannot be read or holds nothing usable;
/// [`Error::TlsSetup`] when the TLS library refuses its default protocol versions.
pub(crate) fn client_tls(security: &RedisSecurity) -> Result<TlsConfig, Error> {
    let roots = match &security.ca_file {
        Some(path) => roots_from_file(path)?,
        None => platform_roots(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| Error::TlsSetup { source })?
        .with_root_certificates(roots);
    let config = match (&security.client_cert, &security.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let chain = certificates(SecurityFile::ClientCert, cert_path)?;
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|error| tls_error(SecurityFile::ClientKey, key_path, error))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| tls_error(SecurityFile::ClientKey, key_path, error))?
        }
        // Validation guarantees both or neither.
        _ => builder.with_no_client_auth(),
    };
    Ok(TlsConnector::from(config).into())
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(SecurityFile::CaFile, path)? {
        roots
            .add(certificate)
            .map_err(|error| tls_error(SecurityFile::CaFile, path, error))?;
    }
    Ok(roots)
}

/// The platform's roots; unreadable ones are skipped (they could never verify a server anyway,
/// and the handshake error then names the certificate it could not verify).
fn platform_roots() -> RootCertStore {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::warn!(error = %error, "platform certificate not loaded");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    tracing::debug!(added, ignored, "platform certificate roots loaded");
    roots
}

fn certificates(file: SecurityFile, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| tls_error(file, path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| tls_error(file, path, error))?;
    if certificates.is_empty() {
        return Err(Error::TlsFile {
            file,
            path: path.to_owned(),
            reason: "no PEM certificate in the file".to_owned(),
        });
    }
    Ok(certificates)
}

fn tls_error(file: SecurityFile, path: &Path, error: impl std::fmt::Display) -> Error {
    Error::TlsFile {
        file,
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

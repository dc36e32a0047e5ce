//! [`TestCertificates`]: a throwaway certificate authority, a server certificate for
//! `127.0.0.1` and `localhost`, and a client certificate, generated at test time and written as
//! PEM files, for TLS-serving [`crate::RedisServer`]s. Test-only keys: never reuse them.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::redis_server::TlsFiles;

/// PEM files of one generated authority and the certificates it signed, in a directory the
/// caller owns (for example a `tempfile::TempDir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCertificates {
    /// The authority's certificate: what a client trusts (`--redis-ca-file`).
    pub ca: PathBuf,
    /// The server certificate (SANs `127.0.0.1` and `localhost`), signed by the authority.
    pub server_cert: PathBuf,
    /// The server certificate's private key.
    pub server_key: PathBuf,
    /// A client certificate signed by the authority, for mutual TLS.
    pub client_cert: PathBuf,
    /// The client certificate's private key.
    pub client_key: PathBuf,
}

impl TestCertificates {
    /// Generates a new authority and its certificates into `dir` (created if missing), with
    /// file names starting with `name` so several sets can share a directory. Panics on failure.
    pub fn generate(dir: &Path, name: &str) -> Self {
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        let ca_key = key_pair();
        let mut ca_params = params(Vec::new());
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test ca"));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params
            .self_signed(&ca_key)
            .expect("cannot self-sign the test ca");
        let server = issue(&ca, &ca_key, ExtendedKeyUsagePurpose::ServerAuth);
        let client = issue(&ca, &ca_key, ExtendedKeyUsagePurpose::ClientAuth);
        let write = |suffix: &str, pem: String| {
            let path = dir.join(format!("{name}-{suffix}.pem"));
            std::fs::write(&path, pem)
                .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
            path
        };
        Self {
            ca: write("ca", ca.pem()),
            server_cert: write("server", server.0.pem()),
            server_key: write("server-key", server.1.serialize_pem()),
            client_cert: write("client", client.0.pem()),
            client_key: write("client-key", client.1.serialize_pem()),
        }
    }

    /// The files a TLS-serving `redis-server` needs; `require_client_certificates` makes it
    /// demand a client certificate signed by this authority.
    pub fn server_files(&self, require_client_certificates: bool) -> TlsFiles {
        TlsFiles {
            cert: self.server_cert.clone(),
            key: self.server_key.clone(),
            ca: self.ca.clone(),
            require_client_certificates,
        }
    }
}

fn key_pair() -> KeyPair {
    KeyPair::generate().expect("cannot generate a test key pair")
}

fn params(names: Vec<String>) -> CertificateParams {
    CertificateParams::new(names).expect("invalid test certificate names")
}

fn issue(
    ca: &Certificate,
    ca_key: &KeyPair,
    usage: ExtendedKeyUsagePurpose,
) -> (Certificate, KeyPair) {
    let key = key_pair();
    let mut params = params(vec!["localhost".to_owned()]);
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![usage];
    let certificate = params
        .signed_by(&key, ca, ca_key)
        .expect("cannot sign a test certificate");
    (certificate, key)
}

//! Certificates of a test's own: a CA, and a server certificate it signed, written as PEM files for a TLS front
//! ([`crate::stack::TlsFront`]) and for the clients that must trust it; and client certificates it signs, for a
//! front that verifies its clients.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::PathBuf;

/// A CA and one server certificate, in a temporary directory removed on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
    /// The CA, to sign client certificates with.
    issuer: Issuer<'static, KeyPair>,
}

/// A client certificate and its private key, both PEM.
pub struct ClientCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl TestPki {
    /// A fresh CA named `ca_name`, and a server certificate it signed for `server_names` (host names or IPs).
    pub fn generate(ca_name: &str, server_names: &[&str]) -> TestPki {
        let dir = tempfile::Builder::new().prefix("pki-").tempdir().expect("a temporary directory");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.distinguished_name.push(DnType::CommonName, ca_name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_certificate = ca.self_signed(&ca_key).expect("a self-signed CA");
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().expect("a server key");
        let names: Vec<String> = server_names.iter().map(|name| (*name).to_owned()).collect();
        let mut server = CertificateParams::new(names).expect("server parameters");
        server.distinguished_name.push(DnType::CommonName, server_names[0]);
        let server_certificate = server.signed_by(&server_key, &issuer).expect("a server certificate");

        let pki = TestPki { dir, issuer };
        std::fs::write(pki.ca_file(), ca_certificate.pem()).expect("writing the CA");
        // HAProxy takes the certificate and its key from one file.
        std::fs::write(pki.server_file(), server_certificate.pem() + &server_key.serialize_pem())
            .expect("writing the server certificate");
        pki
    }

    /// A fresh client certificate for `name`, signed by this CA.
    pub fn client_certificate(&self, name: &str) -> ClientCertificate {
        let key = KeyPair::generate().expect("a client key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.signed_by(&key, &self.issuer).expect("a client certificate");
        ClientCertificate { certificate_pem: certificate.pem(), key_pem: key.serialize_pem() }
    }

    /// The CA certificate (PEM): what clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The server certificate followed by its private key (PEM): what the TLS front serves.
    pub fn server_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }
}

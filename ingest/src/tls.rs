//! HTTPS: the server's certificate, which follows its files so that a renewed certificate (cert-manager rewriting
//! a mounted secret) is served without a restart.
//!
//! rustls asks [`ServedCertificate`] for the certificate at every handshake; the reloader
//! ([`crate::credential_files`]) reads the files again and puts a new pair in place when they changed. A pair that
//! cannot be read or does not match (a key that is not the certificate's, as a rotation caught half-way may show)
//! changes nothing: the certificate in use stays until the next round reads a good pair.

use crate::configuration::TlsSettings;
use crate::credential_files::FollowsFiles;
use anyhow::Context;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::{Arc, RwLock};

/// The certificate and key served now, and where they come from.
#[derive(Debug)]
pub struct ServedCertificate {
    current: RwLock<Arc<CertifiedKey>>,
    files: TlsSettings,
    provider: Arc<CryptoProvider>,
}

impl ServedCertificate {
    /// Reads the pair once; one that cannot be read or does not match stops the start-up.
    pub fn load(files: &TlsSettings) -> anyhow::Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read_pair(files, &provider)?;
        Ok(Self { current: RwLock::new(Arc::new(current)), files: files.clone(), provider })
    }

    /// The server's TLS configuration, serving whatever pair is current at each handshake.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        Ok(rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>))
    }
}

impl ResolvesServerCert for ServedCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().expect("certificate lock poisoned")))
    }
}

impl FollowsFiles for ServedCertificate {
    fn secrets(&self) -> &'static str {
        "HTTPS certificate"
    }

    fn read_files_again(&self) -> anyhow::Result<bool> {
        let fresh = read_pair(&self.files, &self.provider)?;
        let mut current = self.current.write().expect("certificate lock poisoned");
        // The key matches the certificate (checked as the pair was read), so the chain tells the pairs apart.
        if current.cert == fresh.cert {
            return Ok(false);
        }
        *current = Arc::new(fresh);
        Ok(true)
    }
}

fn read_pair(files: &TlsSettings, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", files.cert_file.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", files.cert_file.display());
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .with_context(|| format!("reading the private key from {}", files.key_file.display()))?;
    CertifiedKey::from_der(chain, key, provider).context("the TLS certificate and key do not form a valid pair")
}

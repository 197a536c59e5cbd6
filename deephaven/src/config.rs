//! Client settings: where the server is, how to log in, TLS, and timeouts. [`ClientConfig`] prints without secrets;
//! it turns into a lazily connecting tonic [`Endpoint`] that re-establishes its connection by itself.

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::auth::Auth;
use crate::error::{Error, Result};

/// How to reach and log in to a Deephaven server: [`new`](Self::new), then the `with_` settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `http://host:port` (h2c) or `https://host:port` (TLS); public so that a caller can say where it connects.
    pub endpoint: String,
    /// Credentials for the login call.
    pub(crate) auth: Auth,
    /// TLS settings; `https` endpoints use the Web PKI roots when `None`.
    tls: Option<TlsConfig>,
    /// Deadline for establishing a connection.
    connect_timeout: Duration,
    /// Deadline for each call to be answered, and for the operations that time their calls as a whole (a snapshot,
    /// an input table's change); an operation of several calls otherwise takes up to this per call.
    pub(crate) request_timeout: Duration,
    /// Refresh the session at least this often; a quarter of the server's session duration caps it.
    pub(crate) keepalive_interval: Option<Duration>,
}

impl ClientConfig {
    /// Anonymous, plaintext unless `endpoint` is `https`, 10 s to connect, 60 s per call.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            auth: Auth::Anonymous,
            tls: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            keepalive_interval: None,
        }
    }

    /// Sets the credentials.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Enables TLS with these settings (the endpoint must be `https`).
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets the connection deadline.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-call deadline (`AddTableToInputTable` on a keyed or append-only table answers only once an
    /// update cycle has taken the rows, so leave room for one).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Refreshes the session at least every `interval` (by default, and at most, every quarter of the server's
    /// `http.session.durationMs`): a shorter period notices a lost session sooner while idle.
    pub fn with_keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive_interval = Some(interval);
        self
    }

    /// The tonic endpoint for these settings.
    pub(crate) fn endpoint(&self) -> Result<Endpoint> {
        let endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|err| Error::Config(format!("invalid endpoint {:?}: {err}", self.endpoint)))?
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .tcp_nodelay(true);
        let https = endpoint.uri().scheme_str() == Some("https");
        let tls = match (&self.tls, https) {
            (Some(_), false) => {
                return Err(Error::Config(format!("TLS is configured but endpoint {:?} is not https", self.endpoint)))
            }
            (Some(tls), true) => Some(tls.clone()),
            (None, true) => Some(TlsConfig::default()),
            (None, false) => None,
        };
        match tls {
            Some(tls) => {
                endpoint.tls_config(tls.to_tonic()).map_err(|err| Error::Config(format!("TLS settings: {err}")))
            }
            None => Ok(endpoint),
        }
    }
}

/// TLS settings (rustls): [`default`](Self::default) trusts the Web PKI roots and verifies the endpoint host.
#[derive(Clone, Debug, Default)]
pub struct TlsConfig {
    /// PEM certificate(s) of the CA to trust instead of the Web PKI roots.
    ca_certificate_pem: Option<String>,
    /// Name to verify in the server certificate when it differs from the endpoint host.
    domain_name: Option<String>,
}

impl TlsConfig {
    /// Trusts this PEM CA instead of the Web PKI roots.
    pub fn with_ca_certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.ca_certificate_pem = Some(pem.into());
        self
    }

    /// Verifies the server certificate against this name.
    pub fn with_domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    fn to_tonic(&self) -> ClientTlsConfig {
        let mut tls = ClientTlsConfig::new();
        tls = match &self.ca_certificate_pem {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_webpki_roots(),
        };
        if let Some(name) = &self.domain_name {
            tls = tls.domain_name(name);
        }
        tls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_and_tls_endpoints() {
        ClientConfig::new("http://127.0.0.1:10000").endpoint().expect("h2c");
        ClientConfig::new("https://deephaven.example:443").endpoint().expect("default TLS");
        ClientConfig::new("https://deephaven.example")
            .with_tls(TlsConfig::default().with_domain_name("dh.internal"))
            .endpoint()
            .expect("custom TLS");
    }

    #[test]
    fn inconsistent_settings_are_config_errors() {
        let bad_uri = ClientConfig::new("not a uri").endpoint();
        assert!(matches!(bad_uri, Err(Error::Config(_))), "{bad_uri:?}");
        let tls_on_http = ClientConfig::new("http://127.0.0.1:10000").with_tls(TlsConfig::default()).endpoint();
        assert!(matches!(tls_on_http, Err(Error::Config(_))), "{tls_on_http:?}");
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let config = ClientConfig::new("http://127.0.0.1:10000").with_auth(Auth::psk("topsecret"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("topsecret"), "{printed}");
    }
}

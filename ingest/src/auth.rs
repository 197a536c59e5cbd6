//! Checking the credentials Alertmanager's `http_config` sends: bearer tokens and basic auth.
//!
//! Credentials are kept only as SHA-256 digests and a presented credential is hashed before it is compared, so the
//! comparison takes the same time whatever the input's length or how much of it matches; every configured credential
//! is compared (no early exit), so timing does not reveal which one matched either. Nothing here logs a credential.

use crate::configuration::AuthSettings;
use actix_web::http::header::HeaderValue;
use anyhow::Context;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use service_kit::secret_files::read_secret_file;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

type CredentialDigest = [u8; 32];

/// The accepted credentials. Empty means authentication is off.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    bearer: Vec<CredentialDigest>,
    /// Digests of `user:password`.
    basic: Vec<CredentialDigest>,
}

/// Why a request was not let in. Deliberately vague towards the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Invalid,
}

impl Credentials {
    /// Collects the credentials from settings and the files they name.
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let mut bearer: Vec<SecretString> = settings.bearer_tokens.clone();
        for file in &settings.bearer_token_files {
            bearer.push(read_secret_file(file).context("auth")?);
        }
        let mut basic: Vec<SecretString> = settings.basic_credentials.clone();
        for file in &settings.basic_credential_files {
            basic.push(read_secret_file(file).context("auth")?);
        }
        if bearer.iter().any(|token| token.expose_secret().is_empty()) {
            anyhow::bail!("auth: an empty bearer token is configured");
        }
        if basic.iter().any(|pair| !pair.expose_secret().contains(':')) {
            anyhow::bail!("auth: a basic credential is not of the form user:password");
        }
        Ok(Self {
            bearer: bearer.iter().map(digest_secret).collect(),
            basic: basic.iter().map(digest_secret).collect(),
        })
    }

    pub fn is_enabled(&self) -> bool {
        !self.bearer.is_empty() || !self.basic.is_empty()
    }

    /// Checks an `Authorization` header.
    pub fn check(&self, authorization: Option<&HeaderValue>) -> Result<(), Rejection> {
        if !self.is_enabled() {
            return Ok(());
        }
        let header = authorization.ok_or(Rejection::Missing)?.to_str().map_err(|_| Rejection::Invalid)?;
        let (scheme, credential) = header.split_once(' ').ok_or(Rejection::Invalid)?;
        let credential = credential.trim();
        let matched = if scheme.eq_ignore_ascii_case("bearer") {
            any_matches(&self.bearer, &digest(credential.as_bytes()))
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded =
                base64::engine::general_purpose::STANDARD.decode(credential).map_err(|_| Rejection::Invalid)?;
            any_matches(&self.basic, &digest(&decoded))
        } else {
            return Err(Rejection::Invalid);
        };
        if matched {
            Ok(())
        } else {
            Err(Rejection::Invalid)
        }
    }

    /// The `WWW-Authenticate` challenges for a 401, one per accepted scheme.
    pub fn challenges(&self) -> Vec<&'static str> {
        let mut challenges = Vec::new();
        if !self.bearer.is_empty() {
            challenges.push(r#"Bearer realm="alerthaven-ingest""#);
        }
        if !self.basic.is_empty() {
            challenges.push(r#"Basic realm="alerthaven-ingest", charset="UTF-8""#);
        }
        challenges
    }
}

fn digest(bytes: &[u8]) -> CredentialDigest {
    Sha256::digest(bytes).into()
}

fn digest_secret(secret: &SecretString) -> CredentialDigest {
    digest(secret.expose_secret().as_bytes())
}

/// Compares against every digest, without stopping at a match.
fn any_matches(accepted: &[CredentialDigest], presented: &CredentialDigest) -> bool {
    accepted.iter().fold(Choice::from(0), |found, candidate| found | candidate.ct_eq(presented)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials::from_settings(&AuthSettings {
            bearer_tokens: vec!["old-token".into(), "new-token".into()],
            basic_credentials: vec!["alertmanager:s3cret:with:colons".into()],
            ..AuthSettings::default()
        })
        .unwrap()
    }

    fn header(value: &str) -> HeaderValue {
        HeaderValue::from_str(value).unwrap()
    }

    fn basic(pair: &str) -> HeaderValue {
        header(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
    }

    #[test]
    fn no_credentials_configured_lets_everyone_in() {
        assert_eq!(Credentials::default().check(None), Ok(()));
    }

    #[test]
    fn every_configured_credential_is_accepted() {
        let credentials = credentials();
        assert_eq!(credentials.check(Some(&header("Bearer old-token"))), Ok(()));
        assert_eq!(credentials.check(Some(&header("bearer new-token"))), Ok(()));
        assert_eq!(credentials.check(Some(&basic("alertmanager:s3cret:with:colons"))), Ok(()));
    }

    #[test]
    fn anything_else_is_rejected() {
        let credentials = credentials();
        assert_eq!(credentials.check(None), Err(Rejection::Missing));
        for bad in ["Bearer wrong", "Bearer ", "Bearer old-token2", "Token old-token", "old-token", "Basic !!!"] {
            assert_eq!(credentials.check(Some(&header(bad))), Err(Rejection::Invalid), "{bad}");
        }
        assert_eq!(credentials.check(Some(&basic("alertmanager:wrong"))), Err(Rejection::Invalid));
        assert_eq!(credentials.check(Some(&basic("other:s3cret:with:colons"))), Err(Rejection::Invalid));
    }

    #[test]
    fn a_basic_credential_needs_a_colon() {
        let settings = AuthSettings { basic_credentials: vec!["no-colon".into()], ..AuthSettings::default() };
        assert!(Credentials::from_settings(&settings).is_err());
    }

    #[test]
    fn credentials_load_from_files() {
        let file = std::env::temp_dir().join(format!("ingest-token-{}", std::process::id()));
        std::fs::write(&file, "from-file\n").unwrap();
        let settings = AuthSettings { bearer_token_files: vec![file.clone()], ..AuthSettings::default() };
        let credentials = Credentials::from_settings(&settings).unwrap();
        std::fs::remove_file(file).unwrap();
        assert_eq!(credentials.check(Some(&header("Bearer from-file"))), Ok(()));
    }
}

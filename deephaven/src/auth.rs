//! Credentials: how the client proves who it is at login. Deephaven accepts an `authorization` header on the first call
//! (anonymous, pre-shared key, or HTTP basic) and answers with a Bearer token that replaces it from then on (see the
//! `bearer` module). Secrets are wrapped in [`Secret`], which never prints its value.

use std::fmt;

use base64::Engine as _;
use http::HeaderValue;

use crate::error::{Error, Result};

/// Prefix of the `authorization` value for Deephaven's pre-shared-key handler.
const PSK_HANDLER: &str = "io.deephaven.authentication.psk.PskAuthenticationHandler";

/// A string that must not leak into logs: its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value itself; use only where it is sent to the server.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// How to log in to Deephaven.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// The anonymous handler (`-DAuthHandlers=io.deephaven.auth.AnonymousAuthenticationHandler`).
    #[default]
    Anonymous,
    /// Deephaven's default pre-shared-key handler.
    PreSharedKey(Secret),
    /// HTTP basic authentication (user name and password).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
}

impl Auth {
    /// Pre-shared-key authentication with `key`.
    pub fn psk(key: impl Into<Secret>) -> Self {
        Self::PreSharedKey(key.into())
    }

    /// Basic authentication with `username` and `password`.
    pub fn basic(username: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self::Basic { username: username.into(), password: password.into() }
    }

    /// The `authorization` header value sent on the login call, marked sensitive.
    pub(crate) fn login_header(&self) -> Result<HeaderValue> {
        let raw = match self {
            Self::Anonymous => "Anonymous".to_owned(),
            Self::PreSharedKey(key) => format!("{PSK_HANDLER} {}", key.expose()),
            Self::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose());
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
            }
        };
        let mut value = HeaderValue::from_str(&raw)
            .map_err(|_| Error::InvalidInput("credentials contain characters not allowed in an HTTP header".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_headers_follow_deephaven_handlers() {
        let anonymous = Auth::Anonymous.login_header().expect("anonymous header");
        assert_eq!(anonymous, "Anonymous");

        let psk = Auth::psk("s3cret").login_header().expect("psk header");
        assert_eq!(psk, "io.deephaven.authentication.psk.PskAuthenticationHandler s3cret");
        assert!(psk.is_sensitive());

        let basic = Auth::basic("alice", "pw").login_header().expect("basic header");
        // base64("alice:pw")
        assert_eq!(basic, "Basic YWxpY2U6cHc=");
    }

    #[test]
    fn secrets_never_print() {
        let auth = Auth::basic("alice", "hunter2");
        let printed = format!("{auth:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("alice"), "{printed}");
        assert!(!format!("{:?}", Auth::psk("k3y")).contains("k3y"));
    }

    #[test]
    fn header_unsafe_credentials_are_rejected() {
        let err = Auth::psk("line\nbreak").login_header().expect_err("newline");
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    }
}

//! The crate's single error type and its classifier. Every failure is one of three classes the caller acts on
//! differently: *retryable* (the server is unreachable, restarting or slow: try again later), *session lost* (a token
//! that used to work is refused: [`Client::reconnect`](crate::Client::reconnect) and re-create what the session owned)
//! and *permanent* (bad input, schema mismatch, a validation error from the server: retrying cannot help).

use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow_flight::error::FlightError;
use prost::Message as _;
use tonic::{Code, Status};

use crate::proto::rpc;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a caller should do about an [`Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: the same call may succeed later (back off and retry).
    Retryable,
    /// The session is gone: reconnect, then re-create tables if the server restarted.
    SessionLost,
    /// Retrying the same call cannot succeed.
    Permanent,
}

/// Everything that can go wrong talking to Deephaven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration is unusable (endpoint, TLS settings).
    #[error("invalid client configuration: {0}")]
    Config(String),

    /// The caller passed something this client refuses before any call (an invalid query-scope name, an unknown key
    /// column, a merge of no tables).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The server could not be reached, is restarting, or did not answer in time.
    #[error("{operation}: Deephaven unavailable ({code:?}): {message}")]
    Unavailable {
        /// The client operation that failed.
        operation: &'static str,
        /// The gRPC status code.
        code: Code,
        /// What the transport or server said.
        message: String,
    },

    /// The server refused the credentials at login (no session was ever established).
    #[error("Deephaven login refused ({code:?}): {message}")]
    AuthenticationFailed {
        /// The gRPC status code.
        code: Code,
        /// What the server said.
        message: String,
    },

    /// A session that used to work is gone: it expired, or the server restarted (and with it every table it held).
    /// Call [`Client::reconnect`](crate::Client::reconnect).
    #[error("{operation}: Deephaven session lost: {message}")]
    SessionLost {
        /// The client operation that noticed.
        operation: &'static str,
        /// Why the session is considered lost.
        message: String,
    },

    /// An existing table, or a batch written to one, does not have the expected columns, types or keys.
    #[error("table `{table}` does not match the expected definition: {}", .differences.join("; "))]
    SchemaMismatch {
        /// The scope name of the table.
        table: String,
        /// One line per difference found.
        differences: Vec<String>,
    },

    /// A column's Arrow type has no Deephaven input-table equivalent.
    #[error("column `{column}`: Arrow type {data_type} is not accepted by Deephaven input tables: {reason}")]
    UnsupportedType {
        /// The column name.
        column: String,
        /// Its Arrow type.
        data_type: DataType,
        /// Why it is refused, and what to use instead where there is an equivalent.
        reason: &'static str,
    },

    /// The server rejected the request (invalid argument, not found, failed precondition, ...); `message` includes the
    /// decoded status details.
    #[error("{operation}: rejected by Deephaven ({code:?}): {message}")]
    Rejected {
        /// The client operation that failed.
        operation: &'static str,
        /// The gRPC status code.
        code: Code,
        /// The server's message and validation details.
        message: String,
    },

    /// The server answered with something this client cannot interpret.
    #[error("{operation}: unexpected response from Deephaven: {message}")]
    Protocol {
        /// The client operation that failed.
        operation: &'static str,
        /// What was wrong with the response.
        message: String,
    },

    /// Arrow encoding or decoding failed.
    #[error("{operation}: {source}")]
    Arrow {
        /// The client operation that failed.
        operation: &'static str,
        /// The Arrow error.
        #[source]
        source: ArrowError,
    },
}

impl Error {
    /// The class of this error: retry, reconnect, or give up.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Unavailable { .. } => ErrorClass::Retryable,
            Self::SessionLost { .. } => ErrorClass::SessionLost,
            _ => ErrorClass::Permanent,
        }
    }

    /// True when the same call may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// True when the session is gone and [`Client::reconnect`](crate::Client::reconnect) is needed.
    pub fn is_session_lost(&self) -> bool {
        self.class() == ErrorClass::SessionLost
    }

    /// The gRPC status code behind this error, when it came from a call.
    pub fn grpc_code(&self) -> Option<Code> {
        match self {
            Self::Unavailable { code, .. } | Self::AuthenticationFailed { code, .. } | Self::Rejected { code, .. } => {
                Some(*code)
            }
            Self::SessionLost { .. } => Some(Code::Unauthenticated),
            _ => None,
        }
    }

    /// Maps a gRPC status. `had_session` tells whether the call carried a token that the server had accepted before:
    /// only then is UNAUTHENTICATED a lost session.
    pub(crate) fn from_status(operation: &'static str, status: &Status, had_session: bool) -> Self {
        let message = describe_status(status);
        // A status with a source was synthesized on this side from a transport failure.
        let local = std::error::Error::source(status).is_some();
        match status.code() {
            Code::Unauthenticated if had_session => Self::SessionLost { operation, message },
            Code::Unauthenticated => Self::AuthenticationFailed { code: Code::Unauthenticated, message },
            code @ (Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled) => {
                Self::Unavailable { operation, code, message }
            }
            code @ (Code::Unknown | Code::Internal) if local => Self::Unavailable { operation, code, message },
            code => Self::Rejected { operation, code, message },
        }
    }

    /// Maps an error from the Arrow Flight codec or its gRPC stream.
    pub(crate) fn from_flight(operation: &'static str, error: FlightError, had_session: bool) -> Self {
        match error {
            FlightError::Tonic(status) => Self::from_status(operation, &status, had_session),
            FlightError::Arrow(source) => Self::Arrow { operation, source },
            other => Self::Protocol { operation, message: other.to_string() },
        }
    }
}

/// The status message, completed with what `grpc-status-details-bin` carries (a `google.rpc.Status`) when that adds
/// information.
fn describe_status(status: &Status) -> String {
    let mut message = status.message().to_owned();
    if status.details().is_empty() {
        return message;
    }
    match rpc::Status::decode(status.details()) {
        Ok(details) => {
            if !details.message.is_empty() && details.message != message {
                if message.is_empty() {
                    message = details.message;
                } else {
                    message = format!("{message} (details: {})", details.message);
                }
            }
            for detail in details.details {
                message.push_str(&format!(" [{}: {} bytes]", detail.type_url, detail.value.len()));
            }
        }
        Err(err) => {
            tracing::debug!(%err, "undecodable grpc-status-details-bin");
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with_details(code: Code, message: &str, detail: &str) -> Status {
        let details = rpc::Status { code: code as i32, message: detail.to_owned(), details: vec![] }.encode_to_vec();
        Status::with_details(code, message, details.into())
    }

    #[test]
    fn transient_codes_are_retryable() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Aborted, Code::Cancelled] {
            let err = Error::from_status("op", &Status::new(code, "x"), true);
            assert!(err.is_retryable(), "{code:?} -> {err:?}");
            assert_eq!(err.grpc_code(), Some(code));
        }
    }

    #[test]
    fn unauthenticated_is_session_lost_only_after_login() {
        let status = Status::unauthenticated("Authentication details invalid");
        let lost = Error::from_status("append", &status, true);
        assert_eq!(lost.class(), ErrorClass::SessionLost);
        assert!(lost.is_session_lost());
        let refused = Error::from_status("login", &status, false);
        assert!(matches!(refused, Error::AuthenticationFailed { .. }), "{refused:?}");
        assert_eq!(refused.class(), ErrorClass::Permanent);
    }

    #[test]
    fn server_side_failures_are_permanent() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::FailedPrecondition,
            Code::DataLoss,
            Code::Internal,
            Code::Unknown,
            Code::PermissionDenied,
        ] {
            let err = Error::from_status("op", &Status::new(code, "x"), true);
            assert_eq!(err.class(), ErrorClass::Permanent, "{code:?}");
        }
        assert!(!Error::InvalidInput("x".into()).is_retryable());
        assert_eq!(
            Error::SchemaMismatch { table: "t".into(), differences: vec!["d".into()] }.class(),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn local_transport_failures_are_retryable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let status = Status::from_error(Box::new(io));
        assert!(std::error::Error::source(&status).is_some());
        let err = Error::from_status("op", &status, true);
        assert!(err.is_retryable(), "{err:?}");
    }

    #[test]
    fn status_details_are_decoded_into_the_message() {
        let status = status_with_details(Code::InvalidArgument, "", "columns are not compatible: Severity");
        let err = Error::from_status("append", &status, true);
        match err {
            Error::Rejected { code, message, .. } => {
                assert_eq!(code, Code::InvalidArgument);
                assert_eq!(message, "columns are not compatible: Severity");
            }
            other => panic!("unexpected {other:?}"),
        }

        let both = status_with_details(Code::InvalidArgument, "bad request", "column X: long vs int");
        let message = Error::from_status("op", &both, true).to_string();
        assert!(message.contains("bad request"), "{message}");
        assert!(message.contains("column X: long vs int"), "{message}");

        let same = status_with_details(Code::InvalidArgument, "same", "same");
        let message = Error::from_status("op", &same, true).to_string();
        assert_eq!(message.matches("same").count(), 1, "{message}");
    }

    #[test]
    fn garbage_details_do_not_hide_the_message() {
        let status = Status::with_details(Code::InvalidArgument, "plain", vec![0xff, 0xff].into());
        let message = Error::from_status("op", &status, true).to_string();
        assert!(message.contains("plain"), "{message}");
    }
}

//! Strict JSON reading that reports where a document went wrong.

use serde::de::DeserializeOwned;

/// A JSON error and the path (`alerts[3].startsAt`, or `$` for the whole document) where it happened.
pub(crate) struct PathedError {
    pub path: String,
    pub error: serde_json::Error,
}

/// Deserializes exactly one JSON document from `bytes`: trailing characters other than whitespace are an error.
///
/// Tracking the path is a sizeable share of the parse (measured: docs/benchmarks.md, section "Profile and fixes
/// (publisher), 2026-11-26"), so documents are parsed without it and only a failing one is parsed again to say where
/// it failed.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PathedError> {
    serde_json::from_slice(bytes).or_else(|_| from_slice_with_path(bytes))
}

fn from_slice_with_path<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PathedError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| PathedError {
        path: match err.path().to_string() {
            root if root == "." => "$".to_owned(),
            path => path,
        },
        error: err.into_inner(),
    })?;
    deserializer.end().map_err(|error| PathedError { path: "$".to_owned(), error })?;
    Ok(value)
}

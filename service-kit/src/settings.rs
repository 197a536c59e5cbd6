//! Layered settings: built-in defaults (the settings type's `Default`, through `#[serde(default)]`) < a TOML file <
//! environment variables `PREFIX_SECTION__KEY` < command-line overrides.
//!
//! Only environment variables with a `__` after the prefix are read. Every setting is nested in a section, so a
//! variable without `__` cannot be one; ignoring those keeps unrelated variables that merely share the prefix
//! (`INGEST_PORT`, or the `INGEST_SERVICE_HOST` Kubernetes injects for a service named ingest) from failing start-up.

use anyhow::Context;
use config::{Config, Environment, File, FileFormat};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Where to read settings from.
pub struct Layers<'a> {
    /// `INGEST` for `INGEST_SERVER__PORT`.
    pub env_prefix: &'a str,
    pub file: Option<&'a Path>,
    /// Keys whose environment values are comma-separated lists, e.g. `auth.bearer_tokens`.
    pub list_keys: &'a [&'a str],
    /// (key, value) pairs from the command line; `None` means not given.
    pub overrides: Vec<(&'a str, Option<String>)>,
}

/// Reads the layers into `T`. Unknown keys are refused if `T` says `deny_unknown_fields`.
pub fn load<T: DeserializeOwned>(layers: Layers<'_>) -> anyhow::Result<T> {
    let mut builder = Config::builder();
    if let Some(file) = layers.file {
        let name = file.to_str().context("the config file path is not UTF-8")?;
        builder = builder.add_source(File::new(name, FileFormat::Toml).required(true));
    }
    let mut environment = Environment::with_prefix(layers.env_prefix)
        .prefix_separator("_")
        .separator("__")
        .source(Some(settings_variables(layers.env_prefix, std::env::vars())));
    // With a separator but no list keys, `config` would split every value into a list.
    if !layers.list_keys.is_empty() {
        environment = environment.list_separator(",");
        for key in layers.list_keys {
            environment = environment.with_list_parse_key(key);
        }
    }
    // Values stay strings until the settings type asks for a number or a flag: guessing types here turned an
    // all-digit token into an integer and "007123" into 7123.
    builder = builder.add_source(environment.try_parsing(false));
    for (key, value) in layers.overrides {
        builder = builder.set_override_option(key, value)?;
    }
    builder.build()?.try_deserialize().context("invalid settings")
}

/// The environment variables that are settings: `PREFIX_` followed by a path with at least one `__`.
fn settings_variables(prefix: &str, variables: impl Iterator<Item = (String, String)>) -> config::Map<String, String> {
    variables
        .filter(|(name, _)| {
            name.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('_')).is_some_and(|path| path.contains("__"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nested_prefixed_variables_are_settings() {
        let variables = [
            ("INGEST_SERVER__PORT", "1"),
            ("INGEST_PORT", "tcp://10.0.0.1:8080"),
            ("INGEST_SERVICE_HOST", "10.0.0.1"),
            ("INGESTION__X", "y"),
            ("PATH", "/bin"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let kept = settings_variables("INGEST", variables.into_iter());
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["INGEST_SERVER__PORT"]);
    }
}

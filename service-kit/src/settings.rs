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
    /// Keys whose environment values are comma-separated lists, e.g. `auth.bearer_token_files`.
    pub list_keys: &'a [&'a str],
    /// (key, value) pairs from the command line; `None` means not given.
    pub overrides: Vec<(&'a str, Option<String>)>,
}

/// Reads the layers into `T`. Unknown keys are refused if `T` says `deny_unknown_fields`.
pub fn load<T: DeserializeOwned>(layers: Layers<'_>) -> anyhow::Result<T> {
    load_with(layers, std::env::vars())
}

fn load_with<T: DeserializeOwned>(
    layers: Layers<'_>,
    variables: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<T> {
    let mut builder = Config::builder();
    if let Some(file) = layers.file {
        let name = file.to_str().context("the config file path is not UTF-8")?;
        builder = builder.add_source(File::new(name, FileFormat::Toml).required(true));
    }
    let (values, lists) = environment(layers.env_prefix, layers.list_keys, variables);
    // Values stay strings until the settings type asks for a number or a flag: guessing types here turned an
    // all-digit token into an integer and "007123" into 7123.
    let environment = Environment::with_prefix(layers.env_prefix)
        .prefix_separator("_")
        .separator("__")
        .source(Some(values))
        .try_parsing(false);
    builder = builder.add_source(environment);
    // `config` splits lists only when it also guesses types, so list keys are split here and laid over the file
    // (the command-line overrides, set after them, still win).
    for (key, items) in lists {
        builder = builder.set_override(key, items)?;
    }
    for (key, value) in layers.overrides {
        builder = builder.set_override_option(key, value)?;
    }
    builder.build()?.try_deserialize().context("invalid settings")
}

/// Settings keys (`auth.token_files`) with the items of their lists.
type Lists = Vec<(String, Vec<String>)>;

/// The environment variables that are settings, split into plain values (taken verbatim) and the `list_keys`
/// (comma-separated; blanks around items and empty items dropped).
fn environment(
    prefix: &str,
    list_keys: &[&str],
    variables: impl Iterator<Item = (String, String)>,
) -> (config::Map<String, String>, Lists) {
    let mut values = config::Map::new();
    let mut lists = Vec::new();
    for (name, value) in settings_variables(prefix, variables) {
        let key = name[prefix.len() + 1..].to_lowercase().replace("__", ".");
        if list_keys.contains(&key.as_str()) {
            let items = value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect();
            lists.push((key, items));
        } else {
            values.insert(name, value);
        }
    }
    (values, lists)
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

    #[derive(Debug, serde::Deserialize)]
    struct Example {
        auth: ExampleAuth,
    }

    #[derive(Debug, serde::Deserialize)]
    struct ExampleAuth {
        token: String,
        token_files: Vec<String>,
    }

    #[test]
    fn list_keys_are_split_on_commas_and_other_values_taken_verbatim() {
        let variables = [("APP_AUTH__TOKEN", "007,123"), ("APP_AUTH__TOKEN_FILES", "/run/a, /run/b,")]
            .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let layers = Layers { env_prefix: "APP", file: None, list_keys: &["auth.token_files"], overrides: vec![] };
        let example: Example = load_with(layers, variables.into_iter()).unwrap();
        assert_eq!(example.auth.token, "007,123");
        assert_eq!(example.auth.token_files, ["/run/a", "/run/b"]);
    }

    #[test]
    fn a_single_item_of_a_list_key_is_a_list_of_one() {
        let variables = [("APP_AUTH__TOKEN", "x"), ("APP_AUTH__TOKEN_FILES", "/run/only")]
            .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let layers = Layers { env_prefix: "APP", file: None, list_keys: &["auth.token_files"], overrides: vec![] };
        let example: Example = load_with(layers, variables.into_iter()).unwrap();
        assert_eq!(example.auth.token_files, ["/run/only"]);
    }
}

//! The settings reference each service prints in `--help`, read back: one parser for the checks that hold the table
//! against the code (its defaults against `Default`, its variables against every file that sets a service up).
//!
//! A reference table is prose with entries indented by two spaces. An entry is `key VARIABLE default (note)`, or
//! several keys listed together (`a.x_file, a.y_file  default`), whose variables follow the naming rule without
//! being spelled out. A key ending in `<name>` stands for a family of keys (`kafka.properties.<name>`).

use anyhow::Context;
use config::{Config, File, FileFormat};
use serde::de::DeserializeOwned;

/// One entry of a reference table.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The settings keys, `server.port`; several when the entry lists them together.
    pub keys: Vec<&'a str>,
    /// The environment variable the table spells out, if it does (entries of one key do).
    pub variable: Option<&'a str>,
    /// What the table gives as the default, without the note in parentheses: a literal (`5s`, `''` for empty) or
    /// words that describe one (`none`, `one per core`).
    pub default: &'a str,
}

/// The environment variable a settings key is read from: `variable("INGEST", "server.port")` is
/// `INGEST_SERVER__PORT`.
pub fn variable(env_prefix: &str, key: &str) -> String {
    format!("{env_prefix}_{}", key.to_uppercase().replace('.', "__"))
}

/// The entries of `reference`, in order; prose lines are skipped.
pub fn entries(reference: &str) -> impl Iterator<Item = Entry<'_>> {
    reference.lines().filter_map(|line| line.strip_prefix("  ")).filter_map(entry)
}

fn entry(line: &str) -> Option<Entry<'_>> {
    let mut rest = line.trim_start();
    let mut keys = Vec::new();
    loop {
        let (word, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        rest = after.trim_start();
        match word.strip_suffix(',') {
            Some(key) => keys.push(key),
            None => {
                keys.push(word);
                break;
            }
        }
    }
    if keys.iter().any(|key| !key.contains('.')) {
        return None;
    }
    let (first, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let is_variable =
        !first.is_empty() && first.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_<>".contains(c));
    let variable = is_variable.then_some(first);
    if is_variable {
        rest = after.trim_start();
    }
    let default = rest.split(" (").next().unwrap_or_default().trim_end();
    Some(Entry { keys, variable, default })
}

/// The settings `reference` gives as defaults, read the way a settings file is, so that a test can hold them against
/// the settings type's own `Default` (the two are written apart, and drift otherwise).
///
/// Fails when an entry of one key spells out a variable other than the key's. A default counts when it is one
/// literal word; entries whose default is described in words (`none`, `one per core`) and key families are skipped.
pub fn defaults<T: DeserializeOwned>(reference: &str, env_prefix: &str) -> anyhow::Result<T> {
    let mut document = String::new();
    for entry in entries(reference) {
        let [key] = entry.keys[..] else { continue };
        let expected = variable(env_prefix, key);
        anyhow::ensure!(
            entry.variable == Some(expected.as_str()),
            "the reference gives {key} the variable {:?}, not {expected}",
            entry.variable
        );
        let default = entry.default;
        if default.contains(' ') || default == "none" || key.contains('<') {
            continue;
        }
        let value = match default {
            "''" => "\"\"".to_owned(),
            "true" | "false" => default.to_owned(),
            number if number.parse::<i64>().is_ok() => number.to_owned(),
            text => format!("{text:?}"),
        };
        document.push_str(&format!("{key} = {value}\n"));
    }
    Config::builder()
        .add_source(File::from_str(&document, FileFormat::Toml))
        .build()?
        .try_deserialize()
        .with_context(|| format!("the reference's defaults are not settings:\n{document}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str = "\
SETTINGS (TOML file key / environment variable, default)
  server.port             APP_SERVER__PORT             8080 (0: any free port)
  server.workers          APP_SERVER__WORKERS          one per core
  kafka.properties.<name> APP_KAFKA__PROPERTIES__<NAME> any librdkafka property
  auth.token_file, auth.password_file                  none (the secret read from a file instead)
  log.prefix              APP_LOG__PREFIX              ''
Durations take units: 500ms, 5s, 1m.";

    #[test]
    fn entries_are_keys_variable_and_default_without_the_note() {
        let entries: Vec<_> = entries(REFERENCE).collect();
        assert_eq!(
            entries,
            [
                Entry { keys: vec!["server.port"], variable: Some("APP_SERVER__PORT"), default: "8080" },
                Entry { keys: vec!["server.workers"], variable: Some("APP_SERVER__WORKERS"), default: "one per core" },
                Entry {
                    keys: vec!["kafka.properties.<name>"],
                    variable: Some("APP_KAFKA__PROPERTIES__<NAME>"),
                    default: "any librdkafka property"
                },
                Entry { keys: vec!["auth.token_file", "auth.password_file"], variable: None, default: "none" },
                Entry { keys: vec!["log.prefix"], variable: Some("APP_LOG__PREFIX"), default: "''" },
            ]
        );
    }

    #[derive(Debug, serde::Deserialize)]
    struct Example {
        server: ExampleServer,
        log: ExampleLog,
    }

    #[derive(Debug, serde::Deserialize)]
    struct ExampleServer {
        port: u16,
    }

    #[derive(Debug, serde::Deserialize)]
    struct ExampleLog {
        prefix: String,
    }

    #[test]
    fn literal_defaults_are_read_as_settings() {
        let example: Example = defaults(REFERENCE, "APP").unwrap();
        assert_eq!(example.server.port, 8080);
        assert_eq!(example.log.prefix, "");
    }

    #[test]
    fn a_variable_that_is_not_the_keys_is_refused() {
        let wrong = REFERENCE.replace("APP_SERVER__PORT ", "APP_SERVER_PORT  ");
        let refused = defaults::<Example>(&wrong, "APP").unwrap_err().to_string();
        assert!(refused.contains("server.port"), "{refused}");
    }
}

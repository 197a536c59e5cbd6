//! The librdkafka properties a service passes through from its settings (`kafka.properties.<name>`), and the ones
//! it reads from files (`kafka.property_files.<name>`), for secrets mounted as files.
//!
//! Environment variable names cannot hold dots, so `_` stands for `.` in a property's name wherever it comes from
//! (librdkafka's names have no underscores). Values whose names say they are secrets (passwords, keys, secrets,
//! tokens) never show in `Debug` output. Secrets are rotated by rewriting their files: [`KafkaProperties::
//! with_files_read_again`] and [`KafkaProperties::located_files_digest`] tell a service when its client must be
//! made again to take the new ones.

use crate::secret_files::read_secret_file;
use anyhow::Context;
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

/// Property names, normalised, mapped to their values.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(from = "BTreeMap<String, String>")]
pub struct KafkaProperties(BTreeMap<String, String>);

/// Property names mapped to the files their values are read from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(from = "BTreeMap<String, PathBuf>")]
pub struct KafkaPropertyFiles(BTreeMap<String, PathBuf>);

impl From<BTreeMap<String, String>> for KafkaProperties {
    fn from(properties: BTreeMap<String, String>) -> Self {
        Self(properties.into_iter().map(|(name, value)| (normalize(&name), value)).collect())
    }
}

impl From<BTreeMap<String, PathBuf>> for KafkaPropertyFiles {
    fn from(files: BTreeMap<String, PathBuf>) -> Self {
        Self(files.into_iter().map(|(name, path)| (normalize(&name), path)).collect())
    }
}

/// What every client gets unless the settings say otherwise.
const DEFAULTS: &[(&str, &str)] = &[
    // OpenSSL is compiled into the binaries, so its own default CA path is a directory of the build machine: look
    // for the system's CA bundle in the standard places instead, so a Kafka with a public CA needs no setting.
    ("ssl.ca.location", "probe"),
];

fn normalize(name: &str) -> String {
    name.replace('_', ".")
}

impl KafkaProperties {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every property a client gets: the ones set, then the defaults every client shares, where not set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let defaults = DEFAULTS.iter().filter(|(name, _)| !self.0.contains_key(*name)).copied();
        self.0.iter().map(|(name, value)| (name.as_str(), value.as_str())).chain(defaults)
    }

    pub fn insert(&mut self, name: &str, value: &str) {
        self.0.insert(normalize(name), value.to_owned());
    }

    /// Adds the properties `files` name, each read whole (surrounding whitespace dropped, as a mounted secret often
    /// ends with a newline). A property given both inline and by file is an error: which one wins would be a guess.
    pub fn read_files(&mut self, files: &KafkaPropertyFiles) -> anyhow::Result<()> {
        for (name, path) in &files.0 {
            if self.0.contains_key(name) {
                anyhow::bail!("kafka property {name} is given both inline and in a file ({})", path.display());
            }
            self.0.insert(name.clone(), read_property_file(name, path)?);
        }
        Ok(())
    }

    /// These properties with the values `files` names read again (a rotated secret changes them). The names were
    /// checked against the inline ones by [`Self::read_files`], so every name here came from a file.
    pub fn with_files_read_again(&self, files: &KafkaPropertyFiles) -> anyhow::Result<KafkaProperties> {
        let mut again = self.clone();
        for (name, path) in &files.0 {
            again.0.insert(name.clone(), read_property_file(name, path)?);
        }
        Ok(again)
    }

    /// A digest of what the files named by `*.location` properties hold (certificates, keys, CAs, CRLs). librdkafka
    /// reads them only when a client is created, so a client made before they were rotated keeps the old ones;
    /// comparing digests tells when a new client is due. A location that is a directory (a CA directory) or
    /// `probe` is not read.
    pub fn located_files_digest(&self) -> anyhow::Result<u64> {
        let mut digest = DefaultHasher::new();
        for (name, location) in self.0.iter().filter(|(name, _)| names_a_file_read_at_creation(name)) {
            let path = Path::new(location);
            if location == "probe" || path.is_dir() {
                continue;
            }
            let contents = std::fs::read(path).with_context(|| format!("kafka property {name}: reading {location}"))?;
            (name, contents).hash(&mut digest);
        }
        Ok(digest.finish())
    }
}

/// The value of property `name` in the file at `path`.
fn read_property_file(name: &str, path: &Path) -> anyhow::Result<String> {
    let value = read_secret_file(path).with_context(|| format!("kafka property {name}"))?;
    Ok(value.expose_secret().to_owned())
}

/// Whether librdkafka reads the file a property names when a client is created: every `*.location` but the
/// OpenSSL engine's, which is a library.
fn names_a_file_read_at_creation(name: &str) -> bool {
    name.ends_with(".location") && name != "ssl.engine.location"
}

/// Whether a property's value is a secret: librdkafka's passwords, passphrases, keys and secrets (`sasl.password`,
/// `ssl.key.password`, `ssl.key.pem`, `sasl.oauthbearer.client.secret`, ...), but not where they are
/// (`ssl.key.location`).
fn is_secret(name: &str) -> bool {
    let secret_word =
        ["password", "passphrase", "secret", "token", "key.pem", "jaas.config"].iter().any(|word| name.contains(word));
    secret_word && !name.ends_with(".location")
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.0.iter().map(|(name, value)| (name, if is_secret(name) { "[REDACTED]" } else { value }));
        f.debug_map().entries(shown).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn properties(pairs: &[(&str, &str)]) -> KafkaProperties {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect::<BTreeMap<_, _>>().into()
    }

    #[test]
    fn names_take_dots_for_underscores() {
        let properties = properties(&[("queue_buffering_max_kbytes", "1024"), ("security.protocol", "SSL")]);
        assert_eq!(properties.get("queue.buffering.max.kbytes"), Some("1024"));
        assert_eq!(properties.get("security.protocol"), Some("SSL"));
    }

    #[test]
    fn the_system_ca_bundle_is_probed_unless_a_ca_is_set() {
        let listed = |properties: &KafkaProperties| -> Vec<(String, String)> {
            properties.iter().map(|(name, value)| (name.to_owned(), value.to_owned())).collect()
        };
        let probe = ("ssl.ca.location".to_owned(), "probe".to_owned());
        assert_eq!(listed(&properties(&[])), [probe]);
        let own_ca = properties(&[("ssl_ca_location", "/etc/kafka/ca.pem")]);
        assert_eq!(listed(&own_ca), [("ssl.ca.location".to_owned(), "/etc/kafka/ca.pem".to_owned())]);
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let properties = properties(&[
            ("sasl.oauthbearer.assertion.private.key.passphrase", "phr4se"),
            ("sasl_password", "hunter2"),
            ("ssl.key.password", "k3y"),
            ("sasl.oauthbearer.client.secret", "s3cret"),
            ("ssl.key.location", "/etc/key.pem"),
            ("sasl.username", "alice"),
        ]);
        let printed = format!("{properties:?}");
        for secret in ["phr4se", "hunter2", "k3y", "s3cret"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("/etc/key.pem") && printed.contains("alice"), "what is not secret shows: {printed}");
    }

    #[test]
    fn files_add_their_properties_verbatim_and_never_twice() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "007,secret\n").unwrap();
        let files: KafkaPropertyFiles = BTreeMap::from([("sasl_password".to_owned(), file.clone())]).into();
        let mut read = properties(&[("sasl.username", "alice")]);
        read.read_files(&files).unwrap();
        assert_eq!(read.get("sasl.password"), Some("007,secret"));

        let mut both = properties(&[("sasl.password", "hunter2")]);
        let error = both.read_files(&files).unwrap_err().to_string();
        assert!(error.contains("sasl.password") && !error.contains("hunter2"), "{error}");
        let missing: KafkaPropertyFiles = BTreeMap::from([("sasl.password".to_owned(), dir.path().join("no"))]).into();
        let error = properties(&[]).read_files(&missing).unwrap_err().to_string();
        assert!(error.contains("sasl.password"), "{error}");
    }

    #[test]
    fn rewritten_files_show_in_the_values_read_again_and_in_the_digest_of_located_files() {
        let dir = tempfile::tempdir().unwrap();
        let (password, certificate) = (dir.path().join("password"), dir.path().join("client.pem"));
        std::fs::write(&password, "first\n").unwrap();
        std::fs::write(&certificate, "certificate one").unwrap();
        let files: KafkaPropertyFiles = BTreeMap::from([("sasl.password".to_owned(), password.clone())]).into();
        let mut first = properties(&[
            ("ssl.certificate.location", certificate.to_str().unwrap()),
            ("ssl.ca.location", dir.path().to_str().unwrap()),
            ("ssl.engine.location", "/nonexistent/engine.so"),
        ]);
        first.read_files(&files).unwrap();
        let digest = first.located_files_digest().unwrap();
        assert!(first.with_files_read_again(&files).unwrap() == first, "unchanged files read the same");
        assert_eq!(first.located_files_digest().unwrap(), digest, "unchanged files digest the same");

        std::fs::write(&password, "second\n").unwrap();
        assert_eq!(first.with_files_read_again(&files).unwrap().get("sasl.password"), Some("second"));
        std::fs::write(&certificate, "certificate two").unwrap();
        assert_ne!(first.located_files_digest().unwrap(), digest, "a rewritten certificate changes the digest");

        std::fs::remove_file(&certificate).unwrap();
        let error = first.located_files_digest().unwrap_err().to_string();
        assert!(error.contains("ssl.certificate.location"), "{error}");
        std::fs::write(&password, "\n").unwrap();
        let error = format!("{:#}", first.with_files_read_again(&files).unwrap_err());
        assert!(error.contains("sasl.password") && error.contains("empty"), "{error}");
        std::fs::remove_file(&password).unwrap();
        assert!(first.with_files_read_again(&files).is_err(), "a file missing mid-rotation is an error");
    }
}

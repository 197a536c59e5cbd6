//! Settings, layered like ingest's (see `service_kit::settings`): built-in defaults < a TOML file (`--config`) <
//! environment (`PUBLISHER_` prefix, `__` between levels, e.g. `PUBLISHER_DEEPHAVEN__URL`) < command-line flags.

use crate::retention::Retention;
use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use service_kit::kafka_properties::{KafkaProperties, KafkaPropertyFiles};
use service_kit::secret_files::{inline_or_file, read_secret_file};
use service_kit::settings::Layers;
pub use service_kit::telemetry::LogSettings;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub kafka: KafkaSettings,
    pub deephaven: DeephavenSettings,
    pub batch: BatchSettings,
    pub log: LogSettings,
}

/// The operations endpoint: `/healthz`, `/readyz`, `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// How often the files secrets come from are read again (also at once on SIGHUP); a change restarts the
    /// pipeline with them (see `crate::secret_files`).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { host: "127.0.0.1".to_owned(), port: 9102, reload_interval: Duration::from_secs(10) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    pub brokers: String,
    pub topic: String,
    /// Where undecodable records go, with headers saying why and where from.
    pub dlq_topic: String,
    /// Publishers in one group split the partitions. The group's committed offsets are for lag monitoring only:
    /// where to resume is read from Deephaven.
    pub group_id: String,
    /// How long the group waits for a silent member; also how long a rebalance takes on the local broker (half).
    #[serde(with = "humantime_serde")]
    pub session_timeout: Duration,
    /// Any other librdkafka consumer property (`_` for `.` in the environment).
    pub properties: KafkaProperties,
    /// librdkafka properties read from files (a mounted secret), e.g. `PUBLISHER_KAFKA__PROPERTY_FILES__SASL_PASSWORD`.
    pub property_files: KafkaPropertyFiles,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            topic: "alerts".to_owned(),
            dlq_topic: "alerts.dlq".to_owned(),
            group_id: "alerthaven-publisher".to_owned(),
            session_timeout: Duration::from_secs(6),
            properties: KafkaProperties::default(),
            property_files: KafkaPropertyFiles::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeephavenSettings {
    pub url: String,
    /// A pre-shared key (Deephaven's default handler). Without it and without `user`, the login is anonymous.
    pub psk: Option<SecretString>,
    /// A file holding `psk` (a mounted secret), instead of the value.
    pub psk_file: Option<PathBuf>,
    /// HTTP basic authentication: user name, with `password`.
    pub user: Option<String>,
    pub password: Option<SecretString>,
    /// A file holding `password`, instead of the value.
    pub password_file: Option<PathBuf>,
    /// Prepended to every table name, so a replay can build tables beside the live ones (`replay_alerts`, ...).
    pub table_prefix: String,
    /// The longest wait between two reconnection attempts.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// How long one call to Deephaven may take before it counts as failed (a frozen server is noticed by this).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often the publisher checks that its session and tables are still there and hold what it wrote (when
    /// idle, and beside the writes while busy), so a Deephaven restarted empty is rebuilt without waiting for the
    /// next alert.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
    /// How long after a resolved notification a firing copy of the same occurrence is taken as late (a lagging HA
    /// peer, a retry) rather than as a genuine re-fire (see `tables::rank_formula`). Keep it below Alertmanager's
    /// `group_interval`: a re-fire comes at the earliest one group interval after the resolve. With a check, shorter
    /// than a quarter of the retention (a resolved state is kept in the slice it ranks in; docs/deephaven.md).
    #[serde(with = "humantime_serde")]
    pub refire_grace: Duration,
    /// How often the tables over recent time windows (`noisiest_alerts`, `alert_flapping`, `alert_mttr_24h`) move
    /// on: a row leaves its window at most this late. Each step filters every row of those tables' sources again;
    /// only the rows crossing a window's edge reach the counts.
    #[serde(with = "humantime_serde")]
    pub window_step: Duration,
    /// How long Deephaven keeps an alert's states after receiving them (between this and a quarter longer, a resolved
    /// state up to `refire_grace` more; see [`crate::retention`]): its heap holds at most that much history, and
    /// `alerts` keeps an alert while it has a state that recent. Alertmanager repeats a firing alert every
    /// `repeat_interval`, so keep it well above that.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// TLS for an `https` URL, beyond the defaults (the Web PKI roots, the URL's host name).
    pub tls: DeephavenTlsSettings,
}

/// TLS to a Deephaven behind an internal CA or reached by another name than its certificate's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeephavenTlsSettings {
    /// A PEM file with the CA certificate(s) to trust instead of the Web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// The name to verify in the server's certificate, when it differs from the URL's host.
    pub server_name: Option<String>,
    /// `ca_file`'s contents, read at start-up (so that a missing file stops the start, not every connect) and again
    /// with the other secret files.
    #[serde(skip)]
    pub ca_pem: Option<String>,
}

impl DeephavenTlsSettings {
    fn is_set(&self) -> bool {
        self.ca_file.is_some() || self.server_name.is_some()
    }

    fn read_ca_file(&mut self) -> anyhow::Result<()> {
        if let Some(file) = &self.ca_file {
            let pem = std::fs::read_to_string(file)
                .with_context(|| format!("reading deephaven.tls.ca_file {}", file.display()))?;
            self.ca_pem = Some(pem);
        }
        Ok(())
    }
}

impl Default for DeephavenSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:10000".to_owned(),
            psk: None,
            psk_file: None,
            user: None,
            password: None,
            password_file: None,
            table_prefix: String::new(),
            max_backoff: Duration::from_secs(30),
            request_timeout: Duration::from_secs(15),
            check_interval: Duration::from_secs(5),
            refire_grace: Duration::from_secs(60),
            window_step: Duration::from_secs(60),
            retention: Duration::from_secs(30 * 24 * 3600),
            tls: DeephavenTlsSettings::default(),
        }
    }
}

/// A batch is written when it holds `max_rows` records or `max_bytes` of record values, or once the batch before it
/// is written, every record already fetched is in it and its oldest record waited `max_wait`. So batches grow by
/// themselves while Deephaven is busy with the one before (up to the bounds) and stay small and quick when it is
/// not, with no wait at all by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchSettings {
    pub max_rows: usize,
    /// Bounds the memory two batches take (one written, one read) and keeps every Arrow text column far below its
    /// 2 GiB limit, whatever the records' size.
    pub max_bytes: usize,
    /// How long a batch that could be written waits for more records: larger writes for a little latency (0: none).
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self { max_rows: 10_000, max_bytes: 16 * 1024 * 1024, max_wait: Duration::ZERO }
    }
}

/// Settings given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub brokers: Option<String>,
    pub topic: Option<String>,
    pub deephaven_url: Option<String>,
    pub table_prefix: Option<String>,
    pub group_id: Option<String>,
    pub port: Option<u16>,
}

impl Settings {
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
        let mut settings: Settings = service_kit::settings::load(Layers {
            env_prefix: "PUBLISHER",
            file,
            list_keys: &[],
            overrides: vec![
                ("kafka.brokers", overrides.brokers),
                ("kafka.topic", overrides.topic),
                ("kafka.group_id", overrides.group_id),
                ("deephaven.url", overrides.deephaven_url),
                ("deephaven.table_prefix", overrides.table_prefix),
                ("server.port", overrides.port.map(|port| port.to_string())),
            ],
        })?;
        settings.kafka.properties.read_files(&settings.kafka.property_files)?;
        let deephaven = &mut settings.deephaven;
        deephaven.psk = inline_or_file("deephaven.psk", deephaven.psk.take(), deephaven.psk_file.as_deref())?;
        deephaven.password =
            inline_or_file("deephaven.password", deephaven.password.take(), deephaven.password_file.as_deref())?;
        deephaven.tls.read_ca_file()?;
        settings.validate()?;
        Ok(settings)
    }

    /// These settings with every secret that comes from a file read again (a rotated secret changes it): Kafka's
    /// property files, the Deephaven PSK or password file and CA file.
    pub fn with_secret_files_read_again(&self) -> anyhow::Result<Settings> {
        let mut again = self.clone();
        again.kafka.properties = self.kafka.properties.with_files_read_again(&self.kafka.property_files)?;
        let deephaven = &mut again.deephaven;
        if let Some(file) = &deephaven.psk_file {
            deephaven.psk = Some(read_secret_file(file).context("deephaven.psk_file")?);
        }
        if let Some(file) = &deephaven.password_file {
            deephaven.password = Some(read_secret_file(file).context("deephaven.password_file")?);
        }
        deephaven.tls.read_ca_file()?;
        again.validate()?;
        Ok(again)
    }

    /// A digest of every secret the settings hold, and of the files Kafka's `*.location` properties name (which
    /// librdkafka reads itself): it changes when a secret does.
    pub fn secrets_digest(&self) -> anyhow::Result<u64> {
        let mut digest = DefaultHasher::new();
        self.kafka.properties.iter().for_each(|property| property.hash(&mut digest));
        self.kafka.properties.located_files_digest()?.hash(&mut digest);
        let deephaven = &self.deephaven;
        for secret in [&deephaven.psk, &deephaven.password] {
            secret.as_ref().map(ExposeSecret::expose_secret).hash(&mut digest);
        }
        deephaven.tls.ca_pem.hash(&mut digest);
        Ok(digest.finish())
    }

    fn validate(&self) -> anyhow::Result<()> {
        let deephaven = &self.deephaven;
        if deephaven.user.is_some() != deephaven.password.is_some() {
            bail!("deephaven.user and deephaven.password go together");
        }
        if deephaven.psk.is_some() && deephaven.user.is_some() {
            bail!("set either deephaven.psk or deephaven.user/password, not both");
        }
        if deephaven.tls.is_set() && !deephaven.url.starts_with("https://") {
            bail!("deephaven.tls is set but deephaven.url {:?} is not https://", deephaven.url);
        }
        if deephaven.check_interval.is_zero() || deephaven.request_timeout.is_zero() || deephaven.window_step.is_zero()
        {
            bail!("deephaven.check_interval, deephaven.request_timeout and deephaven.window_step must be positive");
        }
        match Retention::new(deephaven.retention) {
            None => bail!("deephaven.retention must be positive and reach no further back than 1970"),
            // The next slice is created at a check (or a write), so every slice must see at least two checks.
            Some(retention)
                if deephaven.check_interval.checked_mul(2).is_none_or(|twice| retention.slice() < twice) =>
            {
                bail!("deephaven.retention must be at least 8 times deephaven.check_interval")
            }
            // A resolved state ranks, and is kept, in the slice `refire_grace` after it was received: at the latest
            // the next one, which every write makes sure exists, and which must still be empty when it is derived,
            // at the latest a check into the current slice.
            Some(retention)
                if deephaven
                    .refire_grace
                    .checked_add(deephaven.check_interval)
                    .is_none_or(|reach| reach >= retention.slice()) =>
            {
                bail!(
                    "deephaven.refire_grace plus deephaven.check_interval must be shorter than a quarter of \
                     deephaven.retention"
                )
            }
            Some(_) => {}
        }
        if self.server.reload_interval.is_zero() {
            bail!("server.reload_interval must be positive");
        }
        if self.batch.max_rows == 0 || self.batch.max_bytes == 0 {
            bail!("batch.max_rows and batch.max_bytes must be positive");
        }
        // Beyond this an Arrow text column of one batch could pass its 2 GiB limit.
        if self.batch.max_bytes > 1 << 30 {
            bail!("batch.max_bytes may be at most 1 GiB");
        }
        if self.kafka.topic == self.kafka.dlq_topic {
            bail!("kafka.dlq_topic must differ from kafka.topic");
        }
        if !self.deephaven.table_prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("deephaven.table_prefix may hold only letters, digits and '_'");
        }
        Ok(())
    }
}

/// The reference printed by `publisher --help`.
pub const REFERENCE: &str = "\
SETTINGS (TOML file key / environment variable, default)
  server.host               PUBLISHER_SERVER__HOST               127.0.0.1 (/healthz /readyz /metrics)
  server.port               PUBLISHER_SERVER__PORT               9102
  server.reload_interval    PUBLISHER_SERVER__RELOAD_INTERVAL    10s (secret files read again; also on SIGHUP)
  kafka.brokers             PUBLISHER_KAFKA__BROKERS             127.0.0.1:9092
  kafka.topic               PUBLISHER_KAFKA__TOPIC               alerts
  kafka.dlq_topic           PUBLISHER_KAFKA__DLQ_TOPIC           alerts.dlq
  kafka.group_id            PUBLISHER_KAFKA__GROUP_ID            alerthaven-publisher
  kafka.session_timeout     PUBLISHER_KAFKA__SESSION_TIMEOUT     6s
  kafka.properties.<name>   PUBLISHER_KAFKA__PROPERTIES__<NAME>  any librdkafka consumer property ('_' for '.')
  kafka.property_files.<name> PUBLISHER_KAFKA__PROPERTY_FILES__<NAME> a librdkafka property read from a file (secrets)
  deephaven.url             PUBLISHER_DEEPHAVEN__URL             http://127.0.0.1:10000
  deephaven.psk             PUBLISHER_DEEPHAVEN__PSK             none (anonymous unless user/password are set)
  deephaven.user            PUBLISHER_DEEPHAVEN__USER            none (basic auth, with deephaven.password)
  deephaven.password        PUBLISHER_DEEPHAVEN__PASSWORD        none
  deephaven.psk_file, deephaven.password_file                    none (the secret read from a file instead)
  deephaven.tls.ca_file     PUBLISHER_DEEPHAVEN__TLS__CA_FILE     Web PKI roots (a PEM CA to trust instead; https URLs)
  deephaven.tls.server_name PUBLISHER_DEEPHAVEN__TLS__SERVER_NAME the URL's host (the name the certificate must carry)
  deephaven.table_prefix    PUBLISHER_DEEPHAVEN__TABLE_PREFIX    '' (prefixes every table: alerts, alert_events, ..., docs/tables.md)
  deephaven.max_backoff     PUBLISHER_DEEPHAVEN__MAX_BACKOFF     30s
  deephaven.request_timeout PUBLISHER_DEEPHAVEN__REQUEST_TIMEOUT 15s (a call taking longer has failed)
  deephaven.check_interval  PUBLISHER_DEEPHAVEN__CHECK_INTERVAL  5s (is the session alive, are the tables there)
  deephaven.refire_grace    PUBLISHER_DEEPHAVEN__REFIRE_GRACE    60s (a firing copy this long after resolved re-fires)
  deephaven.window_step     PUBLISHER_DEEPHAVEN__WINDOW_STEP     60s (how often time-window tables move on)
  deephaven.retention       PUBLISHER_DEEPHAVEN__RETENTION       30days (states received longer ago leave the tables)
  batch.max_rows            PUBLISHER_BATCH__MAX_ROWS            10000
  batch.max_bytes           PUBLISHER_BATCH__MAX_BYTES           16777216 (record values per batch)
  batch.max_wait            PUBLISHER_BATCH__MAX_WAIT            0s (extra wait for more records once writable)
  log.format                PUBLISHER_LOG__FORMAT                text (or json)
  log.filter                PUBLISHER_LOG__FILTER                info (RUST_LOG wins)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_file_is_read_again_and_its_change_shows_in_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, content: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path
        };
        let mut settings = Settings::default();
        let password = file("sasl-password", "first");
        settings.kafka.property_files =
            std::collections::BTreeMap::from([("sasl.password".to_owned(), password.clone())]).into();
        settings.kafka.properties.read_files(&settings.kafka.property_files).unwrap();
        let certificate = file("client.pem", "certificate one");
        settings.kafka.properties.insert("ssl.certificate.location", certificate.to_str().unwrap());
        settings.deephaven.psk_file = Some(file("psk", "key one"));
        let settings = settings.with_secret_files_read_again().unwrap();
        let digest = settings.secrets_digest().unwrap();
        assert_eq!(settings.with_secret_files_read_again().unwrap().secrets_digest().unwrap(), digest, "unchanged");

        for (path, content) in
            [(&password, "second"), (&certificate, "certificate two"), (&dir.path().join("psk"), "key two")]
        {
            let before = settings.with_secret_files_read_again().unwrap().secrets_digest().unwrap();
            std::fs::write(path, content).unwrap();
            let again = settings.with_secret_files_read_again().unwrap();
            assert_ne!(again.secrets_digest().unwrap(), before, "{} changed", path.display());
        }
        let again = settings.with_secret_files_read_again().unwrap();
        assert_eq!(again.kafka.properties.get("sasl.password"), Some("second"));
        assert_eq!(again.deephaven.psk.as_ref().map(ExposeSecret::expose_secret), Some("key two"));
        std::fs::remove_file(&password).unwrap();
        assert!(settings.with_secret_files_read_again().is_err(), "a file missing mid-rotation is an error");
    }

    #[test]
    fn the_help_reference_states_the_defaults() {
        let stated: Settings = service_kit::help_reference::defaults(REFERENCE, "PUBLISHER").unwrap();
        assert_eq!(format!("{stated:?}"), format!("{:?}", Settings::default()));
    }

    fn with_auth(psk: Option<&str>, user: Option<&str>, password: Option<&str>) -> Settings {
        let mut settings = Settings::default();
        settings.deephaven.psk = psk.map(SecretString::from);
        settings.deephaven.user = user.map(str::to_owned);
        settings.deephaven.password = password.map(SecretString::from);
        settings
    }

    #[test]
    fn a_refire_grace_that_reaches_past_the_next_slice_is_refused() {
        let mut settings = Settings::default();
        settings.deephaven.check_interval = Duration::from_secs(1);
        settings.deephaven.retention = Duration::from_secs(24);
        settings.deephaven.refire_grace = Duration::from_secs(5);
        let refused = settings.validate().expect_err("5 s and a 1 s check reach a 6 s slice's end").to_string();
        assert!(refused.contains("deephaven.refire_grace"), "{refused}");
        settings.deephaven.refire_grace = Duration::MAX;
        assert!(settings.validate().is_err(), "refused, not an overflow");
        settings.deephaven.refire_grace = Duration::from_secs(4);
        settings.validate().expect("4 s and a 1 s check within a 6 s slice");
    }

    #[test]
    fn a_retention_too_short_for_the_checks_that_rotate_it_is_refused() {
        let mut settings = Settings::default();
        settings.deephaven.check_interval = Duration::from_secs(5);
        settings.deephaven.refire_grace = Duration::from_secs(1);
        settings.deephaven.retention = Duration::from_secs(39);
        let refused = settings.validate().unwrap_err().to_string();
        assert!(refused.contains("deephaven.retention"), "{refused}");
        settings.deephaven.retention = Duration::from_secs(40);
        settings.validate().expect("a slice sees two checks");
        settings.deephaven.retention = Duration::ZERO;
        assert!(settings.validate().is_err(), "no retention at all");
    }

    #[test]
    fn one_kind_of_deephaven_login_at_most() {
        assert!(with_auth(None, None, None).validate().is_ok());
        assert!(with_auth(Some("key"), None, None).validate().is_ok());
        assert!(with_auth(None, Some("user"), Some("pw")).validate().is_ok());
        assert!(with_auth(None, Some("user"), None).validate().is_err(), "a user needs a password");
        assert!(with_auth(None, None, Some("pw")).validate().is_err(), "a password needs a user");
        assert!(with_auth(Some("key"), Some("user"), Some("pw")).validate().is_err(), "psk or basic, not both");
    }

    #[test]
    fn deephaven_tls_needs_an_https_url_and_a_readable_ca() {
        let mut settings = Settings::default();
        settings.deephaven.tls.server_name = Some("deephaven.internal".to_owned());
        assert!(settings.validate().is_err(), "TLS settings for an http:// URL");
        settings.deephaven.url = "https://10.0.0.7:8443".to_owned();
        assert!(settings.validate().is_ok());

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("publisher.toml");
        let missing = dir.path().join("missing-ca.pem");
        std::fs::write(&file, format!("[deephaven]\nurl = \"https://dh:8443\"\ntls.ca_file = {missing:?}\n")).unwrap();
        let err = Settings::load(Some(&file), Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("deephaven.tls.ca_file"), "{err:#}");
        std::fs::write(&missing, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let loaded = Settings::load(Some(&file), Overrides::default()).unwrap();
        assert_eq!(loaded.deephaven.tls.ca_pem.as_deref(), Some("-----BEGIN CERTIFICATE-----\n"));
    }

    #[test]
    fn secrets_never_print() {
        let printed = format!("{:?}", with_auth(Some("the-psk-value"), Some("user"), Some("the-password")));
        assert!(!printed.contains("the-psk-value") && !printed.contains("the-password"), "{printed}");
    }

    #[test]
    fn deephaven_secrets_come_from_files() {
        use secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let (psk, password) = (dir.path().join("psk"), dir.path().join("password"));
        std::fs::write(&psk, "key-from-file\n").unwrap();
        std::fs::write(&password, "pw-from-file\n").unwrap();
        let load = |toml: String| {
            let file = dir.path().join("publisher.toml");
            std::fs::write(&file, toml).unwrap();
            Settings::load(Some(&file), Overrides::default())
        };
        let settings = load(format!("[deephaven]\npsk_file = {psk:?}\n")).unwrap();
        assert_eq!(settings.deephaven.psk.as_ref().map(|psk| psk.expose_secret()), Some("key-from-file"));
        let basic = load(format!("[deephaven]\nuser = \"alice\"\npassword_file = {password:?}\n")).unwrap();
        assert_eq!(basic.deephaven.password.as_ref().map(|pw| pw.expose_secret()), Some("pw-from-file"));
        assert!(load(format!("[deephaven]\npsk = \"inline\"\npsk_file = {psk:?}\n")).is_err(), "inline and file");
    }
}

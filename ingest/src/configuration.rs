//! Settings, layered (see `service_kit::settings`): built-in defaults < a TOML file (`--config`) < environment
//! (`INGEST_` prefix, `__` between levels, e.g. `INGEST_KAFKA__BROKERS`) < command-line flags. Everything is checked at start-up, so a bad setting
//! stops the process with a clear message instead of failing on the first request.

use anyhow::bail;
use schemas::Limits;
use secrecy::SecretString;
use serde::Deserialize;
use service_kit::kafka_properties::{KafkaProperties, KafkaPropertyFiles};
use service_kit::settings::Layers;
pub use service_kit::telemetry::LogSettings;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every setting of the service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub kafka: KafkaSettings,
    pub limits: Limits,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    /// Where Alertmanager POSTs webhooks.
    pub path: String,
    /// How long one request may take, body upload and Kafka acknowledgement included. Keep it below Alertmanager's
    /// flush budget (10 s at the least), so that a slow request is answered 503 and retried in the same flush.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Bodies larger than this are answered 413.
    pub max_body_bytes: usize,
    /// Records (alerts) produced but not yet acknowledged by Kafka, over all requests. When a new body would
    /// exceed it, the request is answered 503 at once: memory stays bounded and Alertmanager backs off.
    pub max_in_flight_records: usize,
    /// Bytes held for requests, over all of them: each body's room (taken before its bytes are read) and its
    /// encoded records', both until Kafka has settled the records. A request that does not fit is answered 503 at
    /// once.
    pub max_in_flight_bytes: usize,
    /// Open client connections, over all workers; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// HTTP worker threads; default: one per core.
    pub workers: Option<usize>,
    /// On SIGTERM, how long in-flight requests get to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// The `Retry-After` hint on 503 answers.
    #[serde(with = "humantime_serde")]
    pub retry_after: Duration,
    pub tls: Option<TlsSettings>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".to_owned(),
            port: 8080,
            path: "/alerts".to_owned(),
            request_timeout: Duration::from_secs(5),
            max_body_bytes: 4 * 1024 * 1024,
            max_in_flight_records: 50_000,
            max_in_flight_bytes: 256 * 1024 * 1024,
            max_connections: 1024,
            workers: None,
            shutdown_timeout: Duration::from_secs(15),
            retry_after: Duration::from_secs(1),
            tls: None,
        }
    }
}

impl ServerSettings {
    /// `workers`, or one per core.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }
}

/// librdkafka's second names for producer properties ingest sets itself: (alias, the name ingest uses).
const PROPERTY_ALIASES: [(&str, &str); 3] = [
    ("request.required.acks", "acks"),
    ("queue.buffering.max.ms", "linger.ms"),
    ("compression.codec", "compression.type"),
];

/// The producer's record timeout, under both its names: ingest derives it from `server.request_timeout` (plus the
/// linger), so that a record outlives its request by little and a producer whose records stop being acknowledged
/// is found out within a request's time.
const MESSAGE_TIMEOUT_PROPERTIES: [&str; 2] = ["message.timeout.ms", "delivery.timeout.ms"];

/// PEM files for HTTPS; without them the server speaks plain HTTP. Read again with the credential files
/// (`auth.reload_interval`, SIGHUP), so a renewed certificate is served without a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Credentials Alertmanager must present (its `http_config`). None configured: no authentication. Several may be
/// configured at once so that credentials can be rotated without downtime.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Accepted `Authorization: Bearer` tokens. In the environment, one token, verbatim (a token may contain
    /// commas); more come from a TOML list or files.
    #[serde(deserialize_with = "one_or_many_secrets")]
    pub bearer_tokens: Vec<SecretString>,
    /// Files each holding one bearer token (surrounding whitespace ignored), e.g. mounted secrets.
    pub bearer_token_files: Vec<PathBuf>,
    /// Accepted basic-auth credentials, each `user:password`; in the environment one, verbatim, as above.
    #[serde(deserialize_with = "one_or_many_secrets")]
    pub basic_credentials: Vec<SecretString>,
    /// Files each holding one `user:password`.
    pub basic_credential_files: Vec<PathBuf>,
    /// How often the credential files are read again (also at once on SIGHUP), so a rotated secret takes effect
    /// without a restart: these and the Kafka producer's (`kafka.property_files`, files `*.location` names).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            bearer_tokens: Vec::new(),
            bearer_token_files: Vec::new(),
            basic_credentials: Vec::new(),
            basic_credential_files: Vec::new(),
            reload_interval: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated.
    pub brokers: String,
    pub topic: String,
    /// `all` waits for every in-sync replica: an acknowledged alert survives the loss of a broker.
    pub acks: String,
    /// No duplicates or reordering from producer retries, where the broker supports it.
    pub enable_idempotence: bool,
    pub compression: String,
    /// How long the producer waits to fill a batch. Every request waits for its records' acknowledgement, so a
    /// linger is paid in every answer; a short one still gathers the records of requests that arrive close
    /// together into fewer produce requests: 1 ms measured a shorter tail than 0 at a steady rate, and no slower at
    /// any body size (docs/benchmarks.md, "Results — 2026-12-07").
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// How often the broker's reachability (and the topic's presence) is checked for `/readyz`.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// Any other librdkafka producer property, passed through as is (they take precedence). In the environment,
    /// write the dots as underscores: `INGEST_KAFKA__PROPERTIES__CLIENT_ID=ingest-eu1`.
    pub properties: KafkaProperties,
    /// librdkafka properties read from files (a mounted secret), e.g. `INGEST_KAFKA__PROPERTY_FILES__SASL_PASSWORD`.
    pub property_files: KafkaPropertyFiles,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".to_owned(),
            topic: "alerts".to_owned(),
            acks: "all".to_owned(),
            enable_idempotence: true,
            compression: "lz4".to_owned(),
            linger: Duration::from_millis(1),
            probe_interval: Duration::from_secs(1),
            properties: KafkaProperties::default(),
            property_files: KafkaPropertyFiles::default(),
        }
    }
}

/// Settings given on the command line; they win over every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub brokers: Option<String>,
    pub topic: Option<String>,
    pub log_format: Option<String>,
}

/// Settings keys whose environment values are comma-separated lists. Secrets are not among them: a secret is
/// taken verbatim, never split.
const LIST_KEYS: [&str; 2] = ["auth.bearer_token_files", "auth.basic_credential_files"];

/// One secret, as an environment variable gives it, or a list of them, as TOML does. Errors never show a value.
fn one_or_many_secrets<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(secret) => vec![secret.into()],
        OneOrMany::Many(secrets) => secrets.into_iter().map(Into::into).collect(),
    })
}

impl Settings {
    /// Loads the layers and checks the result.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Settings> {
        let mut settings: Settings = service_kit::settings::load(Layers {
            env_prefix: "INGEST",
            file,
            list_keys: &LIST_KEYS,
            overrides: vec![
                ("server.host", overrides.host),
                ("server.port", overrides.port.map(|port| port.to_string())),
                ("kafka.brokers", overrides.brokers),
                ("kafka.topic", overrides.topic),
                ("log.format", overrides.log_format),
            ],
        })?;
        settings.kafka.properties.read_files(&settings.kafka.property_files)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let server = &self.server;
        if !server.path.starts_with('/') {
            bail!("server.path must start with '/', got {:?}", server.path);
        }
        if server.request_timeout.is_zero() {
            bail!("server.request_timeout must be positive");
        }
        let limits = &self.limits;
        for (name, value) in [
            ("server.max_body_bytes", server.max_body_bytes),
            ("limits.max_alerts_per_body", limits.max_alerts_per_body),
            ("limits.max_labels_per_alert", limits.max_labels_per_alert),
            ("limits.max_value_bytes", limits.max_value_bytes),
            ("limits.max_record_bytes", limits.max_record_bytes),
        ] {
            if value == 0 {
                bail!("{name} must be positive: 0 would refuse every webhook");
            }
        }
        if server.max_in_flight_records < self.limits.max_alerts_per_body {
            bail!(
                "server.max_in_flight_records ({}) is below limits.max_alerts_per_body ({}): a full body could never be admitted",
                server.max_in_flight_records,
                self.limits.max_alerts_per_body
            );
        }
        let largest_request = server.max_body_bytes + self.limits.max_record_bytes_per_body;
        if server.max_in_flight_bytes < largest_request {
            bail!(
                "server.max_in_flight_bytes ({}) is below server.max_body_bytes + limits.max_record_bytes_per_body \
                 ({largest_request}): a body the limits allow could never be admitted",
                server.max_in_flight_bytes
            );
        }
        if self.limits.max_record_bytes_per_body < self.limits.max_record_bytes {
            bail!(
                "limits.max_record_bytes_per_body ({}) is below limits.max_record_bytes ({})",
                self.limits.max_record_bytes_per_body,
                self.limits.max_record_bytes
            );
        }
        if server.max_connections < server.worker_count() {
            bail!("server.max_connections must be at least one per worker");
        }
        if server.workers == Some(0) {
            bail!("server.workers must be at least 1");
        }
        if server.shutdown_timeout < server.request_timeout {
            bail!(
                "server.shutdown_timeout ({:?}) is shorter than server.request_timeout ({:?}): requests in flight at \
                 SIGTERM could be cut off before Kafka answers them",
                server.shutdown_timeout,
                server.request_timeout
            );
        }
        if server.shutdown_timeout.subsec_nanos() != 0 {
            bail!("server.shutdown_timeout must be whole seconds (the HTTP server counts it in seconds)");
        }
        self.kafka.refuse_aliases()?;
        let (linger_setting, linger) = self.kafka.linger_in_effect()?;
        if linger >= server.request_timeout {
            bail!(
                "{linger_setting} ({linger:?}) must be shorter than server.request_timeout ({:?}): every request would \
                 time out",
                server.request_timeout
            );
        }
        self.kafka.idempotence_in_effect()?;
        if self.auth.reload_interval.is_zero() {
            bail!("auth.reload_interval must be positive");
        }
        if self.kafka.probe_interval.is_zero() {
            bail!("kafka.probe_interval must be positive");
        }
        if self.kafka.brokers.trim().is_empty() || self.kafka.topic.trim().is_empty() {
            bail!("kafka.brokers and kafka.topic must not be empty");
        }
        let queued_records = self.kafka.number_property("queue.buffering.max.messages", DEFAULT_QUEUE_MAX_MESSAGES)?;
        // 0 lifts librdkafka's limit.
        if queued_records != 0 && queued_records < server.max_in_flight_records {
            bail!(
                "kafka.properties.queue.buffering.max.messages ({queued_records}) is below \
                 server.max_in_flight_records ({}): records ingest admitted could find the producer's queue full, \
                 and their body would be answered 503 at every retry",
                server.max_in_flight_records
            );
        }
        let queued_kbytes = self.kafka.number_property("queue.buffering.max.kbytes", DEFAULT_QUEUE_MAX_KBYTES)?;
        if queued_kbytes.saturating_mul(1024) < server.max_in_flight_bytes {
            bail!(
                "kafka.properties.queue.buffering.max.kbytes ({queued_kbytes}) is below server.max_in_flight_bytes \
                 ({} bytes): records ingest admitted could find the producer's queue full, and their body would be \
                 answered 503 at every retry",
                server.max_in_flight_bytes
            );
        }
        let message_max_bytes = self.kafka.number_property("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES)?;
        if self.limits.max_record_bytes + RECORD_OVERHEAD_BYTES > message_max_bytes {
            bail!(
                "limits.max_record_bytes ({}) leaves no room under the producer's message.max.bytes ({message_max_bytes}) \
                 for the record's key, headers and framing ({RECORD_OVERHEAD_BYTES} bytes): a record the limits \
                 allow would be refused by Kafka; lower the limit or raise message.max.bytes (and the broker's)",
                self.limits.max_record_bytes
            );
        }
        Ok(())
    }
}

/// A setting that weakens what a 200 answer promises: allowed, since an operator may choose it, but said at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakened {
    pub setting: &'static str,
    pub consequence: &'static str,
}

impl Settings {
    /// The settings that weaken the guarantee that an acknowledged alert survives a broker's loss, once each.
    pub fn weakened_guarantees(&self) -> Vec<Weakened> {
        let mut weakened = Vec::new();
        let (setting, acks) = self.kafka.acks_in_effect();
        if !matches!(acks.trim(), "all" | "-1") {
            weakened.push(Weakened {
                setting,
                consequence: "acks is not `all`: an alert answered 200 can be lost with the broker that took it",
            });
        }
        if let Ok((setting, false)) = self.kafka.idempotence_in_effect() {
            weakened.push(Weakened {
                setting,
                consequence: "idempotence is off: producer retries can duplicate or reorder an alert's states",
            });
        }
        weakened
    }
}

/// What a record costs in a Kafka message beyond its value: the key (a fingerprint), the format headers, and the
/// record and batch framing; rounded up generously.
const RECORD_OVERHEAD_BYTES: usize = 1024;

/// librdkafka's defaults for the properties ingest's limits are checked against.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
const DEFAULT_QUEUE_MAX_MESSAGES: usize = 100_000;
const DEFAULT_QUEUE_MAX_KBYTES: usize = 1_048_576;

impl KafkaSettings {
    /// Refuses, in `kafka.properties`, librdkafka's other names for the properties ingest sets itself (the client
    /// takes its properties in no set order, so which of two names for one property won would be a guess, and so
    /// would the checks below), and the record timeout, which ingest derives.
    fn refuse_aliases(&self) -> anyhow::Result<()> {
        for (alias, name) in PROPERTY_ALIASES {
            if self.properties.get(alias).is_some() {
                bail!("kafka.properties.{alias} is another name for {name}: set kafka.properties.{name} instead");
            }
        }
        if let Some(name) = MESSAGE_TIMEOUT_PROPERTIES.into_iter().find(|name| self.properties.get(name).is_some()) {
            bail!("kafka.properties.{name} is set by ingest from server.request_timeout: set that instead");
        }
        Ok(())
    }

    /// `acks` as the producer gets it (`kafka.properties` take precedence), and the setting it comes from.
    fn acks_in_effect(&self) -> (&'static str, &str) {
        match self.properties.get("acks") {
            Some(value) => ("kafka.properties.acks", value),
            None => ("kafka.acks", self.acks.as_str()),
        }
    }

    /// Whether the producer is idempotent, and the setting that says so.
    fn idempotence_in_effect(&self) -> anyhow::Result<(&'static str, bool)> {
        match self.properties.get("enable.idempotence") {
            None => Ok(("kafka.enable_idempotence", self.enable_idempotence)),
            Some("true" | "1") => Ok(("kafka.properties.enable.idempotence", true)),
            Some("false" | "0") => Ok(("kafka.properties.enable.idempotence", false)),
            Some(value) => bail!("kafka.properties.enable.idempotence must be true or false, got {value:?}"),
        }
    }

    /// The producer's linger, and the setting it comes from (librdkafka counts it in milliseconds, fractions
    /// allowed).
    pub(crate) fn linger_in_effect(&self) -> anyhow::Result<(&'static str, Duration)> {
        let Some(value) = self.properties.get("linger.ms") else {
            return Ok(("kafka.linger", self.linger));
        };
        let setting = "kafka.properties.linger.ms";
        match value.parse::<f64>() {
            Ok(millis) if millis.is_finite() && millis >= 0.0 => {
                Ok((setting, Duration::from_secs_f64(millis / 1000.0)))
            }
            _ => bail!("{setting} must be a number of milliseconds, got {value:?}"),
        }
    }

    /// A numeric librdkafka property as `kafka.properties` sets it, or librdkafka's `default`.
    fn number_property(&self, name: &str, default: usize) -> anyhow::Result<usize> {
        match self.properties.get(name) {
            None => Ok(default),
            Some(value) => {
                value.parse().map_err(|_| anyhow::anyhow!("kafka.properties.{name} must be a number, got {value:?}"))
            }
        }
    }
}

/// The reference printed by `ingest --help`: every setting, its environment variable and its default.
pub const REFERENCE: &str = "\
SETTINGS (TOML file key / environment variable, default)
  server.host                   INGEST_SERVER__HOST                   127.0.0.1
  server.port                   INGEST_SERVER__PORT                   8080 (0: any free port)
  server.path                   INGEST_SERVER__PATH                   /alerts
  server.request_timeout        INGEST_SERVER__REQUEST_TIMEOUT        5s (body + Kafka acks; keep below 10s)
  server.max_body_bytes         INGEST_SERVER__MAX_BODY_BYTES         4194304 (413 above)
  server.max_in_flight_records  INGEST_SERVER__MAX_IN_FLIGHT_RECORDS  50000 (503 when full)
  server.max_in_flight_bytes    INGEST_SERVER__MAX_IN_FLIGHT_BYTES    268435456 (bodies + records held; 503 when full)
  server.max_connections        INGEST_SERVER__MAX_CONNECTIONS        1024 (over all workers; more wait)
  server.workers                INGEST_SERVER__WORKERS                one per core
  server.shutdown_timeout       INGEST_SERVER__SHUTDOWN_TIMEOUT       15s
  server.retry_after            INGEST_SERVER__RETRY_AFTER            1s (Retry-After on 503)
  server.tls.cert_file          INGEST_SERVER__TLS__CERT_FILE         none (plain HTTP)
  server.tls.key_file           INGEST_SERVER__TLS__KEY_FILE          none
  auth.bearer_tokens            INGEST_AUTH__BEARER_TOKENS            none (env: one token, verbatim)
  auth.bearer_token_files       INGEST_AUTH__BEARER_TOKEN_FILES       none (one token per file; env: comma-separated)
  auth.basic_credentials        INGEST_AUTH__BASIC_CREDENTIALS        none (env: one user:password, verbatim)
  auth.basic_credential_files   INGEST_AUTH__BASIC_CREDENTIAL_FILES   none (one user:password per file; env: comma-separated)
  auth.reload_interval          INGEST_AUTH__RELOAD_INTERVAL          10s (credential files, Kafka's too, read again; also on SIGHUP)
  kafka.brokers                 INGEST_KAFKA__BROKERS                 127.0.0.1:9092
  kafka.topic                   INGEST_KAFKA__TOPIC                   alerts
  kafka.acks                    INGEST_KAFKA__ACKS                    all
  kafka.enable_idempotence      INGEST_KAFKA__ENABLE_IDEMPOTENCE      true
  kafka.compression             INGEST_KAFKA__COMPRESSION             lz4
  kafka.linger                  INGEST_KAFKA__LINGER                  1ms
  kafka.probe_interval          INGEST_KAFKA__PROBE_INTERVAL          1s (/readyz broker check)
  kafka.properties.<name>       INGEST_KAFKA__PROPERTIES__<NAME>      any librdkafka property ('_' for '.')
  kafka.property_files.<name>   INGEST_KAFKA__PROPERTY_FILES__<NAME>  a librdkafka property read from a file (secrets)
  limits.max_alerts_per_body    INGEST_LIMITS__MAX_ALERTS_PER_BODY    1000
  limits.max_labels_per_alert   INGEST_LIMITS__MAX_LABELS_PER_ALERT   64
  limits.max_value_bytes        INGEST_LIMITS__MAX_VALUE_BYTES        16384
  limits.max_record_bytes       INGEST_LIMITS__MAX_RECORD_BYTES       921600 (one alert's record; under message.max.bytes)
  limits.max_record_bytes_per_body INGEST_LIMITS__MAX_RECORD_BYTES_PER_BODY 16777216 (one body's records together)
  log.format                    INGEST_LOG__FORMAT                    text (or json)
  log.filter                    INGEST_LOG__FILTER                    info (RUST_LOG wins)
No credentials configured means no authentication. Durations take units: 500ms, 5s, 1m.
Only INGEST_ variables with a '__' are read: INGEST_PORT-style variables (e.g. Kubernetes service links) are ignored.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_reference_states_the_defaults() {
        let stated: Settings = service_kit::help_reference::defaults(REFERENCE, "INGEST").unwrap();
        assert_eq!(format!("{stated:?}"), format!("{:?}", Settings::default()));
    }

    #[test]
    fn defaults_are_valid() {
        Settings::default().validate().unwrap();
    }

    #[test]
    fn a_file_then_overrides_win_in_order() {
        let dir = std::env::temp_dir().join(format!("ingest-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ingest.toml");
        std::fs::write(
            &file,
            "[server]\nport = 9000\nrequest_timeout = \"2s\"\n[kafka]\ntopic = \"from-file\"\nbrokers = \"a:1\"\n\
             [kafka.properties]\nclient_id = \"ingest-eu1\"\n",
        )
        .unwrap();
        let overrides = Overrides { topic: Some("from-flag".to_owned()), ..Overrides::default() };
        let settings = Settings::load(Some(&file), overrides).unwrap();
        assert_eq!(settings.server.port, 9000);
        assert_eq!(settings.server.request_timeout, Duration::from_secs(2));
        assert_eq!(settings.kafka.brokers, "a:1");
        assert_eq!(settings.kafka.topic, "from-flag");
        assert_eq!(settings.kafka.properties.get("client.id"), Some("ingest-eu1"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_kafka_secret_comes_from_its_file_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("kafka-password");
        std::fs::write(&password, "s3cr3t-from-file\n").unwrap();
        let file = dir.path().join("ingest.toml");
        std::fs::write(
            &file,
            format!(
                "[kafka.properties]\nsasl_username = \"alice\"\n[kafka.property_files]\nsasl_password = {:?}\n",
                password
            ),
        )
        .unwrap();
        let settings = Settings::load(Some(&file), Overrides::default()).unwrap();
        assert_eq!(settings.kafka.properties.get("sasl.password"), Some("s3cr3t-from-file"));
        assert_eq!(settings.kafka.properties.get("sasl.username"), Some("alice"));
        let printed = format!("{settings:?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = std::env::temp_dir().join(format!("ingest-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [
            ("typo.toml", "[server]\nprot = 1\n"),
            ("path.toml", "[server]\npath = \"alerts\"\n"),
            ("duration.toml", "[server]\nrequest_timeout = \"soon\"\n"),
            ("inflight.toml", "[server]\nmax_in_flight_records = 10\n"),
        ] {
            let file = dir.join(name);
            std::fs::write(&file, text).unwrap();
            assert!(Settings::load(Some(&file), Overrides::default()).is_err(), "{name} was accepted");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn timings_that_void_the_contract_are_refused() {
        let refused = |change: &dyn Fn(&mut Settings)| {
            let mut settings = Settings::default();
            change(&mut settings);
            settings.validate().expect_err("refused").to_string()
        };
        assert!(refused(&|s| s.server.shutdown_timeout = Duration::from_secs(2)).contains("shutdown_timeout"));
        assert!(refused(&|s| s.server.shutdown_timeout = Duration::from_millis(15_500)).contains("whole seconds"));
        assert!(refused(&|s| s.kafka.linger = Duration::from_secs(5)).contains("kafka.linger"));
        assert!(refused(&|s| s.kafka.probe_interval = Duration::ZERO).contains("probe_interval"));
    }

    #[test]
    fn settings_that_weaken_the_guarantee_are_named() {
        let mut settings = Settings::default();
        assert_eq!(settings.weakened_guarantees(), []);
        settings.kafka.acks = "1".to_owned();
        settings.kafka.enable_idempotence = false;
        let named: Vec<_> = settings.weakened_guarantees().iter().map(|weakened| weakened.setting).collect();
        assert_eq!(named, ["kafka.acks", "kafka.enable_idempotence"]);
        settings.kafka.acks = "-1".to_owned();
        assert_eq!(settings.weakened_guarantees().len(), 1, "-1 is all");
    }

    #[test]
    fn kafka_properties_that_override_the_guarantees_are_checked_too() {
        let mut settings = Settings::default();
        settings.kafka.properties.insert("acks", "1");
        settings.kafka.properties.insert("enable.idempotence", "false");
        let named: Vec<_> = settings.weakened_guarantees().iter().map(|weakened| weakened.setting).collect();
        assert_eq!(named, ["kafka.properties.acks", "kafka.properties.enable.idempotence"]);

        let refused = |name: &str, value: &str| {
            let mut settings = Settings::default();
            settings.kafka.properties.insert(name, value);
            settings.validate().expect_err("refused").to_string()
        };
        assert!(refused("linger.ms", "5000").contains("kafka.properties.linger.ms"));
        assert!(refused("linger.ms", "7500.5").contains("kafka.properties.linger.ms"));
        assert!(refused("queue.buffering.max.ms", "5").contains("another name for linger.ms"));
        assert!(refused("request.required.acks", "all").contains("another name for acks"));
        for name in ["message.timeout.ms", "delivery.timeout.ms"] {
            assert!(refused(name, "300000").contains("server.request_timeout"), "{name}");
        }
        assert!(refused("linger.ms", "soon").contains("milliseconds"));
        assert!(refused("enable.idempotence", "maybe").contains("true or false"));
        let mut settings = Settings::default();
        settings.kafka.properties.insert("linger.ms", "5");
        settings.validate().expect("a short linger");
    }

    #[test]
    fn a_record_limit_that_kafka_would_refuse_is_a_configuration_error() {
        let mut settings = Settings::default();
        settings.kafka.properties.insert("message.max.bytes", "500000");
        let error = settings.validate().expect_err("the default record limit does not fit 500000 bytes").to_string();
        assert!(error.contains("limits.max_record_bytes"), "{error}");
        settings.limits.max_record_bytes = 400_000;
        settings.validate().expect("a record limit under message.max.bytes");
        settings.kafka.properties.insert("message.max.bytes", "lots");
        assert!(settings.validate().is_err(), "message.max.bytes must be a number");
    }

    #[test]
    fn a_producer_queue_smaller_than_what_ingest_admits_is_a_configuration_error() {
        let mut settings = Settings::default();
        settings.kafka.properties.insert("queue.buffering.max.kbytes", "65536");
        let error = settings.validate().expect_err("256 MiB admitted, a 64 MiB queue").to_string();
        assert!(error.contains("server.max_in_flight_bytes"), "{error}");
        settings.server.max_in_flight_bytes = 64 * 1024 * 1024;
        settings.validate().expect("the room admitted fits the queue");

        settings.kafka.properties.insert("queue.buffering.max.messages", "10000");
        let error = settings.validate().expect_err("50,000 records admitted, 10,000 queued").to_string();
        assert!(error.contains("server.max_in_flight_records"), "{error}");
        settings.server.max_in_flight_records = 10_000;
        settings.validate().expect("the records admitted fit the queue");
        settings.kafka.properties.insert("queue.buffering.max.messages", "0");
        settings.server.max_in_flight_records = 50_000;
        settings.validate().expect("0: no limit on queued records");
    }

    #[test]
    fn a_limit_of_zero_is_a_configuration_error() {
        for zero in [
            |s: &mut Settings| s.server.max_body_bytes = 0,
            |s: &mut Settings| s.limits.max_alerts_per_body = 0,
            |s: &mut Settings| s.limits.max_labels_per_alert = 0,
            |s: &mut Settings| s.limits.max_value_bytes = 0,
            |s: &mut Settings| s.limits.max_record_bytes = 0,
        ] {
            let mut settings = Settings::default();
            zero(&mut settings);
            let error = settings.validate().expect_err("a zero limit").to_string();
            assert!(error.contains("must be positive"), "{error}");
        }
    }
}

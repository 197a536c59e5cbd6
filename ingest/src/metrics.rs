//! The Prometheus metrics `ingest` exposes on `/metrics`.
//!
//! The labelled families are private: callers count through [`Metrics`]' methods, so only this module knows the
//! label sets, and the labels on `/metrics` (which tests and dashboards read) are spelt in one place.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use schemas::Status;
use service_kit::process_metrics::ProcessMetrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KafkaErrorLabels {
    /// librdkafka's error code name, e.g. `MessageTimedOut`.
    code: String,
}

/// Every metric, registered once at start-up and shared by all workers (the handles are cheap clones of atomics).
pub struct Metrics {
    registry: Registry,
    /// The build and the process, beside the service's own.
    process: ProcessMetrics,
    http_requests: Family<RequestLabels, Counter>,
    alerts_accepted: Family<StatusLabels, Counter>,
    pub body_bytes: Histogram,
    pub alerts_per_body: Histogram,
    pub produce_seconds: Histogram,
    pub in_flight_records: Gauge,
    pub in_flight_bytes: Gauge,
    rejections: Family<ReasonLabels, Counter>,
    kafka_errors: Family<KafkaErrorLabels, Counter>,
    pub broker_ready: Gauge,
    pub broker_probes: Counter,
    pub broker_probe_failures: Counter,
    pub producer_replacements: Counter,
    pub credential_reloads: Counter,
    pub credential_reload_failures: Counter,
    /// Connections shut down for making no progress ([`crate::connection_deadline`]): many of them are clients that
    /// hold connections without sending (or a load balancer whose timeouts exceed ingest's).
    pub connections_timed_out: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ingest");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", http_requests.clone());
        let alerts_accepted = Family::<StatusLabels, Counter>::default();
        registry.register("alerts_accepted", "Alerts acknowledged by Kafka, by alert status", alerts_accepted.clone());
        let body_bytes = Histogram::new(exponential_buckets(256.0, 4.0, 10));
        registry.register("request_body_bytes", "Size of webhook bodies", body_bytes.clone());
        let alerts_per_body = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register("alerts_per_body", "Alerts in one webhook body", alerts_per_body.clone());
        let produce_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "produce_duration_seconds",
            "Time from producing a body's records to Kafka acknowledging all of them",
            produce_seconds.clone(),
        );
        let in_flight_records = Gauge::default();
        registry.register("in_flight_records", "Records awaiting Kafka's acknowledgement", in_flight_records.clone());
        let in_flight_bytes = Gauge::default();
        registry.register(
            "in_flight_bytes",
            "Bytes admitted: bodies and their encoded records, until Kafka has settled the records",
            in_flight_bytes.clone(),
        );
        let rejections = Family::<ReasonLabels, Counter>::default();
        registry.register("rejections", "Webhooks not accepted, by reason", rejections.clone());
        let kafka_errors = Family::<KafkaErrorLabels, Counter>::default();
        registry.register("kafka_errors", "Records Kafka did not acknowledge, by error", kafka_errors.clone());
        let broker_ready = Gauge::default();
        registry.register("broker_ready", "1 when the broker and topic answered the last probe", broker_ready.clone());
        let broker_probes = Counter::default();
        registry.register("broker_probes", "Probes of the broker and topic run, failed or not", broker_probes.clone());
        let broker_probe_failures = Counter::default();
        registry.register(
            "broker_probe_failures",
            "Probes that found the broker unreachable or the topic missing",
            broker_probe_failures.clone(),
        );
        let producer_replacements = Counter::default();
        registry.register(
            "producer_replacements",
            "Kafka producers replaced: they failed, stopped getting acknowledgements, or their credential files changed",
            producer_replacements.clone(),
        );
        let credential_reloads = Counter::default();
        registry.register(
            "credential_reloads",
            "Times the credential files were found changed and the new credentials took effect",
            credential_reloads.clone(),
        );
        let connections_timed_out = Counter::default();
        registry.register(
            "connections_timed_out",
            "Connections shut down for making no progress (no request begun, no answer sent) in time",
            connections_timed_out.clone(),
        );
        let credential_reload_failures = Counter::default();
        registry.register(
            "credential_reload_failures",
            "Times the credential files could not be read again (the credentials in effect were kept)",
            credential_reload_failures.clone(),
        );
        Self {
            registry,
            process: ProcessMetrics::new("ingest", env!("CARGO_PKG_VERSION")),
            http_requests,
            alerts_accepted,
            body_bytes,
            alerts_per_body,
            produce_seconds,
            in_flight_records,
            in_flight_bytes,
            rejections,
            kafka_errors,
            broker_ready,
            broker_probes,
            broker_probe_failures,
            producer_replacements,
            credential_reloads,
            credential_reload_failures,
            connections_timed_out,
        }
    }
}

impl Metrics {
    /// Counts an HTTP answer by the route pattern it matched (or `unmatched`) and its status code.
    pub fn answered(&self, route: String, status: u16) {
        self.http_requests.get_or_create(&RequestLabels { route, status }).inc();
    }

    /// Counts the alerts of one status in a body Kafka acknowledged.
    pub fn accepted(&self, status: Status, alerts: u64) {
        self.alerts_accepted.get_or_create(&StatusLabels { status: status.as_str() }).inc_by(alerts);
    }

    /// Counts a webhook not accepted, by [`IngestError::reason`](crate::error::IngestError::reason).
    pub fn rejected(&self, reason: &'static str) {
        self.rejections.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts a record Kafka did not acknowledge, by librdkafka's error code name.
    pub fn kafka_error(&self, code: String) {
        self.kafka_errors.get_or_create(&KafkaErrorLabels { code }).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        self.process.render_with(&self.registry)
    }
}

//! What every service says about itself on `/metrics`: `<service>_build_info{version, revision}` and the standard
//! `process_*` metrics (CPU, memory, file descriptors, threads, start time), read from `/proc` at each scrape, and
//! the rendering of a service's own registry beside them as one exposition.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the exposition [`ProcessMetrics::render_with`] writes.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The revision the build recorded (`build.rs`).
pub const REVISION: &str = env!("ALERTHAVEN_REVISION");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
}

/// The metrics that are not the service's own business: unprefixed, as Prometheus' conventions name them.
pub struct ProcessMetrics {
    registry: Registry,
}

impl ProcessMetrics {
    /// `service` names the build-info metric (`ingest` → `ingest_build_info`); `version` is the service's.
    pub fn new(service: &str, version: &str) -> Self {
        let mut registry = Registry::default();
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels { version: version.to_owned(), revision: REVISION.to_owned() }).set(1);
        registry.register(
            format!("{service}_build_info"),
            "The running build: always 1, with its version and revision",
            build_info,
        );
        registry.register_collector(Box::new(ProcessCollector));
        Self { registry }
    }

    /// The service's `registry` and these metrics, as one OpenMetrics text exposition.
    pub fn render_with(&self, registry: &Registry) -> String {
        let mut text = String::new();
        encode_registry(&mut text, registry).expect("writing to a String cannot fail");
        encode_registry(&mut text, &self.registry).expect("writing to a String cannot fail");
        encode_eof(&mut text).expect("writing to a String cannot fail");
        text
    }
}

/// Reads `/proc/self` at each scrape; a figure that cannot be read is left out rather than reported as 0.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Ok(me) = procfs::process::Process::myself() else { return Ok(()) };
        if let Ok(stat) = me.stat() {
            let ticks = procfs::ticks_per_second() as f64;
            let cpu = ConstCounter::new((stat.utime + stat.stime) as f64 / ticks);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu",
                "User and system CPU time",
                Some(&Unit::Seconds),
                cpu.metric_type(),
            )?)?;
            let resident = (stat.rss * procfs::page_size()) as f64;
            gauge(&mut encoder, "process_resident_memory", "Resident memory size", Some(Unit::Bytes), resident)?;
            gauge(&mut encoder, "process_virtual_memory", "Virtual memory size", Some(Unit::Bytes), stat.vsize as f64)?;
            gauge(&mut encoder, "process_threads", "OS threads", None, stat.num_threads as f64)?;
            if let Ok(boot) = procfs::boot_time_secs() {
                let start = boot as f64 + stat.starttime as f64 / ticks;
                gauge(
                    &mut encoder,
                    "process_start_time",
                    "Start time since the Unix epoch",
                    Some(Unit::Seconds),
                    start,
                )?;
            }
        }
        if let Ok(open) = me.fd_count() {
            gauge(&mut encoder, "process_open_fds", "Open file descriptors", None, open as f64)?;
        }
        if let Ok(limits) = me.limits() {
            if let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit {
                gauge(&mut encoder, "process_max_fds", "Maximum open file descriptors", None, max as f64)?;
            }
        }
        Ok(())
    }
}

/// Encodes one gauge sample.
fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let gauge = ConstGauge::new(value);
    gauge.encode(encoder.encode_descriptor(name, help, unit.as_ref(), gauge.metric_type())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_carries_the_build_and_the_process_beside_the_service_metrics() {
        let mut service = Registry::with_prefix("demo");
        let requests = prometheus_client::metrics::counter::Counter::<u64>::default();
        service.register("requests", "Requests", requests.clone());
        requests.inc();
        let text = ProcessMetrics::new("demo", "1.2.3").render_with(&service);
        assert!(text.contains("demo_requests_total 1"), "{text}");
        assert!(text.contains(&format!("demo_build_info{{version=\"1.2.3\",revision=\"{REVISION}\"}} 1")), "{text}");
        let resident = text
            .lines()
            .find_map(|line| line.strip_prefix("process_resident_memory_bytes "))
            .and_then(|value| value.parse::<f64>().ok())
            .expect("the resident memory");
        assert!(resident > 1_000_000.0, "a running test process holds more than a megabyte: {resident}");
        for name in ["process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds", "process_threads"] {
            assert!(text.lines().any(|line| line.starts_with(name)), "{name} in {text}");
        }
        assert_eq!(text.matches("# EOF").count(), 1, "one exposition");
        assert!(!REVISION.is_empty());
    }
}

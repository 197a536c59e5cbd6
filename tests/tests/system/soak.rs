//! Soak: the pipeline under a steady load for a long time. It asserts that every acknowledged state lands exactly
//! once and that the publisher's memory stays flat after the warm-up, and reports the services' memory as it goes
//! and Deephaven's live heap per million states. Not part of the default run; start it, with release builds, with
//! `cargo build --release --bins && SOAK_MINUTES=30 SOAK_RATE=1000 scripts/test.sh --release -p e2e --test system
//! soak -- --ignored --nocapture`.

use crate::support::*;
use e2e::load::{Load, Shape};
use e2e::stack::{deephaven_heap_used_bytes, free_port};
use std::time::{Duration, Instant};

/// Load workers; each sends a body of [`ALERTS_PER_BODY`] alerts per interval.
const WORKERS: u32 = 4;
const ALERTS_PER_BODY: u32 = 10;
/// After this, the publisher's memory must stay flat: its batches, librdkafka's queues and the allocator's pools
/// have reached their working size.
const WARM_UP: Duration = Duration::from_secs(120);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long-running: run on demand (see the module docs)"]
async fn soak_keeps_the_publisher_flat_and_loses_nothing() {
    let minutes: u64 = env_or("SOAK_MINUTES", 10);
    let rate: u32 = env_or("SOAK_RATE", 1_000);
    assert!(
        Duration::from_secs(minutes * 60) > WARM_UP + Duration::from_secs(60),
        "a soak within its warm-up shows nothing"
    );
    let pipeline = Pipeline::on_stack("soak").await;
    let Running { ingest, balancer, publisher, .. } = pipeline.start(free_port()).await;
    let heap_before = deephaven_heap_used_bytes();

    let interval = Duration::from_secs(1) * WORKERS * ALERTS_PER_BODY / rate;
    let shape =
        Shape { workers: u64::from(WORKERS), interval, alerts_per_body: ALERTS_PER_BODY as usize, first_batch: 0 };
    let load = Load::start(&balancer.alerts_url(), shape);
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(30));
    let mut after_warm_up: Vec<u64> = Vec::new();
    println!("minute  ingest-1 MiB  ingest-2 MiB  publisher MiB  acknowledged");
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        ticks.tick().await;
        let rss = |service: &e2e::process::Service| service.rss_bytes().unwrap_or(0);
        let publisher_rss = rss(&publisher);
        if started.elapsed() >= WARM_UP {
            after_warm_up.push(publisher_rss);
        }
        println!(
            "{:6.1}  {:12.1}  {:12.1}  {:13.1}  {}",
            started.elapsed().as_secs_f64() / 60.0,
            mib(rss(&ingest[0])),
            mib(rss(&ingest[1])),
            mib(publisher_rss),
            load.ledger().acknowledged.len()
        );
    }
    let ledger = load.stop().await;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "acknowledged {} states in {seconds:.0} s: {:.0}/s",
        ledger.acknowledged.len(),
        ledger.acknowledged.len() as f64 / seconds
    );
    wait_for_exactly_once(&pipeline, &ledger).await;

    if let (Some(before), Some(after)) = (heap_before, deephaven_heap_used_bytes()) {
        let per_million = mib(after.saturating_sub(before)) / (ledger.acknowledged.len() as f64 / 1e6);
        println!(
            "Deephaven live heap {:.0} -> {:.0} MiB: {per_million:.0} MiB per million states",
            mib(before),
            mib(after)
        );
    }
    let first = *after_warm_up.first().expect("samples after the warm-up");
    let peak = *after_warm_up.iter().max().expect("samples after the warm-up");
    // Flat: what it holds after the warm-up may breathe with the batches, but not grow with the states seen.
    let bound = first + first / 5 + 4 * 1_048_576;
    assert!(
        peak <= bound,
        "publisher RSS grew after the warm-up: {:.1} -> {:.1} MiB (bound {:.1})",
        mib(first),
        mib(peak),
        mib(bound)
    );
}

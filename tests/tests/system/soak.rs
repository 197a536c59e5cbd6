//! Soak: the pipeline under a steady load for a long time, reporting the services' memory as it goes. Not part of
//! the default run; start it with
//! `SOAK_MINUTES=30 scripts/test.sh -p e2e --test system soak -- --ignored --nocapture`.

use crate::support::*;
use e2e::stack::free_port;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "long-running: run on demand (see the module docs)"]
async fn soak_reports_memory_over_time_and_loses_nothing() {
    let minutes: u64 = std::env::var("SOAK_MINUTES").ok().and_then(|value| value.parse().ok()).unwrap_or(10);
    let pipeline = Pipeline::on_stack("soak").await;
    let Running { ingest, balancer, publisher, .. } = pipeline.start(free_port()).await;

    let load = steady_load(&balancer.alerts_url(), 0);
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_secs(30));
    println!("minute  ingest-1 MiB  ingest-2 MiB  publisher MiB  acknowledged");
    while started.elapsed() < Duration::from_secs(minutes * 60) {
        ticks.tick().await;
        let mib = |service: &e2e::process::Service| service.rss_bytes().map_or(f64::NAN, |b| b as f64 / 1048576.0);
        println!(
            "{:6.1}  {:12.1}  {:12.1}  {:13.1}  {}",
            started.elapsed().as_secs_f64() / 60.0,
            mib(&ingest[0]),
            mib(&ingest[1]),
            mib(&publisher),
            load.ledger().acknowledged.len()
        );
    }
    let ledger = load.stop().await;
    wait_for_exactly_once(&pipeline, &ledger).await;
}

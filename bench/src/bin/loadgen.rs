//! `loadgen`: a webhook load generator for `scripts/bench.sh`.
//!
//! Posts synthetic Alertmanager bodies (unique fingerprints) to a URL from `--connections` concurrent clients, either
//! as fast as answers come (saturation) or at a fixed `--rate` of requests per second, for `--seconds`, and prints
//! one line of JSON: requests and alerts per second, latency percentiles, and the answers by status.

use bench::percentile_ms;
use clap::Parser;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_kit::fixtures::synthetic_webhook;

/// A webhook load: synthetic bodies from concurrent clients, as fast as answers come or at a fixed rate.
#[derive(Parser)]
struct Options {
    /// Ingest's webhook URL.
    #[arg(long)]
    url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    connections: u64,
    /// Alerts per body.
    #[arg(long, default_value_t = 10)]
    alerts: usize,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests per second over all connections; without it, as fast as answers come.
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Default)]
struct Results {
    latencies: Vec<Duration>,
    statuses: BTreeMap<String, u64>,
}

#[tokio::main]
async fn main() {
    let options = Arc::new(Options::parse());
    let results = Arc::new(Mutex::new(Results::default()));
    let started = Instant::now();
    let end = started + Duration::from_secs(options.seconds);
    let workers: Vec<_> = (0..options.connections)
        .map(|worker| {
            let (options, results) = (Arc::clone(&options), Arc::clone(&results));
            tokio::spawn(async move {
                let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
                // With a rate, each worker sends at rate/connections, on a schedule (open loop, no coordinated omission).
                let interval = options.rate.map(|rate| Duration::from_secs_f64(options.connections as f64 / rate));
                // The workers' schedules start spread over one interval, so that requests arrive evenly: started
                // together, a fixed rate arrived as bursts of one request per connection, and each burst's last
                // answer waited for the whole burst.
                let offset = interval.map_or(Duration::ZERO, |i| i.mul_f64(worker as f64 / options.connections as f64));
                let mut next = Instant::now() + offset;
                for round in 0u64.. {
                    if let Some(interval) = interval {
                        tokio::time::sleep_until(next.into()).await;
                        next += interval;
                    }
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let (body, _) = synthetic_webhook(worker * 100_000_000 + round, options.alerts);
                    let sent = interval.map_or(now, |i| next - i);
                    let answer =
                        client.post(&options.url).header("Content-Type", "application/json").body(body).send().await;
                    let latency = sent.elapsed();
                    let status = answer.map_or_else(|_| "error".to_owned(), |a| a.status().as_u16().to_string());
                    let mut results = results.lock().unwrap();
                    results.latencies.push(latency);
                    *results.statuses.entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut results = results.lock().unwrap();
    results.latencies.sort();
    let ok = results.statuses.get("200").copied().unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "alerts_per_body": options.alerts,
            "connections": options.connections,
            "target_rate": options.rate,
            "requests_per_s": (results.latencies.len() as f64 / elapsed).round(),
            "ok_requests_per_s": (ok as f64 / elapsed).round(),
            "ok_alerts_per_s": (ok as f64 * options.alerts as f64 / elapsed).round(),
            "p50_ms": percentile_ms(&results.latencies, 0.50),
            "p99_ms": percentile_ms(&results.latencies, 0.99),
            "statuses": results.statuses,
        })
    );
}

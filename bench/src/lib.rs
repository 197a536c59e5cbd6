//! Shared by the benchmark binaries in `src/bin/` (run by `scripts/bench.sh`): their command-line flags, the
//! synthetic alerts they move (the same bodies `loadgen` posts, so every stage carries records of one size) and
//! latency percentiles.

use crate::fixtures::synthetic_webhook;
use schemas::{AlertRecord, Limits, Timestamp};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

/// `--name value` pairs from the command line.
pub struct Flags {
    values: HashMap<String, String>,
    usage: &'static str,
}

impl Flags {
    /// Reads the process's arguments; `usage` is printed with any mistake.
    pub fn parse(usage: &'static str) -> Self {
        let mut values = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let Some(name) = flag.strip_prefix("--") else { panic!("unexpected argument {flag}; usage: {usage}") };
            let value = args.next().unwrap_or_else(|| panic!("{flag} needs a value; usage: {usage}"));
            values.insert(name.to_owned(), value);
        }
        Self { values, usage }
    }

    /// The flag's value, parsed, or `default` when it is absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        self.optional(name).unwrap_or(default)
    }

    /// The flag's value, parsed, if given.
    pub fn optional<T: FromStr>(&self, name: &str) -> Option<T> {
        self.values.get(name).map(|value| {
            value.parse().unwrap_or_else(|_| panic!("--{name} {value:?} is not valid; usage: {}", self.usage))
        })
    }

    /// The flag's value; panics with the usage when it is absent.
    pub fn required(&self, name: &str) -> String {
        self.optional(name).unwrap_or_else(|| panic!("--{name} is required; usage: {}", self.usage))
    }
}

/// `bodies × alerts_per_body` distinct alert records, as ingest would write them for [`synthetic_webhook`] bodies
/// `first_body..first_body + bodies`.
pub fn synthetic_records(first_body: u64, bodies: u64, alerts_per_body: usize) -> Vec<AlertRecord> {
    let received_at = Timestamp::now();
    (first_body..first_body + bodies)
        .flat_map(|body| {
            let (bytes, _) = synthetic_webhook(body, alerts_per_body);
            let webhook = schemas::parse(&bytes, &Limits::default()).expect("synthetic webhooks are valid");
            AlertRecord::from_webhook(webhook, received_at)
        })
        .collect()
}

/// The `p` quantile (0..=1) of ascending `sorted` durations, in milliseconds rounded to 0.01; 0 when empty.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(index).map_or(0.0, |d| (d.as_secs_f64() * 100_000.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_rank_and_round_to_hundredths_of_a_millisecond() {
        let sorted: Vec<Duration> = (1..=100).map(|ms| Duration::from_micros(ms * 1000 + 4)).collect();
        assert_eq!(percentile_ms(&sorted, 0.5), 51.0);
        assert_eq!(percentile_ms(&sorted, 0.99), 100.0);
        assert_eq!(percentile_ms(&sorted, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }

    #[test]
    fn synthetic_records_are_distinct_alerts() {
        let records = synthetic_records(7, 3, 4);
        assert_eq!(records.len(), 12);
        let fingerprints: std::collections::HashSet<_> = records.iter().map(|r| r.fingerprint.clone()).collect();
        assert_eq!(fingerprints.len(), 12);
    }
}

//! The benchmark tools `scripts/bench.sh` runs, one binary each in `src/bin/`, and what they share: latency
//! percentiles. They move the synthetic alerts of the test kit (`test_kit::records`, the same bodies `loadgen`
//! posts), so every stage carries records of one size.

use std::time::Duration;

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
}

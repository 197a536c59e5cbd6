//! Backpressure: a bound on the records that have been handed to the producer and not yet acknowledged by Kafka.
//!
//! Without it a slow or absent broker would make every request wait in memory until its deadline. With it, a request
//! that does not fit is answered 503 at once, which keeps memory bounded and tells Alertmanager to back off and retry.

use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hands out room for records, up to a fixed total.
#[derive(Clone)]
pub struct Admission {
    room: Arc<Semaphore>,
    in_flight: Gauge,
}

/// Room for some records; given back when dropped (the records were acknowledged, failed or abandoned).
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    records: i64,
    in_flight: Gauge,
}

impl Admission {
    pub fn new(max_records: usize, in_flight: Gauge) -> Self {
        Self { room: Arc::new(Semaphore::new(max_records)), in_flight }
    }

    /// Room for `records` records now, or `None` if that much is not free.
    pub fn try_admit(&self, records: usize) -> Option<Admitted> {
        let permits = u32::try_from(records).ok()?;
        let permit = Arc::clone(&self.room).try_acquire_many_owned(permits).ok()?;
        let records = i64::from(permits);
        self.in_flight.inc_by(records);
        Some(Admitted { _permit: permit, records, in_flight: self.in_flight.clone() })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.in_flight.dec_by(self.records);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_bound_and_gives_room_back_on_drop() {
        let gauge = Gauge::default();
        let admission = Admission::new(10, gauge.clone());
        let first = admission.try_admit(6).unwrap();
        assert_eq!(gauge.get(), 6);
        assert!(admission.try_admit(5).is_none());
        let second = admission.try_admit(4).unwrap();
        assert_eq!(gauge.get(), 10);
        drop(first);
        assert_eq!(gauge.get(), 4);
        assert!(admission.try_admit(6).is_some());
        drop(second);
        assert_eq!(gauge.get(), 0);
    }
}

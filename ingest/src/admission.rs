//! Backpressure: bounds on what requests hold in memory, in bytes and in records.
//!
//! A request takes room for its body before reading it: a head start, then more as its bytes arrive (so that a
//! length declared but never sent holds next to nothing); a declared `Content-Length` larger than the room free is
//! refused from the head alone. Then it takes room for its encoded records before producing them, and for as many
//! records as it has. It keeps all that room until Kafka has settled every record (acknowledged or failed), even when
//! the handler has long answered at its deadline: the records sit in the producer's queue until then. The body's
//! room is kept with them although the body is gone: the memory it and its decoded form took is not returned to the
//! system at once, and giving its room back early let more bodies in than the process's peak memory bound holds
//! (tried: `ingest/tests/api/bytes.rs`). A request that does not fit is answered 503 at once, which keeps memory
//! bounded whatever the number of connections, and tells Alertmanager to back off.

use prometheus_client::metrics::gauge::Gauge;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hands out room for bytes and records, up to fixed totals.
#[derive(Clone)]
pub struct Admission {
    bytes: Pool,
    records: Pool,
}

/// The room one request holds; given back when dropped.
pub struct Admitted {
    bytes: Held,
    records: Held,
}

impl Admission {
    pub fn new(max_bytes: usize, max_records: usize, in_flight_bytes: Gauge, in_flight_records: Gauge) -> Self {
        Self { bytes: Pool::new(max_bytes, in_flight_bytes), records: Pool::new(max_records, in_flight_records) }
    }

    /// How many bytes are free now.
    pub fn free_bytes(&self) -> usize {
        self.bytes.room.available_permits()
    }

    /// Room for `bytes` bytes and no record yet, or `None` if that much is not free.
    pub fn try_admit(&self, bytes: usize) -> Option<Admitted> {
        Some(Admitted { bytes: self.bytes.try_take(bytes)?, records: self.records.try_take(0)? })
    }
}

impl Admitted {
    /// Takes room for `bytes` more bytes; `false` (and nothing taken) if that much is not free.
    pub fn try_add_bytes(&mut self, bytes: usize) -> bool {
        self.bytes.try_grow(bytes)
    }

    /// Takes room for `records` more records; `false` (and nothing taken) if that many are not free.
    pub fn try_add_records(&mut self, records: usize) -> bool {
        self.records.try_grow(records)
    }
}

/// One bounded resource and the gauge that shows how much of it is taken.
#[derive(Clone)]
struct Pool {
    room: Arc<Semaphore>,
    taken: Gauge,
}

/// Some units of a [`Pool`], given back (and subtracted from its gauge) on drop.
struct Held {
    permit: OwnedSemaphorePermit,
    pool: Pool,
}

impl Pool {
    fn new(size: usize, taken: Gauge) -> Self {
        Self { room: Arc::new(Semaphore::new(size.min(Semaphore::MAX_PERMITS))), taken }
    }

    fn try_take(&self, units: usize) -> Option<Held> {
        let permit = self.try_acquire(units)?;
        Some(Held { permit, pool: self.clone() })
    }

    /// Takes `units` from the semaphore and counts them on the gauge; the caller's [`Held`] gives both back.
    fn try_acquire(&self, units: usize) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.room).try_acquire_many_owned(u32::try_from(units).ok()?).ok()?;
        self.taken.inc_by(units as i64);
        Some(permit)
    }
}

impl Held {
    fn try_grow(&mut self, units: usize) -> bool {
        match self.pool.try_acquire(units) {
            Some(more) => {
                self.permit.merge(more);
                true
            }
            None => false,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.pool.taken.dec_by(self.permit.num_permits() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_bytes_then_records_up_to_the_bounds_and_gives_room_back_on_drop() {
        let (bytes, records) = (Gauge::default(), Gauge::default());
        let admission = Admission::new(100, 10, bytes.clone(), records.clone());
        let mut first = admission.try_admit(60).unwrap();
        assert_eq!(bytes.get(), 60);
        assert!(admission.try_admit(41).is_none(), "41 bytes do not fit beside 60 of 100");
        assert!(first.try_add_bytes(30));
        assert!(!first.try_add_bytes(11), "nor 11 more beside 90");
        assert_eq!(bytes.get(), 90, "a refused growth takes nothing");
        assert!(first.try_add_records(6));
        let mut second = admission.try_admit(10).unwrap();
        assert!(!second.try_add_records(5));
        assert!(second.try_add_records(4));
        assert_eq!((bytes.get(), records.get()), (100, 10));
        drop(first);
        assert_eq!((bytes.get(), records.get()), (10, 4), "the grown room is given back whole");
        assert!(admission.try_admit(90).is_some());
        drop(second);
        assert_eq!((bytes.get(), records.get()), (0, 0));
    }
}

//! Which states Deephaven keeps: those received within `deephaven.retention`, cut into slices of time.
//!
//! An aggregation over the blink log never forgets a key, so the tables users read cannot shed old states by a
//! filter. Instead the log's states are split into fixed slices of a quarter of the retention (the events by
//! `ReceivedAt`, the states by their rank: `ReceivedAt`, plus `refire_grace` for a resolved one), each aggregated on
//! its own, and the published tables merge the slices that overlap the retention window. A slice leaves once every
//! state it holds is older than the retention, and its memory goes with it: a state stays between one and one and a
//! quarter retentions after it was received (a resolved one up to `refire_grace` more). A slice is created one slice
//! ahead of time, before any state ranked in it can arrive (a resolved one up to `refire_grace` before the slice
//! starts), so the slices are fixed by the clock alone and several publishers agree on them.
//!
//! The slices live in a fixed ring of [`SLOTS`] table names: the slice starting now takes the slot of the one that
//! just left. Pure arithmetic, tested beside it; [`crate::tables`] creates and merges the tables.

use schemas::Timestamp;
use std::ops::RangeInclusive;
use std::time::Duration;

/// How many slices the retention is cut into: each is a quarter of it, so a state outlives the retention by at most
/// a quarter, and the slices in use hold at most one and a quarter retentions' worth of states.
const SLICES_PER_RETENTION: u32 = 4;

/// How many slices exist at once: those overlapping the retention window, the current one included, and the next.
pub const SLOTS: usize = SLICES_PER_RETENTION as usize + 2;

/// The retention cut into slices. A slice is numbered by how many slice lengths after the Unix epoch it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    slice_nanos: i64,
}

impl Retention {
    /// `None` if `retention` is too short to cut into slices or too long for nanosecond timestamps (longer than the
    /// time since the epoch).
    pub fn new(retention: Duration) -> Option<Self> {
        let slice = retention / SLICES_PER_RETENTION;
        let slice_nanos = i64::try_from(slice.as_nanos()).ok().filter(|nanos| *nanos > 0)?;
        let since_epoch = Timestamp::now().unix_nanos();
        (slice_nanos.checked_mul(i64::from(SLICES_PER_RETENTION))? < since_epoch).then_some(Self { slice_nanos })
    }

    /// The length of one slice.
    pub fn slice(&self) -> Duration {
        Duration::from_nanos(self.slice_nanos.unsigned_abs())
    }

    /// The slices that must exist at `now`: from the oldest one holding a state received within the retention, to
    /// the one after the current.
    pub fn window(&self, now: Timestamp) -> RangeInclusive<i64> {
        let current = now.unix_nanos().div_euclid(self.slice_nanos);
        (current - i64::from(SLICES_PER_RETENTION))..=(current + 1)
    }

    /// The range of time slice `slice` takes (the states' rank, the events' `ReceivedAt`), in Unix nanoseconds: from
    /// its start (inclusive) to its end.
    /// `None` for a slice beyond the range of timestamps, which only a slices table edited by hand can name.
    pub fn bounds(&self, slice: i64) -> Option<(i64, i64)> {
        Some((slice.checked_mul(self.slice_nanos)?, slice.checked_add(1)?.checked_mul(self.slice_nanos)?))
    }

    /// [`Retention::bounds`] of a slice of [`Retention::window`], always within range.
    pub fn bounds_of_due(&self, slice: i64) -> (i64, i64) {
        self.bounds(slice).expect("a slice due now lies within the range of timestamps")
    }

    /// The slot whose tables hold `slice`.
    pub fn slot(slice: i64) -> usize {
        usize::try_from(slice.rem_euclid(SLOTS as i64)).expect("a remainder of a small positive modulus")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(nanos: i64) -> Timestamp {
        Timestamp::from_unix_nanos(nanos)
    }

    #[test]
    fn a_state_leaves_between_one_and_one_and_a_quarter_retentions_after_it_was_received() {
        let retention = Retention::new(4 * HOUR).unwrap();
        let hour = HOUR.as_nanos() as i64;
        let received: i64 = 1_795_459_306_123_456_789;
        let slice = received.div_euclid(hour);
        let kept_at = |now: i64| retention.window(at(now)).contains(&slice);
        assert!(kept_at(received), "kept when received");
        assert!(kept_at(received + 4 * hour), "kept for the whole retention");
        let (_, end) = retention.bounds_of_due(slice);
        let leaves = end + 4 * hour;
        assert!(kept_at(leaves - 1) && !kept_at(leaves), "leaves once its whole slice is older than the retention");
        assert!(leaves - received <= 5 * hour, "at most a quarter retention late");
    }

    #[test]
    fn the_next_slice_exists_before_it_starts_and_takes_the_slot_of_the_one_leaving() {
        let retention = Retention::new(4 * HOUR).unwrap();
        let hour = HOUR.as_nanos() as i64;
        let now = 1_795_459_306_000_000_000;
        let window = retention.window(at(now));
        assert_eq!(window.clone().count(), SLOTS);
        let current = now.div_euclid(hour);
        assert!(window.contains(&(current + 1)), "the next slice is already there");
        let slots: std::collections::BTreeSet<usize> = window.clone().map(Retention::slot).collect();
        assert_eq!(slots.len(), SLOTS, "every slice of the window in a slot of its own");
        let later = retention.window(at(now + hour));
        assert_eq!(*later.end(), window.end() + 1);
        assert_eq!(
            Retention::slot(*later.end()),
            Retention::slot(*window.start()),
            "the new slice reuses the old slot"
        );
    }

    #[test]
    fn a_slice_takes_what_its_bounds_say_and_slices_tile_time() {
        let retention = Retention::new(4 * HOUR).unwrap();
        let (start, end) = retention.bounds(7).unwrap();
        assert_eq!((start, end), (7 * HOUR.as_nanos() as i64, 8 * HOUR.as_nanos() as i64));
        assert_eq!(retention.bounds(8).unwrap().0, end, "no gap and no overlap between slices");
        assert_eq!(retention.slice(), HOUR);
    }

    #[test]
    fn a_slice_beyond_the_range_of_timestamps_has_no_bounds() {
        let retention = Retention::new(4 * HOUR).unwrap();
        for slice in [i64::MAX, i64::MAX / 2, i64::MIN] {
            assert_eq!(retention.bounds(slice), None, "{slice}");
        }
    }

    #[test]
    fn a_retention_that_cannot_be_sliced_or_reaches_before_the_epoch_is_refused() {
        assert_eq!(Retention::new(Duration::from_nanos(3)), None);
        assert_eq!(Retention::new(Duration::from_secs(100 * 365 * 24 * 3600)), None);
        assert!(Retention::new(Duration::from_secs(30 * 24 * 3600)).is_some());
    }
}

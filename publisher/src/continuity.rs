//! Each partition is read without holes: a jump in its offsets is read again before it is believed.
//!
//! The records ingest writes (idempotent, not transactional, to a topic that is not compacted) take consecutive
//! offsets, so a fetch that jumps from offset `E` to `F > E + 1` has usually skipped records that are there. The
//! local broker (Tansu 0.6.0) does that: with several producers writing to one partition, a consumer at its tail can
//! be handed a batch before an earlier one is stored, and then never sees the earlier one (reproduced with plain
//! librdkafka clients, docs/benchmarks.md). Reading on would write the later records and record progress past the
//! skipped ones, which would then be lost for good. So the partition is moved back to `E` and read again. Only when
//! the same jump shows on [`LOOKS`] readings in a row is it taken as real (compaction, transaction markers, records
//! deleted), logged and counted.
//!
//! No upstream issue was found for Tansu's race (it raises a partition's high watermark before the batch is stored).
//! The re-reads can go when the Tansu that `scripts/install-broker.sh` pins stores a batch before its fetches can
//! pass it. On a broker without the race they cost only the re-reads of each real jump.
//!
//! What the partition was moved to by others (an assignment, a rewind to Deephaven's progress) is not a jump:
//! every such move bumps a counter ([`crate::resume::Shared::moved`]) and the expectations start over, from the
//! offset the partition was moved to when that is known ([`crate::resume::Shared::start_of`]; not for the earliest
//! retained record), so that a fetch that skips right after the move is read again too.

use std::collections::HashMap;

/// How many readings in a row must show the same jump before it is taken as real: the first sighting and two
/// re-reads, each at least a fetch after the last.
pub const LOOKS: u32 = 3;

/// What to do with a record just read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// It follows on from the records before it: take it.
    Take,
    /// Records were skipped before it: drop it and read the partition again from `from`.
    ReadAgainFrom(i64),
    /// The same jump was seen on [`LOOKS`] readings: the offsets `missing` hold nothing; take the record.
    TakeAcross { missing: std::ops::Range<i64> },
    /// Read before the partition was moved back for a re-read: drop it, the re-read brings it again.
    Stale,
}

#[derive(Debug)]
struct Partition {
    /// The offset the next record must have.
    next: i64,
    /// The first offset read after a jump, and how many readings have shown it so far.
    jump: Option<(i64, u32)>,
}

/// Per partition, where its next record must be.
#[derive(Debug, Default)]
pub struct Continuity {
    partitions: HashMap<i32, Partition>,
    /// The move count the expectations were formed under.
    moves: u64,
}

impl Continuity {
    /// Judges the record at `offset` of `partition`, read while the partitions' move count was `moves`; `start`
    /// tells where the partition was last moved to, if known, for its first record since.
    pub fn observe(&mut self, partition: i32, offset: i64, moves: u64, start: impl FnOnce() -> Option<i64>) -> Next {
        if moves != self.moves {
            self.partitions.clear();
            self.moves = moves;
        }
        let state = self
            .partitions
            .entry(partition)
            .or_insert_with(|| Partition { next: start().unwrap_or(offset), jump: None });
        let expected = state.next;
        match state.jump {
            _ if offset <= expected => {
                state.next = offset + 1;
                state.jump = None;
                Next::Take
            }
            Some((found, _)) if offset > found => Next::Stale,
            Some((found, looks)) if offset == found && looks + 1 >= LOOKS => {
                state.next = offset + 1;
                state.jump = None;
                Next::TakeAcross { missing: expected..offset }
            }
            Some((found, looks)) if offset == found => {
                state.jump = Some((found, looks + 1));
                Next::ReadAgainFrom(expected)
            }
            // A first jump, or a shorter one than before (part of the hole has filled).
            _ => {
                state.jump = Some((offset, 1));
                Next::ReadAgainFrom(expected)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observe_all(continuity: &mut Continuity, offsets: &[i64]) -> Vec<Next> {
        offsets.iter().map(|offset| continuity.observe(0, *offset, 0, || None)).collect()
    }

    #[test]
    fn consecutive_offsets_are_taken_from_wherever_the_partition_starts() {
        let mut continuity = Continuity::default();
        assert_eq!(observe_all(&mut continuity, &[40, 41, 42]), [Next::Take, Next::Take, Next::Take]);
        assert_eq!(continuity.observe(1, 7, 0, || None), Next::Take, "each partition on its own");
    }

    #[test]
    fn a_jump_is_read_again_and_a_filled_hole_carries_on() {
        let mut continuity = Continuity::default();
        let readings = observe_all(&mut continuity, &[10, 11, 15, 16, 17, 12, 13, 14, 15, 16]);
        assert_eq!(
            readings,
            [
                Next::Take,
                Next::Take,
                Next::ReadAgainFrom(12),
                Next::Stale,
                Next::Stale,
                Next::Take,
                Next::Take,
                Next::Take,
                Next::Take,
                Next::Take
            ]
        );
    }

    #[test]
    fn a_jump_seen_on_every_look_is_taken_as_real() {
        let mut continuity = Continuity::default();
        continuity.observe(0, 10, 0, || None);
        let mut readings = Vec::new();
        for _ in 0..LOOKS {
            readings.push(continuity.observe(0, 20, 0, || None));
        }
        assert_eq!(readings, [Next::ReadAgainFrom(11), Next::ReadAgainFrom(11), Next::TakeAcross { missing: 11..20 }]);
        assert_eq!(continuity.observe(0, 21, 0, || None), Next::Take);
    }

    #[test]
    fn a_hole_that_shrinks_counts_its_looks_again() {
        let mut continuity = Continuity::default();
        continuity.observe(0, 10, 0, || None);
        assert_eq!(continuity.observe(0, 20, 0, || None), Next::ReadAgainFrom(11));
        assert_eq!(continuity.observe(0, 20, 0, || None), Next::ReadAgainFrom(11));
        assert_eq!(continuity.observe(0, 15, 0, || None), Next::ReadAgainFrom(11), "11..15 still missing: a new jump");
        assert_eq!(continuity.observe(0, 15, 0, || None), Next::ReadAgainFrom(11));
        assert_eq!(continuity.observe(0, 15, 0, || None), Next::TakeAcross { missing: 11..15 });
    }

    #[test]
    fn a_move_by_the_group_or_a_rewind_is_not_a_jump() {
        let mut continuity = Continuity::default();
        continuity.observe(0, 10, 0, || None);
        assert_eq!(continuity.observe(0, 500, 1, || None), Next::Take, "assigned anew at another publisher's progress");
        assert_eq!(continuity.observe(0, 3, 1, || None), Next::Take, "an older record again: in order from there");
        assert_eq!(continuity.observe(0, 4, 1, || None), Next::Take);
    }

    #[test]
    fn the_first_record_after_a_move_to_a_known_offset_must_be_there() {
        let mut continuity = Continuity::default();
        continuity.observe(0, 10, 0, || None);
        assert_eq!(continuity.observe(0, 105, 1, || Some(100)), Next::ReadAgainFrom(100), "skipped at the move");
        assert_eq!(continuity.observe(0, 100, 1, || Some(100)), Next::Take);
        assert_eq!(continuity.observe(1, 7, 1, || Some(7)), Next::Take, "where it was moved to");
        assert_eq!(continuity.observe(2, 40, 1, || None), Next::Take, "moved to its earliest record: unknown");
    }
}

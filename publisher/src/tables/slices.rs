//! The slots' tables and the record of which slice of time each slot holds, kept in Deephaven's slices table so
//! that several publishers, and a publisher restarted, agree on it ([`crate::retention`] says which slices are due).

use crate::retention::{Retention, SLOTS};
use arrow::array::{AsArray, Int32Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampNanosecondType};
use deephaven_client::{Client, Error, InputTableKind};
use schemas::tables::TableNames;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The two tables of the slot holding one slice: its occurrences' states, and its events.
pub(super) fn slot_tables(names: &TableNames, slot: usize) -> [String; 2] {
    [format!("{}_slot{slot}_states", names.log), format!("{}_slot{slot}_events", names.log)]
}

/// Every slot's tables, states then events.
pub(super) fn all_slot_tables(names: &TableNames) -> impl Iterator<Item = String> + '_ {
    (0..SLOTS).flat_map(|slot| slot_tables(names, slot))
}

/// A slot's slice as recorded in Deephaven, with the range of time it was made for.
pub(super) struct RecordedSlice {
    pub(super) slice: i64,
    pub(super) bounds: (i64, i64),
}

/// Which slice each slot holds, as recorded in Deephaven.
pub(super) async fn recorded_slices(
    client: &Client,
    names: &TableNames,
) -> deephaven_client::Result<BTreeMap<usize, RecordedSlice>> {
    let mut recorded = BTreeMap::new();
    for batch in client.snapshot(&names.slices).await? {
        let long = |name| batch.column_by_name(name).and_then(|c| c.as_primitive_opt::<Int64Type>());
        let time = |name| batch.column_by_name(name).and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>());
        let slots = batch.column_by_name(SLOT).and_then(|c| c.as_primitive_opt::<Int32Type>());
        let (Some(slots), Some(slices), Some(from), Some(until)) =
            (slots, long(SLICE), time(RECEIVED_FROM), time(RECEIVED_UNTIL))
        else {
            return Err(Error::Protocol {
                operation: "read slices",
                message: format!("{} lacks its slot, slice or range columns", names.slices),
            });
        };
        for row in 0..batch.num_rows() {
            let slot = usize::try_from(slots.value(row)).map_err(|_| Error::Protocol {
                operation: "read slices",
                message: format!("{} holds a negative slot", names.slices),
            })?;
            let slice = RecordedSlice { slice: slices.value(row), bounds: (from.value(row), until.value(row)) };
            recorded.insert(slot, slice);
        }
    }
    Ok(recorded)
}

/// The slices table's columns: which slot, the slice it holds, and the range of time it takes (the states ranked
/// within it, the events received within it; for people reading it, and to tell a change of `deephaven.retention`).
/// The range keeps its first names, from when both were cut by `ReceivedAt`: renamed, a set made by an earlier build
/// would be made anew, and during a rolling update each build would make the other's anew in turn.
const SLOT: &str = "Slot";
const SLICE: &str = "Slice";
const RECEIVED_FROM: &str = "ReceivedFrom";
const RECEIVED_UNTIL: &str = "ReceivedUntil";

pub(super) fn slices_schema() -> SchemaRef {
    let time = |name| Field::new(name, DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false);
    Arc::new(Schema::new(vec![
        Field::new(SLOT, DataType::Int32, false),
        Field::new(SLICE, DataType::Int64, false),
        time(RECEIVED_FROM),
        time(RECEIVED_UNTIL),
    ]))
}

pub(super) fn slices_kind() -> InputTableKind {
    InputTableKind::keyed([SLOT])
}

/// The slices table's rows for `created` (slot, slice): the slot, the slice and the range of time it takes.
pub(super) fn rows(retention: &Retention, created: &[(usize, i64)]) -> RecordBatch {
    let bounds: Vec<(i64, i64)> = created.iter().map(|(_, slice)| retention.bounds_of_due(*slice)).collect();
    let time = |values: Vec<i64>| Arc::new(TimestampNanosecondArray::from(values).with_timezone("UTC"));
    let slots = created.iter().map(|(slot, _)| i32::try_from(*slot).expect("a handful of slots"));
    RecordBatch::try_new(
        slices_schema(),
        vec![
            Arc::new(Int32Array::from_iter_values(slots)),
            Arc::new(Int64Array::from_iter_values(created.iter().map(|(_, slice)| *slice))),
            time(bounds.iter().map(|(from, _)| *from).collect()),
            time(bounds.iter().map(|(_, until)| *until).collect()),
        ],
    )
    .expect("the slices' rows match their schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_tables_of_its_own() {
        let names = TableNames::with_prefix("p_");
        let slots: std::collections::BTreeSet<String> = all_slot_tables(&names).collect();
        assert_eq!(slots.len(), 2 * SLOTS);
        assert!(slots.iter().all(|name| name.starts_with(&names.log)), "internal, beside the log: {slots:?}");
    }
}

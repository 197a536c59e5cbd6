//! The table operations by which Deephaven derives every published table from the log: each slice's reductions,
//! what is derived from their merges (`alerts`, the episodes and their analytics, the counts over recent time
//! windows), and the progress. They only describe operations; [`super::Sink`] publishes them.

use deephaven_client::{Aggregate, Aggregation, Filter, Operation, SortKey};
use schemas::tables::{column, TableNames, ALERTS, ALERT_EPISODE_COLUMNS, ALERT_EPISODE_KEY, ALERT_EVENTS};
use schemas::Status;
use std::time::Duration;

/// The formula of the `RankedAt` column by which `alerts` picks an alert's current state among the states of one
/// occurrence (one `StartsAt`; a later occurrence always wins): a firing copy ranks at its `ReceivedAt`, a resolved
/// one `refire_grace` later. So "resolved" beats every firing copy received up to `refire_grace` after it (a
/// lagging HA peer's or a retried notification's late copy), while a firing copy received later still is a genuine
/// re-fire (Alertmanager resolved the alert when Prometheus went silent, and notifies it firing again with the same
/// `StartsAt` once Prometheus is back) and shows. Between copies of one state the one received last wins. Only our
/// own constants go into the formula.
pub fn rank_formula(refire_grace: Duration) -> String {
    let grace = i64::try_from(refire_grace.as_nanos()).unwrap_or(i64::MAX);
    let (received, status, resolved) = (column::RECEIVED_AT, column::STATUS, Status::Resolved.as_str());
    format!("{RANKED_AT} = epochNanos({received}) + ({status} == `{resolved}` ? {grace}L : 0L)")
}

/// `alert_episodes`' computed columns: a resolved episode's duration, an open one's age when read.
fn episode_formulas() -> Vec<String> {
    let (status, starts, ends) = (column::STATUS, column::STARTS_AT, column::ENDS_AT);
    let (resolved, firing) = (Status::Resolved.as_str(), Status::Firing.as_str());
    vec![
        format!(
            "{} = {status} == `{resolved}` ? diffSeconds({starts}, {ends}) : NULL_DOUBLE",
            column::DURATION_SECONDS
        ),
        format!("{} = {status} == `{firing}` ? diffSeconds({starts}, now()) : NULL_DOUBLE", column::AGE_SECONDS),
    ]
}

/// `alert_mttr`'s columns: how many resolved episodes a group has, and their durations' mean, median, 90th
/// percentile and maximum.
fn duration_statistics() -> Vec<Aggregation> {
    let of_duration = |output: &str| format!("{output}={}", column::DURATION_SECONDS);
    vec![
        Aggregation::Count("Episodes".to_owned()),
        Aggregation::columns(Aggregate::Avg, [of_duration("MeanSeconds")]),
        Aggregation::columns(Aggregate::Median, [of_duration("MedianSeconds")]),
        Aggregation::columns(Aggregate::Percentile(0.9), [of_duration("P90Seconds")]),
        Aggregation::columns(Aggregate::Max, [of_duration("MaxSeconds")]),
    ]
}

/// The rank column `alerts` sorts by; computed on the fly, never stored.
const RANKED_AT: &str = "RankedAt";

/// The clock's column: the server's time, as of its last step.
const NOW: &str = "Now";
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// The condition that time column `column` lies within `window` before the clock's `Now`. Only our own constants
/// go into it.
fn within(column: &str, window: Duration) -> String {
    format!("epochNanos({column}) >= epochNanos({NOW}) - {}L", window.as_nanos())
}

/// One window of a table over recent time: `output` counts, per `group_by` value, the rows whose time column
/// `column` lies within `window` before `Now`.
struct Window<'a> {
    output: &'a str,
    column: &'a str,
    window: Duration,
}

impl Window<'_> {
    /// The count as its own filter and aggregation. A step of the clock changes `Now` on every row, but the count
    /// reads none of the changed columns, so only the rows that cross the window's edge move it; a per-row flag
    /// computed from `Now` and summed would change, and be summed again, on every row at every step.
    fn count(&self, clock: &str, group_by: &[&str]) -> Vec<Operation> {
        let mut operations = recent(clock, self.column, self.window).to_vec();
        operations.push(Operation::count(self.output, group_by.iter().copied()));
        operations
    }
}

/// The two tables of a count over two windows, in the order they are published: `short_table` (internal), the
/// counts within the shorter window; then `table`, per `group_by` value with a row in the longer window, both
/// counts (0 where the shorter window has none), most first.
fn counts_within<'a>(
    clock: &str,
    source: &'a str,
    (short_table, short): (&'a str, Window<'_>),
    (table, long): (&'a str, Window<'_>),
    group_by: &[&str],
) -> [(&'a str, &'a str, Vec<Operation>); 2] {
    let mut counts = long.count(clock, group_by);
    let mut columns: Vec<String> = group_by.iter().map(|&key| key.to_owned()).collect();
    columns.extend([format!("{0} = replaceIfNull({0}, 0L)", short.output), long.output.to_owned()]);
    counts.extend([
        Operation::NaturalJoin {
            right: short_table.to_owned(),
            on: group_by.iter().map(|&key| key.to_owned()).collect(),
            add: vec![short.output.to_owned()],
        },
        Operation::View(columns),
        Operation::Sort(vec![SortKey::descending(short.output), SortKey::descending(long.output)]),
    ]);
    [(source, short_table, short.count(clock, group_by)), (source, table, counts)]
}

/// The operations that keep the rows whose `column` lies within `window` before `Now`, re-evaluated at every step
/// of the clock.
fn recent(clock: &str, column: &str, window: Duration) -> [Operation; 2] {
    [Operation::join_single_row(clock, [NOW]), Operation::Filter(Filter::expression(within(column, window)))]
}

/// How an occurrence's states reduce to its current one: the highest rank ([`rank_formula`]).
pub(super) fn occurrence_state() -> Operation {
    Operation::aggregate_all(Aggregate::sorted_last([RANKED_AT]), ALERT_EPISODE_KEY)
}

/// How the copies of an event reduce to one: the first received, then the first read.
pub(super) fn first_copy() -> Operation {
    Operation::aggregate_all(
        Aggregate::sorted_first([column::RECEIVED_AT, column::KAFKA_OFFSET]),
        ALERT_EVENTS.key_columns.to_vec(),
    )
}

/// The operations deriving a slice's two tables ([`slot_tables`]) from the log within `from..until` (Unix
/// nanoseconds), reduced per occurrence and per event. The states are cut by their rank ([`rank_formula`]), not by
/// when they were received: a resolved state ranks `refire_grace` after it, with the firing copies it beats, so
/// that no firing copy outlives (in a later slice) the resolved state that beat it; the alert would show firing
/// again once that state's slice left. The events are cut by `ReceivedAt`. A dead letter's position-only row has
/// no `ReceivedAt`, no rank, and passes no bound. Only our own constants go into the filters.
pub(super) fn slice_derivations((from, until): (i64, i64), refire_grace: Duration) -> [Vec<Operation>; 2] {
    let within =
        |nanos: &str| Operation::Filter(Filter::expression(format!("{nanos} >= {from}L && {nanos} < {until}L")));
    let received = format!("epochNanos({})", column::RECEIVED_AT);
    [
        vec![Operation::UpdateView(vec![rank_formula(refire_grace)]), within(RANKED_AT), occurrence_state()],
        vec![within(&received), first_copy()],
    ]
}

/// The progress: derived from the whole log (one row per partition), not from the slices, so the retention never
/// moves where the publisher resumes.
pub(super) fn progress() -> Vec<Operation> {
    vec![
        Operation::aggregate_all(
            Aggregate::sorted_last([column::TOPIC_INCARNATION, column::KAFKA_OFFSET]),
            vec![column::KAFKA_PARTITION.to_owned()],
        ),
        Operation::view([column::KAFKA_PARTITION, column::TOPIC_INCARNATION, column::KAFKA_OFFSET]),
    ]
}

/// The table operations that derive each published table from the merged slices (`states`, `alert_events`), in
/// the order they must be published.
pub(super) fn derivations(names: &TableNames) -> Vec<(&str, &str, Vec<Operation>)> {
    let alerts = vec![
        Operation::aggregate_all(Aggregate::sorted_last([column::STARTS_AT]), ALERTS.key_columns.to_vec()),
        Operation::view(ALERTS.column_names()),
    ];
    let episodes = vec![Operation::view(ALERT_EPISODE_COLUMNS), Operation::UpdateView(episode_formulas())];
    let resolved = || Operation::Filter(Filter::equals(column::STATUS, Status::Resolved.as_str()));
    let mttr = vec![resolved(), Operation::aggregate(duration_statistics(), [column::ALERT_NAME, column::SEVERITY])];
    let mut mttr_24h = vec![resolved()];
    mttr_24h.extend(recent(&names.clock, column::ENDS_AT, DAY));
    mttr_24h.push(Operation::aggregate(duration_statistics(), [column::ALERT_NAME, column::SEVERITY]));
    let noisiest = counts_within(
        &names.clock,
        &names.alert_events,
        (&names.noisiest_alerts_24h, Window { output: "StatesLast24h", column: column::RECEIVED_AT, window: DAY }),
        (&names.noisiest_alerts, Window { output: "StatesLast7d", column: column::RECEIVED_AT, window: WEEK }),
        &[column::ALERT_NAME],
    );
    // An episode starts with a firing transition, so counting the episodes that started counts the transitions.
    let flapping = counts_within(
        &names.clock,
        &names.alert_episodes,
        (&names.alert_flapping_1h, Window { output: "FiringsLastHour", column: column::STARTS_AT, window: HOUR }),
        (&names.alert_flapping, Window { output: "FiringsLast24h", column: column::STARTS_AT, window: DAY }),
        &[column::FINGERPRINT, column::ALERT_NAME, column::SEVERITY],
    );
    let firing = vec![Operation::Filter(Filter::equals(column::STATUS, Status::Firing.as_str()))];
    let firing_by = |key: &str| vec![Operation::count(column::FIRING, [key])];
    let mut derivations = vec![
        (names.states.as_str(), names.alerts.as_str(), alerts),
        (&names.states, &names.alert_episodes, episodes),
        (&names.alert_episodes, &names.alert_mttr, mttr),
        (&names.alerts, &names.alerts_firing, firing),
        (&names.alerts_firing, &names.alerts_firing_by_severity, firing_by(column::SEVERITY)),
        (&names.alerts_firing, &names.alerts_firing_by_name, firing_by(column::ALERT_NAME)),
        (&names.alert_episodes, &names.alert_mttr_24h, mttr_24h),
    ];
    derivations.extend(noisiest);
    derivations.extend(flapping);
    derivations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rank_formula_holds_only_our_constants() {
        assert_eq!(
            rank_formula(Duration::from_secs(60)),
            "RankedAt = epochNanos(ReceivedAt) + (Status == `resolved` ? 60000000000L : 0L)"
        );
    }

    #[test]
    fn the_episode_formulas_hold_only_our_constants() {
        assert_eq!(
            episode_formulas(),
            [
                "DurationSeconds = Status == `resolved` ? diffSeconds(StartsAt, EndsAt) : NULL_DOUBLE",
                "AgeSeconds = Status == `firing` ? diffSeconds(StartsAt, now()) : NULL_DOUBLE"
            ]
        );
    }

    #[test]
    fn the_window_formulas_hold_only_our_constants() {
        assert_eq!(within("ReceivedAt", DAY), "epochNanos(ReceivedAt) >= epochNanos(Now) - 86400000000000L");
    }

    #[test]
    fn nothing_after_a_window_filter_reads_the_clock() {
        // A step of the clock changes `Now` on every row: what comes after the filter must not read it, or every
        // row is computed and aggregated again at every step.
        let names = TableNames::with_prefix("p_");
        for (_, name, operations) in derivations(&names) {
            let reads_clock = |operation: &&Operation| format!("{operation:?}").contains(NOW);
            if let Some(last) = operations.iter().rev().find(reads_clock) {
                assert!(matches!(last, Operation::Filter(_)), "{name} reads the clock after its filter: {last:?}");
            }
        }
    }

    #[test]
    fn every_published_table_is_derived_from_the_set() {
        let names = TableNames::with_prefix("p_");
        let derivations = derivations(&names);
        // Published apart: the events' merge, and the progress from the whole log.
        let mut found: Vec<&str> = derivations.iter().map(|(_, name, _)| *name).collect();
        found.extend([names.alert_events.as_str(), names.progress.as_str()]);
        let mut expected = names.derived().to_vec();
        expected.extend([names.noisiest_alerts_24h.as_str(), &names.alert_flapping_1h]);
        expected.sort_unstable();
        found.sort_unstable();
        assert_eq!(found, expected);
        for (position, (source, name, operations)) in derivations.iter().enumerate() {
            let earlier = derivations[..position].iter().any(|(_, earlier, _)| earlier == source);
            assert!(
                *source == names.states || *source == names.alert_events || earlier,
                "{name}'s source {source} is published before it"
            );
            assert!(!operations.is_empty());
        }
    }

    #[test]
    fn a_slice_takes_the_states_ranked_and_the_events_received_within_its_bounds() {
        let [states, events] = slice_derivations((10, 20), Duration::from_secs(1));
        let bounded = |nanos: &str| Operation::Filter(Filter::expression(format!("{nanos} >= 10L && {nanos} < 20L")));
        assert_eq!(
            states[..2],
            [Operation::UpdateView(vec![rank_formula(Duration::from_secs(1))]), bounded(RANKED_AT)]
        );
        assert_eq!(events.first(), Some(&bounded("epochNanos(ReceivedAt)")));
    }
}

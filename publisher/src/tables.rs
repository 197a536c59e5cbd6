//! The Deephaven side: the one table the publisher writes, and the tables Deephaven derives from it.
//!
//! The publisher appends every record it reads, once, to an internal blink input table, the log ([`LOG`]), each row
//! carrying the record's Kafka position. Everything users read is derived from the log by Deephaven's own table
//! operations, kept live by the server and published read-only (they are not input tables, so nobody can add or
//! delete their rows):
//!
//! - per slice of time ([`crate::retention`]), the states received within it aggregated twice: per occurrence
//!   (`Fingerprint`, `StartsAt`) its state of highest precedence ([`rank_formula`]), and per `EventId` its first
//!   copy (by `ReceivedAt`, then `KafkaOffset`);
//! - the slices within the retention merged and aggregated the same way again: the internal `states`, and
//!   `alert_events`;
//! - `alerts`: per `Fingerprint`, the state of its latest occurrence; `alert_episodes`: every occurrence;
//! - `alerts_firing`: the rows of `alerts` that are firing;
//! - `publisher_offsets`: per `KafkaPartition`, the furthest position applied (by `TopicIncarnation`, then
//!   `KafkaOffset`): the progress, from the whole log, never cut by the retention;
//! - the analytics on top of those (episodes, durations, counts of what fires now), and the tables over recent
//!   time windows (`noisiest_alerts`, `alert_flapping`, `alert_mttr_24h`), which join an internal clock table so
//!   that rows leave a window as time passes, with nothing written.
//!
//! Every derived table is an order-independent function of the set of rows appended whose `ReceivedAt` lies in a
//! slice still kept (first/last by explicit sort columns, max), so rows appended twice, or out of order by several
//! publishers, change nothing (a row whose slice has already left is dropped), and the progress lives in the same
//! rows as the data, so it can never claim more than Deephaven holds. A blink log keeps
//! no rows itself: the aggregations keep one row per key, so Deephaven's memory grows with the distinct alert
//! states received within the retention, not with records. When a slice leaves, the merges are published anew
//! without it ([`Sink::keep_retention`]). The price: the derived tables must exist before the first row is
//! appended, so when any of them is missing the whole set is created again and the topic replayed (see
//! [`Sink::open`]).

use crate::configuration::DeephavenSettings;
use crate::retention::{Retention, SLOTS};
use arrow::array::{AsArray, Int32Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampNanosecondType};
use deephaven_client::{
    Aggregate, Aggregation, Auth, Client, ClientConfig, Error, Filter, InputTable, InputTableKind, Operation, SortKey,
    TlsConfig,
};
use schemas::tables::{
    column, Applied, TableNames, ALERTS, ALERT_EPISODE_COLUMNS, ALERT_EPISODE_KEY, ALERT_EVENTS, LOG,
};
use schemas::{Status, Timestamp};
use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
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

/// The two tables of the slot holding one slice: its occurrences' states, and its events.
fn slot_tables(names: &TableNames, slot: usize) -> [String; 2] {
    [format!("{}_slot{slot}_states", names.log), format!("{}_slot{slot}_events", names.log)]
}

/// Every slot's tables, states then events.
fn all_slot_tables(names: &TableNames) -> impl Iterator<Item = String> + '_ {
    (0..SLOTS).flat_map(|slot| slot_tables(names, slot))
}

/// How an occurrence's states reduce to its current one: the highest rank ([`rank_formula`]).
fn occurrence_state() -> Operation {
    Operation::aggregate_all(Aggregate::sorted_last([RANKED_AT]), ALERT_EPISODE_KEY)
}

/// How the copies of an event reduce to one: the first received, then the first read.
fn first_copy() -> Operation {
    Operation::aggregate_all(
        Aggregate::sorted_first([column::RECEIVED_AT, column::KAFKA_OFFSET]),
        ALERT_EVENTS.key_columns.to_vec(),
    )
}

/// The operations deriving a slice's two tables ([`slot_tables`]) from the log: the states it received within
/// `from..until` (Unix nanoseconds; a dead letter's position-only row has no `ReceivedAt` and passes no bound),
/// reduced per occurrence and per event. Only our own constants go into the filter.
fn slice_derivations((from, until): (i64, i64), refire_grace: Duration) -> [Vec<Operation>; 2] {
    let received = column::RECEIVED_AT;
    let within = || {
        Operation::Filter(Filter::expression(format!(
            "epochNanos({received}) >= {from}L && epochNanos({received}) < {until}L"
        )))
    };
    [
        vec![within(), Operation::UpdateView(vec![rank_formula(refire_grace)]), occurrence_state()],
        vec![within(), first_copy()],
    ]
}

/// The progress: derived from the whole log (one row per partition), not from the slices, so the retention never
/// moves where the publisher resumes.
fn progress() -> Vec<Operation> {
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
fn derivations(names: &TableNames) -> Vec<(&str, &str, Vec<Operation>)> {
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

/// The login the settings ask for (validated: at most one kind is configured).
fn auth(settings: &DeephavenSettings) -> Auth {
    match (&settings.psk, &settings.user, &settings.password) {
        (Some(psk), _, _) => Auth::psk(psk.expose_secret()),
        (None, Some(user), Some(password)) => Auth::basic(user.clone(), password.expose_secret()),
        _ => Auth::Anonymous,
    }
}

/// TLS beyond the defaults of an `https` URL, if any is set.
fn tls(settings: &DeephavenSettings) -> Option<TlsConfig> {
    let tls = &settings.tls;
    if tls.ca_pem.is_none() && tls.server_name.is_none() {
        return None;
    }
    let mut config = TlsConfig::default();
    if let Some(pem) = &tls.ca_pem {
        config = config.with_ca_certificate_pem(pem.clone());
    }
    if let Some(name) = &tls.server_name {
        config = config.with_domain_name(name.clone());
    }
    Some(config)
}

/// One Deephaven session with the log and its derived tables in place.
pub struct Sink {
    client: Client,
    names: TableNames,
    log: InputTable,
    flush: InputTable,
    /// This publisher's row in the flush table.
    flush_row: RecordBatch,
    /// Which slot holds which slice, as Deephaven records it: read again whenever the slices due change, since
    /// another publisher may have moved them on.
    slices: InputTable,
    retention: Retention,
    refire_grace: Duration,
    /// The slices the published merges cover as far as this session knows: while they are still the ones due,
    /// there is nothing to do.
    covered: Mutex<Option<RangeInclusive<i64>>>,
}

impl Sink {
    /// Connects and makes sure the log and every derived table exist. If any is missing (a Deephaven restarted
    /// empty, a table deleted by hand, a first start), or with `recreate` (a replay), the whole set is created anew
    /// and empty, so the progress reads empty and the topic is replayed from its earliest record.
    pub async fn open(settings: &DeephavenSettings, recreate: bool) -> deephaven_client::Result<Sink> {
        let mut config = ClientConfig::new(settings.url.clone())
            .with_auth(auth(settings))
            .with_request_timeout(settings.request_timeout);
        if let Some(tls) = tls(settings) {
            config = config.with_tls(tls);
        }
        let client = Client::connect(config).await?;
        let names = TableNames::with_prefix(&settings.table_prefix);
        let flush_row = flush_row(&publisher_id());
        let retention = Retention::new(settings.retention).expect("the settings validated the retention");
        let intact = !recreate && is_intact(&client, &names, flush_row.schema(), &retention).await?;
        let (log, flush, slices) = if intact {
            (
                InputTable::new(&names.log, LOG.schema(), InputTableKind::Blink),
                InputTable::new(&names.flush, flush_row.schema(), flush_kind()),
                InputTable::new(&names.slices, slices_schema(), slices_kind()),
            )
        } else {
            tracing::info!(log = %names.log, recreate, "creating the log and its derived tables");
            let log = client.create_input_table(&names.log, LOG.schema(), InputTableKind::Blink).await?;
            let flush = client.create_input_table(&names.flush, flush_row.schema(), flush_kind()).await?;
            let slices = client.create_input_table(&names.slices, slices_schema(), slices_kind()).await?;
            client.publish_clock(&names.clock, settings.window_step).await?;
            client.publish_derived(&names.log, &progress(), &names.progress).await?;
            (log, flush, slices)
        };
        let sink = Sink {
            client,
            names,
            log,
            flush,
            flush_row,
            slices,
            retention,
            refire_grace: settings.refire_grace,
            covered: Mutex::new(None),
        };
        // A new set has no slices yet: they are all created here, before the first row is appended.
        sink.keep_retention(Timestamp::now()).await?;
        Ok(sink)
    }

    pub fn names(&self) -> &TableNames {
        &self.names
    }

    /// Ends the session (a replaced or final one); a failure only means the server ends it when it expires.
    pub async fn close(&self) {
        if let Err(err) = self.client.close().await {
            tracing::debug!(error = %err, "closing the Deephaven session failed; it expires on its own");
        }
    }

    /// Makes the slices due at `now` exist and the published tables merge exactly those: a slice that left the
    /// retention gives its slot to the next one, and the merges and every table derived from them are published
    /// anew (users' views of them are replaced). Cheap while the slices due are the ones already covered; called
    /// at every check, so the next slice always exists before its first state can arrive.
    pub async fn keep_retention(&self, now: Timestamp) -> deephaven_client::Result<()> {
        let due = self.retention.window(now);
        if self.covered.lock().expect("never poisoned").as_ref() == Some(&due) {
            return Ok(());
        }
        let recorded = recorded_slices(&self.client, &self.names).await?;
        let mut created = Vec::new();
        for slice in due.clone() {
            let slot = Retention::slot(slice);
            if recorded.get(&slot).map(|recorded| recorded.slice) == Some(slice) {
                continue;
            }
            let derivations = slice_derivations(self.retention.bounds(slice), self.refire_grace);
            for (name, operations) in slot_tables(&self.names, slot).iter().zip(derivations) {
                self.client.publish_derived(&self.names.log, &operations, name).await?;
            }
            created.push((slot, slice));
        }
        // Recorded last: a publisher stopped half-way leaves the slots unrecorded, so the next one does it all again.
        if !created.is_empty() {
            self.publish_merges().await?;
            self.client.append(&self.slices, self.slices_rows(&created)).await?;
            tracing::info!(?due, ?created, "retention: slices created (slot, slice) and the tables merged anew");
        }
        *self.covered.lock().expect("never poisoned") = Some(due);
        Ok(())
    }

    /// Publishes the merges of every slot's tables and everything derived from them.
    async fn publish_merges(&self) -> deephaven_client::Result<()> {
        let names = &self.names;
        let slots: Vec<[String; 2]> = (0..SLOTS).map(|slot| slot_tables(names, slot)).collect();
        let of = |table: usize| slots.iter().map(|pair| pair[table].as_str()).collect::<Vec<_>>();
        self.client.publish_merged(&of(0), &[occurrence_state()], &names.states).await?;
        let events = [first_copy(), Operation::view(ALERT_EVENTS.column_names())];
        self.client.publish_merged(&of(1), &events, &names.alert_events).await?;
        for (source, name, operations) in derivations(names) {
            self.client.publish_derived(source, &operations, name).await?;
        }
        Ok(())
    }

    /// The slices table's rows for `created` (slot, slice): the slot, the slice and the `ReceivedAt` range it takes.
    fn slices_rows(&self, created: &[(usize, i64)]) -> RecordBatch {
        let bounds: Vec<(i64, i64)> = created.iter().map(|(_, slice)| self.retention.bounds(*slice)).collect();
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

    /// A table of the set that has left the query scope (deleted by hand; a restarted server loses the session
    /// too), if any. Fails when the session is gone.
    pub async fn missing_table(&self) -> deephaven_client::Result<Option<String>> {
        for name in all_tables(&self.names) {
            if !self.client.scope_table_exists(&name).await? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// The furthest position applied per partition, as the derived progress table holds it.
    pub async fn progress(&self) -> deephaven_client::Result<BTreeMap<i32, Applied>> {
        let mut progress = BTreeMap::new();
        for batch in self.client.snapshot(&self.names.progress).await? {
            let int32 = |name| batch.column_by_name(name).and_then(|c| c.as_primitive_opt::<Int32Type>());
            let offsets = batch.column_by_name(column::KAFKA_OFFSET).and_then(|c| c.as_primitive_opt::<Int64Type>());
            let (Some(partitions), Some(incarnations), Some(offsets)) =
                (int32(column::KAFKA_PARTITION), int32(column::TOPIC_INCARNATION), offsets)
            else {
                return Err(Error::Protocol {
                    operation: "read progress",
                    message: format!("{} lacks its partition, incarnation or offset column", self.names.progress),
                });
            };
            for row in 0..batch.num_rows() {
                let applied = Applied { incarnation: incarnations.value(row), offset: offsets.value(row) };
                progress.insert(partitions.value(row), applied);
            }
        }
        Ok(progress)
    }

    /// Appends `rows` (of [`LOG`]'s schema: one per record read, a position-only one per dead letter) to the log,
    /// then touches this publisher's flush row: that write makes the server run an update cycle before it returns,
    /// which applies the log's rows too (a blink append alone would wait for the next periodic cycle), so the rows
    /// are visible in every derived table when this returns.
    pub async fn write(&self, rows: RecordBatch) -> deephaven_client::Result<()> {
        self.client.append(&self.log, rows).await?;
        self.client.append(&self.flush, self.flush_row.clone()).await
    }
}

/// Every table of the set, the log first.
fn all_tables(names: &TableNames) -> impl Iterator<Item = String> + '_ {
    [names.log.as_str(), &names.flush, &names.slices, &names.clock, &names.states]
        .into_iter()
        .chain([names.noisiest_alerts_24h.as_str(), &names.alert_flapping_1h])
        .chain(names.derived())
        .map(|name| name.to_owned())
        .chain(all_slot_tables(names))
}

/// A slot's slice as recorded in Deephaven, with the `ReceivedAt` range it was made for.
struct RecordedSlice {
    slice: i64,
    bounds: (i64, i64),
}

/// Which slice each slot holds, as recorded in Deephaven.
async fn recorded_slices(
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

/// Whether every table of the set exists, the input tables have the columns this build writes, and the slices
/// were cut for this `retention`: slices of another length (the setting changed) would leave gaps and overlaps,
/// so such a set is made anew and the topic replayed into it.
async fn is_intact(
    client: &Client,
    names: &TableNames,
    flush_schema: SchemaRef,
    retention: &Retention,
) -> deephaven_client::Result<bool> {
    for name in all_tables(names) {
        if !client.scope_table_exists(&name).await? {
            tracing::info!(table = name, "table missing");
            return Ok(false);
        }
    }
    for (name, schema, kind) in [
        (&names.log, LOG.schema(), InputTableKind::Blink),
        (&names.flush, flush_schema, flush_kind()),
        (&names.slices, slices_schema(), slices_kind()),
    ] {
        match client.ensure_input_table(name, schema, kind).await {
            Ok(_) => {}
            Err(Error::SchemaMismatch { table, differences }) => {
                tracing::warn!(table, ?differences, "the table is not what this build writes; recreating the set");
                return Ok(false);
            }
            Err(err) => return Err(err),
        }
    }
    let recorded = recorded_slices(client, names).await?;
    if recorded.values().any(|recorded| retention.bounds(recorded.slice) != recorded.bounds) {
        tracing::warn!(
            table = %names.slices,
            "the tables were made for another deephaven.retention; recreating the set and replaying the topic"
        );
        return Ok(false);
    }
    Ok(true)
}

/// The slices table's columns: which slot, the slice it holds, and the `ReceivedAt` range that slice takes (for
/// people reading it, and to tell a change of `deephaven.retention`).
const SLOT: &str = "Slot";
const SLICE: &str = "Slice";
const RECEIVED_FROM: &str = "ReceivedFrom";
const RECEIVED_UNTIL: &str = "ReceivedUntil";

fn slices_schema() -> SchemaRef {
    let time = |name| Field::new(name, DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false);
    Arc::new(Schema::new(vec![
        Field::new(SLOT, DataType::Int32, false),
        Field::new(SLICE, DataType::Int64, false),
        time(RECEIVED_FROM),
        time(RECEIVED_UNTIL),
    ]))
}

fn slices_kind() -> InputTableKind {
    InputTableKind::keyed([SLOT])
}

fn flush_kind() -> InputTableKind {
    InputTableKind::keyed(["Publisher"])
}

/// This process among the publishers sharing the tables: the host (a pod's name on Kubernetes) and the process id.
fn publisher_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "publisher".to_owned());
    format!("{host}-{}", std::process::id())
}

/// The flush table's row of this publisher: its id and when it connected.
fn flush_row(publisher: &str) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("Publisher", DataType::Utf8, false),
        Field::new("ConnectedAt", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
    ]));
    let connected = TimestampNanosecondArray::from(vec![Timestamp::now().unix_nanos()]).with_timezone("UTC");
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![publisher])), Arc::new(connected)])
        .expect("the flush row matches its schema")
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
    fn a_slice_takes_only_the_states_received_within_its_bounds() {
        let [states, events] = slice_derivations((10, 20), Duration::from_secs(1));
        let bounded = Operation::Filter(Filter::expression(
            "epochNanos(ReceivedAt) >= 10L && epochNanos(ReceivedAt) < 20L".to_owned(),
        ));
        assert_eq!(states.first(), Some(&bounded));
        assert_eq!(events.first(), Some(&bounded));
    }

    #[test]
    fn every_slot_has_tables_of_its_own() {
        let names = TableNames::with_prefix("p_");
        let slots: std::collections::BTreeSet<String> = all_slot_tables(&names).collect();
        assert_eq!(slots.len(), 2 * SLOTS);
        assert!(slots.iter().all(|name| name.starts_with(&names.log)), "internal, beside the log: {slots:?}");
    }
}

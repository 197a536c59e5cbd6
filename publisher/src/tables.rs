//! The Deephaven side: the one table the publisher writes, and the tables Deephaven derives from it.
//!
//! The publisher appends every record it reads, once, to an internal blink input table, the log ([`LOG`]), each row
//! carrying the record's Kafka position. Everything users read is derived from the log by Deephaven's own table
//! operations, kept live by the server and published read-only (they are not input tables, so nobody can add or
//! delete their rows):
//!
//! - `alert_events`: per `EventId`, its first copy (by `ReceivedAt`, then `KafkaOffset`);
//! - `alerts`: per `Fingerprint`, the state of highest precedence ([`rank_formula`]);
//! - `alerts_firing`: the rows of `alerts` that are firing;
//! - `publisher_offsets`: per `KafkaPartition`, the furthest position applied (by `TopicIncarnation`, then
//!   `KafkaOffset`): the progress;
//! - the analytics on top of those (episodes, durations, counts of what fires now), and the tables over recent
//!   time windows (`noisiest_alerts`, `alert_flapping`, `alert_mttr_24h`), which join an internal clock table so
//!   that rows leave a window as time passes, with nothing written.
//!
//! Every derived table is an order-independent function of the set of rows ever appended (first/last by explicit
//! sort columns, max), so rows appended twice, late, or out of order by several publishers change nothing, and the
//! progress lives in the same rows as the data, so it can never claim more than Deephaven holds. A blink log keeps
//! no rows itself: the aggregations keep one row per key, so Deephaven's memory grows with distinct alert states,
//! not with records. The price: the derived tables must exist before the first row is appended, so when any of
//! them is missing the whole set is created again and the topic replayed (see [`Sink::open`]).

use crate::configuration::DeephavenSettings;
use arrow::array::{AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
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
use std::sync::Arc;
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

/// A column `output` that is 1 where `column` lies within `window` before `Now`, else 0: summed, a count.
fn flag_within(output: &str, column: &str, window: Duration) -> String {
    format!("{output} = {} ? 1 : 0", within(column, window))
}

/// Per `group_by` value, how many rows have time column `column` within the shorter and within the longer window
/// before `Now` (each into the column named beside it), most first.
fn counts_within(
    clock: &str,
    column: &str,
    [(short, short_window), (long, long_window)]: [(&str, Duration); 2],
    group_by: &[&str],
) -> Vec<Operation> {
    let flag = format!("In{short}");
    let mut operations = recent(clock, column, long_window).to_vec();
    operations.extend([
        Operation::UpdateView(vec![flag_within(&flag, column, short_window)]),
        Operation::aggregate(
            vec![
                Aggregation::columns(Aggregate::Sum, [format!("{short}={flag}")]),
                Aggregation::Count(long.to_owned()),
            ],
            group_by.iter().copied(),
        ),
        Operation::Sort(vec![SortKey::descending(short), SortKey::descending(long)]),
    ]);
    operations
}

/// The operations that keep the rows whose `column` lies within `window` before `Now`, re-evaluated at every step
/// of the clock.
fn recent(clock: &str, column: &str, window: Duration) -> [Operation; 2] {
    [Operation::join_single_row(clock, [NOW]), Operation::Filter(Filter::expression(within(column, window)))]
}

/// The table operations that derive each published table.
fn derivations(names: &TableNames, refire_grace: Duration) -> [(&str, &str, Vec<Operation>); 11] {
    let states = || Operation::Filter(Filter::expression(format!("!isNull({})", column::EVENT_ID)));
    let alerts = vec![
        states(),
        Operation::UpdateView(vec![rank_formula(refire_grace)]),
        Operation::aggregate_all(Aggregate::sorted_last([column::STARTS_AT, RANKED_AT]), ALERTS.key_columns.to_vec()),
        Operation::view(ALERTS.column_names()),
    ];
    let alert_events = vec![
        states(),
        Operation::aggregate_all(
            Aggregate::sorted_first([column::RECEIVED_AT, column::KAFKA_OFFSET]),
            ALERT_EVENTS.key_columns.to_vec(),
        ),
        Operation::view(ALERT_EVENTS.column_names()),
    ];
    let progress = vec![
        Operation::aggregate_all(
            Aggregate::sorted_last([column::TOPIC_INCARNATION, column::KAFKA_OFFSET]),
            vec![column::KAFKA_PARTITION.to_owned()],
        ),
        Operation::view([column::KAFKA_PARTITION, column::TOPIC_INCARNATION, column::KAFKA_OFFSET]),
    ];
    // Each occurrence ranked like `alerts` ranks an alert's states, so a late copy does not reopen it.
    let episodes = vec![
        states(),
        Operation::UpdateView(vec![rank_formula(refire_grace)]),
        Operation::aggregate_all(Aggregate::sorted_last([RANKED_AT]), ALERT_EPISODE_KEY),
        Operation::view(ALERT_EPISODE_COLUMNS),
        Operation::UpdateView(episode_formulas()),
    ];
    let resolved = || Operation::Filter(Filter::equals(column::STATUS, Status::Resolved.as_str()));
    let mttr = vec![resolved(), Operation::aggregate(duration_statistics(), [column::ALERT_NAME, column::SEVERITY])];
    let mut mttr_24h = vec![resolved()];
    mttr_24h.extend(recent(&names.clock, column::ENDS_AT, DAY));
    mttr_24h.push(Operation::aggregate(duration_statistics(), [column::ALERT_NAME, column::SEVERITY]));
    let noisiest = counts_within(
        &names.clock,
        column::RECEIVED_AT,
        [("StatesLast24h", DAY), ("StatesLast7d", WEEK)],
        &[column::ALERT_NAME],
    );
    // An episode starts with a firing transition, so counting the episodes that started counts the transitions.
    let flapping = counts_within(
        &names.clock,
        column::STARTS_AT,
        [("FiringsLastHour", HOUR), ("FiringsLast24h", DAY)],
        &[column::FINGERPRINT, column::ALERT_NAME, column::SEVERITY],
    );
    let firing = vec![Operation::Filter(Filter::equals(column::STATUS, Status::Firing.as_str()))];
    let firing_by = |key: &str| vec![Operation::count(column::FIRING, [key])];
    [
        (&names.log, &names.alerts, alerts),
        (&names.log, &names.alert_events, alert_events),
        (&names.log, &names.progress, progress),
        (&names.log, &names.alert_episodes, episodes),
        (&names.alert_episodes, &names.alert_mttr, mttr),
        (&names.alerts, &names.alerts_firing, firing),
        (&names.alerts_firing, &names.alerts_firing_by_severity, firing_by(column::SEVERITY)),
        (&names.alerts_firing, &names.alerts_firing_by_name, firing_by(column::ALERT_NAME)),
        (&names.alert_events, &names.noisiest_alerts, noisiest),
        (&names.alert_episodes, &names.alert_flapping, flapping),
        (&names.alert_episodes, &names.alert_mttr_24h, mttr_24h),
    ]
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
        let intact = !recreate && is_intact(&client, &names, flush_row.schema()).await?;
        let (log, flush) = if intact {
            let log = InputTable::new(&names.log, LOG.schema(), InputTableKind::Blink);
            (log, InputTable::new(&names.flush, flush_row.schema(), flush_kind()))
        } else {
            tracing::info!(log = %names.log, recreate, "creating the log and its derived tables");
            let log = client.create_input_table(&names.log, LOG.schema(), InputTableKind::Blink).await?;
            let flush = client.create_input_table(&names.flush, flush_row.schema(), flush_kind()).await?;
            client.publish_clock(&names.clock, settings.window_step).await?;
            for (source, name, operations) in derivations(&names, settings.refire_grace) {
                client.publish_derived(source, &operations, name).await?;
            }
            (log, flush)
        };
        Ok(Sink { client, names, log, flush, flush_row })
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

    /// A table of the set that has left the query scope (deleted by hand; a restarted server loses the session
    /// too), if any. Fails when the session is gone.
    pub async fn missing_table(&self) -> deephaven_client::Result<Option<&str>> {
        for name in all_tables(&self.names) {
            if !self.client.scope_table_exists(name).await? {
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

    /// Appends `rows` (of [`LOG`]'s schema: one per record read, a position-only one per dead letter) to the log, then touches this publisher's flush row: that write makes the
    /// server run an update cycle before it returns, which applies the log's rows too (a blink append alone would
    /// wait for the next periodic cycle), so the rows are visible in every derived table when this returns.
    pub async fn write(&self, rows: RecordBatch) -> deephaven_client::Result<()> {
        self.client.append(&self.log, rows).await?;
        self.client.append(&self.flush, self.flush_row.clone()).await
    }
}

/// Every table of the set, the log first.
fn all_tables(names: &TableNames) -> impl Iterator<Item = &str> {
    [names.log.as_str(), names.flush.as_str(), names.clock.as_str()].into_iter().chain(names.derived())
}

/// Whether every table of the set exists and the log and flush table have the columns this build writes.
async fn is_intact(client: &Client, names: &TableNames, flush_schema: SchemaRef) -> deephaven_client::Result<bool> {
    for name in all_tables(names) {
        if !client.scope_table_exists(name).await? {
            tracing::info!(table = name, "table missing");
            return Ok(false);
        }
    }
    for (name, schema, kind) in
        [(&names.log, LOG.schema(), InputTableKind::Blink), (&names.flush, flush_schema, flush_kind())]
    {
        match client.ensure_input_table(name, schema, kind).await {
            Ok(_) => {}
            Err(Error::SchemaMismatch { table, differences }) => {
                tracing::warn!(table, ?differences, "the table is not what this build writes; recreating the set");
                return Ok(false);
            }
            Err(err) => return Err(err),
        }
    }
    Ok(true)
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
        assert_eq!(
            flag_within("InLastHour", "StartsAt", HOUR),
            "InLastHour = epochNanos(StartsAt) >= epochNanos(Now) - 3600000000000L ? 1 : 0"
        );
    }

    #[test]
    fn every_derived_table_is_derived_from_the_set() {
        let names = TableNames::with_prefix("p_");
        let derived: Vec<&str> = derivations(&names, Duration::from_secs(1)).iter().map(|(_, name, _)| *name).collect();
        let mut expected = names.derived().to_vec();
        let mut found = derived.clone();
        expected.sort_unstable();
        found.sort_unstable();
        assert_eq!(found, expected);
        for (source, _, operations) in derivations(&names, Duration::from_secs(1)) {
            assert!(source == names.log || derived.contains(&source), "{source} is part of the set");
            assert!(!operations.is_empty());
        }
    }
}

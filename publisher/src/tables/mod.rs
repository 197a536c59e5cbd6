//! The Deephaven side: the one table the publisher writes, and the tables Deephaven derives from it.
//!
//! The publisher appends every record it reads, once, to an internal blink input table, the log ([`LOG`]), each row
//! carrying the record's Kafka position. Everything users read is derived from the log by Deephaven's own table
//! operations, kept live by the server and published read-only (they are not input tables, so nobody can add or
//! delete their rows):
//!
//! - per slice of time ([`crate::retention`]), the states ranked within it ([`rank_formula`]) aggregated per
//!   occurrence (`Fingerprint`, `StartsAt`) to its state of highest precedence, and the states received within it
//!   per `EventId` to its first copy (by `ReceivedAt`, then `KafkaOffset`);
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
//! Every derived table is an order-independent function of the set of rows appended whose `ReceivedAt` (for the
//! states, their rank) lies in a slice still kept (first/last by explicit sort columns, max), so rows appended twice,
//! or out of order by several publishers, change nothing (a row whose slice has already left is dropped), and the
//! progress lives in the same rows as the data, so it can never claim more than Deephaven holds. A blink log keeps
//! no rows itself: the aggregations keep one row per key, so Deephaven's memory grows with the distinct alert
//! states received within the retention, not with records. When a slice leaves, the merges are published anew
//! without it ([`Sink::keep_retention`]). The price: the derived tables must exist before the first row is
//! appended, so when any of them is missing the whole set is created again and the topic replayed (see
//! [`Sink::open`]).

use crate::configuration::DeephavenSettings;
use crate::retention::{Retention, SLOTS};
use arrow::array::{AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
use claim::{Claim, Turn};
use deephaven_client::{Auth, Client, ClientConfig, Error, InputTable, InputTableKind, Operation, TlsConfig};
use derivations::{derivations, first_copy, occurrence_state, progress, slice_derivations};
use schemas::tables::{column, Applied, TableNames, ALERT_EVENTS, LOG};
use schemas::Timestamp;
use secrecy::ExposeSecret;
use slices::{all_slot_tables, recorded_slices, slices_kind, slices_schema, slot_tables};
use std::collections::BTreeMap;
use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod claim;
mod derivations;
mod slices;

pub use derivations::rank_formula;

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
    /// Held while the slices are moved on: the writes and the checks both may find them due.
    moving_slices: tokio::sync::Mutex<()>,
}

impl Sink {
    /// Connects and makes sure the log and every derived table exist. If any is missing (a Deephaven restarted
    /// empty, a table deleted by hand, a first start), or with `recreate` (a replay), the whole set is created anew
    /// and empty, so the progress reads empty and the topic is replayed from its earliest record. One publisher at
    /// a time makes a set (`tables/claim.rs`): one that finds another making it waits for that set and opens it.
    pub async fn open(settings: &DeephavenSettings, recreate: bool) -> deephaven_client::Result<Sink> {
        let opened = Self::open_until(settings, recreate, std::future::pending()).await?;
        Ok(opened.expect("a pending stop never comes"))
    }

    /// [`Sink::open`], given up when `stop` completes (the publisher is stopping) while it waits for another
    /// publisher's set, which can take long: `None` then. A making of its own under way is finished, and its claim
    /// removed: a set left half made would have the next publisher make it again and replay the topic, and a call
    /// cut off could still land in the set that one makes. A session not returned in a [`Sink`] is ended, rather
    /// than left to expire holding the tables it pinned.
    pub async fn open_until(
        settings: &DeephavenSettings,
        recreate: bool,
        stop: impl Future<Output = ()>,
    ) -> deephaven_client::Result<Option<Sink>> {
        let mut config = ClientConfig::new(settings.url.clone())
            .with_auth(auth(settings))
            .with_request_timeout(settings.request_timeout);
        if let Some(tls) = tls(settings) {
            config = config.with_tls(tls);
        }
        let client = Client::connect(config).await?;
        let opened = Self::set_up(client.clone(), settings, recreate, stop).await;
        if !matches!(opened, Ok(Some(_))) {
            close(&client).await;
        }
        opened
    }

    /// [`Sink::open_until`] once logged in: the set found intact, or made anew under this publisher's claim, and
    /// pinned; `None` when `stop` came while it waited for another publisher's set.
    async fn set_up(
        client: Client,
        settings: &DeephavenSettings,
        recreate: bool,
        stop: impl Future<Output = ()>,
    ) -> deephaven_client::Result<Option<Sink>> {
        let names = TableNames::with_prefix(&settings.table_prefix);
        let flush_row = flush_row(&publisher_id());
        let retention = Retention::new(settings.retention).expect("the settings validated the retention");
        let intact = || is_intact(&client, &names, flush_row.schema(), &retention);
        // Claimed is read again after the intact check (many calls): a claim written meanwhile makes it stale.
        let unclaimed = || async { claim::is_claimed(&client, &names).await.map(|claimed| !claimed) };
        let turn = if !recreate && unclaimed().await? && intact().await? && unclaimed().await? {
            Turn::Open
        } else {
            claim::take_turn(&client, &names, &publisher_id(), recreate, settings.request_timeout, intact, stop).await?
        };
        let claim = match turn {
            Turn::Make(claim) => claim,
            Turn::Open => return Self::pin(client, settings, names, flush_row, retention, None).await.map(Some),
            Turn::Stopped => return Ok(None),
        };
        tracing::info!(log = %names.log, recreate, "creating the log and its derived tables");
        let made = Self::pin(client.clone(), settings, names, flush_row, retention, Some(&claim)).await;
        if let Err(err) = claim.release(&client, made.is_ok()).await {
            tracing::warn!(error = %err, "releasing the claim to make the set failed; others take it over once it is stale");
        }
        made.map(Some)
    }

    /// Pins the set's input tables, making the whole set first under `claim`, and makes the slices due exist.
    async fn pin(
        client: Client,
        settings: &DeephavenSettings,
        names: TableNames,
        flush_row: RecordBatch,
        retention: Retention,
        claim: Option<&Claim>,
    ) -> deephaven_client::Result<Sink> {
        let (log, flush, slices) = if claim.is_some() {
            let log = client.create_input_table(&names.log, LOG.schema(), InputTableKind::Blink).await?;
            let flush = client.create_input_table(&names.flush, flush_row.schema(), flush_kind()).await?;
            let slices = client.create_input_table(&names.slices, slices_schema(), slices_kind()).await?;
            client.publish_clock(&names.clock, settings.window_step).await?;
            (log, flush, slices)
        } else {
            (
                InputTable::new(&names.log, LOG.schema(), InputTableKind::Blink),
                InputTable::new(&names.flush, flush_row.schema(), flush_kind()),
                InputTable::new(&names.slices, slices_schema(), slices_kind()),
            )
        };
        // Rows go to the log this session opened, even once another publisher (or a replay on this prefix) gives
        // its name to a new set: they must not land in a set whose earlier rows this publisher never wrote, where
        // they would make its progress claim them. Written to the old log, they show in no table, and the check
        // finds the progress behind what this publisher wrote, and reconnects to the new set.
        let (log, flush) = (client.pin_input_table(log).await?, client.pin_input_table(flush).await?);
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
            moving_slices: tokio::sync::Mutex::new(()),
        };
        // A new set has no slices yet: they are all created here, before this publisher appends its first row.
        sink.keep_retention(Timestamp::now()).await?;
        if let Some(claim) = claim {
            if !claim.is_held(&sink.client).await? {
                return Err(Error::Unavailable {
                    operation: "make the set",
                    code: tonic::Code::Aborted,
                    message: "another publisher claimed the set while this one made it".to_owned(),
                });
            }
            // Last, once the slices exist: another publisher appending to the new log by name before then has rows
            // no data table keeps, and a progress derived earlier would count them, ahead of the data, so that
            // publisher would not see it must write them again.
            sink.client.publish_derived(&sink.names.log, &progress(), &sink.names.progress).await?;
        }
        Ok(sink)
    }

    pub fn names(&self) -> &TableNames {
        &self.names
    }

    /// Ends the session (a replaced or final one); a failure only means the server ends it when it expires.
    pub async fn close(&self) {
        close(&self.client).await;
    }

    /// Makes the slices due at `now` exist and the published tables merge exactly those: a slice that left the
    /// retention gives its slot to the next one, and the merges and every table derived from them are published
    /// anew (users' views of them are replaced). Cheap while the slices due are the ones already covered; called
    /// at every check and before every write, so the slice a state is kept in (by its rank: up to `refire_grace`
    /// after it was received, within the next slice) exists before it is appended.
    pub async fn keep_retention(&self, now: Timestamp) -> deephaven_client::Result<()> {
        let due = self.retention.window(now);
        let is_covered = || self.covered.lock().expect("never poisoned").as_ref() == Some(&due);
        if is_covered() {
            return Ok(());
        }
        let _moving = self.moving_slices.lock().await;
        if is_covered() {
            return Ok(());
        }
        let recorded = recorded_slices(&self.client, &self.names).await?;
        let mut created = Vec::new();
        for slice in due.clone() {
            let slot = Retention::slot(slice);
            if recorded.get(&slot).map(|recorded| recorded.slice) == Some(slice) {
                continue;
            }
            let derivations = slice_derivations(self.retention.bounds_of_due(slice), self.refire_grace);
            for (name, operations) in slot_tables(&self.names, slot).iter().zip(derivations) {
                self.client.publish_derived(&self.names.log, &operations, name).await?;
            }
            created.push((slot, slice));
        }
        // Recorded last: a publisher stopped half-way leaves the slots unrecorded, so the next one does it all again.
        if !created.is_empty() {
            self.publish_merges().await?;
            self.client.append(&self.slices, slices::rows(&self.retention, &created)).await?;
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

    /// A table of the set that has left the query scope (deleted by hand; a restarted server loses the session
    /// too), if any. Fails when the session is gone.
    pub async fn missing_table(&self) -> deephaven_client::Result<Option<String>> {
        first_missing(&self.client, &self.names).await
    }

    /// The furthest position applied per partition, as the derived progress table holds it: every write that returned
    /// before the call is in it ([`Sink::settle`]).
    pub async fn progress(&self) -> deephaven_client::Result<BTreeMap<i32, Applied>> {
        self.settle().await?;
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
    /// once the slices due now exist ([`Sink::keep_retention`]), then touches this publisher's flush row: that makes
    /// the server start an update cycle at once, which takes the log's rows too (a blink append alone would wait for
    /// the next periodic cycle). It returns once a cycle has taken the touch; the derived tables are computed later
    /// in that cycle, and the log's rows may even fall to the next one (below). A read that must see them waits with
    /// [`Sink::settle`].
    pub async fn write(&self, rows: RecordBatch) -> deephaven_client::Result<()> {
        self.keep_retention(Timestamp::now()).await?;
        self.client.append(&self.log, rows).await?;
        self.touch_flush_row().await
    }

    /// Returns once every table derived from the rows of the writes that returned before it was called holds them.
    /// An input table's append returns as soon as a cycle's sources have taken it, before that cycle's derived tables
    /// are computed. A blink append returns once its rows are handed over, and a cycle already under way may have
    /// passed the log but not yet the flush table: the rows then fall to the next cycle. A touch sent after a write
    /// returned can be taken by that next cycle at the earliest; a second touch only by the one after, which starts
    /// once the rows' cycle has finished. Writes do not wait for this (readers of the tables see the rows when their
    /// cycle ends either way, and the next write need not wait); what this publisher reads back does.
    pub async fn settle(&self) -> deephaven_client::Result<()> {
        self.touch_flush_row().await?;
        self.touch_flush_row().await
    }

    async fn touch_flush_row(&self) -> deephaven_client::Result<()> {
        self.client.append(&self.flush, self.flush_row.clone()).await
    }
}

/// Ends `client`'s session; a failure only means the server ends it when it expires.
async fn close(client: &Client) {
    if let Err(err) = client.close().await {
        tracing::debug!(error = %err, "closing the Deephaven session failed; it expires on its own");
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

/// The first table of the set that is not in the query scope, if any. Asks for them all at once: one round trip's
/// wait instead of one per table, since it runs every `deephaven.check_interval` beside the writes.
async fn first_missing(client: &Client, names: &TableNames) -> deephaven_client::Result<Option<String>> {
    let names: Vec<String> = all_tables(names).collect();
    let exists = futures::future::try_join_all(names.iter().map(|name| client.scope_table_exists(name))).await?;
    Ok(names.into_iter().zip(exists).find_map(|(name, exists)| (!exists).then_some(name)))
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
    if let Some(table) = first_missing(client, names).await? {
        tracing::info!(table, "table missing");
        return Ok(false);
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
    if recorded.values().any(|recorded| retention.bounds(recorded.slice) != Some(recorded.bounds)) {
        tracing::warn!(
            table = %names.slices,
            "the tables were made for another deephaven.retention; recreating the set and replaying the topic"
        );
        return Ok(false);
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

//! The publishing loop: consume a batch, write it to Deephaven, repeat; and what happens when a write fails.
//!
//! A batch closes at `batch.max_rows` records or `batch.max_bytes` of record values, or as soon as the write before
//! it is done and it holds every record already fetched (plus `batch.max_wait`, none by default), and is written
//! while the next batch is read (one write at a time, in order): a replay is bounded by the slower of the two, not
//! their sum, and a record arriving at an idle publisher is written at once. A write sends the batch's undecodable
//! records to the dead-letter topic, appends the batch's rows, positions included, to the log ([`crate::tables`])
//! and commits the group's offsets for lag monitoring.
//!
//! Failures are handled by what can fix them:
//! - a transient Deephaven error (unreachable, slow, frozen): the same write is retried on the same session after a
//!   backoff with jitter; appending rows again changes nothing, so a write that may have half-happened is safe;
//! - a dead-letter send that fails: only the letters not yet delivered are sent again, after a backoff; Deephaven
//!   is not involved and `/readyz` says the dead letters are the problem;
//! - the session lost, the tables gone or created anew under the publisher: after a short jittered wait (longer
//!   each time while nothing succeeds between reconnects), reconnect (creating the tables if missing), re-read
//!   the progress, move every assigned partition back to it and drop the unwritten batches
//!   (their records are read again). A partition that cannot be moved back is retried, never read on from where it
//!   is;
//! - a permanent error (refused credentials; a write refused right after a fresh reconnect; the consumer fenced by
//!   another member with the same `group.instance.id`): the publisher halts,
//!   with the reason on `/readyz` and the `publisher_halted` gauge, until it is stopped; no endless loop.
//!
//! What Deephaven holds is therefore always at least every record up to its recorded offsets.

use crate::backoff::{Backoff, ShutDown};
use crate::configuration::Settings;
use crate::continuity::{Continuity, Next};
use crate::dead_letters::{DeadLetter, DeadLetters};
use crate::health::Health;
use crate::kafka::{self, AlertConsumer};
use crate::metrics::{Metrics, TableLabels};
use crate::resume::{self, Shared};
use crate::tables::Sink;
use arrow::array::RecordBatch;
use deephaven_client::ErrorClass;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers};
use rdkafka::Message;
use schemas::tables::{Applied, KafkaPosition, PositionedRecord, RowsBuilder, LOG};
use schemas::{AlertRecord, RecordHeaders, Timestamp};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, watch};

/// Whether to keep the tables or start them over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Resume from the progress recorded in Deephaven (the normal case).
    Follow,
    /// Replace the tables with empty ones first and rebuild them from the earliest retained record.
    Replay,
}

/// Runs until `shutdown` turns true, then writes what it holds and returns. Fails if the publisher halted. Once
/// the tables are started over (`Mode::Replay`), `mode` turns to `Follow`, which is what a later run must do.
pub async fn run(
    settings: Settings,
    mode: &mut Mode,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // What an earlier run (before a rotated secret restarted it) found of its letters and partitions is not this
    // run's: it has sent no letter and been assigned no partition yet.
    health.set_dead_letters(true);
    health.set_positioned(true);
    let shared = Shared::new(Arc::clone(&metrics), Arc::clone(&health));
    let dead_letters =
        DeadLetters::new(&settings.kafka.brokers, &settings.kafka.dlq_topic, &settings.kafka.properties)?;
    let consumer = kafka::consumer(&settings, Arc::clone(&shared))?;
    let pipeline = Pipeline { settings, shared, consumer, dead_letters, metrics, health };
    let mut start_over = *mode == Mode::Replay;
    let connected = pipeline.connect(&mut start_over, &mut shutdown).await;
    // Before any failure is returned: a set made counts as made, whatever came after.
    if !start_over {
        *mode = Mode::Follow;
    }
    // A making of the set under way is finished even when shutdown comes meanwhile; nothing more is done then.
    let result = match connected {
        Ok(true) if !*shutdown.borrow() => pipeline.subscribe_and_publish(shutdown).await,
        Ok(_) => Ok(()),
        Err(error) => Err(error),
    };
    // Not ready for the run a rotated secret starts next, until it has connected.
    pipeline.health.set_deephaven(false);
    if let Some(sink) = pipeline.shared.sink() {
        sink.close().await;
    }
    tracing::info!("publisher stopped");
    result
}

/// Records read since the last write, converted to the log's rows as they are read: a record is dropped as soon as
/// it is appended, so a batch holds its Arrow columns and never every decoded record as well.
struct Pending {
    rows: RowsBuilder,
    dead_letters: Vec<DeadLetter>,
    /// The last position read per partition.
    offsets: BTreeMap<i32, Applied>,
    /// The size of the record values read, which bounds the batch's memory and its Arrow columns.
    bytes: usize,
    /// When ingest received each decoded record: for the freshness gauges and the delay histograms.
    received_at: Vec<Timestamp>,
}

impl Pending {
    fn new(settings: &Settings) -> Self {
        Self {
            rows: LOG.builder(settings.batch.max_rows),
            dead_letters: Vec::new(),
            offsets: BTreeMap::new(),
            bytes: 0,
            received_at: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.rows.len()
    }

    fn is_full(&self, settings: &Settings) -> bool {
        self.len() >= settings.batch.max_rows || self.bytes >= settings.batch.max_bytes
    }

    /// Adds a record read from `incarnation` of the topic. An undecodable one is kept for the dead-letter topic and
    /// gets a row with only its position, so the progress covers it.
    fn push(&mut self, message: &BorrowedMessage<'_>, incarnation: i32, metrics: &Metrics) {
        metrics.records_consumed.inc();
        self.bytes += message.payload_len();
        let position = KafkaPosition { incarnation, partition: message.partition(), offset: message.offset() };
        let format = message.headers().and_then(|headers| {
            headers.iter().find(|header| header.key == RecordHeaders::FORMAT).and_then(|header| header.value)
        });
        match AlertRecord::decode(format, message.payload().unwrap_or_default()) {
            Ok(record) => {
                metrics.consumed(record.received_at);
                self.received_at.push(record.received_at);
                self.rows.append(&PositionedRecord { record, position });
            }
            Err(err) => {
                tracing::warn!(partition = position.partition, offset = position.offset, error = %err, "undecodable record: to the dead-letter topic");
                self.rows.append_position_only(position);
                self.dead_letters.push(DeadLetter { message: message.detach(), position, reason: err.to_string() });
            }
        }
        let read = Applied { incarnation, offset: position.offset };
        let last = self.offsets.entry(position.partition).or_insert(read);
        *last = (*last).max(read);
    }
}

/// A batch read and finished as the log's rows, ready to be written.
struct Batch {
    rows: RecordBatch,
    dead_letters: Vec<DeadLetter>,
    /// The last position read per partition.
    offsets: BTreeMap<i32, Applied>,
    /// When ingest received each decoded record.
    received_at: Vec<Timestamp>,
}

impl From<Pending> for Batch {
    fn from(pending: Pending) -> Self {
        Self {
            rows: pending.rows.finish(),
            dead_letters: pending.dead_letters,
            offsets: pending.offsets,
            received_at: pending.received_at,
        }
    }
}

/// Why the loop could not go on as it was.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("shutting down")]
    ShutDown,
    #[error("no Deephaven session")]
    NoSession,
    #[error(transparent)]
    Deephaven(#[from] deephaven_client::Error),
    /// The tables are missing, or were created anew and lack what this publisher wrote.
    #[error("{0}")]
    TablesReplaced(String),
    /// librdkafka stopped the consumer for good: with static membership (`group.instance.id`), another member
    /// joined with the same instance id. A new consumer would fence that one in turn, so the publisher halts.
    #[error("the Kafka consumer failed for good (another member with the same group.instance.id?): {0}")]
    ConsumerFailed(String),
}

impl From<ShutDown> for Failure {
    fn from(_: ShutDown) -> Self {
        Self::ShutDown
    }
}

impl Failure {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Deephaven(err) if err.class() == ErrorClass::Retryable)
    }

    fn is_permanent(&self) -> bool {
        matches!(self, Self::Deephaven(err) if err.class() == ErrorClass::Permanent)
    }
}

/// The publisher's parts.
struct Pipeline {
    settings: Settings,
    shared: Arc<Shared>,
    consumer: AlertConsumer,
    dead_letters: DeadLetters,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Pipeline {
    /// Reads the topic and writes it to the tables until `shutdown`; the consumer leaves the group afterwards.
    async fn subscribe_and_publish(&self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        self.consumer.subscribe(&[&self.settings.kafka.topic])?;
        tracing::info!(topic = %self.settings.kafka.topic, tables = ?self.shared.sink().map(|sink| sink.names().clone()), "publishing");
        let result = self.publish(shutdown).await;
        self.consumer.unsubscribe();
        result
    }

    async fn publish(&self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        // The batch read last is written while the next one is read: Deephaven's time per batch overlaps with
        // consuming and decoding the next instead of adding to it. Writes stay one at a time and in order.
        let mut unwritten: Option<Batch> = None;
        let mut continuity = Continuity::default();
        let mut last_check = Instant::now();
        // Permanent write errors since the last reconnect: the first gets a fresh session, the second halts.
        let mut refused_since_reconnect = 0;
        // Each recovery waits a little (jittered, so that publishers that lost Deephaven together do not come back
        // in step), and longer each time while no round of writing and checking succeeds between them: a session
        // lost right after every connect must not spin through logins, checks and rewinds.
        let mut recoveries = Backoff::new(self.settings.deephaven.max_backoff);
        loop {
            let writes = unwritten.is_some();
            let (written, previous_write) = oneshot::channel::<()>();
            let write_shutdown = shutdown.clone();
            let writing = async {
                if let Some(batch) = &unwritten {
                    self.write(batch, write_shutdown).await?;
                }
                let _ = written.send(());
                Ok::<(), Failure>(())
            };
            let reading = async {
                let previous_write = async {
                    let _ = previous_write.await;
                };
                let (pending, stopping) = self.collect(previous_write, &mut continuity, &mut shutdown).await?;
                let batch = (pending.len() > 0).then(|| Batch::from(pending));
                Ok((batch, stopping))
            };
            // While busy, the check goes on beside the write and the read instead of holding up the next write.
            // Its failure is handled once all three are done, so it never abandons a write.
            let check_due = last_check.elapsed() >= self.settings.deephaven.check_interval;
            if check_due {
                last_check = Instant::now();
            }
            let checking = async { Ok::<_, Failure>(if check_due { Some(self.check().await) } else { None }) };
            // A failed write abandons the read in progress at once: everything after Deephaven's progress is read
            // again.
            let failure = match tokio::try_join!(writing, reading, checking) {
                Ok(((), (read, stopping), checked)) => {
                    if writes {
                        refused_since_reconnect = 0;
                    }
                    if stopping {
                        self.finish(read, shutdown.clone()).await;
                        return Ok(());
                    }
                    let idle = !writes && read.is_none();
                    // Only a round that reached Deephaven (a write, a check) shows that recovering worked.
                    let reached_deephaven = writes || checked.is_some() || idle;
                    let checked = match checked {
                        Some(checked) => checked,
                        None if idle => {
                            last_check = Instant::now();
                            self.check().await
                        }
                        None => Ok(()),
                    };
                    if idle {
                        self.shared.fetch_gate.reopen_if_topic_is_back(
                            &self.consumer,
                            &self.settings.kafka.topic,
                            &self.health,
                        );
                        if !self.follow_a_new_incarnation(&mut shutdown).await {
                            return Ok(());
                        }
                    }
                    match checked {
                        Ok(()) => {
                            unwritten = read;
                            if reached_deephaven {
                                recoveries = Backoff::new(self.settings.deephaven.max_backoff);
                            }
                            continue;
                        }
                        Err(failure) if failure.is_transient() => {
                            // Nothing is lost: the batch read is written next, by a write that retries.
                            self.health.set_deephaven(false);
                            self.metrics.deephaven_retries.inc();
                            tracing::warn!(error = %failure, "checking Deephaven failed; carrying on");
                            unwritten = read;
                            continue;
                        }
                        Err(failure) => failure,
                    }
                }
                Err(failure) => failure,
            };
            unwritten = None;
            match failure {
                Failure::ShutDown => return Ok(()),
                Failure::ConsumerFailed(_) => return Err(self.halt(failure.to_string(), &mut shutdown).await),
                failure if failure.is_permanent() && refused_since_reconnect > 0 => {
                    return Err(self
                        .halt(format!("Deephaven refused a write again after a reconnect: {failure}"), &mut shutdown)
                        .await);
                }
                failure => {
                    refused_since_reconnect += usize::from(failure.is_permanent());
                    self.health.set_deephaven(false);
                    if recoveries.wait(&mut shutdown).await.is_err() || !self.recover(&failure, &mut shutdown).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// When idle (nothing read, nothing being written): if the topic was created anew, reads every assigned
    /// partition from its start. False when shutdown came first.
    async fn follow_a_new_incarnation(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let probe = &self.consumer.context().probe;
        let gone = |partition, offset| tokio::task::block_in_place(|| probe.is_gone(&self.consumer, partition, offset));
        match self.shared.find_new_incarnation(self.shared.assigned(), gone) {
            Some(found) => {
                resume::report_new_incarnation(&self.shared, found);
                self.rewind(shutdown).await
            }
            None => true,
        }
    }

    /// Moves every assigned partition back to the progress Deephaven holds, trying again until it can: reading on
    /// from where a partition is would skip records (the dropped batches', or a new incarnation's first). Not
    /// ready meanwhile. False when shutdown came first.
    async fn rewind(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let mut backoff = Backoff::new(self.settings.deephaven.max_backoff);
        let topic = &self.settings.kafka.topic;
        while let Err(err) = tokio::task::block_in_place(|| kafka::rewind(&self.consumer, topic, &self.shared)) {
            self.health.set_positioned(false);
            tracing::error!(error = %err, "could not move a partition back to Deephaven's progress; retrying");
            if backoff.wait(shutdown).await.is_err() {
                return false;
            }
        }
        self.health.set_positioned(true);
        true
    }

    /// Reconnects, then moves every partition back to the progress Deephaven holds. False when shutdown came first.
    async fn recover(&self, failure: &Failure, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<bool> {
        self.health.set_deephaven(false);
        tracing::warn!(error = %failure, "Deephaven is not usable as it was; reconnecting");
        if !self.connect(&mut false, shutdown).await? {
            return Ok(false);
        }
        self.metrics.deephaven_reconnects.inc();
        if !self.rewind(shutdown).await {
            return Ok(false);
        }
        self.health.set_deephaven(true);
        Ok(true)
    }

    /// Connects to Deephaven (retrying transient failures with capped backoff) and installs the session. With
    /// `start_over`, the set is made anew and empty (a replay); it turns false once that is done, even when
    /// shutdown or a failure comes after. False if shut down first; an error once halted for a permanent failure.
    async fn connect(&self, start_over: &mut bool, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<bool> {
        let mut backoff = Backoff::new(self.settings.deephaven.max_backoff);
        loop {
            // Opening can wait a while for another publisher to make the tables; that wait ends on shutdown.
            let stop = async {
                let _ = shutdown.clone().wait_for(|stop| *stop).await;
            };
            let attempted = match Sink::open_until(&self.settings.deephaven, *start_over, stop).await {
                Ok(Some(sink)) => {
                    // Started over once: an attempt after a failure opens that set rather than start it over again.
                    *start_over = false;
                    self.shared.install(sink).await
                }
                Ok(None) => return Ok(false),
                Err(err) => Err(err),
            };
            match attempted {
                Ok(()) => {
                    self.health.set_deephaven(true);
                    return Ok(true);
                }
                Err(err) if err.class() == ErrorClass::Permanent => {
                    return Err(self.halt(format!("Deephaven cannot be used: {err}"), shutdown).await);
                }
                Err(err) => tracing::warn!(error = %err, "Deephaven is not usable yet"),
            }
            if backoff.wait(shutdown).await.is_err() {
                return Ok(false);
            }
        }
    }

    /// Stops for good: says why on `/readyz` and in the log, waits to be shut down, and returns the reason.
    async fn halt(&self, reason: String, shutdown: &mut watch::Receiver<bool>) -> anyhow::Error {
        tracing::error!(
            reason,
            "halted: retrying cannot fix this; fix it and restart the publisher (a changed secret file restarts it)"
        );
        self.health.set_deephaven(false);
        self.health.halt(reason.clone());
        let _ = shutdown.wait_for(|stop| *stop).await;
        anyhow::anyhow!(reason)
    }

    /// Reads one batch: waits for a first record, then takes more until the batch is full, or `previous_write` is
    /// done, no fetched record is waiting and `max_wait` has passed since the first (a batch that cannot be written
    /// yet keeps filling, so batches grow while Deephaven is the bottleneck and stay small and quick when it is
    /// not). Returns early, with what it has, when shutdown is asked for (then true), and empty after
    /// `check_interval` without records (so an idle publisher still notices a lost Deephaven). Fails only when the
    /// consumer failed for good.
    async fn collect(
        &self,
        previous_write: impl Future<Output = ()>,
        continuity: &mut Continuity,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(Pending, bool), Failure> {
        let settings = &self.settings;
        let mut pending = Pending::new(settings);
        let mut deadline: Option<tokio::time::Instant> = None;
        tokio::pin!(previous_write);
        let mut previous_written = false;
        // A partition to move back before reading on, found in the select (which must not wait).
        let mut read_again: Option<(i32, i64)> = None;
        loop {
            // Records already fetched win the select below, so during a backlog it would never see the request.
            if *shutdown.borrow() {
                return Ok((pending, true));
            }
            if let Some((partition, from)) = read_again.take() {
                if self.read_again_from(partition, from, shutdown).await.is_err() {
                    return Ok((pending, true));
                }
            }
            if pending.is_full(settings) {
                break;
            }
            let timeout = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => tokio::time::sleep(settings.deephaven.check_interval).await,
                }
            };
            tokio::select! {
                // Records already fetched first: they join this batch rather than wait for the next write.
                biased;
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        let (partition, offset) = (message.partition(), message.offset());
                        match continuity.observe(partition, offset, self.shared.moves(), || self.shared.start_of(partition)) {
                            Next::Take => {}
                            Next::TakeAcross { missing } => {
                                self.metrics.offset_jumps_accepted.inc();
                                tracing::warn!(partition, first = missing.start, end = missing.end, "offsets that hold no record (compacted, transaction markers, deleted): reading on across them");
                            }
                            Next::Stale => continue,
                            Next::ReadAgainFrom(from) => {
                                self.metrics.offset_jumps_reread.inc();
                                tracing::info!(partition, from, skipped_to = offset, "a fetch skipped records: reading the partition again from the first one missing");
                                read_again = Some((partition, from));
                                continue;
                            }
                        }
                        pending.push(&message, self.shared.incarnation(), &self.metrics);
                        deadline.get_or_insert_with(|| tokio::time::Instant::now() + settings.batch.max_wait);
                    }
                    Err(KafkaError::MessageConsumptionFatal(code)) => {
                        let (code, reason) = self.consumer.client().fatal_error().unwrap_or((code, String::new()));
                        return Err(Failure::ConsumerFailed(format!("{code:?} {reason}")));
                    }
                    Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown)) => {
                        self.shared.fetch_gate.close(&self.consumer);
                    }
                    Err(err) => tracing::warn!(error = %err, "consuming failed"),
                },
                () = &mut previous_write, if !previous_written => previous_written = true,
                _ = timeout, if previous_written || deadline.is_none() => break,
                _ = shutdown.wait_for(|stop| *stop) => return Ok((pending, true)),
            }
        }
        Ok((pending, false))
    }

    /// Moves `partition` back to `from` to read the records a fetch skipped. A failure is retried, since reading on
    /// would write past them, until it works or the partition is no longer this publisher's to read; not ready
    /// meanwhile.
    async fn read_again_from(
        &self,
        partition: i32,
        from: i64,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ShutDown> {
        let mut backoff = Backoff::new(self.settings.deephaven.max_backoff);
        while self.shared.assigned().contains(&partition) {
            let topic = &self.settings.kafka.topic;
            match tokio::task::block_in_place(|| kafka::read_again_from(&self.consumer, topic, partition, from)) {
                Ok(()) => break,
                Err(err) => {
                    self.health.set_positioned(false);
                    tracing::error!(partition, from, error = %err, "could not move the partition back to read the records skipped; retrying");
                    backoff.wait(shutdown).await?;
                }
            }
        }
        self.health.set_positioned(true);
        Ok(())
    }

    /// Dead letters first (so they are not lost when the offsets move past them), then the rows, then the group's
    /// offsets are committed. Transient failures are retried here; what it returns needs a reconnect, or is shutdown.
    async fn write(&self, batch: &Batch, mut shutdown: watch::Receiver<bool>) -> Result<(), Failure> {
        self.send_dead_letters(&batch.dead_letters, &mut shutdown).await?;
        let row_count = batch.rows.num_rows() as u64;
        let mut backoff = Backoff::new(self.settings.deephaven.max_backoff);
        let sink = loop {
            let sink = self.shared.sink().ok_or(Failure::NoSession)?;
            let started = Instant::now();
            match sink.write(batch.rows.clone()).await {
                Ok(()) => {
                    self.metrics.write_seconds.observe(started.elapsed().as_secs_f64());
                    break sink;
                }
                Err(err) if err.class() == ErrorClass::Retryable => {
                    self.health.set_deephaven(false);
                    self.metrics.deephaven_retries.inc();
                    tracing::warn!(error = %err, "writing to Deephaven failed; retrying on the same session");
                    backoff.wait(&mut shutdown).await?;
                }
                Err(err) => return Err(err.into()),
            }
        };
        self.health.set_deephaven(true);
        self.metrics.batch_records.observe(row_count as f64);
        self.metrics.applied(&batch.received_at);
        self.metrics.rows_written.get_or_create(&TableLabels { table: sink.names().log.clone() }).inc_by(row_count);
        self.shared.wrote(&batch.offsets);
        kafka::commit(&self.consumer, &self.settings.kafka.topic, &batch.offsets, &self.shared.assigned());
        Ok(())
    }

    /// Sends `letters`, retrying what was not delivered after a backoff until all are, or shutdown.
    async fn send_dead_letters(
        &self,
        letters: &[DeadLetter],
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ShutDown> {
        let mut pending: Vec<&DeadLetter> = letters.iter().collect();
        let mut backoff = Backoff::new(self.settings.deephaven.max_backoff);
        while !pending.is_empty() {
            match self.dead_letters.send(&pending).await {
                Ok(()) => {
                    self.metrics.dlq_records.inc_by(pending.len() as u64);
                    pending.clear();
                }
                Err(undelivered) => {
                    self.metrics.dlq_records.inc_by((pending.len() - undelivered.letters.len()) as u64);
                    pending.clone_from(&undelivered.letters);
                    self.health.set_dead_letters(false);
                    self.metrics.dlq_failures.inc();
                    tracing::warn!(error = %undelivered, topic = %self.settings.kafka.dlq_topic, "the dead-letter topic refused; retrying");
                    backoff.wait(shutdown).await?;
                }
            }
        }
        self.health.set_dead_letters(true);
        Ok(())
    }

    /// On shutdown: writes what was read last, once. A failure loses nothing (Deephaven's progress does not cover
    /// these records, so the next start reads them again), and there is no reconnecting on the way out.
    async fn finish(&self, read: Option<Batch>, shutdown: watch::Receiver<bool>) {
        let Some(batch) = read else { return };
        if let Err(err) = self.write(&batch, shutdown).await {
            tracing::warn!(error = %err, "the last batch was not written; it is read again on the next start");
        }
    }

    /// A look at Deephaven, when idle and every `check_interval` while busy: the session answers, the tables are
    /// still there (a restarted server has neither), and they hold what this publisher wrote (tables created anew
    /// by another publisher or a replay do not). It also moves the retention on when a slice of time is due.
    async fn check(&self) -> Result<(), Failure> {
        let sink = self.shared.sink().ok_or(Failure::NoSession)?;
        if let Some(table) = sink.missing_table().await? {
            return Err(Failure::TablesReplaced(format!("table {table} is gone from Deephaven")));
        }
        sink.keep_retention(Timestamp::now()).await?;
        let known = self.shared.known();
        let applied = sink.progress().await?;
        if let Some(partition) = self.shared.behind(&known, &applied) {
            return Err(Failure::TablesReplaced(format!(
                "Deephaven's progress on partition {partition} is behind what this publisher wrote: the tables were created anew"
            )));
        }
        self.health.set_deephaven(true);
        Ok(())
    }
}

//! Records become the right rows: values, repeats, ordering, dead letters, several publishers, replay.

use crate::analytics::{notification, FLAPPY};
use crate::helpers::*;
use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use deephaven_client::Client;
use deephaven_client::{InputTable, InputTableKind};
use publisher::configuration::DeephavenSettings;
use publisher::health::Health;
use publisher::metrics::Metrics;
use publisher::pipeline::Mode;
use publisher::tables::Sink;
use schemas::tables::{column, KafkaPosition, PositionedRecord, TableNames, LOG};
use schemas::{parse, AlertRecord, Limits, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use test_kit::fixtures::{captured_webhooks, refire_sequence, synthetic_resolve};
use test_kit::kafka::{read_all, Consumed};
use test_kit::metrics::sample;
use test_kit::wait;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub fn fixture_records() -> Vec<AlertRecord> {
    let mut records = Vec::new();
    for capture in captured_webhooks() {
        let webhook = parse(&capture.body, &Limits::default()).unwrap();
        records.extend(AlertRecord::from_webhook(webhook, received_at(records.len())));
    }
    records
}

/// The records of the synthetic bodies `first_batch..first_batch + batches`, 10 alerts each, received in order.
pub fn synthetic_records(batches: u64, first_batch: u64) -> Vec<AlertRecord> {
    test_kit::records::synthetic_records(first_batch, batches, 10, received_at)
}

#[tokio::test(flavor = "multi_thread")]
async fn captured_alerts_become_the_expected_rows_and_a_replay_rebuilds_them() {
    let setup = setup(3).await;
    let records = fixture_records();
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    assert_eq!(expected.events.len(), 9, "repeats collapse to the 9 distinct states of the captures");
    assert_eq!(expected.alerts.len(), 6);
    assert_eq!(expected.alerts["1f8e20c41f9bb813"].0, "resolved", "fired then resolved");

    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;

    // Values, not just keys: the promoted columns and the live view.
    let client = client(&setup.deephaven_url).await;
    let alerts = client.snapshot(&format!("{}alerts", setup.prefix)).await.unwrap();
    let text = |batch: &arrow::array::RecordBatch, column: &str, row: usize| {
        batch.column_by_name(column).unwrap().as_string::<i32>().value(row).to_owned()
    };
    let mut seen = 0;
    for batch in &alerts {
        for row in 0..batch.num_rows() {
            if text(batch, "Fingerprint", row) == "0eac3fe5ba04b2b9" {
                assert_eq!(text(batch, "AlertName", row), "FlappingMinute");
                assert_eq!(text(batch, "Status", row), "firing", "it fired again after resolving");
                assert!(text(batch, "Labels", row).contains("\"alertname\":\"FlappingMinute\""));
                assert_eq!(text(batch, "Receiver", row), "webhook-bearer");
                seen += 1;
            }
        }
    }
    assert_eq!(seen, 1);
    let firing: usize =
        snapshot(&client, &format!("{}alerts_firing", setup.prefix)).await.iter().map(|b| b.num_rows()).sum();
    assert_eq!(firing, expected.alerts.values().filter(|(status, _, _)| status == "firing").count());
    publisher.stop().await;

    // A replay into new tables beside the live ones gives the same tables.
    let mut replay = setup.settings();
    replay.deephaven.table_prefix = format!("{}replay_", setup.prefix);
    replay.kafka.group_id = format!("{}-replay", setup.group_id);
    let replayer = spawn_publisher(replay.clone(), Mode::Replay).await;
    wait_for_tables(&setup.deephaven_url, &replay.deephaven.table_prefix, &expected).await;
    replayer.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_state_arriving_late_leaves_the_alert_unchanged() {
    let setup = setup(1).await;
    let captures = captured_webhooks();
    let record = |name: &str, index: usize| {
        let capture = captures.iter().find(|c| c.name == name).unwrap();
        AlertRecord::from_webhook(parse(&capture.body, &Limits::default()).unwrap(), received_at(index)).remove(0)
    };
    let resolved = record("011", 1);
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    let mut acked = produce(&setup.brokers, &setup.topic, std::slice::from_ref(&resolved)).await;
    let first = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &first).await;

    // The same occurrence's "firing", received later (a retry that lost the race): events grow, alerts stay.
    let late_firing = record("006", 2);
    acked.extend(produce(&setup.brokers, &setup.topic, &[late_firing, resolved.clone()]).await);
    let all = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    let tables = wait_for_tables(&setup.deephaven_url, &setup.prefix, &all).await;
    assert_eq!(tables.events.len(), 2, "the repeated resolved state collapsed onto its row");
    assert_eq!(tables.alerts["0eac3fe5ba04b2b9"].0, "resolved");
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refire_after_the_grace_shows_and_a_late_copy_within_it_does_not() {
    let setup = setup(1).await;
    let mut settings = setup.settings();
    // Between the captured sequence's gaps: a late copy 5 s after the resolve, the re-fire 42 s after it.
    let grace = Duration::from_secs(30);
    settings.deephaven.refire_grace = grace;
    // Alertmanager's own notifications of one occurrence of DemoHeartbeat: firing, resolved while Prometheus was
    // frozen, firing again with the same StartsAt once it was back; each received when the capture received it.
    let [fired, resolved, fired_again] = refire_sequence().try_into().expect("three captured notifications");
    let record = |capture: &test_kit::fixtures::CapturedWebhook, received_at_nanos: i64| {
        let webhook = parse(&capture.body, &Limits::default()).unwrap();
        AlertRecord::from_webhook(webhook, Timestamp::from_unix_nanos(received_at_nanos)).remove(0)
    };
    let fingerprint = "f08a20454d3a20a6";
    let publisher = spawn_publisher(settings, Mode::Follow).await;

    // A lagging HA peer's copy of the first "firing", received 5 s after "resolved": still resolved.
    let late = resolved.received_at_nanos + 5_000_000_000;
    let mut acked = produce(
        &setup.brokers,
        &setup.topic,
        &[record(&fired, fired.received_at_nanos), record(&resolved, resolved.received_at_nanos), record(&fired, late)],
    )
    .await;
    let late_copy = expected_with(&positions(&setup.brokers, &setup.topic, &acked).await, grace);
    assert_eq!(late_copy.alerts[fingerprint].0, "resolved");
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &late_copy).await;

    // The notification Alertmanager sent once Prometheus was back: a re-fire, and it shows.
    acked.extend(produce(&setup.brokers, &setup.topic, &[record(&fired_again, fired_again.received_at_nanos)]).await);
    let refired = expected_with(&positions(&setup.brokers, &setup.topic, &acked).await, grace);
    assert_eq!(refired.alerts[fingerprint].0, "firing");
    let tables = wait_for_tables(&setup.deephaven_url, &setup.prefix, &refired).await;
    assert_eq!(tables.events.len(), 2, "one firing and one resolved state: the re-fire is the same occurrence");
    let client = client(&setup.deephaven_url).await;
    let firing: usize =
        snapshot(&client, &format!("{}alerts_firing", setup.prefix)).await.iter().map(|b| b.num_rows()).sum();
    assert_eq!(firing, 1, "alerts_firing shows the re-fired alert");
    let newest = fired_again.received_at_nanos as f64 / 1e9;
    assert_eq!(
        publisher.metrics.newest_written_received_at.get(),
        newest,
        "when ingest received the newest state written"
    );
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_published_tables_refuse_every_add_and_delete() {
    let setup = setup(1).await;
    // Alerts firing and alerts resolved, so that every table has rows, and an occurrence of the last hour for the
    // tables over recent windows.
    let mut records = synthetic_records(2, 40);
    let webhook = parse(&synthetic_resolve(41, 10).0, &Limits::default()).unwrap();
    records.extend(AlertRecord::from_webhook(webhook, received_at(records.len())));
    let now = Timestamp::now().unix_nanos();
    let (started, ended) = (Timestamp::from_unix_nanos(now - 600_000_000_000), Timestamp::from_unix_nanos(now));
    records.push(notification("Flappy", FLAPPY, started, None, started));
    records.push(notification("Flappy", FLAPPY, started, Some(ended), ended));
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;

    let client = client(&setup.deephaven_url).await;
    let names = TableNames::with_prefix(&setup.prefix);
    for name in names.derived() {
        let rows = snapshot(&client, name).await.into_iter().find(|batch| batch.num_rows() > 0);
        let rows = rows.unwrap_or_else(|| panic!("{name} has rows"));
        let table = InputTable::new(name, rows.schema(), InputTableKind::AppendOnly);
        let added = client.append(&table, rows.clone()).await;
        assert!(added.is_err(), "adding to {name} is refused: {added:?}");
        let deleted = client.delete(&table, rows).await;
        assert!(deleted.is_err(), "deleting from {name} is refused: {deleted:?}");
    }
    assert_eq!(read_tables(&client, &setup.prefix).await, expected, "nothing changed");
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_created_anew_under_a_running_publisher_are_filled_again() {
    let setup = setup(2).await;
    let records = synthetic_records(10, 60);
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;

    // Another publisher (or a replay on this prefix) replaces the whole set with empty tables; nothing new arrives.
    publisher::tables::Sink::open(&setup.settings().deephaven, true).await.expect("the set is created anew");
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tables_created_anew_while_records_arrive_get_every_record() {
    let setup = setup(2).await;
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    let mut acked = produce(&setup.brokers, &setup.topic, &synthetic_records(10, 80)).await;
    wait_for_tables(
        &setup.deephaven_url,
        &setup.prefix,
        &expected(&positions(&setup.brokers, &setup.topic, &acked).await),
    )
    .await;

    // The set is created anew under the running publisher, and records keep arriving, which it writes before its
    // next check: were they to land in the new set, its progress would claim the records before them too.
    publisher::tables::Sink::open(&setup.settings().deephaven, true).await.expect("the set is created anew");
    let written = || sample(&publisher.metrics_text(), "publisher_batch_records_sum");
    let before = written();
    let later = synthetic_records(2, 90);
    acked.extend(produce(&setup.brokers, &setup.topic, &later).await);
    wait::until_true("the publisher to write the later records", TABLES_DEADLINE, || async {
        written() >= before + later.len() as f64
    })
    .await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    publisher.stop().await;
}

/// Writes `record` through `sink` as read from `partition` at offset 0, and waits until every derived table
/// holds it.
pub async fn write_record(sink: &Sink, record: &AlertRecord, partition: i32) {
    let mut rows = LOG.builder(1);
    let position = KafkaPosition { incarnation: 0, partition, offset: 0 };
    rows.append(&PositionedRecord { record: record.clone(), position });
    sink.write(rows.finish()).await.expect("written");
    sink.settle().await.expect("settled");
}

/// Writes by hand, in the claim table of the set `names` names, another publisher's claim to make the set, in
/// `state` (`making` or `failed`); returns the table and the row's key.
async fn claim_by_hand(client: &Client, names: &TableNames, state: &str) -> (InputTable, RecordBatch) {
    let text = |value: &str| Arc::new(StringArray::from(vec![value.to_owned()]));
    let claimed_at = TimestampNanosecondArray::from(vec![Timestamp::now().unix_nanos()]).with_timezone("UTC");
    let schema = Arc::new(Schema::new(vec![
        Field::new("Key", DataType::Utf8, false),
        Field::new("Claimant", DataType::Utf8, false),
        Field::new("State", DataType::Utf8, false),
        Field::new("ClaimedAt", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
    ]));
    let claims = InputTable::new(&names.creation_claim, Arc::clone(&schema), InputTableKind::keyed(["Key"]));
    let row: Vec<ArrayRef> = vec![text("set"), text("another-publisher"), text(state), Arc::new(claimed_at)];
    client.append(&claims, RecordBatch::try_new(schema, row).unwrap()).await.expect("the claim is written");
    let key_schema = Arc::new(Schema::new(vec![Field::new("Key", DataType::Utf8, false)]));
    (claims, RecordBatch::try_new(key_schema, vec![text("set")]).unwrap())
}

/// `settings` with a request timeout that makes a claim still `making` wait for its patience (four request timeouts
/// and a heartbeat) far longer than [`TABLES_DEADLINE`], so that a test can tell a claim taken over at once from one
/// waited for, however slowly the set is made.
fn patient(settings: DeephavenSettings) -> DeephavenSettings {
    DeephavenSettings { request_timeout: Duration::from_secs(60), ..settings }
}

/// Opens the set with `settings` in a task of its own, until told to stop through the sender returned.
fn open_until_told(
    settings: DeephavenSettings,
) -> (oneshot::Sender<()>, JoinHandle<deephaven_client::Result<Option<Sink>>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let opening = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        Sink::open_until(&settings, false, stopped).await
    });
    (stop, opening)
}

/// A set made and holding one record, read from partition 0.
async fn set_holding_one_record(settings: &DeephavenSettings) -> Vec<(AlertRecord, i32, i64)> {
    let record = synthetic_records(1, 31).swap_remove(0);
    let sink = Sink::open(settings, false).await.expect("the set is made");
    write_record(&sink, &record, 0).await;
    sink.close().await;
    vec![(record, 0, 0)]
}

#[tokio::test(flavor = "multi_thread")]
async fn publishers_finding_the_tables_missing_together_make_one_set_between_them() {
    let setup = setup(2).await;
    let settings = setup.settings().deephaven;
    let client = client(&setup.deephaven_url).await;
    let names = TableNames::with_prefix(&setup.prefix);
    let first = tokio::spawn({
        let settings = settings.clone();
        async move { Sink::open(&settings, false).await }
    });
    // The second publisher finds the set missing while the first is making it (as both do after a Deephaven
    // restart).
    wait::until_true("the first publisher to make the log", TABLES_DEADLINE, || async {
        client.scope_table_exists(&names.log).await.unwrap_or(false)
    })
    .await;
    assert!(!client.scope_table_exists(&names.progress).await.unwrap(), "the set is still being made");
    let second = Sink::open(&settings, false).await.expect("the second publisher opens");
    let first = first.await.unwrap().expect("the first publisher opens");

    // Each writes an alert of a partition of its own: both reach the tables and the progress.
    let records: Vec<(AlertRecord, i32, i64)> = synthetic_records(1, 30)
        .into_iter()
        .take(2)
        .zip([0, 1])
        .map(|(record, partition)| (record, partition, 0))
        .collect();
    for (sink, (record, partition, _)) in [&first, &second].into_iter().zip(&records) {
        write_record(sink, record, *partition).await;
    }
    assert_eq!(read_tables_or_fail(&client, &setup.prefix).await, expected(&records));
    let progress = second.progress().await.expect("the progress reads");
    assert_eq!(progress.keys().copied().collect::<Vec<_>>(), [0, 1], "{progress:?}");
    first.close().await;
    second.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_another_publisher_claimed_is_waited_for_though_its_tables_all_exist() {
    let setup = setup(1).await;
    let settings = setup.settings().deephaven;
    let written = set_holding_one_record(&settings).await;
    // Another publisher claims the set, as one about to make it anew does: the old tables stay until it replaces
    // each, so that they all exist says nothing.
    let client = client(&setup.deephaven_url).await;
    let (claims, key) = claim_by_hand(&client, &TableNames::with_prefix(&setup.prefix), "making").await;

    let (stop, stopping) = open_until_told(patient(settings.clone()));
    let mut opening = tokio::spawn(async move { Sink::open(&settings, false).await });
    // Time to open an intact set many times over: it must still be waiting.
    let waited = tokio::time::timeout(Duration::from_secs(5), &mut opening).await;
    assert!(waited.is_err(), "opened a set another publisher claimed");
    // One told to stop while it waits gives up, leaving the other's claim alone (a claim still making would be
    // waited for longer than the deadline).
    stop.send(()).unwrap();
    let given_up = tokio::time::timeout(TABLES_DEADLINE, stopping).await.expect("gives up when told to stop");
    assert!(given_up.unwrap().expect("stopping is no error").is_none());
    let names = TableNames::with_prefix(&setup.prefix);
    let claim = (claim_column(&client, &names, "Claimant").await, claim_state(&client, &names).await);
    assert_eq!(claim, (Some("another-publisher".to_owned()), Some("making".to_owned())), "the other's claim");
    client.delete(&claims, key).await.expect("the claim is removed");
    let sink = tokio::time::timeout(TABLES_DEADLINE, opening).await.expect("opens once the claim is gone");
    sink.unwrap().expect("the set opens").close().await;
    assert_eq!(read_tables_or_fail(&client, &setup.prefix).await, expected(&written), "opened, not made anew");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_whose_maker_failed_half_way_is_made_anew_at_once_though_its_tables_all_exist() {
    let setup = setup(1).await;
    let settings = patient(setup.settings().deephaven);
    set_holding_one_record(&settings).await;
    let client = client(&setup.deephaven_url).await;
    let names = TableNames::with_prefix(&setup.prefix);
    claim_by_hand(&client, &names, "failed").await;

    // Taken over at once: a claim still making would be waited for longer than the deadline.
    let opened = tokio::time::timeout(TABLES_DEADLINE, Sink::open(&settings, false)).await;
    opened.expect("a failed claim is taken over at once").expect("the set is made anew").close().await;
    assert_eq!(read_tables_or_fail(&client, &setup.prefix).await, Tables::default(), "made anew, empty");
    assert_eq!(claim_state(&client, &names).await, None, "the claim is removed once the set is made");
}

/// Waits until a publisher has written a claim to make the set `names` names.
async fn wait_for_a_claim(client: &Client, names: &TableNames) {
    wait::until("a publisher to claim the set", TABLES_DEADLINE, || async {
        // The claim table is made by the claimant: missing, it reads as empty.
        let claims = snapshot(client, &names.creation_claim).await;
        match claims.iter().map(|batch| batch.num_rows()).sum() {
            0 => Err("no claim yet"),
            _ => Ok(()),
        }
    })
    .await;
}

/// The state (`making`, `failed`) of the claim the claim table holds, if any.
async fn claim_state(client: &Client, names: &TableNames) -> Option<String> {
    claim_column(client, names, "State").await
}

/// Text column `column` of the claim the claim table holds, if any.
async fn claim_column(client: &Client, names: &TableNames, column: &str) -> Option<String> {
    let batches = client.snapshot(&names.creation_claim).await.expect("the claim table reads");
    batches.iter().find(|batch| batch.num_rows() > 0).map(|batch| {
        let values = batch.column_by_name(column).expect("a claim column").as_string::<i32>();
        values.value(0).to_owned()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_making_that_fails_half_way_marks_its_claim_failed_and_the_next_publisher_makes_the_set() {
    let setup = setup(1).await;
    let settings = patient(setup.settings().deephaven);
    let names = TableNames::with_prefix(&setup.prefix);
    // Fails once the input tables are made: a clock that never moves is refused.
    let failing = DeephavenSettings { window_step: Duration::ZERO, ..settings.clone() };
    assert!(Sink::open(&failing, false).await.is_err(), "the making fails half-way");
    let client = client(&setup.deephaven_url).await;
    assert_eq!(claim_state(&client, &names).await.as_deref(), Some("failed"));

    let opened = tokio::time::timeout(TABLES_DEADLINE, Sink::open(&settings, false)).await;
    let sink = opened.expect("a failed claim is taken over at once").expect("the set is made");
    let record = synthetic_records(1, 32).swap_remove(0);
    write_record(&sink, &record, 0).await;
    assert_eq!(read_tables_or_fail(&client, &setup.prefix).await, expected(&[(record, 0, 0)]));
    sink.close().await;
    assert_eq!(claim_state(&client, &names).await, None, "the claim is removed once the set is made");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_told_to_stop_while_making_the_set_finishes_it_and_removes_its_claim() {
    let setup = setup(1).await;
    let names = TableNames::with_prefix(&setup.prefix);
    let client = client(&setup.deephaven_url).await;
    let (stop, opening) = open_until_told(setup.settings().deephaven);
    wait_for_a_claim(&client, &names).await;
    assert_eq!(claim_state(&client, &names).await.as_deref(), Some("making"));
    stop.send(()).unwrap();

    let opened = tokio::time::timeout(TABLES_DEADLINE, opening).await.expect("the making ends");
    let sink = opened.unwrap().expect("the set is made").expect("a making under way is finished");
    sink.close().await;
    assert_eq!(claim_state(&client, &names).await, None, "the claim is removed once the set is made");
    let progress = client.scope_table_exists(&names.progress).await.expect("Deephaven answers");
    assert!(progress, "the set's last table is made");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replay_stopped_while_making_the_set_is_done_and_a_later_run_follows() {
    let setup = setup(1).await;
    let names = TableNames::with_prefix(&setup.prefix);
    let client = client(&setup.deephaven_url).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut mode = Mode::Replay;
    let (metrics, health) = (Arc::new(Metrics::default()), Arc::new(Health::default()));
    let running = publisher::pipeline::run(setup.settings(), &mut mode, metrics, health, stopped);
    let stopping = async {
        wait_for_a_claim(&client, &names).await;
        stop.send(true).unwrap();
    };
    let (ran, ()) = tokio::join!(running, stopping);
    ran.expect("the run stops without failing");
    // The set was started over: a run after this one (a rotated secret restarts it) must not start it over again.
    assert_eq!(mode, Mode::Follow);
    assert_eq!(claim_state(&client, &names).await, None, "the claim is removed once the set is made");
}

/// What the pipeline builds on (its health check compares the progress with what it wrote): the progress read after
/// a write holds it, and once settled the write's rows are in the last table of the longest chain too. Each half
/// fails here without its wait: deriving a write this large takes the server longer than a read's round trip.
#[tokio::test(flavor = "multi_thread")]
async fn the_progress_read_after_a_write_holds_it_and_once_settled_so_does_the_longest_chain() {
    let setup = setup(1).await;
    let names = TableNames::with_prefix(&setup.prefix);
    let sink = Sink::open(&setup.settings().deephaven, false).await.expect("the set is made");
    let client = client(&setup.deephaven_url).await;
    // Each round writes twice: the first write is read back through the progress, the second through the counts of
    // firing alerts.
    let mut written = Vec::new();
    for round in 0..5 {
        sink.write(distinct_rows(2 * round, &mut written)).await.expect("written");
        let progress = sink.progress().await.expect("the progress reads");
        let last_offset = written.last().map(|(_, _, offset)| *offset);
        assert_eq!(progress.get(&0).map(|applied| applied.offset), last_offset, "round {round}");

        sink.write(distinct_rows(2 * round + 1, &mut written)).await.expect("written");
        sink.settle().await.expect("settled");
        let mut firing = 0;
        for batch in client.snapshot(&names.alerts_firing_by_severity).await.expect("the counts read") {
            let counts = batch.column_by_name(column::FIRING).expect("a Firing column");
            firing += counts.as_primitive::<Int64Type>().iter().flatten().sum::<i64>();
        }
        let expected_firing = expected(&written).alerts.values().filter(|alert| alert.0 == "firing").count();
        assert_eq!(firing, expected_firing as i64, "round {round}");
    }
    sink.close().await;
}

/// The log rows of write `index`: 10,000 alerts no other write has, read from partition 0 at the offsets after
/// those of `written`, which they join.
fn distinct_rows(index: u64, written: &mut Vec<(AlertRecord, i32, i64)>) -> RecordBatch {
    const BODIES: u64 = 1000;
    let records = test_kit::records::synthetic_records(100 + index * BODIES, BODIES, 10, received_at);
    let mut rows = LOG.builder(records.len());
    for (offset, record) in (written.len() as i64..).zip(records) {
        let position = KafkaPosition { incarnation: 0, partition: 0, offset };
        rows.append(&PositionedRecord { record: record.clone(), position });
        written.push((record, 0, offset));
    }
    rows.finish()
}

/// Produces `raw` (key, format header, value) records, reads them back, and returns them with the tables their
/// decodable records make.
async fn produce_raw_and_expect(setup: &Setup, raw: &[(Vec<u8>, Option<&str>, Vec<u8>)]) -> (Vec<Consumed>, Tables) {
    let acked = produce_raw(&setup.brokers, &setup.topic, raw).await;
    let consumed = read_acked(&setup.brokers, &setup.topic, &acked).await;
    let tables = expected(&positioned(&consumed));
    (consumed, tables)
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_records_go_to_the_dead_letter_topic_and_stall_nothing() {
    let setup = setup(1).await;
    let good = synthetic_records(2, 70);
    let mut raw: Vec<(Vec<u8>, Option<&str>, Vec<u8>)> = Vec::new();
    let poison: Vec<(Vec<u8>, Option<&str>, Vec<u8>)> = vec![
        (b"bad-json".to_vec(), Some("1"), b"{not json".to_vec()),
        (b"future".to_vec(), Some("2"), good[0].encode()),
        (b"no-header".to_vec(), None, good[1].encode()),
    ];
    for (index, record) in good.iter().enumerate() {
        raw.push((record.key().to_vec(), Some("1"), record.encode()));
        if index % 7 == 3 {
            raw.push(poison[index / 7].clone());
        }
    }
    let (consumed, expected) = produce_raw_and_expect(&setup, &raw).await;
    assert_eq!(expected.events.len(), good.len());

    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    // A batch's dead letters are sent before its rows are written, and the last record is a good one: with every
    // row in the tables, every letter has been acknowledged. Nothing consumes the dead-letter topic, so it can be
    // read to its end.
    let letters = read_all(&setup.brokers, &setup.dlq_topic, Duration::from_secs(30)).await;
    assert_eq!(letters.len(), 3, "one letter per undecodable record, and nothing else");
    for letter in &letters {
        let source = consumed.iter().find(|c| c.key == letter.key).expect("a dead letter keeps its key");
        assert_eq!(letter.value, source.value, "and its value");
        assert_eq!(letter.header("alerthaven-dlq-source-offset"), Some(source.offset.to_string().as_bytes()));
        assert_eq!(letter.header("alerthaven-dlq-source-topic"), Some(setup.topic.as_bytes()));
        let reason = String::from_utf8(letter.header("alerthaven-dlq-reason").unwrap().to_vec()).unwrap();
        assert!(reason.len() > 10, "{reason}");
    }
    assert_eq!(publisher.metrics.dlq_records.get(), 3);
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_too_large_once_its_headers_are_added_goes_without_its_value() {
    let setup = setup(1).await;
    let good = synthetic_records(1, 75);
    // Within librdkafka's default message.max.bytes (1,000,000) alone, above it with the dead-letter headers.
    let huge = vec![b'x'; 999_900];
    let mut raw: Vec<(Vec<u8>, Option<&str>, Vec<u8>)> =
        good.iter().map(|record| (record.key().to_vec(), Some("1"), record.encode())).collect();
    raw.insert(5, (b"huge".to_vec(), Some("1"), huge));
    let (consumed, expected) = produce_raw_and_expect(&setup, &raw).await;
    assert_eq!(expected.events.len(), good.len());

    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    // As above: the letter went before the rows of its batch, and good records follow it.
    let letters = read_all(&setup.brokers, &setup.dlq_topic, Duration::from_secs(30)).await;
    assert_eq!(letters.len(), 1, "one letter, for the one undecodable record");
    let source = consumed.iter().find(|c| c.key.as_deref() == Some(b"huge".as_slice())).unwrap();
    assert_eq!(letters[0].header("alerthaven-dlq-value-omitted"), Some(b"too large".as_slice()));
    assert_eq!(letters[0].header("alerthaven-dlq-source-offset"), Some(source.offset.to_string().as_bytes()));
    assert!(letters[0].value.as_ref().is_none_or(Vec::is_empty), "the value stays in the source topic");
    // Ready, with the dead letters path open (Kafka's side shows with the client's first statistics).
    publisher.wait_for_readiness("the publisher to be ready", |readiness| readiness.ready).await;
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_dead_letter_topic_holds_the_batch_says_so_and_the_letter_goes_once_it_exists() {
    let mut setup = setup(1).await;
    setup.dlq_topic = test_kit::names::unique_name("publisher-test-missing-dlq");
    let good = synthetic_records(4, 5);
    let mut raw: Vec<(Vec<u8>, Option<&str>, Vec<u8>)> =
        good.iter().map(|record| (record.key().to_vec(), Some("1"), record.encode())).collect();
    raw.insert(2, (b"bad-json".to_vec(), Some("1"), b"{not json".to_vec()));
    let (_, expected) = produce_raw_and_expect(&setup, &raw).await;

    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    // The batch waits for its letter: readiness names the dead-letter path, not Deephaven, and no row is written
    // ahead of the letter.
    publisher
        .wait_for_readiness("the dead-letter path to be reported failing", |readiness| {
            !readiness.ready && !readiness.dead_letters && readiness.deephaven
        })
        .await;
    assert!(publisher.metrics.dlq_failures.get() >= 1, "the failed send is counted");
    // Once the send was retried, a batch written past its letter would have been written by now; looked at for a
    // while all the same, since its rows show only once applied.
    wait::until_true("the send to be retried", TABLES_DEADLINE, || async { publisher.metrics.dlq_failures.get() >= 2 })
        .await;
    let client = client(&setup.deephaven_url).await;
    wait::holds_for("nothing written past the letter", Duration::from_secs(2), || async {
        let batches = sample(&publisher.metrics_text(), "publisher_batch_records_count");
        match (batches, read_tables_or_fail(&client, &setup.prefix).await.events.len()) {
            (0.0, 0) => Ok(()),
            written => Err(written),
        }
    })
    .await;

    test_kit::kafka::create_topic_named(&setup.brokers, &setup.dlq_topic, 1).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    let letters = read_all(&setup.brokers, &setup.dlq_topic, Duration::from_secs(30)).await;
    assert_eq!(letters.len(), 1, "the letter, once, though its send was retried");
    publisher.wait_for_readiness("the publisher to be ready again", |readiness| readiness.ready).await;
    assert_eq!(publisher.metrics.dlq_records.get(), 1);
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_close_at_max_bytes_whatever_their_record_count() {
    let setup = setup(1).await;
    let records = synthetic_records(3, 80);
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    let mut settings = setup.settings();
    // Full once it holds two records' worth: three records at the most, far below max_rows.
    let largest = records.iter().map(|record| record.encode().len()).max().unwrap();
    settings.batch.max_bytes = 2 * largest;
    let publisher = spawn_publisher(settings, Mode::Follow).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    let text = publisher.metrics_text();
    let batches = sample(&text, "publisher_batch_records_count");
    assert!(batches >= (records.len() / 3) as f64, "{batches} batches for {} records", records.len());
    assert_eq!(sample(&text, r#"publisher_batch_records_bucket{le="4.0"}"#), batches, "no batch over 4 records");
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_state_is_counted_by_how_long_after_ingest_it_was_read_and_applied() {
    let setup = setup(1).await;
    // Ten states ingest received days ago (a backlog), then ten received just now.
    let mut records = synthetic_records(1, 0);
    let now = Timestamp::now();
    records.extend(test_kit::records::synthetic_records(1, 1, 10, move |_| now));
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    // Observed once the write has returned, an instant after its rows became visible.
    let count = |stage: &str| sample(&publisher.metrics_text(), &format!("publisher_{stage}_delay_seconds_count"));
    wait::until_true("every state applied is counted", TABLES_DEADLINE, || async { count("applied") >= 20.0 }).await;
    let text = publisher.metrics_text();
    for stage in ["read", "applied"] {
        assert_eq!(count(stage), 20.0, "{stage}: every state once");
        let within = sample(&text, &format!(r#"publisher_{stage}_delay_seconds_bucket{{le="300.0"}}"#));
        assert_eq!(within, 10.0, "{stage}: the states received now within 5 minutes, the backlog's beyond");
    }
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_fetched_together_are_written_together() {
    let setup = setup(1).await;
    let records = synthetic_records(20, 120);
    let acked = produce_together(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    // No extra wait (the default): the batch closes as soon as nothing fetched is left to take.
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    let text = publisher.metrics_text();
    assert_eq!(sample(&text, "publisher_batch_records_sum"), records.len() as f64);
    assert_eq!(sample(&text, "publisher_batch_records_count"), 1.0, "one write for one fetched batch");
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_publishers_in_one_group_complete_the_tables_without_duplicates() {
    let setup = setup(6).await;
    let records = synthetic_records(40, 100);
    let first = spawn_publisher(setup.settings(), Mode::Follow).await;
    let second = spawn_publisher(setup.settings(), Mode::Follow).await;
    // The group shares the six partitions before anything is produced, so that both publishers write.
    wait::until_true("the group to share the partitions", TABLES_DEADLINE, || async {
        let shares = [&first, &second].map(|publisher| publisher.metrics.assigned_partitions.get());
        shares.iter().all(|&share| share > 0) && shares.iter().sum::<i64>() == 6
    })
    .await;
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    for (name, publisher) in [("first", &first), ("second", &second)] {
        let written = sample(&publisher.metrics_text(), "publisher_batch_records_sum");
        assert!(written > 0.0, "the {name} publisher wrote its share of the same tables");
    }
    first.stop().await;
    second.stop().await;
}

//! Integration tests against a real Deephaven server: the shared one at
//! `DEEPHAVEN_URL` (started by `scripts/test.sh`), and private ones for the
//! tests that restart the server or need another authentication.

mod support;

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use deephaven_client::{
    Aggregate, Aggregation, Auth, Client, ClientConfig, Error, ErrorClass, Filter, InputTableKind, Operation,
    SessionStatus,
};
use futures::StreamExt as _;
use support::{batch, connect, connect_with, row_count, row_schema, rows, until_not_retryable, Row, DEADLINE};
use test_kit::names::unique_name;
use test_kit::stack::{DeephavenAuth, DeephavenOptions, PrivateDeephaven};
use test_kit::wait::until_true;
use tonic::Code;

/// The highest `KafkaOffset` per `KafkaPartition`, as `MaxOffset`.
fn max_offset_by_partition() -> Operation {
    Operation::aggregate(vec![Aggregation::columns(Aggregate::Max, ["MaxOffset=KafkaOffset"])], ["KafkaPartition"])
}

fn keyed() -> InputTableKind {
    InputTableKind::keyed(["Key"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_only_table_round_trips_every_type() {
    let client = connect().await;
    let name = unique_name("AppendOnly");
    let table = client
        .ensure_input_table(&name, row_schema(), InputTableKind::AppendOnly)
        .await
        .expect("create append-only table");
    assert!(client.scope_table_exists(&name).await.expect("exists"));

    let mut written = vec![
        Row::sample("a", 1),
        Row {
            key: "ünïcødé ✓ 日本 🚀".into(),
            note: None,
            at: None,
            count: None,
            small: None,
            flag: None,
            ratio: None,
        },
        Row {
            key: "extremes".into(),
            note: Some(String::new()),
            at: Some(-1_000_000_123),
            count: Some(i64::MAX),
            small: Some(i32::MAX),
            flag: Some(false),
            ratio: Some(-0.5),
        },
    ];
    client.append(&table, batch(&written)).await.expect("first append");
    // Append-only: the same key again is a new row.
    let again = vec![Row::sample("a", 2)];
    client.append(&table, batch(&again)).await.expect("second append");
    written.extend(again);

    let read = rows(&client.snapshot(&name).await.expect("snapshot"));
    assert_eq!(read, written);

    let schema = client.scope_table_schema(&name).await.expect("fetch schema").expect("table exists");
    let java: Vec<&str> =
        schema.fields().iter().map(|f| f.metadata().get("deephaven:type").map(String::as_str).unwrap_or("?")).collect();
    assert_eq!(
        java,
        ["java.lang.String", "java.lang.String", "java.time.Instant", "long", "int", "java.lang.Boolean", "double"]
    );
    assert_eq!(client.live_exports(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_table_replaces_rows_by_key() {
    let client = connect().await;
    let name = unique_name("Keyed");
    let table = client.ensure_input_table(&name, row_schema(), keyed()).await.expect("create keyed table");
    client.append(&table, batch(&[Row::sample("k1", 1), Row::sample("k2", 2)])).await.expect("insert");
    let replacement = Row { note: None, ..Row::sample("k1", 10) };
    client.append(&table, batch(&[replacement.clone(), Row::sample("k3", 3)])).await.expect("upsert");

    let mut read = rows(&client.snapshot(&name).await.expect("snapshot"));
    read.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(read, vec![replacement, Row::sample("k2", 2), Row::sample("k3", 3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_writes_to_a_published_table() {
    let first = connect().await;
    let second = connect().await;
    let name = unique_name("Shared");
    let table = first.ensure_input_table(&name, row_schema(), keyed()).await.expect("first session creates");
    first.append(&table, batch(&[Row::sample("first", 1)])).await.expect("first writes");

    // The second session finds the matching table instead of replacing it.
    let same =
        second.ensure_input_table(&name, row_schema(), keyed()).await.expect("second session opens the existing table");
    second.append(&same, batch(&[Row::sample("second", 2)])).await.expect("second writes");

    let mut keys: Vec<String> =
        rows(&first.snapshot(&name).await.expect("snapshot")).into_iter().map(|r| r.key).collect();
    keys.sort();
    assert_eq!(keys, ["first", "second"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_table_is_written_even_once_its_name_is_given_to_another() {
    let (writer, other) = (connect().await, connect().await);
    let name = unique_name("Pinned");
    let table = writer.ensure_input_table(&name, row_schema(), keyed()).await.expect("create");
    let pinned = writer.pin_input_table(table).await.expect("pin");
    writer.append(&pinned, batch(&[Row::sample("before", 1)])).await.expect("write before");

    // Another client creates the table anew under the same name: the pinned handle's rows do not go there.
    other.create_input_table(&name, row_schema(), keyed()).await.expect("created anew");
    writer.append(&pinned, batch(&[Row::sample("after", 2)])).await.expect("write after");
    assert_eq!(rows(&writer.snapshot(&name).await.expect("snapshot")), vec![], "the new table holds nothing");

    // A pinned handle belongs to its session.
    writer.reconnect().await.expect("reconnect");
    let err = writer.append(&pinned, batch(&[Row::sample("later", 3)])).await.expect_err("an earlier session's pin");
    assert_eq!(err.class(), ErrorClass::SessionLost, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_tables_are_checked_against_the_expected_definition() {
    let client = connect().await;
    let name = unique_name("Checked");
    client.ensure_input_table(&name, row_schema(), keyed()).await.expect("create");

    let wrong_keys = client
        .ensure_input_table(&name, row_schema(), InputTableKind::keyed(["Note"]))
        .await
        .expect_err("other key columns");
    assert_eq!(wrong_keys.class(), ErrorClass::Permanent);
    assert!(
        matches!(&wrong_keys, Error::SchemaMismatch { differences, .. } if differences[0].contains("key columns")),
        "{wrong_keys}"
    );

    let not_keyed = client
        .ensure_input_table(&name, row_schema(), InputTableKind::AppendOnly)
        .await
        .expect_err("append-only expected");
    assert!(matches!(not_keyed, Error::SchemaMismatch { .. }), "{not_keyed}");

    let mut fields: Vec<Field> = row_schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[3] = Field::new("Count", DataType::Int32, true);
    let retyped =
        client.ensure_input_table(&name, Arc::new(Schema::new(fields)), keyed()).await.expect_err("other column type");
    let message = retyped.to_string();
    assert!(message.contains("column `Count`: expected int, found long"), "{message}");

    // The table was left alone.
    let schema = client.scope_table_schema(&name).await.expect("fetch").expect("exists");
    assert_eq!(schema.field(3).data_type(), &DataType::Int64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_batches_and_bad_requests_are_permanent_errors() {
    let client = connect().await;
    let name = unique_name("Rejects");
    let table = client.ensure_input_table(&name, row_schema(), InputTableKind::AppendOnly).await.expect("create");

    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("Key", DataType::Int32, false)])),
        vec![Arc::new(Int32Array::from(vec![1]))],
    )
    .expect("batch");
    let mismatch = client.append(&table, other).await.expect_err("wrong columns");
    assert!(matches!(mismatch, Error::SchemaMismatch { .. }), "{mismatch}");
    assert!(!mismatch.is_retryable());
    assert_eq!(row_count(&client.snapshot(&name).await.expect("snapshot")), 0, "nothing written");

    let bad_filter = client
        .publish_derived(&name, &[Operation::Filter(Filter::expression("NoSuchColumn == 3"))], &unique_name("Bad"))
        .await
        .expect_err("unknown column");
    assert_eq!(bad_filter.class(), ErrorClass::Permanent, "{bad_filter}");
    assert_eq!(bad_filter.grpc_code(), Some(Code::InvalidArgument), "{bad_filter}");

    let missing = client.snapshot("DhcTestNoSuchTable").await.expect_err("missing table");
    assert_eq!(missing.grpc_code(), Some(Code::NotFound), "{missing}");
    assert!(missing.to_string().contains("DhcTestNoSuchTable"), "{missing}");
    assert!(!client.scope_table_exists("DhcTestNoSuchTable").await.expect("exists check"));
    assert_eq!(client.live_exports(), 0, "failed calls release their tickets too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_offset_per_partition_is_aggregated_server_side() {
    let client = connect().await;
    let name = unique_name("Log");
    let schema = Arc::new(Schema::new(vec![
        Field::new("KafkaPartition", DataType::Int32, false),
        Field::new("KafkaOffset", DataType::Int64, false),
    ]));
    let table =
        client.ensure_input_table(&name, schema.clone(), InputTableKind::AppendOnly).await.expect("create log table");
    let log = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int32Array::from(vec![0, 1, 0, 2, 1, 0])), Arc::new(Int64Array::from(vec![5, 7, 9, 1, 3, 2]))],
    )
    .expect("batch");
    client.append(&table, log).await.expect("append log");

    let batches = client.derived_snapshot(&name, &[max_offset_by_partition()]).await.expect("aggregate");
    let mut maxima = Vec::new();
    for batch in &batches {
        let partition = batch.column_by_name("KafkaPartition").expect("partition");
        let partition = partition.as_any().downcast_ref::<Int32Array>().expect("int partition");
        let offset = batch.column_by_name("MaxOffset").expect("max offset");
        let offset = offset.as_any().downcast_ref::<Int64Array>().expect("long offset");
        maxima.extend((0..batch.num_rows()).map(|i| (partition.value(i), offset.value(i))));
    }
    maxima.sort_unstable();
    assert_eq!(maxima, [(0, 9), (1, 7), (2, 1)]);
    assert_eq!(client.live_exports(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_views_are_published_and_tick_with_their_source() {
    let client = connect().await;
    let name = unique_name("Alerts");
    let schema = Arc::new(Schema::new(vec![
        Field::new("Fingerprint", DataType::Utf8, false),
        Field::new("Status", DataType::Utf8, true),
    ]));
    let table =
        client.ensure_input_table(&name, schema.clone(), InputTableKind::keyed(["Fingerprint"])).await.expect("create");
    let alerts = |rows: &[(&str, &str)]| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            ],
        )
        .expect("batch")
    };
    client.append(&table, alerts(&[("a", "firing"), ("b", "resolved"), ("c", "firing")])).await.expect("append");

    let firing = unique_name("Firing");
    client
        .publish_derived(&name, &[Operation::Filter(Filter::equals("Status", "firing"))], &firing)
        .await
        .expect("structured filter view");
    let resolved = unique_name("Resolved");
    client
        .publish_derived(&name, &[Operation::Filter(Filter::expression("Status = `resolved`"))], &resolved)
        .await
        .expect("query-language filter view");

    let fingerprints = |batches: Vec<RecordBatch>| {
        let mut out: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let column = b.column_by_name("Fingerprint").expect("column");
                let strings = column.as_any().downcast_ref::<StringArray>().expect("strings");
                (0..strings.len()).map(|i| strings.value(i).to_owned()).collect::<Vec<_>>()
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(fingerprints(client.snapshot(&firing).await.expect("view")), ["a", "c"]);
    assert_eq!(fingerprints(client.snapshot(&resolved).await.expect("view")), ["b"]);

    // `a` resolves, `d` fires: the published view follows its source.
    client.append(&table, alerts(&[("a", "resolved"), ("d", "firing")])).await.expect("update");
    until_true("the firing view to tick", DEADLINE, || async {
        fingerprints(client.snapshot(&firing).await.expect("view")) == ["c", "d"]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_table_aggregates_every_source_and_ticks_with_each() {
    let client = connect().await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("KafkaPartition", DataType::Int32, false),
        Field::new("KafkaOffset", DataType::Int64, false),
    ]));
    let rows = |partitions: Vec<i32>, offsets: Vec<i64>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int32Array::from(partitions)), Arc::new(Int64Array::from(offsets))],
        )
        .expect("batch")
    };
    let (first, second) = (unique_name("Old"), unique_name("New"));
    let mut tables = Vec::new();
    for name in [&first, &second] {
        tables.push(client.ensure_input_table(name, schema.clone(), InputTableKind::AppendOnly).await.expect("create"));
    }
    client.append(&tables[0], rows(vec![0, 1], vec![5, 7])).await.expect("append");
    client.append(&tables[1], rows(vec![0], vec![9])).await.expect("append");

    let merged = unique_name("Merged");
    let max = Operation::aggregate(vec![Aggregation::columns(Aggregate::Max, ["KafkaOffset"])], ["KafkaPartition"]);
    client.publish_merged(&[&first, &second], &[max], &merged).await.expect("merge");
    let maxima = || async {
        let mut maxima = Vec::new();
        for batch in client.snapshot(&merged).await.expect("snapshot") {
            let partition = batch.column_by_name("KafkaPartition").expect("partition");
            let partition = partition.as_any().downcast_ref::<Int32Array>().expect("int partition");
            let offset = batch.column_by_name("KafkaOffset").expect("offset");
            let offset = offset.as_any().downcast_ref::<Int64Array>().expect("long offset");
            maxima.extend((0..batch.num_rows()).map(|i| (partition.value(i), offset.value(i))));
        }
        maxima.sort_unstable();
        maxima
    };
    assert_eq!(maxima().await, [(0, 9), (1, 7)], "the rows of both sources");

    client.append(&tables[0], rows(vec![1], vec![11])).await.expect("append");
    until_true("the merge to tick with its first source", DEADLINE, || async { maxima().await == [(0, 9), (1, 11)] })
        .await;
    assert!(client.publish_merged(&[], &[], &merged).await.is_err(), "a merge of nothing is refused");
    assert_eq!(client.live_exports(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_view_computes_its_columns_once_per_arriving_row() {
    let client = connect().await;
    let name = unique_name("Stamped");
    let table = client.ensure_input_table(&name, row_schema(), keyed()).await.expect("create");
    let view = unique_name("StampedView");
    client.publish_updated_view(&name, &["Doubled = Count * 2", "SeenAt = now()"], &view).await.expect("updated view");
    let unix_nanos = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let stamps = |batches: Vec<RecordBatch>| {
        let mut out: Vec<(String, i64, i64)> = batches
            .iter()
            .flat_map(|b| {
                let keys = b.column_by_name("Key").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
                let doubled =
                    b.column_by_name("Doubled").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
                let seen = b.column_by_name("SeenAt").expect("SeenAt column").clone();
                let seen = seen.as_any().downcast_ref::<arrow::array::TimestampNanosecondArray>().unwrap().clone();
                (0..b.num_rows()).map(move |i| (keys.value(i).to_owned(), doubled.value(i), seen.value(i)))
            })
            .collect();
        out.sort();
        out
    };

    let before = unix_nanos();
    client.append(&table, batch(&[Row::sample("a", 21)])).await.expect("append a");
    // The append is done once the input table holds the row; the view may tick a moment later.
    until_true("the view to show the first row", DEADLINE, || async {
        !stamps(client.snapshot(&view).await.expect("view")).is_empty()
    })
    .await;
    let first = stamps(client.snapshot(&view).await.expect("view"));
    let read = unix_nanos();
    assert_eq!(first.len(), 1, "{first:?}");
    let (key, doubled, seen_a) = first[0].clone();
    assert_eq!((key.as_str(), doubled), ("a", 42));
    // Stamped in the update cycle that carried the row to the view: after the append began, before it was read.
    assert!((before..=read).contains(&seen_a), "{before} <= {seen_a} <= {read}");

    client.append(&table, batch(&[Row::sample("b", 5)])).await.expect("append b");
    until_true("the view to tick", DEADLINE, || async {
        stamps(client.snapshot(&view).await.expect("view")).len() == 2
    })
    .await;
    let second = stamps(client.snapshot(&view).await.expect("view"));
    assert_eq!(second[0], ("a".to_owned(), 42, seen_a), "an earlier row keeps its stamp");
    assert!(second[1].2 >= read, "{second:?}");

    let bad = client.publish_updated_view(&name, &["X = NoSuchColumn + 1"], &unique_name("Bad")).await.unwrap_err();
    assert_eq!(bad.class(), ErrorClass::Permanent, "{bad}");
    assert_eq!(client.live_exports(), 0, "every call released its tickets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_survives_token_rotations() {
    let client = connect().await;
    let duration = client.session_duration();
    assert!(
        duration <= Duration::from_secs(120),
        "this test needs a short session (DEEPHAVEN_SESSION_DURATION_MS=30000, as scripts/test.sh sets); the server says {duration:?}"
    );
    let name = unique_name("Idle");
    let table = client.ensure_input_table(&name, row_schema(), keyed()).await.expect("create");
    let started = Instant::now();
    let rotations_before = client.token_rotations();

    // Idle, but alive: outlive the original token and see several rotations.
    let outlive = duration + duration / 4;
    until_true("3 adopted tokens and 1.25 session durations", duration * 4 + DEADLINE, || async {
        client.token_rotations() >= rotations_before + 3 && started.elapsed() >= outlive
    })
    .await;
    assert_eq!(*client.session_status().borrow(), SessionStatus::Active { generation: 1 });

    client.append(&table, batch(&[Row::sample("later", 7)])).await.expect("append after idling");
    assert_eq!(rows(&client.snapshot(&name).await.expect("snapshot")), vec![Row::sample("later", 7)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thousands_of_appends_leak_no_tickets() {
    const APPENDS: usize = 3_000;
    const CONCURRENCY: usize = 8;
    /// Every this many appends, one also counts the server's exports while the others are in flight.
    const SAMPLE_EVERY: usize = 250;
    let client = connect().await;
    let name = unique_name("Many");
    let table = client.ensure_input_table(&name, row_schema(), InputTableKind::AppendOnly).await.expect("create");
    let baseline = client.live_exports();
    let server_exports = || async { client.server_exports().await.expect("count the server's exports") };
    assert_eq!(server_exports().await, baseline, "the server holds exactly what the client holds");

    let started = Instant::now();
    let (peak, server_peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let append_all = |appends: Range<usize>| {
        futures::stream::iter(appends).for_each_concurrent(CONCURRENCY, |i| {
            let (client, table, peak, server_peak) = (client.clone(), table.clone(), &peak, &server_peak);
            async move {
                let row = Row::sample(&format!("r{i}"), i as i64);
                client.append(&table, batch(&[row])).await.expect("append");
                peak.fetch_max(client.live_exports(), Ordering::Relaxed);
                if i % SAMPLE_EVERY == 0 {
                    let under_load = client.server_exports().await.expect("count the server's exports under load");
                    server_peak.fetch_max(under_load, Ordering::Relaxed);
                }
            }
        })
    };
    append_all(0..APPENDS / 2).await;
    let middle = server_exports().await;
    append_all(APPENDS / 2..APPENDS).await;
    let end = server_exports().await;
    let elapsed = started.elapsed();
    let (peak, server_peak) = (peak.into_inner(), server_peak.into_inner());
    eprintln!(
        "{APPENDS} one-row appends, {CONCURRENCY} in flight: {elapsed:?} ({:.0} appends/s); exports held: client \
         peak {peak}, server peak under load {server_peak}, server {middle} halfway, {end} at the end",
        APPENDS as f64 / elapsed.as_secs_f64()
    );

    assert!(peak <= CONCURRENCY, "live exports peaked at {peak}");
    assert!(server_peak <= baseline + CONCURRENCY, "the server held {server_peak} exports under load");
    assert_eq!(client.live_exports(), baseline, "every export was released");
    assert_eq!(client.unconfirmed_releases(), 0, "and the server acknowledged every release");
    assert_eq!(middle, baseline, "halfway, the server holds only what the client holds");
    assert_eq!(end, middle, "and no more at the end");
    assert_eq!(row_count(&client.snapshot(&name).await.expect("snapshot")), APPENDS);
}

/// Large appends of new keys and many upserts of one key all land: every new key once, the upserted key once.
/// (How fast: `deephaven-ceiling` in `scripts/bench.sh`, not a test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_appends_and_repeated_upserts_of_one_key_all_land_once_per_key() {
    const BATCH_ROWS: usize = 10_000;
    const BATCHES: usize = 10;
    let client = connect().await;
    let name = unique_name("LargeAppends");
    let table = client.ensure_input_table(&name, row_schema(), keyed()).await.expect("create");

    for b in 0..BATCHES {
        let rows: Vec<Row> = (0..BATCH_ROWS).map(|i| Row::sample(&format!("key-{b}-{i}"), i as i64)).collect();
        client.append(&table, batch(&rows)).await.expect("10k-row append");
    }
    for i in 0..100 {
        client.append(&table, batch(&[Row::sample("single", i)])).await.expect("one-row append");
    }

    assert_eq!(row_count(&client.snapshot(&name).await.expect("snapshot")), BATCH_ROWS * BATCHES + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_nothing_is_retryable() {
    let config = ClientConfig::new(format!("http://127.0.0.1:{}", test_kit::stack::free_port()))
        .with_connect_timeout(Duration::from_secs(2));
    let err = Client::connect(config).await.expect_err("nothing listens");
    assert!(err.is_retryable(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_means_session_lost_then_reconnect_and_recreate() {
    support::init_tracing();
    const PSK: &str = "test-psk-0123456789";
    // The default 300 s session: the caller's keep-alive (every 75 s) stays
    // out of the way, so its own call is what meets the refused token.
    let server = PrivateDeephaven::start_with(DeephavenOptions { auth: DeephavenAuth::psk(PSK), ..Default::default() });
    let config = ClientConfig::new(server.url());

    let refused = until_not_retryable("login with a wrong key", DEADLINE, || {
        Client::connect(config.clone().with_auth(Auth::psk("wrong-key")))
    })
    .await
    .expect_err("wrong key");
    assert!(matches!(refused, Error::AuthenticationFailed { .. }), "{refused:?}");
    assert_eq!(refused.class(), ErrorClass::Permanent);

    let config = config.with_auth(Auth::psk(PSK));
    let client = connect_with(config.clone()).await;
    // A second client that only idles: its keep-alive must notice the loss.
    let idle = connect_with(config.with_keepalive_interval(Duration::from_millis(500))).await;
    let mut status = client.session_status();
    let mut idle_status = idle.session_status();
    let name = unique_name("Restart");
    let table = client.ensure_input_table(&name, row_schema(), keyed()).await.expect("create");
    client.append(&table, batch(&[Row::sample("before", 1)])).await.expect("append before");

    server.restart();

    let lost = until_not_retryable("the first call after the restart", DEADLINE, || {
        client.append(&table, batch(&[Row::sample("during", 2)]))
    })
    .await
    .expect_err("the old session cannot survive a restart");
    assert!(lost.is_session_lost(), "{lost:?}");
    assert_eq!(lost.class(), ErrorClass::SessionLost);
    assert!(!lost.to_string().contains("lost earlier"), "the call itself met the refused token: {lost}");
    assert!(
        matches!(&*status.borrow_and_update(), SessionStatus::Lost { generation: 1, .. }),
        "{:?}",
        *status.borrow()
    );
    let fast = client.snapshot(&name).await.expect_err("lost sessions fail fast");
    assert!(fast.is_session_lost(), "{fast:?}");

    tokio::time::timeout(DEADLINE, idle_status.wait_for(|s| matches!(s, SessionStatus::Lost { generation: 1, .. })))
        .await
        .expect("the idle client's keep-alive reports the lost session in time")
        .expect("status channel open");

    until_not_retryable("reconnect", DEADLINE, || client.reconnect()).await.expect("reconnect");
    assert_eq!(*status.borrow_and_update(), SessionStatus::Active { generation: 2 });
    assert!(!client.scope_table_exists(&name).await.expect("exists"), "tables are gone after a restart");

    let table = client.ensure_input_table(&name, row_schema(), keyed()).await.expect("re-create");
    client.append(&table, batch(&[Row::sample("after", 3)])).await.expect("append after");
    assert_eq!(rows(&client.snapshot(&name).await.expect("snapshot")), vec![Row::sample("after", 3)]);
    assert_eq!(client.live_exports(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_admits_the_right_password_only() {
    support::init_tracing();
    const USER: &str = "alerthaven";
    // A colon in the password: only the first one separates the user name.
    const PASSWORD: &str = "correct:horse battery staple";
    let server = PrivateDeephaven::start_with(DeephavenOptions {
        auth: DeephavenAuth::basic(USER, PASSWORD),
        ..Default::default()
    });
    let config = ClientConfig::new(server.url());

    let refused = until_not_retryable("login with a wrong password", DEADLINE, || {
        Client::connect(config.clone().with_auth(Auth::basic(USER, "correct:horse")))
    })
    .await
    .expect_err("wrong password");
    assert!(matches!(refused, Error::AuthenticationFailed { code: Code::Unauthenticated, .. }), "{refused:?}");
    assert_eq!(refused.class(), ErrorClass::Permanent);
    assert!(!refused.is_retryable() && !refused.is_session_lost());
    for (what, auth) in [("wrong user", Auth::basic("intruder", PASSWORD)), ("anonymous", Auth::Anonymous)] {
        let refused = Client::connect(config.clone().with_auth(auth)).await.expect_err(what);
        assert!(matches!(refused, Error::AuthenticationFailed { .. }), "{what}: {refused:?}");
    }

    let client = connect_with(config.with_auth(Auth::basic(USER, PASSWORD))).await;
    let name = unique_name("Basic");
    let table = client.ensure_input_table(&name, row_schema(), keyed()).await.expect("create");
    client.append(&table, batch(&[Row::sample("basic", 1)])).await.expect("append");
    assert_eq!(rows(&client.snapshot(&name).await.expect("snapshot")), vec![Row::sample("basic", 1)]);
    assert_eq!(client.server_exports().await.expect("server exports"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_session_is_gone_on_the_server_and_its_tables_stay() {
    let client = connect().await;
    let name = unique_name("Closed");
    client.ensure_input_table(&name, row_schema(), keyed()).await.expect("create");
    client.close().await.expect("the session closes");
    // Asked with the closed session's token, the server itself refuses it.
    let after = client.scope_table_exists(&name).await;
    assert!(matches!(after, Err(Error::SessionLost { .. })), "the server refuses the closed session: {after:?}");
    client.reconnect().await.expect("a new session");
    assert!(client.scope_table_exists(&name).await.expect("answers"), "the published table outlived the session");
}

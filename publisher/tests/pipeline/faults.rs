//! Faults: the publisher killed at random points, and Deephaven restarted empty under it.

use crate::delivery::synthetic_records;
use crate::helpers::*;
use publisher::pipeline::Mode;
use schemas::{AlertRecord, EventId, Status, Timestamp};
use secrecy::SecretString;
use std::time::Duration;
use test_kit::metrics::sample;
use test_kit::stack::{PrivateBroker, PrivateDeephaven};
use test_kit::wait;

/// Small batches, so a kill lands between many writes.
const SMALL_BATCHES: &[(&str, &str)] = &[("PUBLISHER_BATCH__MAX_ROWS", "50")];

#[tokio::test(flavor = "multi_thread")]
async fn killed_with_sigkill_at_random_points_the_tables_end_exact() {
    let setup = setup(6).await;
    let records = synthetic_records(150, 300);
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    let client = client(&setup.deephaven_url).await;

    // Kill after roughly a fifth, two fifths and three fifths of the events are in, give or take a random amount.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as usize;
    for (round, fifth) in [1, 2, 3].into_iter().enumerate() {
        let threshold = expected.events.len() * fifth / 5 + (nanos >> round) % 100;
        let mut publisher = spawn_binary(&setup, SMALL_BATCHES);
        let (client, prefix) = (&client, &setup.prefix);
        wait::until("the publisher to make progress before the kill", TABLES_DEADLINE, || {
            let exited = publisher.child.try_wait().unwrap();
            async move {
                assert!(exited.is_none(), "the publisher exited early: {exited:?}");
                let events = read_tables(client, prefix).await.events.len();
                if events >= threshold {
                    Ok(())
                } else {
                    Err(events)
                }
            }
        })
        .await;
        publisher.kill();
    }
    let publisher = spawn_binary(&setup, SMALL_BATCHES);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    publisher.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_writes_the_batch_in_hand_and_exits_0() {
    let setup = setup(2).await;
    let records = synthetic_records(20, 900);
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    // A batch that closes only after a minute: on SIGTERM the publisher holds every record, unwritten.
    let mut publisher = spawn_binary(&setup, &[("PUBLISHER_BATCH__MAX_WAIT", "60s")]);
    publisher
        .wait_for_metric(&format!("publisher_records_consumed_total {}", records.len()), Duration::from_secs(60))
        .await;
    let client = client(&setup.deephaven_url).await;
    // A write would start at once after the reads; looked at for a while, since its rows show only once applied.
    wait::holds_for("nothing written before the batch closes", Duration::from_secs(3), || async {
        let (_, metrics) = publisher.get("/metrics").await?;
        let batches = sample(&metrics, "publisher_batch_records_count");
        match (batches, read_tables_or_fail(&client, &setup.prefix).await.events.len()) {
            (0.0, 0) => Ok(()),
            written => Err(format!("batches written, events: {written:?}")),
        }
    })
    .await;

    let status = publisher.terminate_and_wait("the publisher").await;
    assert!(status.success(), "{status}");
    assert_eq!(read_tables(&client, &setup.prefix).await, expected, "the batch in hand was written before exiting");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_backlog_exits_after_the_batch_in_hand_and_a_restart_completes_the_tables() {
    let setup = setup(1).await;
    let records = synthetic_records(1_000, 5_000);
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    // Batches of 50: the backlog takes two hundred writes, and SIGTERM comes after the first few.
    let mut publisher = spawn_binary(&setup, SMALL_BATCHES);
    let client = client(&setup.deephaven_url).await;
    wait::until("the publisher to be under way with the backlog", TABLES_DEADLINE, || async {
        match read_tables(&client, &setup.prefix).await.events.len() {
            written if written >= 100 => Ok(()),
            written => Err(written),
        }
    })
    .await;

    let status = publisher.terminate_and_wait("the publisher").await;
    assert!(status.success(), "{status}");
    let written = read_tables_or_fail(&client, &setup.prefix).await.events.len();
    assert!(written < expected.events.len(), "stopped within the backlog, not at its end: {written} written");

    let publisher = spawn_binary(&setup, SMALL_BATCHES);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    publisher.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn deephaven_restarted_empty_is_rebuilt_by_replay_without_help() {
    let deephaven = PrivateDeephaven::start(None, None);
    let setup = setup_with(3, &deephaven.url()).await;
    let first = synthetic_records(10, 1_000);
    let mut acked = produce(&setup.brokers, &setup.topic, &first).await;
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    let expected_first = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected_first).await;

    // An idle publisher notices Deephaven is gone (not ready), and rebuilds the tables once it is back, empty,
    // without waiting for a new record.
    deephaven.stop();
    publisher.wait_for_readiness("the publisher to report Deephaven unusable", |readiness| !readiness.deephaven).await;
    deephaven.restart();
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected_first).await;
    assert!(publisher.health.readiness().deephaven, "ready again once the tables are rebuilt");

    // Then the records that arrive later land too.
    let second = synthetic_records(10, 2_000);
    acked.extend(produce(&setup.brokers, &setup.topic, &second).await);
    let expected_all = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected_all).await;
    assert!(publisher.metrics.deephaven_reconnects.get() >= 1);
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_halt_the_publisher_with_the_reason_on_readyz() {
    let deephaven = PrivateDeephaven::start(Some("the-right-key"), None);
    let setup = setup_with(1, &deephaven.url()).await;
    let mut settings = setup.settings();
    settings.deephaven.psk = Some(SecretString::from("a-wrong-key"));
    let publisher = spawn_publisher(settings, Mode::Follow).await;
    let reason = wait::until("the publisher to halt", TABLES_DEADLINE, || async {
        publisher.health.readiness().halted.ok_or("not halted")
    })
    .await;
    assert!(reason.contains("login refused"), "{reason}");
    assert!(!publisher.health.readiness().ready);
    assert_eq!(sample(&publisher.metrics_text(), "publisher_halted"), 1.0);
    assert!(!reason.contains("a-wrong-key"), "the key never shows: {reason}");
    assert!(publisher.stopped().await.is_err(), "a halted publisher ends with its reason");
}

/// `alerts` alerts going through `rounds` states: firing, resolved, firing again (a later occurrence), ...
fn state_changes(alerts: u64, rounds: u64) -> Vec<Vec<AlertRecord>> {
    let base = synthetic_records(alerts / 10, 5_000);
    let minute = 60_000_000_000;
    (0..rounds)
        .map(|round| {
            base.iter()
                .enumerate()
                .map(|(index, record)| {
                    let mut record = record.clone();
                    let starts_at =
                        Timestamp::from_unix_nanos(record.starts_at.unix_nanos() + (round / 2) as i64 * minute);
                    let (status, ends_at) = match round % 2 {
                        0 => (Status::Firing, None),
                        _ => (Status::Resolved, Some(Timestamp::from_unix_nanos(starts_at.unix_nanos() + 1))),
                    };
                    record.status = status;
                    record.starts_at = starts_at;
                    record.ends_at = ends_at;
                    record.event_id = EventId::of(&record.fingerprint, status, starts_at, ends_at);
                    record.received_at = received_at((round as usize) * base.len() + index);
                    record
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_publishers_under_load_through_rebalances_and_a_kill_end_exact() {
    let setup = setup(6).await;
    let rounds = state_changes(200, 6);
    let mut first = Some(spawn_binary(&setup, SMALL_BATCHES));
    let second = spawn_binary(&setup, SMALL_BATCHES);
    let client = client(&setup.deephaven_url).await;
    let mut acked = Vec::new();
    let mut third = None;
    for (round, records) in rounds.iter().enumerate() {
        acked.extend(produce(&setup.brokers, &setup.topic, records).await);
        // The group changes while the round just produced is being written.
        match round {
            1 => third = Some(spawn_binary(&setup, SMALL_BATCHES)),
            3 => third.take().expect("the third member").kill(),
            4 => first.take().expect("the first member").kill(),
            _ => {}
        }
        let (client, prefix, events_so_far) = (&client, &setup.prefix, (round + 1) * records.len() / 2);
        wait::until("the tables to take in part of the round", TABLES_DEADLINE, || async move {
            let events = read_tables(client, prefix).await.events.len();
            if events >= events_so_far {
                Ok(())
            } else {
                Err(events)
            }
        })
        .await;
    }
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    assert_eq!(expected.events.len(), acked.len(), "every state is distinct");
    assert!(expected.alerts.values().all(|(status, _, _)| status == "resolved"), "each ends resolved");
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    second.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_deephaven_makes_the_publisher_unready_and_it_catches_up_after() {
    let deephaven = PrivateDeephaven::start(None, None);
    let setup = setup_with(3, &deephaven.url()).await;
    let mut settings = setup.settings();
    settings.deephaven.request_timeout = Duration::from_secs(3);
    let publisher = spawn_publisher(settings, Mode::Follow).await;
    let mut acked = Vec::new();
    // Freezes while records keep arriving and while none do: a write and an idle check must both notice.
    for (cycle, busy) in [true, false, true, false, true, false].into_iter().enumerate() {
        let records = synthetic_records(20, 10_000 + 100 * cycle as u64);
        acked.extend(produce(&setup.brokers, &setup.topic, &records[..records.len() / 2]).await);
        if cycle == 0 {
            // The partitions assigned and a first write done, so that the freeze finds the publisher reading.
            wait_for_tables(
                &setup.deephaven_url,
                &setup.prefix,
                &expected(&positions(&setup.brokers, &setup.topic, &acked).await),
            )
            .await;
        }
        deephaven.pause();
        if busy {
            acked.extend(produce(&setup.brokers, &setup.topic, &records[records.len() / 2..]).await);
        }
        let unusable = format!("cycle {cycle}: the publisher to report a frozen Deephaven unusable");
        publisher.wait_for_readiness(&unusable, |readiness| !readiness.deephaven).await;
        if cycle == 0 {
            // Read but not written: the consumed freshness moves on, the written one stays behind.
            let newest = records.iter().map(|record| record.received_at.unix_nanos()).max().unwrap() as f64 / 1e9;
            // A write and a check that time out are retried on the same session, and reading goes on meanwhile.
            wait::until("the states read while frozen to count as consumed", TABLES_DEADLINE, || async {
                let metrics = &publisher.metrics;
                match metrics.newest_consumed_received_at.get() {
                    consumed if consumed == newest => Ok(()),
                    consumed => Err(format!(
                        "consumed {consumed}, newest {newest}, written {}, retries {}, reconnects {}",
                        metrics.newest_written_received_at.get(),
                        metrics.deephaven_retries.get(),
                        metrics.deephaven_reconnects.get()
                    )),
                }
            })
            .await;
            assert!(publisher.metrics.newest_written_received_at.get() < newest, "nothing newest is written yet");
        }
        deephaven.resume();
        if !busy {
            acked.extend(produce(&setup.brokers, &setup.topic, &records[records.len() / 2..]).await);
        }
        let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
        wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
        publisher.wait_for_readiness(&format!("cycle {cycle}: ready again"), |readiness| readiness.deephaven).await;
    }
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_a_broker_restarted_empty_are_applied_though_their_offsets_start_again() {
    let broker = PrivateBroker::start(3);
    let setup =
        Setup { brokers: broker.brokers(), topic: "alerts".into(), dlq_topic: "alerts.dlq".into(), ..setup(3).await };
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    let first = synthetic_records(20, 30_000);
    let acked = produce(&setup.brokers, &setup.topic, &first).await;
    let first = positions(&setup.brokers, &setup.topic, &acked).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected(&first)).await;

    // The memory broker forgets everything: the topic comes back empty, numbering from 0, below what was applied.
    broker.stop();
    broker.restart();
    let second = synthetic_records(5, 31_000);
    let mut acked_since_restart = produce(&setup.brokers, &setup.topic, &second).await;
    let second = positions(&setup.brokers, &setup.topic, &acked_since_restart).await;
    let both: Vec<_> = first.iter().chain(&second).cloned().collect();
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected(&both)).await;
    assert_eq!(publisher.metrics.topic_incarnations.get(), 1, "one new incarnation found");

    // A publisher started now resumes in the new incarnation: the records produced next land too.
    publisher.stop().await;
    let third = synthetic_records(5, 32_000);
    acked_since_restart.extend(produce(&setup.brokers, &setup.topic, &third).await);
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    let later = positions(&setup.brokers, &setup.topic, &acked_since_restart).await;
    let all: Vec<_> = first.iter().chain(&later).cloned().collect();
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected(&all)).await;
    assert_eq!(publisher.metrics.topic_incarnations.get(), 0, "it follows the incarnation Deephaven names");
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jump_in_offsets_is_read_again_then_read_across_when_it_holds_no_record() {
    let setup = setup(1).await;
    // Two transactions between plain writes: each commit marker is an offset no consumer sees, a jump that every
    // re-read shows again (unlike the records the local broker's fetches skip, which a re-read finds).
    let records = synthetic_records(5, 7_000);
    let mut acked = Vec::new();
    for (index, body) in records.chunks(10).enumerate() {
        acked.extend(match index % 2 {
            0 => produce(&setup.brokers, &setup.topic, body).await,
            _ => produce_in_transaction(&setup.brokers, &setup.topic, body).await,
        });
    }
    let expected = expected(&positions(&setup.brokers, &setup.topic, &acked).await);
    assert_eq!(expected.events.len(), records.len());

    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    let metrics = publisher.metrics_text();
    assert_eq!(sample(&metrics, "publisher_offset_jumps_accepted_total"), 2.0, "one per commit marker read past");
    let rereads = 2 * (publisher::continuity::LOOKS - 1);
    assert_eq!(sample(&metrics, "publisher_offset_jumps_reread_total"), f64::from(rereads), "each looked at again");
    publisher.stop().await;
}

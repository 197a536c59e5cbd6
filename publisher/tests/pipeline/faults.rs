//! Faults: the publisher killed at random points, and Deephaven restarted empty under it.

use crate::delivery::synthetic_records;
use crate::helpers::*;
use e2e::stack::PrivateDeephaven;
use e2e::wait;
use publisher::pipeline::Mode;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn spawn_binary(setup: &Setup, max_rows: usize) -> Child {
    Command::new(env!("CARGO_BIN_EXE_publisher"))
        .envs(setup.env())
        .env("PUBLISHER_BATCH__MAX_ROWS", max_rows.to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the publisher binary")
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_with_sigkill_at_random_points_the_tables_end_exact() {
    let setup = setup(6).await;
    let records = synthetic_records(150, 300);
    produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, records.len()).await);
    let client = client(&setup.deephaven_url).await;

    // Kill after roughly a fifth, two fifths and three fifths of the events are in, give or take a random amount.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as usize;
    for (round, fifth) in [1, 2, 3].into_iter().enumerate() {
        let threshold = expected.events.len() * fifth / 5 + (nanos >> round) % 100;
        let mut child = spawn_binary(&setup, 50);
        let (client, prefix) = (&client, &setup.prefix);
        wait::until("the publisher to make progress before the kill", TABLES_DEADLINE, || {
            let exited = child.try_wait().unwrap();
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
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }
    let mut child = spawn_binary(&setup, 50);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_writes_the_batch_in_hand_and_exits_0() {
    let setup = setup(2).await;
    let records = synthetic_records(20, 900);
    produce(&setup.brokers, &setup.topic, &records).await;
    let expected = expected(&positions(&setup.brokers, &setup.topic, records.len()).await);
    // A batch that closes only after a minute: on SIGTERM the publisher holds every record, unwritten.
    let env = setup.env();
    let port = &env.iter().find(|(name, _)| *name == "PUBLISHER_SERVER__PORT").unwrap().1;
    let mut child = Command::new(env!("CARGO_BIN_EXE_publisher"))
        .envs(env.clone())
        .env("PUBLISHER_BATCH__MAX_WAIT", "60s")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let wanted = format!("publisher_records_consumed_total {}", records.len());
    wait::until("the publisher to hold every record", Duration::from_secs(60), || async {
        let metrics =
            reqwest::get(&metrics_url).await.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())?;
        if metrics.contains(&wanted) {
            Ok(())
        } else {
            Err("not all consumed yet".to_owned())
        }
    })
    .await;
    let client = client(&setup.deephaven_url).await;
    assert!(read_tables(&client, &setup.prefix).await.events.is_empty(), "nothing written before the batch closes");

    e2e::process::terminate(&child);
    let status =
        e2e::process::wait_for_exit(&mut child, "the publisher to exit after SIGTERM", Duration::from_secs(30)).await;
    assert!(status.success(), "{status}");
    assert_eq!(read_tables(&client, &setup.prefix).await, expected, "the batch in hand was written before exiting");
}

#[tokio::test(flavor = "multi_thread")]
async fn deephaven_restarted_empty_is_rebuilt_by_replay_without_help() {
    let deephaven = PrivateDeephaven::start(None, None);
    let setup = setup_with(3, &deephaven.url()).await;
    let first = synthetic_records(10, 1_000);
    produce(&setup.brokers, &setup.topic, &first).await;
    let publisher = spawn_publisher(setup.settings(), Mode::Follow);
    let expected_first = expected(&positions(&setup.brokers, &setup.topic, first.len()).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected_first).await;

    deephaven.restart();
    // More records while and after Deephaven comes back; the publisher must notice, re-create and replay.
    let second = synthetic_records(10, 2_000);
    produce(&setup.brokers, &setup.topic, &second).await;
    let expected_all = expected(&positions(&setup.brokers, &setup.topic, first.len() + second.len()).await);
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected_all).await;
    assert!(publisher.metrics.deephaven_reconnects.get() >= 1);
    publisher.stop().await;
}

//! The fault matrix under a steady load: one ingest instance killed, the publisher killed, Deephaven restarted,
//! Deephaven frozen: after each, every alert ingest acknowledged is in Deephaven exactly once. Then a replay into
//! another Deephaven rebuilds tables equal to the live ones. Last, the broker stopped and brought back: with the
//! local memory-only broker that loses records, so the claims there are narrower (see the phase).
//!
//! One test, the faults in sequence on a private broker and Deephaven (both get stopped), so each phase also
//! proves the pipeline recovered from the one before.

use crate::support::*;
use test_kit::load::{Ledger, Load};
use test_kit::stack::{free_port, PrivateBalancer, PrivateBroker, PrivateDeephaven, Stack};
use test_kit::wait;

/// Starts a phase's load (alerts of its own) and returns once ingest is acknowledging it.
async fn start_phase(balancer: &PrivateBalancer, phase: u64) -> Load {
    let load = steady_load(&balancer.alerts_url(), phase * 1_000_000);
    wait_for_acknowledgements(&load, 0, 200, "before the fault").await;
    load
}

/// Ends a phase after the fault: more load must be acknowledged, then the load stops; returns its ledger.
async fn finish_phase(load: Load, phase: u64) -> Ledger {
    let acknowledged = load.ledger().acknowledged.len();
    wait_for_acknowledgements(&load, acknowledged, 200, "after recovering").await;
    let ledger = load.stop().await;
    eprintln!(
        "phase {phase}: {} alert states sent, {} acknowledged; answers {:?}",
        ledger.sent.len(),
        ledger.acknowledged.len(),
        ledger.answers
    );
    ledger
}

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_alert_lands_exactly_once_through_the_fault_matrix() {
    let broker = PrivateBroker::start(6);
    let deephaven = PrivateDeephaven::start(None, None);
    let pipeline = Pipeline::new(&broker.brokers(), &deephaven.url(), "alerts", "alerts.dlq");
    let Running { ingest_ports, ingest, balancer, publisher } = pipeline.start(free_port()).await;
    let mut all = Ledger::default();

    // kill -9 one ingest instance: HAProxy sends the load to the other; the killed one comes back.
    let load = start_phase(&balancer, 1).await;
    let [killed, survivor] = ingest;
    killed.kill();
    let acknowledged = load.ledger().acknowledged.len();
    wait_for_acknowledgements(&load, acknowledged, 200, "with one ingest instance").await;
    let replacement = pipeline.ingest(ingest_ports[0]);
    replacement.wait_until_ready(READY_DEADLINE).await;
    let ingest = [replacement, survivor];
    all.merge(finish_phase(load, 1).await);
    wait_for_exactly_once(&pipeline, &all).await;

    // kill -9 the publisher: ingest keeps accepting; a new publisher resumes from Deephaven's offsets.
    let load = start_phase(&balancer, 2).await;
    publisher.kill();
    let acknowledged = load.ledger().acknowledged.len();
    wait_for_acknowledgements(&load, acknowledged, 200, "while the publisher is down").await;
    let publisher = pipeline.live_publisher();
    all.merge(finish_phase(load, 2).await);
    wait_for_exactly_once(&pipeline, &all).await;

    // Deephaven restarted (empty): the publisher re-creates the tables and replays the topic.
    let load = start_phase(&balancer, 3).await;
    deephaven.restart();
    all.merge(finish_phase(load, 3).await);
    wait_for_exactly_once(&pipeline, &all).await;

    // Deephaven frozen (SIGSTOP): writes stall, the publisher reports not ready, and catches up once it thaws.
    let load = start_phase(&balancer, 4).await;
    deephaven.pause();
    wait::until("the publisher to report Deephaven unusable", CATCH_UP_DEADLINE, || async {
        match publisher.get("/readyz").await? {
            (503, body) => Ok(body),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    deephaven.resume();
    all.merge(finish_phase(load, 4).await);
    let live = wait_for_exactly_once(&pipeline, &all).await;
    // The local broker reports a partition's end short of its last record after a batched produce (ingest batches):
    // that alone must not pass for a topic created anew.
    let (_, metrics) = publisher.get("/metrics").await.expect("the publisher answers");
    assert!(metrics.lines().any(|line| line == "publisher_topic_incarnations_total 0"), "{metrics}");

    // A replay into another Deephaven (the shared stack's, new tables) rebuilds tables equal to the live ones.
    let other_deephaven = Stack::from_env().deephaven_url;
    let replay_prefix = table_prefix("replay");
    let replay = pipeline.publisher(&["replay"], &replay_prefix, &other_deephaven);
    wait::until("the replay to equal the live tables", CATCH_UP_DEADLINE, || async {
        let replayed = read_tables(&other_deephaven, &replay_prefix).await?;
        if replayed == live {
            Ok(())
        } else {
            Err(replayed.against(&live))
        }
    })
    .await;
    replay.kill();

    // The broker stopped and brought back. It keeps records in memory only, so what it held is gone, and its
    // partitions start again at offset 0, below the offsets Deephaven records as applied. The claims: ingest refuses
    // webhooks (503) while it is down and acknowledges again once it is back, nothing Deephaven already had is
    // lost, the publisher finds the topic created anew and applies every alert acknowledged after the restart, and
    // stays ready. The acknowledged alerts the broker lost with its memory cannot land; how many is printed.
    let before = read_tables(&pipeline.deephaven_url, &pipeline.prefix).await.expect("Deephaven answers");
    let load = steady_load(&balancer.alerts_url(), 5_000_000);
    wait_for_acknowledgements(&load, 0, 200, "before the broker stops").await;
    broker.stop();
    let at_stop = load.ledger();
    wait::until("ingest to refuse webhooks while the broker is down", CATCH_UP_DEADLINE, || async {
        let refused = load.ledger().answered(503);
        if refused >= at_stop.answered(503) + 20 {
            Ok(())
        } else {
            Err(refused)
        }
    })
    .await;
    broker.restart();
    let acknowledged = load.ledger().acknowledged.len();
    wait_for_acknowledgements(&load, acknowledged, 400, "after the broker is back").await;
    let ledger = load.stop().await;
    publisher.wait_until_ready(READY_DEADLINE).await;
    let after: Vec<&String> = ledger.acknowledged.keys().filter(|id| !at_stop.sent.contains_key(*id)).collect();
    let tables = wait::until("every alert acknowledged after the restart to land", CATCH_UP_DEADLINE, || async {
        let tables = read_tables(&pipeline.deephaven_url, &pipeline.prefix).await?;
        let missing = after.iter().filter(|id| !tables.events.contains_key(**id)).count();
        if missing == 0 {
            Ok(tables)
        } else {
            Err(format!("{missing} of {} missing", after.len()))
        }
    })
    .await;
    for id in before.events.keys() {
        assert!(tables.events.contains_key(id), "event {id}, in Deephaven before the outage, is gone");
    }
    publisher.wait_for_metric("publisher_topic_incarnations_total 1", READY_DEADLINE).await;
    let lost = at_stop.acknowledged.keys().filter(|id| !tables.events.contains_key(*id)).count();
    eprintln!(
        "broker outage: {} webhooks refused with 503 while down; of {} alerts acknowledged before the stop, {lost} \
         were lost with the memory broker; all {} acknowledged after it landed",
        ledger.answered(503),
        at_stop.acknowledged.len(),
        after.len()
    );
    publisher.kill();
    drop(ingest);
}

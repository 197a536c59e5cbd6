//! Operations: `/readyz` follows both ends, and lag and committed group offsets report progress to Kafka.

use crate::delivery::synthetic_records;
use crate::helpers::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::Duration;
use test_kit::stack::PrivateBroker;
use test_kit::wait;

const READINESS_DEADLINE: Duration = Duration::from_secs(60);

/// Waits until `/readyz` answers `status` with exactly `body`; fails at once if the publisher exits.
async fn wait_for_readiness(publisher: &mut Service, status: u16, body: serde_json::Value) {
    let url = format!("{}/readyz", publisher.ops_url);
    wait::until(&format!("/readyz to answer {status} {body}"), READINESS_DEADLINE, || {
        let exited = publisher.child.try_wait().expect("the publisher's status");
        let (url, body) = (url.clone(), body.clone());
        async move {
            assert!(exited.is_none(), "the publisher exited: {exited:?}");
            let response = reqwest::get(&url).await.map_err(|err| err.to_string())?;
            let got_status = response.status().as_u16();
            let got_body: serde_json::Value = response.json().await.map_err(|err| err.to_string())?;
            if got_status == status && got_body == body {
                Ok(())
            } else {
                Err(format!("{got_status} {got_body}"))
            }
        }
    })
    .await;
}

/// The offsets the consumer group committed, per partition.
fn committed_offsets(brokers: &str, group_id: &str, topic: &str, partitions: i32) -> Vec<Offset> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group_id).create().unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(10)).expect("the group's offsets");
    committed.elements().iter().map(|element| element.offset()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_broker_and_progress_is_reported_to_kafka() {
    let broker = PrivateBroker::start(2);
    let mut setup = setup(1).await;
    // The private broker's own topics, created by scripts/broker.sh.
    (setup.brokers, setup.topic, setup.dlq_topic) = (broker.brokers(), "alerts".to_owned(), "alerts.dlq".to_owned());
    let mut publisher = spawn_binary(&setup, &[]);
    wait_for_readiness(
        &mut publisher,
        200,
        serde_json::json!({ "ready": true, "kafka": true, "deephaven": true, "dead_letters": true }),
    )
    .await;

    let records = synthetic_records(4, 3_000);
    let acked = produce(&setup.brokers, &setup.topic, &records).await;
    let positioned = positions(&setup.brokers, &setup.topic, &acked).await;
    wait_for_tables(&setup.deephaven_url, &setup.prefix, &expected(&positioned)).await;
    let end_of = |partition: i32| {
        positioned.iter().filter(|(_, p, _)| *p == partition).map(|(_, _, offset)| offset + 1).max().unwrap_or(0)
    };
    for partition in 0..2 {
        publisher
            .wait_for_metric(&format!("publisher_consumer_lag{{partition=\"{partition}\"}} 0"), READINESS_DEADLINE)
            .await;
    }
    wait::until("the group to commit the end of both partitions", READINESS_DEADLINE, || async {
        let committed = committed_offsets(&setup.brokers, &setup.group_id, &setup.topic, 2);
        let wanted = vec![Offset::Offset(end_of(0)), Offset::Offset(end_of(1))];
        if committed == wanted {
            Ok(())
        } else {
            Err(format!("committed {committed:?}, wanted {wanted:?}"))
        }
    })
    .await;

    // The build and the process beside the publisher's own metrics, as any service exposes them.
    let (status, metrics) = publisher.get("/metrics").await.expect("the publisher answers /metrics");
    assert_eq!(status, 200);
    for expected in ["publisher_build_info{version=\"", "process_resident_memory_bytes ", "process_cpu_seconds_total "]
    {
        assert!(metrics.contains(expected), "/metrics lacks {expected:?}:\n{metrics}");
    }

    broker.stop();
    wait_for_readiness(
        &mut publisher,
        503,
        serde_json::json!({ "ready": false, "kafka": false, "deephaven": true, "dead_letters": true }),
    )
    .await;
    broker.restart();
    wait_for_readiness(
        &mut publisher,
        200,
        serde_json::json!({ "ready": true, "kafka": true, "deephaven": true, "dead_letters": true }),
    )
    .await;

    publisher.kill();
}

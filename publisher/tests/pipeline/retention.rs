//! The retention: states received longer ago than `deephaven.retention` leave the tables as time passes, a replay
//! does not bring them back, what still fires (Alertmanager repeats it) stays, and a changed retention rebuilds the
//! tables from the topic.

use crate::delivery::write_record;
use crate::helpers::*;
use publisher::pipeline::Mode;
use publisher::tables::Sink;
use schemas::tables::TableNames;
use schemas::{parse, AlertRecord, Limits, Timestamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use test_kit::fixtures::synthetic_webhook;
use test_kit::wait;

/// Short enough to watch states leave (slices of 6 s), long enough for the 1 s checks that move it on.
const RETENTION: Duration = Duration::from_secs(24);
/// Short enough for slices of 6 s (the grace and a check must fit one).
const REFIRE_GRACE: Duration = Duration::from_secs(2);

/// The test setup's settings with the retention and grace above.
fn settings_with(setup: &Setup, retention: Duration) -> publisher::configuration::Settings {
    let mut settings = setup.settings();
    settings.deephaven.retention = retention;
    settings.deephaven.refire_grace = REFIRE_GRACE;
    settings
}

/// The one alert of synthetic body `batch`, received at `received_at`.
fn alert(batch: u64, received_at: Timestamp) -> AlertRecord {
    let webhook = parse(&synthetic_webhook(batch, 1).0, &Limits::default()).unwrap();
    AlertRecord::from_webhook(webhook, received_at).remove(0)
}

fn ago(age: Duration) -> Timestamp {
    Timestamp::from_unix_nanos(Timestamp::now().unix_nanos() - age.as_nanos() as i64)
}

/// Which of `alerts` are in `alerts`, `alerts_firing` and `alert_events` (by fingerprint; by event id); a read
/// that fails is an error, never an absence.
async fn presence(setup: &Setup, alerts: &[&AlertRecord]) -> Result<Vec<(bool, bool, bool)>, String> {
    let client = client(&setup.deephaven_url).await;
    let tables = test_kit::tables::read_tables(&client, &setup.prefix).await?;
    let firing_table = TableNames::with_prefix(&setup.prefix).alerts_firing;
    let mut firing = Vec::new();
    for batch in test_kit::tables::snapshot(&client, &firing_table).await? {
        let fingerprints = batch.column_by_name("Fingerprint").unwrap();
        let fingerprints = arrow::array::AsArray::as_string::<i32>(fingerprints);
        firing.extend((0..batch.num_rows()).map(|row| fingerprints.value(row).to_owned()));
    }
    Ok(alerts
        .iter()
        .map(|alert| {
            let fingerprint = alert.fingerprint.to_string();
            (
                tables.alerts.contains_key(&fingerprint),
                firing.contains(&fingerprint),
                tables.events.contains_key(&alert.event_id.to_string()),
            )
        })
        .collect())
}

/// Waits until [`presence`] of `alerts` is `expected`; a failed read is "not yet".
async fn wait_for_presence(setup: &Setup, alerts: &[&AlertRecord], expected: &[(bool, bool, bool)], what: &str) {
    wait::until(what, TABLES_DEADLINE, || async {
        match presence(setup, alerts).await {
            Ok(found) if found == expected => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// [`presence`] of `alerts` now; a failed read fails the test.
async fn presence_now(setup: &Setup, alerts: &[&AlertRecord]) -> Vec<(bool, bool, bool)> {
    presence(setup, alerts).await.expect("Deephaven answers the read")
}

#[tokio::test(flavor = "multi_thread")]
async fn states_older_than_the_retention_leave_and_a_replay_keeps_them_out_while_what_fires_stays() {
    let setup = setup(1).await;
    let settings = settings_with(&setup, RETENTION);
    let publisher = spawn_publisher(settings.clone(), Mode::Follow).await;

    // One partition, so `stale` is read before the others and written no later than they are.
    let stale = alert(1, ago(3 * RETENTION));
    let once = alert(2, Timestamp::now());
    let still_firing = alert(3, Timestamp::now());
    produce(&setup.brokers, &setup.topic, &[stale.clone(), once.clone(), still_firing.clone()]).await;
    wait_for_presence(&setup, &[&once, &still_firing], &[(true, true, true); 2], "the recent alerts in every table")
        .await;
    assert_eq!(presence_now(&setup, &[&stale]).await, [(false, false, false)], "a state older than the retention");

    // Alertmanager repeats what still fires; `once` is never sent again.
    let repeating = Arc::new(AtomicBool::new(true));
    let repeater = tokio::spawn({
        let (setup, repeating, still_firing) = (setup.clone(), Arc::clone(&repeating), still_firing.clone());
        async move {
            while repeating.load(Ordering::Relaxed) {
                let repeat = AlertRecord { received_at: Timestamp::now(), ..still_firing.clone() };
                produce(&setup.brokers, &setup.topic, &[repeat]).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    wait_for_presence(&setup, &[&once], &[(false, false, false)], "the state received once to leave every table").await;
    assert_eq!(presence_now(&setup, &[&still_firing]).await, [(true, true, true)], "what fires stays");
    repeating.store(false, Ordering::Relaxed);
    repeater.await.unwrap();
    publisher.stop().await;

    // A replay reads the whole topic again, old states included: they stay out. `marker`, produced after the first
    // publisher stopped, is the last record: once it shows, the replay has read everything before it.
    let marker = alert(4, Timestamp::now());
    produce(&setup.brokers, &setup.topic, std::slice::from_ref(&marker)).await;
    let replay = spawn_publisher(settings, Mode::Replay).await;
    wait_until_present(&setup, &marker, "the replay to reach the last record").await;
    assert_eq!(presence_now(&setup, &[&stale, &once]).await, [(false, false, false); 2], "old states stay out");
    replay.stop().await;
}

async fn wait_until_present(setup: &Setup, alert: &AlertRecord, what: &str) {
    wait_for_presence(setup, &[alert], &[(true, true, true)], what).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_firing_copy_never_outlives_the_resolved_state_that_beat_it() {
    let setup = setup(1).await;
    let publisher = spawn_publisher(settings_with(&setup, RETENTION), Mode::Follow).await;
    // A slice boundary at least a second past: the resolved state half a second before it, a lagging peer's copy
    // of the firing state half a second after it (well within the grace): two slices received them.
    let slice = (RETENTION / 4).as_nanos() as i64;
    let now = Timestamp::now().unix_nanos();
    let boundary = (now - 1_000_000_000).div_euclid(slice) * slice;
    let at = |offset_millis: i64| Timestamp::from_unix_nanos(boundary + offset_millis * 1_000_000);
    let resolved = {
        let webhook = parse(&test_kit::fixtures::synthetic_resolve(5, 1).0, &Limits::default()).unwrap();
        AlertRecord::from_webhook(webhook, at(-500)).remove(0)
    };
    let late_copy = alert(5, at(500));
    assert_eq!(
        (&resolved.fingerprint, &resolved.starts_at),
        (&late_copy.fingerprint, &late_copy.starts_at),
        "one occurrence"
    );
    produce(&setup.brokers, &setup.topic, &[resolved.clone(), late_copy.clone()]).await;
    wait_for_presence(&setup, &[&resolved, &late_copy], &[(true, false, true); 2], "the resolved alert").await;

    // Until the alert leaves (the later slice with it), it never shows firing: the earlier slice leaving first must
    // not leave the late copy to win.
    wait::until("the alert to leave every table", TABLES_DEADLINE, || async {
        match presence(&setup, &[&resolved, &late_copy]).await {
            Ok(found) => {
                assert!(found.iter().all(|(_, firing, _)| !firing), "the alert shows firing again: {found:?}");
                if found.iter().all(|(in_alerts, ..)| !in_alerts) {
                    Ok(())
                } else {
                    Err(format!("{found:?}"))
                }
            }
            Err(error) => Err(error),
        }
    })
    .await;
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_retention_rebuilds_the_tables_from_the_topic() {
    let setup = setup(1).await;
    let mut settings = settings_with(&setup, RETENTION);
    let publisher = spawn_publisher(settings.clone(), Mode::Follow).await;
    let recent = alert(1, Timestamp::now());
    produce(&setup.brokers, &setup.topic, std::slice::from_ref(&recent)).await;
    wait_until_present(&setup, &recent, "the alert in every table").await;
    publisher.stop().await;

    // Slices of another length cannot be merged with the recorded ones: the set is made anew and the topic, which
    // still holds the alert, replayed into it; nothing else would bring the alert back.
    settings.deephaven.retention = 2 * RETENTION;
    let publisher = spawn_publisher(settings, Mode::Follow).await;
    publisher.wait_for_readiness("the publisher to have opened the tables", |readiness| readiness.ready).await;
    wait_until_present(&setup, &recent, "the alert back after the set was rebuilt").await;
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_first_makes_the_slice_its_resolved_state_ranks_in() {
    let setup = setup(1).await;
    let settings = settings_with(&setup, RETENTION);
    // A sink alone, with no checks to move the slices on: only its writes can.
    let sink = Sink::open(&settings.deephaven, false).await.expect("the set is made");
    let slice = (RETENTION / 4).as_nanos() as i64;
    let opened_in = Timestamp::now().unix_nanos().div_euclid(slice);
    // The last slice made at the opening is the one after the current. Once the clock is in it, and within the grace
    // of its end, a resolved state received now ranks in the slice after it, which nothing has made yet.
    let ranks_past = (opened_in + 2) * slice - (REFIRE_GRACE.as_nanos() as i64) / 2;
    wait::until_true("the clock to reach the grace before the last slice made ends", RETENTION, || async {
        Timestamp::now().unix_nanos() >= ranks_past
    })
    .await;
    let resolved = {
        let webhook = parse(&test_kit::fixtures::synthetic_resolve(6, 1).0, &Limits::default()).unwrap();
        AlertRecord::from_webhook(webhook, Timestamp::now()).remove(0)
    };
    write_record(&sink, &resolved, 0).await;
    wait_for_presence(&setup, &[&resolved], &[(true, false, true)], "the resolved state in alerts and alert_events")
        .await;
    sink.close().await;
}

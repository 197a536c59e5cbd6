//! The analytics Deephaven derives from the log: what fires now, episodes, their durations, and the tables over
//! recent time windows.

use crate::delivery::{fixture_records, synthetic_records};
use crate::helpers::*;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
use publisher::pipeline::Mode;
use schemas::tables::TableNames;
use schemas::{parse, AlertRecord, Limits, Timestamp};
use std::collections::BTreeMap;
use std::time::Duration;
use test_kit::fixtures::synthetic_resolve;
use test_kit::wait;

/// Waits until the count tables of what fires now hold exactly `by_severity` and `by_name` (key -> `Firing`).
async fn wait_for_firing_counts(setup: &Setup, by_severity: &[(&str, i64)], by_name: &[(&str, i64)]) {
    let client = client(&setup.deephaven_url).await;
    let names = TableNames::with_prefix(&setup.prefix);
    let expected = |pairs: &[(&str, i64)]| -> BTreeMap<String, i64> {
        pairs.iter().map(|(key, count)| ((*key).to_owned(), *count)).collect()
    };
    let expected = (expected(by_severity), expected(by_name));
    wait::until("the counts of what fires now", TABLES_DEADLINE, || async {
        let mut counts = (BTreeMap::new(), BTreeMap::new());
        for (table, key, into) in [
            (&names.alerts_firing_by_severity, "Severity", &mut counts.0),
            (&names.alerts_firing_by_name, "AlertName", &mut counts.1),
        ] {
            for batch in snapshot(&client, table).await {
                let keys = batch.column_by_name(key).unwrap().as_string::<i32>().clone();
                let firing = batch.column_by_name("Firing").unwrap().as_primitive::<Int64Type>().clone();
                into.extend((0..batch.num_rows()).map(|row| (keys.value(row).to_owned(), firing.value(row))));
            }
        }
        if counts == expected {
            Ok(())
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_fires_now_is_counted_by_severity_and_by_name_and_follows_each_resolve() {
    let setup = setup(2).await;
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    // Three bodies of ten alerts each: per body 4 critical (every third) and 6 warning, all SyntheticLoad.
    let records = synthetic_records(3, 8_000);
    produce(&setup.brokers, &setup.topic, &records).await;
    wait_for_firing_counts(&setup, &[("critical", 12), ("warning", 18)], &[("SyntheticLoad", 30)]).await;

    // The first body resolves: the counts follow without anyone asking.
    let webhook = parse(&synthetic_resolve(8_000, 10).0, &Limits::default()).unwrap();
    produce(&setup.brokers, &setup.topic, &AlertRecord::from_webhook(webhook, received_at(records.len()))).await;
    wait_for_firing_counts(&setup, &[("critical", 8), ("warning", 12)], &[("SyntheticLoad", 20)]).await;
    publisher.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_occurrence_is_an_episode_with_its_duration_once_resolved_and_its_age_while_open() {
    let setup = setup(3).await;
    let records = fixture_records();
    // The oracle: per (fingerprint, StartsAt), resolved with its EndsAt if any copy resolved it, otherwise open.
    let mut expected: BTreeMap<(String, i64), Option<i64>> = BTreeMap::new();
    for record in &records {
        let ends_at = record.ends_at.filter(|_| record.status == schemas::Status::Resolved).map(|t| t.unix_nanos());
        let episode = expected.entry((record.fingerprint.to_string(), record.starts_at.unix_nanos())).or_default();
        *episode = (*episode).or(ends_at);
    }
    assert!(expected.values().any(Option::is_some) && expected.values().any(Option::is_none), "both kinds captured");
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    produce(&setup.brokers, &setup.topic, &records).await;

    let client = client(&setup.deephaven_url).await;
    let table = TableNames::with_prefix(&setup.prefix).alert_episodes;
    let episodes = wait::until("every episode in alert_episodes", TABLES_DEADLINE, || async {
        let mut episodes = BTreeMap::new();
        for batch in snapshot(&client, &table).await {
            let column = |name| batch.column_by_name(name).unwrap().clone();
            let (fingerprints, starts, ends) = (column("Fingerprint"), column("StartsAt"), column("EndsAt"));
            let (fingerprints, starts) =
                (fingerprints.as_string::<i32>(), starts.as_primitive::<TimestampNanosecondType>());
            let ends = ends.as_primitive::<TimestampNanosecondType>();
            let (duration, age) = (column("DurationSeconds"), column("AgeSeconds"));
            let (duration, age) = (duration.as_primitive::<Float64Type>(), age.as_primitive::<Float64Type>());
            for row in 0..batch.num_rows() {
                let key = (fingerprints.value(row).to_owned(), starts.value(row));
                let value = (
                    ends.is_valid(row).then(|| ends.value(row)),
                    duration.is_valid(row).then(|| duration.value(row)),
                    age.is_valid(row).then(|| age.value(row)),
                );
                episodes.insert(key, value);
            }
        }
        if episodes.len() == expected.len() {
            Ok(episodes)
        } else {
            Err(format!("{} of {} episodes", episodes.len(), expected.len()))
        }
    })
    .await;
    for (key, ends_at) in &expected {
        let (shown_ends, duration, age) = episodes[key];
        assert_eq!(shown_ends, *ends_at, "{key:?}: EndsAt once resolved, null while open");
        match ends_at {
            Some(ends_at) => {
                assert_eq!(duration, Some((ends_at - key.1) as f64 / 1e9), "{key:?}: the resolved episode's length");
                assert_eq!(age, None, "{key:?}: no age once resolved");
            }
            None => {
                assert_eq!(duration, None, "{key:?}: no duration while open");
                assert!(age.is_some_and(|age| age > 0.0), "{key:?}: an open episode's age: {age:?}");
            }
        }
    }
    publisher.stop().await;
}

/// Alert `name`'s notification of its occurrence that started at `starts`: resolved at `ended`, or firing; as
/// ingest received it at `received`.
pub fn notification(
    name: &str,
    fingerprint: &str,
    starts: Timestamp,
    ended: Option<Timestamp>,
    received: Timestamp,
) -> AlertRecord {
    let status = if ended.is_some() { "resolved" } else { "firing" };
    let ends = ended.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), |ended| ended.to_string());
    let body = serde_json::json!({
        "receiver": "alerthaven", "status": status, "version": "4", "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
        "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "",
        "alerts": [{
            "status": status, "labels": { "alertname": name, "severity": "page" }, "annotations": {},
            "startsAt": starts.to_string(), "endsAt": ends, "generatorURL": "", "fingerprint": fingerprint,
        }],
    });
    let webhook = parse(&serde_json::to_vec(&body).unwrap(), &Limits::default()).unwrap();
    AlertRecord::from_webhook(webhook, received).remove(0)
}

/// A resolved notification of one alert named `Flappy` whose occurrence started `starts` and lasted `seconds`.
fn flappy_resolved(starts: &str, seconds: i64, index: usize) -> AlertRecord {
    let started = Timestamp::parse_rfc3339(starts).unwrap();
    let ends = Timestamp::from_unix_nanos(started.unix_nanos() + seconds * 1_000_000_000);
    notification("Flappy", FLAPPY, started, Some(ends), received_at(index))
}

pub const FLAPPY: &str = "f1a9f1a9f1a9f1a9";

#[tokio::test(flavor = "multi_thread")]
async fn resolved_episodes_are_summarized_per_alert_name_and_severity() {
    let setup = setup(2).await;
    let mut records = fixture_records();
    // Four occurrences of one alert, 10, 20, 30 and 100 s long: mean 40, median 25, max 100.
    for (index, (starts, seconds)) in [
        ("2026-11-23T10:00:00Z", 10),
        ("2026-11-23T11:00:00Z", 20),
        ("2026-11-23T12:00:00Z", 30),
        ("2026-11-23T13:00:00Z", 100),
    ]
    .into_iter()
    .enumerate()
    {
        records.push(flappy_resolved(starts, seconds, 100 + index));
    }
    // The oracle: each resolved occurrence's duration, grouped by (AlertName, Severity).
    let mut resolved: BTreeMap<(String, i64), (String, Option<String>, f64)> = BTreeMap::new();
    for record in records.iter().filter(|record| record.status == schemas::Status::Resolved) {
        let (starts, ends) = (record.starts_at.unix_nanos(), record.ends_at.expect("resolved").unix_nanos());
        let name = record.labels.get("alertname").unwrap_or_default().to_owned();
        let severity = record.labels.get("severity").map(str::to_owned);
        resolved.insert((record.fingerprint.to_string(), starts), (name, severity, (ends - starts) as f64 / 1e9));
    }
    let mut groups: BTreeMap<(String, Option<String>), Vec<f64>> = BTreeMap::new();
    for (name, severity, seconds) in resolved.into_values() {
        groups.entry((name, severity)).or_default().push(seconds);
    }
    assert!(!groups.is_empty(), "the captures hold resolved occurrences");
    let publisher = spawn_publisher(setup.settings(), Mode::Follow).await;
    produce(&setup.brokers, &setup.topic, &records).await;

    let client = client(&setup.deephaven_url).await;
    let table = TableNames::with_prefix(&setup.prefix).alert_mttr;
    type Summary = (i64, f64, f64, f64, f64);
    let shown: BTreeMap<(String, Option<String>), Summary> = wait::until("alert_mttr", TABLES_DEADLINE, || async {
        let mut shown = BTreeMap::new();
        for batch in snapshot(&client, &table).await {
            let column = |name| batch.column_by_name(name).unwrap().clone();
            let (names, severities, episodes) = (column("AlertName"), column("Severity"), column("Episodes"));
            let (names, severities) = (names.as_string::<i32>(), severities.as_string::<i32>());
            let episodes = episodes.as_primitive::<Int64Type>();
            let statistics: Vec<_> = ["MeanSeconds", "MedianSeconds", "P90Seconds", "MaxSeconds"].map(column).into();
            let value = |index: usize, row| statistics[index].as_primitive::<Float64Type>().value(row);
            for row in 0..batch.num_rows() {
                let severity = severities.is_valid(row).then(|| severities.value(row).to_owned());
                let summary = (episodes.value(row), value(0, row), value(1, row), value(2, row), value(3, row));
                shown.insert((names.value(row).to_owned(), severity), summary);
            }
        }
        let total: i64 = shown.values().map(|summary: &Summary| summary.0).sum();
        if total == groups.values().map(Vec::len).sum::<usize>() as i64 {
            Ok(shown)
        } else {
            Err(format!("{total} episodes summarized"))
        }
    })
    .await;
    assert_eq!(shown.keys().collect::<Vec<_>>(), groups.keys().collect::<Vec<_>>(), "one row per name and severity");
    for (key, mut durations) in groups {
        durations.sort_by(f64::total_cmp);
        let (count, mean, median, p90, max) = shown[&key];
        let n = durations.len();
        assert_eq!(count, n as i64, "{key:?}");
        assert!((mean - durations.iter().sum::<f64>() / n as f64).abs() < 1e-9, "{key:?}: mean {mean}");
        let middle = if n % 2 == 1 { durations[n / 2] } else { (durations[n / 2 - 1] + durations[n / 2]) / 2.0 };
        assert!((median - middle).abs() < 1e-9, "{key:?}: median {median}, not {middle}");
        assert_eq!(max, durations[n - 1], "{key:?}");
        assert!(
            durations.contains(&p90) && p90 >= median,
            "{key:?}: p90 {p90} is one of the durations, above the median"
        );
    }
    publisher.stop().await;
}

const EDGE: &str = "e0e0e0e0e0e0e0e0";

/// `table`'s rows in the table's order: the `keys` columns joined by `/`, and the `values` (long) columns.
async fn rows(
    table: &str,
    keys: &[&str],
    values: &[&str],
    client: &deephaven_client::Client,
) -> Vec<(String, Vec<i64>)> {
    let mut rows = Vec::new();
    for batch in snapshot(client, table).await {
        let keys: Vec<_> =
            keys.iter().map(|key| batch.column_by_name(key).unwrap().as_string::<i32>().clone()).collect();
        let values: Vec<_> = values
            .iter()
            .map(|value| batch.column_by_name(value).unwrap().as_primitive::<Int64Type>().clone())
            .collect();
        for row in 0..batch.num_rows() {
            let key: Vec<&str> = keys.iter().map(|key| key.value(row)).collect();
            let counts = values.iter().map(|value| {
                assert!(value.is_valid(row), "{table} has a null count for {key:?}");
                value.value(row)
            });
            rows.push((key.join("/"), counts.collect()));
        }
    }
    rows
}

/// Waits until `table` holds exactly `expected`, in that order (see [`rows`]).
async fn wait_for_rows(setup: &Setup, table: &str, keys: &[&str], values: &[&str], expected: &[(&str, &[i64])]) {
    let client = client(&setup.deephaven_url).await;
    let expected: Vec<(String, Vec<i64>)> =
        expected.iter().map(|(key, values)| ((*key).to_owned(), values.to_vec())).collect();
    wait::until(table, TABLES_DEADLINE, || async {
        let shown = rows(table, keys, values, &client).await;
        if shown == expected {
            Ok(())
        } else {
            Err(shown)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recent_windows_count_states_firings_and_durations_and_rows_leave_them_as_time_passes() {
    let setup = setup(2).await;
    let mut settings = setup.settings();
    settings.deephaven.window_step = Duration::from_secs(1);
    let now = Timestamp::now().unix_nanos();
    let ago = |seconds: i64| Timestamp::from_unix_nanos(now - seconds * 1_000_000_000);
    let (minute, hour, day) = (60, 3_600, 86_400);
    // Flappy: occurrences 40 minutes, 3 hours, 3 days and 10 days ago, lasting 10 minutes, 5 minutes and 100 s (the
    // oldest still open), each notified firing when it started and resolved when it ended.
    let mut records = Vec::new();
    for (started, lasted) in
        [(40 * minute, Some(10 * minute)), (3 * hour, Some(5 * minute)), (3 * day, Some(100)), (10 * day, None)]
    {
        records.push(notification("Flappy", FLAPPY, ago(started), None, ago(started)));
        if let Some(lasted) = lasted {
            let ended = ago(started - lasted);
            records.push(notification("Flappy", FLAPPY, ago(started), Some(ended), ended));
        }
    }
    // Edge: fired just inside the last 24 hours, which it leaves a minute from now.
    let edge = ago(day - minute);
    records.push(notification("Edge", EDGE, edge, None, edge));
    let publisher = spawn_publisher(settings, Mode::Follow).await;
    produce(&setup.brokers, &setup.topic, &records).await;

    let names = TableNames::with_prefix(&setup.prefix);
    let (by_name, states) = (["AlertName"].as_slice(), ["StatesLast24h", "StatesLast7d"].as_slice());
    let (by_alert, firings) =
        (["Fingerprint", "AlertName"].as_slice(), ["FiringsLastHour", "FiringsLast24h"].as_slice());
    let (flappy, edge) = (format!("{FLAPPY}/Flappy"), format!("{EDGE}/Edge"));
    // Flappy's states: its two occurrences of the last 3 hours, fired and resolved, and the one of 3 days ago.
    wait_for_rows(&setup, &names.noisiest_alerts, by_name, states, &[("Flappy", &[4, 6]), ("Edge", &[1, 1])]).await;
    wait_for_rows(&setup, &names.alert_flapping, by_alert, firings, &[(&flappy, &[1, 2]), (&edge, &[0, 1])]).await;
    // Resolved in the last 24 hours: the 10- and 5-minute occurrences.
    let client = client(&setup.deephaven_url).await;
    let mttr = snapshot(&client, &names.alert_mttr_24h).await;
    let column = |name| mttr[0].column_by_name(name).unwrap().clone();
    assert_eq!(mttr.iter().map(|batch| batch.num_rows()).sum::<usize>(), 1, "one name and severity");
    assert_eq!(column("AlertName").as_string::<i32>().value(0), "Flappy");
    assert_eq!(column("Episodes").as_primitive::<Int64Type>().value(0), 2);
    assert_eq!(column("MeanSeconds").as_primitive::<Float64Type>().value(0), 450.0);
    assert_eq!(column("MaxSeconds").as_primitive::<Float64Type>().value(0), 600.0);

    // Time passes: Edge's firing leaves the 24-hour windows with nothing new written; Flappy's rows stay.
    wait_for_rows(&setup, &names.noisiest_alerts, by_name, states, &[("Flappy", &[4, 6]), ("Edge", &[0, 1])]).await;
    wait_for_rows(&setup, &names.alert_flapping, by_alert, firings, &[(&flappy, &[1, 2])]).await;
    publisher.stop().await;
}

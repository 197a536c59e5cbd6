//! The dashboard (`dashboard/`, Deephaven Application Mode) as a person uses it: in a real browser, found in the
//! IDE's Panels menu without typing anything, showing alerts that went in through ingest, and back by itself after
//! Deephaven restarts empty and the publisher rebuilds its tables.

use crate::browser::{output_dir, Browser};
use crate::support::{Pipeline, READY_DEADLINE};
use fantoccini::Locator;
use std::collections::BTreeSet;
use std::time::Duration;
use test_kit::stack::{free_port, DeephavenOptions, PrivateDeephaven};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The name under which the IDE lists the dashboard (dashboard/alerthaven_dashboard.py).
const DASHBOARD: &str = "alerthaven_dashboard";
/// Every panel of the dashboard, by title.
const PANELS: [&str; 5] = [
    "Firing now by severity",
    "Alerts firing, last 24 h",
    "Incidents, last 24 h",
    "Time to resolve, last 24 h",
    "Flapping",
];

/// An Alertmanager notification of one critical alert named `name` that started at `starts_at`: resolved at
/// `resolved_at` if given, firing otherwise.
fn notification(
    name: &str,
    fingerprint: &str,
    starts_at: OffsetDateTime,
    resolved_at: Option<OffsetDateTime>,
) -> String {
    let rfc3339 = |at: OffsetDateTime| at.format(&Rfc3339).expect("formats");
    let (status, ends_at) = match resolved_at {
        Some(at) => ("resolved", rfc3339(at)),
        None => ("firing", "0001-01-01T00:00:00Z".to_owned()),
    };
    serde_json::json!({
        "receiver": "alerthaven",
        "status": status,
        "alerts": [{
            "status": status,
            "labels": { "alertname": name, "severity": "critical", "instance": "db-1:9100", "job": "node" },
            "annotations": { "summary": format!("{name} for the dashboard test") },
            "startsAt": rfc3339(starts_at),
            "endsAt": ends_at,
            "generatorURL": "http://prometheus:9090/graph",
            "fingerprint": fingerprint,
        }],
        "groupLabels": { "alertname": name },
        "commonLabels": { "alertname": name },
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{name}\"}}"),
        "truncatedAlerts": 0,
    })
    .to_string()
}

/// The hours ("HH", UTC) a time axis over the last `minutes` may label, with a few minutes' margin either side.
fn utc_hours_of_the_last(minutes: i64) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    let hours: BTreeSet<String> = (-10..=minutes + 10)
        .step_by(5)
        .map(|ago| format!("{:02}", (now - time::Duration::minutes(ago)).hour()))
        .collect();
    hours.into_iter().collect()
}

/// Opens the IDE, then the dashboard from the Panels menu, maximized.
async fn open_dashboard(browser: &Browser, deephaven_url: &str) {
    browser.open(&format!("{deephaven_url}/ide/")).await;
    // The menu lists what the server exports once the IDE has loaded it: reopen it until the dashboard is there.
    let item = format!("[data-testid='panel-list-item-{DASHBOARD}-button']");
    browser
        .wait_for("the Panels menu to list the dashboard", || async {
            browser.try_click_text("Panels").await?;
            let listed = wait_briefly(|| browser.try_click(Locator::Css(&item))).await;
            if listed.is_err() {
                browser.escape().await?;
            }
            listed
        })
        .await;
    // Full size, as a person would look at it (the IDE opens it beside the console).
    browser.maximize_panel(DASHBOARD).await;
}

/// Retries `attempt` for a few seconds; its last result.
async fn wait_briefly<F, Fut>(mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let result = attempt().await;
        if result.is_ok() || tokio::time::Instant::now() > deadline {
            return result;
        }
        tokio::time::sleep(test_kit::wait::POLL_INTERVAL).await;
    }
}

/// Waits until every panel is there, the bar chart shows a critical alert firing, the incident timeline shows
/// both alerts by name, and the time axes read in UTC (the server's zone, which the IDE is told to show).
async fn wait_for_panels_showing(browser: &Browser, names: &[&str], utc_hours: &[String]) {
    browser
        .wait_for("every panel, with the test's alerts in the charts, times in UTC", || async {
            let titles = browser.texts(".lm_title").await?;
            let missing: Vec<&str> = PANELS.into_iter().filter(|panel| !titles.iter().any(|t| t == panel)).collect();
            // Plotly draws axis labels as SVG text: what the charts show is in the page.
            let chart_texts = browser.texts(".js-plotly-plot text").await?;
            let unseen: Vec<&str> = ["critical"]
                .iter()
                .chain(names)
                .copied()
                .filter(|text| !chart_texts.iter().any(|shown| shown == text))
                .collect();
            // Time ticks read "HH:MM"; in the IDE's built-in America/New_York they would be 5 hours off.
            let clock_ticks: Vec<&String> = chart_texts
                .iter()
                .filter(|text| {
                    text.len() == 5 && text.as_bytes()[2] == b':' && text.replace(':', "").parse::<u32>().is_ok()
                })
                .collect();
            let off_zone: Vec<&&String> = clock_ticks
                .iter()
                .filter(|tick| !utc_hours.iter().any(|hour| tick.starts_with(hour.as_str())))
                .collect();
            if missing.is_empty() && unseen.is_empty() && !clock_ticks.is_empty() && off_zone.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "panels missing {missing:?}; not in the charts {unseen:?}; time ticks {clock_ticks:?}, of which \
                     not UTC (hours {utc_hours:?}) {off_zone:?}"
                ))
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_what_came_through_ingest_and_returns_after_deephaven_restarts() {
    let mut pipeline = Pipeline::on_stack("e2e-dashboard").await;
    let deephaven = PrivateDeephaven::start_with(DeephavenOptions {
        dashboard_table_prefix: Some(pipeline.prefix.clone()),
        ..DeephavenOptions::default()
    });
    pipeline.deephaven_url = deephaven.url();

    // Opened before the publisher has created anything: the dashboard says it waits, then fills in by itself.
    let browser = Browser::start("dashboard").await;
    open_dashboard(&browser, &deephaven.url()).await;
    browser
        .wait_for("the dashboard to say it waits for the publisher", || async {
            let texts = browser.texts("span, p, div").await?;
            match texts.iter().any(|text| text.starts_with("Waiting for the publisher")) {
                true => Ok(()),
                false => Err("no waiting message".to_owned()),
            }
        })
        .await;

    let ingest_port = free_port();
    let ingest = pipeline.ingest(ingest_port);
    ingest.wait_until_ready(READY_DEADLINE).await;
    let publisher = pipeline.live_publisher();
    publisher.wait_until_ready(READY_DEADLINE).await;
    // Plain names: this Deephaven holds no other test's tables.
    let (firing, resolved) = ("DiskFull", "LinkDown");
    let now = OffsetDateTime::now_utc();
    let minutes_ago = |minutes: i64| now - time::Duration::minutes(minutes);
    let bodies = [
        notification(firing, "d0000000000000f1", minutes_ago(20), None),
        notification(resolved, "d0000000000000f2", minutes_ago(50), None),
        notification(resolved, "d0000000000000f2", minutes_ago(50), Some(minutes_ago(15))),
    ];
    let http = reqwest::Client::new();
    for body in bodies {
        let response = http
            .post(format!("http://127.0.0.1:{ingest_port}/alerts"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("ingest answers");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    }

    wait_for_panels_showing(&browser, &[firing, resolved], &utc_hours_of_the_last(50)).await;
    let shot = browser.save_screenshot("shown").await;
    println!("dashboard screenshot: {shot} (output directory {})", output_dir().display());
    browser.close().await;

    // Deephaven restarted empty: its Application Mode brings the dashboard back, the publisher rebuilds the tables
    // from the topic, and a fresh browser finds both without anyone doing anything.
    deephaven.restart();
    let browser = Browser::start("dashboard-after-restart").await;
    open_dashboard(&browser, &deephaven.url()).await;
    wait_for_panels_showing(&browser, &[firing, resolved], &utc_hours_of_the_last(50)).await;
    browser.close().await;
}

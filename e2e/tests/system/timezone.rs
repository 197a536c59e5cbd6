//! The local stack's Deephaven engine runs in UTC unless `DEEPHAVEN_TIMEZONE` says otherwise, whatever the host's
//! zone (`scripts/deephaven.sh`; compose sets the same for its container). That the IDE shows times in that zone too
//! is the dashboard's browser test (`dashboard.rs`).

use crate::support::table_prefix;
use arrow::array::AsArray;
use deephaven_client::{Client, ClientConfig, Operation};
use std::time::Duration;
use test_kit::stack::PrivateDeephaven;
use test_kit::wait;

#[tokio::test(flavor = "multi_thread")]
async fn deephaven_runs_in_utc_on_a_host_in_another_zone() {
    // Started like the stack's, on a host whose zone is America/New_York (`PrivateDeephaven` sets TZ).
    let deephaven = PrivateDeephaven::start(None, None);
    let client = Client::connect(ClientConfig::new(deephaven.url())).await.unwrap();
    // A one-row table to evaluate the server's default zone on (its first row comes at the first tick).
    let clock = format!("{}clock", table_prefix("zone"));
    client.publish_clock(&clock, Duration::from_secs(1)).await.unwrap();
    let zone = wait::until("the server's time zone", Duration::from_secs(30), || async {
        let probe = [Operation::view(["Zone = String.valueOf(timeZone())"])];
        let rows = client.derived_snapshot(&clock, &probe).await.map_err(|err| err.to_string())?;
        let row = rows.iter().find(|batch| batch.num_rows() > 0).ok_or("no tick yet")?;
        Ok::<_, String>(row.column(0).as_string::<i32>().value(0).to_owned())
    })
    .await;
    assert_eq!(zone, "UTC");
}

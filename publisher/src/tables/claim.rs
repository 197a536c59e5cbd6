//! Who makes the set anew. After a Deephaven restart every publisher finds the set missing at about the same
//! moment, and Deephaven has no compare-and-set: two publishers making the set at once interleave their calls, and
//! can leave tables derived from one's log and the progress from the other's, so that writes move the progress on
//! while the user tables stay still. A publisher about to make the set therefore claims it first, in a one-row keyed
//! table beside it:
//!
//! - while another publisher's claim is there, it waits, even when the tables all exist (a set being made anew
//!   keeps the old set's tables until each is replaced);
//! - otherwise it writes its claim, waits [`SETTLE`] for claims written at the same moment to land, and reads the
//!   row back: the claim read back (the last written) makes the set, and every other waits for it;
//! - the maker renews its claim every [`HEARTBEAT`] while it works, checks that the claim is still its own before it
//!   publishes the progress (the last table of a set), and removes it once the set is complete; a claim left
//!   unchanged for [`PATIENCE`] (its maker died half-way) is taken over.
//!
//! Best effort, not a lock: it assumes a claim lands within [`SETTLE`] of being written.

use arrow::array::{AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampNanosecondType};
use deephaven_client::{Client, InputTable, InputTableKind};
use schemas::tables::TableNames;
use schemas::Timestamp;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Long enough for every claim written at about the same moment to land (a write is one round trip), so that all
/// claimants read back the same row.
const SETTLE: Duration = Duration::from_secs(1);

/// How often a maker renews its claim, so that others can tell it is alive however long the making takes.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// How long a claim may stay unchanged before its maker counts as dead and the claim is taken over: several
/// heartbeats, and longer than a call's timeout.
const PATIENCE: Duration = Duration::from_secs(30);

/// How often a publisher waiting for another's set reads the claim again.
const POLL: Duration = Duration::from_millis(500);

/// The claim table's key, the same for every claim: one row, the last claim written.
const KEY: &str = "Key";
const SET: &str = "set";
const CLAIMANT: &str = "Claimant";
const CLAIMED_AT: &str = "ClaimedAt";

/// A claim as the table holds it: who, and when it was last written (each renewal changes it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimRow {
    claimant: String,
    claimed_at: i64,
}

/// This publisher's claim to make the set, won. Renewed until released; dropped unreleased (the making failed or
/// was abandoned), it is no longer renewed, and others take it over after [`PATIENCE`].
pub(super) struct Claim {
    table: InputTable,
    /// The claim table's name, to read it back.
    name: String,
    claimant: String,
    heartbeat: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Claim {
    /// Whether the claim table still holds this claim: false when another publisher took it over, or also made
    /// the set after a claim that landed late. The maker checks it before publishing the progress, so that of two
    /// makers at most one completes a set.
    pub(super) async fn is_held(&self, client: &Client) -> deephaven_client::Result<bool> {
        Ok(current_claim(client, &self.name).await?.is_some_and(|row| row.claimant == self.claimant))
    }

    /// Stops renewing the claim and removes it, unless another publisher took it over meanwhile.
    pub(super) async fn release(mut self, client: &Client) -> deephaven_client::Result<()> {
        if let Some((stop, renewing)) = self.heartbeat.take() {
            // Stopped between renewals, so that no renewal lands after the removal.
            let _ = stop.send(());
            let _ = renewing.await;
        }
        if self.is_held(client).await? {
            client.delete(&self.table, key_row()).await?;
        }
        Ok(())
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some((_, renewing)) = &self.heartbeat {
            renewing.abort();
        }
    }
}

/// Whether a publisher's claim to make the set is there: the set may then be half made, whatever tables exist.
pub(super) async fn is_claimed(client: &Client, names: &TableNames) -> deephaven_client::Result<bool> {
    Ok(client.scope_table_exists(&names.creation_claim).await?
        && current_claim(client, &names.creation_claim).await?.is_some())
}

/// Waits for this publisher's turn to make the set (`publisher` names it in the claim): `Some` when it is to make
/// it, `None` when no claim is left and the set is complete and usable (`complete` tells), made by another
/// publisher meanwhile. With `replace`, a set already complete is made anew unless another publisher claimed it
/// first.
pub(super) async fn take_turn<F, C>(
    client: &Client,
    names: &TableNames,
    publisher: &str,
    replace: bool,
    complete: F,
) -> deephaven_client::Result<Option<Claim>>
where
    F: Fn() -> C,
    C: Future<Output = deephaven_client::Result<bool>>,
{
    let name = &names.creation_claim;
    let table = client.ensure_input_table(name, schema(), kind()).await?;
    let claimant = format!("{publisher}-{:016x}", fastrand::u64(..));
    // The other claim last seen, and since when it has not changed.
    let mut seen: Option<(ClaimRow, Instant)> = None;
    loop {
        if let Some(other) = current_claim(client, name).await?.filter(|row| row.claimant != claimant) {
            let unchanged_since = match &seen {
                Some((row, since)) if *row == other => *since,
                _ => {
                    if seen.as_ref().is_none_or(|(row, _)| row.claimant != other.claimant) {
                        tracing::info!(claimant = %other.claimant, "another publisher is making the set; waiting for it");
                    }
                    seen = Some((other, Instant::now()));
                    Instant::now()
                }
            };
            if unchanged_since.elapsed() < PATIENCE {
                tokio::time::sleep(POLL).await;
                continue;
            }
            tracing::warn!(claim = ?seen, "the publisher making the set stopped renewing its claim; taking over");
        } else if seen.is_some() || !replace {
            // No claim left: the set was made meanwhile, unless its maker gave up. Read the claim again after this
            // check (many calls), so that a claim written meanwhile is seen before this one is written.
            if complete().await? {
                return Ok(None);
            }
            if current_claim(client, name).await?.is_some() {
                continue;
            }
        }
        client.append(&table, claim_row(&claimant)).await?;
        tokio::time::sleep(SETTLE).await;
        if current_claim(client, name).await?.is_some_and(|row| row.claimant == claimant) {
            let heartbeat = renew_every_heartbeat(client.clone(), table.clone(), claimant.clone());
            return Ok(Some(Claim { table, name: name.clone(), claimant, heartbeat: Some(heartbeat) }));
        }
        seen = None;
    }
}

/// Writes `claimant`'s claim again every [`HEARTBEAT`] until told to stop. A renewal that fails is tried again at
/// the next heartbeat; others take the claim over only after several missed.
fn renew_every_heartbeat(client: Client, table: InputTable, claimant: String) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, mut stopped) = oneshot::channel();
    let renewing = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tokio::time::sleep(HEARTBEAT) => {}
                _ = &mut stopped => return,
            }
            if let Err(err) = client.append(&table, claim_row(&claimant)).await {
                tracing::warn!(error = %err, "renewing the claim to make the set failed");
            }
        }
    });
    (stop, renewing)
}

/// The claim the table holds, if any.
async fn current_claim(client: &Client, name: &str) -> deephaven_client::Result<Option<ClaimRow>> {
    let batches = client.snapshot(name).await?;
    Ok(batches.iter().find_map(|batch| {
        let claimants = batch.column_by_name(CLAIMANT)?.as_string_opt::<i32>()?;
        let times = batch.column_by_name(CLAIMED_AT)?.as_primitive_opt::<TimestampNanosecondType>()?;
        (batch.num_rows() > 0).then(|| ClaimRow { claimant: claimants.value(0).to_owned(), claimed_at: times.value(0) })
    }))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(KEY, DataType::Utf8, false),
        Field::new(CLAIMANT, DataType::Utf8, false),
        Field::new(CLAIMED_AT, DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
    ]))
}

fn kind() -> InputTableKind {
    InputTableKind::keyed([KEY])
}

fn claim_row(claimant: &str) -> RecordBatch {
    let claimed_at = TimestampNanosecondArray::from(vec![Timestamp::now().unix_nanos()]).with_timezone("UTC");
    RecordBatch::try_new(
        schema(),
        vec![Arc::new(StringArray::from(vec![SET])), Arc::new(StringArray::from(vec![claimant])), Arc::new(claimed_at)],
    )
    .expect("the claim row matches its schema")
}

fn key_row() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(KEY, DataType::Utf8, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![SET]))]).expect("the key row matches its schema")
}

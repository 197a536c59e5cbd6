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
//! - the maker renews its claim every [`HEARTBEAT`] while it works (and stops, its claim lost, if it finds another's
//!   there), checks that the claim is still its own before it publishes the progress (the last table of a set), and
//!   removes it once the set is complete; if the making fails, it marks its claim failed instead, which the next
//!   publisher takes over at once (the set is then half made, though every table may exist). A claim left
//!   unchanged for the patience (its maker died half-way) is taken over too;
//! - a publisher told to stop while it waits for another's set stops without making it (at its next [`POLL`], or
//!   before it would write a claim); one making the set finishes first.
//!
//! Best effort, not a lock: it assumes a claim lands within [`SETTLE`] of being written.

use arrow::array::{AsArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampNanosecondType};
use deephaven_client::{Client, Error, InputTable, InputTableKind};
use futures::FutureExt;
use schemas::tables::TableNames;
use schemas::Timestamp;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Long enough for every claim written at about the same moment to land (a write is one round trip), so that all
/// claimants read back the same row.
const SETTLE: Duration = Duration::from_secs(1);

/// How often a maker renews its claim, so that others can tell it is alive however long the making takes.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// The least time a claim may stay unchanged before its maker counts as dead and the claim is taken over: several
/// heartbeats. Never less than four calls' timeout and a heartbeat ([`patience`]).
const PATIENCE: Duration = Duration::from_secs(30);

/// How many times removing or marking a claim is tried: one left behind holds every publisher back for the
/// patience, then has the set made anew.
const RELEASE_ATTEMPTS: u32 = 3;

/// How often a publisher waiting for another's set reads the claim again.
const POLL: Duration = Duration::from_millis(500);

/// The claim table's key, the same for every claim: one row, the last claim written.
const KEY: &str = "Key";
const SET: &str = "set";
const CLAIMANT: &str = "Claimant";
const STATE: &str = "State";
const CLAIMED_AT: &str = "ClaimedAt";

/// Where a claim's making stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Its maker is making the set (or died doing it).
    Making,
    /// Its maker failed half-way: the set must be made again.
    Failed,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Making => "making",
            State::Failed => "failed",
        }
    }
}

/// A claim as the table holds it: who, where the making stands, and when it was last written (each renewal
/// changes it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClaimRow {
    claimant: String,
    state: State,
    claimed_at: i64,
}

/// How long a claim may stay unchanged before it is taken over: [`PATIENCE`], or longer when calls may take long
/// enough for two renewals (a read and a write each) to land late.
fn patience(request_timeout: Duration) -> Duration {
    PATIENCE.max(request_timeout * 4 + HEARTBEAT)
}

/// This publisher's claim to make the set, won. Renewed until released (removed once the set is made, marked
/// failed otherwise); dropped unreleased (a panic, or the task cancelled), it is no longer renewed, and others
/// take it over once their patience runs out.
pub(super) struct Claim {
    table: InputTable,
    /// The claim table's name, to read it back.
    name: String,
    claimant: String,
    /// Set by the renewals when they find another publisher's claim in the table: this one was taken over.
    lost: Arc<AtomicBool>,
    heartbeat: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Claim {
    /// Whether the claim table still holds this claim: false when another publisher took it over, or also made
    /// the set after a claim that landed late. The maker checks it before publishing the progress, so that of two
    /// makers at most one completes a set.
    pub(super) async fn is_held(&self, client: &Client) -> deephaven_client::Result<bool> {
        if self.lost.load(Ordering::Acquire) {
            return Ok(false);
        }
        Ok(current_claim(client, &self.name).await?.is_some_and(|row| row.claimant == self.claimant))
    }

    /// Stops renewing the claim, then, unless another publisher took it over meanwhile, removes it once the set is
    /// `made`, or marks it failed.
    pub(super) async fn release(mut self, client: &Client, made: bool) -> deephaven_client::Result<()> {
        if let Some((stop, renewing)) = self.heartbeat.take() {
            // Stopped between renewals, so that no renewal lands after the removal.
            let _ = stop.send(());
            let _ = renewing.await;
        }
        let mut attempt = 1;
        loop {
            let released = async {
                if self.lost.load(Ordering::Acquire) {
                    return Ok(());
                }
                let row = current_claim(client, &self.name).await?;
                if row.as_ref().is_some_and(|row| row.claimant != self.claimant) {
                    return Ok(());
                }
                match (made, row) {
                    (true, Some(_)) => client.delete(&self.table, key_row()).await,
                    (true, None) => Ok(()),
                    // Even with the row gone: the set is half made, and must not be opened as if complete.
                    (false, _) => client.append(&self.table, claim_row(&self.claimant, State::Failed)).await,
                }
            };
            match released.await {
                Err(err) if attempt < RELEASE_ATTEMPTS && err.is_retryable() => {
                    attempt += 1;
                    tokio::time::sleep(POLL).await;
                }
                released => return released,
            }
        }
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
    Ok(current_claim(client, &names.creation_claim).await?.is_some())
}

/// Whose turn it is to make the set, as [`take_turn`] found it.
pub(super) enum Turn {
    /// This publisher's: it makes the set under this claim.
    Make(Claim),
    /// Nobody's: no claim is left, and the set is complete and usable, made by another publisher meanwhile.
    Open,
    /// Given up waiting for another publisher's set (this one is stopping); it holds no claim.
    Stopped,
}

/// Waits for this publisher's turn to make the set (`publisher` names it in the claim). With `replace`, a set
/// already complete is made anew unless another publisher claimed it first. `complete` tells whether the set is
/// complete and usable. `request_timeout` is a call's: claims are renewed and waited for with it in mind. The wait
/// for another publisher's set ends when `stop` completes, and no claim is written after it; a claim this publisher
/// has written is read back first, and if writing or reading it back fails, it tries once to mark the claim failed
/// rather than leave it making.
pub(super) async fn take_turn<F, C>(
    client: &Client,
    names: &TableNames,
    publisher: &str,
    replace: bool,
    request_timeout: Duration,
    complete: F,
    stop: impl Future<Output = ()>,
) -> deephaven_client::Result<Turn>
where
    F: Fn() -> C,
    C: Future<Output = deephaven_client::Result<bool>>,
{
    tokio::pin!(stop);
    let name = &names.creation_claim;
    let patience = patience(request_timeout);
    let claimant = format!("{publisher}-{:016x}", fastrand::u64(..));
    // The other claim last seen, and since when it has not changed.
    let mut seen: Option<(ClaimRow, Instant)> = None;
    let others = |row: &ClaimRow| row.claimant != claimant;
    loop {
        // Made again if it was deleted (or is of another shape, left by another version); before the claim is read,
        // so that nothing but this check stands between reading no claim and writing one.
        let table = match client.ensure_input_table(name, schema(), kind()).await {
            Err(Error::SchemaMismatch { .. }) => client.create_input_table(name, schema(), kind()).await?,
            ensured => ensured?,
        };
        // The table was just ensured: read it without asking again whether it exists.
        match read_claim(client, name).await?.filter(others) {
            Some(other) if other.state == State::Making => {
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
                if unchanged_since.elapsed() < patience {
                    if poll_unless_stopped(stop.as_mut()).await {
                        return Ok(Turn::Stopped);
                    }
                    continue;
                }
                tracing::warn!(claim = ?seen, "the publisher making the set stopped renewing its claim; taking over");
            }
            Some(failed) => {
                tracing::warn!(claimant = %failed.claimant, "the publisher making the set failed half-way; taking over");
            }
            None if seen.is_some() || !replace => {
                // No claim left: the set was made meanwhile. Read the claim again after this check (many calls), so
                // that a claim written meanwhile is seen before this one is written.
                if complete().await? {
                    return Ok(Turn::Open);
                }
                if current_claim(client, name).await?.is_some_and(|row| others(&row)) {
                    if poll_unless_stopped(stop.as_mut()).await {
                        return Ok(Turn::Stopped);
                    }
                    continue;
                }
            }
            None => {}
        }
        // Checked here too: the calls above can outlast the stop, and a claim written now means a whole making.
        if stop.as_mut().now_or_never().is_some() {
            return Ok(Turn::Stopped);
        }
        let written = async {
            client.append(&table, claim_row(&claimant, State::Making)).await?;
            tokio::time::sleep(SETTLE).await;
            current_claim(client, name).await
        };
        let read_back = match written.await {
            Ok(read_back) => read_back,
            Err(err) => {
                abandon(client, &table, name, &claimant).await;
                return Err(err);
            }
        };
        if read_back.is_some_and(|row| row.claimant == claimant) {
            let lost = Arc::new(AtomicBool::new(false));
            let heartbeat =
                renew_every_heartbeat(client.clone(), table.clone(), name.clone(), claimant.clone(), Arc::clone(&lost));
            return Ok(Turn::Make(Claim { table, name: name.clone(), claimant, lost, heartbeat: Some(heartbeat) }));
        }
        seen = None;
    }
}

/// Waits a [`POLL`]; true when `stop` completed meanwhile.
async fn poll_unless_stopped(stop: Pin<&mut impl Future<Output = ()>>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(POLL) => false,
        () = stop => true,
    }
}

/// Marks `claimant`'s claim failed if the table holds it: written, it may have landed though the write or its read
/// back failed, and left making it would hold every publisher back for the patience. Read after [`SETTLE`], like a
/// claim read back, so that it does not mark failed a claim another publisher wrote at the same moment and won.
/// One try, as the server just failed a call; a claim left behind (or landing later) is taken over once stale.
async fn abandon(client: &Client, table: &InputTable, name: &str, claimant: &str) {
    tokio::time::sleep(SETTLE).await;
    let ours = matches!(current_claim(client, name).await, Ok(Some(row)) if row.claimant == claimant);
    if ours {
        if let Err(err) = client.append(table, claim_row(claimant, State::Failed)).await {
            tracing::warn!(error = %err, "marking an unconfirmed claim failed did not work; others take it over once it is stale");
        }
    }
}

/// Writes `claimant`'s claim again every [`HEARTBEAT`] until told to stop (between renewals, so that none lands
/// after the claim is released); a renewal that takes longer delays the next. Stops, setting `lost`, when the
/// table holds another publisher's claim: this one was taken over, and must not overwrite the new one. A renewal
/// that fails is tried again at the next heartbeat; others take the claim over only after several missed.
fn renew_every_heartbeat(
    client: Client,
    table: InputTable,
    name: String,
    claimant: String,
    lost: Arc<AtomicBool>,
) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, mut stopped) = oneshot::channel();
    let renewing = tokio::spawn(async move {
        let mut heartbeats = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = heartbeats.tick() => {}
                _ = &mut stopped => return,
            }
            let renewal = async {
                if read_claim(&client, &name).await?.is_some_and(|row| row.claimant != claimant) {
                    return Ok(false);
                }
                client.append(&table, claim_row(&claimant, State::Making)).await.map(|()| true)
            };
            match renewal.await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("another publisher took over the claim to make the set");
                    lost.store(true, Ordering::Release);
                    return;
                }
                Err(err) => tracing::warn!(error = %err, "renewing the claim to make the set failed"),
            }
        }
    });
    (stop, renewing)
}

/// The claim the table holds, if any (none when the table is gone: deleted by hand, or lost with the server).
async fn current_claim(client: &Client, name: &str) -> deephaven_client::Result<Option<ClaimRow>> {
    if !client.scope_table_exists(name).await? {
        return Ok(None);
    }
    read_claim(client, name).await
}

/// The claim table `name` holds, if any; fails when the table is gone.
async fn read_claim(client: &Client, name: &str) -> deephaven_client::Result<Option<ClaimRow>> {
    let batches = client.snapshot(name).await?;
    Ok(batches.iter().find_map(|batch| {
        let claimants = batch.column_by_name(CLAIMANT)?.as_string_opt::<i32>()?;
        let states = batch.column_by_name(STATE)?.as_string_opt::<i32>()?;
        let times = batch.column_by_name(CLAIMED_AT)?.as_primitive_opt::<TimestampNanosecondType>()?;
        (batch.num_rows() > 0).then(|| ClaimRow {
            claimant: claimants.value(0).to_owned(),
            state: if states.value(0) == State::Failed.as_str() { State::Failed } else { State::Making },
            claimed_at: times.value(0),
        })
    }))
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(KEY, DataType::Utf8, false),
        Field::new(CLAIMANT, DataType::Utf8, false),
        Field::new(STATE, DataType::Utf8, false),
        Field::new(CLAIMED_AT, DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
    ]))
}

fn kind() -> InputTableKind {
    InputTableKind::keyed([KEY])
}

fn claim_row(claimant: &str, state: State) -> RecordBatch {
    let claimed_at = TimestampNanosecondArray::from(vec![Timestamp::now().unix_nanos()]).with_timezone("UTC");
    let text = |value: &str| Arc::new(StringArray::from(vec![value.to_owned()]));
    RecordBatch::try_new(schema(), vec![text(SET), text(claimant), text(state.as_str()), Arc::new(claimed_at)])
        .expect("the claim row matches its schema")
}

fn key_row() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(KEY, DataType::Utf8, false)]));
    RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![SET]))]).expect("the key row matches its schema")
}

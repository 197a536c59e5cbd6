//! The entry point. A [`Client`] is a cheaply cloneable handle on one gRPC channel and the current session on it;
//! table operations live in `input_table` and `query` as further `impl Client` blocks.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use tonic::transport::Channel;
use tonic::Code;

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::session::{Session, SessionStatus};

/// A Deephaven client: connect once, clone freely, share across tasks.
///
/// Every call uses the current session. When the server refuses a token that used to work (session expired, server
/// restarted) calls fail with [`Error::SessionLost`] and [`session_status`](Self::session_status) turns to
/// [`SessionStatus::Lost`]; [`reconnect`](Self::reconnect) then opens a new session on the same channel.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    /// Outlives sessions: a reconnect logs in again on the same connection.
    channel: Channel,
    /// Replaced whole by a reconnect; a call clones the `Arc` and finishes on the session it started with.
    session: RwLock<Arc<Session>>,
    /// The current session's number (1, then one more per reconnect), as [`SessionStatus`] reports it.
    generation: AtomicU64,
    status: watch::Sender<SessionStatus>,
    /// Serializes reconnects, so that each new session gets a generation of its own.
    reconnecting: Mutex<()>,
}

impl Client {
    /// Connects and logs in. Fails with a retryable error if the server is not reachable yet,
    /// [`Error::AuthenticationFailed`] if it refuses the credentials.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        let channel = config.endpoint()?.connect_lazy();
        let (status, _) = watch::channel(SessionStatus::Active { generation: 1 });
        let session = Session::open(channel.clone(), &config, 1, status.clone()).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                channel,
                session: RwLock::new(session),
                generation: AtomicU64::new(1),
                status,
                reconnecting: Mutex::new(()),
            }),
        })
    }

    /// Logs in again, replacing the current session (its export tickets are abandoned). Tables published by earlier
    /// sessions remain usable unless the server restarted, in which case they must be created again
    /// ([`ensure_input_table`](Self::ensure_input_table) does). Retryable errors leave the old session in place.
    pub async fn reconnect(&self) -> Result<()> {
        let _serialized = self.inner.reconnecting.lock().await;
        let generation = self.inner.generation.load(Ordering::Acquire) + 1;
        let session =
            Session::open(self.inner.channel.clone(), &self.inner.config, generation, self.inner.status.clone())
                .await?;
        self.inner.generation.store(generation, Ordering::Release);
        *self.inner.session.write().unwrap_or_else(PoisonError::into_inner) = session;
        Ok(())
    }

    /// Ends the current session on the server, which releases everything it still holds, instead of leaving it to
    /// expire. Tables published to the query scope stay. Later calls fail with [`Error::SessionLost`] until
    /// [`reconnect`](Self::reconnect).
    pub async fn close(&self) -> Result<()> {
        let session = self.session();
        self.within("close session", session.close()).await
    }

    /// Watches the session: `Active` after each login, `Lost` when the server refuses its token (noticed by a call or
    /// by the keep-alive).
    pub fn session_status(&self) -> watch::Receiver<SessionStatus> {
        self.inner.status.subscribe()
    }

    /// How many times the current session's token has been rotated by the server and adopted by the client.
    pub fn token_rotations(&self) -> u64 {
        self.session().token_rotations()
    }

    /// The server's session duration (`http.session.durationMs`); the client refreshes the session every quarter of it
    /// (or more often, see [`ClientConfig::with_keepalive_interval`]).
    pub fn session_duration(&self) -> Duration {
        self.session().duration()
    }

    /// Export tickets of the current session not yet released. Operations release their tickets before returning, so
    /// when idle this counts only the input tables pinned ([`Client::pin_input_table`]), which hold theirs.
    pub fn live_exports(&self) -> usize {
        self.session().live_exports()
    }

    /// How many exports the server holds for the current session right now, as its `ExportNotifications` stream
    /// reports them (objects not yet released, cancelled or failed). This client releases every export before
    /// the operation that created it returns, so when no operation is in flight this equals
    /// [`live_exports`](Self::live_exports) (the pinned input tables); a larger value means objects are pinned in the
    /// server's memory until the session ends. One round trip, bounded by the request timeout
    /// ([`ClientConfig::with_request_timeout`]).
    pub async fn server_exports(&self) -> Result<usize> {
        self.within("export notifications", self.session().server_exports()).await
    }

    /// Bounds an operation made of several calls (an upload beside the call that applies it, a download after the
    /// call that computes it) by one request timeout overall; each call alone is already bounded by it (`deadline`).
    pub(crate) async fn within<T>(&self, operation: &'static str, work: impl Future<Output = Result<T>>) -> Result<T> {
        let timeout = self.inner.config.request_timeout;
        tokio::time::timeout(timeout, work).await.map_err(|_| Error::Unavailable {
            operation,
            code: Code::DeadlineExceeded,
            message: format!("no complete answer within {timeout:?}"),
        })?
    }

    /// Releases of the current session the server did not acknowledge (each logged). Zero means every export
    /// this session created was freed on the server too.
    pub fn unconfirmed_releases(&self) -> usize {
        self.session().unconfirmed_releases()
    }

    /// The current session.
    pub(crate) fn session(&self) -> Arc<Session> {
        Arc::clone(&self.inner.session.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.config.endpoint)
            .field("session", &self.session().generation())
            .finish_non_exhaustive()
    }
}

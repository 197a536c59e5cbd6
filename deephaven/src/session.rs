//! One Deephaven session: the login, the keep-alive that refreshes it well inside `http.session.durationMs`,
//! lost-session detection, and the export tickets it owns (counted here, and as the server sees them). A [`Session`]
//! never outlives its token: reconnecting creates a new one (see [`Client::reconnect`](crate::Client::reconnect)).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tonic::transport::Channel;
use tonic::Status;

use crate::bearer::{BearerService, TokenState};
use crate::config::ClientConfig;
use crate::deadline::Deadline;
use crate::error::{Error, Result};
use crate::proto::backplane::config_service_client::ConfigServiceClient;
use crate::proto::backplane::export_notification::State as ExportState;
use crate::proto::backplane::input_table_service_client::InputTableServiceClient;
use crate::proto::backplane::session_service_client::SessionServiceClient;
use crate::proto::backplane::table_service_client::TableServiceClient;
use crate::proto::backplane::{
    config_value, ConfigurationConstantsRequest, ConfigurationConstantsResponse, ExportNotificationRequest,
    ExportedTableCreationResponse, HandshakeRequest, PublishRequest, ReleaseRequest, Ticket,
};
use crate::ticket::{export_ticket, scope_ticket, ExportId, ExportIds};

/// The table service as this client calls it: every request carries the session's bearer token.
pub(crate) type TableService = TableServiceClient<Deadline>;

/// Server setting: how long a session lives after its last token rotation.
const DURATION_KEY: &str = "http.session.durationMs";
/// The server's default when the setting is absent.
const DEFAULT_DURATION: Duration = Duration::from_secs(300);
/// Largest message accepted from the server (Deephaven itself accepts 100 MiB).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
/// The export id of the notification that ends the initial snapshot of `ExportNotifications`
/// (`SessionState.NON_EXPORT_ID` in Deephaven's server).
const SNAPSHOT_COMPLETE: ExportId = 0;

/// The state of the client's session, published by [`Client::session_status`](crate::Client::session_status).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionStatus {
    /// Logged in. `generation` is 1 for the first session and grows by one per reconnect.
    Active {
        /// Which session this is.
        generation: u64,
    },
    /// The server refused the session's token (expired, or the server restarted).
    Lost {
        /// Which session was lost.
        generation: u64,
        /// What revealed it.
        reason: String,
    },
}

/// Shared by a session and its keep-alive task.
#[derive(Debug)]
struct Liveness {
    generation: u64,
    lost: AtomicBool,
    status: watch::Sender<SessionStatus>,
}

impl Liveness {
    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }

    fn mark_lost(&self, reason: &str) {
        if self.lost.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::warn!(generation = self.generation, reason, "Deephaven session lost");
        let generation = self.generation;
        self.status.send_if_modified(|status| {
            let current = matches!(status, SessionStatus::Active { generation: g } if *g == generation);
            if current {
                *status = SessionStatus::Lost { generation, reason: reason.to_owned() };
            }
            current
        });
    }
}

/// A logged-in session: the channel that carries its token and deadline (every service client is made from it), its
/// exports, and its keep-alive.
#[derive(Debug)]
pub(crate) struct Session {
    service: Deadline,
    token: Arc<TokenState>,
    exports: ExportIds,
    duration: Duration,
    liveness: Arc<Liveness>,
    keepalive: AbortHandle,
}

impl Session {
    /// Logs in on `channel` and starts the keep-alive task.
    pub(crate) async fn open(
        channel: Channel,
        config: &ClientConfig,
        generation: u64,
        status: watch::Sender<SessionStatus>,
    ) -> Result<Arc<Self>> {
        let token = Arc::new(TokenState::new(config.auth.login_header()?));
        let service = Deadline::new(BearerService::new(channel, Arc::clone(&token)), config.request_timeout);
        let constants = ConfigServiceClient::new(service.clone())
            .get_configuration_constants(ConfigurationConstantsRequest {})
            .await
            .map_err(|status| Error::from_status("login", &status, false))?
            .into_inner();
        if !token.is_authenticated() {
            return Err(Error::Protocol { operation: "login", message: "the server issued no Bearer token".into() });
        }
        let duration = session_duration(&constants);
        let liveness = Arc::new(Liveness { generation, lost: AtomicBool::new(false), status });
        liveness.status.send_replace(SessionStatus::Active { generation });
        let keepalive = tokio::spawn(keep_alive(
            ConfigServiceClient::new(service.clone()),
            Arc::clone(&liveness),
            refresh_period(duration, config.keepalive_interval),
        ))
        .abort_handle();
        tracing::info!(generation, session_duration_ms = duration.as_millis() as u64, "Deephaven session established");
        Ok(Arc::new(Self { service, token, exports: ExportIds::new(), duration, liveness, keepalive }))
    }

    pub(crate) fn generation(&self) -> u64 {
        self.liveness.generation
    }

    pub(crate) fn duration(&self) -> Duration {
        self.duration
    }

    pub(crate) fn token_rotations(&self) -> u64 {
        self.token.rotations()
    }

    pub(crate) fn live_exports(&self) -> usize {
        self.exports.live()
    }

    pub(crate) fn unconfirmed_releases(&self) -> usize {
        self.exports.unconfirmed()
    }

    /// Fails fast once the session is known to be gone.
    pub(crate) fn check_alive(&self, operation: &'static str) -> Result<()> {
        if self.liveness.is_lost() {
            return Err(Error::SessionLost { operation, message: "the session was lost earlier; reconnect".into() });
        }
        Ok(())
    }

    /// Records a lost session before handing the error back.
    fn note(&self, error: Error) -> Error {
        if error.is_session_lost() {
            self.liveness.mark_lost(&error.to_string());
        }
        error
    }

    /// Maps a failed call's status.
    pub(crate) fn status_error(&self, operation: &'static str, status: &Status) -> Error {
        self.note(Error::from_status(operation, status, self.token.is_authenticated()))
    }

    /// Maps a failed Flight stream.
    pub(crate) fn flight_error(&self, operation: &'static str, error: FlightError) -> Error {
        self.note(Error::from_flight(operation, error, self.token.is_authenticated()))
    }

    pub(crate) fn tables(&self) -> TableService {
        TableServiceClient::new(self.service.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES)
    }

    pub(crate) fn input_tables(&self) -> InputTableServiceClient<Deadline> {
        InputTableServiceClient::new(self.service.clone())
    }

    pub(crate) fn flight(&self) -> FlightServiceClient<Deadline> {
        FlightServiceClient::new(self.service.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn sessions(&self) -> SessionServiceClient<Deadline> {
        SessionServiceClient::new(self.service.clone())
    }

    /// Allocates an export ticket, released when the returned guard is released or dropped.
    pub(crate) fn export(self: &Arc<Self>, operation: &'static str) -> Result<Export> {
        self.check_alive(operation)?;
        let id = self.exports.allocate().ok_or_else(|| Error::SessionLost {
            operation,
            message: "the session used up its export ids; reconnect".into(),
        })?;
        Ok(Export { id, session: Arc::clone(self), released: false })
    }

    /// Runs a table operation that writes its result to a new export (`request` receives the export's ticket),
    /// checks that the server created the table, then hands the ticket to `then` (to publish it) while the export
    /// still holds the table. The export is released whatever happened.
    pub(crate) async fn derive_table<T, Created, Then>(
        self: &Arc<Self>,
        operation: &'static str,
        request: impl FnOnce(TableService, Ticket) -> Created,
        then: impl FnOnce(Ticket) -> Then,
    ) -> Result<T>
    where
        Created: Future<Output = std::result::Result<tonic::Response<ExportedTableCreationResponse>, Status>>,
        Then: Future<Output = Result<T>>,
    {
        let export = self.export(operation)?;
        let result = async {
            let response = request(self.tables(), export.ticket())
                .await
                .map_err(|status| self.status_error(operation, &status))?
                .into_inner();
            check_created(operation, &response)?;
            then(export.ticket()).await
        }
        .await;
        export.release().await;
        result
    }

    /// Ends the session on the server (which releases whatever it still holds) and stops its keep-alive. The server
    /// refuses the token from then on, so later calls fail with [`Error::SessionLost`].
    pub(crate) async fn close(&self) -> Result<()> {
        self.keepalive.abort();
        if self.liveness.is_lost() {
            return Ok(());
        }
        let closed = self.sessions().close_session(HandshakeRequest {}).await;
        closed.map(drop).map_err(|status| self.status_error("close session", &status))
    }

    /// Publishes `source` to the query scope as `name` (replacing any previous value).
    pub(crate) async fn publish(&self, source: Ticket, name: &str) -> Result<()> {
        let request = PublishRequest { source_id: Some(source), result_id: Some(scope_ticket(name)) };
        self.sessions().publish_from_ticket(request).await.map_err(|status| self.status_error("publish", &status))?;
        Ok(())
    }

    /// How many exports the server holds for this session: the initial snapshot of the `ExportNotifications`
    /// stream, which lists every export not yet in a terminal state and then marks its own end with export id 0.
    /// Notifications may repeat or update an export before that marker: the last state of each ticket counts.
    pub(crate) async fn server_exports(&self) -> Result<usize> {
        const OPERATION: &str = "export notifications";
        self.check_alive(OPERATION)?;
        let mut notifications = self
            .sessions()
            .export_notifications(ExportNotificationRequest {})
            .await
            .map_err(|status| self.status_error(OPERATION, &status))?
            .into_inner();
        let marker = export_ticket(SNAPSHOT_COMPLETE);
        let mut states = HashMap::new();
        // Dropping the stream at the marker cancels the call: the server forgets this listener.
        while let Some(notification) =
            notifications.message().await.map_err(|status| self.status_error(OPERATION, &status))?
        {
            let state = notification.export_state();
            let ticket = notification.ticket.unwrap_or_default();
            if ticket == marker {
                return Ok(states.into_values().filter(|state| holds_export(*state)).count());
            }
            states.insert(ticket.ticket, state);
        }
        Err(Error::Protocol {
            operation: OPERATION,
            message: "the stream ended before its initial snapshot did".into(),
        })
    }

    /// Releases export `id`. Never fails the caller's operation: a release that cannot be sent is logged, and the
    /// server frees it with the session.
    async fn release(&self, id: ExportId) {
        // A lost session's exports went with it on the server: nothing to confirm.
        let mut confirmed = true;
        if !self.liveness.is_lost() {
            let request = ReleaseRequest { id: Some(export_ticket(id)) };
            if let Err(status) = self.sessions().release(request).await {
                let error = self.status_error("release", &status);
                if !error.is_session_lost() {
                    confirmed = false;
                    tracing::warn!(export = id, %error, "could not release export ticket");
                }
            }
        }
        self.exports.released(confirmed);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.keepalive.abort();
    }
}

/// A table operation's answer: success, or the server's reason in `error_info`.
pub(crate) fn check_created(operation: &'static str, response: &ExportedTableCreationResponse) -> Result<()> {
    if response.success {
        return Ok(());
    }
    Err(Error::Rejected { operation, code: tonic::Code::Unknown, message: response.error_info.clone() })
}

/// An export ticket owned by a session; released exactly once.
#[derive(Debug)]
pub(crate) struct Export {
    id: ExportId,
    session: Arc<Session>,
    released: bool,
}

impl Export {
    pub(crate) fn id(&self) -> ExportId {
        self.id
    }

    pub(crate) fn ticket(&self) -> Ticket {
        export_ticket(self.id)
    }

    /// Whether the ticket is `session`'s (after a reconnect, another session's id may name something else).
    pub(crate) fn belongs_to(&self, session: &Arc<Session>) -> bool {
        Arc::ptr_eq(&self.session, session)
    }

    /// Releases the ticket on the server and waits for the answer.
    pub(crate) async fn release(mut self) {
        self.released = true;
        self.session.release(self.id).await;
    }
}

impl Drop for Export {
    /// A guard dropped early (an error path, a cancelled future) releases in the background.
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (session, id) = (Arc::clone(&self.session), self.id);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { session.release(id).await });
            }
            // No runtime left: the server frees the export when the session ends.
            Err(_) => session.exports.released(false),
        }
    }
}

/// Whether an export in `state` still holds its object on the server: every state but the terminal ones
/// (released, cancelled, failed), as Deephaven's `SessionState.isExportStateTerminal` defines them.
fn holds_export(state: ExportState) -> bool {
    match state {
        ExportState::Unknown
        | ExportState::Pending
        | ExportState::Publishing
        | ExportState::Queued
        | ExportState::Running
        | ExportState::Exported => true,
        ExportState::Released
        | ExportState::Cancelled
        | ExportState::Failed
        | ExportState::DependencyFailed
        | ExportState::DependencyNeverFound
        | ExportState::DependencyCancelled
        | ExportState::DependencyReleased => false,
    }
}

/// `http.session.durationMs` from the configuration constants, or the server default.
fn session_duration(constants: &ConfigurationConstantsResponse) -> Duration {
    constants
        .config_values
        .get(DURATION_KEY)
        .and_then(|value| match &value.kind {
            Some(config_value::Kind::StringValue(ms)) => ms.trim().parse::<u64>().ok(),
            None => None,
        })
        .filter(|ms| *ms > 0)
        .map_or(DEFAULT_DURATION, Duration::from_millis)
}

/// How often to refresh: a quarter of the session duration (so that three refreshes in a row may fail before the
/// session expires), or the configured interval when that is shorter.
fn refresh_period(duration: Duration, configured: Option<Duration>) -> Duration {
    let quarter = duration / 4;
    configured.map_or(quarter, |interval| interval.min(quarter)).max(Duration::from_millis(250))
}

/// Refreshes the session until it is lost or the session is dropped (which aborts this task). While the server is
/// unreachable it retries sooner, doubling the wait up to `period`, and warns once per outage.
async fn keep_alive(mut config: ConfigServiceClient<Deadline>, liveness: Arc<Liveness>, period: Duration) {
    let first_retry = (period / 4).max(Duration::from_millis(250));
    let mut wait = period;
    let mut failures = 0_u32;
    loop {
        tokio::time::sleep(wait).await;
        match config.get_configuration_constants(ConfigurationConstantsRequest {}).await {
            Ok(_) => {
                if failures > 0 {
                    tracing::info!(failures, "session refresh recovered");
                }
                tracing::trace!(generation = liveness.generation, "session refreshed");
                failures = 0;
                wait = period;
            }
            Err(status) => {
                let error = Error::from_status("keep-alive", &status, true);
                if error.is_session_lost() {
                    liveness.mark_lost(&error.to_string());
                    return;
                }
                if failures == 0 {
                    tracing::warn!(%error, "session refresh failed; retrying");
                    wait = first_retry;
                } else {
                    tracing::debug!(%error, failures, "session refresh still failing");
                    wait = (wait * 2).min(period);
                }
                failures += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::proto::backplane::ConfigValue;

    fn constants(value: Option<&str>) -> ConfigurationConstantsResponse {
        let mut config_values = HashMap::new();
        if let Some(value) = value {
            config_values.insert(
                DURATION_KEY.to_owned(),
                ConfigValue { kind: Some(config_value::Kind::StringValue(value.to_owned())) },
            );
        }
        ConfigurationConstantsResponse { config_values }
    }

    #[test]
    fn session_duration_comes_from_the_server() {
        assert_eq!(session_duration(&constants(Some("30000"))), Duration::from_secs(30));
        assert_eq!(session_duration(&constants(None)), DEFAULT_DURATION);
        assert_eq!(session_duration(&constants(Some("soon"))), DEFAULT_DURATION);
        assert_eq!(session_duration(&constants(Some("0"))), DEFAULT_DURATION);
    }

    #[test]
    fn refresh_is_well_inside_the_duration() {
        let secs = Duration::from_secs;
        assert_eq!(refresh_period(secs(300), None), secs(75));
        assert_eq!(refresh_period(secs(30), None), Duration::from_millis(7500));
        assert_eq!(refresh_period(Duration::from_millis(100), None), Duration::from_millis(250));
        assert_eq!(refresh_period(secs(300), Some(secs(1))), secs(1));
        assert_eq!(refresh_period(secs(30), Some(secs(600))), Duration::from_millis(7500));
    }

    #[test]
    fn only_non_terminal_exports_are_held() {
        let held: Vec<i32> = (0..=13)
            .filter_map(|n| ExportState::try_from(n).ok())
            .filter(|state| holds_export(*state))
            .map(|state| state as i32)
            .collect();
        assert_eq!(held, [0, 1, 2, 3, 4, 5], "UNKNOWN..=EXPORTED");
        assert_eq!(export_ticket(SNAPSHOT_COMPLETE).ticket, [b'e', 0, 0, 0, 0]);
    }

    #[test]
    fn only_the_current_generation_is_marked_lost() {
        let (status, receiver) = watch::channel(SessionStatus::Active { generation: 2 });
        let stale = Liveness { generation: 1, lost: AtomicBool::new(false), status: status.clone() };
        stale.mark_lost("old token refused");
        assert!(stale.is_lost());
        assert_eq!(*receiver.borrow(), SessionStatus::Active { generation: 2 });

        let current = Liveness { generation: 2, lost: AtomicBool::new(false), status };
        current.mark_lost("token refused");
        assert!(matches!(&*receiver.borrow(), SessionStatus::Lost { generation: 2, .. }));
    }
}

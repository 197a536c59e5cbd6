//! A deadline on every connection that stops making progress.
//!
//! actix times a connection's first request head and an idle keep-alive connection, and nothing else: a second
//! request head sent a byte at a time, or a chunked body that actix drains after an early answer (a 401, a 413, a
//! 503) while its sender sends nothing, hold the connection for as long as the sender likes. A few hundred of them
//! would take every connection `server.max_connections` allows, and Alertmanager's webhooks would queue behind
//! them. So each connection gets a watch: a request beginning or an answer leaving counts as progress, and a
//! connection with none for `server.request_timeout` plus the keep-alive time (what an honest client needs at most:
//! an idle wait, then one request) is shut down.
//!
//! The watch is a task on the connection's worker holding a duplicate of its socket, so that it can shut the
//! connection down from outside actix's dispatcher; it ends, and closes the duplicate, as soon as the connection
//! ends.

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use prometheus_client::metrics::counter::Counter;
use std::any::Any;
use std::cell::Cell;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How long actix keeps an idle connection open between two requests (its default, set explicitly so that the
/// deadline below is computed from the value in force).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Starts connections' watches (`HttpServer::on_connect`).
#[derive(Clone)]
pub struct ConnectionDeadlines {
    /// The longest a connection may go without progress.
    allowed: Duration,
    /// Connections shut down for making none.
    timed_out: Counter,
}

impl ConnectionDeadlines {
    pub fn new(request_timeout: Duration, timed_out: Counter) -> Self {
        Self { allowed: request_timeout + KEEP_ALIVE, timed_out }
    }

    /// Watches the connection `connection` (plain TCP or TLS over it) and leaves its progress marker in `data`,
    /// where [`progressed`] finds it.
    pub fn watch(&self, connection: &dyn Any, data: &mut Extensions) {
        let socket = match connection.downcast_ref::<TcpStream>() {
            Some(plain) => plain,
            None => match connection.downcast_ref::<TlsStream<TcpStream>>() {
                Some(tls) => tls.get_ref().0,
                None => return,
            },
        };
        let Ok(duplicate) = socket.as_fd().try_clone_to_owned() else {
            tracing::warn!("could not watch a connection: its socket could not be duplicated");
            return;
        };
        let socket = std::net::TcpStream::from(duplicate);
        let last = Rc::new(Cell::new(Instant::now()));
        let (ended, connection_ended) = oneshot::channel();
        data.insert(Progress { last: Rc::clone(&last), _ended: ended });
        let (allowed, timed_out) = (self.allowed, self.timed_out.clone());
        actix_web::rt::spawn(async move {
            tokio::pin!(connection_ended);
            loop {
                tokio::select! {
                    _ = &mut connection_ended => return,
                    () = tokio::time::sleep_until(last.get() + allowed) => {
                        if last.get() + allowed <= Instant::now() {
                            timed_out.inc();
                            tracing::info!(allowed = ?allowed, "a connection made no progress in time: shut down");
                            let _ = socket.shutdown(Shutdown::Both);
                            return;
                        }
                    }
                }
            }
        });
    }
}

/// A connection's progress marker; dropped with the connection, which ends its watch.
struct Progress {
    last: Rc<Cell<Instant>>,
    /// Dropped with the marker: the watch sees its receiver end.
    _ended: oneshot::Sender<()>,
}

/// Records progress on `request`'s connection (it began, or its answer is leaving).
pub fn progressed(request: &actix_web::HttpRequest) {
    if let Some(progress) = request.conn_data::<Progress>() {
        progress.last.set(Instant::now());
    }
}

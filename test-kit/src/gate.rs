//! A TCP pass-through that a test can shut and open again, so clients behind it see a server as gone (every
//! connection cut, new ones closed at once) until the test lets them through. [`crate::stack::PrivateBroker`] puts
//! one before its broker: a broker restarted empty is only reachable again once its topics exist, because the local
//! broker answers a fetch of a topic it does not know in a way that crashes librdkafka (see `scripts/broker.sh`:
//! with the upstream fix named there pinned, the gate need not stay shut until the topics exist).

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The pass-through on its own port; stops when dropped.
pub struct Gate {
    port: u16,
    /// Whether connections are let through. The listener stays bound while shut, so no other test can take the port.
    open: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Gate {
    /// Listens on a free loopback port, open, passing every connection on to 127.0.0.1:`backend`. Must be called
    /// within a Tokio runtime; returns once the port listens.
    pub fn open_to(backend: u16) -> Gate {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the gate's port");
        let port = listener.local_addr().expect("the gate's address").port();
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let listener = TcpListener::from_std(listener).expect("the listener in the runtime");
        let (open, state) = watch::channel(true);
        let task = tokio::spawn(pass_through(listener, SocketAddr::from(([127, 0, 0, 1], backend)), state));
        Gate { port, open, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts every connection and closes each new one at once, until [`Gate::open`].
    pub fn shut(&self) {
        self.open.send_replace(false);
    }

    /// Lets connections through again.
    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pass_through(listener: TcpListener, backend: SocketAddr, mut open: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                // A shut gate drops the connection it accepted: the client sees it closed.
                if let (Ok((client, _)), true) = (accepted, *open.borrow()) {
                    connections.spawn(relay(client, backend));
                }
            }
            changed = open.changed() => {
                if changed.is_err() {
                    return;
                }
                if !*open.borrow_and_update() {
                    connections.abort_all();
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn relay(mut client: TcpStream, backend: SocketAddr) {
    if let Ok(mut server) = TcpStream::connect(backend).await {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const GREETING: &[u8] = b"hello";

    /// A server that greets each connection and keeps it open.
    async fn greeting_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((mut stream, _)) = listener.accept().await {
                let _ = stream.write_all(GREETING).await;
                kept.push(stream);
            }
        });
        port
    }

    /// What a new connection through the gate reads: the greeting, or nothing when it is closed at once.
    async fn greeting_through(gate: &Gate) -> Vec<u8> {
        let stream = TcpStream::connect(("127.0.0.1", gate.port())).await.expect("the gate accepts");
        let mut read = Vec::new();
        stream.take(GREETING.len() as u64).read_to_end(&mut read).await.expect("reading");
        read
    }

    #[tokio::test]
    async fn a_shut_gate_lets_nothing_through_until_it_is_opened() {
        let gate = Gate::open_to(greeting_server().await);
        assert_eq!(greeting_through(&gate).await, GREETING);

        let mut held = TcpStream::connect(("127.0.0.1", gate.port())).await.expect("connect");
        let mut greeting = [0; GREETING.len()];
        held.read_exact(&mut greeting).await.expect("the greeting");
        gate.shut();
        let mut rest = Vec::new();
        let cut = tokio::time::timeout(Duration::from_secs(10), held.read_to_end(&mut rest)).await;
        assert!(matches!(cut, Ok(Ok(0)) | Ok(Err(_))), "a connection open when the gate shut is cut: {cut:?}");
        assert_eq!(greeting_through(&gate).await, b"", "a new connection is closed at once");

        gate.open();
        assert_eq!(greeting_through(&gate).await, GREETING);
    }
}

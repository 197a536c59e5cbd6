//! The stop request both services honour: SIGTERM (what orchestrators send) or Ctrl-C.

/// Resolves when the process is asked to stop.
pub async fn signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

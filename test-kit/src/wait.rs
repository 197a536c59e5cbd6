//! Waiting for conditions with deadlines.
//!
//! Tests never sleep for a fixed time hoping something happened: they poll a condition until it holds or the
//! deadline passes, and a passed deadline fails with the last observation. What must *not* happen is polled over a
//! window instead, failing at the first observation of it.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `probe` until it returns `Some`, or panics after `deadline` naming `what` and the last `Err` observation.
pub async fn until<T, E: Debug, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(observation) => observation,
        };
        if started.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}; last observation: {last:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `check` until it holds, or panics after `deadline` naming `what`.
pub async fn until_true<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    until(what, deadline, || {
        let holds = check();
        async move {
            if holds.await {
                Ok(())
            } else {
                Err("not yet")
            }
        }
    })
    .await
}

/// Polls `probe` for `window` and panics, naming `what` and the observation, the first time it returns `Err`: for
/// what must not happen, where a single look could come before it would.
pub async fn holds_for<E: Debug, F, Fut>(what: &str, window: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let started = Instant::now();
    while started.elapsed() < window {
        if let Err(observation) = probe().await {
            panic!("{what} did not hold after {:?}: {observation:?}", started.elapsed());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

//! Waiting between attempts: capped exponential backoff with jitter, cut short by shutdown.
//!
//! The jitter keeps several publishers that lost Deephaven at the same moment from retrying in lockstep.

use std::time::Duration;
use tokio::sync::watch;

/// The first step of every backoff.
const FIRST_STEP: Duration = Duration::from_millis(200);

/// Steps double from a short first step up to `max`; each wait is a random part (half to all) of its step.
#[derive(Debug)]
pub struct Backoff {
    step: Duration,
    max: Duration,
}

/// Shutdown was asked for while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutDown;

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Self { step: FIRST_STEP.min(max), max }
    }

    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.step;
        self.step = (self.step * 2).min(self.max);
        step.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// Waits [`Self::next_wait`], or less if shutdown is asked for first.
    pub async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ShutDown> {
        let wait = self.next_wait();
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            _ = shutdown.wait_for(|stop| *stop) => Err(ShutDown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_with_jitter_below_each_step() {
        let mut backoff = Backoff::new(Duration::from_secs(1));
        let steps = [200, 400, 800, 1000, 1000];
        for step in steps {
            let wait = backoff.next_wait();
            let step = Duration::from_millis(step);
            assert!(wait >= step / 2 && wait <= step, "{wait:?} within half of {step:?} and {step:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_cuts_a_wait_short() {
        let (stop, mut stopped) = watch::channel(false);
        let mut backoff = Backoff::new(Duration::from_secs(3600));
        for _ in 0..20 {
            backoff.next_wait();
        }
        let waiting = tokio::spawn(async move { backoff.wait(&mut stopped).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "a wait of half an hour or more is still under way");
        stop.send(true).unwrap();
        let cut = tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("cut short at once");
        assert_eq!(cut.unwrap(), Err(ShutDown));
    }
}

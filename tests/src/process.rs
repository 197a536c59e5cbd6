//! Child processes of the project's binaries: signalling them and waiting for them to exit.

use std::process::{Child, ExitStatus};
use std::time::Duration;

/// Sends SIGTERM (a graceful stop request).
pub fn terminate(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("sending SIGTERM");
}

/// Waits for `child` to exit, panicking after `deadline`.
pub async fn wait_for_exit(child: &mut Child, what: &str, deadline: Duration) -> ExitStatus {
    crate::wait::until(what, deadline, || {
        let status = child.try_wait();
        async move {
            match status {
                Ok(Some(status)) => Ok(status),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
}

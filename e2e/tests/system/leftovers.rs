//! What a test binary killed before its clean-up leaves running: the project's scripts start components in sessions
//! of their own, so a private broker outlives the binary that started it, and `scripts/test.sh` stops whatever is
//! left under `TEST_PRIVATE_DIR` when it ends (`stop_every_process_under`, scripts/lib.sh).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use test_kit::stack::{repo_root, PrivateBroker, PRIVATE_DIR_VARIABLE};
use test_kit::wait;

/// Names the file [`starts_a_broker_and_waits`] creates once its broker is up; without it, that test does nothing.
const READY_FILE_VARIABLE: &str = "ALERTHAVEN_TEST_LEFTOVER_READY";

#[tokio::test(flavor = "multi_thread")]
async fn components_left_by_a_killed_test_binary_are_stopped_by_the_sweep() {
    let (private, marker) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ready = marker.path().join("ready");
    // This test binary again, running only the helper below, as a run that a Ctrl-C is about to end.
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "leftovers::starts_a_broker_and_waits", "--ignored"])
        .env(PRIVATE_DIR_VARIABLE, private.path())
        .env(READY_FILE_VARIABLE, &ready)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Leftovers { child, private };
    wait::until_true("the child's broker is up", Duration::from_secs(60), || async { ready.exists() }).await;
    let broker = broker_pid(child.private.path());
    child.child.kill().unwrap();
    child.child.wait().unwrap();
    assert!(is_alive(broker), "the broker outlives the killed test binary that started it");

    assert!(sweep(child.private.path()), "the sweep succeeds");
    assert!(!is_alive(broker), "the sweep stopped it");
    assert_eq!(std::fs::read_dir(child.private.path()).unwrap().count(), 0, "and removed its directory");
}

/// The child and what it started, stopped on drop too, so that a failing test leaves nothing running.
struct Leftovers {
    child: Child,
    private: TempDir,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        sweep(self.private.path());
    }
}

/// What scripts/test.sh runs when it ends, over `private`; whether it succeeded.
fn sweep(private: &Path) -> bool {
    Command::new("bash")
        .args(["-c", r#"source "$0/scripts/lib.sh" && stop_every_process_under "$1""#])
        .arg(repo_root())
        .arg(private)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The child of the test above: starts a private broker, says so, and waits to be killed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "run by components_left_by_a_killed_test_binary_are_stopped_by_the_sweep, as its child"]
async fn starts_a_broker_and_waits() {
    let Some(ready) = std::env::var_os(READY_FILE_VARIABLE).map(PathBuf::from) else {
        return;
    };
    let _broker = PrivateBroker::start(1);
    std::fs::write(ready, b"").unwrap();
    std::future::pending::<()>().await;
}

/// The pid in the one broker pid file under `private`.
fn broker_pid(private: &Path) -> i32 {
    let component = std::fs::read_dir(private).unwrap().next().expect("one component directory").unwrap().path();
    let recorded = std::fs::read_to_string(component.join("pids/broker.pid")).expect("the broker's pid file");
    recorded.split_whitespace().next().and_then(|pid| pid.parse().ok()).expect("a pid")
}

/// Whether `pid` runs (a zombie does not: nothing may reap it here, as scripts/lib.sh says too).
fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

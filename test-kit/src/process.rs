//! Child processes of the project's binaries: starting them, probing their operations endpoint, signalling them
//! and waiting for them to exit.

pub use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Sends SIGTERM (a graceful stop request).
pub fn terminate(child: &Child) {
    send_signal(child, Signal::SIGTERM);
}

/// Sends `signal` to `child`.
pub fn send_signal(child: &Child, signal: Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    nix::sys::signal::kill(pid, signal).unwrap_or_else(|err| panic!("sending {signal}: {err}"));
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

/// A command running `binary` that the kernel kills when the thread that spawned it ends (`setpriv --pdeathsig`,
/// util-linux): a test that aborts, or a test binary killed from outside, never leaves its services running and
/// writing into the suite's output. Start it from the test's own thread (not a `spawn_blocking` one, which ends when
/// idle). The wrapper execs `binary`, so the child's pid is the binary's.
pub fn child_command(binary: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(binary);
    command
}

/// One of the project's services run as a child process, with its operations endpoint (`/healthz`, `/readyz`,
/// `/metrics`) on a known port.
pub struct Service {
    pub child: Child,
    /// Base URL of the operations endpoint.
    pub ops_url: String,
    /// Where its output goes, when a test reads it ([`Service::spawn_logged`]); otherwise it is the test's own.
    log: Option<tempfile::NamedTempFile>,
}

impl Service {
    /// Starts `binary` with `args` and `env` (and stdin closed); its operations endpoint is expected on `ops_port`.
    /// Its output goes to the test's.
    pub fn spawn(binary: &Path, args: &[&str], env: &[(String, String)], ops_port: u16) -> Service {
        Self::start(binary, args, env, ops_port, None)
    }

    /// Like [`Service::spawn`], with its standard output and error kept for [`Service::log`].
    pub fn spawn_logged(binary: &Path, args: &[&str], env: &[(String, String)], ops_port: u16) -> Service {
        let log = tempfile::Builder::new().prefix("service-log-").tempfile().expect("a log file");
        Self::start(binary, args, env, ops_port, Some(log))
    }

    fn start(
        binary: &Path,
        args: &[&str],
        env: &[(String, String)],
        ops_port: u16,
        log: Option<tempfile::NamedTempFile>,
    ) -> Service {
        let mut command = child_command(binary);
        command.args(args).envs(env.iter().map(|(name, value)| (name, value))).stdin(Stdio::null());
        if let Some(log) = &log {
            let file = || log.reopen().expect("the log file");
            command.stdout(file()).stderr(file());
        }
        let child = command.spawn().unwrap_or_else(|err| panic!("starting {}: {err}", binary.display()));
        Service { child, ops_url: format!("http://127.0.0.1:{ops_port}"), log }
    }

    /// What a service started by [`Service::spawn_logged`] has written so far.
    pub fn log(&self) -> String {
        let log = self.log.as_ref().expect("started with spawn_logged");
        String::from_utf8_lossy(&std::fs::read(log.path()).expect("reading the log")).into_owned()
    }

    /// The operations endpoint's port.
    pub fn port(&self) -> u16 {
        self.ops_url.rsplit(':').next().and_then(|port| port.parse().ok()).expect("the URL ends with its port")
    }

    /// GETs `path` from the operations endpoint: (status, body).
    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let response = reqwest::get(format!("{}{path}", self.ops_url)).await.map_err(|err| err.to_string())?;
        let status = response.status().as_u16();
        Ok((status, response.text().await.map_err(|err| err.to_string())?))
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_until_ready(&self, deadline: Duration) {
        crate::wait::until(&format!("{}/readyz to answer 200", self.ops_url), deadline, || async {
            match self.get("/readyz").await? {
                (200, _) => Ok(()),
                (status, body) => Err(format!("{status} {body}")),
            }
        })
        .await;
    }

    /// Waits until `/metrics` holds the line `sample`.
    pub async fn wait_for_metric(&self, sample: &str, deadline: Duration) {
        crate::wait::until(&format!("/metrics to show {sample}"), deadline, || async {
            let (_, metrics) = self.get("/metrics").await?;
            if metrics.lines().any(|line| line == sample) {
                Ok(())
            } else {
                Err(metrics.lines().filter(|line| !line.starts_with('#')).collect::<Vec<_>>().join("; "))
            }
        })
        .await;
    }

    /// Resident set size in bytes, from `/proc`.
    pub fn rss_bytes(&self) -> Option<u64> {
        memory_bytes(self.child.id(), "VmRSS")
    }

    /// SIGTERM, then waits (up to 30 s) for the process to exit and returns how it did.
    pub async fn terminate_and_wait(&mut self, name: &str) -> ExitStatus {
        terminate(&self.child);
        wait_for_exit(&mut self.child, &format!("{name} to exit after SIGTERM"), Duration::from_secs(30)).await
    }

    /// SIGKILL, then reaps the process.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the process");
    }
}

impl Drop for Service {
    /// A failed test must not leave services running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The project's binary `name` as built by cargo for this test run (beside the test executable's `deps/`).
/// `cargo test --workspace` builds it; `scripts/test.sh` builds every binary first, to be sure.
pub fn built_binary(name: &str) -> PathBuf {
    let test_executable = std::env::current_exe().expect("the test executable's path");
    let profile_dir = test_executable.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join(name);
    assert!(binary.exists(), "{} is missing: build it first (cargo build --workspace --bins)", binary.display());
    binary
}

/// A memory figure of a running process, in bytes, from `/proc/<pid>/status` (`VmRSS`, or `VmHWM`: the peak
/// resident set size since it started).
pub fn memory_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = status.lines().find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?.trim().strip_suffix("kB")?;
    kib.trim().parse::<u64>().ok().map(|kib| kib * 1024)
}

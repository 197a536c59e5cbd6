//! The running test stack, and private components for tests that must stop one.
//!
//! `scripts/test.sh` starts the shared stack and exports its addresses; [`Stack::from_env`] reads them and fails
//! loudly when they are missing, because a test that needs a component must fail, not skip, without it. Tests that
//! stop a component (a broker outage, say) start a private one with the same project script, on a free port in a
//! directory of their own, so the shared stack other tests use concurrently is never disturbed. Those directories
//! sit under `TEST_PRIVATE_DIR` when it is set ([`component_dir`]): the scripts start components in sessions of their
//! own, so when a test binary dies before its `Drop`s run (a Ctrl-C, a SIGKILL) they outlive it, and
//! `scripts/test.sh` stops whatever is left there when it ends.

use crate::gate::Gate;
use crate::tls::TestPki;
use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Addresses of the shared test stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub kafka_brokers: String,
    pub deephaven_url: String,
    pub prometheus_url: String,
    pub alertmanager_url: String,
    /// Where the stack's Alertmanager sends its webhooks.
    pub ingest_port: u16,
}

impl Stack {
    /// Reads the stack's addresses from the environment `scripts/test.sh` sets up.
    pub fn from_env() -> Stack {
        Stack {
            kafka_brokers: required("KAFKA_BROKERS"),
            deephaven_url: required("DEEPHAVEN_URL"),
            prometheus_url: required("PROMETHEUS_URL"),
            alertmanager_url: required("ALERTMANAGER_URL"),
            ingest_port: required("INGEST_PORT").parse().expect("INGEST_PORT is a port number"),
        }
    }
}

/// The live Java heap of the stack's Deephaven in bytes, after a full collection (so what is kept, not what waits
/// to be collected), read with the JDK's `jcmd` beside the JVM the server runs in. `None` when it cannot be read.
pub fn deephaven_heap_used_bytes() -> Option<u64> {
    let pids = PathBuf::from(std::env::var("STACK_DIR").ok()?).join("pids/deephaven.pid");
    let pid = std::fs::read_to_string(pids).ok()?.split_whitespace().next()?.to_owned();
    // The server embeds the JVM: its libjvm.so (JAVA_HOME/lib/server/) names the JDK.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let libjvm =
        maps.lines().find_map(|line| line.split_whitespace().last().filter(|path| path.ends_with("/libjvm.so")))?;
    let jcmd = Path::new(libjvm).parent()?.parent()?.parent()?.join("bin/jcmd");
    let run = |command: &str| {
        Command::new(&jcmd).args([pid.as_str(), command]).output().ok().filter(|out| out.status.success())
    };
    run("GC.run")?;
    let info = String::from_utf8(run("GC.heap_info")?.stdout).ok()?;
    // " garbage-first heap   total 99328K, used 67710K [...]"
    let used = info.split("used ").nth(1)?.split('K').next()?;
    used.trim().parse::<u64>().ok().map(|kib| kib * 1024)
}

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. These tests run against the real local stack: run scripts/test.sh, or start it with \
             scripts/stack-up.sh and `source .stack/env` first."
        )
    })
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the test kit lives in the repository").to_owned()
}

/// The files under `dir`, at any depth, whose extension is one of `extensions`, in order: the repository's own
/// files that checks read (documents, scripts, manifests).
pub fn files_under(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            found.extend(files_under(&path, extensions));
        } else if path.extension().is_some_and(|found| extensions.iter().any(|wanted| found == *wanted)) {
            found.push(path);
        }
    }
    found.sort();
    found
}

/// A port that was free a moment ago, never handed out before by this process, and below the kernel's range for
/// the local ports of outgoing connections: a service stopped and started again on it (a broker's restart) cannot
/// find it taken meanwhile by a client's connection (one reconnecting to that very port can even connect to
/// itself), which the port 0 trick, drawing from that range, allowed.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let below = outgoing_ports_start();
    let mut handed_out = HANDED_OUT.lock().expect("never poisoned");
    // Spread over the range by the process id and a counter, so that test binaries run at once rarely collide.
    let span = u32::from(below - LOWEST_PORT);
    let start = std::process::id().wrapping_mul(7919) % span;
    (0..span)
        .map(|step| LOWEST_PORT + u16::try_from((start + step * 13) % span).expect("within the span"))
        .find(|port| !handed_out.contains(port) && TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .inspect(|port| {
            handed_out.insert(*port);
        })
        .expect("a free port below the outgoing connections' range")
}

/// The lowest port free_port hands out.
const LOWEST_PORT: u16 = 20_000;

/// The first local port the kernel gives outgoing connections (`net.ipv4.ip_local_port_range`), 32768 where it
/// cannot be read.
fn outgoing_ports_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .filter(|start| *start > LOWEST_PORT + 1_000)
        .unwrap_or(32_768)
}

/// Runs `scripts/<script> <action>` with `env`, panicking with its output if it fails.
fn run_script(script: &str, action: &str, env: &[(&str, String)]) {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .arg(action)
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .unwrap_or_else(|err| panic!("running scripts/{script}: {err}"));
    assert!(
        output.status.success(),
        "scripts/{script} {action} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The environment variable naming the directory that private components' directories go under.
pub const PRIVATE_DIR_VARIABLE: &str = "TEST_PRIVATE_DIR";

/// A new directory for one private component (its pid files, logs and data), removed on drop: under
/// [`PRIVATE_DIR_VARIABLE`] when that is set, else in the system's temporary directory.
pub fn component_dir(prefix: &str) -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    match std::env::var_os(PRIVATE_DIR_VARIABLE) {
        Some(parent) => {
            std::fs::create_dir_all(&parent).expect("the private components' directory can be created");
            builder.tempdir_in(parent)
        }
        None => builder.tempdir(),
    }
    .expect("a temporary directory")
}

/// A Kafka-protocol broker of the test's own, started by `scripts/broker.sh`, stopped on drop.
pub struct PrivateBroker {
    dir: tempfile::TempDir,
    port: u16,
    /// The port its metadata names: clients connect there after bootstrapping.
    advertised_port: u16,
    partitions: u32,
    /// Whether clients must log in (SASL SCRAM).
    authentication: bool,
    /// Before the broker when the test reaches it through the advertised port itself ([`PrivateBroker::start`]):
    /// shut while the broker is stopped and until a restarted one has its topics again.
    gate: Option<Gate>,
}

impl PrivateBroker {
    /// Starts a broker with the alerts topic (`partitions` partitions), behind a [`Gate`], and returns once it is
    /// ready. Must be called within a Tokio runtime.
    pub fn start(partitions: u32) -> PrivateBroker {
        let port = free_port();
        let gate = Gate::open_to(port);
        let mut broker = Self::start_advertising(partitions, port, gate.port());
        broker.gate = Some(gate);
        broker
    }

    /// Starts a broker listening on `port` that tells clients to use `advertised_port` (a [`TlsFront`] before it).
    pub fn start_advertising(partitions: u32, port: u16, advertised_port: u16) -> PrivateBroker {
        let dir = component_dir("broker-");
        let broker = PrivateBroker { dir, port, advertised_port, partitions, authentication: false, gate: None };
        broker.run("start");
        broker
    }

    /// Starts a broker that requires a SASL SCRAM login and knows no user (nor topic): a client's handshake with
    /// it is attempted and refused.
    pub fn start_requiring_login() -> PrivateBroker {
        let (dir, port) = (component_dir("broker-"), free_port());
        let broker =
            PrivateBroker { dir, port, advertised_port: port, partitions: 1, authentication: true, gate: None };
        broker.run("start");
        broker
    }

    /// `host:port` for clients.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.gate.as_ref().map_or(self.port, Gate::port))
    }

    /// Stops the broker; its topics and records are gone (memory storage).
    pub fn stop(&self) {
        if let Some(gate) = &self.gate {
            gate.shut();
        }
        self.run("stop");
    }

    /// Starts it again on the same port, with the topics re-created empty; clients reach it only once they exist.
    pub fn restart(&self) {
        self.run("start");
        if let Some(gate) = &self.gate {
            gate.open();
        }
    }

    /// Freezes the broker with SIGSTOP: connections stay open but nothing is acknowledged (a stalled broker).
    pub fn pause(&self) {
        signal_component(self.dir.path(), "broker", nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a paused broker run on with SIGCONT.
    pub fn resume(&self) {
        signal_component(self.dir.path(), "broker", nix::sys::signal::Signal::SIGCONT);
    }

    fn run(&self, action: &str) {
        let env = [
            ("STACK_DIR", self.dir.path().display().to_string()),
            ("BROKER_PORT", self.port.to_string()),
            ("BROKER_ADVERTISED_PORT", self.advertised_port.to_string()),
            ("TOPIC_PARTITIONS", self.partitions.to_string()),
            ("BROKER_AUTHENTICATION", if self.authentication { "1" } else { "0" }.to_owned()),
        ];
        tokio::task::block_in_place(|| run_script("broker.sh", action, &env));
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.run("stop");
    }
}

/// How a [`PrivateDeephaven`] authenticates its clients.
#[derive(Debug, Clone, Default)]
pub enum DeephavenAuth {
    /// Anyone may log in.
    #[default]
    Anonymous,
    /// Deephaven's pre-shared-key handler with this key.
    Psk(String),
    /// HTTP basic authentication accepting exactly this user name and password (the project's handler in
    /// `scripts/deephaven-auth/`).
    Basic { user: String, password: String },
}

impl DeephavenAuth {
    pub fn psk(key: &str) -> DeephavenAuth {
        DeephavenAuth::Psk(key.to_owned())
    }

    pub fn basic(user: &str, password: &str) -> DeephavenAuth {
        DeephavenAuth::Basic { user: user.to_owned(), password: password.to_owned() }
    }
}

/// Settings of a [`PrivateDeephaven`]; the defaults are anonymous auth and the server's 300 s sessions.
#[derive(Debug, Clone, Default)]
pub struct DeephavenOptions {
    pub auth: DeephavenAuth,
    /// `http.session.durationMs`; the server's default of 300 s if `None`.
    pub session_duration_ms: Option<u64>,
    /// The table prefix of the publisher whose tables the dashboard shows (`ALERTHAVEN_TABLE_PREFIX`); none if
    /// `None`.
    pub dashboard_table_prefix: Option<String>,
}

/// A Deephaven server of the test's own (for tests that restart it or need another authentication), started by
/// `scripts/deephaven.sh` on a free port with its state in a temporary directory; stopped on drop.
pub struct PrivateDeephaven {
    dir: tempfile::TempDir,
    port: u16,
    options: DeephavenOptions,
}

impl PrivateDeephaven {
    /// Starts a server with PSK auth if `psk` is given, and the given session duration (the server's default of
    /// 300 s if `None`); returns once its IDE answers. Shorthand for [`PrivateDeephaven::start_with`].
    pub fn start(psk: Option<&str>, session_duration_ms: Option<u64>) -> PrivateDeephaven {
        let auth = psk.map_or(DeephavenAuth::Anonymous, DeephavenAuth::psk);
        PrivateDeephaven::start_with(DeephavenOptions { auth, session_duration_ms, ..DeephavenOptions::default() })
    }

    /// Starts a server with `options`; returns once its IDE answers.
    pub fn start_with(options: DeephavenOptions) -> PrivateDeephaven {
        let server = PrivateDeephaven { dir: component_dir("deephaven-private-"), port: free_port(), options };
        server.run("start");
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (until [`PrivateDeephaven::restart`]).
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Freezes the server with SIGSTOP: connections stay open but nothing answers (a stalled Deephaven).
    pub fn pause(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a paused server run on with SIGCONT.
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        // The launcher the pid file names embeds the JVM.
        signal_component(self.dir.path(), "deephaven", signal);
    }

    /// Stops the server if it runs and starts it again: every session and table is gone.
    pub fn restart(&self) {
        self.run("stop");
        self.run("start");
    }

    fn run(&self, action: &str) {
        let (psk, basic_user, basic_password) = match &self.options.auth {
            DeephavenAuth::Anonymous => Default::default(),
            DeephavenAuth::Psk(key) => (key.clone(), String::new(), String::new()),
            DeephavenAuth::Basic { user, password } => (String::new(), user.clone(), password.clone()),
        };
        let env = [
            ("STACK_DIR", self.dir.path().display().to_string()),
            ("DEEPHAVEN_PORT", self.port.to_string()),
            ("DEEPHAVEN_HEAP", "1g".to_owned()),
            // A host whose own zone is not UTC, and no zone asked for: the scripts' default must win.
            ("TZ", "America/New_York".to_owned()),
            ("DEEPHAVEN_TIMEZONE", String::new()),
            // The scripts read an empty value as unset; it also hides the shared test stack's own settings.
            (
                "DEEPHAVEN_SESSION_DURATION_MS",
                self.options.session_duration_ms.map(|ms| ms.to_string()).unwrap_or_default(),
            ),
            ("DEEPHAVEN_PSK", psk),
            // Through the environment: credentials stay out of every command line.
            ("DEEPHAVEN_BASIC_USER", basic_user),
            ("DEEPHAVEN_BASIC_PASSWORD", basic_password),
            ("ALERTHAVEN_TABLE_PREFIX", self.options.dashboard_table_prefix.clone().unwrap_or_default()),
        ];
        tokio::task::block_in_place(|| run_script("deephaven.sh", action, &env));
    }
}

impl Drop for PrivateDeephaven {
    fn drop(&mut self) {
        self.run("stop");
    }
}

/// Sends `signal` to the component `name` a project script started with `STACK_DIR` = `dir` (scripts/lib.sh's pid
/// file holds "PID STARTTIME").
fn signal_component(dir: &Path, name: &str, signal: nix::sys::signal::Signal) {
    let pid_file = dir.join(format!("pids/{name}.pid"));
    let content = std::fs::read_to_string(&pid_file).unwrap_or_else(|err| panic!("{}: {err}", pid_file.display()));
    let pid: i32 = content.split_whitespace().next().and_then(|pid| pid.parse().ok()).expect("a PID");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
        .unwrap_or_else(|err| panic!("signalling {name}: {err}"));
}

/// Prometheus (the project's rules) alerting to an Alertmanager of the test's own, whose webhooks go to a given
/// ingest; both started by the project's scripts in a directory of their own, stopped on drop. For tests that
/// freeze Prometheus: the shared stack's alerts must not change under the tests that read them.
pub struct PrivateMonitoring {
    dir: tempfile::TempDir,
    prometheus_port: u16,
    alertmanager_port: u16,
    ingest_url: String,
}

impl PrivateMonitoring {
    /// Starts Alertmanager sending to `ingest_url`, then Prometheus alerting to it; returns once both are ready.
    pub fn start(ingest_url: &str) -> PrivateMonitoring {
        let monitoring = PrivateMonitoring {
            dir: component_dir("monitoring-"),
            prometheus_port: free_port(),
            alertmanager_port: free_port(),
            ingest_url: ingest_url.to_owned(),
        };
        monitoring.run("alertmanager.sh", "start");
        monitoring.run("prometheus.sh", "start");
        monitoring
    }

    pub fn alertmanager_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.alertmanager_port)
    }

    /// Freezes Prometheus with SIGSTOP: it evaluates and sends nothing, as if cut off from Alertmanager.
    pub fn freeze_prometheus(&self) {
        signal_component(self.dir.path(), "prometheus", nix::sys::signal::Signal::SIGSTOP);
    }

    /// Lets a frozen Prometheus run on with SIGCONT, with the alerts it held.
    pub fn thaw_prometheus(&self) {
        signal_component(self.dir.path(), "prometheus", nix::sys::signal::Signal::SIGCONT);
    }

    fn run(&self, script: &str, action: &str) {
        let env = [
            ("STACK_DIR", self.dir.path().display().to_string()),
            ("PROMETHEUS_PORT", self.prometheus_port.to_string()),
            ("ALERTMANAGER_PORT", self.alertmanager_port.to_string()),
            ("INGEST_URL", self.ingest_url.clone()),
        ];
        tokio::task::block_in_place(|| run_script(script, action, &env));
    }
}

impl Drop for PrivateMonitoring {
    fn drop(&mut self) {
        // A frozen process would not stop before the script's deadline.
        self.thaw_prometheus();
        self.run("prometheus.sh", "stop");
        self.run("alertmanager.sh", "stop");
    }
}

/// HAProxy in front of local ingest instances, started by `scripts/balancer.sh`; stopped on drop.
pub struct PrivateBalancer {
    dir: tempfile::TempDir,
    port: u16,
    backends: Vec<u16>,
}

impl PrivateBalancer {
    /// Balances `port` over the ingest instances on `backends` (127.0.0.1); returns once one of them is up.
    pub fn start(port: u16, backends: &[u16]) -> PrivateBalancer {
        let balancer = PrivateBalancer { dir: component_dir("balancer-"), port, backends: backends.to_vec() };
        balancer.run("start");
        balancer
    }

    /// Where to send webhooks.
    pub fn alerts_url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }

    fn run(&self, action: &str) {
        let backends: Vec<String> = self.backends.iter().map(|port| format!("127.0.0.1:{port}")).collect();
        let env = [
            ("STACK_DIR", self.dir.path().display().to_string()),
            ("BALANCER_PORT", self.port.to_string()),
            ("BALANCER_HEALTH_PORT", free_port().to_string()),
            ("BALANCER_BACKENDS", backends.join(",")),
        ];
        tokio::task::block_in_place(|| run_script("balancer.sh", action, &env));
    }
}

impl Drop for PrivateBalancer {
    fn drop(&mut self) {
        self.run("stop");
    }
}

/// HAProxy terminating TLS before a plaintext server, started by `scripts/tls-front.sh`; stopped on drop.
pub struct TlsFront {
    dir: tempfile::TempDir,
    port: u16,
    backend: u16,
    certificate: PathBuf,
    alpn: Option<&'static str>,
    /// The CA a client's certificate must be signed by, when clients must present one (mutual TLS).
    client_ca: Option<PathBuf>,
}

impl TlsFront {
    /// Takes TLS on `port` with `certificate` (chain and key in one PEM file) and passes the bytes on to
    /// 127.0.0.1:`backend`; `alpn` (e.g. `h2` for gRPC) is offered in the handshake. Returns once it listens.
    pub fn start(port: u16, backend: u16, certificate: &Path, alpn: Option<&'static str>) -> TlsFront {
        Self::launch(TlsFront {
            dir: component_dir("tls-front-"),
            port,
            backend,
            certificate: certificate.to_owned(),
            alpn,
            client_ca: None,
        })
    }

    /// As [`TlsFront::start`], refusing every client that does not present a certificate `client_ca` signed.
    pub fn start_verifying_clients(port: u16, backend: u16, certificate: &Path, client_ca: &Path) -> TlsFront {
        Self::launch(TlsFront {
            dir: component_dir("tls-front-"),
            port,
            backend,
            certificate: certificate.to_owned(),
            alpn: None,
            client_ca: Some(client_ca.to_owned()),
        })
    }

    fn launch(front: TlsFront) -> TlsFront {
        front.run("start");
        front
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn run(&self, action: &str) {
        let env = [
            ("STACK_DIR", self.dir.path().display().to_string()),
            ("TLS_FRONT_PORT", self.port.to_string()),
            ("TLS_FRONT_BACKEND", format!("127.0.0.1:{}", self.backend)),
            ("TLS_FRONT_CERT", self.certificate.display().to_string()),
            ("TLS_FRONT_ALPN", self.alpn.unwrap_or_default().to_owned()),
            ("TLS_FRONT_CLIENT_CA", self.client_ca.as_ref().map(|ca| ca.display().to_string()).unwrap_or_default()),
        ];
        tokio::task::block_in_place(|| run_script("tls-front.sh", action, &env));
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.run("stop");
    }
}

/// A private broker reachable only over TLS, through a [`TlsFront`] with the server certificate of a
/// [`crate::tls::TestPki`]: it advertises the front's port, so clients stay on TLS after bootstrapping.
pub struct TlsBroker {
    front: TlsFront,
    broker: PrivateBroker,
}

impl TlsBroker {
    /// A one-partition broker behind a front any client may connect to.
    pub fn start(pki: &TestPki) -> TlsBroker {
        Self::start_behind(|tls_port, port| TlsFront::start(tls_port, port, &pki.server_file(), None))
    }

    /// As [`TlsBroker::start`], but its front lets in only clients with a certificate `client_ca` signed.
    pub fn start_verifying_clients(pki: &TestPki, client_ca: &Path) -> TlsBroker {
        Self::start_behind(|tls_port, port| {
            TlsFront::start_verifying_clients(tls_port, port, &pki.server_file(), client_ca)
        })
    }

    fn start_behind(front: impl FnOnce(u16, u16) -> TlsFront) -> TlsBroker {
        let (port, tls_port) = (free_port(), free_port());
        let broker = PrivateBroker::start_advertising(1, port, tls_port);
        TlsBroker { front: front(tls_port, port), broker }
    }

    /// `host:port` for clients: the front's.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.front.port())
    }

    /// Freezes the broker behind the front ([`PrivateBroker::pause`]).
    pub fn pause(&self) {
        self.broker.pause();
    }

    pub fn resume(&self) {
        self.broker.resume();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_bindable_and_below_the_outgoing_connections_range() {
        let ports: BTreeSet<u16> = (0..50).map(|_| free_port()).collect();
        assert_eq!(ports.len(), 50, "never the same port twice");
        for port in ports {
            assert!((LOWEST_PORT..outgoing_ports_start()).contains(&port), "{port}");
            TcpListener::bind(("127.0.0.1", port)).expect("still free");
        }
    }
}

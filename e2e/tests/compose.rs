//! Checks of the compose stack that need no Docker: `compose/docker-compose.yml` is parsed and held to the rules
//! below, and the Prometheus and Alertmanager configs are rendered exactly as its `config` service renders them
//! (the same script, the same environment) and checked with `promtool` and `amtool`.
//!
//! `promtool` and `amtool` come from Debian's `prometheus` and `prometheus-alertmanager` packages
//! (`scripts/install-monitoring.sh`); without them the tests fail rather than skip.

use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use test_kit::stack::repo_root;

const COMPOSE_FILE: &str = "compose/docker-compose.yml";
/// The service that renders the monitoring configs.
const CONFIG_SERVICE: &str = "config";
/// The replicated webhook receiver and the only service that may send webhooks to it.
const INGEST: &str = "ingest";
const LOAD_BALANCER: &str = "ingest-lb";
const DEPENDENCY_CONDITIONS: [&str; 3] = ["service_started", "service_healthy", "service_completed_successfully"];

// --- the compose file -------------------------------------------------------------------------------------------

struct Compose {
    dir: PathBuf,
    root: Mapping,
    services: BTreeMap<String, Mapping>,
}

impl Compose {
    fn load() -> Compose {
        let path = repo_root().join(COMPOSE_FILE);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
        let mut value: Value =
            serde_yaml_ng::from_str(&text).unwrap_or_else(|err| panic!("{} is not YAML: {err}", path.display()));
        value.apply_merge().expect("the `<<` merge keys resolve");
        let root = value.as_mapping().expect("the compose file is a mapping").clone();
        let services = root
            .get("services")
            .and_then(Value::as_mapping)
            .expect("the compose file has services")
            .iter()
            .map(|(name, service)| {
                let name = name.as_str().expect("service names are strings").to_owned();
                let service = service.as_mapping().unwrap_or_else(|| panic!("service {name} is not a mapping")).clone();
                (name, service)
            })
            .collect();
        Compose { dir: path.parent().unwrap().to_owned(), root, services }
    }

    fn service(&self, name: &str) -> &Mapping {
        self.services.get(name).unwrap_or_else(|| panic!("{COMPOSE_FILE} has no service {name}"))
    }

    fn declared_volumes(&self) -> Vec<String> {
        self.root
            .get("volumes")
            .and_then(Value::as_mapping)
            .map(|volumes| volumes.keys().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// A host path of a bind mount or build context, relative to the compose file's folder.
    fn host_path(&self, source: &str) -> PathBuf {
        self.dir.join(source)
    }

    /// One-shot jobs: they run to completion (`restart: "no"`) and others wait for that.
    fn is_one_shot(&self, name: &str) -> bool {
        self.service(name).get("restart").and_then(Value::as_str) == Some("no")
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        other => panic!("expected a scalar, got {other:?}"),
    }
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        None => Vec::new(),
        Some(Value::Sequence(items)) => items.iter().map(text).collect(),
        Some(other) => vec![text(other)],
    }
}

/// A service's environment, from either the mapping or the `KEY=value` list form.
fn environment(service: &Mapping) -> BTreeMap<String, String> {
    match service.get("environment") {
        None => BTreeMap::new(),
        Some(Value::Mapping(variables)) => variables
            .iter()
            .map(|(name, value)| (text(name), if value.is_null() { String::new() } else { text(value) }))
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = text(item);
                let (name, value) = item.split_once('=').unwrap_or((&item, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        Some(other) => panic!("environment must be a mapping or a list, got {other:?}"),
    }
}

/// `depends_on` as (service, condition), from either the list or the mapping form.
fn dependencies(service: &Mapping) -> Vec<(String, String)> {
    match service.get("depends_on") {
        None => Vec::new(),
        Some(Value::Sequence(names)) => names.iter().map(|name| (text(name), "service_started".to_owned())).collect(),
        Some(Value::Mapping(entries)) => entries
            .iter()
            .map(|(name, entry)| {
                let condition = entry.get("condition").map(text).unwrap_or_else(|| "service_started".to_owned());
                (text(name), condition)
            })
            .collect(),
        Some(other) => panic!("depends_on must be a list or a mapping, got {other:?}"),
    }
}

#[derive(Debug)]
struct Mount {
    /// A host path (bind mount) or a volume name.
    source: String,
    target: String,
    bind: bool,
}

fn mounts(service: &Mapping) -> Vec<Mount> {
    let Some(volumes) = service.get("volumes") else { return Vec::new() };
    let volumes = volumes.as_sequence().expect("volumes is a list");
    volumes
        .iter()
        .map(|volume| match volume {
            Value::String(short) => {
                let mut parts = short.split(':');
                let source = parts.next().unwrap_or_default().to_owned();
                let target = parts.next().unwrap_or_else(|| panic!("volume {short:?} has no target")).to_owned();
                let bind = source.starts_with('.') || source.starts_with('/') || source.starts_with('~');
                Mount { source, target, bind }
            }
            Value::Mapping(long) => Mount {
                source: long.get("source").map(text).unwrap_or_default(),
                target: long.get("target").map(text).expect("a volume has a target"),
                bind: long.get("type").map(text).as_deref() == Some("bind"),
            },
            other => panic!("unexpected volume entry {other:?}"),
        })
        .collect()
}

// --- image pins ---------------------------------------------------------------------------------------------------

/// Accepts `name:TAG` where TAG is an exact version (`v3.5.0`, `42.7`, `1.95.0-bookworm`: at least two numeric
/// components), or a digest. Refuses a missing tag, `latest`, and single-number tags such as `3`.
fn pinned(image: &str) -> Result<(), String> {
    if image.contains("@sha256:") {
        return Ok(());
    }
    let name_start = image.rfind('/').map_or(0, |slash| slash + 1);
    let Some(colon) = image[name_start..].rfind(':') else {
        return Err(format!("{image}: no tag (means latest)"));
    };
    let tag = &image[name_start + colon + 1..];
    if tag == "latest" {
        return Err(format!("{image}: `latest` is not a version"));
    }
    let version = tag.strip_prefix('v').unwrap_or(tag);
    let version = version.split('-').next().unwrap_or_default();
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() < 2 || parts.iter().any(|part| part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("{image}: tag {tag:?} is not an exact version"));
    }
    Ok(())
}

#[test]
fn the_pin_check_refuses_floating_tags() {
    for floating in
        ["haproxy", "haproxy:latest", "haproxy:3", "prom/prometheus:v3", "localhost:5000/alerthaven", "rust:bookworm"]
    {
        assert!(pinned(floating).is_err(), "{floating} passed as pinned");
    }
    for exact in ["haproxy:3.0.8", "apache/kafka:4.0.0", "ghcr.io/deephaven/server:42.7", "prom/alertmanager:v0.28.1"] {
        assert_eq!(pinned(exact), Ok(()));
    }
    assert_eq!(pinned("localhost:5000/x:1.2.3-alpine"), Ok(()));
    assert_eq!(pinned("x@sha256:0123"), Ok(()));
}

#[test]
fn every_pulled_image_is_pinned_and_every_built_one_has_its_dockerfile() {
    let compose = Compose::load();
    let mut failures = Vec::new();
    for (name, service) in &compose.services {
        let image = service.get("image").map(text);
        match service.get("build") {
            Some(build) => {
                let (context, dockerfile) = match build {
                    Value::String(context) => (context.clone(), "Dockerfile".to_owned()),
                    Value::Mapping(build) => (
                        build.get("context").map(text).unwrap_or_else(|| ".".to_owned()),
                        build.get("dockerfile").map(text).unwrap_or_else(|| "Dockerfile".to_owned()),
                    ),
                    other => panic!("service {name}: unexpected build {other:?}"),
                };
                let dockerfile = compose.host_path(&context).join(dockerfile);
                if !dockerfile.is_file() {
                    failures.push(format!("service {name}: {} does not exist", dockerfile.display()));
                    continue;
                }
                for from in dockerfile_base_images(&dockerfile) {
                    if let Err(why) = pinned(&from) {
                        failures.push(format!("{} (FROM): {why}", dockerfile.display()));
                    }
                }
            }
            None => match image {
                Some(image) => {
                    if let Err(why) = pinned(&image) {
                        failures.push(format!("service {name}: {why}"));
                    }
                }
                None => failures.push(format!("service {name} has neither image nor build")),
            },
        }
    }
    assert!(failures.is_empty(), "unpinned images:\n{}", failures.join("\n"));
}

/// The Debian release an image tag names (`rust:1.95.0-trixie`, `debian:13.2-slim`), if it names one.
fn debian_release(image: &str) -> Option<u32> {
    let tag = image.split(':').nth(1)?;
    let codenames = [("bookworm", 12), ("trixie", 13), ("forky", 14)];
    if let Some((_, release)) = codenames.iter().find(|(codename, _)| tag.contains(codename)) {
        return Some(*release);
    }
    image.starts_with("debian:").then(|| tag.split(['.', '-']).next()?.parse().ok()).flatten()
}

#[test]
fn the_image_runs_on_the_debian_release_it_was_built_on() {
    // The binaries link the builder's glibc dynamically: an older runtime cannot load them.
    let images = dockerfile_base_images(&repo_root().join("Dockerfile"));
    let releases: Vec<Option<u32>> = images.iter().map(|image| debian_release(image)).collect();
    assert!(releases.iter().all(Option::is_some), "every stage on a named Debian release: {images:?}");
    assert!(releases.windows(2).all(|pair| pair[0] == pair[1]), "one Debian release for all stages: {images:?}");
    assert_eq!(debian_release("rust:1.95.0-bookworm"), Some(12));
    assert_eq!(debian_release("debian:13.2-slim"), Some(13));
}

/// The images a Dockerfile builds on, leaving out its own stages.
fn dockerfile_base_images(dockerfile: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dockerfile).unwrap();
    let mut stages = Vec::new();
    let mut images = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if !words.first().is_some_and(|word| word.eq_ignore_ascii_case("FROM")) {
            continue;
        }
        let image = words.iter().skip(1).find(|word| !word.starts_with("--")).expect("FROM names an image");
        if !stages.contains(&image.to_string()) {
            images.push(image.to_string());
        }
        if let Some(position) = words.iter().position(|word| word.eq_ignore_ascii_case("AS")) {
            stages.push(words[position + 1].to_owned());
        }
    }
    assert!(!images.is_empty(), "{} has no FROM", dockerfile.display());
    images
}

// --- mounts, dependencies, health checks --------------------------------------------------------------------------

#[test]
fn every_bind_mount_names_a_path_in_the_repo_and_every_volume_is_declared() {
    let compose = Compose::load();
    let declared = compose.declared_volumes();
    let mut failures = Vec::new();
    for (name, service) in &compose.services {
        for mount in mounts(service) {
            if mount.bind {
                let host = compose.host_path(&mount.source);
                if !host.exists() {
                    failures.push(format!("service {name}: bind mount {} does not exist", host.display()));
                } else if !host.canonicalize().unwrap().starts_with(repo_root().canonicalize().unwrap()) {
                    failures.push(format!("service {name}: bind mount {} is outside the repo", host.display()));
                }
            } else if !declared.contains(&mount.source) {
                failures.push(format!("service {name}: volume {:?} is not declared under volumes", mount.source));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_dependency_names_a_service_that_can_meet_its_condition() {
    let compose = Compose::load();
    let mut failures = Vec::new();
    for (name, service) in &compose.services {
        for (dependency, condition) in dependencies(service) {
            let Some(target) = compose.services.get(&dependency) else {
                failures.push(format!("{name} depends on {dependency}, which is not a service"));
                continue;
            };
            if !DEPENDENCY_CONDITIONS.contains(&condition.as_str()) {
                failures.push(format!("{name} -> {dependency}: unknown condition {condition:?}"));
            }
            if condition == "service_healthy" && target.get("healthcheck").is_none() {
                failures.push(format!("{name} waits for {dependency} to be healthy, which has no healthcheck"));
            }
            if condition == "service_completed_successfully" && !compose.is_one_shot(&dependency) {
                failures.push(format!("{name} waits for {dependency} to complete, which is not a one-shot job"));
            }
            if condition == "service_started" {
                failures.push(format!("{name} -> {dependency}: wait for a condition (healthy or completed)"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_service_but_one_shot_jobs_has_a_healthcheck() {
    let compose = Compose::load();
    let awaited_to_complete: Vec<String> = compose
        .services
        .values()
        .flat_map(dependencies)
        .filter(|(_, condition)| condition == "service_completed_successfully")
        .map(|(dependency, _)| dependency)
        .collect();
    let mut failures = Vec::new();
    for (name, service) in &compose.services {
        if compose.is_one_shot(name) {
            if !awaited_to_complete.contains(name) {
                failures.push(format!("one-shot job {name}: nothing waits for it to complete"));
            }
            continue;
        }
        let Some(healthcheck) = service.get("healthcheck") else {
            failures.push(format!("service {name} has no healthcheck"));
            continue;
        };
        let test = strings(healthcheck.get("test"));
        if healthcheck.get("disable").and_then(Value::as_bool) == Some(true)
            || test.is_empty()
            || test.first().map(String::as_str) == Some("NONE")
        {
            failures.push(format!("service {name}: its healthcheck does not test anything"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// --- ingest behind the load balancer ----------------------------------------------------------------------------

#[test]
fn ingest_is_replicated_and_reached_only_through_the_load_balancer() {
    let compose = Compose::load();
    let ingest = compose.service(INGEST);
    let replicas = ingest.get("deploy").and_then(|deploy| deploy.get("replicas")).and_then(Value::as_u64);
    assert!(replicas.is_some_and(|replicas| replicas > 1), "ingest must run more than one replica, has {replicas:?}");
    for key in ["ports", "container_name", "network_mode"] {
        assert!(ingest.get(key).is_none(), "ingest must not set {key}: it is reached only through {LOAD_BALANCER}");
    }

    // The load balancer sends to the ingest service, health-checked on /readyz.
    let balancer = compose.service(LOAD_BALANCER);
    assert!(balancer.get("ports").is_some(), "{LOAD_BALANCER} publishes the webhook port");
    let config = mounts(balancer)
        .into_iter()
        .find(|mount| mount.bind && mount.target.ends_with("haproxy.cfg"))
        .expect("the load balancer's haproxy.cfg is bind-mounted");
    let config = std::fs::read_to_string(compose.host_path(&config.source)).unwrap();
    let servers: Vec<&str> = config
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("server ") || line.starts_with("server-template "))
        .collect();
    assert!(!servers.is_empty(), "haproxy.cfg names no servers");
    for server in &servers {
        assert!(
            server.contains(&format!("{INGEST}:8080")),
            "haproxy.cfg sends to something else than ingest: {server}"
        );
    }
    assert!(config.contains("http-check send meth GET uri /readyz"), "haproxy.cfg must health-check ingest's /readyz");
    assert!(
        config.lines().any(|line| line.trim_start().starts_with("default-server") && line.contains(" check")),
        "haproxy.cfg must enable health checks on its servers"
    );

    // Alertmanager posts to the load balancer.
    let rendered = render_for_compose(&compose);
    let alertmanager: Value = serde_yaml_ng::from_str(&rendered.read("alertmanager.yml")).unwrap();
    let urls: Vec<String> = alertmanager["receivers"]
        .as_sequence()
        .expect("alertmanager.yml has receivers")
        .iter()
        .flat_map(webhook_urls)
        .collect();
    assert!(!urls.is_empty(), "alertmanager.yml has no webhook");
    for url in &urls {
        assert_eq!(url_host(url), LOAD_BALANCER, "Alertmanager's webhook {url} bypasses the load balancer");
    }

    // No other service is pointed at an ingest instance by URL.
    for (name, service) in &compose.services {
        for (variable, value) in environment(service) {
            if value.contains("://") {
                assert_ne!(url_host(&value), INGEST, "{name}: {variable}={value} bypasses the load balancer");
            }
        }
    }
}

#[test]
fn alertmanager_never_sends_more_alerts_per_body_than_ingest_takes() {
    // One template serves both stacks (scripts/render-config.sh), so this holds for the local stack too.
    let compose = Compose::load();
    let rendered = render_for_compose(&compose);
    let alertmanager: Value = serde_yaml_ng::from_str(&rendered.read("alertmanager.yml")).unwrap();
    // The limit the compose stack's ingest runs with: its own setting, or the default.
    let limit = environment(compose.service("ingest"))
        .get("INGEST_LIMITS__MAX_ALERTS_PER_BODY")
        .map(|value| value.parse::<usize>().expect("INGEST_LIMITS__MAX_ALERTS_PER_BODY is a number"))
        .unwrap_or(schemas::Limits::default().max_alerts_per_body);
    let receivers = alertmanager["receivers"].as_sequence().expect("alertmanager.yml has receivers");
    let webhooks: Vec<&Value> = receivers
        .iter()
        .filter_map(|receiver| receiver.get("webhook_configs").and_then(Value::as_sequence))
        .flatten()
        .collect();
    assert!(!webhooks.is_empty(), "alertmanager.yml has no webhook");
    for webhook in webhooks {
        // 0 means no limit: a group larger than ingest's limit would get 413 at every flush, and never arrive.
        let max_alerts = webhook.get("max_alerts").and_then(Value::as_u64).unwrap_or(0);
        assert!(
            (1..=limit as u64).contains(&max_alerts),
            "max_alerts {max_alerts} must be between 1 and ingest's limits.max_alerts_per_body ({limit})"
        );
    }
}

fn webhook_urls(receiver: &Value) -> Vec<String> {
    receiver
        .get("webhook_configs")
        .and_then(Value::as_sequence)
        .map(|configs| configs.iter().filter_map(|config| config.get("url")).map(text).collect())
        .unwrap_or_default()
}

fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    authority.split(':').next().unwrap_or_default()
}

#[test]
fn prometheus_scrapes_every_ingest_replica_and_the_publisher() {
    let compose = Compose::load();
    let rendered = render_for_compose(&compose);
    let prometheus: Value = serde_yaml_ng::from_str(&rendered.read("prometheus.yml")).unwrap();
    let jobs = prometheus["scrape_configs"].as_sequence().expect("prometheus.yml has scrape_configs");
    let job = |name: &str| {
        jobs.iter().find(|job| job["job_name"].as_str() == Some(name)).unwrap_or_else(|| panic!("no scrape job {name}"))
    };

    // Each replica on its own: DNS discovery of the service name, no static target (which would hit one replica).
    let ingest = job(INGEST);
    let discovered = ingest["dns_sd_configs"].as_sequence().expect("the ingest job uses dns_sd_configs");
    assert_eq!(discovered.len(), 1, "{ingest:?}");
    assert_eq!(strings(discovered[0].get("names")), [INGEST]);
    assert_eq!(discovered[0]["type"].as_str(), Some("A"));
    assert_eq!(discovered[0]["port"].as_u64(), Some(8080));
    assert!(ingest["static_configs"].as_sequence().is_none_or(Vec::is_empty), "{ingest:?}");

    let publisher = job("publisher");
    let mentions_publisher = serde_yaml_ng::to_string(publisher).unwrap().contains("publisher");
    let has_targets = !publisher["dns_sd_configs"].as_sequence().is_none_or(Vec::is_empty)
        || !publisher["static_configs"].as_sequence().is_none_or(Vec::is_empty);
    assert!(has_targets && mentions_publisher, "the publisher job scrapes nothing: {publisher:?}");
}

// --- the rendered configs, checked by Prometheus' and Alertmanager's own tools ---------------------------------------

#[test]
fn the_rendered_configs_pass_promtool_and_amtool() {
    let compose = Compose::load();
    let rendered = render_for_compose(&compose);
    let prometheus = rendered.path("prometheus.yml");
    // Also loads rules.yml, which prometheus.yml names relative to itself.
    run_checker("promtool", &["check", "config"], &prometheus);
    run_checker("promtool", &["check", "rules"], &rendered.path("rules.yml"));
    run_checker("amtool", &["check-config"], &rendered.path("alertmanager.yml"));
}

/// The files the `config` service writes, rendered here into a temporary directory.
struct Rendered {
    dir: tempfile::TempDir,
}

impl Rendered {
    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path(file)).unwrap_or_else(|err| panic!("{file} was not rendered: {err}"))
    }
}

/// Runs every `render-config.sh TEMPLATE DESTINATION` line of the `config` service's command, with its environment
/// and its bind mounts mapped back to the repo, and checks that Prometheus and Alertmanager read what it writes.
fn render_for_compose(compose: &Compose) -> Rendered {
    let config = compose.service(CONFIG_SERVICE);
    let config_mounts = mounts(config);
    let to_host = |container_path: &str| -> PathBuf {
        let mount = config_mounts
            .iter()
            .filter(|mount| mount.bind && Path::new(container_path).starts_with(&mount.target))
            .max_by_key(|mount| mount.target.len())
            .unwrap_or_else(|| panic!("{container_path} is not bind-mounted into the config service"));
        let host = compose.host_path(&mount.source);
        match Path::new(container_path).strip_prefix(&mount.target).unwrap() {
            rest if rest.as_os_str().is_empty() => host,
            rest => host.join(rest),
        }
    };
    let command = strings(config.get("command")).join("\n");
    let dir = tempfile::tempdir().unwrap();
    let mut written = Vec::new();
    for line in command.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(position) = words.iter().position(|word| word.ends_with("render-config.sh")) else { continue };
        let [script, template, destination] = words[position..position + 3] else {
            panic!("expected `render-config.sh TEMPLATE DESTINATION`: {line}")
        };
        let file_name = Path::new(destination).file_name().unwrap().to_str().unwrap().to_owned();
        let output = Command::new("bash")
            .arg(to_host(script))
            .arg(to_host(template))
            .arg(dir.path().join(&file_name))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(environment(config))
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "rendering {template} failed: {}", String::from_utf8_lossy(&output.stderr));
        written.push(Path::new(destination).to_owned());
    }
    assert!(!written.is_empty(), "the config service renders nothing");

    // The consumers read the files from the volume the config service writes them to.
    let volume_of = |mounts: &[Mount], path: &Path| -> Option<String> {
        mounts
            .iter()
            .find(|mount| !mount.bind && path.parent() == Some(Path::new(&mount.target)))
            .map(|mount| mount.source.clone())
    };
    for (consumer, file) in [("prometheus", "prometheus.yml"), ("alertmanager", "alertmanager.yml")] {
        let service = compose.service(consumer);
        let flag = strings(service.get("command"))
            .into_iter()
            .find_map(|argument| argument.strip_prefix("--config.file=").map(str::to_owned))
            .unwrap_or_else(|| panic!("{consumer} has no --config.file"));
        let flag = PathBuf::from(flag);
        let destination = written
            .iter()
            .find(|written| written.file_name() == Some(file.as_ref()))
            .unwrap_or_else(|| panic!("the config service does not render {file}"));
        assert_eq!(flag.file_name(), destination.file_name(), "{consumer} reads another file than {file}");
        let read_from = volume_of(&mounts(service), &flag);
        let written_to = volume_of(&config_mounts, destination);
        assert!(
            read_from.is_some() && read_from == written_to,
            "{consumer} reads {} from volume {read_from:?}, the config service writes it to {written_to:?}",
            flag.display()
        );
    }
    Rendered { dir }
}

fn run_checker(tool: &str, arguments: &[&str], file: &Path) {
    let output = Command::new(tool).args(arguments).arg(file).output().unwrap_or_else(|err| {
        panic!(
            "cannot run {tool} ({err}): install it with scripts/install-monitoring.sh (Debian's prometheus packages)"
        )
    });
    assert!(
        output.status.success(),
        "{tool} {} {} failed:\n{}{}",
        arguments.join(" "),
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    let output = Command::new("promtool")
        .args(["test", "rules", "prometheus/rules.test.yml"])
        .current_dir(repo_root())
        .output()
        .expect("running promtool (scripts/install-monitoring.sh installs it)");
    assert!(
        output.status.success(),
        "promtool test rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn every_alert_rule_of_the_pipeline_links_its_runbook_section() {
    let rules: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join("prometheus/rules.yml")).unwrap())
            .expect("rules.yml is YAML");
    let runbook = std::fs::read_to_string(repo_root().join("docs/runbook.md")).unwrap();
    let pipeline = rules["groups"].as_sequence().unwrap().iter().find(|group| group["name"] == "pipeline").unwrap();
    for rule in pipeline["rules"].as_sequence().unwrap() {
        let name = text(&rule["alert"]);
        let url = text(&rule["annotations"]["runbook_url"]);
        let anchor = url.rsplit_once('#').map(|(_, anchor)| anchor).unwrap_or_default();
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook_url {url:?}");
        assert!(runbook.contains(&format!("\n## {name}\n")), "docs/runbook.md has no section for {name}");
    }
}

#[test]
fn the_alerts_topic_is_created_with_the_retention_that_keeps_the_history() {
    let compose = Compose::load();
    let command = strings(compose.service("kafka-init").get("command")).join("\n");
    let alerts =
        command.split("--create").find(|create| create.contains("--topic alerts ")).expect("alerts is created");
    assert!(alerts.contains("--config retention.ms=-1"), "the alerts topic keeps its history: {alerts}");
    assert!(alerts.contains("--config retention.bytes=-1"), "whatever its size: {alerts}");
}

#[test]
fn deephaven_runs_the_dashboard_in_application_mode() {
    let compose = Compose::load();
    let deephaven = compose.service("deephaven");
    let options = environment(deephaven).remove("START_OPTS").unwrap_or_default();
    let app_dir = options
        .split_whitespace()
        .find_map(|option| option.strip_prefix("-Ddeephaven.application.dir="))
        .unwrap_or_else(|| panic!("START_OPTS names no application directory: {options}"));
    let mount = mounts(deephaven)
        .into_iter()
        .find(|mount| mount.target == app_dir)
        .unwrap_or_else(|| panic!("nothing is mounted at the application directory {app_dir}"));
    let host = compose.host_path(&mount.source);
    assert_eq!(host.canonicalize().unwrap(), repo_root().join("dashboard").canonicalize().unwrap());
    assert!(host.join("alerthaven.app").exists(), "{} holds no alerthaven.app", host.display());
}

#[test]
fn deephaven_tells_the_ide_to_show_times_in_utc() {
    let compose = Compose::load();
    let options = environment(compose.service("deephaven")).remove("START_OPTS").unwrap_or_default();
    let option = |name: &str| {
        options.split_whitespace().find_map(|option| option.strip_prefix(&format!("-D{name}="))).map(str::to_owned)
    };
    assert_eq!(option("user.timezone").as_deref(), Some("UTC"), "the engine's zone: {options}");
    assert_eq!(option("timeZone").as_deref(), Some("UTC"), "the IDE's default zone: {options}");
    // The IDE reads only the properties this list names; it replaces the server's own list, so that list stays in.
    let listed = option("client.configuration.list").unwrap_or_default();
    for name in ["timeZone", "deephaven.version", "web.storage.layout.directory", "web.storage.notebook.directory"] {
        assert!(listed.split(',').any(|item| item == name), "client.configuration.list lacks {name}: {listed}");
    }
}

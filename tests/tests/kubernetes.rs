//! Checks of the Kubernetes manifests (`deploy/kubernetes`) that need no cluster: kustomize renders them, every
//! object passes the Kubernetes schemas (`kubernetes-validate --strict`), and what must agree with the rest of the
//! project does: the alert rules are the local stack's, the probes are the services' endpoints, the grace period
//! outlasts the drain.
//!
//! `kubectl` and `kubernetes-validate` come from `scripts/install-kubernetes-tools.sh`; without them the tests
//! fail rather than skip.

use e2e::stack::repo_root;
use serde::Deserialize;
use serde_yaml_ng::Value;
use std::process::Command;

/// The manifests as `kubectl kustomize` renders them, one document per object.
fn rendered() -> String {
    let output = Command::new("kubectl")
        .args(["kustomize", "deploy/kubernetes"])
        .current_dir(repo_root())
        .output()
        .expect("running kubectl (scripts/install-kubernetes-tools.sh installs it)");
    assert!(output.status.success(), "kubectl kustomize: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("YAML is UTF-8")
}

fn objects(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text).map(|document| Value::deserialize(document).expect("YAML")).collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|object| object["kind"] == kind && object["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

#[test]
fn the_manifests_render_and_every_object_passes_the_schemas() {
    let text = rendered();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &text).unwrap();
    let validator = std::env::var("TOOLS_DIR")
        .map_or_else(|_| repo_root().join(".tools"), std::path::PathBuf::from)
        .join("venv/bin/kubernetes-validate");
    let output =
        Command::new(&validator).arg("--strict").arg(file.path()).output().unwrap_or_else(|err| {
            panic!("running {} ({err}): scripts/install-kubernetes-tools.sh", validator.display())
        });
    let report = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && !report.contains("ERROR"), "kubernetes-validate:\n{report}");

    let objects = objects(&text);
    for (kind, name) in [
        ("Deployment", "ingest"),
        ("Service", "ingest"),
        ("HorizontalPodAutoscaler", "ingest"),
        ("PodDisruptionBudget", "ingest"),
        ("Deployment", "publisher"),
        ("Service", "publisher"),
        ("ServiceMonitor", "alerthaven"),
        ("PrometheusRule", "alerthaven"),
    ] {
        assert_eq!(object(&objects, kind, name)["metadata"]["namespace"], "alerthaven", "{kind} {name}");
    }
}

#[test]
fn the_prometheus_rule_carries_the_pipeline_rules_unchanged() {
    let rules: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(repo_root().join("prometheus/rules.yml")).unwrap()).unwrap();
    let pipeline = rules["groups"].as_sequence().unwrap().iter().find(|group| group["name"] == "pipeline").unwrap();
    let objects = objects(&rendered());
    let groups = &object(&objects, "PrometheusRule", "alerthaven")["spec"]["groups"];
    assert_eq!(groups.as_sequence().map(Vec::len), Some(1), "one group, the pipeline's");
    assert_eq!(&groups[0], pipeline, "deploy/kubernetes/monitoring.yaml differs from prometheus/rules.yml");
}

#[test]
fn probes_reach_the_service_endpoints_and_the_grace_period_outlasts_the_drain() {
    let objects = objects(&rendered());
    for (name, port) in [("ingest", "http"), ("publisher", "ops")] {
        let pod = &object(&objects, "Deployment", name)["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
        assert_eq!(container["readinessProbe"]["httpGet"]["port"], port, "{name}");
        assert!(container["resources"]["limits"]["memory"].as_str().is_some(), "{name} has a memory limit");
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
        // ingest drains for its server.shutdown_timeout (15 s); the publisher writes the batch in hand, within its
        // Deephaven deadlines.
        assert!(grace > 15, "{name}: a grace period of {grace} s cuts the drain short");
    }
}

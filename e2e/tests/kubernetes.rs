//! Checks of the Kubernetes manifests (`deploy/kubernetes`, and the overlays in `deploy/overlays`) that need no
//! cluster: kustomize renders them, every object passes the Kubernetes schemas (`kubernetes-validate --strict`), and
//! what must agree with the rest of the project does: the alert rules are the local stack's, the probes are the
//! services' endpoints, the grace period outlasts the drain, every file a setting names is mounted.
//!
//! `kubectl` and `kubernetes-validate` come from `scripts/install-kubernetes-tools.sh`; without them the tests
//! fail rather than skip.

use serde::Deserialize;
use serde_yaml_ng::Value;
use std::process::Command;
use test_kit::stack::repo_root;

/// The base and every overlay of it.
const KUSTOMIZATIONS: [&str; 2] = ["deploy/kubernetes", "deploy/overlays/kafka-sasl-tls"];

/// The base manifests as `kubectl kustomize` renders them, one document per object.
fn rendered() -> String {
    rendered_from(KUSTOMIZATIONS[0])
}

/// The manifests of kustomization `dir` as `kubectl kustomize` renders them.
fn rendered_from(dir: &str) -> String {
    let output = Command::new("kubectl")
        .args(["kustomize", dir])
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
    for dir in KUSTOMIZATIONS {
        passes_the_schemas(dir);
    }
}

fn passes_the_schemas(dir: &str) {
    let text = rendered_from(dir);
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
    assert!(output.status.success() && !report.contains("ERROR"), "{dir}: kubernetes-validate:\n{report}");

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
        assert_eq!(object(&objects, kind, name)["metadata"]["namespace"], "alerthaven", "{dir}: {kind} {name}");
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

/// Whether setting `key` names files (a secret, a CA, a token list) rather than holding a value.
fn names_files(key: &str) -> bool {
    key.ends_with("_FILE") || key.ends_with("_FILES") || key.ends_with("_LOCATION") || key.contains("PROPERTY_FILES__")
}

#[test]
fn every_file_a_setting_names_is_in_a_mounted_volume() {
    for dir in KUSTOMIZATIONS {
        let objects = objects(&rendered_from(dir));
        let config = objects
            .iter()
            .find(|object| {
                object["kind"] == "ConfigMap"
                    && object["metadata"]["name"].as_str().is_some_and(|name| name.starts_with("alerthaven-config"))
            })
            .unwrap_or_else(|| panic!("{dir}: no alerthaven-config ConfigMap"));
        let config = config["data"].as_mapping().expect("the ConfigMap has data");
        let mut checked = 0;
        for (name, prefix) in [("ingest", "INGEST_"), ("publisher", "PUBLISHER_")] {
            let pod = &object(&objects, "Deployment", name)["spec"]["template"]["spec"];
            let container = &pod["containers"][0];
            let volumes: Vec<&str> =
                pod["volumes"].as_sequence().into_iter().flatten().filter_map(|v| v["name"].as_str()).collect();
            let mounts: Vec<&str> = container["volumeMounts"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|mount| {
                    let volume = mount["name"].as_str().unwrap();
                    assert!(volumes.contains(&volume), "{dir}: {name} mounts {volume}, which is not a volume");
                    mount["mountPath"].as_str().unwrap()
                })
                .collect();
            let from_env =
                container["env"].as_sequence().into_iter().flatten().map(|variable| {
                    (variable["name"].as_str().unwrap(), variable["value"].as_str().unwrap_or_default())
                });
            let from_config =
                config.iter().map(|(key, value)| (key.as_str().unwrap(), value.as_str().unwrap_or_default()));
            for (key, value) in
                from_env.chain(from_config).filter(|(key, _)| key.starts_with(prefix) && names_files(key))
            {
                for path in value.split(',') {
                    let mounted = mounts.iter().any(|mount| path.starts_with(&format!("{mount}/")));
                    assert!(mounted, "{dir}: {name}'s {key} names {path}, outside every volume it mounts");
                    checked += 1;
                }
            }
        }
        assert!(checked > 0, "{dir}: no setting names a file");
    }
}

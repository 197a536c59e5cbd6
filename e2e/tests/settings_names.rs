//! Every settings variable the repository's scripts, stacks, manifests and docs give a service is one the service
//! reads: a renamed or misspelt setting there would be ignored without a word (only variables with a `__` after
//! the prefix are settings, and nothing checks the rest). The services' `--help` reference tables are the list.

use service_kit::help_reference;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use test_kit::stack::files_under;

/// The variables a reference table names: each key's variable (`server.port` → `INGEST_SERVER__PORT`); a key
/// ending in `<name>` stands for every variable that starts like it.
fn variables(reference: &str, prefix: &str) -> (BTreeSet<String>, Vec<String>) {
    let (mut exact, mut families) = (BTreeSet::new(), Vec::new());
    for key in help_reference::entries(reference).flat_map(|entry| entry.keys) {
        let variable = help_reference::variable(prefix, key);
        match variable.strip_suffix("<NAME>") {
            Some(family) => families.push(family.to_owned()),
            None => {
                exact.insert(variable);
            }
        }
    }
    (exact, families)
}

/// The files that give the services settings, and that people copy settings from.
fn files_that_set_services(root: &Path) -> Vec<PathBuf> {
    let mut files = ["README.md", "Dockerfile", "compose/docker-compose.yml", "test-kit/src/launch.rs"]
        .map(|file| root.join(file))
        .to_vec();
    for (dir, extensions) in [("scripts", &["sh"][..]), ("docs", &["md"]), ("deploy", &["yaml", "env"])] {
        files.extend(files_under(&root.join(dir), extensions));
    }
    files
}

/// The words in `text` shaped like settings variables of `prefix` (`PREFIX_SECTION__KEY`; prose may name a
/// section alone, `PREFIX_SECTION__`).
fn settings_words<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).filter(move |word| {
        word.strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|rest| rest.contains("__") && !rest.ends_with("__"))
    })
}

#[test]
fn every_settings_variable_in_the_repository_is_one_a_service_reads() {
    let root = test_kit::stack::repo_root();
    let services = [("INGEST", ingest::configuration::REFERENCE), ("PUBLISHER", publisher::configuration::REFERENCE)];
    let mut unknown = Vec::new();
    let mut seen = 0;
    for file in files_that_set_services(&root) {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        for (prefix, reference) in services {
            let (exact, families) = variables(reference, prefix);
            for word in settings_words(&text, prefix) {
                seen += 1;
                if !exact.contains(word) && !families.iter().any(|family| word.starts_with(family.as_str())) {
                    unknown.push(format!("{}: {word}", file.strip_prefix(&root).unwrap_or(&file).display()));
                }
            }
        }
    }
    assert!(seen > 50, "the scan found only {seen} settings variables: it no longer reads the files it should");
    assert!(unknown.is_empty(), "settings no service reads:\n{}", unknown.join("\n"));
}

#[test]
fn the_reference_tables_give_every_key_its_variable() {
    let (exact, families) = variables(ingest::configuration::REFERENCE, "INGEST");
    assert!(exact.contains("INGEST_SERVER__MAX_IN_FLIGHT_BYTES"));
    assert!(families.contains(&"INGEST_KAFKA__PROPERTIES__".to_owned()));
    let (exact, _) = variables(publisher::configuration::REFERENCE, "PUBLISHER");
    assert!(exact.contains("PUBLISHER_DEEPHAVEN__PASSWORD_FILE"), "keys listed together get a variable each");
}

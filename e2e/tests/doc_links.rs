//! Every link between the repository's Markdown documents leads somewhere: the file exists and, when the link names
//! a section (`#anchor`), the file has a heading with that anchor, as GitHub derives it. Links to the web are not
//! followed (CI has no internet).

use std::path::{Path, PathBuf};
use test_kit::stack::files_under;

/// The Markdown documents people read: the README and everything under `docs/`.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut documents = vec![root.join("README.md")];
    documents.extend(files_under(&root.join("docs"), &["md"]));
    documents
}

/// The lines of `markdown` outside fenced code blocks (where `#` and `](` are code, not headings and links).
fn prose_lines(markdown: &str) -> impl Iterator<Item = &str> {
    let mut in_code_block = false;
    markdown.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            return false;
        }
        !in_code_block
    })
}

/// The targets of the inline links `[text](target)` in `markdown`, outside code blocks.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(markdown) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find(')') else { break };
            targets.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped, spaces made `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of `markdown`'s headings (lines starting with `#` outside code blocks).
fn anchors(markdown: &str) -> Vec<String> {
    prose_lines(markdown)
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| anchor(heading.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_link_between_the_documents_leads_somewhere() {
    let root = test_kit::stack::repo_root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents(&root) {
        let text = std::fs::read_to_string(&document).expect("a readable document");
        let name = document.strip_prefix(&root).unwrap_or(&document).display().to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, section) = target.split_once('#').map_or((target.as_str(), None), |(p, s)| (p, Some(s)));
            let linked = if path.is_empty() { document.clone() } else { document.parent().expect("a dir").join(path) };
            if !linked.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
                continue;
            }
            if let Some(section) = section {
                let headings = anchors(&std::fs::read_to_string(&linked).unwrap_or_default());
                if !headings.iter().any(|heading| heading == section) {
                    broken.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} links checked: the scan no longer reads the documents it should");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(anchor(" Memory: bounded by bytes"), "memory-bounded-by-bytes");
    assert_eq!(anchor("Kafka over TLS and SASL, Deephaven over TLS"), "kafka-over-tls-and-sasl-deephaven-over-tls");
    assert_eq!(anchor("`alerts`: which state is current"), "alerts-which-state-is-current");
    assert_eq!(link_targets("see [a](x.md#b) and [c](https://d)\n```\n[e](f)\n```"), ["x.md#b", "https://d"]);
    assert_eq!(anchors("# Top\n```sh\n# a comment\n```\n## Next one"), ["top", "next-one"]);
}

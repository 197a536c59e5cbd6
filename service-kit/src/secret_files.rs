//! Secrets mounted as files (Kubernetes Secrets, Docker secrets): read whole, surrounding whitespace dropped (a
//! mounted secret often ends with a newline), held as [`SecretString`] so they never print.

use anyhow::Context;
use secrecy::SecretString;
use std::path::Path;

/// Reads the secret in `path`; the error names the file, never its content. A file empty but for whitespace is
/// refused: no secret is empty, and it is what a rotation caught half-way (truncated, not yet written) shows, which
/// must not replace a working secret.
pub fn read_secret_file(path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the secret in {}", path.display()))?;
    anyhow::ensure!(!text.trim().is_empty(), "the secret file {} is empty", path.display());
    Ok(SecretString::from(text.trim().to_owned()))
}

/// The secret given inline or in a file: at most one of them, since which one wins would be a guess.
pub fn inline_or_file(
    name: &str,
    inline: Option<SecretString>,
    file: Option<&Path>,
) -> anyhow::Result<Option<SecretString>> {
    match (inline, file) {
        (Some(_), Some(_)) => anyhow::bail!("{name} is given both inline and as {name}_file"),
        (inline, None) => Ok(inline),
        (None, Some(file)) => read_secret_file(file).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_file_gives_the_secret_trimmed_and_an_inline_one_excludes_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("psk");
        std::fs::write(&file, "  0042,key \n").unwrap();
        let read = inline_or_file("deephaven.psk", None, Some(&file)).unwrap().unwrap();
        assert_eq!(read.expose_secret(), "0042,key");
        assert!(inline_or_file("deephaven.psk", Some("x".into()), Some(&file)).is_err());
        assert_eq!(inline_or_file("deephaven.psk", Some("x".into()), None).unwrap().unwrap().expose_secret(), "x");
        let missing = read_secret_file(&dir.path().join("absent")).unwrap_err();
        assert!(format!("{missing:#}").contains("absent"));
        std::fs::write(&file, " \n").unwrap();
        let empty = read_secret_file(&file).unwrap_err();
        assert!(format!("{empty:#}").contains("empty"), "{empty:#}");
    }
}

//! Strict JSON reading that reports where a document went wrong.

use serde::de::DeserializeOwned;
use serde_json::error::Category;

/// A JSON error and the path (`alerts[3].startsAt`, or `$` for the whole document) where it happened, both fit to
/// show (see [`shown`]).
pub(crate) struct PathedError {
    pub path: String,
    pub message: String,
    pub category: Category,
}

impl PathedError {
    fn new(path: &str, error: serde_json::Error) -> Self {
        Self { path: shown(path), message: shown(&error.to_string()), category: error.classify() }
    }
}

/// The most of a path or message that an error shows.
const MAX_SHOWN_BYTES: usize = 256;

/// The longest start of `text` that fits [`MAX_SHOWN_BYTES`] (cut at a character boundary), and whether it was cut.
pub(crate) fn cut_to_show(text: &str) -> (&str, bool) {
    if text.len() <= MAX_SHOWN_BYTES {
        return (text, false);
    }
    let end = (0..=MAX_SHOWN_BYTES).rev().find(|&end| text.is_char_boundary(end)).unwrap_or(0);
    (&text[..end], true)
}

/// `text` as an error may show it where it is logged and answered: serde writes some of the input verbatim into its
/// paths and messages (a map's key, an unknown variant), so control characters are escaped, and the text is cut
/// after [`MAX_SHOWN_BYTES`] (a key as long as the body must not make a log line or an answer as long).
fn shown(text: &str) -> String {
    let mut shown = String::with_capacity(text.len().min(MAX_SHOWN_BYTES));
    for c in text.chars() {
        if shown.len() >= MAX_SHOWN_BYTES {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Deserializes exactly one JSON document from `bytes`: trailing characters other than whitespace are an error.
///
/// Tracking the path is a sizeable share of the parse (measured: docs/benchmarks.md, section "Profile and fixes
/// (publisher), 2026-11-26"), so documents are parsed without it and only a failing one is parsed again to say where
/// it failed.
pub(crate) fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PathedError> {
    serde_json::from_slice(bytes).or_else(|_| from_slice_with_path(bytes))
}

fn from_slice_with_path<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PathedError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = match err.path().to_string() {
            root if root == "." => "$".to_owned(),
            path => path,
        };
        PathedError::new(&path, err.into_inner())
    })?;
    deserializer.end().map_err(|error| PathedError::new("$", error))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_is_cut() {
        assert_eq!(shown("status\nlevel=error\u{1b}[31m"), "status\\nlevel=error\\u{1b}[31m");
        assert_eq!(shown("température"), "température", "printable UTF-8 is kept");
        let long = shown(&"é".repeat(1_000));
        assert!(long.len() <= MAX_SHOWN_BYTES + 'é'.len_utf8() + '…'.len_utf8(), "{} bytes", long.len());
        assert!(long.ends_with('…'));
    }
}

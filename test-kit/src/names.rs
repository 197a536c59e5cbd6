//! Names no other test, and no other run of the tests, uses: topics, consumer groups, Deephaven tables.

use std::sync::atomic::{AtomicU32, Ordering};

/// `prefix` followed by this process's id, a counter and the clock's nanoseconds, joined by `_`: a valid Kafka topic
/// and group name and, for a `prefix` that starts with a letter, a valid Deephaven query-scope name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_keep_to_identifier_characters() {
        let (first, second) = (unique_name("Table"), unique_name("Table"));
        assert_ne!(first, second);
        assert!(first.starts_with("Table_"), "{first}");
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{first}");
    }
}

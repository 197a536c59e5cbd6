//! The alert fingerprint: Alertmanager's 64-bit hash of an alert's label set, as 16 lowercase hex characters.
//!
//! It identifies one alert across notifications, so it is the Kafka key (all events of an alert land on one partition,
//! in order) and the key of the Deephaven `alerts` table. Only the canonical lowercase form is accepted so that one
//! alert can never appear under two keys.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A validated alert fingerprint (exactly 16 lowercase hexadecimal characters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint as it travels: 16 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64-bit hash the hex spells: a compact key for maps over very many alerts.
    pub fn as_u64(&self) -> u64 {
        u64::from_str_radix(&self.0, 16).expect("a validated fingerprint is 16 hex digits")
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = value.len() == 16 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid {
            Ok(Self(value))
        } else {
            Err(format!("expected 16 lowercase hex characters, got {value:?}"))
        }
    }
}

impl From<Fingerprint> for String {
    fn from(value: Fingerprint) -> Self {
        value.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sixteen_lowercase_hex_characters() {
        let fp = Fingerprint::try_from("d1a5c9317abe90b2".to_owned()).unwrap();
        assert_eq!(fp.as_str(), "d1a5c9317abe90b2");
        assert_eq!(fp.as_u64(), 0xd1a5_c931_7abe_90b2);
        assert_eq!(Fingerprint::try_from("0000000000000000".to_owned()).unwrap().as_u64(), 0);
        assert_eq!(Fingerprint::try_from("ffffffffffffffff".to_owned()).unwrap().as_u64(), u64::MAX);
    }

    #[test]
    fn rejects_wrong_length_case_and_alphabet() {
        for bad in
            ["", "d1a5c9317abe90b", "d1a5c9317abe90b21", "D1A5C9317ABE90B2", "g1a5c9317abe90b2", "d1a5c9317abe90\u{e9}"]
        {
            assert!(Fingerprint::try_from(bad.to_owned()).is_err(), "{bad:?} was accepted");
        }
    }
}

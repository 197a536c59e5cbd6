//! Label and annotation sets: string-to-string maps with unique names.
//!
//! Kept in a `BTreeMap` so that serializing a set (into Kafka, or into the `Labels` JSON column) is canonical:
//! the same set always produces the same bytes. A JSON object that repeats a name is rejected rather than letting
//! the last value silently win; one with more entries than a webhook body's limit allows is refused as it is read
//! (the private `counted` module).

use crate::counted;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A set of labels or annotations, ordered by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct LabelSet(BTreeMap<String, String>);

impl LabelSet {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Name and value pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The canonical JSON object text of this set (names sorted), as stored in the `Labels` / `Annotations` columns.
    pub fn to_json(&self) -> String {
        let mut json = Vec::new();
        self.write_json(&mut json);
        String::from_utf8(json).expect("serde_json writes UTF-8")
    }

    /// Appends [`Self::to_json`]'s text to `out`: lets a caller reuse one buffer for many sets.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(out, &self.0).expect("a map of strings always serializes into memory")
    }
}

impl FromIterator<(String, String)> for LabelSet {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'de> Deserialize<'de> for LabelSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(UniqueNames)
    }
}

struct UniqueNames;

impl<'de> Visitor<'de> for UniqueNames {
    type Value = LabelSet;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LabelSet, A::Error> {
        let mut labels = BTreeMap::new();
        counted::entries(map, |name, value| {
            if labels.contains_key(&name) {
                return Err(serde::de::Error::custom(format!("label name {name:?} appears twice")));
            }
            labels.insert(name, value);
            Ok(())
        })?;
        Ok(LabelSet(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_canonical_whatever_the_input_order() {
        let a: LabelSet = serde_json::from_str(r#"{"b":"2","a":"1"}"#).unwrap();
        let b: LabelSet = serde_json::from_str(r#"{"a":"1","b":"2"}"#).unwrap();
        assert_eq!(a.to_json(), r#"{"a":"1","b":"2"}"#);
        assert_eq!(a.to_json(), b.to_json());
    }

    #[test]
    fn rejects_repeated_names_and_non_string_values() {
        let repeated = serde_json::from_str::<LabelSet>(r#"{"a":"1","a":"2"}"#).unwrap_err();
        assert!(repeated.to_string().contains("appears twice"), "{repeated}");
        assert!(serde_json::from_str::<LabelSet>(r#"{"a":1}"#).is_err());
        assert!(serde_json::from_str::<LabelSet>(r#"{"a":{"b":"c"}}"#).is_err());
        assert!(serde_json::from_str::<LabelSet>(r#"["a"]"#).is_err());
    }
}

//! The count limits, applied while a webhook body is decoded rather than after.
//!
//! A body's decoded form is several times its size when it holds many short labels, so a body with too many alerts,
//! or a label set with too many entries, is refused at the first element past its limit: the rest is skipped
//! without being built (only counted, for the message). [`crate::parse`] puts the limits in force on its thread
//! while it decodes ([`InForce`]); decoding anywhere else (a record the publisher reads) counts nothing.

use crate::Limits;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;

thread_local! {
    /// The limits of the body being decoded on this thread, if any.
    static IN_FORCE: Cell<Option<Limits>> = const { Cell::new(None) };
    /// The message of the limit the decoding exceeded, so that `parse` can tell it from a malformed body (both come
    /// out of serde as a custom error).
    static EXCEEDED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Limits in force on this thread until dropped.
pub(crate) struct InForce(());

impl InForce {
    pub(crate) fn enter(limits: &Limits) -> InForce {
        IN_FORCE.set(Some(*limits));
        EXCEEDED.take();
        InForce(())
    }

    /// What the last decoding exceeded, if it stopped at a limit.
    pub(crate) fn exceeded(&self) -> Option<String> {
        EXCEEDED.take()
    }
}

impl Drop for InForce {
    fn drop(&mut self) {
        IN_FORCE.set(None);
        EXCEEDED.take();
    }
}

fn in_force() -> Option<Limits> {
    IN_FORCE.get()
}

fn exceed<E: de::Error>(message: String) -> E {
    EXCEEDED.set(Some(message.clone()));
    E::custom(message)
}

/// A body's alerts (`#[serde(deserialize_with)]`): at most `max_alerts_per_body` of them when limits are in force.
pub(crate) fn alerts<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    deserializer.deserialize_seq(Alerts(PhantomData))
}

struct Alerts<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for Alerts<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of alerts")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let max = in_force().map_or(usize::MAX, |limits| limits.max_alerts_per_body);
        let mut items = Vec::new();
        while items.len() < max {
            match seq.next_element()? {
                Some(item) => items.push(item),
                None => return Ok(items),
            }
        }
        let mut total = items.len();
        while seq.next_element::<IgnoredAny>()?.is_some() {
            total += 1;
        }
        if total == items.len() {
            return Ok(items);
        }
        Err(exceed(format!(
            "{total} alerts exceed the limit of {max} per body (lower max_alerts in the Alertmanager webhook_config)"
        )))
    }
}

/// Takes the entries of `map` with `take` (which refuses a bad one), at most `max_labels_per_alert` of them when
/// limits are in force.
pub(crate) fn entries<'de, A: MapAccess<'de>>(
    mut map: A,
    mut take: impl FnMut(String, String) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    let max = in_force().map_or(usize::MAX, |limits| limits.max_labels_per_alert);
    let mut taken = 0;
    while taken < max {
        match map.next_entry::<String, String>()? {
            Some((name, value)) => take(name, value)?,
            None => return Ok(()),
        }
        taken += 1;
    }
    let mut total = taken;
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
        total += 1;
    }
    if total == taken {
        return Ok(());
    }
    Err(exceed(format!("{total} entries exceed the limit of {max}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LabelSet;
    use std::collections::BTreeMap;

    #[test]
    fn only_a_decoding_with_limits_in_force_counts() {
        let many = serde_json::json!((0..100).map(|i| (format!("l{i}"), "v".to_owned())).collect::<BTreeMap<_, _>>());
        let few = Limits { max_labels_per_alert: 10, ..Limits::default() };
        {
            let counting = InForce::enter(&few);
            assert!(serde_json::from_value::<LabelSet>(many.clone()).is_err());
            assert_eq!(counting.exceeded().as_deref(), Some("100 entries exceed the limit of 10"));
        }
        let read_elsewhere = serde_json::from_value::<LabelSet>(many).expect("no limits once the body is decoded");
        assert_eq!(read_elsewhere.len(), 100);
    }
}

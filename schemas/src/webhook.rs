//! The Alertmanager webhook body (payload version "4") and the parser that admits it.
//!
//! [`parse`] is the only way in: it turns untrusted bytes into a [`Webhook`] or a [`SchemaError`] that names the JSON
//! path at fault and says what was expected. Field formats are checked while deserializing (see [`crate::domain`]),
//! and so are the count limits (the private `counted` module); the rules that span fields or depend on configuration
//! (non-empty label sets, resolved alerts carry an end, byte limits) are checked right after, before anything is
//! handed on. Unknown fields are tolerated, because newer Alertmanagers add fields (`notification_reason` in 0.32,
//! `routeLabels` in 0.34) and a receiver must not break on an upgrade.

use crate::counted::{self, InForce};
use crate::domain::timestamp::optional_end;
use crate::json::{self, PathedError};
use crate::{Fingerprint, LabelSet, Limits, Status, Timestamp};
use serde::Deserialize;
use std::fmt;

/// One webhook notification: a snapshot of one alert group as Alertmanager sees it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub version: PayloadVersion,
    /// Identifies the alert group within a receiver; not unique across receivers.
    pub group_key: String,
    /// How many alerts `max_alerts` cut from this body.
    pub truncated_alerts: u64,
    /// `firing` if any alert in the body fires.
    pub status: Status,
    /// The receiver name, regex-escaped by Alertmanager (`ops\.team`).
    pub receiver: String,
    pub group_labels: LabelSet,
    pub common_labels: LabelSet,
    pub common_annotations: LabelSet,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    #[serde(deserialize_with = "counted::alerts")]
    pub alerts: Vec<Alert>,
    /// Why this notification was sent (Alertmanager 0.32+).
    #[serde(default, rename = "notification_reason")]
    pub notification_reason: Option<String>,
    /// The labels of the route that matched (Alertmanager 0.34+).
    #[serde(default)]
    pub route_labels: Option<LabelSet>,
}

/// One alert inside a notification.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: Status,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: Timestamp,
    /// `None` while the alert fires (Alertmanager sends Go's zero time).
    #[serde(with = "optional_end")]
    pub ends_at: Option<Timestamp>,
    /// Empty for alerts posted straight to Alertmanager's API.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: Fingerprint,
}

/// The webhook payload version. Only "4" exists; any other value is refused rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadVersion;

impl<'de> Deserialize<'de> for PayloadVersion {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let version = String::deserialize(deserializer)?;
        if version == "4" {
            Ok(PayloadVersion)
        } else {
            Err(serde::de::Error::custom(format!("expected version \"4\", got {version:?}")))
        }
    }
}

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaErrorKind {
    /// Not JSON at all: a syntax error, truncated input, invalid UTF-8 or nesting past the parser's depth limit.
    Syntax,
    /// JSON, but not a valid webhook: a missing field, a wrong type, a bad value.
    Invalid,
    /// Valid, but larger than the configured [`Limits`] allow.
    LimitExceeded,
}

/// A refused body: which JSON path is at fault (`$` for the whole body) and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    pub kind: SchemaErrorKind,
    /// Where in the body, e.g. `alerts[3].startsAt`.
    pub path: String,
    pub message: String,
}

impl SchemaError {
    fn new(kind: SchemaErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { kind, path: path.into(), message: message.into() }
    }
}

/// Parses and checks one webhook body.
pub fn parse(body: &[u8], limits: &Limits) -> Result<Webhook, SchemaError> {
    let counting = InForce::enter(limits);
    let webhook: Webhook = json::from_slice(body).map_err(|PathedError { path, message, category }| {
        if let Some(message) = counting.exceeded() {
            return SchemaError::new(SchemaErrorKind::LimitExceeded, path, message);
        }
        let kind = match category {
            serde_json::error::Category::Data => SchemaErrorKind::Invalid,
            _ => SchemaErrorKind::Syntax,
        };
        SchemaError::new(kind, path, message)
    })?;
    check(&webhook, limits)?;
    Ok(webhook)
}

/// The rules serde cannot express: they span fields or depend on [`Limits`].
fn check(webhook: &Webhook, limits: &Limits) -> Result<(), SchemaError> {
    let strings = StringLimit(limits.max_value_bytes);
    strings.check("receiver", &webhook.receiver)?;
    strings.check("groupKey", &webhook.group_key)?;
    strings.check("externalURL", &webhook.external_url)?;
    if let Some(reason) = &webhook.notification_reason {
        strings.check("notification_reason", reason)?;
    }
    let sets = [
        ("groupLabels", &webhook.group_labels),
        ("commonLabels", &webhook.common_labels),
        ("commonAnnotations", &webhook.common_annotations),
    ];
    for (path, set) in sets.into_iter().chain(webhook.route_labels.as_ref().map(|set| ("routeLabels", set))) {
        check_set(&path, set, limits)?;
    }

    if webhook.alerts.is_empty() {
        return Err(SchemaError::new(SchemaErrorKind::Invalid, "alerts", "expected at least one alert"));
    }
    for (index, alert) in webhook.alerts.iter().enumerate() {
        let path = AlertPath(index);
        if alert.labels.is_empty() {
            return Err(SchemaError::new(
                SchemaErrorKind::Invalid,
                format!("{path}.labels"),
                "expected at least one label",
            ));
        }
        if alert.status == Status::Resolved && alert.ends_at.is_none() {
            let message = "expected the time the alert resolved, got none (0001-01-01T00:00:00Z)";
            return Err(SchemaError::new(SchemaErrorKind::Invalid, format!("{path}.endsAt"), message));
        }
        check_set(&format_args!("{path}.labels"), &alert.labels, limits)?;
        check_set(&format_args!("{path}.annotations"), &alert.annotations, limits)?;
        strings.check(format_args!("{path}.generatorURL"), &alert.generator_url)?;
    }
    Ok(())
}

/// `alerts[index]`, written out only when a check fails: formatting every path of every valid alert up front cost
/// a noticeable share of ingest's CPU (measured: docs/benchmarks.md, section "Profile and fixes (ingest), 2026-11-26").
struct AlertPath(usize);

impl fmt::Display for AlertPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "alerts[{}]", self.0)
    }
}

fn check_set(path: &dyn fmt::Display, set: &LabelSet, limits: &Limits) -> Result<(), SchemaError> {
    let strings = StringLimit(limits.max_value_bytes);
    for (name, value) in set.iter() {
        let at = EntryPath { set: path, name };
        if name.is_empty() {
            return Err(SchemaError::new(SchemaErrorKind::Invalid, at.to_string(), "expected a non-empty name"));
        }
        strings.check(&at, name)?;
        strings.check(&at, value)?;
    }
    Ok(())
}

/// Where an entry of a label set is: `alerts[0].labels.severity`, or, for a name that is not a plain identifier
/// (Prometheus 3 allows any UTF-8), `alerts[0].labels["a name"]` with the name JSON-escaped, so that no name can
/// break or forge a line where the path is logged. A name too long to show is cut (`…` marks it), so that a name as
/// long as the body makes neither the answer nor the log line as long.
struct EntryPath<'a> {
    set: &'a dyn fmt::Display,
    name: &'a str,
}

impl fmt::Display for EntryPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, was_cut) = json::cut_to_show(self.name);
        let ellipsis = if was_cut { "…" } else { "" };
        let mut chars = name.chars();
        let plain = chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if plain {
            write!(f, "{}.{name}{ellipsis}", self.set)
        } else {
            let quoted = serde_json::to_string(name).expect("a string always serializes");
            write!(f, "{}[{quoted}{ellipsis}]", self.set)
        }
    }
}

/// The per-string byte limit, applied to every name and value in a body.
struct StringLimit(usize);

impl StringLimit {
    fn check(&self, path: impl fmt::Display, value: &str) -> Result<(), SchemaError> {
        if value.len() <= self.0 {
            return Ok(());
        }
        let message = format!("{} bytes exceed the limit of {} bytes per value", value.len(), self.0);
        Err(SchemaError::new(SchemaErrorKind::LimitExceeded, path.to_string(), message))
    }
}

impl fmt::Display for SchemaErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchemaErrorKind::Syntax => "malformed JSON",
            SchemaErrorKind::Invalid => "invalid webhook",
            SchemaErrorKind::LimitExceeded => "limit exceeded",
        })
    }
}

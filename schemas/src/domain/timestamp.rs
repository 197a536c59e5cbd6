//! Instants in time, as nanoseconds since the Unix epoch in UTC.
//!
//! Alertmanager writes RFC 3339 with 0 to 9 fraction digits and Go's zero time `0001-01-01T00:00:00Z` for "no end".
//! Nanoseconds in an `i64` are what Arrow's `timestamp[ns, "UTC"]` and Deephaven's `Instant` hold, so any instant that
//! cannot be represented there (before 1677 or after 2262) is rejected at the edge instead of failing deep in the publisher.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An instant, UTC, with nanosecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// Builds a timestamp from nanoseconds since the Unix epoch.
    pub const fn from_unix_nanos(nanos: i64) -> Self {
        Self(nanos)
    }

    /// Nanoseconds since the Unix epoch.
    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// The current time, for `received_at`. The only clock read in this crate, and only when asked.
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Self(i64::try_from(nanos).expect("the system clock is between 1677 and 2262"))
    }

    /// Parses RFC 3339 with any number of fraction digits (digits past the ninth are truncated) and any offset.
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        Self::from_datetime(parse_datetime(text)?)
    }

    fn from_datetime(datetime: OffsetDateTime) -> Result<Self, String> {
        i64::try_from(datetime.unix_timestamp_nanos())
            .map(Self)
            .map_err(|_| format!("expected a time between 1677-09-21 and 2262-04-11, got {datetime}"))
    }

    fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .expect("every i64 of nanoseconds is a valid datetime")
    }
}

fn parse_datetime(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|err| format!("expected an RFC 3339 time, got {text:?} ({err})"))
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with all nine fraction digits, so that formatting then parsing is exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.to_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.nanosecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for Alertmanager's `endsAt`: Go's zero time (`0001-01-01T00:00:00Z`) means the alert has no end yet.
pub(crate) mod optional_end {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let datetime = parse_datetime(&text).map_err(serde::de::Error::custom)?;
        if datetime.unix_timestamp() == GO_ZERO_TIME_UNIX_SECONDS && datetime.nanosecond() == 0 {
            return Ok(None);
        }
        Timestamp::from_datetime(datetime).map(Some).map_err(serde::de::Error::custom)
    }

    /// `0001-01-01T00:00:00Z` in Unix seconds.
    const GO_ZERO_TIME_UNIX_SECONDS: i64 = -62_135_596_800;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fraction_width_alertmanager_sends() {
        let cases = [
            ("2026-11-23T18:41:46Z", 1_795_459_306_000_000_000),
            ("2026-11-23T18:41:46.1Z", 1_795_459_306_100_000_000),
            ("2026-11-23T18:41:46.434Z", 1_795_459_306_434_000_000),
            ("2026-11-23T18:41:46.123456789Z", 1_795_459_306_123_456_789),
            ("2026-11-23T18:41:46.1234567899Z", 1_795_459_306_123_456_789),
            ("2026-11-23T20:41:46.5+02:00", 1_795_459_306_500_000_000),
        ];
        for (text, nanos) in cases {
            assert_eq!(Timestamp::parse_rfc3339(text).unwrap().unix_nanos(), nanos, "{text}");
        }
    }

    #[test]
    fn rejects_non_rfc3339_and_unrepresentable_times() {
        for bad in [
            "",
            "yesterday",
            "2026-11-23",
            "2026-11-23T18:41:46",
            "2026-13-01T00:00:00Z",
            "2026-11-23T18:41:46.Z",
            "0001-01-01T00:00:00Z",
            "9999-01-01T00:00:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn display_then_parse_is_exact() {
        for nanos in [0, 1, -1, 1_795_459_306_123_456_789, i64::MIN, i64::MAX] {
            let ts = Timestamp::from_unix_nanos(nanos);
            assert_eq!(Timestamp::parse_rfc3339(&ts.to_string()).unwrap(), ts, "{ts}");
        }
    }

    #[test]
    fn go_zero_time_is_no_end() {
        #[derive(Deserialize)]
        struct End(#[serde(with = "optional_end")] Option<Timestamp>);
        let End(none) = serde_json::from_str(r#""0001-01-01T00:00:00Z""#).unwrap();
        assert_eq!(none, None);
        let End(some) = serde_json::from_str(r#""2026-11-23T18:41:46Z""#).unwrap();
        assert_eq!(some, Some(Timestamp::from_unix_nanos(1_795_459_306_000_000_000)));
    }
}

//! [`Timestamp`]: the one time type of SendPromptly.
//!
//! Times are UTC with millisecond precision, serialised as RFC 3339 strings
//! (`2026-11-22T10:00:00.000Z`) and stored as unix milliseconds. The core never
//! reads the clock: callers pass `now` in.

use std::fmt;
use std::ops::{Add, Sub};

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with millisecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime, example = "2026-11-22T10:00:00.000Z"))]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `millis` milliseconds after the unix epoch.
    pub const fn from_unix_millis(millis: i64) -> Self {
        Timestamp(millis)
    }

    /// The instant `seconds` seconds after the unix epoch.
    pub const fn from_unix_seconds(seconds: i64) -> Self {
        Timestamp(seconds.saturating_mul(1000))
    }

    /// Milliseconds since the unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the unix epoch (rounded down).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Converts from a chrono UTC time, dropping sub-millisecond precision.
    pub fn from_datetime(datetime: DateTime<Utc>) -> Self {
        Timestamp(datetime.timestamp_millis())
    }

    /// The same instant as a chrono UTC time.
    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Parses an RFC 3339 string with any offset, converting it to UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(|dt| Self::from_datetime(dt.with_timezone(&Utc)))
    }

    /// Formats as RFC 3339 UTC with milliseconds, e.g. `2026-11-22T10:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// This instant plus `seconds` seconds (saturating).
    pub const fn plus_seconds(self, seconds: i64) -> Self {
        Timestamp(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    /// This instant plus `millis` milliseconds (saturating).
    pub const fn plus_millis(self, millis: i64) -> Self {
        Timestamp(self.0.saturating_add(millis))
    }

    /// Milliseconds from `earlier` to `self` (negative if `earlier` is later).
    pub const fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<std::time::Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: std::time::Duration) -> Timestamp {
        self.plus_millis(i64::try_from(rhs.as_millis()).unwrap_or(i64::MAX))
    }
}

impl Sub<std::time::Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: std::time::Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(rhs.as_millis()).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(|err| {
            serde::de::Error::custom(format!(
                "expected an RFC 3339 time such as 2026-11-22T10:00:00Z ({err})"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_as_rfc3339_utc_with_millis() {
        let t = Timestamp::parse_rfc3339("2026-11-22T11:00:00.123+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T10:00:00.123Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-22T10:00:00.123Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn rejects_non_rfc3339() {
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }

    #[test]
    fn arithmetic() {
        let t = Timestamp::from_unix_seconds(100);
        assert_eq!(t.plus_seconds(5).unix_seconds(), 105);
        assert_eq!(t.plus_seconds(5).millis_since(t), 5000);
        assert_eq!(Timestamp::from_unix_millis(-1).unix_seconds(), -1);
    }
}

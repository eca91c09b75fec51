//! Instants: UTC seconds since the epoch, as Zendesk's filters and our files write them.

use std::fmt;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const SECONDS_PER_DAY: i64 = 86_400;

/// An instant that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {0:?}: use RFC 3339 (2024-01-01T00:00:00Z) or a date (2024-01-01, midnight UTC)"
)]
pub struct InstantError(pub String);

/// An instant to the second, kept as UTC seconds and written as RFC 3339
/// (`2024-01-01T00:00:00Z`) wherever it is stored: in the manifest's markers, the lease, the
/// chain and the ledger. It reads back only in the form it is written: another spelling of the
/// same instant (`+00:00`, a fraction, a date) would re-serialize to other bytes than a
/// signature signed, so a file holding one is not ours, as a torn one is not. (The lease's
/// expiry is kept in UTC seconds, as it always was: [`seconds`].)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `seconds` after the epoch.
    pub const fn from_seconds(seconds: i64) -> Timestamp {
        Timestamp(seconds)
    }

    /// Now, to the second.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().timestamp())
    }

    /// UTC seconds since the epoch.
    pub const fn seconds(self) -> i64 {
        self.0
    }

    /// Parses what [`parse_instant`] accepts.
    pub fn parse(text: &str) -> Result<Timestamp, InstantError> {
        parse_instant(text).map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_rfc3339(self.0))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        match Timestamp::parse(&text) {
            Ok(t) if t.to_string() == text => Ok(t),
            _ => Err(serde::de::Error::custom(format!(
                "{text:?} is not a time as auditlake writes it (YYYY-MM-DDTHH:MM:SSZ)"
            ))),
        }
    }
}

/// A [`Timestamp`] kept as UTC seconds (an integer), for `#[serde(with = ...)]`: the lease's
/// expiry, which every version has written so (a version that reads seconds must go on reading
/// the leases of one that writes them, and back). Reading refuses seconds outside 1970 to 9999.
pub mod seconds {
    use super::{Timestamp, MAX_INSTANT, MIN_INSTANT};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(t.seconds())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let seconds = i64::deserialize(deserializer)?;
        if !(MIN_INSTANT..=MAX_INSTANT).contains(&seconds) {
            return Err(serde::de::Error::custom(format!(
                "{seconds} seconds is not a time from 1970 to 9999"
            )));
        }
        Ok(Timestamp::from_seconds(seconds))
    }
}

/// Earliest instant [`parse_instant`] accepts: audit logs are younger than the epoch, and
/// refusing earlier times keeps every window (and its grid floor) inside chrono's range.
pub const MIN_INSTANT: i64 = 0;

/// Latest instant [`parse_instant`] accepts (9999-12-31T23:59:59Z): a four-digit year, so window
/// ends a grid step later still format and partition paths stay the same width.
pub const MAX_INSTANT: i64 = 253_402_300_799;

/// Parses `2024-01-01T00:00:00Z` (any RFC 3339 offset) or `2024-01-01` (midnight UTC) into UTC
/// seconds, from 1970 to 9999. Sub-second parts are refused: Zendesk's timestamps have second
/// precision.
pub fn parse_instant(text: &str) -> Result<i64, InstantError> {
    let bad = || InstantError(text.to_string());
    let trimmed = text.trim();
    let t = if let Ok(date) = NaiveDate::parse_from_str(trimmed, "%Y-%m-%d") {
        date.and_hms_opt(0, 0, 0)
            .ok_or_else(bad)?
            .and_utc()
            .timestamp()
    } else {
        let t = DateTime::parse_from_rfc3339(trimmed).map_err(|_| bad())?;
        if t.timestamp_subsec_nanos() != 0 {
            return Err(bad());
        }
        t.timestamp()
    };
    if !(MIN_INSTANT..=MAX_INSTANT).contains(&t) {
        return Err(bad());
    }
    Ok(t)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the only form `filter[created_at][]` accepts.
pub fn format_rfc3339(t: i64) -> String {
    utc(t).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of UTC milliseconds `ms`.
pub fn format_rfc3339_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// `YYYYMMDDTHHMMZ`: sortable, and safe in file names and object keys.
pub fn format_compact(t: i64) -> String {
    utc(t).format("%Y%m%dT%H%MZ").to_string()
}

/// Parses [`format_compact`] back into UTC seconds.
pub fn parse_compact(text: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%MZ")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// The UTC day of `t`.
pub fn day_of(t: i64) -> NaiveDate {
    day_from_index(t.div_euclid(SECONDS_PER_DAY))
}

pub fn day_from_index(index: i64) -> NaiveDate {
    utc(index * SECONDS_PER_DAY).date_naive()
}

/// A UTC instant from seconds; every caller holds a parsed or planned instant (1970 to 9999).
pub fn utc(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0)
        .single()
        .expect("timestamps come from parsed instants and stay in chrono's range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timestamp_is_written_as_rfc_3339_and_read_back() {
        let t = Timestamp::from_seconds(1_704_070_923);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2024-01-01T01:02:03Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(t.to_string(), "2024-01-01T01:02:03Z");
        // Only the form it is written in: another spelling of the instant is not ours.
        for other in [
            "\"yesterday\"",
            "\"2024-01-01T01:02:03+00:00\"",
            "\"2024-01-01T01:02:03.000Z\"",
            "\"2024-01-01\"",
            "1704070923",
        ] {
            assert!(serde_json::from_str::<Timestamp>(other).is_err(), "{other}");
        }
    }

    #[test]
    fn the_lease_expiry_stays_in_seconds_within_the_calendar() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Lease {
            #[serde(with = "seconds")]
            expires_at: Timestamp,
        }
        let lease = Lease {
            expires_at: Timestamp::from_seconds(1_704_067_800),
        };
        let json = serde_json::to_string(&lease).unwrap();
        assert_eq!(json, r#"{"expires_at":1704067800}"#);
        assert_eq!(serde_json::from_str::<Lease>(&json).unwrap(), lease);
        for far in ["99999999999999", "-1"] {
            let text = format!(r#"{{"expires_at":{far}}}"#);
            assert!(serde_json::from_str::<Lease>(&text).is_err(), "{far}");
        }
    }
}

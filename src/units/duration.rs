//! Durations as flags and the config file give them: `90s`, `5m`, `2h`, `1d` (and `250ms` where a
//! delay may be short). humantime reads them; our bounds are on top (see `UNFIXED_UNITS`).

use std::fmt;
use std::time::Duration;

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A number with a minus sign, such as `-5` or `-5m`: said as such, since "invalid" would
    /// leave the reader looking for a typo.
    #[error("a duration cannot be negative ({0:?})")]
    Negative(String),
    #[error(
        "invalid duration {0:?}: use a number followed by s, m, h or d (for example 90s, 5m, 1h)"
    )]
    Invalid(String),
}

impl DurationError {
    /// The error for `text`, which did not parse.
    fn of(text: &str) -> DurationError {
        let negative = text
            .trim()
            .strip_prefix('-')
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        if negative {
            DurationError::Negative(text.to_string())
        } else {
            DurationError::Invalid(text.to_string())
        }
    }
}

/// Units whose length is not fixed: humantime reads a month as 30.44 days and a year as 365.25,
/// which no one typing `1M` or `1y` for a lease or a lag means. They are refused; everything else
/// of humantime's grammar (`90s`, `5m`, `1h 30m`, `2days`, `1.5h`, `250ms`) is accepted.
const UNFIXED_UNITS: [&str; 8] = ["M", "month", "months", "y", "yr", "yrs", "year", "years"];

/// Parses with humantime, then applies our bounds: no month or year, and nothing finer than
/// `finest` (one second, or one millisecond for retry delays). A bare `0` is zero.
fn parse(text: &str, finest: Duration) -> Result<Duration, DurationError> {
    let bad = || DurationError::of(text);
    let trimmed = text.trim();
    let unfixed = trimmed
        .split(|c: char| !c.is_alphabetic())
        .any(|unit| UNFIXED_UNITS.contains(&unit));
    if unfixed || trimmed.is_empty() {
        return Err(bad());
    }
    let d = humantime::parse_duration(trimmed).map_err(|_| bad())?;
    if d.as_nanos() % finest.as_nanos() != 0 {
        return Err(bad());
    }
    Ok(d)
}

/// Parses a duration such as `30s`, `5m`, `2h`, `1d` into whole seconds; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    parse(text, Duration::from_secs(1)).map(|d| d.as_secs())
}

/// Parses a duration that may also be given in milliseconds (`250ms`), for retry delays.
pub fn parse_duration_ms(text: &str) -> Result<Duration, DurationError> {
    parse(text, Duration::from_millis(1))
}

/// A duration in the unit it is spoken in: a default shown in `--help` as `60s` stays `60s`
/// (not `1m`). Stages declare their defaults as spans; `config::cli` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    count: u64,
    unit: SpanUnit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SpanUnit {
    Millis,
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl Span {
    pub const fn millis(count: u64) -> Span {
        Span {
            count,
            unit: SpanUnit::Millis,
        }
    }
    pub const fn seconds(count: u64) -> Span {
        Span {
            count,
            unit: SpanUnit::Seconds,
        }
    }
    pub const fn minutes(count: u64) -> Span {
        Span {
            count,
            unit: SpanUnit::Minutes,
        }
    }
    pub const fn hours(count: u64) -> Span {
        Span {
            count,
            unit: SpanUnit::Hours,
        }
    }
    pub const fn days(count: u64) -> Span {
        Span {
            count,
            unit: SpanUnit::Days,
        }
    }

    /// The span as a [`Duration`].
    pub const fn duration(self) -> Duration {
        match self.unit {
            SpanUnit::Millis => Duration::from_millis(self.count),
            SpanUnit::Seconds => Duration::from_secs(self.count),
            SpanUnit::Minutes => Duration::from_secs(self.count * 60),
            SpanUnit::Hours => Duration::from_secs(self.count * 3600),
            SpanUnit::Days => Duration::from_secs(self.count * 86_400),
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.unit {
            SpanUnit::Millis => "ms",
            SpanUnit::Seconds => "s",
            SpanUnit::Minutes => "m",
            SpanUnit::Hours => "h",
            SpanUnit::Days => "d",
        };
        write!(f, "{}{unit}", self.count)
    }
}

/// A span of seconds for people, in its two largest units: `45s`, `12m 5s`, `3h 12m`, `2d 4h`.
pub fn format_duration(seconds: u64) -> String {
    let units = [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)];
    let Some(first) = units.iter().position(|&(_, n)| seconds >= n) else {
        return "0s".to_string();
    };
    units[first..]
        .iter()
        .take(2)
        .enumerate()
        .filter_map(|(i, &(unit, n))| {
            let amount = if i == 0 {
                seconds / n
            } else {
                seconds % units[first].1 / n
            };
            (i == 0 || amount > 0).then(|| format!("{amount}{unit}"))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_people_type_them() {
        let cases = [
            ("0", 0),
            ("90s", 90),
            ("5m", 300),
            ("1h 30m", 5400),
            ("2days", 172_800),
            ("1.5h", 5400),
            (" 1d ", 86_400),
        ];
        for (text, seconds) in cases {
            assert_eq!(parse_duration(text), Ok(seconds), "{text}");
        }
        assert_eq!(parse_duration_ms("250ms"), Ok(Duration::from_millis(250)));
        assert!(
            parse_duration_ms("10us").is_err(),
            "finer than a millisecond"
        );
        assert!(parse_duration("99999999999999999999d").is_err(), "overflow");
    }

    #[test]
    fn a_span_shows_as_it_is_spoken() {
        assert_eq!(Span::seconds(60).to_string(), "60s");
        assert_eq!(Span::millis(500).to_string(), "500ms");
        assert_eq!(Span::minutes(10).duration(), Duration::from_secs(600));
        assert_eq!(Span::days(1).duration(), Duration::from_secs(86_400));
        for span in [Span::hours(2), Span::millis(500), Span::days(3)] {
            assert_eq!(parse_duration_ms(&span.to_string()), Ok(span.duration()));
        }
    }

    #[test]
    fn a_span_is_shown_in_its_two_largest_units() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (725, "12m 5s"),
            (3600, "1h"),
            (11_520, "3h 12m"),
            (187_200, "2d 4h"),
            (86_400 + 59, "1d"),
        ];
        for (seconds, shown) in cases {
            assert_eq!(format_duration(seconds), shown, "{seconds}");
        }
    }

    #[test]
    fn a_negative_duration_is_said_to_be_negative() {
        for text in ["-5", "-5m", " -250ms"] {
            assert!(
                matches!(parse_duration(text), Err(DurationError::Negative(_))),
                "{text}"
            );
            assert!(
                matches!(parse_duration_ms(text), Err(DurationError::Negative(_))),
                "{text}"
            );
        }
        for text in ["--dest", "-", "5x", "1M", "2y", "1é", "", "250ms"] {
            assert!(
                matches!(parse_duration(text), Err(DurationError::Invalid(_))),
                "{text}"
            );
        }
    }
}

//! Durations as flags and the config file give them: `90s`, `5m`, `2h`, `1d` (and `250ms` where a
//! delay may be short), parsed by characters so that no input can panic.

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

/// Splits `90s` into `(90, "s")`: one or more ASCII digits (no sign), then the rest. `None` when
/// there is no leading number or it does not fit in a `u64`. Works on characters, so any UTF-8
/// input is safe (slicing by byte count once panicked on `1é`).
pub(crate) fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    // The first `digits` bytes are ASCII, so this index is a character boundary.
    let (number, unit) = text.split_at(digits);
    Some((number.parse().ok()?, unit))
}

/// Seconds per unit of a duration: `s`, `m`, `h` or `d`.
fn unit_seconds(unit: &str) -> Option<u64> {
    match unit {
        "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    }
}

/// Parses a duration such as `30s`, `5m`, `2h`, `1d` into seconds; a bare `0` is zero (nothing
/// to say a unit of).
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    if text.trim() == "0" {
        return Ok(0);
    }
    let bad = || DurationError::of(text);
    let (n, unit) = split_number(text.trim()).ok_or_else(bad)?;
    n.checked_mul(unit_seconds(unit).ok_or_else(bad)?)
        .ok_or_else(bad)
}

/// Parses a duration that may also be given in milliseconds (`250ms`), for retry delays.
pub fn parse_duration_ms(text: &str) -> Result<std::time::Duration, DurationError> {
    let bad = || DurationError::of(text);
    let (n, unit) = split_number(text.trim()).ok_or_else(bad)?;
    if unit == "ms" {
        return Ok(std::time::Duration::from_millis(n));
    }
    n.checked_mul(unit_seconds(unit).ok_or_else(bad)?)
        .map(std::time::Duration::from_secs)
        .ok_or_else(bad)
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
        for text in ["--dest", "-", "5x"] {
            assert!(
                matches!(parse_duration(text), Err(DurationError::Invalid(_))),
                "{text}"
            );
        }
    }
}

//! Window planning: the fixed UTC grid a dataset is cut into, and the windows one run covers.
//!
//! Everything here is pure arithmetic on UTC seconds since the Unix epoch, so it is unit- and
//! property-tested without a clock. The grid is anchored at the epoch; every allowed grid step
//! divides a day or is a whole number of days, so windows never straddle midnight unless they are
//! multi-day windows (which then cover whole days).

use std::fmt;

use chrono::NaiveDate;

use crate::units::time::{day_from_index, format_compact, format_rfc3339};

const SECONDS_PER_DAY: i64 = 86_400;

/// Hour steps that divide a day: the only sub-day grids, so each day is cut the same way.
const HOUR_STEPS: [i64; 8] = [1, 2, 3, 4, 6, 8, 12, 24];

/// Windows are limited to a year: a larger unit buys nothing (one request stream per window) and
/// makes a crashed window costlier to redo.
const MAX_DAYS: i64 = 366;

/// A window grid: a step in seconds, anchored at the Unix epoch (UTC midnight).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grid {
    step: i64,
}

/// Why a grid could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("invalid window {0:?}: use 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d or Nd (N days, at most {MAX_DAYS})")]
    Grid(String),
}

impl Grid {
    /// The default grid: one window per UTC day.
    pub const DAILY: Grid = Grid {
        step: SECONDS_PER_DAY,
    };

    /// Parses `1h`…`12h` (hours dividing a day), `1d` or `Nd`. Any other text is an error, never
    /// a panic.
    pub fn parse(text: &str) -> Result<Grid, ParseError> {
        let bad = || ParseError::Grid(text.to_string());
        let (n, unit) = split_number(text.trim()).ok_or_else(bad)?;
        let n = i64::try_from(n).map_err(|_| bad())?;
        let step = match unit {
            "h" if HOUR_STEPS.contains(&n) => n * 3600,
            "d" if (1..=MAX_DAYS).contains(&n) => n * SECONDS_PER_DAY,
            _ => return Err(bad()),
        };
        Ok(Grid { step })
    }

    /// The step in seconds.
    pub fn seconds(self) -> i64 {
        self.step
    }

    /// The start of the grid cell holding `t`.
    pub fn floor(self, t: i64) -> i64 {
        t.div_euclid(self.step) * self.step
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.step % SECONDS_PER_DAY == 0 {
            write!(f, "{}d", self.step / SECONDS_PER_DAY)
        } else {
            write!(f, "{}h", self.step / 3600)
        }
    }
}

/// A half-open range of UTC seconds `[start, end)` on the grid. `end` is the grid cell's end for a
/// closed window and the run's `until` for the open one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    /// The window's name in file names and markers: its start, `YYYYMMDDTHHMMZ`. Stable across
    /// runs for the open window too (its start never moves), so reruns replace its files.
    pub fn id(&self) -> String {
        format_compact(self.start)
    }

    /// Whether `t` (UTC seconds) falls in the window.
    pub fn contains(&self, t: i64) -> bool {
        self.start <= t && t < self.end
    }

    /// The `filter[created_at][]` pair that covers the window whether Zendesk's bounds are
    /// inclusive or exclusive. Timestamps have second precision, so with exclusive bounds
    /// `(start-1, end)` holds exactly `[start, end-1]`, and with inclusive bounds it holds that plus
    /// the two neighbouring seconds, which the exact filter drops.
    pub fn query_range(&self) -> (i64, i64) {
        (self.start - 1, self.end)
    }

    /// The UTC days that hold some instant of the window, in order.
    pub fn days(&self) -> Vec<NaiveDate> {
        let first = self.start.div_euclid(SECONDS_PER_DAY);
        let last = (self.end - 1).div_euclid(SECONDS_PER_DAY);
        (first..=last).map(day_from_index).collect()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}..{}",
            format_rfc3339(self.start),
            format_rfc3339(self.end)
        )
    }
}

/// What one run covers: the closed windows (exported once, then marked done) and at most one open
/// window (cut at `until`, exported every run, never marked done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub closed: Vec<Window>,
    pub open: Option<Window>,
}

/// Cuts `[since, until)` into grid windows. `since` is rounded down to the grid, so every closed
/// window is a whole grid cell: a marker always means the whole cell is in the lake.
pub fn plan(grid: Grid, since: i64, until: i64) -> Plan {
    let mut closed = Vec::new();
    let mut start = grid.floor(since);
    while start + grid.step <= until {
        closed.push(Window {
            start,
            end: start + grid.step,
        });
        start += grid.step;
    }
    let open = (start < until).then_some(Window { start, end: until });
    Plan { closed, open }
}

/// Splits `6h` into `(6, "h")`: one or more ASCII digits (no sign), then the rest. `None` when
/// there is no leading number or it does not fit in a `u64`. Works on characters, so any UTF-8
/// input is safe (slicing by byte count once panicked on `1é`).
fn split_number(text: &str) -> Option<(u64, &str)> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    // The first `digits` bytes are ASCII, so this index is a character boundary.
    let (number, unit) = text.split_at(digits);
    Some((number.parse().ok()?, unit))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::duration::{parse_duration, parse_duration_ms};
    use crate::units::time::*;
    use proptest::prelude::*;

    const DAY: i64 = SECONDS_PER_DAY;

    #[test]
    fn grids_parse_and_print() {
        for text in ["1h", "2h", "3h", "4h", "6h", "8h", "12h", "1d", "7d", "30d"] {
            assert_eq!(Grid::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Grid::parse("24h").unwrap(), Grid::DAILY);
        for text in ["5h", "0d", "0h", "1w", "", "d", "367d", "-1d", "1.5d"] {
            assert!(Grid::parse(text).is_err(), "{text} should be refused");
        }
    }

    #[test]
    fn instants_parse_from_dates_and_rfc3339() {
        assert_eq!(parse_instant("1970-01-02").unwrap(), DAY);
        assert_eq!(
            parse_instant("2024-01-01T00:00:00Z").unwrap(),
            1_704_067_200
        );
        assert_eq!(
            parse_instant("2024-01-01T01:00:00+01:00").unwrap(),
            1_704_067_200
        );
        assert!(parse_instant("2024-01-01T00:00:00.5Z").is_err());
        assert!(parse_instant("yesterday").is_err());
        assert!(parse_instant("2024-13-01").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("90s").unwrap(), 90);
        assert_eq!(parse_duration("1d").unwrap(), DAY as u64);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(
            parse_duration_ms("250ms").unwrap(),
            std::time::Duration::from_millis(250)
        );
    }

    #[test]
    fn a_window_ending_in_a_multibyte_character_is_an_error_not_a_panic() {
        // Regression: `--window 1é` sliced the text one byte before its end, inside `é`.
        for text in ["1é", "é", "1hé", "12ĥ", "7d\u{1F600}", "\u{0660}d"] {
            assert!(
                matches!(Grid::parse(text), Err(ParseError::Grid(_))),
                "{text}"
            );
            assert!(parse_duration(text).is_err(), "{text}");
            assert!(parse_duration_ms(text).is_err(), "{text}");
        }
    }

    #[test]
    fn numbers_with_signs_or_overflow_are_refused() {
        for text in [
            "+1d",
            "-1d",
            "+5m",
            "99999999999999999999s",
            "18446744073709551615d",
        ] {
            assert!(Grid::parse(text).is_err(), "{text}");
            assert!(parse_duration(text).is_err(), "{text}");
        }
        assert!(parse_duration_ms("18446744073709551615m").is_err());
        // humantime counts in nanoseconds: this many milliseconds overflow (the flags' bounds
        // refuse anything past a week anyway).
        assert!(parse_duration_ms("18446744073709551615ms").is_err());
    }

    #[test]
    fn instants_outside_1970_to_9999_are_refused() {
        // Earlier or later times would put windows outside chrono's range, where formatting
        // a window's name panics.
        for text in [
            "1969-12-31",
            "1969-12-31T23:59:59Z",
            "+10000-01-01",
            "-0001-01-01",
        ] {
            assert!(parse_instant(text).is_err(), "{text}");
        }
        assert_eq!(parse_instant("1970-01-01").unwrap(), 0);
        assert_eq!(parse_instant("9999-12-31T23:59:59Z").unwrap(), MAX_INSTANT);
        assert!(parse_instant("9999-12-31T23:59:59-01:00").is_err());
    }

    #[test]
    fn formats_round_trip() {
        let t = 1_704_067_200 + 3_723;
        assert_eq!(format_rfc3339(t), "2024-01-01T01:02:03Z");
        assert_eq!(format_compact(t), "20240101T0102Z");
        assert_eq!(parse_compact("20240101T0102Z"), Some(t - 3));
    }

    #[test]
    fn plan_rounds_since_down_and_cuts_the_open_window_at_until() {
        let grid = Grid::parse("6h").unwrap();
        let plan = plan(grid, 7 * 3600, DAY + 3600);
        assert_eq!(plan.closed.first().unwrap().start, 6 * 3600);
        assert_eq!(plan.closed.len(), 3);
        assert_eq!(
            plan.open,
            Some(Window {
                start: DAY,
                end: DAY + 3600
            })
        );
    }

    #[test]
    fn plan_on_a_boundary_has_no_open_window() {
        let plan = plan(Grid::DAILY, 0, 2 * DAY);
        assert_eq!(plan.closed.len(), 2);
        assert_eq!(plan.open, None);
    }

    #[test]
    fn query_range_is_one_second_wider_before_and_reaches_the_end() {
        let w = Window {
            start: DAY,
            end: 2 * DAY,
        };
        assert_eq!(w.query_range(), (DAY - 1, 2 * DAY));
        assert!(w.contains(DAY) && !w.contains(2 * DAY) && !w.contains(DAY - 1));
    }

    #[test]
    fn days_of_a_multi_day_window() {
        let w = Window {
            start: 0,
            end: 3 * DAY,
        };
        let days: Vec<String> = w.days().iter().map(|d| d.to_string()).collect();
        assert_eq!(days, ["1970-01-01", "1970-01-02", "1970-01-03"]);
        let hour = Window {
            start: DAY - 3600,
            end: DAY,
        };
        assert_eq!(hour.days().len(), 1);
    }

    fn grids() -> impl Strategy<Value = Grid> {
        prop_oneof![
            proptest::sample::select(HOUR_STEPS.to_vec()).prop_map(|h| Grid { step: h * 3600 }),
            (1i64..40).prop_map(|d| Grid { step: d * DAY }),
        ]
    }

    /// Feeds `text` to every parser of this module.
    fn parse_everything(text: &str) {
        let _ = Grid::parse(text);
        let _ = parse_duration(text);
        let _ = parse_duration_ms(text);
        let _ = parse_instant(text);
        let _ = parse_compact(text);
    }

    proptest! {
        /// Windows tile the range: every instant in `[floor(since), until)` lies in exactly one
        /// window, windows are contiguous, closed ones are whole grid cells, and nothing past
        /// `until` is planned.
        #[test]
        fn windows_tile_the_range(
            grid in grids(),
            since in 0i64..4_000_000_000,
            length in 0i64..(200 * DAY),
            probes in proptest::collection::vec(0i64..(200 * DAY), 1..20),
        ) {
            let until = since + length;
            let plan = plan(grid, since, until);
            let all: Vec<Window> = plan.closed.iter().copied().chain(plan.open).collect();
            let begin = grid.floor(since);
            if until > begin {
                prop_assert_eq!(all.first().unwrap().start, begin);
                prop_assert_eq!(all.last().unwrap().end, until);
            } else {
                prop_assert!(all.is_empty());
            }
            for pair in all.windows(2) {
                prop_assert_eq!(pair[0].end, pair[1].start);
            }
            for w in &plan.closed {
                prop_assert_eq!(w.end - w.start, grid.seconds());
                prop_assert_eq!(grid.floor(w.start), w.start);
                prop_assert!(w.end <= until);
            }
            if let Some(open) = plan.open {
                prop_assert!(open.end - open.start < grid.seconds());
                prop_assert!(open.start < open.end);
            }
            for p in probes {
                let t = begin + p;
                let holders = all.iter().filter(|w| w.contains(t)).count();
                prop_assert_eq!(holders, usize::from(t < until));
            }
        }

        /// No text makes a parser panic: every one answers with a value or an error.
        #[test]
        fn parsers_never_panic(text in any::<String>()) {
            parse_everything(&text);
        }

        /// The same over texts that look almost right: digits, then any few characters.
        #[test]
        fn parsers_never_panic_on_near_misses(text in "[ +-]?[0-9]{0,22}\\PC{0,3}") {
            parse_everything(&text);
        }

        /// What a grid prints, it parses back.
        #[test]
        fn grids_round_trip(grid in grids()) {
            prop_assert_eq!(Grid::parse(&grid.to_string()), Ok(grid));
        }

        /// A number and a unit parse to the number times the unit, in both duration parsers.
        #[test]
        fn durations_round_trip(n in 0u64..1_000_000_000, unit in proptest::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86_400)])) {
            let text = format!("{n}{}", unit.0);
            prop_assert_eq!(parse_duration(&text), Ok(n * unit.1));
            prop_assert_eq!(parse_duration_ms(&text), Ok(std::time::Duration::from_secs(n * unit.1)));
            prop_assert_eq!(parse_duration_ms(&format!("{n}ms")), Ok(std::time::Duration::from_millis(n)));
        }

        /// Every instant in range prints as RFC 3339 and parses back; midnights also as dates.
        #[test]
        fn instants_round_trip(t in MIN_INSTANT..=MAX_INSTANT) {
            prop_assert_eq!(parse_instant(&format_rfc3339(t)), Ok(t));
            let midnight = t - t.rem_euclid(DAY);
            prop_assert_eq!(parse_instant(&day_of(t).to_string()), Ok(midnight));
            prop_assert_eq!(parse_compact(&format_compact(midnight)), Some(midnight));
        }

        /// Every instant of a window lies in one of its days, and its ids are unique per grid.
        #[test]
        fn window_days_cover_the_window(grid in grids(), instant in 0i64..4_000_000_000, offset in 0i64..(40 * DAY)) {
            let start = grid.floor(instant);
            let w = Window { start, end: start + grid.seconds() };
            let t = start + offset % grid.seconds();
            prop_assert!(w.days().contains(&day_of(t)));
            prop_assert_eq!(parse_compact(&w.id()), Some(start));
        }
    }
}

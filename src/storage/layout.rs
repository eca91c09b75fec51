//! Where everything goes in the lake: pure functions from (subdomain, day, window) to object
//! paths, relative to the destination's root. Writers receive these paths; they never build them.
//!
//! ```text
//! subdomain=SUB/created_date=YYYY-MM-DD/part-<window>-<n>.parquet   data, Hive-partitioned
//! _auditlake/subdomain=SUB/dataset.json                             what the dataset is (pinned)
//! _auditlake/subdomain=SUB/windows/<window>.json                    one marker per closed window
//! _auditlake/subdomain=SUB/open.json                                the open window's last export
//! ```
//! The leading underscore hides the manifest from Hive, Athena, Spark and DuckDB's globbing.

use chrono::NaiveDate;
use object_store::path::Path;

use crate::window::Window;

/// The manifest's top folder.
pub const META_DIR: &str = "_auditlake";

/// The Hive partition folder of one subdomain and day.
pub fn partition(subdomain: &str, day: NaiveDate) -> Path {
    Path::from(format!(
        "subdomain={subdomain}/created_date={}",
        day.format("%Y-%m-%d")
    ))
}

/// The file name prefix shared by every part of one window; deterministic, so a rerun of the
/// window writes the same names and replaces rather than adds.
pub fn part_prefix(window: &Window) -> String {
    format!("part-{}-", window.id())
}

/// The path of part `seq` of `window` in the partition of `day`.
pub fn part_file(subdomain: &str, day: NaiveDate, window: &Window, seq: u32) -> Path {
    partition(subdomain, day).join(format!("{}{seq}.parquet", part_prefix(window)))
}

/// Whether `path` is a part file written for `window` (by this or any earlier attempt).
pub fn is_part_of(path: &Path, window: &Window) -> bool {
    path.filename().is_some_and(|name| {
        name.strip_prefix(&part_prefix(window))
            .and_then(|rest| rest.strip_suffix(".parquet"))
            .is_some_and(|seq| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The manifest folder of one subdomain: dataset, markers and lease are per subdomain, so runs for
/// different accounts into one lake never touch each other's state.
pub fn meta(subdomain: &str) -> Path {
    Path::from(format!("{META_DIR}/subdomain={subdomain}"))
}

/// The dataset description pinned at the first run.
pub fn dataset(subdomain: &str) -> Path {
    meta(subdomain).join("dataset.json")
}

/// The folder of window markers.
pub fn markers(subdomain: &str) -> Path {
    meta(subdomain).join("windows")
}

/// The marker of a closed window: it exists exactly when the window is done.
pub fn marker(subdomain: &str, window: &Window) -> Path {
    markers(subdomain).join(format!("{}.json", window.id()))
}

/// The window id a marker path names, if it is a marker.
pub fn marker_window_id(path: &Path) -> Option<&str> {
    path.filename()?.strip_suffix(".json")
}

/// The record of the open window's latest export (for `status`; never a done marker).
pub fn open_window(subdomain: &str) -> Path {
    meta(subdomain).join("open.json")
}

/// A subdomain is a DNS label: it lands in paths and URLs, so nothing else is accepted.
pub fn valid_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn paths_follow_the_hive_layout() {
        let w = Window {
            start: 1_704_067_200,
            end: 1_704_153_600,
        };
        assert_eq!(
            part_file("acme", day("2024-01-01"), &w, 0).as_ref(),
            "subdomain=acme/created_date=2024-01-01/part-20240101T0000Z-0.parquet"
        );
        assert_eq!(
            marker("acme", &w).as_ref(),
            "_auditlake/subdomain=acme/windows/20240101T0000Z.json"
        );
        assert_eq!(
            marker_window_id(&marker("acme", &w)),
            Some("20240101T0000Z")
        );
        assert_eq!(
            dataset("acme").as_ref(),
            "_auditlake/subdomain=acme/dataset.json"
        );
    }

    #[test]
    fn part_files_are_recognised_by_window() {
        let w = Window {
            start: 0,
            end: 3600,
        };
        let other = Window {
            start: 3600,
            end: 7200,
        };
        let p = part_file("a", day("1970-01-01"), &w, 12);
        assert!(is_part_of(&p, &w));
        assert!(!is_part_of(&p, &other));
        assert!(!is_part_of(
            &Path::from("x/part-19700101T0000Z-.parquet"),
            &w
        ));
        assert!(!is_part_of(
            &Path::from("x/part-19700101T0000Z-1.parquet.tmp"),
            &w
        ));
    }

    #[test]
    fn subdomains_are_dns_labels() {
        assert!(valid_subdomain("acme"));
        assert!(valid_subdomain("acme-eu-2"));
        for bad in ["", "Acme", "a/b", "a.b", "-a", "a-", "a b", "a=b"] {
            assert!(!valid_subdomain(bad), "{bad}");
        }
    }

    proptest! {
        /// Distinct windows never share a part name, so one window's cleanup can't touch another's.
        #[test]
        fn part_names_never_collide(a in 0i64..10_000_000, b in 0i64..10_000_000, seq in 0u32..1000) {
            let wa = Window { start: a * 3600, end: a * 3600 + 3600 };
            let wb = Window { start: b * 3600, end: b * 3600 + 3600 };
            let p = part_file("s", crate::window::day_of(wa.start), &wa, seq);
            prop_assert!(is_part_of(&p, &wa));
            prop_assert_eq!(is_part_of(&p, &wb), a == b);
        }
    }
}

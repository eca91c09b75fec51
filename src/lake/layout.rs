//! Where everything goes in the lake: pure functions from (subdomain, day, window) to object
//! paths, relative to the destination's root. Writers receive these paths; they never build them.
//!
//! ```text
//! audit_logs/                                                           the table root: only Parquet, Hive-partitioned
//! audit_logs/subdomain=SUB/created_date=YYYY-MM-DD/part-<window>-<n>.parquet       data
//! audit_logs/subdomain=SUB/created_date=YYYY-MM-DD/part-<window>-g<G>-<n>.parquet  generation G (G >= 2) of a repaired window
//! audit_logs/subdomain=SUB/created_date=YYYY-MM-DD/part-<window>-d<from>-<n>.parquet an increment of the open window, from UTC second <from> (`d`: the name earlier versions gave increments)
//! audit_logs/_delta_log/<version>.json                                 the Delta log (--table-format delta)
//! _auditlake/subdomain=SUB/dataset.json                                 what the dataset is (pinned)
//! _auditlake/subdomain=SUB/windows/<window>.json                        marker of a closed window (generation 1)
//! _auditlake/subdomain=SUB/windows/<window>.g<G>.json                   marker generation G, written by a repair
//! _auditlake/subdomain=SUB/repairs/<window>.json                        a change in progress (its journal)
//! _auditlake/subdomain=SUB/open.json                                    the open windows' parts (and those whose close failed)
//! _auditlake/subdomain=SUB/last_run.json                                the last export: when, outcome, summary
//! _auditlake/subdomain=SUB/api.json                                     what runs learned of the API (created_at bounds)
//! _auditlake/subdomain=SUB/recheck.json                                 how far the recheck has confirmed the lake
//! _auditlake/subdomain=SUB/lease/<generation>.json                      the lease, one file a generation
//! _auditlake/subdomain=SUB/digests/<seq>.json                           a link of the digest chain
//! _auditlake/probes/<random>                                            a create-if-absent check, removed at once
//! ```
//! Readers point at the table root, which holds nothing but the table: the run's state
//! (`_auditlake/`) lives beside it, in the same prefix (one grant covers both), so no reader
//! meets a JSON file among the Parquet whatever its globbing or extension rules (polars refuses
//! a folder with mixed extensions; DuckDB's `**` reads every file it finds).
//!
//! auditlake 0.1 wrote the table at the destination's root (`subdomain=SUB/...` beside
//! `_auditlake/`); [`LEGACY_DATA_PREFIX`] recognises such a lake so that it is refused, never mixed.
//!
//! Generations: a committed window's files are never rewritten in place. A repair writes the
//! next generation's files under new names, then that generation's marker, then removes the old
//! files, so at every moment the highest marker names a complete set of files. Generation 1 keeps
//! the names auditlake 0.1 wrote, so existing lakes stay valid.

use chrono::NaiveDate;
use object_store::path::Path;

use crate::plan::window::Window;

/// The manifest's top folder.
pub const META_DIR: &str = "_auditlake";

/// The table root's folder under the destination: the one location readers are given.
pub const TABLE_DIR: &str = "audit_logs";

/// How a data folder of an auditlake 0.1 lake (table at the destination's root) begins.
pub const LEGACY_DATA_PREFIX: &str = "subdomain=";

/// Where auditlake 0.1 kept one subdomain's data (at the destination's root), to recognise such
/// a lake.
pub fn legacy_data(subdomain: &str) -> Path {
    Path::from(format!("{LEGACY_DATA_PREFIX}{subdomain}"))
}

/// The table root: every part file of every subdomain is below it, and nothing else is.
pub fn table() -> Path {
    Path::from(TABLE_DIR)
}

/// The Hive partition folder of one subdomain and day.
pub fn partition(subdomain: &str, day: NaiveDate) -> Path {
    data(subdomain).join(format!("created_date={}", day.format("%Y-%m-%d")))
}

/// The day a partition folder (as [`partition`] makes it) is of.
pub fn parse_partition_day(folder: &str) -> Option<NaiveDate> {
    let (_, day) = folder.rsplit_once("created_date=")?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// The data folder of one subdomain: every part file of the subdomain is below it.
pub fn data(subdomain: &str) -> Path {
    table().join(format!("subdomain={subdomain}"))
}

/// The file name prefix shared by every part of one generation of a window; deterministic, so a
/// rerun of the window writes the same names and replaces rather than adds.
fn part_prefix(window: &Window, generation: u32) -> String {
    if generation <= 1 {
        format!("part-{}-", window.id())
    } else {
        format!("part-{}-g{generation}-", window.id())
    }
}

/// The path of part `seq` of generation `generation` of `window` in the partition of `day`.
pub fn part_file(
    subdomain: &str,
    day: NaiveDate,
    window: &Window,
    generation: u32,
    seq: u32,
) -> Path {
    partition(subdomain, day).join(format!("{}{seq}.parquet", part_prefix(window, generation)))
}

/// The path of part `seq` of the open window's increment that starts at UTC second `from`, in the
/// partition of `day`. Named after where the increment starts: a run killed between uploading an
/// increment and recording it leaves parts that the next run's increment (which starts at the same
/// instant, since the state was not updated) overwrites, instead of files that would repeat
/// its records.
pub fn increment_part_file(
    subdomain: &str,
    day: NaiveDate,
    window: &Window,
    from: i64,
    seq: u32,
) -> Path {
    partition(subdomain, day).join(format!("part-{}-d{from}-{seq}.parquet", window.id()))
}

/// What a part file's name says: its window (as [`Window::id`]), generation and sequence number,
/// and for an increment of the open window, the second the increment starts at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartName<'a> {
    pub window_id: &'a str,
    pub generation: u32,
    pub seq: u32,
    pub increment_from: Option<i64>,
}

/// Parses a part file name (`part-<window>-<n>.parquet`, `part-<window>-g<G>-<n>.parquet` or
/// `part-<window>-d<from>-<n>.parquet`).
pub fn parse_part_name(name: &str) -> Option<PartName<'_>> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (head, seq) = rest.rsplit_once('-')?;
    let seq = digits(seq)?;
    let mut increment_from = None;
    let (window_id, generation) = match head.rsplit_once("-g") {
        Some((id, g)) if digits(g).is_some_and(|g| g >= 2) => (id, digits(g)?),
        _ => match head.rsplit_once("-d") {
            Some((id, from)) => {
                increment_from = Some(long_digits(from)?);
                (id, 1)
            }
            None => (head, 1),
        },
    };
    let valid_id = window_id.len() == 14 && crate::units::time::parse_compact(window_id).is_some();
    valid_id.then_some(PartName {
        window_id,
        generation,
        seq,
        increment_from,
    })
}

fn long_digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether `path` is a part file written for `window` (of any generation, by any attempt): one
/// named for a window that starts inside it. For a grid window that is the window itself; for a
/// compacted day's span (see `run/compact.rs`), every window of the day.
pub fn is_part_of(path: &Path, window: &Window) -> bool {
    path.filename()
        .and_then(parse_part_name)
        .and_then(|p| crate::units::time::parse_compact(p.window_id))
        .is_some_and(|start| window.start <= start && start < window.end)
}

/// The final name a local staging file was being written for: `object_store` writes a local
/// file as `<name>#<n>` and renames it when complete, so a process killed mid-write leaves one
/// behind, hidden from `object_store`'s own listings.
pub fn staging_target(name: &str) -> Option<&str> {
    let (target, n) = name.rsplit_once('#')?;
    digits(n).map(|_| target)
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

/// The marker of generation `generation` of a closed window: the window is done exactly when
/// a marker of it exists, and the highest generation names its files.
pub fn marker(subdomain: &str, window: &Window, generation: u32) -> Path {
    let name = if generation <= 1 {
        format!("{}.json", window.id())
    } else {
        format!("{}.g{generation}.json", window.id())
    };
    markers(subdomain).join(name)
}

/// The window start (UTC seconds) and generation a marker path names, if it is a marker.
pub fn parse_marker(path: &Path) -> Option<(i64, u32)> {
    let stem = path.filename()?.strip_suffix(".json")?;
    let (id, generation) = match stem.split_once(".g") {
        Some((id, g)) => (id, digits(g).filter(|&g| g >= 2)?),
        None => (stem, 1),
    };
    Some((crate::units::time::parse_compact(id)?, generation))
}

/// The folder of repair journals.
pub fn repairs(subdomain: &str) -> Path {
    meta(subdomain).join("repairs")
}

/// The journal of a repair of `window` in progress: written before the repair's first file,
/// removed after its last step, so a run that finds it knows the window must be converged.
pub fn repair_journal(subdomain: &str, window: &Window) -> Path {
    repairs(subdomain).join(format!("{}.json", window.id()))
}

/// The record of the open window's latest export (for `status`; never a done marker).
pub fn open_window(subdomain: &str) -> Path {
    meta(subdomain).join("open.json")
}

/// What runs have learned of the API's undocumented behaviour (whether the `created_at` bounds
/// include their second), so that the next runs count in fewer requests.
pub fn api_facts(subdomain: &str) -> Path {
    meta(subdomain).join("api.json")
}

/// The Delta log's commit of `version` (`--table-format delta`).
pub fn delta_commit(version: u64) -> Path {
    delta_log().join(format!("{version:020}.json"))
}

/// The Delta log's folder.
pub fn delta_log() -> Path {
    table().join("_delta_log")
}

/// The folder of the digest chain's links.
pub fn digests(subdomain: &str) -> Path {
    meta(subdomain).join("digests")
}

/// The digest chain's link `seq`: named by its number alone, so that create-if-absent lets
/// exactly one link follow each (the window and generation it chains are in its content).
pub fn digest(subdomain: &str, seq: u64) -> Path {
    digests(subdomain).join(format!("{seq:010}.json"))
}

/// The folder of the ledger of erasures and expiries (`ledger.rs`).
pub fn ledger(subdomain: &str) -> Path {
    meta(subdomain).join("ledger")
}

/// How far the recheck has confirmed the lake: the windows it need not count again.
pub fn recheck(subdomain: &str) -> Path {
    meta(subdomain).join("recheck.json")
}

/// The record of the last export (for `status` and monitoring; never read by a run's plan).
pub fn last_run(subdomain: &str) -> Path {
    meta(subdomain).join("last_run.json")
}

/// The folder of the lease's generations.
pub fn lease(subdomain: &str) -> Path {
    meta(subdomain).join("lease")
}

/// One generation of the lease; zero-padded so that names sort like numbers.
pub fn lease_generation(subdomain: &str, generation: u64) -> Path {
    lease(subdomain).join(format!("{generation:020}.json"))
}

/// The generation a lease path names, if it is one.
pub fn parse_lease_generation(path: &Path) -> Option<u64> {
    path.filename()?.strip_suffix(".json")?.parse().ok()
}

/// A throwaway object for checking that the store honours create-if-absent.
pub fn probe(tag: u64) -> Path {
    Path::from(format!("{META_DIR}/probes/{tag:016x}"))
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
            part_file("acme", day("2024-01-01"), &w, 1, 0).as_ref(),
            "audit_logs/subdomain=acme/created_date=2024-01-01/part-20240101T0000Z-0.parquet"
        );
        assert_eq!(
            part_file("acme", day("2024-01-01"), &w, 3, 2).as_ref(),
            "audit_logs/subdomain=acme/created_date=2024-01-01/part-20240101T0000Z-g3-2.parquet"
        );
        assert_eq!(
            marker("acme", &w, 1).as_ref(),
            "_auditlake/subdomain=acme/windows/20240101T0000Z.json"
        );
        assert_eq!(
            marker("acme", &w, 2).as_ref(),
            "_auditlake/subdomain=acme/windows/20240101T0000Z.g2.json"
        );
        assert_eq!(parse_marker(&marker("acme", &w, 1)), Some((w.start, 1)));
        assert_eq!(parse_marker(&marker("acme", &w, 7)), Some((w.start, 7)));
        assert_eq!(parse_marker(&Path::from("x/20240101T0000Z.g1.json")), None);
        assert_eq!(parse_marker(&Path::from("x/nonsense.json")), None);
        assert_eq!(
            dataset("acme").as_ref(),
            "_auditlake/subdomain=acme/dataset.json"
        );
    }

    #[test]
    fn a_delta_part_is_named_after_where_it_starts_and_is_its_windows() {
        let w = Window {
            start: 1_704_067_200,
            end: 1_704_153_600,
        };
        let p = increment_part_file("acme", day("2024-01-01"), &w, 1_704_070_800, 1);
        assert_eq!(
            p.as_ref(),
            "audit_logs/subdomain=acme/created_date=2024-01-01/part-20240101T0000Z-d1704070800-1.parquet"
        );
        assert!(is_part_of(&p, &w));
        assert_eq!(
            parse_part_name(p.filename().unwrap()),
            Some(PartName {
                window_id: "20240101T0000Z",
                generation: 1,
                seq: 1,
                increment_from: Some(1_704_070_800),
            })
        );
        assert_eq!(parse_part_name("part-20240101T0000Z-d-1.parquet"), None);
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
        let p = part_file("a", day("1970-01-01"), &w, 1, 12);
        assert!(is_part_of(&p, &w));
        let g = part_file("a", day("1970-01-01"), &w, 4, 0);
        assert!(is_part_of(&g, &w));
        assert!(!is_part_of(&g, &other));
        assert_eq!(
            parse_part_name(g.filename().unwrap()),
            Some(PartName {
                window_id: "19700101T0000Z",
                generation: 4,
                increment_from: None,
                seq: 0
            })
        );
        assert!(!is_part_of(&p, &other));
        let whole_day = Window {
            start: 0,
            end: 86_400,
        };
        let later = part_file("a", day("1970-01-01"), &other, 1, 0);
        assert!(is_part_of(&p, &whole_day) && is_part_of(&later, &whole_day));
        assert!(!is_part_of(
            &Path::from("x/part-19700102T0000Z-0.parquet"),
            &whole_day
        ));
        assert!(!is_part_of(
            &Path::from("x/part-19700101T0000Z-.parquet"),
            &w
        ));
        assert!(!is_part_of(
            &Path::from("x/part-19700101T0000Z-1.parquet.tmp"),
            &w
        ));
        assert_eq!(
            staging_target("part-19700101T0000Z-1.parquet#3"),
            Some("part-19700101T0000Z-1.parquet")
        );
        assert_eq!(staging_target("part-19700101T0000Z-1.parquet"), None);
    }

    proptest! {
        /// Distinct windows never share a part name, so one window's cleanup can't touch another's.
        #[test]
        fn part_names_never_collide(a in 0i64..10_000_000, b in 0i64..10_000_000, seq in 0u32..1000, generation in 1u32..50) {
            let wa = Window { start: a * 3600, end: a * 3600 + 3600 };
            let wb = Window { start: b * 3600, end: b * 3600 + 3600 };
            let p = part_file("s", crate::units::time::day_of(wa.start), &wa, generation, seq);
            prop_assert!(is_part_of(&p, &wa));
            prop_assert_eq!(is_part_of(&p, &wb), a == b);
            let parsed = parse_part_name(p.filename().unwrap()).unwrap();
            prop_assert_eq!((parsed.generation, parsed.seq), (generation, seq));
        }

        /// No file name, however odd, makes the name parsers panic.
        #[test]
        fn name_parsers_never_panic(name in "\\PC{0,40}") {
            let _ = parse_part_name(&name);
            let _ = staging_target(&name);
            let _ = parse_marker(&Path::from(format!("m/{}", name.replace('/', "_"))));
        }
    }
}

//! The run's metrics in Prometheus text format, for node_exporter's textfile collector (or any
//! scraper of a file): one file per subdomain, replaced atomically at the end of every run, each
//! value labelled by `subdomain`. Gauges, not counters: every value is the last run's (or a
//! timestamp), and a file is never added to across runs.

use std::io::Write;
use std::path::Path;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::run::Summary;

/// What a metrics file says besides the summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunFacts {
    /// The run's exit code.
    pub exit_code: u8,
    /// When the run finished, UTC seconds.
    pub finished_at: i64,
    /// When the last run that exited 0 finished (this one or an earlier one), UTC seconds.
    pub last_success_at: Option<i64>,
    /// The instant up to which the lake holds every record, UTC seconds (`status::complete_to`:
    /// the open window's covered-to where there is one): how fresh the lake is.
    pub fresh_to: Option<i64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    subdomain: String,
}

/// One gauge: its name, help and value of a run (none: the sample is left out).
type Gauge = (
    &'static str,
    &'static str,
    fn(&Summary, &RunFacts) -> Option<f64>,
);

/// The gauges of a run, in the order a file lists them.
const GAUGES: [Gauge; 11] = [
    (
        "last_run_records",
        "Records written by the last run",
        |s, _| Some(s.rows as f64),
    ),
    (
        "last_run_requests",
        "HTTP requests the last run made to Zendesk",
        |s, _| Some(s.requests as f64),
    ),
    (
        "last_run_retries",
        "Requests the last run retried",
        |s, _| Some(s.retries as f64),
    ),
    (
        "last_run_throttled",
        "429 answers the last run received",
        |s, _| Some(s.throttled as f64),
    ),
    (
        "last_run_windows_done",
        "Windows the last run committed",
        |s, _| Some(s.windows_done as f64),
    ),
    (
        "last_run_windows_failed",
        "Windows the last run failed (a rerun retries them)",
        |s, _| Some(s.windows_failed as f64),
    ),
    (
        "last_run_duration_seconds",
        "How long the last run took",
        |s, _| Some(s.seconds),
    ),
    (
        "last_run_exit_code",
        "The last run's exit code (0: success; see auditlake --help)",
        |_, f| Some(f64::from(f.exit_code)),
    ),
    (
        "last_run_timestamp_seconds",
        "When the last run finished, Unix time",
        |_, f| Some(f.finished_at as f64),
    ),
    (
        "last_success_timestamp_seconds",
        "When the last run that exited 0 finished, Unix time",
        |_, f| f.last_success_at.map(|at| at as f64),
    ),
    (
        "fresh_to_timestamp_seconds",
        "The instant up to which the lake holds every record (the open window counts), Unix time",
        |_, f| f.fresh_to.map(|end| end as f64),
    ),
];

/// The metrics of one finished run, as Prometheus text.
pub fn render(summary: &Summary, facts: &RunFacts) -> String {
    render_all(&[(summary, facts)])
}

/// The metrics of several runs (one per account), as Prometheus text: each gauge once, with one
/// sample per run, labelled by its subdomain.
pub fn render_all(runs: &[(&Summary, &RunFacts)]) -> String {
    let mut registry = Registry::with_prefix("auditlake");
    for (name, help, value) in GAUGES {
        let family = Family::<Labels, Gauge64>::default();
        let mut any = false;
        for (summary, facts) in runs {
            if let Some(v) = value(summary, facts) {
                let labels = Labels {
                    subdomain: summary.subdomain.clone(),
                };
                family.get_or_create(&labels).set(v);
                any = true;
            }
        }
        if any {
            registry.register(name, help, family);
        }
    }
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

/// A gauge of `f64` values.
type Gauge64 = prometheus_client::metrics::gauge::Gauge<f64, std::sync::atomic::AtomicU64>;

/// Writes `text` to `path` atomically: a temporary file in the same folder, renamed over it, so a
/// collector never reads half a file.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_becomes_labelled_gauges_in_the_text_format() {
        let summary = Summary {
            subdomain: "acme".into(),
            rows: 1234,
            requests: 17,
            throttled: 2,
            windows_done: 3,
            seconds: 1.5,
            ..Summary::default()
        };
        let facts = RunFacts {
            exit_code: 0,
            finished_at: 1_700_000_000,
            last_success_at: Some(1_700_000_000),
            fresh_to: Some(1_699_999_200),
        };
        let text = render(&summary, &facts);
        for line in [
            "# TYPE auditlake_last_run_records gauge",
            "auditlake_last_run_records{subdomain=\"acme\"} 1234.0",
            "auditlake_last_run_throttled{subdomain=\"acme\"} 2.0",
            "auditlake_last_run_duration_seconds{subdomain=\"acme\"} 1.5",
            "auditlake_last_success_timestamp_seconds{subdomain=\"acme\"} 1700000000.0",
            "auditlake_fresh_to_timestamp_seconds{subdomain=\"acme\"} 1699999200.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");

        let never = render(
            &summary,
            &RunFacts {
                exit_code: 1,
                ..facts
            },
        );
        assert!(never.contains("auditlake_last_run_exit_code{subdomain=\"acme\"} 1.0"));
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auditlake.prom");
        write_atomically(&path, "old\n").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

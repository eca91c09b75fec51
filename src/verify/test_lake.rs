//! Small lakes on local disk for verify's unit tests: real windows committed the way an export
//! commits them (dataset pinned, Parquet parts uploaded, markers created), then damaged by hand.

use std::path::PathBuf;
use std::time::Duration;

use super::{verify, Kind, Report, VerifyOptions};
use crate::lake::commit::Committer;
use crate::lake::layout;
use crate::lake::lease::Lease;
use crate::lake::manifest::{Dataset, Manifest, WindowRecord};
use crate::lake::storage::{temp_lake, Lake};
use crate::plan::window::{Grid, Window};
use crate::table::decode::decode_page;
use crate::table::route::{RoutedPart, WindowRouter};
use crate::table::schema::Schema;
use crate::units::time::format_rfc3339;
use crate::zendesk::Filters;

pub const SUBDOMAIN: &str = "acme";

/// 2024-03-01, 2024-03-02 and 2024-03-03 on the daily grid.
pub const DAY1: Window = Window {
    start: 1_709_251_200,
    end: 1_709_337_600,
};
pub const DAY2: Window = Window {
    start: DAY1.end,
    end: DAY1.end + 86_400,
};
pub const DAY3: Window = Window {
    start: DAY2.end,
    end: DAY2.end + 86_400,
};

/// A lake whose windows were committed by one export.
pub struct TestLake {
    /// Holds the lake's directory for the test's length.
    pub dir: tempfile::TempDir,
    pub lake: Lake,
    pub committer: Committer,
    /// Each committed window's marker, in the order committed.
    pub markers: Vec<WindowRecord>,
    _lease: Lease,
}

impl TestLake {
    /// A daily lake with `windows` committed, two records (one file) each.
    pub async fn with(windows: &[Window]) -> TestLake {
        let (dir, lake) = temp_lake();
        let manifest = Manifest::new(lake.clone(), SUBDOMAIN);
        manifest
            .pin(&Dataset::new(SUBDOMAIN, Grid::DAILY, &Filters::default()))
            .await
            .unwrap();
        let lease = Lease::acquire(&lake, SUBDOMAIN, Duration::from_secs(600), "test", "run-1")
            .await
            .unwrap();
        let committer = Committer::new(lake.clone(), manifest, SUBDOMAIN, lease.fence(), "run-1");
        let mut markers = Vec::new();
        for window in windows {
            let change = crate::lake::Change::append(*window, parts(*window));
            let (record, _) = committer.commit(change).await.unwrap();
            assert_eq!(record.files.len(), 1, "one file a window");
            markers.push(record);
        }
        TestLake {
            dir,
            lake,
            committer,
            markers,
            _lease: lease,
        }
    }

    /// The path of the one file the marker of the `i`th committed window names, relative to
    /// the lake.
    pub fn file(&self, i: usize) -> String {
        self.markers[i].files[0].path.clone()
    }

    /// Where a path relative to the lake is on disk.
    pub fn on_disk(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Verifies the lake (no API) with `options`.
    pub async fn verify_with(&self, options: &VerifyOptions) -> Report {
        verify(&self.lake, SUBDOMAIN, options, None).await.unwrap()
    }

    /// Verifies the lake's files and footers (the default).
    pub async fn verify(&self) -> Report {
        self.verify_with(&VerifyOptions::default()).await
    }
}

/// A window's export: two records an hour and two hours into it, with ids unique to the window.
pub fn parts(window: Window) -> Vec<RoutedPart> {
    let id = window.start / 86_400 * 10;
    let body = format!(
        r#"{{"audit_logs":[{{"id":{},"created_at":"{}","action":"login"}},{{"id":{},"created_at":"{}","action":"login"}}]}}"#,
        id + 1,
        format_rfc3339(window.start + 3_600),
        id + 2,
        format_rfc3339(window.start + 7_200),
    );
    let mut router = WindowRouter::new(window, std::env::temp_dir());
    decode_page(body.as_bytes(), Schema::get(), |row| {
        router.push(&row).unwrap()
    })
    .unwrap();
    router.finish().unwrap().parts
}

/// The kinds of a report's findings, in the report's order.
pub fn kinds(report: &Report) -> Vec<Kind> {
    report.findings.iter().map(|f| f.kind).collect()
}

/// Damaged state (issue 26's hostile bytes) is reported by `verify`, and a repair deletes nothing
/// on its account: a torn marker's window keeps its files.
#[tokio::test]
async fn a_torn_marker_is_reported_and_its_files_are_kept() {
    let t = TestLake::with(&[DAY1]).await;
    let marker = layout::marker("acme", &DAY1, 1);
    t.lake
        .write(&marker, bytes::Bytes::from_static(b"{\"wind"))
        .await
        .unwrap();
    let report = t.verify().await;
    let kinds: Vec<_> = report.findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, [Kind::CorruptManifest], "{report}");
    assert!(report.files_to_remove().is_empty(), "{report}");
    let files = t.lake.list(&layout::data("acme")).await.unwrap();
    assert_eq!(files.len(), 1);
}

/// A marker whose times are not as auditlake writes them (a huge integer, another spelling of
/// the instant) is damaged like a torn one: reported, its files kept, and nothing panics on the
/// way (a huge integer once reached the calendar's formatting).
#[tokio::test]
async fn a_marker_with_times_auditlake_does_not_write_is_reported_not_trusted() {
    for (field, odd) in [
        ("end", "99999999999999".to_string()),
        ("start", "\"2024-03-01T00:00:00+00:00\"".to_string()),
        ("completed_at", "\"n/a\"".to_string()),
    ] {
        let t = TestLake::with(&[DAY1]).await;
        let path = layout::marker("acme", &DAY1, 1);
        let bytes = t.lake.read(&path).await.unwrap().unwrap();
        let mut marker: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        marker[field] = serde_json::from_str(&odd).unwrap();
        t.lake
            .write(
                &path,
                bytes::Bytes::from(serde_json::to_vec(&marker).unwrap()),
            )
            .await
            .unwrap();
        let report = t.verify().await;
        let kinds: Vec<_> = report.findings.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, [Kind::CorruptManifest], "{field}: {report}");
        assert!(report.files_to_remove().is_empty(), "{report}");
    }
}

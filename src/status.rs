//! What the manifest says about a lake: done windows, gaps between them, the open window, rows.

use std::fmt;

use serde::Serialize;

use crate::manifest::{Dataset, Manifest, ManifestError, WindowRecord};
use crate::window::{format_rfc3339, Grid};

/// A run of consecutive windows missing between done ones.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gap {
    pub from: String,
    pub to: String,
    pub windows: u64,
}

/// The status of one subdomain in a lake.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub subdomain: String,
    pub dest: String,
    pub dataset: Option<Dataset>,
    pub done_windows: u64,
    /// Start of the first done window and end of the last one.
    pub done_from: Option<String>,
    pub done_to: Option<String>,
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
    pub gaps: Vec<Gap>,
    pub open_window: Option<WindowRecord>,
}

/// Reads the status from the manifest.
pub async fn status(
    manifest: &Manifest,
    subdomain: &str,
    dest: &str,
) -> Result<Status, ManifestError> {
    let dataset = manifest.dataset().await?;
    let markers = manifest.markers().await?;
    let open_window = manifest.open_window().await?;
    let grid = dataset
        .as_ref()
        .and_then(|d| Grid::parse(&d.window).ok())
        .unwrap_or(Grid::DAILY);
    let starts: Vec<i64> = markers.keys().copied().collect();
    Ok(Status {
        subdomain: subdomain.to_string(),
        dest: dest.to_string(),
        dataset,
        done_windows: markers.len() as u64,
        done_from: starts.first().map(|&s| format_rfc3339(s)),
        done_to: starts.last().map(|&s| format_rfc3339(s + grid.seconds())),
        rows: markers.values().map(|m| m.rows).sum(),
        files: markers.values().map(|m| m.files.len() as u64).sum(),
        bytes: markers.values().map(|m| m.bytes).sum(),
        gaps: gaps(&starts, grid),
        open_window,
    })
}

/// Missing windows between the first and last done one.
pub fn gaps(starts: &[i64], grid: Grid) -> Vec<Gap> {
    starts
        .windows(2)
        .filter(|pair| pair[1] - pair[0] > grid.seconds())
        .map(|pair| Gap {
            from: format_rfc3339(pair[0] + grid.seconds()),
            to: format_rfc3339(pair[1]),
            windows: ((pair[1] - pair[0]) / grid.seconds() - 1) as u64,
        })
        .collect()
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "lake:        {}", self.dest)?;
        writeln!(f, "subdomain:   {}", self.subdomain)?;
        let Some(dataset) = &self.dataset else {
            return writeln!(f, "no export yet for this subdomain");
        };
        let filters = if dataset.filters.is_empty() {
            "none".to_string()
        } else {
            serde_json::to_string(&dataset.filters).unwrap_or_default()
        };
        writeln!(
            f,
            "window grid: {} (schema v{}, filters: {filters})",
            dataset.window, dataset.schema_version
        )?;
        match (&self.done_from, &self.done_to) {
            (Some(from), Some(to)) => writeln!(
                f,
                "done:        {} windows, {from} .. {to}, {} rows in {} files ({} bytes)",
                self.done_windows, self.rows, self.files, self.bytes
            )?,
            _ => writeln!(f, "done:        no closed window yet")?,
        }
        if self.gaps.is_empty() {
            writeln!(f, "gaps:        none")?;
        } else {
            for gap in &self.gaps {
                writeln!(
                    f,
                    "gap:         {} .. {} ({} windows missing)",
                    gap.from, gap.to, gap.windows
                )?;
            }
        }
        match &self.open_window {
            Some(open) => writeln!(
                f,
                "open window: {} .. {}, {} rows as of {} (refreshed every run, never marked done)",
                open.start, open.end, open.rows, open.completed_at
            ),
            None => writeln!(f, "open window: none"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_group_consecutive_missing_windows() {
        let grid = Grid::parse("1h").unwrap();
        let h = 3600;
        assert!(gaps(&[0, h, 2 * h], grid).is_empty());
        assert_eq!(
            gaps(&[0, 4 * h, 5 * h, 7 * h], grid),
            [
                Gap {
                    from: format_rfc3339(h),
                    to: format_rfc3339(4 * h),
                    windows: 3
                },
                Gap {
                    from: format_rfc3339(6 * h),
                    to: format_rfc3339(7 * h),
                    windows: 1
                }
            ]
        );
    }
}

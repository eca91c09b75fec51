//! What a run did: the summary for people and schedulers, and how each window's result and
//! failure goes into it.

use super::error::WindowError;
use crate::lake::manifest::WindowRecord;
use crate::plan::window::Window;
use crate::table::route::RouteCounts;
use crate::units::time::Timestamp;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// A failed window, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub window: String,
    pub error: String,
}

/// What a run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// The run's id, as in its lease and JSON logs.
    pub run_id: String,
    pub subdomain: String,
    pub dest: String,
    pub since: String,
    pub until: String,
    pub window: String,
    /// Closed windows in the range.
    pub windows_planned: u64,
    /// Closed windows exported and committed by this run.
    pub windows_done: u64,
    /// Closed windows already done before this run (no request made for them).
    pub windows_skipped: u64,
    /// Windows (closed or open) that failed; a rerun retries them.
    pub windows_failed: u64,
    /// Whether an open window was exported (it is never marked done).
    pub open_window: Option<String>,
    /// Rows written by this run (closed and open windows).
    pub rows: u64,
    pub files: u64,
    pub bytes_written: u64,
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    pub bytes_received: u64,
    /// Rows the API returned twice within a window (dropped).
    pub duplicates_dropped: u64,
    /// Committed windows re-counted against the API (`--recheck`).
    pub windows_rechecked: u64,
    /// Committed windows replaced by a repair because the API held more records than the lake.
    pub windows_repaired: u64,
    /// Committed windows for which the API now returns fewer records than the lake holds: kept
    /// as they are (an archive does not drop records), reported for a person to look at.
    pub windows_api_fewer: u64,
    /// Closed days whose windows (a sub-day grid) this run compacted into one file per day
    /// partition.
    pub days_compacted: u64,
    /// Interrupted repairs that this run finished (see `repair`).
    pub repairs_converged: u64,
    /// Closed windows this run expired (`--retention`).
    pub windows_expired: u64,
    /// The lake's retention floor after this run: windows ending at or before it expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_floor: Option<String>,
    /// OAuth access tokens minted by this run (client credentials only; never the tokens).
    pub tokens_minted: u64,
    /// The destination failed (after the store's own retries): the run stopped scheduling.
    pub store_failed: bool,
    pub seconds: f64,
    /// A fatal error that stopped the whole run (401, 403).
    pub fatal: Option<String>,
    pub interrupted: bool,
    /// The run stopped because another run took its lease over.
    pub lease_lost: bool,
    pub failures: Vec<Failure>,
    /// Records that came after records of a later window (`sort=created_at` broken) and are
    /// missing from their committed window: listed in `failures`; `repair --against-api` mends.
    pub records_misordered: u64,
    /// Windows whose stream stopped short of its query's end (fetched in pieces, or cut at a
    /// window boundary) and that held fewer records than Zendesk's count of the window (a record
    /// served out of order past the stop, or one that became visible since), or that could not be
    /// counted quickly: each was fetched again whole, as a query of its own, before its commit.
    pub windows_refetched: u64,
    /// Fields the schema does not know that this run's rows carried (kept in `extra_json`), with
    /// the rows that carried each: schema drift.
    pub extra_fields: BTreeMap<String, u64>,
    /// When the last export that exited 0 finished (this one or an earlier one), as recorded
    /// in the lake's `last_run.json`; not part of the summary's JSON.
    #[serde(skip)]
    pub last_success_at: Option<Timestamp>,
}

/// How a run ended, most serious first: what it reports, for the top to number
/// (`cmd/exit.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// Another run took the lease, or this run's lease ran out.
    LeaseLost,
    /// The destination failed.
    DestinationFailed,
    /// Zendesk refused the credentials or access.
    AccessRefused,
    /// Some windows failed (or held records out of order); a rerun retries them.
    WindowsFailed,
    /// Everything done (or already done).
    Done,
}

impl fmt::Display for Outcome {
    /// In a word or two, for `status` and metrics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Interrupted => "interrupted",
            Outcome::LeaseLost => "lease lost",
            Outcome::DestinationFailed => "destination failed",
            Outcome::AccessRefused => "access refused",
            Outcome::WindowsFailed => "windows failed",
            Outcome::Done => "success",
        })
    }
}

impl Summary {
    /// How the run ended: the most serious of what went wrong.
    pub fn outcome(&self) -> Outcome {
        if self.interrupted {
            Outcome::Interrupted
        } else if self.lease_lost {
            Outcome::LeaseLost
        } else if self.store_failed {
            Outcome::DestinationFailed
        } else if self.fatal.is_some() {
            Outcome::AccessRefused
        } else if self.windows_failed > 0 || self.records_misordered > 0 {
            Outcome::WindowsFailed
        } else {
            Outcome::Done
        }
    }

    /// The summary as `--summary-json` writes it: its fields and the exit code the top gave
    /// its outcome.
    pub fn json(&self, exit_code: u8) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("plain data serializes");
        value["exit_code"] = exit_code.into();
        value
    }
}

/// A window's result.
pub(crate) struct Done {
    /// The window was fetched again whole before its commit (see `windows_refetched`).
    pub(crate) refetched: bool,
    pub(crate) window: Window,
    pub(crate) closed: bool,
    pub(crate) committed: bool,
    pub(crate) record: WindowRecord,
    pub(crate) counts: RouteCounts,
}

/// Schema drift for people: `risk_score (12 rows), metadata (3 rows)`.
pub fn drift(fields: &BTreeMap<String, u64>) -> String {
    fields
        .iter()
        .map(|(field, rows)| format!("{field} ({rows} rows)"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records a failed window; returns whether the run must stop (access refused, the store down,
/// the lease no longer held).
pub(crate) fn record_failure(summary: &mut Summary, w: Window, e: &WindowError) -> bool {
    summary.windows_failed += 1;
    tracing::error!(window = %w.id(), error = %e, "window failed");
    summary.failures.push(Failure {
        window: w.id(),
        error: e.to_string(),
    });
    if e.is_lease() {
        summary.lease_lost = true;
        summary.fatal = Some(e.to_string());
        return true;
    }
    if e.is_storage() {
        summary.store_failed = true;
        summary.fatal = Some(format!(
            "the destination failed; no further window was started: {e}"
        ));
        return true;
    }
    if matches!(e, WindowError::Api(api) if api.is_fatal_for_run()) {
        summary.fatal = Some(e.to_string());
        return true;
    }
    false
}

pub(crate) fn record_done(summary: &mut Summary, done: Done) {
    summary.rows += done.record.rows;
    summary.files += done.record.files.len() as u64;
    summary.bytes_written += done.record.bytes;
    summary.duplicates_dropped += done.counts.duplicates;
    for (field, rows) in &done.counts.extra_fields {
        *summary.extra_fields.entry(field.clone()).or_insert(0) += rows;
    }
    if done.counts.out_of_order > 0 {
        tracing::warn!(
            window = %done.window.id(),
            rows = done.counts.out_of_order,
            "the API returned rows out of created_at order; all were written, the files affected declare no sort order"
        );
    }
    if done.refetched {
        summary.windows_refetched += 1;
    }
    if done.closed {
        summary.windows_done += 1;
        if !done.committed {
            tracing::warn!(window = %done.window.id(), "window was committed by another run first");
        }
    } else {
        summary.open_window = Some(done.window.to_string());
    }
    tracing::info!(
        window = %done.window.id(),
        closed = done.closed,
        rows = done.record.rows,
        files = done.record.files.len(),
        bytes = done.record.bytes,
        outside = done.counts.outside,
        duplicates = done.counts.duplicates,
        "window exported"
    );
}

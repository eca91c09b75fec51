//! `verify --against-api`: the number of records Zendesk returns now for each committed window
//! in range ([`crate::zendesk::count`]), against the rows its marker records. More at Zendesk
//! means the lake misses records (late arrivals): a repair re-exports the window. Fewer means
//! Zendesk dropped some since (retention, deletions): reported, never re-exported, because an
//! archive keeps what it holds.

use std::cmp::Ordering;

use super::{Check, Finding, Kind, VerifyError};
use crate::lake::ledger::{Ledger, LedgerError};
use crate::plan::window::Window;
use crate::zendesk::count::count_window;
use crate::zendesk::Client;

impl Check<'_> {
    /// Asks Zendesk how many records each window in range holds now.
    pub(super) async fn count_at_api(&mut self, client: &Client) -> Result<(), VerifyError> {
        // Below the retention floor, records went on purpose (`auditlake expire`): windows whose
        // marker is a tombstone, and those committed empty, which expire leaves as they are.
        let floor = match Ledger::read(self.lake, self.subdomain).await {
            Ok(ledger) => ledger.floor(),
            Err(LedgerError::Storage(e)) => return Err(e.into()),
            Err(e) => {
                self.found(Kind::CorruptManifest, None, None, e.to_string());
                None
            }
        };
        for i in 0..self.windows.len() {
            let window = Window {
                start: self.windows[i].start,
                end: self.windows[i].end,
            };
            // An expired window's records went on purpose (`auditlake expire`).
            let expired = self.markers.get(&window.start).is_some_and(|m| m.expired);
            if expired || floor.is_some_and(|f| window.end <= f) {
                continue;
            }
            let count = count_window(client, &self.filters, &window).await?;
            let lake_rows = self.windows[i].lake_rows;
            self.windows[i].api_rows = Some(count);
            self.findings
                .extend(compare_counts(&window, lake_rows, count));
        }
        Ok(())
    }
}

/// What Zendesk's count of `window` says about the lake's rows: nothing when they agree.
fn compare_counts(window: &Window, lake_rows: u64, api_rows: u64) -> Option<Finding> {
    let kind = match api_rows.cmp(&lake_rows) {
        Ordering::Equal => return None,
        Ordering::Greater => Kind::ApiMore,
        Ordering::Less => Kind::ApiFewer,
    };
    Some(Finding {
        kind,
        window: Some(window.id()),
        path: None,
        detail: format!("Zendesk returns {api_rows} records, the lake holds {lake_rows}"),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::test_lake::{DAY1, DAY2};
    use super::super::{Report, WindowCheck};
    use super::*;

    /// A report of `findings` about DAY1 and DAY2, both checked.
    fn report(findings: Vec<Finding>) -> Report {
        let check = |w: &Window| WindowCheck {
            window: w.id(),
            start: w.start,
            end: w.end,
            generation: 1,
            lake_rows: 10,
            api_rows: None,
            problems: Vec::new(),
        };
        Report {
            subdomain: "acme".into(),
            dest: "test".into(),
            deep: false,
            against_api: true,
            windows_checked: 2,
            files_checked: 2,
            rows: 20,
            windows: vec![check(&DAY1), check(&DAY2)],
            findings,
            chain_links: None,
            retained: None,
        }
    }

    #[test]
    fn zendesk_returning_as_many_records_as_the_lake_holds_is_no_finding() {
        assert_eq!(compare_counts(&DAY1, 10, 10), None);
        assert_eq!(compare_counts(&DAY1, 0, 0), None);
    }

    #[test]
    fn zendesk_returning_more_records_than_the_lake_holds_is_api_more_and_re_exported() {
        let finding = compare_counts(&DAY1, 10, 11).unwrap();
        assert_eq!(finding.kind, Kind::ApiMore);
        assert_eq!(finding.window.as_deref(), Some(DAY1.id().as_str()));
        assert_eq!(finding.path, None);
        assert_eq!(
            finding.detail,
            "Zendesk returns 11 records, the lake holds 10"
        );
        assert!(finding.kind.needs_reexport());
        let report = report(vec![finding]);
        assert_eq!(report.windows_to_reexport(), BTreeSet::from([DAY1.start]));
        assert!(report.files_to_remove().is_empty());
    }

    #[test]
    fn zendesk_returning_fewer_records_than_the_lake_holds_is_reported_not_re_exported() {
        let finding = compare_counts(&DAY2, 10, 9).unwrap();
        assert_eq!(finding.kind, Kind::ApiFewer);
        assert_eq!(finding.window.as_deref(), Some(DAY2.id().as_str()));
        assert!(!finding.kind.needs_reexport());
        let report = report(vec![finding]);
        assert!(!report.is_clean(), "reported");
        assert!(report.windows_to_reexport().is_empty(), "not re-exported");
        assert!(report.files_to_remove().is_empty());
    }

    #[test]
    fn only_the_window_zendesk_grew_is_re_exported() {
        let findings = [compare_counts(&DAY1, 10, 12), compare_counts(&DAY2, 10, 8)];
        let report = report(findings.into_iter().flatten().collect());
        assert_eq!(report.findings.len(), 2);
        assert_eq!(report.windows_to_reexport(), BTreeSet::from([DAY1.start]));
    }
}

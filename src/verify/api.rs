//! `verify --against-api`: the number of records Zendesk returns now for each committed window
//! in range ([`crate::zendesk::count`]), against the rows its marker records. More at Zendesk
//! means the lake misses records (late arrivals): a repair re-exports the window. Fewer means
//! Zendesk dropped some since (retention, deletions): reported, never re-exported, because an
//! archive keeps what it holds.

use std::cmp::Ordering;

use super::{Check, Finding, Kind, VerifyError};
use crate::plan::window::Window;
use crate::zendesk::count::count_window;
use crate::zendesk::Client;

impl Check<'_> {
    /// Asks Zendesk how many records each window in range holds now.
    pub(super) async fn count_at_api(&mut self, client: &Client) -> Result<(), VerifyError> {
        for i in 0..self.windows.len() {
            let window = Window {
                start: self.windows[i].start,
                end: self.windows[i].end,
            };
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

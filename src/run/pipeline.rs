//! The page pipeline: pages fetched in order, handed in batches to a blocking thread that
//! decodes, routes and encodes them, bounded so that network and CPU overlap with little memory
//! ([`fetch_pages`]). A range stream (`stream.rs`) watches it to split and stop; a window fetched
//! alone (the open window, every window with offset pagination, a refetch, a repair) reads it to
//! its query's end, and is committed here.

use super::error::WindowError;
use super::summary::Done;
use super::Context;
use crate::lake::change::{Change, ChangeKind};
use crate::lake::storage::Created;
use crate::plan::window::Window;
use crate::table::decode::decode_page;
use crate::table::route::{Staged, WindowRouter};
use crate::table::schema::Schema;
use crate::zendesk::{pagination, ApiError, Page, PageRequest, Pagination};
use futures::StreamExt;
use std::pin::pin;
use tokio::sync::mpsc;

/// Pages handed to the encoder thread at a time: waking a thread costs system time (a futex
/// wake and a context switch), so it is woken once per handoff rather than once per page.
pub(crate) const PAGES_PER_HANDOFF: usize = 4;

/// Handoffs fetched ahead of decoding, per window: lets the network and the decoder overlap while
/// bounding the memory of pages in flight (each about 50 KB).
pub(crate) const PIPELINE_DEPTH: usize = 2;

/// Times a window restarts from its first page after the API refuses a cursor (an expired or
/// unknown cursor; their lifetime is undocumented).
pub(crate) const MAX_WINDOW_RESTARTS: u32 = 3;

/// Exports a closed window alone (offset pagination asks each window as a query of its own)
/// and commits it, restarting it from the first page if the API refuses a cursor.
pub(crate) async fn export_window(
    context: &Context<'_>,
    window: Window,
) -> Result<Done, WindowError> {
    let staged = fetch_window(context, window).await?;
    commit_closed(context, window, staged, Fetched::Once).await
}

/// How a window's records were fetched before its commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fetched {
    /// By the query that first asked for them.
    Once,
    /// Again, whole, as a query of its own: its first fetch fell short of Zendesk's count, or
    /// could not be counted (see `windows_refetched`).
    AgainWhole,
}

/// Commits a closed window's parts (its first export) and says what became of it.
pub(crate) async fn commit_closed(
    context: &Context<'_>,
    window: Window,
    staged: Staged,
    fetched: Fetched,
) -> Result<Done, WindowError> {
    commit_as(context, window, staged, fetched, ChangeKind::Append).await
}

/// [`commit_closed`], saying what the window's files are to the records the table held of it.
pub(crate) async fn commit_as(
    context: &Context<'_>,
    window: Window,
    Staged { parts, counts }: Staged,
    fetched: Fetched,
    kind: ChangeKind,
) -> Result<Done, WindowError> {
    let change = match kind {
        ChangeKind::Append => Change::append(window, parts),
        _ => Change::close(window, parts, kind),
    };
    let (record, created) = context.committer.commit(change).await?;
    Ok(Done {
        window,
        refetched: fetched == Fetched::AgainWhole,
        closed: true,
        committed: created == Created::Created,
        record,
        counts,
    })
}

/// Fetches and encodes a window's records into temporary part files, restarting from the first
/// page if the API refuses a cursor.
pub(crate) async fn fetch_window(
    context: &Context<'_>,
    window: Window,
) -> Result<Staged, WindowError> {
    let grid = context.config.grid.seconds();
    if context.config.pagination != Pagination::Offset || window.end - window.start <= grid {
        return fetch_piece(context, window, window).await;
    }
    // A compacted day with offset pagination: one query could hold more records than the
    // offset form pages through, its grid windows each fewer (as they were exported). The
    // pieces' parts are numbered on across the day.
    let mut staged = Staged::default();
    for start in (window.start..window.end).step_by(grid as usize) {
        let piece = Window {
            start,
            end: (start + grid).min(window.end),
        };
        let more = fetch_piece(context, piece, window).await?;
        for mut part in more.parts {
            part.seq = staged.parts.iter().filter(|p| p.day == part.day).count() as u32;
            staged.parts.push(part);
        }
        staged.counts.add(more.counts);
    }
    Ok(staged)
}

/// Fetches and encodes the records of the seconds `piece` of `window` (files labelled with the
/// window) into temporary part files, restarting from the piece's first page if the API refuses
/// a cursor.
pub(crate) async fn fetch_piece(
    context: &Context<'_>,
    piece: Window,
    window: Window,
) -> Result<Staged, WindowError> {
    let mut restarts = 0;
    loop {
        match fetch_and_encode(context, piece, window).await {
            Err(WindowError::Api(ApiError::CursorRefused { url, .. }))
                if restarts < MAX_WINDOW_RESTARTS =>
            {
                restarts += 1;
                tracing::warn!(window = %window.id(), url = %url, restarts, "cursor refused; restarting the window");
            }
            other => return other,
        }
    }
}

/// Pages for the encoder thread, then whether the query ended (every page read).
pub(crate) enum Handoff {
    Pages(Vec<Page>),
    Complete,
}

/// What a page stream tells the one who reads it, and what it asks of them: the range path
/// watches every page (splits start past what is fetched) and may stop the stream early; a
/// window fetched alone reads its query to the end.
pub(crate) trait PageWatch {
    /// Whether the stream is to stop before its next page.
    fn stopped(&self) -> bool {
        false
    }
    /// Sees each page before the encoder does; whether it is the stream's last.
    fn fetched(&self, _page: &Page) -> bool {
        false
    }
    /// The query has no more pages.
    fn ended(&self) {}
}

/// A window fetched alone: every page of its query, to the end.
struct Alone;

impl PageWatch for Alone {}

/// The one page pipeline of every fetch: fetches the query's pages in order and hands them to
/// the encoder thread in batches of [`PAGES_PER_HANDOFF`] (with [`Handoff::Complete`] once the
/// query ends), until the query ends, `watch` says a page is the last or stops the stream, or
/// the encoder stops. `page_tx` is owned: the encoder sees the channel close when the fetch
/// ends, however it ends.
pub(crate) async fn fetch_pages(
    context: &Context<'_>,
    request: PageRequest,
    page_tx: mpsc::Sender<Handoff>,
    watch: &impl PageWatch,
) -> Result<(), ApiError> {
    let mut pages = pin!(pagination::pages(context.client.clone(), request));
    let mut handoff = Vec::with_capacity(PAGES_PER_HANDOFF);
    while !watch.stopped() {
        let Some(page) = pages.next().await else {
            watch.ended();
            if !handoff.is_empty() && page_tx.send(Handoff::Pages(handoff)).await.is_err() {
                return Ok(());
            }
            let _ = page_tx.send(Handoff::Complete).await;
            return Ok(());
        };
        let page = page?;
        context.count_page(&page);
        let last = watch.fetched(&page);
        handoff.push(page);
        if handoff.len() == PAGES_PER_HANDOFF || last {
            let full = std::mem::replace(&mut handoff, Vec::with_capacity(PAGES_PER_HANDOFF));
            if page_tx.send(Handoff::Pages(full)).await.is_err() || last {
                // The encoder stopped (its outcome is the one to report), or has what it needs.
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Fetches the pages of the seconds `piece` of `window` and, on a blocking thread, decodes and
/// writes them to temporary Parquet files.
async fn fetch_and_encode(
    context: &Context<'_>,
    piece: Window,
    window: Window,
) -> Result<Staged, WindowError> {
    let (tx, mut rx) = mpsc::channel::<Handoff>(PIPELINE_DEPTH);
    let router = WindowRouter::piece(piece, window, context.config.tmp_dir.clone());
    let encoder = tokio::task::spawn_blocking(move || -> Result<_, WindowError> {
        let mut router = router;
        while let Some(Handoff::Pages(pages)) = rx.blocking_recv() {
            for page in pages {
                let mut write_error = None;
                decode_page(&page.body, Schema::get(), |row| {
                    if write_error.is_none() {
                        write_error = router.push(&row).err();
                    }
                })?;
                if let Some(e) = write_error {
                    return Err(e.into());
                }
            }
        }
        Ok(router.finish()?)
    });

    let request = PageRequest {
        filters: context.config.filters.clone(),
        created_at: Some(piece.query_range()),
        pagination: context.config.pagination,
    };
    let fetched = fetch_pages(context, request, tx, &Alone).await;
    let encoded = encoder.await.expect("the encoder thread does not panic");
    fetched?;
    encoded
}

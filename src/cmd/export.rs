//! `export` and `demo`: a run, its summary for people and, as JSON, for schedulers.

use std::path::PathBuf;

#[cfg(feature = "simulator")]
use super::demo as sim_demo;
use crate::cmd::exit;
use crate::config;
#[cfg(feature = "simulator")]
use crate::config::cli::DemoArgs;
use crate::config::cli::ExportArgs;
use crate::lake::storage::{Lake, StoreOptions};
use crate::metrics;
use crate::plan::window::Grid;
use crate::run::{self, ExportConfig, Summary};
use crate::Error;

use super::{cancel_on_signals, logging, progress, Context, ProgressBar};

/// `auditlake export`.
pub async fn export(args: &ExportArgs, cx: &Context) -> Result<u8, Error> {
    let now = chrono::Utc::now().timestamp();
    let mut config = config::export(args, &cx.file, &cx.env, now)?;
    config.run_id = cx.run_id.clone();
    let exported = export_with(config, cx, cancel_on_signals()).await?;
    if let Some(path) = &exported.summary_json {
        write_summary_json(path, &exported.summary)?;
    }
    if let Some(path) = &exported.metrics_file {
        metrics::write_atomically(path, &metrics::render(&exported.summary, &exported.facts))
            .map_err(|source| Error::MetricsFile {
                path: path.clone(),
                source,
            })?;
    }
    report(&exported, cx);
    Ok(exported.code)
}

/// A finished export: its summary and exit code, what its metrics say besides, and where its
/// summary and metrics go.
pub(super) struct Exported {
    pub(super) summary: Summary,
    pub(super) code: u8,
    pub(super) facts: metrics::RunFacts,
    pub(super) summary_json: Option<PathBuf>,
    pub(super) metrics_file: Option<PathBuf>,
}

/// Runs the export `config` says, with a progress bar where the context shows one, until done or
/// `cancel` fires.
pub(super) async fn export_with(
    config: ExportConfig,
    cx: &Context,
    cancel: tokio_util::sync::CancellationToken,
) -> Result<Exported, Error> {
    let summary_json = config.summary_json.clone();
    let metrics_file = config.metrics_file.clone();
    let (dest, store, grid) = (config.dest.clone(), config.store.clone(), config.grid);
    let bar = cx.show_progress.then(ProgressBar::new);
    let summary = run::export(config, cancel, progress(&bar)).await?;
    if let Some(bar) = &bar {
        bar.0.finish_and_clear();
    }
    let code = summary.exit_code();
    let facts = after_run(&dest, &store, grid, &summary, code).await;
    Ok(Exported {
        summary,
        code,
        facts,
        summary_json,
        metrics_file,
    })
}

/// Says how an export ended: one JSON line with the summary, or the summary for people.
pub(super) fn report(exported: &Exported, cx: &Context) {
    let (summary, code) = (&exported.summary, exported.code);
    if cx.json_logs {
        let fields = serde_json::Map::from_iter([("summary".to_string(), summary.json(code))]);
        logging::json_event(
            if code == 0 { "INFO" } else { "WARN" },
            "run finished",
            fields,
        );
    } else if !cx.quiet {
        eprint!("{}", human_summary(summary));
    }
}

/// `auditlake demo`.
#[cfg(feature = "simulator")]
pub async fn demo(args: &DemoArgs, cx: &Context) -> Result<u8, Error> {
    let bar = cx.show_progress.then(ProgressBar::new);
    let outcome = sim_demo::run(args, cancel_on_signals(), progress(&bar)).await?;
    if let Some(bar) = &bar {
        bar.0.finish_and_clear();
    }
    eprint!("{}", human_summary(&outcome.summary));
    println!("{}", outcome.instructions);
    Ok(outcome.summary.exit_code())
}

/// What the run's metrics need of the lake, besides the summary: when the last good run finished
/// (as the run recorded it, under its lease) and how fresh the lake is. Best effort: the run's
/// outcome stands whether or not the lake could be read.
async fn after_run(
    dest: &str,
    store: &StoreOptions,
    grid: Grid,
    summary: &Summary,
    code: u8,
) -> metrics::RunFacts {
    let finished = chrono::Utc::now().timestamp();
    let mut facts = metrics::RunFacts {
        exit_code: code,
        finished_at: finished,
        last_success_at: (code == exit::OK).then_some(finished),
        fresh_to: None,
    };
    if let Some(at) = summary.last_success_at {
        facts.last_success_at = Some(at.seconds());
    }
    // A destination that failed already cost the run its retries: it is not asked again (the
    // run must end within about a minute; metrics then lack the lake's figures).
    if summary.store_failed {
        return facts;
    }
    let lake = match Lake::open(dest, store) {
        Ok(lake) => lake,
        Err(error) => {
            tracing::warn!(%error, "could not open the lake to read its freshness");
            return facts;
        }
    };
    match crate::status::freshness(&lake, &summary.subdomain, grid).await {
        Ok(fresh_to) => facts.fresh_to = fresh_to,
        Err(error) => tracing::warn!(%error, "could not read how fresh the lake is"),
    }
    facts
}

fn write_summary_json(path: &std::path::Path, summary: &Summary) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(&summary.json(summary.exit_code()))
        .expect("plain data serializes");
    std::fs::write(path, text + "\n").map_err(|source| Error::SummaryFile {
        path: path.to_path_buf(),
        source,
    })
}

pub fn human_summary(s: &Summary) -> String {
    let mut text = format!(
        "auditlake: {} -> {} ({} .. {}, {} windows)\n  windows: {} done, {} already done, {} failed",
        s.subdomain,
        s.dest,
        s.since,
        s.until,
        s.window,
        s.windows_done,
        s.windows_skipped,
        s.windows_failed
    );
    if let Some(open) = &s.open_window {
        text.push_str(&format!("; open window {open} refreshed"));
    }
    text.push_str(&format!(
        "\n  rows: {} in {} files ({:.1} MB)\n  requests: {} (retries {}, 429s {}), {:.1} MB received, {:.1} s\n",
        s.rows,
        s.files,
        s.bytes_written as f64 / 1e6,
        s.requests,
        s.retries,
        s.throttled,
        s.bytes_received as f64 / 1e6,
        s.seconds
    ));
    if s.tokens_minted > 0 {
        text.push_str(&format!(
            "  OAuth access tokens minted: {}\n",
            s.tokens_minted
        ));
    }
    if s.windows_rechecked > 0 || s.repairs_converged > 0 {
        text.push_str(&format!(
            "  recheck: {} windows re-counted, {} repaired, {} with fewer records at Zendesk than in the lake; {} interrupted repairs finished\n",
            s.windows_rechecked, s.windows_repaired, s.windows_api_fewer, s.repairs_converged
        ));
    }
    if s.windows_refetched > 0 {
        text.push_str(&format!(
            "  refetched whole: {} windows whose stream stopped short held fewer records than Zendesk counts (or could not be counted quickly)\n",
            s.windows_refetched
        ));
    }
    if !s.extra_fields.is_empty() {
        text.push_str(&format!(
            "  schema drift: fields kept in extra_json: {}\n",
            run::drift(&s.extra_fields)
        ));
    }
    if let Some(fatal) = &s.fatal {
        text.push_str(&format!("  stopped: {fatal}\n"));
    }
    for failure in &s.failures {
        text.push_str(&format!("  failed {}: {}\n", failure.window, failure.error));
    }
    if s.interrupted {
        text.push_str(
            "  interrupted: unfinished windows were not marked done; rerun to finish them\n",
        );
    }
    text
}

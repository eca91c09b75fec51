//! `export` and `demo`: a run, its summary for people and, as JSON, for schedulers.

#[cfg(feature = "simulator")]
use auditlake::cli::DemoArgs;
use auditlake::cli::ExportArgs;
use auditlake::config;
#[cfg(feature = "simulator")]
use auditlake::demo as sim_demo;
use auditlake::runner::{self, Summary};
use auditlake::Error;

use super::{cancel_on_signals, progress, Context, ProgressBar};

/// `auditlake export`.
pub async fn export(args: &ExportArgs, cx: &Context) -> Result<u8, Error> {
    let now = chrono::Utc::now().timestamp();
    let config = config::export(args, &cx.file, &cx.env, now)?;
    let summary_json = config.summary_json.clone();
    let bar = cx.show_progress.then(ProgressBar::new);
    let summary = runner::export(config, cancel_on_signals(), progress(&bar)).await?;
    if let Some(bar) = &bar {
        bar.0.finish_and_clear();
    }
    let code = summary.exit_code();
    if let Some(path) = summary_json {
        write_summary_json(&path, &summary, code)?;
    }
    if !cx.quiet {
        eprint!("{}", human_summary(&summary));
    }
    Ok(code)
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

fn write_summary_json(path: &std::path::Path, summary: &Summary, code: u8) -> Result<(), Error> {
    let mut value = serde_json::to_value(summary).expect("plain data serializes");
    value["exit_code"] = code.into();
    let text = serde_json::to_string_pretty(&value).expect("plain data serializes");
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

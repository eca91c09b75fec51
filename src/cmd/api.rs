//! The API's own operations, for a person: `show`, `list`, `request-export`.

use std::io::Write;

use crate::cmd::exit;
use crate::config;
use crate::config::cli::{ListArgs, RequestExportArgs, ShowArgs};
use crate::ops::{self, ExportRequested};
use crate::zendesk::ApiError;
use crate::Error;

use super::{client, Context};

/// `auditlake show ID`: one record, pretty JSON on stdout.
pub async fn show(args: &ShowArgs, cx: &Context) -> Result<u8, Error> {
    let client = client(&args.api, cx).await?;
    let record = ops::show(&client, args.id).await.map_err(|e| match e {
        ApiError::NotFound { .. } => Error::NotFound(args.id),
        other => other.into(),
    })?;
    let pretty = serde_json::from_str::<serde_json::Value>(&record)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(record);
    let _ = writeln!(std::io::stdout().lock(), "{pretty}");
    Ok(exit::OK)
}

/// `auditlake list`: JSON lines on stdout.
pub async fn list(args: &ListArgs, cx: &Context) -> Result<u8, Error> {
    let client = client(&args.api, cx).await?;
    let request = config::list(args, chrono::Utc::now().timestamp())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let listed = ops::list(&client, &request, |record| {
        let _ = writeln!(out, "{record}");
    })
    .await?;
    let _ = out.flush();
    tracing::info!(records = listed, "listed");
    Ok(exit::OK)
}

/// `auditlake request-export`.
pub async fn request_export(args: &RequestExportArgs, cx: &Context) -> Result<u8, Error> {
    let client = client(&args.api, cx).await?;
    let filters = config::filters(&args.filters)?;
    match ops::request_export(&client, &filters).await? {
        ExportRequested::Accepted {
            remaining,
            resets_in,
        } => {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "export requested (202 Accepted): Zendesk prepares a CSV of the matching audit logs and delivers it on its side (to the requesting admin); no job id is returned."
            );
            let _ = writeln!(
                out,
                "limit: 1 export request per minute per account (remaining {}, resets in {})",
                remaining.map_or("?".to_string(), |r| r.to_string()),
                resets_in.map_or("?".to_string(), |d| format!("{}s", d.as_secs()))
            );
            Ok(exit::OK)
        }
        ExportRequested::Throttled { retry_after } => Err(Error::ExportThrottled {
            retry_in: retry_after.map_or("a minute".to_string(), |d| {
                format!("{} s", d.as_secs().max(1))
            }),
        }),
    }
}

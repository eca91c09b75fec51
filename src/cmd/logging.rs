//! Logs on stderr: text for people, or, with `--log-format json`, one JSON object per line for
//! log collectors — every line with the run's `run_id` and `subdomain`, the run's summary and a
//! failure included, and nothing else on stderr.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::{self, Env};

/// What every JSON line carries, set once when logging starts.
struct Labels {
    run_id: String,
    subdomain: Option<String>,
}

static JSON: OnceLock<Labels> = OnceLock::new();

tokio::task_local! {
    /// The account a task runs for, when the process runs many (`cmd/accounts.rs`): the
    /// `subdomain` of its JSON log lines.
    pub(crate) static ACCOUNT: String;
}

/// Starts logging at `default` level unless `--log-level` (or its variable) says otherwise; with
/// `json`, every line is a JSON object carrying `run_id` and `subdomain`.
pub fn init(
    level: Option<&str>,
    default: &str,
    json: bool,
    run_id: &str,
    subdomain: Option<&str>,
    env: &Env,
) {
    let level = config::log_level(level, env);
    let mut filter = level.filter.unwrap_or_else(|| default.to_string());
    // The Delta kernel logs every snapshot it builds at `info`: its own name turns it back on,
    // and a quieter level than `warn` is left as asked.
    let quiet = filter
        .split(',')
        .filter(|directive| !directive.contains('='))
        .any(|level| ["error", "off"].contains(&level.trim().to_ascii_lowercase().as_str()));
    if !quiet && !filter.contains("delta_kernel") {
        filter.push_str(",delta_kernel=warn");
    }
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if json {
        let _ = JSON.set(Labels {
            run_id: run_id.to_string(),
            subdomain: subdomain.map(str::to_string),
        });
        builder.event_format(JsonLines).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
    if level.from_deprecated_env {
        tracing::warn!("AUDITLAKE_LOG is deprecated: use AUDITLAKE_LOG_LEVEL");
    }
}

/// Whether logs are JSON lines.
pub fn is_json() -> bool {
    JSON.get().is_some()
}

/// Says a failure on stderr, the one way every command does: a JSON line with its exit code
/// (and `fields`) when logs are JSON, else `auditlake: error: MESSAGE`.
pub fn error_line(message: &str, exit_code: u8, fields: Map<String, Value>) {
    if is_json() {
        let mut all = Map::from_iter([("exit_code".to_string(), exit_code.into())]);
        all.extend(fields);
        json_event("ERROR", message, all);
    } else {
        eprintln!("auditlake: error: {message}");
    }
}

/// Writes one JSON event that is not a `tracing` event (the summary, a failure): the same
/// labels as every other line, then `fields`.
pub fn json_event(level: &str, message: &str, fields: Map<String, Value>) {
    let mut line = head(level, message);
    line.extend(fields);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", Value::Object(line));
}

/// The fields every JSON line starts with.
fn head(level: &str, message: &str) -> Map<String, Value> {
    let labels = JSON.get();
    let mut line = Map::new();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    line.insert("timestamp".into(), now.into());
    line.insert("level".into(), level.into());
    line.insert("message".into(), message.into());
    line.insert("run_id".into(), labels.map(|l| l.run_id.clone()).into());
    // The account this task runs for, when the process runs many (`cmd/accounts.rs`).
    let account = ACCOUNT.try_with(Clone::clone).ok();
    line.insert(
        "subdomain".into(),
        account
            .or_else(|| labels.and_then(|l| l.subdomain.clone()))
            .into(),
    );
    line
}

/// `tracing`'s events as JSON lines with the run's labels (tracing-subscriber's own JSON format
/// has no fields common to every line outside spans, and spawned tasks leave spans behind).
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let message = match fields.0.remove("message") {
            Some(Value::String(text)) => text,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let mut line = head(event.metadata().level().as_str(), &message);
        // An event's own field never replaces a label.
        for (key, value) in fields.0 {
            line.entry(key).or_insert(value);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// An event's fields as JSON values (numbers and booleans stay typed).
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

//! `auditlake demo`, and `auditlake simulate`'s flags read into the simulator's options (the
//! simulator itself is the zendesk-sim crate; both commands need the `simulator` feature).
//!
//! The demo runs the real export, unchanged, against the built-in simulator on 127.0.0.1, and
//! leaves a lake that DuckDB, pyarrow or Athena can read.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use zendesk_sim::{Bounds, OffsetSort, SimConfig, SimOptions, Simulator};

use crate::config::cli::{ApiArgs, BoundsArg, DemoArgs, ExportArgs, SimulateArgs};
use crate::config::{self, Env, FileConfig};
use crate::lake::layout;
use crate::lake::storage::{Lake, StoreOptions};
use crate::run::{self, Progress, RunError, Summary};
use crate::units::duration::parse_duration_ms;
use crate::units::time::{format_rfc3339, parse_instant, utc};

/// The demo's subdomain: only this subdomain's files are replaced when the demo runs again.
pub const DEMO_SUBDOMAIN: &str = "demo";

/// The demo's OAuth client and the lifetime of the tokens its simulator mints (Zendesk's shortest):
/// the demo authenticates like a scheduled run should, with the client-credentials grant.
const DEMO_CLIENT_ID: &str = "auditlake-demo";
const DEMO_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// The demo simulates an Enterprise Plus account (2,500 requests per minute), the fastest real plan.
const DEMO_RATE_LIMIT: u32 = 2_500;

/// The result of a demo run.
pub struct DemoOutcome {
    pub summary: Summary,
    /// What to try next: a DuckDB query over the lake.
    pub instructions: String,
}

/// Simulates an account of `args.records` records over the last `args.days` days, exports it into
/// `args.dest`, and stops the simulator.
pub async fn run(
    args: &DemoArgs,
    cancel: CancellationToken,
    progress: &dyn Progress,
) -> Result<DemoOutcome, RunError> {
    let now = Utc::now().timestamp();
    let start = (now - i64::from(args.days.max(1)) * 86_400).div_euclid(86_400) * 86_400;
    let lake = Lake::open(&args.dest, &StoreOptions::default())?;
    // The synthetic account is drawn anew for each run, so an earlier demo's files would not match
    // it: start the demo subdomain afresh (other subdomains in the same lake are left alone).
    for prefix in [layout::data(DEMO_SUBDOMAIN), layout::meta(DEMO_SUBDOMAIN)] {
        for path in lake.list(&prefix).await? {
            lake.delete(&path).await?;
        }
    }
    let mut sim_config = SimConfig::new(args.records, utc(start), utc(now));
    sim_config.rate_limit_per_minute = DEMO_RATE_LIMIT;
    sim_config.extra_fields = true;
    // A fresh secret per run: the demo's simulator accepts nothing else.
    let client_secret = format!("demo-{:016x}", fastrand::u64(..));
    sim_config.oauth_token = None;
    sim_config.oauth_client = Some((DEMO_CLIENT_ID.to_string(), client_secret.clone()));
    sim_config.token_lifetime = Some(DEMO_TOKEN_LIFETIME);
    let sim = Simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(RunError::Simulator)?;
    // The demo goes through the same validation and defaults as `auditlake export`; only the
    // settle lag is shorter, since the simulator has no replication delay (a minute's lag still
    // shows an open window).
    let export_args = ExportArgs {
        api: ApiArgs {
            subdomain: Some(DEMO_SUBDOMAIN.to_string()),
            base_url: Some(sim.base_url()),
            ..ApiArgs::default()
        },
        dest: Some(args.dest.clone()),
        since: Some(format_rfc3339(start)),
        settle_lag: "1m".into(),
        ..ExportArgs::default()
    };
    let credentials = Env::from_pairs([
        ("ZENDESK_OAUTH_CLIENT_ID", DEMO_CLIENT_ID.to_string()),
        ("ZENDESK_OAUTH_CLIENT_SECRET", client_secret),
    ]);
    let config = match config::export(&export_args, &FileConfig::default(), &credentials, now) {
        Ok(config) => config,
        Err(e) => {
            sim.stop().await;
            return Err(RunError::Refused(e.to_string()));
        }
    };
    let summary = run::export(config, cancel, progress).await;
    sim.stop().await;
    let summary = summary?;
    let glob = format!(
        "{}/{}/subdomain=*/created_date=*/*.parquet",
        lake.display(),
        layout::TABLE_DIR
    );
    let instructions = format!(
        "The lake is in {dest}. Try it with DuckDB:\n\n  SELECT created_date, action, count(*) AS n, count(DISTINCT id) AS ids\n  FROM read_parquet('{glob}', hive_partitioning = true)\n  GROUP BY ALL ORDER BY created_date, n DESC;\n\nand `auditlake status --dest {dest} --subdomain {DEMO_SUBDOMAIN}` for the manifest.",
        dest = lake.display(),
    );
    Ok(DemoOutcome {
        summary,
        instructions,
    })
}

/// The simulator's configuration from `auditlake simulate`'s flags: the text flags are read with
/// the export's own time and duration parsers, and the simulator checks the rest
/// ([`SimOptions::config`]).
pub fn simulator_config(args: &SimulateArgs) -> Result<SimConfig, String> {
    let duration = |flag: &str, given: &Option<String>| -> Result<Option<Duration>, String> {
        given
            .as_deref()
            .map(|t| parse_duration_ms(t).map_err(|e| format!("--{flag}: {e}")))
            .transpose()
    };
    let options = SimOptions {
        bind: args.bind,
        records: args.records,
        from: instant("from", &args.from)?,
        to: instant("to", &args.to)?,
        seed: args.seed,
        bounds: match args.bounds {
            BoundsArg::Inclusive => Bounds::Inclusive,
            BoundsArg::Exclusive => Bounds::Exclusive,
        },
        offset_sort: if args.ignore_offset_sort {
            OffsetSort::Ignored
        } else {
            OffsetSort::Honoured
        },
        rate_limit_per_minute: args.rate_limit,
        token: args.token.clone(),
        oauth_client: (args.client_id.clone(), args.client_secret.clone()),
        token_lifetime: duration("token-lifetime", &args.token_lifetime)?,
        enterprise: !args.not_enterprise,
        extra_fields: args.extra_fields,
        fault_5xx: args.fault_5xx,
        fault_429: args.fault_429,
        fault_truncate: args.fault_truncate,
        fault_reset: args.fault_reset,
        late_arrival: duration("late-arrival", &args.late_arrival)?,
        latency: duration("latency", &args.latency)?,
    };
    options.config().map_err(|e| e.to_string())
}

/// `simulate --hide-from`: the instant from which the simulator hides records (records that
/// arrive late), if given.
pub fn simulator_hidden_from(args: &SimulateArgs) -> Result<Option<DateTime<Utc>>, String> {
    instant("hide-from", &args.hide_from)
}

/// An instant flag of `simulate`, read with the export's own parser.
fn instant(flag: &str, given: &Option<String>) -> Result<Option<DateTime<Utc>>, String> {
    given
        .as_deref()
        .map(|t| {
            parse_instant(t)
                .map(utc)
                .map_err(|e| format!("--{flag}: {e}"))
        })
        .transpose()
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::config::cli::{Cli, Command};

    fn simulate_args(argv: &[&str]) -> SimulateArgs {
        let argv = ["auditlake", "simulate"].iter().chain(argv);
        match Cli::parse_args(argv).unwrap().command {
            Command::Simulate(args) => args,
            other => panic!("not simulate: {other:?}"),
        }
    }

    #[test]
    fn simulate_flags_given_as_text_reach_the_simulators_configuration() {
        let config = simulator_config(&simulate_args(&[
            "--from=2024-05-01",
            "--to=2024-05-02T12:00:00Z",
            "--bounds=exclusive",
            "--ignore-offset-sort",
            "--token-lifetime=5m",
            "--late-arrival=250ms",
        ]))
        .unwrap();
        assert_eq!(config.start, utc(1_714_521_600));
        assert_eq!(config.end, utc(1_714_651_200));
        assert_eq!(config.bounds, Bounds::Exclusive);
        assert_eq!(config.offset_sort, OffsetSort::Ignored);
        assert_eq!(config.token_lifetime, Some(Duration::from_secs(300)));
        assert_eq!(config.faults.late_arrival, Some(Duration::from_millis(250)));
    }

    #[test]
    fn an_unreadable_simulate_flag_is_named_in_the_error() {
        for (flag, value) in [
            ("from", "yesterday"),
            ("to", "soon"),
            ("token-lifetime", "long"),
            ("late-arrival", "later"),
        ] {
            let error =
                simulator_config(&simulate_args(&[&format!("--{flag}={value}")])).expect_err(flag);
            assert!(error.starts_with(&format!("--{flag}: ")), "{error}");
        }
        let error = simulator_config(&simulate_args(&["--bind=0.0.0.0:8989"])).unwrap_err();
        assert_eq!(
            error,
            "--bind 0.0.0.0:8989: the simulator listens on loopback addresses only"
        );
    }
}

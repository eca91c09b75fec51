//! OAuth client credentials against the simulator's token endpoint: tokens renewed ahead of
//! their expiry through a long export, a refused token replaced once, wrong secrets refused before
//! anything is written, one kind of credential at a time, and no secret or token in any output.

mod common;

use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditlake::zendesk::auth::{OAuthClient, Secret};
use auditlake::zendesk::{ApiError, Client, ClientOptions, Credentials, RequestBudget};
use common::*;
use zendesk_sim::{SimFilter, Simulator};

const CLIENT_ID: &str = "auditlake-test";
const CLIENT_SECRET: &str = "cs-SECRET-7331";

/// A simulator that mints tokens of `lifetime` for the test client (and accepts no static token).
async fn sim_with_client(
    records: u64,
    from: &str,
    to: &str,
    lifetime: Option<Duration>,
) -> Simulator {
    let mut config = sim_config(records, from, to);
    config.oauth_token = None;
    config.oauth_client = Some((CLIENT_ID.into(), CLIENT_SECRET.into()));
    config.token_lifetime = lifetime;
    start(config).await
}

fn client_credentials(secret: &str) -> Credentials {
    Credentials::ClientCredentials(OAuthClient {
        id: CLIENT_ID.into(),
        secret: Secret::new(secret),
        scope: "auditlogs:read".into(),
    })
}

fn client(sim: &Simulator, credentials: Credentials) -> Client {
    let mut options: ClientOptions = export_config(
        sim,
        std::path::Path::new("/unused"),
        "2024-03-01",
        "2024-03-02",
        "1d",
    )
    .api
    .client;
    options.credentials = credentials;
    let budget = Arc::new(RequestBudget::new(None, 1.0));
    Client::new(options, budget).unwrap()
}

async fn list(client: &Client) -> Result<(), ApiError> {
    let url = client.url("/api/v2/audit_logs", &[]);
    client.get(&url, |_| Ok(())).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_outlasting_many_token_lifetimes_exports_exactly_with_no_stampede() {
    const LIFETIME: Duration = Duration::from_secs(2);
    let (since, until) = ("2024-03-01", "2024-04-01");
    let sim = sim_with_client(5_000, since, until, Some(LIFETIME)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = export_config(&sim, dir.path(), since, until, "1h");
    config.api.client.credentials = client_credentials(CLIENT_SECRET);
    // 744 hourly windows fetched as ranges: about 5,000 / 100 pages plus one per stream, at 300
    // requests a minute a run of about 12 s, six token lifetimes, with four workers asking for
    // the token all along.
    config.api.max_requests_per_minute = Some(300);
    config.concurrency = 4;
    let started = Instant::now();
    let summary = export(config).await;
    let elapsed = started.elapsed();

    assert_eq!(summary.windows_failed, 0, "{:?}", summary.failures);
    assert_eq!(summary.windows_done, 744);
    assert!(summary.fatal.is_none(), "{:?}", summary.fatal);
    assert_lake_exact(dir.path(), &sim, &SimFilter::default(), since, until);

    let stats = sim.stats();
    let minted = stats.tokens_minted;
    assert_eq!(summary.tokens_minted, minted);
    // Renewed ahead of expiry: no request ever carried an expired token.
    assert_eq!(stats.responses_401, 0, "{stats:?}");
    // A token is renewed when a fifth of its life is left, so one lasts 4/5 of a lifetime: at
    // most elapsed ÷ (0.8 × lifetime) of them, plus the first. Four workers minting for
    // themselves would mint about four times that.
    let seconds = elapsed.as_secs_f64();
    let lifetime = LIFETIME.as_secs_f64();
    let most = (seconds / (0.8 * lifetime)).ceil() as u64 + 1;
    let least = (seconds / lifetime).floor() as u64;
    eprintln!(
        "run of {seconds:.1} s, token lifetime {lifetime} s: {minted} tokens minted (duration ÷ lifetime = {:.1}; allowed {least}..={most})",
        seconds / lifetime
    );
    assert!(
        least >= 3,
        "the run must outlast several lifetimes: {seconds:.1} s"
    );
    assert!(
        (least..=most).contains(&minted),
        "{minted} tokens minted in {seconds:.1} s (allowed {least}..={most})"
    );
}

#[tokio::test]
async fn a_minted_token_refused_with_401_is_replaced_once_and_the_request_retried() {
    let sim = sim_with_client(100, "2024-03-01", "2024-03-02", None).await;
    let client = client(&sim, client_credentials(CLIENT_SECRET));
    client.authenticate().await.unwrap();
    list(&client).await.unwrap();
    assert_eq!(client.tokens_minted(), 1);

    // Zendesk revokes the token (an admin, a rotation): one 401, one new token, the request done.
    sim.revoke_tokens(false);
    list(&client).await.unwrap();
    assert_eq!(client.tokens_minted(), 2);
    assert_eq!(sim.stats().responses_401, 1);
    assert_eq!(sim.stats().tokens_minted, 2);

    // Tokens refused however fresh: one more mint, then the run stops (exit 3) with the cause.
    sim.refuse_minted_tokens(true);
    let err = list(&client).await.unwrap_err();
    assert!(err.is_fatal_for_run(), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("401") && message.contains("freshly minted"),
        "{message}"
    );
    assert_eq!(client.tokens_minted(), 3, "exactly one re-mint");
    assert_eq!(sim.stats().responses_401, 3);
    assert!(!message.contains("sim-minted") && !message.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn a_static_token_revoked_mid_run_says_so_and_points_to_client_credentials() {
    let mut config = sim_config(100, "2024-03-01", "2024-03-02");
    config.oauth_client = Some((CLIENT_ID.into(), CLIENT_SECRET.into()));
    let sim = start(config).await;
    let client = client(&sim, Credentials::OAuth(Secret::new(TOKEN)));
    list(&client).await.unwrap();
    sim.revoke_tokens(true);
    let err = list(&client).await.unwrap_err();
    assert!(err.is_fatal_for_run(), "{err}");
    let message = err.to_string();
    for part in [
        "expired or was revoked",
        "client credentials",
        "ZENDESK_OAUTH_CLIENT_ID",
    ] {
        assert!(message.contains(part), "{message}");
    }
    assert!(!message.contains(TOKEN), "{message}");
    assert_eq!(
        client.tokens_minted(),
        0,
        "a static token is never re-minted"
    );
    assert_eq!(sim.stats().responses_401, 1, "nor retried");
}

#[tokio::test]
async fn the_token_endpoint_names_the_credential_to_check_and_is_asked_once() {
    let sim = sim_with_client(100, "2024-03-01", "2024-03-02", None).await;
    let client = client(&sim, client_credentials("wrong-SECRET"));
    let err = client.authenticate().await.unwrap_err();
    assert!(matches!(err, ApiError::TokenRefused(_)), "{err}");
    assert!(err.is_fatal_for_run());
    let message = err.to_string();
    assert!(
        message.contains("invalid_client") && message.contains("ZENDESK_OAUTH_CLIENT_SECRET"),
        "{message}"
    );
    assert!(!message.contains("wrong-SECRET") && !message.contains(CLIENT_SECRET));
    // Every later request gets the same answer without asking the token endpoint again.
    assert!(list(&client).await.unwrap_err().is_fatal_for_run());
    assert_eq!(sim.stats().requests, 1);
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary(args, env).await
}

fn export_args<'a>(lake: &'a str, base: &'a str) -> Vec<&'a str> {
    vec![
        "export",
        "--subdomain",
        "acme",
        "--dest",
        lake,
        "--since",
        "2024-03-01",
        "--until",
        "2024-03-03",
        "--base-url",
        base,
        "--log-format",
        "json",
        "--log-level",
        "trace",
    ]
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_exits_3_before_any_window_and_writes_nothing() {
    let sim = sim_with_client(
        500,
        "2024-03-01",
        "2024-03-03",
        Some(Duration::from_secs(300)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let base = sim.base_url();
    let wrong = "wrong-cs-SECRET-0000";
    let out = run(
        &export_args(lake.to_str().unwrap(), &base),
        &[
            ("ZENDESK_OAUTH_CLIENT_ID", CLIENT_ID),
            ("ZENDESK_OAUTH_CLIENT_SECRET", wrong),
        ],
    )
    .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains("invalid_client") && all.contains("ZENDESK_OAUTH_CLIENT_SECRET"),
        "{all}"
    );
    assert!(
        !all.contains(wrong) && !all.contains(CLIENT_SECRET),
        "{all}"
    );
    assert!(
        files_under(&lake).is_empty(),
        "wrote {:?}",
        files_under(&lake)
    );
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.list_requests), (1, 0), "{stats:?}");

    // The right secret, from a mounted file: the run succeeds, and neither the secret nor a
    // minted token shows anywhere, even at trace level.
    let secret_file = dir.path().join("client-secret");
    std::fs::write(&secret_file, format!("{CLIENT_SECRET}\n")).unwrap();
    let out = run(
        &export_args(lake.to_str().unwrap(), &base),
        &[
            ("ZENDESK_OAUTH_CLIENT_ID", CLIENT_ID),
            (
                "ZENDESK_OAUTH_CLIENT_SECRET_FILE",
                secret_file.to_str().unwrap(),
            ),
        ],
    )
    .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(sim.stats().tokens_minted, 1);
    // JSON logs: the summary is the last line, a JSON event.
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stderr).lines().last().unwrap()).unwrap();
    assert_eq!(last["summary"]["tokens_minted"], 1, "{all}");
    assert!(!all.contains(CLIENT_SECRET), "the secret leaked: {all}");
    assert!(!all.contains("sim-minted"), "a minted token leaked: {all}");
    for path in files_under(&lake) {
        let bytes = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(
            !bytes.contains(CLIENT_SECRET) && !bytes.contains("sim-minted"),
            "{} holds a secret",
            path.display()
        );
    }
    assert_lake_exact(
        &lake,
        &sim,
        &SimFilter::default(),
        "2024-03-01",
        "2024-03-03",
    );
}

#[tokio::test]
async fn two_kinds_of_credentials_exit_2_naming_both() {
    let args = [
        "list",
        "--subdomain",
        "acme",
        "--base-url",
        "http://127.0.0.1:9",
    ];
    for (env, names) in [
        (
            &[
                ("ZENDESK_OAUTH_TOKEN", "tok-SECRET"),
                ("ZENDESK_OAUTH_CLIENT_ID", CLIENT_ID),
                ("ZENDESK_OAUTH_CLIENT_SECRET", CLIENT_SECRET),
            ][..],
            ["ZENDESK_OAUTH_TOKEN", "ZENDESK_OAUTH_CLIENT_ID"],
        ),
        (
            &[
                ("ZENDESK_EMAIL", "admin@example.com"),
                ("ZENDESK_API_TOKEN", "api-SECRET"),
                ("ZENDESK_OAUTH_CLIENT_ID", CLIENT_ID),
                ("ZENDESK_OAUTH_CLIENT_SECRET", CLIENT_SECRET),
            ][..],
            ["ZENDESK_API_TOKEN", "ZENDESK_OAUTH_CLIENT_SECRET"],
        ),
    ] {
        let out = run(&args, env).await;
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{all}");
        for name in names {
            assert!(all.contains(name), "{name} not named: {all}");
        }
        assert!(!all.contains("-SECRET"), "{all}");
    }
}

#[tokio::test]
async fn help_never_shows_a_secret() {
    for args in [
        &["--help"][..],
        &["export", "--help"],
        &["simulate", "--help"],
    ] {
        let out = run(args, &[("ZENDESK_OAUTH_CLIENT_SECRET", CLIENT_SECRET)]).await;
        assert_eq!(out.status.code(), Some(0));
        assert!(!text(&out).contains(CLIENT_SECRET));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_token_gets_one_warning_per_run_with_the_deactivation_date() {
    let mut config = sim_config(500, "2024-03-01", "2024-03-03");
    config.api_token = Some(("admin@example.com".into(), "api-tok".into()));
    let sim = start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let base = sim.base_url();
    let out = run(
        &export_args(lake.to_str().unwrap(), &base)[..11],
        &[
            ("ZENDESK_EMAIL", "admin@example.com"),
            ("ZENDESK_API_TOKEN", "api-tok"),
        ],
    )
    .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(
        all.matches("deactivates every API token on 2027-04-30")
            .count(),
        1,
        "{all}"
    );
    assert!(all.contains("unused for 30 days"), "{all}");
}

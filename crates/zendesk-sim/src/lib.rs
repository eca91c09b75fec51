//! zendesk-sim: a local stand-in for the Zendesk Audit Logs API, for auditlake's tests, its demo and
//! its benchmarks.
//!
//! It depends on nothing of auditlake's, so the ground truth the tests compare a lake with shares no
//! code with the exporter that made the lake.
//!
//! It serves a deterministic synthetic account over HTTP on 127.0.0.1 and follows the API as
//! Zendesk documents it, including its undocumented corners: the repeated
//! `filter[created_at][]` key, configurable bound semantics, an offset form that may ignore its
//! sort parameters ([`OffsetSort`]), ties within a second in an arbitrary (but stable) order,
//! ids above 2^53, optional `action_label`, unknown extra fields, the offset
//! pagination cap, per-minute rate limits and the export endpoint's own limit. [`Faults`] adds
//! seeded, reproducible misbehaviour (5xx, 429, truncated bodies, resets, stalls, refused cursors,
//! late-arriving records).

mod account;
mod faults;
mod options;
mod server;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use account::{Account, ExpectedRecord, SimFilter};
pub use faults::Faults;
pub use options::{SimOptions, SimOptionsError};

use server::Shared;

/// How the server interprets the two `filter[created_at][]` values. Zendesk does not document it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounds {
    /// `start <= created_at <= end`.
    Inclusive,
    /// `start < created_at < end`.
    Exclusive,
}

/// Whether the offset form of the list operation (`page`, `per_page`) honours `sort_order`.
/// Zendesk documents no order parameter for it (`sort` is "for cursor pagination only"), so a
/// client must not rely on either answer; its `count` is the same whatever the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSort {
    /// `sort_order=asc` serves ascending `created_at`, `desc` or none descending; any other value
    /// is refused (400). `sort_by` is not read.
    Honoured,
    /// `sort_by` and `sort_order` are ignored, whatever their values: pages always come in
    /// descending `created_at` (ties in reverse storage order), the list operation's documented
    /// default. Descending is the reverse of the ascending order auditlake's offset callers ask
    /// for, so a caller that trusts `sort_order=asc` sees the query's last seconds where it
    /// expects its first, on every page, not only on some.
    Ignored,
}

/// Everything the simulator serves and how it behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of the synthetic account.
    pub seed: u64,
    /// Number of records in the account.
    pub records: u64,
    /// Records' `created_at` lies in `[start, end)`.
    pub start: DateTime<Utc>,
    /// Exclusive end of the records' `created_at`.
    pub end: DateTime<Utc>,
    /// Semantics of the `filter[created_at][]` bounds.
    pub bounds: Bounds,
    /// Whether the offset form honours `sort_order`.
    pub offset_sort: OffsetSort,
    /// Requests allowed per wall-clock minute, across all endpoints (reported in `X-Rate-Limit`).
    /// Benchmarks should raise it: the default is Enterprise's 700.
    pub rate_limit_per_minute: u32,
    /// Accepted as `Authorization: Bearer <token>`.
    pub oauth_token: Option<String>,
    /// `(email, token)`, accepted as Basic `base64("{email}/token:{token}")`.
    /// When both this and `oauth_token` are `None`, requests are not authenticated at all.
    pub api_token: Option<(String, String)>,
    /// `(client_id, client_secret)` of a confidential OAuth client: `POST /oauth/tokens` with the
    /// client-credentials grant mints access tokens, accepted as `Bearer` until they expire.
    /// `None`: the token endpoint answers `invalid_client`.
    pub oauth_client: Option<(String, String)>,
    /// `expires_in` of minted tokens: an expired token is answered 401. `None`: they never expire.
    pub token_lifetime: Option<Duration>,
    /// `false` answers 403 on every audit-log endpoint, as for non-Enterprise plans.
    pub enterprise: bool,
    /// Whether about 1.5% of records carry fields the documented schema lacks (`risk_score`, a
    /// number, or `metadata`, an object).
    pub extra_fields: bool,
    /// Injected faults; all off by default.
    pub faults: Faults,
}

impl SimConfig {
    /// Defaults: seed 42, inclusive bounds, offset-form order honoured, 700 requests a minute, OAuth token `sim-token`,
    /// Enterprise, no extra fields, no faults.
    pub fn new(records: u64, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        SimConfig {
            seed: 42,
            records,
            start,
            end,
            bounds: Bounds::Inclusive,
            offset_sort: OffsetSort::Honoured,
            rate_limit_per_minute: 700,
            oauth_token: Some("sim-token".to_owned()),
            api_token: None,
            oauth_client: None,
            token_lifetime: None,
            enterprise: true,
            extra_fields: false,
            faults: Faults::default(),
        }
    }
}

/// A snapshot of the simulator's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every request, whatever its answer.
    pub requests: u64,
    /// Authenticated `GET /api/v2/audit_logs` requests.
    pub list_requests: u64,
    /// Authenticated `GET /api/v2/audit_logs/{id}` requests.
    pub show_requests: u64,
    /// Authenticated `POST /api/v2/audit_logs/export` requests.
    pub export_requests: u64,
    /// 400 answers.
    pub responses_400: u64,
    /// 401 answers.
    pub responses_401: u64,
    /// 403 answers.
    pub responses_403: u64,
    /// 429 answers, from the real limits and from faults.
    pub responses_429: u64,
    /// 5xx answers (all injected).
    pub responses_5xx: u64,
    /// Connections dropped without a response.
    pub resets: u64,
    /// 200 answers with a truncated body.
    pub truncated: u64,
    /// Stalled answers.
    pub stalls: u64,
    /// Cursors refused (expired or injected).
    pub invalid_cursors: u64,
    /// Records rendered into complete (non-truncated) list pages.
    pub records_served: u64,
    /// Access tokens minted by `POST /oauth/tokens`.
    pub tokens_minted: u64,
}

/// The `filter[created_at][]` pair of one list request, as sent (before bound semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListWindow {
    /// First value; `None` when the request had no time filter.
    pub from: Option<DateTime<Utc>>,
    /// Second value; `None` when the request had no time filter.
    pub to: Option<DateTime<Utc>>,
}

/// A running simulator. Dropping it shuts the server down without waiting; [`Simulator::stop`]
/// waits for in-flight requests.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Generates the account, binds `bind` (port 0 picks a free port) and serves on the current
    /// tokio runtime.
    pub async fn start(cfg: SimConfig, bind: SocketAddr) -> std::io::Result<Simulator> {
        let account = Arc::new(Account::new(
            cfg.seed,
            cfg.records,
            cfg.start,
            cfg.end,
            cfg.extra_fields,
        ));
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(Shared::new(cfg, account, base_url));
        let app = server::router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "simulator server stopped");
            }
        });
        Ok(Simulator {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The account being served.
    pub fn account(&self) -> &Arc<Account> {
        &self.shared.account
    }

    /// The configuration being served.
    pub fn config(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Makes records created at or after `from` invisible to list and show until called again
    /// with `None`: records that arrive late, after an export already closed their window.
    pub fn hide_from(&self, from: Option<DateTime<Utc>>) {
        let t = from.map_or(i64::MAX, |t| t.timestamp());
        self.shared
            .hidden_from
            .store(t, std::sync::atomic::Ordering::Relaxed);
    }

    /// Revokes every access token minted so far and, with `static_token`, the configured OAuth
    /// token too: requests with them are answered 401 from now on (newly minted tokens work).
    pub fn revoke_tokens(&self, static_token: bool) {
        self.shared.revoke_minted();
        if static_token {
            self.shared
                .static_revoked
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// While `true`, every minted token is answered 401 (the endpoint still mints them): an OAuth
    /// client whose tokens Zendesk no longer honours.
    pub fn refuse_minted_tokens(&self, refuse: bool) {
        self.shared
            .refuse_minted
            .store(refuse, std::sync::atomic::Ordering::Relaxed);
    }

    /// Zeroes the counters and forgets recorded list windows. The fault draw sequence and the
    /// rate-limit state are not reset.
    pub fn reset_stats(&self) {
        self.shared.stats.reset();
        self.shared.windows.lock().expect("windows lock").clear();
    }

    /// The `filter[created_at][]` pair of every accepted list request since the last reset, in
    /// arrival order.
    pub fn list_windows(&self) -> Vec<ListWindow> {
        let windows = self.shared.windows.lock().expect("windows lock");
        windows
            .iter()
            .map(|&(from, to)| {
                if from == i64::MIN {
                    ListWindow {
                        from: None,
                        to: None,
                    }
                } else {
                    ListWindow {
                        from: DateTime::from_timestamp(from, 0),
                        to: DateTime::from_timestamp(to, 0),
                    }
                }
            })
            .collect()
    }

    /// How many accepted list requests asked for a time range overlapping `[from, to)`: the sent
    /// closed range `[start, end]` overlaps when `start < to && end >= from`. Requests without a
    /// time filter overlap everything.
    pub fn list_requests_overlapping(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        let (from, to) = (from.timestamp(), to.timestamp());
        let windows = self.shared.windows.lock().expect("windows lock");
        windows
            .iter()
            .filter(|&&(s, e)| s == i64::MIN || (s < to && e >= from))
            .count() as u64
    }

    /// The number of list requests seen since start (the fault draw counter).
    pub fn list_sequence(&self) -> u64 {
        self.shared.list_seq.load(Ordering::Relaxed)
    }

    /// Stops accepting connections and waits (up to 5 s, after which the server is aborted) for
    /// in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            // A stalled response or an idle keep-alive client must not hang the caller forever.
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("addr", &self.addr)
            .field("records", &self.shared.account.len())
            .finish()
    }
}

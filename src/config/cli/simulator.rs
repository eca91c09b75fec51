//! The arguments of `demo` and `simulate`, the commands the built-in simulator serves (the
//! `simulator` feature). Its tokens and client secrets are test values, not secrets.

// `filter[created_at][]` stays as typed in `--help`, rather than as a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use clap::{Args, ValueEnum};

#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Where to leave the demo lake.
    #[arg(long, default_value = "lake", help_heading = "Where to")]
    pub dest: String,

    /// Records in the simulated account.
    #[arg(long, default_value_t = 20_000)]
    pub records: u64,

    /// Days of history in the simulated account, ending now.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
}

/// How the simulator interprets `filter[created_at][]` bounds (undocumented by Zendesk).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BoundsArg {
    Inclusive,
    Exclusive,
}

#[derive(Debug, Args, Clone)]
pub struct SimulateArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:8989")]
    pub bind: std::net::SocketAddr,

    /// Records in the synthetic account.
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,

    /// First instant of the account's history [default: 30 days before now].
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,

    /// End of the account's history (exclusive) [default: now].
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,

    /// Seed of the synthetic data: the same seed gives the same account.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Whether filter[created_at][] bounds are inclusive or exclusive.
    #[arg(long, value_enum, default_value_t = BoundsArg::Inclusive)]
    pub bounds: BoundsArg,

    /// Make the offset form (page, per_page) ignore sort_by/sort_order and serve newest first, as
    /// an API that honours no undocumented order parameter would.
    #[arg(long)]
    pub ignore_offset_sort: bool,

    /// Requests per minute reported in X-Rate-Limit and enforced with 429s.
    #[arg(long, default_value_t = 700)]
    pub rate_limit: u32,

    /// The OAuth token the simulator accepts (a test value, not a secret).
    #[arg(long, default_value = "sim-token")]
    pub token: String,

    /// Client id of the confidential OAuth client whose client-credentials grant
    /// `POST /oauth/tokens` accepts (a test value).
    #[arg(long, default_value = "sim-client")]
    pub client_id: String,

    /// Client secret of that OAuth client (a test value, not a secret).
    #[arg(long, default_value = "sim-secret")]
    pub client_secret: String,

    /// `expires_in` of the access tokens the simulator mints (e.g. 300s, 2h); past it they are
    /// answered 401 [default: they never expire].
    #[arg(long, value_name = "DURATION")]
    pub token_lifetime: Option<String>,

    /// Answer 403 to everything, like an account without the Enterprise plan.
    #[arg(long)]
    pub not_enterprise: bool,

    /// Give a few records fields the documented schema does not have.
    #[arg(long)]
    pub extra_fields: bool,

    /// Fraction of list requests answered with a 5xx.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub fault_5xx: f64,

    /// Fraction of list requests answered with 429 and Retry-After: 1.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub fault_429: f64,

    /// Fraction of list requests answered 200 with a truncated body.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub fault_truncate: f64,

    /// Fraction of list requests whose connection is reset.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub fault_reset: f64,

    /// Records become visible only this long after their created_at (eventual consistency).
    #[arg(long, value_name = "DURATION")]
    pub late_arrival: Option<String>,

    /// Hide the records created at or after this instant, as records that arrive after an
    /// export closed their window: a simulator started again without it serves them.
    #[arg(long, value_name = "TIME")]
    pub hide_from: Option<String>,

    /// Answer every request after about this long (e.g. 150ms; +-50% jitter), like a real API's
    /// latency [default: at once].
    #[arg(long, value_name = "DURATION")]
    pub latency: Option<String>,
}

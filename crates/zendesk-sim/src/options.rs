//! The simulator's settings as a command line gives them (`auditlake simulate`), checked once.
//!
//! The values are already typed (instants, durations): turning text into them is the caller's
//! parser's job, so this crate needs nothing from the program whose flags it serves. The errors
//! name the flags, since a person reads them next to the command line they typed.

use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::{Bounds, Faults, OffsetSort, SimConfig};

/// How long the account's history is when `from` is not given: 30 days before `to`'s default.
const DEFAULT_HISTORY: TimeDelta = TimeDelta::days(30);

/// One `auditlake simulate` invocation's settings, one field per flag.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Address to listen on; loopback only.
    pub bind: SocketAddr,
    /// Records in the synthetic account.
    pub records: u64,
    /// First instant of the history; `None`: 30 days before now.
    pub from: Option<DateTime<Utc>>,
    /// End of the history (exclusive); `None`: now.
    pub to: Option<DateTime<Utc>>,
    /// Seed of the synthetic account.
    pub seed: u64,
    /// Semantics of the `filter[created_at][]` bounds.
    pub bounds: Bounds,
    /// Whether the offset form honours `sort_order` (`--ignore-offset-sort` turns it off).
    pub offset_sort: OffsetSort,
    /// Requests per minute; 0 is raised to 1.
    pub rate_limit_per_minute: u32,
    /// The static OAuth token accepted as `Bearer`.
    pub token: String,
    /// `(client_id, client_secret)` of the OAuth client whose client-credentials grant is accepted.
    pub oauth_client: (String, String),
    /// `expires_in` of minted tokens (at least 1 s); `None`: they never expire.
    pub token_lifetime: Option<Duration>,
    /// `false` answers 403 to everything.
    pub enterprise: bool,
    /// Whether a few records carry fields the documented schema lacks.
    pub extra_fields: bool,
    /// Fraction of list requests answered with a 5xx (`--fault-5xx`).
    pub fault_5xx: f64,
    /// Fraction answered 429 (`--fault-429`).
    pub fault_429: f64,
    /// Fraction answered with a truncated body (`--fault-truncate`).
    pub fault_truncate: f64,
    /// Fraction whose connection is reset (`--fault-reset`).
    pub fault_reset: f64,
    /// Records become visible only this long after their `created_at`.
    pub late_arrival: Option<Duration>,
    /// Mean delay of every answer (`--latency`), with +-50% jitter.
    pub latency: Option<Duration>,
}

/// Settings the simulator cannot serve, each naming its flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimOptionsError {
    /// The simulator is a test server: it never listens beyond the machine.
    #[error("--bind {0}: the simulator listens on loopback addresses only")]
    NotLoopback(SocketAddr),
    /// The history is empty or reversed.
    #[error("--from must be before --to")]
    EmptyHistory,
    /// A fault rate outside `[0, 1]`.
    #[error("--{flag} must be a fraction between 0 and 1")]
    NotAFraction {
        /// The flag, without its dashes.
        flag: &'static str,
    },
    /// `expires_in` is whole seconds: a shorter lifetime would be announced as 0.
    #[error("--token-lifetime must be at least 1s")]
    TokenLifetimeTooShort,
}

impl SimOptions {
    /// The configuration to serve, or the first setting that cannot be served.
    pub fn config(&self) -> Result<SimConfig, SimOptionsError> {
        if !self.bind.ip().is_loopback() {
            return Err(SimOptionsError::NotLoopback(self.bind));
        }
        let now = DateTime::from_timestamp(Utc::now().timestamp(), 0)
            .expect("the current second is a valid instant");
        let from = self.from.unwrap_or(now - DEFAULT_HISTORY);
        let to = self.to.unwrap_or(now);
        if from >= to {
            return Err(SimOptionsError::EmptyHistory);
        }
        for (flag, rate) in [
            ("fault-5xx", self.fault_5xx),
            ("fault-429", self.fault_429),
            ("fault-truncate", self.fault_truncate),
            ("fault-reset", self.fault_reset),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SimOptionsError::NotAFraction { flag });
            }
        }
        if self
            .token_lifetime
            .is_some_and(|lifetime| lifetime.as_secs() < 1)
        {
            return Err(SimOptionsError::TokenLifetimeTooShort);
        }
        let mut config = SimConfig::new(self.records, from, to);
        config.seed = self.seed;
        config.bounds = self.bounds;
        config.offset_sort = self.offset_sort;
        config.rate_limit_per_minute = self.rate_limit_per_minute.max(1);
        config.oauth_token = Some(self.token.clone());
        config.oauth_client = Some(self.oauth_client.clone());
        config.token_lifetime = self.token_lifetime;
        config.enterprise = self.enterprise;
        config.extra_fields = self.extra_fields;
        config.faults = Faults {
            error_5xx_rate: self.fault_5xx,
            rate_429: self.fault_429,
            truncate_rate: self.fault_truncate,
            reset_rate: self.fault_reset,
            late_arrival: self.late_arrival,
            latency: self.latency,
            ..Faults::default()
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> SimOptions {
        SimOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            records: 10,
            from: None,
            to: None,
            seed: 7,
            bounds: Bounds::Exclusive,
            offset_sort: OffsetSort::Ignored,
            rate_limit_per_minute: 0,
            token: "t".into(),
            oauth_client: ("id".into(), "secret".into()),
            token_lifetime: Some(Duration::from_secs(300)),
            enterprise: false,
            extra_fields: true,
            fault_5xx: 0.1,
            fault_429: 0.2,
            fault_truncate: 0.3,
            fault_reset: 0.4,
            late_arrival: Some(Duration::from_secs(60)),
            latency: Some(Duration::from_millis(150)),
        }
    }

    #[test]
    fn every_setting_reaches_the_config_and_the_history_defaults_to_the_last_30_days() {
        let config = options().config().unwrap();
        assert_eq!(config.end - config.start, TimeDelta::days(30));
        assert!((Utc::now() - config.end).num_seconds() < 60);
        assert_eq!(config.seed, 7);
        assert_eq!(config.bounds, Bounds::Exclusive);
        assert_eq!(config.offset_sort, OffsetSort::Ignored);
        assert_eq!(config.rate_limit_per_minute, 1, "0 is raised to 1");
        assert_eq!(config.oauth_token.as_deref(), Some("t"));
        assert_eq!(
            config.oauth_client,
            Some(("id".to_string(), "secret".to_string()))
        );
        assert_eq!(config.token_lifetime, Some(Duration::from_secs(300)));
        assert!(!config.enterprise);
        assert!(config.extra_fields);
        assert_eq!(
            (
                config.faults.error_5xx_rate,
                config.faults.rate_429,
                config.faults.truncate_rate,
                config.faults.reset_rate
            ),
            (0.1, 0.2, 0.3, 0.4)
        );
        assert_eq!(config.faults.late_arrival, Some(Duration::from_secs(60)));
        assert_eq!(config.faults.latency, Some(Duration::from_millis(150)));
    }

    #[test]
    fn settings_the_simulator_cannot_serve_are_refused_naming_their_flag() {
        let bind = SocketAddr::from(([0, 0, 0, 0], 8989));
        let at = |t: i64| DateTime::from_timestamp(t, 0);
        let cases: [(SimOptions, &str); 4] = [
            (
                SimOptions { bind, ..options() },
                "--bind 0.0.0.0:8989: the simulator listens on loopback addresses only",
            ),
            (
                SimOptions {
                    from: at(100),
                    to: at(100),
                    ..options()
                },
                "--from must be before --to",
            ),
            (
                SimOptions {
                    fault_429: 1.5,
                    ..options()
                },
                "--fault-429 must be a fraction between 0 and 1",
            ),
            (
                SimOptions {
                    token_lifetime: Some(Duration::from_millis(500)),
                    ..options()
                },
                "--token-lifetime must be at least 1s",
            ),
        ];
        for (options, message) in cases {
            assert_eq!(options.config().unwrap_err().to_string(), message);
        }
    }
}

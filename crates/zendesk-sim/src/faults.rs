//! Injected misbehaviour for list requests.
//!
//! Faults are drawn from a hash of `(seed, n)` where `n` is the number of list requests the simulator
//! has seen, so a given request sequence always meets the same faults: a failing test replays exactly.

use std::time::Duration;

/// Which faults the simulator injects into `GET /api/v2/audit_logs` responses. All off by default.
///
/// The rates are fractions in `[0, 1]` of list requests; they are drawn from one uniform number per
/// request, so their sum should stay at or below 1 (anything beyond is never reached).
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    /// Fraction of list requests answered 500, 502 or 503 (503 carries `Retry-After: 1`).
    pub error_5xx_rate: f64,
    /// Fraction answered 429 with `Retry-After: 1`, on top of the real per-minute limit: Zendesk
    /// throttles spikes below the nominal limit.
    pub rate_429: f64,
    /// Fraction answered 200 with the body cut in half, so the JSON does not parse.
    pub truncate_rate: f64,
    /// Fraction whose connection is closed without any response bytes.
    pub reset_rate: f64,
    /// Fraction answered only after [`Faults::stall`].
    pub stall_rate: f64,
    /// How long a stalled response waits before it is sent.
    pub stall: Duration,
    /// Fraction of requests carrying `page[after]`/`page[before]` whose cursor is refused with
    /// 400 `InvalidCursor`, as if it had expired.
    pub invalid_cursor_rate: f64,
    /// Cursors older than this (wall clock, from when the page that issued them was served) are
    /// refused with 400 `InvalidCursor`. `None`: cursors never expire.
    pub cursor_ttl: Option<Duration>,
    /// A record is invisible (to list and show) until wall-clock now >= `created_at` + this,
    /// modelling Zendesk's eventual consistency. `None`: every record is visible at once.
    pub late_arrival: Option<Duration>,
    /// Every request is answered after about this long (uniformly between half and one and a
    /// half times it), like a real API's latency. `None`: at once.
    pub latency: Option<Duration>,
    /// The record with this id is listed with its `actor_id` as a string: a known field of
    /// another JSON type, which must fail the window that holds it (and no other).
    pub mistyped_record: Option<i64>,
    /// `(position, places)`: the record at this position (in `created_at` order) is served, in
    /// ascending cursor pages, that many places later than its sort order says (or last, in a
    /// query that ends before then): a broken `sort=created_at`, which puts it among a later
    /// window's records.
    pub served_late: Option<(usize, usize)>,
    /// Seed of the fault draw; independent of the account seed.
    pub seed: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            error_5xx_rate: 0.0,
            rate_429: 0.0,
            truncate_rate: 0.0,
            reset_rate: 0.0,
            stall_rate: 0.0,
            stall: Duration::from_secs(0),
            invalid_cursor_rate: 0.0,
            cursor_ttl: None,
            late_arrival: None,
            latency: None,
            mistyped_record: None,
            served_late: None,
            seed: 0,
        }
    }
}

/// The fault chosen for one list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    Status(u16),
    TooMany,
    Truncate,
    Reset,
    Stall,
    InvalidCursor,
}

impl Faults {
    /// The fault for the `n`-th list request (0-based). `has_cursor` gates `InvalidCursor`: a first
    /// page has no cursor to refuse.
    pub(crate) fn draw(&self, n: u64, has_cursor: bool) -> Fault {
        let h = mix(self.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // 53 high bits give a uniform f64 in [0, 1).
        let u = (h >> 11) as f64 / (1u64 << 53) as f64;
        let mut edge = self.error_5xx_rate;
        if u < edge {
            let code = [500, 502, 503][(h % 3) as usize];
            return Fault::Status(code);
        }
        edge += self.rate_429;
        if u < edge {
            return Fault::TooMany;
        }
        edge += self.truncate_rate;
        if u < edge {
            return Fault::Truncate;
        }
        edge += self.reset_rate;
        if u < edge {
            return Fault::Reset;
        }
        edge += self.stall_rate;
        if u < edge {
            return Fault::Stall;
        }
        edge += self.invalid_cursor_rate;
        if has_cursor && u < edge {
            return Fault::InvalidCursor;
        }
        Fault::None
    }
}

/// SplitMix64 finaliser: a cheap, well-mixed 64-bit hash used for every deterministic draw.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

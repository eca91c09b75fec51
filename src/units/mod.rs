//! Units every stage speaks: durations, instants, the subdomain and the run id.
//!
//! A leaf: it imports nothing from the crate, so any stage, `config` and the commands may use it
//! without a circle.

pub mod duration;
pub mod time;

/// A subdomain is a DNS label: it lands in paths and URLs, so nothing else is accepted.
pub fn valid_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A new run id: 128 random bits, so no two runs ever share one.
pub fn new_run_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

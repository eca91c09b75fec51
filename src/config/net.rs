//! What the front door and the object store share about addresses.

/// Whether a URL points at this machine (localhost, 127.0.0.0/8, ::1): the only place plain HTTP
/// is accepted without asking, since nothing crosses a network.
pub fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

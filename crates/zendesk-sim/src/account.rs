//! The synthetic account: audit log records generated deterministically from a seed.
//!
//! Only timestamps and ids are stored (sorted by time); every other field is derived on demand from
//! a hash of `(seed, position)`, so a multi-million-record account costs a few dozen bytes a record
//! and a page renders without touching the rest of the account.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};

use super::faults::mix;

/// 2^53 + 1: the first integer an `f64` cannot hold. Ids from here up catch lossy JSON decoding.
const BIG_ID_BASE: i64 = 9_007_199_254_740_993;

/// Host used in the `url` field, as Zendesk renders it for the account's subdomain.
const SUBDOMAIN: &str = "auditlake-sim";

/// Filters of the list and export endpoints. Empty/`None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimFilter {
    /// Keep records whose `action` is any of these.
    pub actions: Vec<String>,
    /// `filter[source_type]`.
    pub source_type: Option<String>,
    /// `filter[source_id]`.
    pub source_id: Option<i64>,
    /// `filter[actor_id]`.
    pub actor_id: Option<i64>,
    /// `filter[ip_address]`; records with a null address never match.
    pub ip_address: Option<String>,
}

impl SimFilter {
    /// Whether no field filters, so every record in a time range matches.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
            && self.source_type.is_none()
            && self.source_id.is_none()
            && self.actor_id.is_none()
            && self.ip_address.is_none()
    }
}

/// One record as a test should expect to receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedRecord {
    /// Position in the account's storage order (the order within a second).
    pub index: usize,
    /// `id`.
    pub id: i64,
    /// `created_at`.
    pub created_at: DateTime<Utc>,
    /// `action`.
    pub action: String,
    /// `actor_id`.
    pub actor_id: i64,
    /// `source_type`.
    pub source_type: String,
    /// `source_id`.
    pub source_id: i64,
    /// `ip_address`.
    pub ip_address: Option<String>,
    /// The record exactly as a list response renders it (`action_label` may be absent).
    pub json: String,
}

/// A deterministic synthetic Zendesk account.
#[derive(Debug)]
pub struct Account {
    seed: u64,
    extra_fields: bool,
    /// `created_at` in unix seconds, ascending; the storage order.
    ts: Vec<i64>,
    /// `id` per position; shuffled within each second.
    ids: Vec<i64>,
    /// `(id, position)` sorted by id, for `find`.
    by_id: Vec<(i64, u32)>,
}

/// A record's fields, borrowed from static tables.
pub(crate) struct Fields {
    pub id: i64,
    pub ts: i64,
    pub url_json: bool,
    pub action: &'static str,
    pub action_label: &'static str,
    pub label_in_list: bool,
    pub actor_id: i64,
    pub actor_name: Option<&'static str>,
    pub change: Option<&'static str>,
    pub ip: Option<&'static str>,
    pub source_type: &'static str,
    pub source_id: i64,
    pub source_label: &'static str,
    pub extra: Extra,
}

pub(crate) enum Extra {
    None,
    RiskScore(u32),
    Metadata,
}

const ACTIONS: [(&str, &str); 9] = [
    ("update", "Updated"),
    ("create", "Created"),
    ("login", "Signed in"),
    ("destroy", "Deleted"),
    ("exported", "Exported"),
    ("password_reset", "Password reset"),
    ("assume", "Assumed identity"),
    ("sign_out", "Signed out"),
    ("rotate", "Rotated"),
];

const SOURCE_TYPES: [&str; 9] = [
    "user",
    "ticket",
    "rule",
    "apitoken",
    "zendesk/app_market/app",
    "account_setting",
    "brand",
    "group",
    "organization",
];

/// Distinct `source_id`s per source type: small so `filter[source_id]` selects a real subset.
const SOURCES_PER_TYPE: u64 = 40;

const FIRST_NAMES: [&str; 8] = [
    "Ada", "Bjørn", "Chloé", "Dmitri", "Émilie", "Fatima", "Göran", "Hana",
];
const LAST_NAMES: [&str; 6] = ["Lovelace", "O'Neil", "Müller", "山田", "Nguyễn", "Smith"];

/// 48 human actors plus two system actors.
const ACTORS: usize = 50;

const IPS: [&str; 20] = [
    "203.0.113.7",
    "203.0.113.42",
    "198.51.100.1",
    "198.51.100.254",
    "192.0.2.10",
    "192.0.2.99",
    "10.0.0.5",
    "10.12.0.8",
    "172.16.4.20",
    "172.31.255.1",
    "8.8.4.4",
    "1.1.1.1",
    "93.184.216.34",
    "100.64.0.12",
    "185.199.108.153",
    "52.94.236.248",
    "2001:db8::1",
    "2001:db8:85a3::8a2e:370:7334",
    "::1",
    "fe80::1ff:fe23:4567:890a",
];

const SOURCE_LABELS: [&str; 12] = [
    "Notify requester of \"received\" request",
    "Auto-close after 4 days",
    "Ticket: Printer on fire 🔥",
    "顧客サポート設定",
    "VIP <customers> & partners",
    "C:\\Users\\admin\\export.csv",
    "Slack integration",
    "Password policy",
    "Über-admin",
    "API token #1",
    "",
    "Escalation: tier\u{a0}2",
];

const CHANGES: [&str; 24] = [
    "Name changed from Ada to Ada Lovelace",
    "Role changed from \"Agent\" to \"Administrator\"",
    "{:subject=>\"Hello\", :priority=>\"high\", :tags=>[\"vip\", \"urgent\"]}",
    "Signed in from Chrome on macOS",
    "Exported 1,204 tickets",
    "Line one\nLine two\r\nLine three\ttabbed",
    "Path set to C:\\Program Files\\Zendesk\\ and \\\\server\\share",
    "Description: &lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot; &#39;apos&#39;",
    "名前を「山田」から「田中」に変更しました",
    "Статус изменён на «закрыт»",
    "Added emoji reactions 🎉👍🏽👨‍👩‍👧 to macro",
    "Combining: e\u{301} vs é, zero\u{200b}width, RTL \u{202e}txet",
    "Trigger \"Notify requester\" conditions: {:all=>[{:field=>\"status\", :operator=>\"is\", :value=>\"new\"}]}",
    "Control chars: \u{1}\u{7}\u{1b}[0m end",
    "Two-factor authentication enabled",
    "Deleted user O'Brien <obrien@example.com>",
    "JSON inside: {\"a\": [1, 2, {\"b\": null}]}",
    "مرحبا — changed language to Arabic",
    "Quote \" backslash \\ slash / done",
    "IP restrictions updated: 203.0.113.0/24, 2001:db8::/32",
    "API token \"CI deploy\" created",
    "Brand 'Acme Ünïcödé' renamed",
    "Price set to 4.99 € (was £3.50)",
    "Trailing spaces and a newline   \n",
];

/// Several KB of mixed text; long descriptions are prefixes of it.
fn long_text() -> &'static str {
    static LONG: OnceLock<String> = OnceLock::new();
    LONG.get_or_init(|| {
        let mut s = String::with_capacity(8192);
        let mut k = 0;
        while s.len() < 7000 {
            s.push_str(CHANGES[k % CHANGES.len()]);
            s.push_str(" | ");
            k += 1;
        }
        s
    })
}

impl Account {
    /// Generates the account. `records` may be 0; `end <= start` is treated as a one-second range.
    pub fn new(
        seed: u64,
        records: u64,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        extra_fields: bool,
    ) -> Account {
        let n = records as usize;
        let start = start.timestamp();
        let end = end.timestamp().max(start + 1);
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut ts = Vec::with_capacity(n);

        push_boundary_records(&mut ts, &mut rng, n / 8, start, end);
        push_clusters(&mut ts, &mut rng, n, start, end);
        while ts.len() < n {
            ts.push(rng.i64(start..end));
        }
        ts.sort_unstable();

        let mut ids = Vec::with_capacity(n);
        let mut next: i64 = 360_000_000_000 + rng.i64(0..1_000_000);
        let mut big = 0i64;
        for i in 0..n {
            // About 0.2% of ids (and always one) sit above 2^53; odd offsets are never f64-exact.
            if mix(seed ^ 0xB16 ^ i as u64) % 500 == 0 || i == n / 2 {
                ids.push(BIG_ID_BASE + 2 * big);
                big += 1;
            } else {
                next += 1 + rng.i64(0..3);
                ids.push(next);
            }
        }
        let mut s = 0;
        while s < n {
            let mut e = s + 1;
            while e < n && ts[e] == ts[s] {
                e += 1;
            }
            rng.shuffle(&mut ids[s..e]);
            s = e;
        }

        let mut by_id: Vec<(i64, u32)> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u32))
            .collect();
        by_id.sort_unstable();

        Account {
            seed,
            extra_fields,
            ts,
            ids,
            by_id,
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Whether the account has no records.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// `created_at` of every record in storage order (ascending; ties in storage order).
    pub fn timestamps(&self) -> &[i64] {
        &self.ts
    }

    /// The `id` of the record at position `i`.
    pub fn id(&self, i: usize) -> i64 {
        self.ids[i]
    }

    /// The `created_at` of the record at position `i`.
    pub fn created_at(&self, i: usize) -> DateTime<Utc> {
        DateTime::from_timestamp(self.ts[i], 0).expect("generated timestamps are in chrono's range")
    }

    /// Position of the record with this id.
    pub fn find(&self, id: i64) -> Option<usize> {
        self.by_id
            .binary_search_by_key(&id, |&(k, _)| k)
            .ok()
            .map(|k| self.by_id[k].1 as usize)
    }

    /// First position whose `created_at >= t` (unix seconds).
    pub(crate) fn lower_bound(&self, t: i64) -> usize {
        self.ts.partition_point(|&x| x < t)
    }

    /// One record as Zendesk renders it; `for_show` adds `action_label`, which list responses
    /// often omit.
    pub fn record_json(&self, i: usize, for_show: bool) -> String {
        let mut buf = Vec::with_capacity(512);
        self.write_record(&mut buf, i, for_show);
        String::from_utf8(buf).expect("records render as UTF-8")
    }

    /// The records with `from <= created_at < to` that match `filter`, in ascending storage order.
    /// Ignores late arrival: this is what the account holds, not what it shows at a given instant.
    pub fn expected(
        &self,
        filter: &SimFilter,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<ExpectedRecord> {
        let a = self.lower_bound(from.timestamp());
        let b = self.lower_bound(to.timestamp()).max(a);
        (a..b)
            .filter(|&i| self.matches(i, filter))
            .map(|i| {
                let f = self.fields(i);
                ExpectedRecord {
                    index: i,
                    id: f.id,
                    created_at: self.created_at(i),
                    action: f.action.to_owned(),
                    actor_id: f.actor_id,
                    source_type: f.source_type.to_owned(),
                    source_id: f.source_id,
                    ip_address: f.ip.map(str::to_owned),
                    json: self.record_json(i, false),
                }
            })
            .collect()
    }

    /// Whether the record at `i` passes the non-time filters.
    pub(crate) fn matches(&self, i: usize, filter: &SimFilter) -> bool {
        if filter.is_empty() {
            return true;
        }
        let f = self.fields(i);
        (filter.actions.is_empty() || filter.actions.iter().any(|a| a == f.action))
            && filter
                .source_type
                .as_deref()
                .is_none_or(|s| s == f.source_type)
            && filter.source_id.is_none_or(|s| s == f.source_id)
            && filter.actor_id.is_none_or(|a| a == f.actor_id)
            && filter
                .ip_address
                .as_deref()
                .is_none_or(|ip| f.ip == Some(ip))
    }

    fn hash(&self, i: usize, salt: u64) -> u64 {
        mix(self.seed ^ (i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03) ^ salt)
    }

    /// Derives every field of the record at `i`.
    pub(crate) fn fields(&self, i: usize) -> Fields {
        let h = self.hash(i, 1);
        let h2 = self.hash(i, 2);

        let (action, action_label) = match h % 100 {
            0..40 => ACTIONS[0],
            40..60 => ACTIONS[1],
            60..75 => ACTIONS[2],
            75..85 => ACTIONS[3],
            85..95 => ACTIONS[4],
            _ => ACTIONS[5 + (h / 100 % 4) as usize],
        };

        let (actor, actor_id, actor_name) = actor_of(h);
        let change = change_of(h2);

        let ip = if actor == 0 || (h2 >> 40) % 10 == 0 {
            None
        } else {
            Some(IPS[((h2 >> 44) % IPS.len() as u64) as usize])
        };

        let type_idx = match (h2 >> 16) % 100 {
            0..30 => 0,
            30..50 => 1,
            50..65 => 2,
            65..70 => 3,
            70..75 => 4,
            75..85 => 5,
            85..90 => 6,
            90..95 => 7,
            _ => 8,
        };
        let k = (h2 >> 24) % SOURCES_PER_TYPE;
        let source_id = 400_000_000 + type_idx as i64 * 1_000_000 + k as i64 * 37;
        let source_label =
            SOURCE_LABELS[((k + type_idx as u64) % SOURCE_LABELS.len() as u64) as usize];

        let h3 = self.hash(i, 3);
        let extra = match (self.extra_fields, h3 % 200) {
            (true, 0 | 1) => Extra::RiskScore(((h3 >> 8) % 1000) as u32),
            (true, 2) => Extra::Metadata,
            _ => Extra::None,
        };

        Fields {
            id: self.ids[i],
            ts: self.ts[i],
            url_json: (h3 >> 20) % 10 != 0,
            action,
            action_label,
            label_in_list: (h3 >> 30) % 10 < 3,
            actor_id,
            actor_name,
            change,
            ip,
            source_type: SOURCE_TYPES[type_idx],
            source_id,
            source_label,
            extra,
        }
    }

    /// Appends the record at `i` as one JSON object.
    pub(crate) fn write_record(&self, buf: &mut Vec<u8>, i: usize, for_show: bool) {
        let f = self.fields(i);
        buf.extend_from_slice(b"{\"url\":\"https://");
        buf.extend_from_slice(SUBDOMAIN.as_bytes());
        buf.extend_from_slice(b".zendesk.com/api/v2/audit_logs/");
        write_int(buf, f.id);
        if f.url_json {
            buf.extend_from_slice(b".json");
        }
        buf.extend_from_slice(b"\",\"id\":");
        write_int(buf, f.id);
        if for_show || f.label_in_list {
            buf.extend_from_slice(b",\"action_label\":");
            write_str(buf, f.action_label);
        }
        buf.extend_from_slice(b",\"actor_id\":");
        write_int(buf, f.actor_id);
        if let Some(name) = f.actor_name {
            buf.extend_from_slice(b",\"actor_name\":");
            if f.actor_id > 0 {
                // Human actors: "First Last", composed without allocating.
                let last = LAST_NAMES[(f.actor_id as usize / 7) % LAST_NAMES.len()];
                buf.push(b'"');
                escape_into(buf, name);
                buf.push(b' ');
                escape_into(buf, last);
                buf.push(b'"');
            } else {
                write_str(buf, name);
            }
        }
        buf.extend_from_slice(b",\"source_id\":");
        write_int(buf, f.source_id);
        buf.extend_from_slice(b",\"source_type\":");
        write_str(buf, f.source_type);
        buf.extend_from_slice(b",\"source_label\":");
        write_str(buf, f.source_label);
        buf.extend_from_slice(b",\"action\":");
        write_str(buf, f.action);
        buf.extend_from_slice(b",\"change_description\":");
        match f.change {
            Some(c) => write_str(buf, c),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"ip_address\":");
        match f.ip {
            Some(ip) => write_str(buf, ip),
            None => buf.extend_from_slice(b"null"),
        }
        buf.extend_from_slice(b",\"created_at\":\"");
        buf.extend_from_slice(&format_ts(f.ts));
        buf.push(b'"');
        match f.extra {
            Extra::None => {}
            Extra::RiskScore(r) => {
                buf.extend_from_slice(b",\"risk_score\":0.");
                buf.push(b'0' + (r / 100) as u8);
                buf.push(b'0' + (r / 10 % 10) as u8);
                buf.push(b'0' + (r % 10) as u8);
            }
            Extra::Metadata => buf.extend_from_slice(
                br#","metadata":{"region":"eu-west-1","flags":["mfa","sso"],"session":{"id":"a1b2","depth":2}}"#,
            ),
        }
        buf.push(b'}');
    }
}

/// Boundary-stressing timestamps: the range's first and last second, every UTC midnight with the
/// seconds either side, then exact hours spread evenly, within `budget` records.
fn push_boundary_records(
    ts: &mut Vec<i64>,
    rng: &mut fastrand::Rng,
    budget: usize,
    start: i64,
    end: i64,
) {
    let limit = ts.len() + budget;
    let push = |ts: &mut Vec<i64>, t: i64| {
        if ts.len() < limit && (start..end).contains(&t) {
            ts.push(t);
        }
    };
    push(ts, start);
    push(ts, end - 1);
    let first_midnight = start.div_euclid(86_400) * 86_400 + 86_400;
    let mut m = first_midnight;
    while m < end && ts.len() < limit {
        push(ts, m);
        push(ts, m - 1);
        push(ts, m + 1);
        // A second record on the midnight itself: windows must split ties on the boundary too.
        if rng.bool() {
            push(ts, m);
        }
        m += 86_400;
    }
    let first_hour = start.div_euclid(3600) * 3600 + 3600;
    let hours = ((end - first_hour).max(0) / 3600 + 1) as usize;
    let left = limit.saturating_sub(ts.len());
    if left == 0 {
        return;
    }
    let stride = hours.div_ceil(left).max(1) as i64;
    let mut h = first_hour;
    while h < end && ts.len() < limit {
        if h % 86_400 != 0 {
            push(ts, h);
        }
        h += 3600 * stride;
    }
}

/// A few same-second clusters (~1,000 records each for large accounts): one exactly on an hour
/// boundary, one on the last second of a day, one anywhere.
fn push_clusters(ts: &mut Vec<i64>, rng: &mut fastrand::Rng, n: usize, start: i64, end: i64) {
    let size = (n / 20).min(1000);
    if size < 2 {
        return;
    }
    let span_hours = (end - start) / 3600;
    let on_hour = if span_hours >= 2 {
        (start.div_euclid(3600) + 1 + rng.i64(0..span_hours - 1)) * 3600
    } else {
        start
    };
    let day_end = (on_hour.div_euclid(86_400) + 1) * 86_400 - 1;
    let day_end = if day_end < end { day_end } else { end - 1 };
    for t in [on_hour, day_end, rng.i64(start..end)] {
        for _ in 0..size {
            if ts.len() >= n {
                return;
            }
            ts.push(t);
        }
    }
}

/// Formats unix seconds as `YYYY-MM-DDTHH:MM:SSZ` without going through chrono's formatter, which
/// would dominate page rendering.
pub(crate) fn format_ts(t: i64) -> [u8; 20] {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut out = *b"0000-00-00T00:00:00Z";
    let y = y.clamp(0, 9999);
    let put = |out: &mut [u8; 20], at: usize, v: i64, width: usize| {
        let mut v = v;
        for k in (0..width).rev() {
            out[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(&mut out, 0, y, 4);
    put(&mut out, 5, m, 2);
    put(&mut out, 8, d, 2);
    put(&mut out, 11, secs / 3600, 2);
    put(&mut out, 14, secs / 60 % 60, 2);
    put(&mut out, 17, secs % 60, 2);
    out
}

fn write_int(buf: &mut Vec<u8>, v: i64) {
    let mut tmp = [0u8; 20];
    let mut at = tmp.len();
    let neg = v < 0;
    let mut u = v.unsigned_abs();
    loop {
        at -= 1;
        tmp[at] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if neg {
        buf.push(b'-');
    }
    buf.extend_from_slice(&tmp[at..]);
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    escape_into(buf, s);
    buf.push(b'"');
}

/// JSON string escaping: quotes, backslashes and control characters; everything else is raw UTF-8.
pub(crate) fn escape_into(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut run = 0;
    for (k, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..0x20 => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[run..k]);
        if esc.is_empty() {
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[(b >> 4) as usize]);
            buf.push(HEX[(b & 15) as usize]);
        } else {
            buf.extend_from_slice(esc);
        }
        run = k + 1;
    }
    buf.extend_from_slice(&bytes[run..]);
}

/// Who did it, from the record's hash: a system actor (negative id) or one of the agents, and
/// the name, absent from old-style records.
fn actor_of(h: u64) -> (usize, i64, Option<&'static str>) {
    let actor = match (h >> 8) % 100 {
        0..8 => 0,
        8..10 => 1,
        r => 2 + (r as usize + (h >> 16) as usize) % (ACTORS - 2),
    };
    let (actor_id, name) = match actor {
        0 => (-1, "Zendesk"),
        1 => (-2, "Zendesk API"),
        a => (361_000_000_000 + a as i64 * 104_729, ""),
    };
    let actor_name = match (h >> 24) % 100 {
        // actor_name was added later than the other fields: old-style records lack it.
        0..3 => None,
        _ if actor >= 2 => Some(FIRST_NAMES[(actor - 2) % 8]),
        _ => Some(name),
    };
    (actor, actor_id, actor_name)
}

/// The change description, from the record's second hash: absent, empty, long unicode text or
/// one of the samples.
fn change_of(h2: u64) -> Option<&'static str> {
    match (h2 % 100, h2 >> 8) {
        (0..5, _) => None,
        (5..10, _) => Some(""),
        (10..13, r) => {
            let long = long_text();
            let mut len = 1000 + (r % 6000) as usize;
            while !long.is_char_boundary(len) {
                len -= 1;
            }
            Some(&long[..len])
        }
        (_, r) => Some(CHANGES[(r % CHANGES.len() as u64) as usize]),
    }
}

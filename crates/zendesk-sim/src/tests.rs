//! Tests of the simulator against the documented (and undocumented) facts of the Audit Logs API.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::account::format_ts;
use super::server::parse_ts;
use super::*;

mod offset;

const TOKEN: &str = "Bearer sim-token";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

fn z(d: DateTime<Utc>) -> String {
    d.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn two_days(records: u64) -> SimConfig {
    SimConfig::new(
        records,
        t("2024-03-01T00:00:00Z"),
        t("2024-03-03T00:00:00Z"),
    )
}

async fn sim(cfg: SimConfig) -> Simulator {
    Simulator::start(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator starts")
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("valid JSON body")
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.expect("body");
    Reply {
        status,
        headers,
        body,
    }
}

async fn list(s: &Simulator, c: &reqwest::Client, q: &[(&str, String)]) -> Reply {
    let url = format!("{}/api/v2/audit_logs", s.base_url());
    send(c.get(url).header("authorization", TOKEN).query(q)).await
}

fn ids_of(page: &Value) -> Vec<i64> {
    page["audit_logs"]
        .as_array()
        .expect("audit_logs array")
        .iter()
        .map(|r| r["id"].as_i64().expect("integer id"))
        .collect()
}

/// Walks a window with cursor pagination; ascending builds each query, descending follows
/// `links.next` to check it preserves every parameter.
async fn cursor_walk(
    s: &Simulator,
    c: &reqwest::Client,
    base: &[(&str, String)],
    asc: bool,
) -> Vec<i64> {
    let mut q = base.to_vec();
    q.push(("page[size]", "100".into()));
    if asc {
        q.push(("sort", "created_at".into()));
    }
    let mut page = list(s, c, &q).await;
    let mut ids = Vec::new();
    loop {
        assert_eq!(page.status, 200, "{}", page.body);
        let v = page.json();
        ids.extend(ids_of(&v));
        if !v["meta"]["has_more"].as_bool().expect("has_more") {
            assert!(v["links"]["next"].is_null());
            break;
        }
        if asc {
            let cursor = v["meta"]["after_cursor"]
                .as_str()
                .expect("cursor")
                .to_owned();
            let mut q2 = q.clone();
            q2.push(("page[after]", cursor));
            page = list(s, c, &q2).await;
        } else {
            let next = v["links"]["next"].as_str().expect("next link");
            assert!(next.starts_with(&s.base_url()));
            page = send(c.get(next).header("authorization", TOKEN)).await;
        }
    }
    ids
}

fn window_query(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        ("filter[created_at][]", z(from)),
        ("filter[created_at][]", z(to)),
    ]
}

#[test]
fn account_is_deterministic() {
    let cfg = two_days(5_000);
    let a = Account::new(7, 5_000, cfg.start, cfg.end, true);
    let b = Account::new(7, 5_000, cfg.start, cfg.end, true);
    let c = Account::new(8, 5_000, cfg.start, cfg.end, true);
    assert_eq!(a.timestamps(), b.timestamps());
    assert!((0..a.len()).all(|i| a.record_json(i, false) == b.record_json(i, false)));
    assert_ne!(
        (0..50).map(|i| a.record_json(i, true)).collect::<Vec<_>>(),
        (0..50).map(|i| c.record_json(i, true)).collect::<Vec<_>>()
    );
}

#[test]
fn ids_are_unique_findable_and_some_exceed_f64() {
    let cfg = two_days(20_000);
    let a = Account::new(cfg.seed, cfg.records, cfg.start, cfg.end, false);
    assert_eq!(a.len(), 20_000);
    let ids: HashSet<i64> = (0..a.len()).map(|i| a.id(i)).collect();
    assert_eq!(ids.len(), a.len());
    assert!(ids.iter().filter(|&&id| id > 1 << 53).count() > 10);
    assert!((0..a.len()).all(|i| a.find(a.id(i)) == Some(i)));
    assert_eq!(a.find(1), None);
    // Tiny accounts still hold one such id.
    let tiny = Account::new(1, 3, cfg.start, cfg.end, false);
    assert!((0..3).any(|i| tiny.id(i) > 1 << 53));
}

#[test]
fn timestamps_cover_boundaries_and_clusters() {
    let cfg = two_days(20_000);
    let a = Account::new(cfg.seed, cfg.records, cfg.start, cfg.end, false);
    let ts = a.timestamps();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(ts[0], cfg.start.timestamp());
    assert_eq!(*ts.last().expect("records"), cfg.end.timestamp() - 1);
    let midnight = t("2024-03-02T00:00:00Z").timestamp();
    for probe in [midnight - 1, midnight, midnight + 1] {
        assert!(ts.binary_search(&probe).is_ok(), "no record at {probe}");
    }
    let hours = (1..48)
        .filter(|h| {
            ts.binary_search(&(cfg.start.timestamp() + h * 3600))
                .is_ok()
        })
        .count();
    assert_eq!(hours, 47);
    // Same-second clusters of ~1,000 records whose ids are not in order.
    let mut best = (0, 0);
    let mut s = 0;
    while s < ts.len() {
        let e = s + ts[s..].partition_point(|&x| x == ts[s]);
        if e - s > best.1 - best.0 {
            best = (s, e);
        }
        s = e;
    }
    assert!(best.1 - best.0 >= 1000);
    let cluster: Vec<i64> = (best.0..best.1).map(|i| a.id(i)).collect();
    assert!(cluster.windows(2).any(|w| w[0] > w[1]));
}

#[test]
fn records_are_valid_and_varied() {
    let cfg = two_days(20_000);
    let a = Account::new(cfg.seed, cfg.records, cfg.start, cfg.end, true);
    let (mut null_desc, mut empty_desc, mut long_desc, mut no_label) = (0, 0, 0, 0);
    let (mut extra, mut null_ip, mut negative_actor, mut bare_url) = (0, 0, 0, 0);
    for i in 0..a.len() {
        let list: Value = serde_json::from_str(&a.record_json(i, false)).expect("record JSON");
        let show: Value = serde_json::from_str(&a.record_json(i, true)).expect("record JSON");
        assert_eq!(list["id"].as_i64(), Some(a.id(i)));
        assert!(show["action_label"].is_string());
        assert_eq!(
            list["created_at"].as_str(),
            Some(z(a.created_at(i)).as_str())
        );
        let url = list["url"].as_str().expect("url");
        assert!(url.contains(&format!("/api/v2/audit_logs/{}", a.id(i))));
        bare_url += usize::from(!url.ends_with(".json"));
        no_label += usize::from(list.get("action_label").is_none());
        match &list["change_description"] {
            Value::Null => null_desc += 1,
            Value::String(s) if s.is_empty() => empty_desc += 1,
            Value::String(s) if s.len() > 1000 => long_desc += 1,
            _ => {}
        }
        extra += usize::from(list.get("risk_score").is_some() || list.get("metadata").is_some());
        null_ip += usize::from(list["ip_address"].is_null());
        negative_actor += usize::from(list["actor_id"].as_i64().expect("actor") < 0);
    }
    for (name, n) in [
        ("null", null_desc),
        ("empty", empty_desc),
        ("long", long_desc),
        ("no label", no_label),
        ("extra", extra),
        ("null ip", null_ip),
        ("system actor", negative_actor),
        ("bare url", bare_url),
    ] {
        assert!(n > 20, "too few {name}: {n}");
    }
    let plain = Account::new(cfg.seed, 2_000, cfg.start, cfg.end, false);
    assert!((0..plain.len()).all(|i| !plain.record_json(i, false).contains("risk_score")));
}

#[test]
fn timestamp_format_and_parse_are_exact() {
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..10_000 {
        let s = rng.i64(-2_000_000_000..4_000_000_000);
        let chrono = DateTime::from_timestamp(s, 0).expect("in range");
        assert_eq!(format_ts(s), z(chrono).as_bytes());
        assert_eq!(parse_ts(&z(chrono)), Some(s));
    }
    for bad in [
        "2024-01-01T00:00:00.000Z",
        "2024-01-01 00:00:00Z",
        "2024-01-01T00:00:00+00:00",
        "2024-1-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01",
    ] {
        assert_eq!(parse_ts(bad), None, "{bad}");
    }
}

#[tokio::test]
async fn cursor_walk_matches_expected_under_both_bounds() {
    for bounds in [Bounds::Inclusive, Bounds::Exclusive] {
        let mut cfg = two_days(20_000);
        cfg.bounds = bounds;
        cfg.rate_limit_per_minute = 100_000;
        let s = sim(cfg).await;
        let c = reqwest::Client::new();
        let acc = s.account().clone();
        let from = t("2024-03-01T23:00:00Z");
        let to = t("2024-03-02T01:00:00Z");
        let ts = acc.timestamps();
        assert!(ts.binary_search(&from.timestamp()).is_ok());
        assert!(ts.binary_search(&to.timestamp()).is_ok());
        let second = TimeDelta::seconds(1);
        let expected = match bounds {
            Bounds::Inclusive => acc.expected(&SimFilter::default(), from, to + second),
            Bounds::Exclusive => acc.expected(&SimFilter::default(), from + second, to),
        };
        let want: Vec<i64> = expected.iter().map(|e| e.id).collect();
        assert!(want.len() > 200);
        let q = window_query(from, to);
        assert_eq!(cursor_walk(&s, &c, &q, true).await, want, "{bounds:?} asc");
        let mut desc = cursor_walk(&s, &c, &q, false).await;
        desc.reverse();
        assert_eq!(desc, want, "{bounds:?} desc");
        s.stop().await;
    }
}

#[tokio::test]
async fn a_record_served_late_comes_once_among_later_records_at_any_page_boundary() {
    let mut cfg = two_days(2_000);
    cfg.rate_limit_per_minute = 100_000;
    let (p, places) = (500, 7);
    let c = reqwest::Client::new();
    let probe = sim(cfg.clone()).await;
    let acc = probe.account().clone();
    let late = acc.id(p);
    let whole = window_query(t("2024-03-01T00:00:00Z"), t("2024-03-03T00:00:00Z"));
    // Ends a few records after the late one, before its new place: it is served last there.
    let short = window_query(acc.created_at(p - 2), acc.created_at(p + 3));
    let mut natural = Vec::new();
    for q in [&whole, &short] {
        natural.push(cursor_walk(&probe, &c, q, true).await);
    }
    probe.stop().await;
    cfg.faults.served_late = Some((p, places));
    let s = sim(cfg).await;
    for (q, natural) in [&whole, &short].into_iter().zip(natural) {
        let at = natural.iter().position(|&id| id == late).unwrap();
        let mut want = natural.clone();
        want.remove(at);
        want.insert((at + places).min(want.len()), late);
        // Every page size puts a page boundary somewhere else around the late record.
        for size in [1, 3, 7, 8, 100] {
            let mut q = q.clone();
            q.push(("sort", "created_at".into()));
            q.push(("page[size]", size.to_string()));
            let mut ids = Vec::new();
            let mut page = list(&s, &c, &q).await.json();
            loop {
                ids.extend(ids_of(&page));
                if !page["meta"]["has_more"].as_bool().unwrap() {
                    break;
                }
                let mut next = q.clone();
                next.push((
                    "page[after]",
                    page["meta"]["after_cursor"].as_str().unwrap().into(),
                ));
                page = list(&s, &c, &next).await.json();
            }
            assert_eq!(ids, want, "page size {size}");
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn page_before_walks_back() {
    let mut cfg = two_days(2_000);
    cfg.rate_limit_per_minute = 100_000;
    let s = sim(cfg).await;
    let c = reqwest::Client::new();
    let q = |extra: Vec<(&'static str, String)>| {
        let mut q = vec![
            ("page[size]", "7".to_owned()),
            ("sort", "created_at".to_owned()),
        ];
        q.extend(extra);
        q
    };
    let p1 = list(&s, &c, &q(vec![])).await.json();
    let after = p1["meta"]["after_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let p2 = list(&s, &c, &q(vec![("page[after]", after.clone())]))
        .await
        .json();
    let before = p2["meta"]["before_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let back = list(&s, &c, &q(vec![("page[before]", before)]))
        .await
        .json();
    assert_eq!(ids_of(&back), ids_of(&p1));
    assert!(!back["meta"]["has_more"].as_bool().expect("has_more"));
    let both = list(
        &s,
        &c,
        &q(vec![
            ("page[after]", after.clone()),
            ("page[before]", after),
        ]),
    )
    .await;
    assert_eq!(both.status, 400);
}

#[tokio::test]
async fn filters_select_expected_records() {
    let mut cfg = two_days(20_000);
    cfg.rate_limit_per_minute = 100_000;
    let s = sim(cfg.clone()).await;
    let c = reqwest::Client::new();
    let acc = s.account().clone();
    let probe = acc.expected(&SimFilter::default(), cfg.start, cfg.end);
    let sample = probe
        .iter()
        .find(|e| e.ip_address.is_some() && e.actor_id > 0)
        .expect("a human record");
    let cases = vec![
        (
            SimFilter {
                actor_id: Some(sample.actor_id),
                ..SimFilter::default()
            },
            vec![("filter[actor_id]", sample.actor_id.to_string())],
        ),
        (
            SimFilter {
                source_type: Some(sample.source_type.clone()),
                source_id: Some(sample.source_id),
                ..SimFilter::default()
            },
            vec![
                ("filter[source_type]", sample.source_type.clone()),
                ("filter[source_id]", sample.source_id.to_string()),
            ],
        ),
        (
            SimFilter {
                ip_address: sample.ip_address.clone(),
                ..SimFilter::default()
            },
            vec![("filter[ip_address]", sample.ip_address.clone().expect("ip"))],
        ),
        (
            SimFilter {
                actions: vec!["login".into(), "destroy".into()],
                ..SimFilter::default()
            },
            vec![
                ("filter[action][]", "login".into()),
                ("filter[action][]", "destroy".into()),
            ],
        ),
    ];
    let from = t("2024-03-01T12:00:00Z");
    let to = t("2024-03-02T12:00:00Z");
    for (filter, params) in cases {
        let want: Vec<i64> = acc
            .expected(&filter, from, to + TimeDelta::seconds(1))
            .iter()
            .map(|e| e.id)
            .collect();
        assert!(!want.is_empty() && want.len() < 8_000, "{filter:?}");
        let mut q = window_query(from, to);
        q.extend(params);
        assert_eq!(cursor_walk(&s, &c, &q, true).await, want, "{filter:?}");
    }
    let bad = list(&s, &c, &[("filter[source_id]", "1".into())]).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test]
async fn invalid_requests_answer_400() {
    let s = sim(two_days(100)).await;
    let c = reqwest::Client::new();
    let one = list(
        &s,
        &c,
        &[("filter[created_at][]", "2024-03-01T00:00:00Z".into())],
    )
    .await;
    assert_eq!(one.status, 400);
    assert_eq!(one.json()["errors"][0]["code"], "InvalidValue");
    for (a, b) in [
        ("2024-03-01T00:00:00.000Z", "2024-03-02T00:00:00Z"),
        ("2024-03-01 00:00:00", "2024-03-02T00:00:00Z"),
        ("2024-03-02T00:00:00Z", "2024-03-01T00:00:00Z"),
    ] {
        let r = list(
            &s,
            &c,
            &[
                ("filter[created_at][]", a.into()),
                ("filter[created_at][]", b.into()),
            ],
        )
        .await;
        assert_eq!(r.status, 400, "{a} {b}");
    }
    let three = vec![("filter[created_at][]", "2024-03-01T00:00:00Z".to_owned()); 3];
    assert_eq!(list(&s, &c, &three).await.status, 400);
    for size in ["0", "101", "x"] {
        assert_eq!(
            list(&s, &c, &[("page[size]", size.into())]).await.status,
            400
        );
    }
    let r = list(
        &s,
        &c,
        &[
            ("page[size]", "10".into()),
            ("page[after]", "bm90LWEtY3Vyc29y".into()),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "InvalidCursor");
    assert_eq!(s.stats().responses_400, 9);
}

#[tokio::test]
async fn authentication_and_plan() {
    let mut cfg = two_days(100);
    cfg.api_token = Some(("admin@example.com".into(), "tok".into()));
    let s = sim(cfg.clone()).await;
    let c = reqwest::Client::new();
    let url = format!("{}/api/v2/audit_logs", s.base_url());
    let none = send(c.get(&url)).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"], "Couldn't authenticate you");
    let wrong = send(c.get(&url).bearer_auth("nope")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(send(c.get(&url).bearer_auth("sim-token")).await.status, 200);
    let basic = send(
        c.get(&url)
            .basic_auth("admin@example.com/token", Some("tok")),
    )
    .await;
    assert_eq!(basic.status, 200);
    assert_eq!(s.stats().responses_401, 2);

    cfg.enterprise = false;
    let s = sim(cfg).await;
    for r in [
        c.get(format!("{}/api/v2/audit_logs", s.base_url())),
        c.get(format!("{}/api/v2/audit_logs/1", s.base_url())),
        c.post(format!("{}/api/v2/audit_logs/export", s.base_url())),
    ] {
        let r = send(r.bearer_auth("sim-token")).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["error"], "Forbidden");
    }
}

#[tokio::test]
async fn show_renders_one_record_or_404() {
    let s = sim(two_days(500)).await;
    let c = reqwest::Client::new();
    let acc = s.account().clone();
    let big = (0..acc.len())
        .find(|&i| acc.id(i) > 1 << 53)
        .expect("big id");
    for suffix in ["", ".json"] {
        let url = format!("{}/api/v2/audit_logs/{}{suffix}", s.base_url(), acc.id(big));
        let r = send(c.get(url).header("authorization", TOKEN)).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            format!("{{\"audit_log\":{}}}", acc.record_json(big, true))
        );
        assert!(r.body.contains(&format!("\"id\":{}", acc.id(big))));
    }
    let url = format!("{}/api/v2/audit_logs/12345", s.base_url());
    let r = send(c.get(url).header("authorization", TOKEN)).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        serde_json::json!({"error":"RecordNotFound","description":"Not found"})
    );
}

#[tokio::test]
async fn export_allows_one_request_a_minute() {
    let s = sim(two_days(100)).await;
    let c = reqwest::Client::new();
    let url = format!("{}/api/v2/audit_logs/export", s.base_url());
    let q = window_query(t("2024-03-01T00:00:00Z"), t("2024-03-02T00:00:00Z"));
    let first = send(c.post(&url).header("authorization", TOKEN).query(&q)).await;
    assert_eq!(first.status, 202);
    assert!(first.body.is_empty());
    assert_eq!(
        first.header("zendesk-ratelimit-audit-logs-export"),
        Some("total=1; remaining=0; resets=60")
    );
    let second = send(c.post(&url).header("authorization", TOKEN).query(&q)).await;
    assert_eq!(second.status, 429);
    let wait: u64 = second
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&wait));
    let bad = send(
        c.post(&url)
            .header("authorization", TOKEN)
            .query(&[("filter[created_at][]", "2024-03-01")]),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(s.stats().export_requests, 3);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let mut cfg = two_days(100);
    cfg.rate_limit_per_minute = 3;
    let s = sim(cfg).await;
    let c = reqwest::Client::new();
    // A minute boundary may reset the count once; ten requests always cross the limit.
    let mut seen = None;
    for _ in 0..10 {
        let r = list(&s, &c, &[]).await;
        assert_eq!(r.header("x-rate-limit"), Some("3"));
        assert!(r.header("x-rate-limit-remaining").is_some());
        if r.status == 429 {
            seen = Some(r);
            break;
        }
    }
    let r = seen.expect("a 429 within ten requests");
    assert_eq!(r.header("x-rate-limit-remaining"), Some("0"));
    let wait: u64 = r
        .header("retry-after")
        .expect("retry-after")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&wait));
    assert!(s.stats().responses_429 >= 1);
}

#[tokio::test]
async fn truncate_fault_breaks_json() {
    let mut cfg = two_days(1_000);
    cfg.faults.truncate_rate = 1.0;
    let s = sim(cfg).await;
    let c = reqwest::Client::new();
    let r = list(&s, &c, &[("page[size]", "50".into())]).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_str::<Value>(&r.body).is_err());
    assert_eq!(s.stats().truncated, 1);
}

#[tokio::test]
async fn status_reset_and_stall_faults() {
    let mut cfg = two_days(1_000);
    cfg.faults.error_5xx_rate = 1.0;
    let s = sim(cfg.clone()).await;
    let c = reqwest::Client::new();
    let r = list(&s, &c, &[]).await;
    assert!([500, 502, 503].contains(&r.status));
    if r.status == 503 {
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    // Show is never faulted.
    let url = format!("{}/api/v2/audit_logs/{}", s.base_url(), s.account().id(0));
    assert_eq!(
        send(c.get(url).header("authorization", TOKEN)).await.status,
        200
    );

    cfg.faults = Faults {
        reset_rate: 1.0,
        ..Faults::default()
    };
    let s = sim(cfg.clone()).await;
    let url = format!("{}/api/v2/audit_logs", s.base_url());
    let err = c.get(&url).header("authorization", TOKEN).send().await;
    assert!(err.is_err(), "expected a connection error, got {err:?}");
    // Not even a status line reaches the client.
    let mut conn = tokio::net::TcpStream::connect(s.addr())
        .await
        .expect("connect");
    let req =
        format!("GET /api/v2/audit_logs HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut got = Vec::new();
    let _ = conn.read_to_end(&mut got).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    assert_eq!(s.stats().resets, 2);

    cfg.faults = Faults {
        stall_rate: 1.0,
        stall: Duration::from_millis(150),
        ..Faults::default()
    };
    let s = sim(cfg).await;
    let began = Instant::now();
    assert_eq!(list(&s, &c, &[]).await.status, 200);
    assert!(began.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn faults_are_deterministic() {
    let mut cfg = two_days(1_000);
    cfg.faults = Faults {
        error_5xx_rate: 0.2,
        rate_429: 0.2,
        truncate_rate: 0.2,
        seed: 9,
        ..Faults::default()
    };
    cfg.rate_limit_per_minute = 100_000;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let s = sim(cfg.clone()).await;
        let c = reqwest::Client::new();
        let mut statuses = Vec::new();
        for _ in 0..40 {
            let r = list(&s, &c, &[("page[size]", "5".into())]).await;
            statuses.push((r.status, serde_json::from_str::<Value>(&r.body).is_ok()));
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().any(|&(s, ok)| s == 200 && ok));
    assert!(runs[0].iter().any(|&(s, ok)| s == 200 && !ok));
    assert!(runs[0].iter().any(|&(s, _)| s == 429));
}

#[tokio::test]
async fn cursors_can_expire_or_be_refused() {
    let mut cfg = two_days(1_000);
    cfg.faults.cursor_ttl = Some(Duration::from_millis(100));
    let s = sim(cfg.clone()).await;
    let c = reqwest::Client::new();
    let q = vec![("page[size]", "10".to_owned())];
    let first = list(&s, &c, &q).await.json();
    let next = first["links"]["next"].as_str().expect("next").to_owned();
    assert_eq!(
        send(c.get(&next).header("authorization", TOKEN))
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let stale = send(c.get(&next).header("authorization", TOKEN)).await;
    assert_eq!(stale.status, 400);
    assert_eq!(stale.json()["error"], "InvalidCursor");

    cfg.faults = Faults {
        invalid_cursor_rate: 1.0,
        ..Faults::default()
    };
    let s = sim(cfg).await;
    let first = list(&s, &c, &q).await;
    assert_eq!(first.status, 200, "a first page has no cursor to refuse");
    let next = first.json()["links"]["next"]
        .as_str()
        .expect("next")
        .to_owned();
    assert_eq!(
        send(c.get(&next).header("authorization", TOKEN))
            .await
            .status,
        400
    );
    assert_eq!(s.stats().invalid_cursors, 1);
}

#[tokio::test]
async fn late_arrivals_stay_hidden() {
    let now = Utc::now();
    let mut cfg = SimConfig::new(5_000, now - TimeDelta::hours(1), now + TimeDelta::hours(1));
    cfg.faults.late_arrival = Some(Duration::from_secs(600));
    cfg.rate_limit_per_minute = 100_000;
    let s = sim(cfg.clone()).await;
    let c = reqwest::Client::new();
    let before = Utc::now().timestamp();
    let ids = cursor_walk(&s, &c, &window_query(cfg.start, cfg.end), true).await;
    let after = Utc::now().timestamp();
    let acc = s.account().clone();
    let visible = |cutoff: i64| acc.timestamps().partition_point(|&x| x <= cutoff - 600);
    assert!(ids.len() >= visible(before) && ids.len() <= visible(after));
    assert!(ids.len() + 1_000 < acc.len());
    let hidden = acc.id(acc.len() - 1);
    let url = format!("{}/api/v2/audit_logs/{hidden}", s.base_url());
    assert_eq!(
        send(c.get(url).header("authorization", TOKEN)).await.status,
        404
    );
}

#[tokio::test]
async fn stats_record_list_windows() {
    let s = sim(two_days(1_000)).await;
    let c = reqwest::Client::new();
    let w1 = window_query(t("2024-03-01T00:00:00Z"), t("2024-03-01T01:00:00Z"));
    let w2 = window_query(t("2024-03-02T00:00:00Z"), t("2024-03-02T01:00:00Z"));
    list(&s, &c, &w1).await;
    list(&s, &c, &w2).await;
    list(&s, &c, &w2).await;
    assert_eq!(s.stats().list_requests, 3);
    assert_eq!(s.list_windows().len(), 3);
    let overlapping = |a: &str, b: &str| s.list_requests_overlapping(t(a), t(b));
    assert_eq!(
        overlapping("2024-03-01T00:30:00Z", "2024-03-01T00:40:00Z"),
        1
    );
    assert_eq!(
        overlapping("2024-03-01T05:00:00Z", "2024-03-01T06:00:00Z"),
        0
    );
    assert_eq!(
        overlapping("2024-03-02T00:59:00Z", "2024-03-03T00:00:00Z"),
        2
    );
    s.reset_stats();
    assert_eq!(s.stats(), Stats::default());
    assert!(s.list_windows().is_empty());
    list(&s, &c, &[]).await;
    assert_eq!(
        overlapping("2030-01-01T00:00:00Z", "2030-01-02T00:00:00Z"),
        1
    );
    s.stop().await;
}

/// Throughput probe for the 1M-record benchmark; run with `--ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a throughput probe for profiling, not a test: run with --ignored --nocapture"]
async fn throughput_one_million() {
    let began = Instant::now();
    let mut cfg = SimConfig::new(
        1_000_000,
        t("2020-01-01T00:00:00Z"),
        t("2024-01-01T00:00:00Z"),
    );
    cfg.rate_limit_per_minute = u32::MAX;
    let s = sim(cfg.clone()).await;
    println!("generate: {:?}", began.elapsed());
    let acc = s.account().clone();
    let began = Instant::now();
    let mut buf = Vec::new();
    for i in 0..acc.len() {
        buf.clear();
        acc.write_record(&mut buf, i, false);
    }
    println!("render 1M: {:?}", began.elapsed());
    let c = reqwest::Client::new();
    let began = Instant::now();
    let ids = cursor_walk(&s, &c, &window_query(cfg.start, cfg.end), true).await;
    assert_eq!(ids.len(), 1_000_000);
    let secs = began.elapsed().as_secs_f64();
    println!("walk: {secs:.2}s, {:.0} records/s", 1e6 / secs);
}

#[tokio::test]
async fn the_token_endpoint_mints_tokens_that_expire_and_refuses_unknown_clients() {
    let mut cfg = two_days(100);
    cfg.oauth_token = None;
    cfg.oauth_client = Some(("client".into(), "secret".into()));
    cfg.token_lifetime = Some(Duration::from_secs(1));
    let s = sim(cfg).await;
    let c = reqwest::Client::new();
    let tokens = format!("{}/oauth/tokens", s.base_url());
    let list = format!("{}/api/v2/audit_logs", s.base_url());
    let grant = |secret: &str, scope: &str| {
        serde_json::json!({
            "grant_type": "client_credentials",
            "client_id": "client",
            "client_secret": secret,
            "scope": scope,
        })
        .to_string()
    };

    let wrong = send(c.post(&tokens).body(grant("nope", "auditlogs:read"))).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"], "invalid_client");
    let other = send(
        c.post(&tokens)
            .body(r#"{"grant_type":"password","client_id":"client","client_secret":"secret"}"#),
    )
    .await;
    assert_eq!(other.status, 400);
    assert_eq!(other.json()["error"], "unsupported_grant_type");

    let minted = send(c.post(&tokens).body(grant("secret", "auditlogs:read"))).await;
    assert_eq!(minted.status, 200);
    let answer = minted.json();
    assert_eq!(answer["token_type"], "bearer");
    assert_eq!(answer["expires_in"], 1);
    let token = answer["access_token"].as_str().unwrap().to_string();
    assert_eq!(send(c.get(&list).bearer_auth(&token)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        send(c.get(&list).bearer_auth(&token)).await.status,
        401,
        "expired"
    );

    // The form encoding works too; a scope that does not read audit logs gets a token, and 403s.
    let form = send(c.post(&tokens).body(
        "grant_type=client_credentials&client_id=client&client_secret=secret&scope=tickets%3Aread",
    ))
    .await;
    assert_eq!(form.status, 200);
    let token = form.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(send(c.get(&list).bearer_auth(&token)).await.status, 403);
    assert_eq!(s.stats().tokens_minted, 2);
}

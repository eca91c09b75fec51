//! The offset form (`page`, `per_page`): its walk, its 10,000-record cap, its order (honoured or
//! ignored) and its `count`.

use chrono::TimeDelta;

use super::*;

#[tokio::test]
async fn offset_walk_and_its_cap() {
    let mut cfg = two_days(20_000);
    cfg.rate_limit_per_minute = 100_000;
    let s = sim(cfg).await;
    let c = reqwest::Client::new();
    let acc = s.account().clone();
    let from = t("2024-03-01T06:00:00Z");
    let to = t("2024-03-01T09:00:00Z");
    let want: Vec<i64> = acc
        .expected(&SimFilter::default(), from, to + TimeDelta::seconds(1))
        .iter()
        .map(|e| e.id)
        .collect();
    let mut q = window_query(from, to);
    q.push(("sort_order", "asc".into()));
    q.push(("per_page", "100".into()));
    let mut got = Vec::new();
    let mut page = list(&s, &c, &q).await.json();
    loop {
        assert_eq!(page["count"].as_u64(), Some(want.len() as u64));
        got.extend(ids_of(&page));
        let Some(next) = page["next_page"].as_str() else {
            break;
        };
        page = send(c.get(next).header("authorization", TOKEN))
            .await
            .json();
    }
    assert_eq!(got, want);

    // Without a time filter the account holds 20,000 records: page 100 is the last allowed.
    let last = list(&s, &c, &[("page", "100".into())]).await;
    assert_eq!(last.status, 200);
    let v = last.json();
    assert_eq!(ids_of(&v).len(), 100);
    assert!(v["next_page"].is_string());
    // Default order is newest first.
    let first = list(&s, &c, &[]).await.json();
    assert_eq!(ids_of(&first)[0], acc.id(acc.len() - 1));
    let over = list(&s, &c, &[("page", "101".into())]).await;
    assert_eq!(over.status, 400);
    assert!(over.body.contains("10000"));
    let over = list(&s, &c, &[("page", "21".into()), ("per_page", "500".into())]).await;
    assert_eq!(over.status, 400);
}

/// Honoured, `sort_order` orders the offset form; ignored, every page comes newest first whatever
/// `sort_by`/`sort_order` say (even values an honouring API refuses), with the same `count`,
/// whatever `per_page` is.
#[tokio::test]
async fn the_offset_form_may_ignore_its_sort_parameters_and_keeps_its_count() {
    let from = t("2024-03-01T06:00:00Z");
    let to = t("2024-03-01T09:00:00Z");
    for offset_sort in [OffsetSort::Honoured, OffsetSort::Ignored] {
        let mut cfg = two_days(20_000);
        cfg.rate_limit_per_minute = 100_000;
        cfg.offset_sort = offset_sort;
        let s = sim(cfg).await;
        let c = reqwest::Client::new();
        let acc = s.account().clone();
        // The query is inclusive (the default): `to`'s own second is in it.
        let want: Vec<i64> = acc
            .expected(&SimFilter::default(), from, to + TimeDelta::seconds(1))
            .iter()
            .map(|e| e.id)
            .collect();
        let newest_first: Vec<i64> = want.iter().rev().copied().collect();
        let page_of = |order: &str, per_page: &str| {
            let mut q = window_query(from, to);
            q.push(("sort_by", "created_at".into()));
            q.push(("sort_order", order.into()));
            q.push(("per_page", per_page.into()));
            q.push(("page", "1".into()));
            q
        };
        let asc = list(&s, &c, &page_of("asc", "100")).await.json();
        let desc = list(&s, &c, &page_of("desc", "100")).await.json();
        let one = list(&s, &c, &page_of("asc", "1")).await.json();
        for page in [&asc, &desc, &one] {
            assert_eq!(
                page["count"].as_u64(),
                Some(want.len() as u64),
                "{offset_sort:?}"
            );
        }
        assert_eq!(ids_of(&desc), newest_first[..100], "{offset_sort:?}");
        let (asc_ids, one_ids) = (ids_of(&asc), ids_of(&one));
        match offset_sort {
            OffsetSort::Honoured => {
                assert_eq!(asc_ids, want[..100]);
                assert_eq!(one_ids, want[..1]);
            }
            OffsetSort::Ignored => {
                assert_eq!(asc_ids, newest_first[..100]);
                assert_eq!(one_ids, newest_first[..1]);
            }
        }
        let odd = list(&s, &c, &page_of("sideways", "100")).await;
        match offset_sort {
            OffsetSort::Honoured => assert_eq!(odd.status, 400, "{}", odd.body),
            OffsetSort::Ignored => assert_eq!(ids_of(&odd.json()), newest_first[..100]),
        }
        // The cursor form's `sort` is documented and honoured either way.
        let mut q = window_query(from, to);
        q.push(("page[size]", "100".into()));
        q.push(("sort", "created_at".into()));
        assert_eq!(ids_of(&list(&s, &c, &q).await.json()), want[..100]);
    }
}

//! The domain's rules, one by one.

use super::*;
use serde_json::json;

#[test]
fn dates_are_the_seed_format_or_rfc_3339_and_nothing_else() {
    let seed = parse_timestamp("d", "2024-10-10 08:30:00").unwrap();
    assert_eq!(seed.to_rfc3339(), "2024-10-10T08:30:00+00:00");
    let rfc = parse_timestamp("d", "2024-10-10T10:30:00+02:00").unwrap();
    assert_eq!(rfc, seed);
    for bad in [
        "",
        "2024-10-10",
        "10/10/2024 08:30:00",
        "2024-13-10 08:30:00",
        "2024-10-10 08:30",
        "yesterday",
        "2024-10-10 08:30:00; DROP TABLE task",
    ] {
        let e = parse_timestamp("start_date", bad).unwrap_err();
        assert_eq!(e.rule, "date_format", "{bad}");
    }
}

#[test]
fn a_range_must_not_end_before_it_starts() {
    assert!(DateRange::parse(Some("2024-01-02 00:00:00"), Some("2024-01-01 00:00:00")).is_err());
    let r = DateRange::parse(None, Some("2024-01-01 00:00:00")).unwrap();
    assert!(r.start.is_none() && r.end.is_some());
}

#[test]
fn pages_are_capped() {
    assert_eq!(
        Page::parse(None, None).unwrap(),
        Page {
            from: 0,
            size: DEFAULT_PAGE_SIZE
        }
    );
    assert_eq!(Page::parse(Some(0), Some(101)).unwrap_err().field, "_size");
    assert_eq!(Page::parse(Some(0), Some(0)).unwrap_err().field, "_size");
    assert_eq!(Page::parse(Some(-1), Some(10)).unwrap_err().field, "_from");
    assert!(Page::parse(Some(5), Some(100)).is_ok());
}

#[test]
fn sort_takes_only_allowed_fields() {
    let s = TaskSort::parse(Some("-created_at,status_id")).unwrap();
    assert_eq!(
        s.0,
        vec![
            (TaskSortField::CreatedAt, Direction::Desc),
            (TaskSortField::StatusId, Direction::Asc)
        ]
    );
    assert_eq!(
        TaskSort::parse(Some("-created")).unwrap().0[0].0,
        TaskSortField::CreatedAt
    );
    for bad in [
        "",
        "created_at desc",
        "created_at;DROP TABLE task",
        "(select 1)",
        "password",
        "id,id",
        "-",
        "id,title,status_id,type_id,severity_id",
    ] {
        assert!(TaskSort::parse(Some(bad)).is_err(), "{bad}");
    }
    assert!(SummarySort::parse(Some("-completed,username")).is_ok());
    assert!(SummarySort::parse(Some("created_at")).is_err());
}

#[test]
fn query_filters_come_from_an_allow_list() {
    let q = json!({"assignee": "kiennt96", "status_id": 4, "severity_id": null});
    let f = TaskFilter::parse(q.as_object().unwrap()).unwrap();
    assert_eq!(f.assignee, Some(Some(UserRef::Username("kiennt96".into()))));
    assert_eq!(f.status_id, Some(4));
    assert_eq!(f.severity_id, Some(None));
    for bad in [
        json!({"title": "x"}),
        json!({"status_id": "4"}),
        json!({"status_id": 1.5}),
        json!({"status_id": 99999999999_i64}),
        json!({"assignee": "Robert'); DROP TABLE task;--"}),
        json!({"1=1": true}),
    ] {
        assert!(
            TaskFilter::parse(bad.as_object().unwrap()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn titles_are_short_printable_text() {
    assert!(Title::parse("  ").is_err());
    assert!(Title::parse(&"x".repeat(201)).is_err());
    assert!(Title::parse("a\u{0}b").is_err());
    assert_eq!(Title::parse(" Ship it ").unwrap().into_inner(), "Ship it");
}

fn t(raw: &str) -> DateTime<Utc> {
    parse_timestamp("t", raw).unwrap()
}

fn range(start: Option<&str>, end: Option<&str>) -> DateRange {
    DateRange::parse(start, end).unwrap()
}

#[test]
fn a_range_splits_into_whole_months_and_partial_edges() {
    let s = range(Some("2024-01-15 10:00:00"), Some("2024-04-02 00:00:00")).split_by_month();
    assert_eq!(
        s.months,
        Some((
            Some(t("2024-02-01 00:00:00")),
            Some(t("2024-04-01 00:00:00"))
        ))
    );
    assert_eq!(
        s.head,
        Some(DateRange {
            start: Some(t("2024-01-15 10:00:00")),
            end: Some(t("2024-01-31T23:59:59.999999Z")),
        })
    );
    assert_eq!(
        s.tail,
        Some(DateRange {
            start: Some(t("2024-04-01 00:00:00")),
            end: Some(t("2024-04-02 00:00:00")),
        })
    );
}

#[test]
fn month_aligned_edges_need_no_partial_reads() {
    // Starts on a month's first instant, ends on a month's last one.
    let s = range(
        Some("2024-11-01 00:00:00"),
        Some("2025-01-31T23:59:59.999999Z"),
    )
    .split_by_month();
    assert_eq!(
        s.months,
        Some((
            Some(t("2024-11-01 00:00:00")),
            Some(t("2025-02-01 00:00:00"))
        ))
    );
    assert_eq!((s.head, s.tail), (None, None));
    // A whole second short of the month's end leaves that month partial.
    let s = range(Some("2024-11-01 00:00:00"), Some("2025-01-31 23:59:59")).split_by_month();
    assert_eq!(
        s.months,
        Some((
            Some(t("2024-11-01 00:00:00")),
            Some(t("2025-01-01 00:00:00"))
        ))
    );
    assert_eq!(s.tail.unwrap().start, Some(t("2025-01-01 00:00:00")));
}

#[test]
fn a_range_inside_one_month_is_read_from_the_tasks_alone() {
    let r = range(Some("2024-03-03 00:00:00"), Some("2024-03-20 00:00:00"));
    let s = r.split_by_month();
    assert_eq!((s.months, s.head, s.tail), (None, Some(r), None));
    // Across a month boundary without a whole month: two edges.
    let s = range(Some("2024-03-20 00:00:00"), Some("2024-04-10 00:00:00")).split_by_month();
    assert_eq!(s.months, None);
    assert_eq!(s.head.unwrap().end, Some(t("2024-04-10 00:00:00")));
}

#[test]
fn open_ends_stay_open() {
    let s = DateRange::default().split_by_month();
    assert_eq!((s.months, s.head, s.tail), (Some((None, None)), None, None));
    let s = range(Some("2024-03-03 12:00:00"), None).split_by_month();
    assert_eq!(s.months, Some((Some(t("2024-04-01 00:00:00")), None)));
    assert!(s.head.is_some() && s.tail.is_none());
    let s = range(None, Some("2024-12-31 23:00:00")).split_by_month();
    assert_eq!(s.months, Some((None, Some(t("2024-12-01 00:00:00")))));
    assert!(s.head.is_none() && s.tail.is_some());
}

#[test]
fn prices_are_whole_cents_within_bounds() {
    assert_eq!(Price::parse(&json!(1)).unwrap().cents(), 1);
    assert_eq!(
        Price::parse(&json!(100_000_000)).unwrap().cents(),
        100_000_000
    );
    for bad in [
        json!(0),
        json!(-5),
        json!(100_000_001),
        json!(1.5),
        json!("100"),
        json!(null),
    ] {
        let e = Price::parse(&bad).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("price_cents", "price_range"),
            "{bad}"
        );
    }
}

#[test]
fn fees_and_rewards_are_the_price_times_their_ratios_rounded() {
    let p = Pricing::new(0.5, 1.0).unwrap();
    let a = p.amounts(Price::new(1001).unwrap());
    assert_eq!(
        (
            a.price_cents,
            a.assignment_fee_cents,
            a.completion_reward_cents
        ),
        (1001, 501, 1001)
    );
    let a = Pricing::new(0.333, 2.5)
        .unwrap()
        .amounts(Price::new(100).unwrap());
    assert_eq!(
        (a.assignment_fee_cents, a.completion_reward_cents),
        (33, 250)
    );
    assert!(Pricing::new(-0.1, 1.0).is_err());
    assert!(Pricing::new(0.5, f64::NAN).is_err());
}

#[test]
fn a_change_of_fields_takes_the_known_keys_and_null_clears() {
    let body = json!({"title": " New ", "description": null, "due_date": "2025-01-01 00:00:00",
                      "type_id": 2, "price_cents": 250});
    let c = FieldChanges::parse(body.as_object().unwrap()).unwrap();
    assert_eq!(c.title.unwrap().into_inner(), "New");
    assert_eq!(c.description, Some(None));
    assert_eq!(c.due_date, Some(Some(t("2025-01-01 00:00:00"))));
    assert_eq!(c.type_id, Some(2));
    assert_eq!(c.price.map(Price::cents), Some(250));
    for (bad, field) in [
        (json!({"status_id": 2}), "status_id"),
        (json!({"title": null}), "title"),
        (json!({"type_id": "2"}), "type_id"),
        (json!({"price_cents": 0}), "price_cents"),
        (json!({"due_date": "tomorrow"}), "due_date"),
    ] {
        let e = FieldChanges::parse(bad.as_object().unwrap()).unwrap_err();
        assert_eq!(e.field, field, "{bad}");
    }
}

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron(expr: &str, start: &str, zone: Option<&str>) -> Trigger {
    Trigger::compile(
        &TriggerSpec::Cron {
            expression: expr.into(),
            window: Window {
                start_time: Some(start.into()),
                end_time: None,
                time_zone: zone.map(Into::into),
            },
        },
        ts("2000-01-01T00:00:00Z"),
    )
    .unwrap()
}

fn recur(
    freq: Frequency,
    interval: u32,
    p: Option<Pattern>,
    start: &str,
    zone: Option<&str>,
) -> Trigger {
    Trigger::compile(
        &TriggerSpec::Recurrence {
            frequency: freq,
            interval,
            schedule: p,
            window: Window {
                start_time: Some(start.into()),
                end_time: None,
                time_zone: zone.map(Into::into),
            },
        },
        ts("2000-01-01T00:00:00Z"),
    )
    .unwrap()
}

fn fires(t: &Trigger, from: &str, n: usize) -> Vec<String> {
    let mut at = ts(from);
    let mut out = vec![];
    for _ in 0..n {
        at = t.next_after(at).unwrap();
        out.push(at.to_string());
    }
    out
}

#[test]
fn hourly_cron_in_pacific_time_starts_at_the_start_and_keeps_the_hour_in_utc() {
    // Azure's own file: hourly, from 2022-07-10T10:00 Pacific (PDT, UTC-7).
    let t = cron(
        "0 * * * *",
        "2022-07-10T10:00:00",
        Some("Pacific Standard Time"),
    );
    assert_eq!(t.iana, "America/Los_Angeles");
    assert_eq!(t.start, ts("2022-07-10T17:00:00Z"));
    assert_eq!(
        fires(&t, "2022-01-01T00:00:00Z", 3),
        [
            "2022-07-10T17:00:00Z",
            "2022-07-10T18:00:00Z",
            "2022-07-10T19:00:00Z"
        ]
    );
    // Strictly after: an instant on an occurrence moves to the next one.
    assert_eq!(
        t.next_after(ts("2022-07-10T18:00:00Z")),
        Some(ts("2022-07-10T19:00:00Z"))
    );
}

#[test]
fn daily_cron_keeps_wall_time_across_dst_and_the_skipped_hour_fires_after_the_gap() {
    let t = cron(
        "30 2 * * *",
        "2024-03-08T00:00:00",
        Some("Pacific Standard Time"),
    );
    // 2024-03-10 02:30 does not exist in Los Angeles (clocks jump 02:00 → 03:00).
    assert_eq!(
        fires(&t, "2024-03-08T00:00:00Z", 3),
        [
            "2024-03-08T10:30:00Z", // 02:30 PST
            "2024-03-09T10:30:00Z",
            "2024-03-10T10:30:00Z", // 03:30 PDT, the first instant after the gap
        ]
    );
    assert_eq!(
        fires(&t, "2024-03-10T10:30:00Z", 1),
        ["2024-03-11T09:30:00Z"]
    );
    // The repeated hour in November fires once.
    let t = cron(
        "30 1 * * *",
        "2024-11-02T00:00:00",
        Some("America/Los_Angeles"),
    );
    assert_eq!(
        fires(&t, "2024-11-02T12:00:00Z", 2),
        ["2024-11-03T08:30:00Z", "2024-11-04T09:30:00Z"]
    );
}

#[test]
fn azure_recurrence_fires_at_each_hour_and_minute_every_day() {
    let p = Pattern {
        hours: vec![4, 5, 10, 11, 12],
        minutes: vec![0, 30],
        ..Pattern::default()
    };
    let t = recur(
        Frequency::Day,
        1,
        Some(p),
        "2022-07-10T10:00:00",
        Some("Pacific Standard Time"),
    );
    assert_eq!(
        fires(&t, "2022-07-10T17:00:00Z", 6),
        [
            // 10:30, 11:00, 11:30, 12:00, 12:30 PDT on the 10th, then 04:00 on the 11th.
            "2022-07-10T17:30:00Z",
            "2022-07-10T18:00:00Z",
            "2022-07-10T18:30:00Z",
            "2022-07-10T19:00:00Z",
            "2022-07-10T19:30:00Z",
            "2022-07-11T11:00:00Z",
        ]
    );
    // Before the start: the first fire is the first time at or after the start.
    assert_eq!(
        t.next_after(ts("2020-01-01T00:00:00Z")),
        Some(ts("2022-07-10T17:00:00Z"))
    );
}

#[test]
fn minute_and_hour_recurrences_count_intervals_from_the_start() {
    let t = recur(Frequency::Minute, 5, None, "2024-01-01T00:02:30Z", None);
    assert_eq!(
        fires(&t, "2023-12-31T00:00:00Z", 3),
        [
            "2024-01-01T00:02:30Z",
            "2024-01-01T00:07:30Z",
            "2024-01-01T00:12:30Z"
        ]
    );
    assert_eq!(
        t.next_after(ts("2024-01-01T00:07:29Z")),
        Some(ts("2024-01-01T00:07:30Z"))
    );
    let p = Pattern {
        minutes: vec![15, 45],
        ..Pattern::default()
    };
    let t = recur(Frequency::Hour, 3, Some(p), "2024-01-01T01:20:00Z", None);
    assert_eq!(
        fires(&t, "2024-01-01T00:00:00Z", 4),
        [
            "2024-01-01T01:45:00Z", // 01:15 is before the start
            "2024-01-01T04:15:00Z",
            "2024-01-01T04:45:00Z",
            "2024-01-01T07:15:00Z",
        ]
    );
}

#[test]
fn week_and_month_recurrences_skip_intervals_and_missing_days() {
    let p = Pattern {
        week_days: vec!["monday".into(), "Friday".into()],
        hours: vec![9],
        ..Pattern::default()
    };
    // Every other week from Wednesday 2024-01-03: that week's Friday, then two weeks on.
    let t = recur(Frequency::Week, 2, Some(p), "2024-01-03T00:00:00Z", None);
    assert_eq!(
        fires(&t, "2024-01-01T00:00:00Z", 3),
        [
            "2024-01-05T09:00:00Z",
            "2024-01-15T09:00:00Z",
            "2024-01-19T09:00:00Z"
        ]
    );
    let p = Pattern {
        month_days: vec![31],
        ..Pattern::default()
    };
    // Day 31 every month from 2024-01-31 08:00: February, April... have none.
    let t = recur(Frequency::Month, 1, Some(p), "2024-01-31T08:00:00Z", None);
    assert_eq!(
        fires(&t, "2024-01-01T00:00:00Z", 3),
        [
            "2024-01-31T08:00:00Z",
            "2024-03-31T08:00:00Z",
            "2024-05-31T08:00:00Z"
        ]
    );
}

#[test]
fn end_time_ends_the_fires_and_impossible_crons_never_fire() {
    let spec = TriggerSpec::Cron {
        expression: "0 0 * * *".into(),
        window: Window {
            start_time: Some("2024-01-01T00:00:00Z".into()),
            end_time: Some("2024-01-02T12:00:00Z".into()),
            time_zone: None,
        },
    };
    let t = Trigger::compile(&spec, ts("2024-01-01T00:00:00Z")).unwrap();
    assert_eq!(
        t.next_after(ts("2024-01-01T00:00:00Z")),
        Some(ts("2024-01-02T00:00:00Z"))
    );
    assert_eq!(t.next_after(ts("2024-01-02T00:00:00Z")), None);
    let never = cron("0 0 30 2 *", "2024-01-01T00:00:00Z", None);
    assert_eq!(never.next_after(ts("2024-01-01T00:00:00Z")), None);
}

#[test]
fn a_missed_window_fires_once_for_the_latest_occurrence_and_counts_the_rest() {
    let t = recur(Frequency::Minute, 1, None, "2024-01-01T00:00:00Z", None);
    // Not yet due.
    assert_eq!(
        t.due(ts("2024-01-01T00:05:00Z"), ts("2024-01-01T00:04:59Z")),
        None
    );
    // Due now, none passed over.
    let d = t
        .due(ts("2024-01-01T00:05:00Z"), ts("2024-01-01T00:05:00.2Z"))
        .unwrap();
    assert_eq!((d.occurrence, d.missed), (ts("2024-01-01T00:05:00Z"), 0));
    assert_eq!(d.next, Some(ts("2024-01-01T00:06:00Z")));
    // Server down from 00:05 to 01:05:30: one fire, for 01:05, and 60 passed over.
    let d = t
        .due(ts("2024-01-01T00:05:00Z"), ts("2024-01-01T01:05:30Z"))
        .unwrap();
    assert_eq!(d.occurrence, ts("2024-01-01T01:05:00Z"));
    assert_eq!(d.missed, 60);
    assert_eq!(d.next, Some(ts("2024-01-01T01:06:00Z")));
}

#[test]
fn bad_triggers_say_which_field_and_how_to_fix_it() {
    let base = ts("2024-01-01T00:00:00Z");
    let bad = |spec: TriggerSpec| Trigger::compile(&spec, base).unwrap_err();
    let window = |zone: Option<&str>, start: Option<&str>, end: Option<&str>| Window {
        start_time: start.map(Into::into),
        end_time: end.map(Into::into),
        time_zone: zone.map(Into::into),
    };
    let e = bad(TriggerSpec::Cron {
        expression: "0 * *".into(),
        window: Window::default(),
    });
    assert_eq!(e.field, "expression");
    let e = bad(TriggerSpec::Cron {
        expression: "0 * * * *".into(),
        window: window(Some("Pacific Standrad Time"), None, None),
    });
    assert_eq!(e.field, "time_zone");
    assert!(e.help.contains("`Pacific Standard Time`"), "{}", e.help);
    let e = bad(TriggerSpec::Cron {
        expression: "0 * * * *".into(),
        window: window(None, Some("2024-02-01T00:00:00"), Some("2024-01-01")),
    });
    assert_eq!(e.field, "end_time");
    let e = bad(TriggerSpec::Cron {
        expression: "0 * * * *".into(),
        window: window(None, Some("next tuesday"), None),
    });
    assert_eq!(e.field, "start_time");
    let rec = |f, i, p| TriggerSpec::Recurrence {
        frequency: f,
        interval: i,
        schedule: p,
        window: Window::default(),
    };
    assert_eq!(bad(rec(Frequency::Day, 0, None)).field, "interval");
    let p = Pattern {
        week_days: vec!["munday".into()],
        ..Pattern::default()
    };
    let e = bad(rec(Frequency::Week, 1, Some(p.clone())));
    assert_eq!(e.field, "schedule.week_days");
    assert!(e.help.contains("monday"), "{}", e.help);
    assert_eq!(
        bad(rec(Frequency::Day, 1, Some(p))).field,
        "schedule.week_days"
    );
    let p = Pattern {
        hours: vec![24],
        ..Pattern::default()
    };
    assert_eq!(bad(rec(Frequency::Day, 1, Some(p))).field, "schedule.hours");
    let p = Pattern {
        minutes: vec![5],
        ..Pattern::default()
    };
    assert_eq!(
        bad(rec(Frequency::Minute, 1, Some(p))).field,
        "schedule.minutes"
    );
}

#[test]
fn start_time_defaults_to_creation_and_offsets_are_honoured() {
    let spec = TriggerSpec::Recurrence {
        frequency: Frequency::Hour,
        interval: 1,
        schedule: None,
        window: Window {
            time_zone: Some("Tokyo Standard Time".into()),
            ..Window::default()
        },
    };
    let t = Trigger::compile(&spec, ts("2024-05-05T10:20:00Z")).unwrap();
    assert_eq!(t.start, ts("2024-05-05T10:20:00Z"));
    assert_eq!(t.next_after(t.start), Some(ts("2024-05-05T11:20:00Z")));
    let (_, iana) = zone(Some("Europe/Paris")).unwrap();
    assert_eq!(iana, "Europe/Paris");
    let tz = TimeZone::get("Europe/Paris").unwrap();
    assert_eq!(
        instant("start_time", "2024-07-01T10:00:00+00:00", &tz).unwrap(),
        ts("2024-07-01T10:00:00Z")
    );
    assert_eq!(
        instant("start_time", "2024-07-01", &tz).unwrap(),
        ts("2024-06-30T22:00:00Z")
    );
}

#[test]
fn a_long_outage_is_counted_to_the_cap_and_fires_for_the_occurrence_before_now() {
    let t = cron("* * * * *", "2024-01-01T00:00:00Z", None);
    // Seventy days of minutes missed.
    let d = t
        .due(ts("2024-01-01T00:05:00Z"), ts("2024-03-11T10:30:30Z"))
        .unwrap();
    assert_eq!(d.missed, MAX_COUNTED);
    assert_eq!(d.occurrence, ts("2024-03-11T10:30:00Z"));
    assert_eq!(d.next, Some(ts("2024-03-11T10:31:00Z")));
}

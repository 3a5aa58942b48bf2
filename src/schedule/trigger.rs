//! When a schedule fires: Azure ML's `cron` and `recurrence` triggers, evaluated in the
//! schedule's time zone (Windows names as Azure writes them, or IANA names), from
//! `start_time` to `end_time`. Pure: every function takes the instant it reasons about.
//!
//! Wall-clock times that a DST change skips fire at the first instant after the gap; times
//! it repeats fire once, at the earlier instant.

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::cron::Cron;

/// A trigger as the schedule file gives it (and as the store keeps it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TriggerSpec {
    Cron {
        expression: String,
        #[serde(flatten)]
        window: Window,
    },
    Recurrence {
        frequency: Frequency,
        interval: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        schedule: Option<Pattern>,
        #[serde(flatten)]
        window: Window,
    },
}

/// `start_time`, `end_time` and `time_zone`, common to both trigger types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frequency {
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Frequency {
    pub fn noun(self) -> &'static str {
        match self {
            Frequency::Minute => "minute",
            Frequency::Hour => "hour",
            Frequency::Day => "day",
            Frequency::Week => "week",
            Frequency::Month => "month",
        }
    }
}

/// A recurrence's `schedule:` (which hours, minutes, week days, month days).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub minutes: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub week_days: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub month_days: Vec<u32>,
}

pub const WEEK_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// What is wrong with a trigger, and under which field of `trigger:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerError {
    /// Relative to `trigger` (`expression`, `time_zone`, `schedule.hours`...).
    pub field: String,
    pub message: String,
    pub help: String,
}

fn err(field: &str, message: String, help: impl Into<String>) -> TriggerError {
    TriggerError {
        field: field.into(),
        message,
        help: help.into(),
    }
}

/// A trigger ready to answer "when next?".
#[derive(Debug, Clone)]
pub struct Trigger {
    rule: Rule,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    tz: TimeZone,
    /// The zone as written (`Pacific Standard Time`) and as IANA names it.
    pub zone: String,
    pub iana: String,
}

#[derive(Debug, Clone)]
enum Rule {
    Cron(Cron),
    /// Every `interval` minutes from the start.
    Minutes(i64),
    /// Every `interval` hours from the start's hour, at these minutes.
    Hours(i64, Vec<u32>),
    Days {
        interval: i64,
        times: Vec<(u32, u32)>,
    },
    Weeks {
        interval: i64,
        /// Monday = 0.
        days: [bool; 7],
        times: Vec<(u32, u32)>,
    },
    Months {
        interval: i64,
        days: Vec<u32>,
        times: Vec<(u32, u32)>,
    },
}

/// How far ahead a search for the next fire looks before saying there is none (a cron
/// for 30 February, a window that has ended).
const HORIZON_DAYS: i64 = 366 * 8;

/// Finds a time zone by Windows name (as Azure ML files give it), IANA name, or `UTC`.
pub fn zone(name: Option<&str>) -> Result<(TimeZone, String), TriggerError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok((TimeZone::UTC, "UTC".into()));
    };
    let windows = super::zones_table::WINDOWS_ZONES
        .iter()
        .find(|(w, _)| w.eq_ignore_ascii_case(name))
        .map(|(_, iana)| *iana);
    let iana = windows.unwrap_or(name);
    match TimeZone::get(iana) {
        Ok(tz) => Ok((tz, iana.to_string())),
        Err(_) => {
            let near = crate::spec::nearest(
                name,
                super::zones_table::WINDOWS_ZONES.iter().map(|(w, _)| *w),
            );
            Err(err(
                "time_zone",
                format!("`{name}` is not a time zone tug knows"),
                match near {
                    Some(n) => format!(
                        "did you mean `{n}`? Azure ML takes Windows zone names (`Pacific Standard Time`); tug also takes IANA names (`Europe/Paris`); the default is UTC"
                    ),
                    None => "Azure ML takes Windows zone names (`Pacific Standard Time`); tug also takes IANA names (`Europe/Paris`); the default is UTC".into(),
                },
            ))
        }
    }
}

/// Reads `start_time`/`end_time`: with an offset or `Z` it is that instant; without, a wall
/// time in the schedule's zone (`2022-07-10T10:00:00`, or a date for its midnight).
pub fn instant(field: &str, text: &str, tz: &TimeZone) -> Result<Timestamp, TriggerError> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let civil = text.parse::<DateTime>().or_else(|_| {
        text.parse::<Date>()
            .map(|d| d.to_datetime(jiff::civil::time(0, 0, 0, 0)))
    });
    match civil {
        Ok(dt) => tz.to_ambiguous_timestamp(dt).compatible().map_err(|e| {
            err(
                field,
                format!("`{text}` does not exist in this time zone: {e}"),
                "pick a time outside the DST change",
            )
        }),
        Err(_) => Err(err(
            field,
            format!("`{text}` is not a date and time"),
            "write ISO 8601: `2024-07-10T10:00:00` (in `time_zone`), or with an offset: `2024-07-10T10:00:00Z`",
        )),
    }
}

impl Trigger {
    /// Checks `spec` and readies it. `created` stands for an omitted `start_time`.
    pub fn compile(spec: &TriggerSpec, created: Timestamp) -> Result<Trigger, TriggerError> {
        let window = match spec {
            TriggerSpec::Cron { window, .. } | TriggerSpec::Recurrence { window, .. } => window,
        };
        let (tz, iana) = zone(window.time_zone.as_deref())?;
        let start = match &window.start_time {
            Some(s) => instant("start_time", s, &tz)?,
            None => created,
        };
        let end = window
            .end_time
            .as_deref()
            .map(|s| instant("end_time", s, &tz))
            .transpose()?;
        if let Some(end) = end
            && end <= start
        {
            return Err(err(
                "end_time",
                format!("`end_time` ({end}) is not after `start_time` ({start})"),
                "give an `end_time` later than the start, or leave it out to fire until disabled",
            ));
        }
        let local = tz.to_datetime(start);
        let rule = match spec {
            TriggerSpec::Cron { expression, .. } => {
                Rule::Cron(Cron::parse(expression).map_err(|e| {
                    err(
                        "expression",
                        format!("`{expression}` is not a cron expression: {e}"),
                        "write `MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK`, e.g. `0 2 * * *` for 02:00 every day or `*/15 * * * mon-fri`",
                    )
                })?)
            }
            TriggerSpec::Recurrence {
                frequency,
                interval,
                schedule,
                ..
            } => recurrence(*frequency, *interval, schedule.as_ref(), local)?,
        };
        let trigger = Trigger {
            rule,
            start,
            end,
            tz,
            zone: window.time_zone.clone().unwrap_or_else(|| "UTC".into()),
            iana,
        };
        Ok(trigger)
    }

    /// The first fire strictly after `after` (none once the window has ended).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let after_s = after.as_second();
        let start_s = self.start.as_second();
        let found = match &self.rule {
            Rule::Minutes(interval) => {
                let period = interval * 60;
                let k = if after_s < start_s {
                    0
                } else {
                    (after_s - start_s) / period + 1
                };
                Timestamp::from_second(start_s + k * period).ok()
            }
            Rule::Hours(interval, minutes) => {
                let local = self.tz.to_datetime(self.start);
                let base = start_s - i64::from(local.minute()) * 60 - i64::from(local.second());
                let period = interval * 3600;
                let k0 = ((after_s - base) / period).max(0);
                (k0..k0 + 2)
                    .flat_map(|k| {
                        minutes
                            .iter()
                            .map(move |m| base + k * period + i64::from(*m) * 60)
                    })
                    .filter(|t| *t > after_s && *t >= start_s)
                    .min()
                    .and_then(|t| Timestamp::from_second(t).ok())
            }
            _ => self.next_by_day(after),
        }?;
        match self.end {
            Some(end) if found > end => None,
            _ => Some(found),
        }
    }

    /// Day-based rules (cron, day, week, month): each date in the zone from the later of
    /// the start and `after`, its wall times turned into instants.
    fn next_by_day(&self, after: Timestamp) -> Option<Timestamp> {
        let from = after.max(self.start);
        let start_date = self.tz.to_datetime(self.start).date();
        let mut date = self.tz.to_datetime(from).date();
        for _ in 0..HORIZON_DAYS {
            if let Some(end) = self.end
                && date > self.tz.to_datetime(end).date()
            {
                return None;
            }
            if let Some(times) = self.day_times(date, start_date) {
                let best = times
                    .into_iter()
                    .filter_map(|(h, m)| {
                        let dt = date.to_datetime(jiff::civil::time(h as i8, m as i8, 0, 0));
                        self.tz.to_ambiguous_timestamp(dt).compatible().ok()
                    })
                    .filter(|t| *t > after && *t >= self.start)
                    .min();
                if best.is_some() {
                    return best;
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The wall times `date` fires at, if it is a firing day.
    fn day_times(&self, date: Date, start: Date) -> Option<Vec<(u32, u32)>> {
        let days_since = epoch_day(date) - epoch_day(start);
        match &self.rule {
            Rule::Cron(c) => {
                let wd = date.weekday().to_sunday_zero_offset() as u32;
                c.matches_day(date.month() as u32, date.day() as u32, wd)
                    .then(|| {
                        c.hours()
                            .flat_map(|h| c.minutes().map(move |m| (h, m)))
                            .collect()
                    })
            }
            Rule::Days { interval, times } => (days_since % interval == 0).then(|| times.clone()),
            Rule::Weeks {
                interval,
                days,
                times,
            } => {
                let start_monday =
                    epoch_day(start) - start.weekday().to_monday_zero_offset() as i64;
                let week = (epoch_day(date) - start_monday).div_euclid(7);
                let wd = date.weekday().to_monday_zero_offset() as usize;
                (week % interval == 0 && days[wd]).then(|| times.clone())
            }
            Rule::Months {
                interval,
                days,
                times,
            } => {
                let months = (i64::from(date.year()) * 12 + i64::from(date.month()))
                    - (i64::from(start.year()) * 12 + i64::from(start.month()));
                (months % interval == 0 && days.contains(&(date.day() as u32)))
                    .then(|| times.clone())
            }
            Rule::Minutes(_) | Rule::Hours(..) => None,
        }
    }

    /// What to do at `now` for a schedule whose next fire was `due`: nothing yet, or fire
    /// once (for the latest occurrence that has passed) and say how many occurrences were
    /// passed over since `due` without firing, as Azure ML does after downtime.
    pub fn due(&self, due: Timestamp, now: Timestamp) -> Option<Due> {
        if due > now {
            return None;
        }
        let mut latest = due;
        let mut missed = 0usize;
        while let Some(t) = self.next_after(latest) {
            if t > now {
                break;
            }
            if missed >= MAX_COUNTED {
                // Too many to walk: find the latest one near now instead.
                latest = self.latest_up_to(now).unwrap_or(latest).max(latest);
                break;
            }
            latest = t;
            missed += 1;
        }
        Some(Due {
            occurrence: latest,
            missed,
            next: self.next_after(now),
        })
    }

    /// The latest occurrence at or before `now`, looking back ever further from it.
    fn latest_up_to(&self, now: Timestamp) -> Option<Timestamp> {
        const DAY: i64 = 86_400;
        for span in [60, 3_600, DAY, 7 * DAY, 32 * DAY, 366 * DAY, 8 * 366 * DAY] {
            let mut at = now - jiff::SignedDuration::from_secs(span);
            let mut last = None;
            for _ in 0..MAX_COUNTED {
                match self.next_after(at) {
                    Some(t) if t <= now => {
                        last = Some(t);
                        at = t;
                    }
                    _ => break,
                }
            }
            if last.is_some() {
                return last;
            }
        }
        None
    }

    /// One line for `schedule list`.
    pub fn describe(spec: &TriggerSpec) -> String {
        match spec {
            TriggerSpec::Cron { expression, window } => {
                format!("cron `{expression}` {}", zone_label(window))
            }
            TriggerSpec::Recurrence {
                frequency,
                interval,
                schedule,
                window,
            } => {
                let every = if *interval == 1 {
                    format!("every {}", frequency.noun())
                } else {
                    format!("every {interval} {}s", frequency.noun())
                };
                let mut parts = vec![every];
                if let Some(p) = schedule {
                    if !p.week_days.is_empty() {
                        parts.push(format!("on {}", p.week_days.join(",")));
                    }
                    if !p.month_days.is_empty() {
                        parts.push(format!("on day {}", join(&p.month_days)));
                    }
                    if !p.hours.is_empty() {
                        parts.push(format!("at hours {}", join(&p.hours)));
                    }
                    if !p.minutes.is_empty() {
                        parts.push(format!("minutes {}", join(&p.minutes)));
                    }
                }
                format!("{} {}", parts.join(" "), zone_label(window))
            }
        }
    }
}

/// Missed occurrences are counted up to this many (a schedule every minute, down a
/// month, is "more than 1000").
pub const MAX_COUNTED: usize = 1_000;

/// A fire that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// The occurrence the fire stands for (the latest that has passed).
    pub occurrence: Timestamp,
    /// Occurrences between the due one and `occurrence` that were passed over.
    pub missed: usize,
    /// The next fire after now, if the window has not ended.
    pub next: Option<Timestamp>,
}

fn zone_label(window: &Window) -> String {
    format!("({})", window.time_zone.as_deref().unwrap_or("UTC"))
}

fn join(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

fn recurrence(
    frequency: Frequency,
    interval: u32,
    pattern: Option<&Pattern>,
    start: DateTime,
) -> Result<Rule, TriggerError> {
    if interval == 0 {
        return Err(err(
            "interval",
            "`interval: 0` never fires".into(),
            "give how many frequency units lie between fires: `interval: 1` is every one",
        ));
    }
    let empty = Pattern::default();
    let p = pattern.unwrap_or(&empty);
    let allowed: &[&str] = match frequency {
        Frequency::Minute => &[],
        Frequency::Hour => &["minutes"],
        Frequency::Day => &["hours", "minutes"],
        Frequency::Week => &["hours", "minutes", "week_days"],
        Frequency::Month => &["hours", "minutes", "month_days"],
    };
    for (name, given) in [
        ("hours", !p.hours.is_empty()),
        ("minutes", !p.minutes.is_empty()),
        ("week_days", !p.week_days.is_empty()),
        ("month_days", !p.month_days.is_empty()),
    ] {
        if given && !allowed.contains(&name) {
            return Err(err(
                &format!("schedule.{name}"),
                format!(
                    "`schedule.{name}` does not apply to `frequency: {}`",
                    frequency.noun()
                ),
                match frequency {
                    Frequency::Minute => "a minute recurrence fires every `interval` minutes from `start_time`; drop `schedule`".to_string(),
                    _ => format!(
                        "with `frequency: {}` a schedule takes {}",
                        frequency.noun(),
                        allowed.join(", ")
                    ),
                },
            ));
        }
    }
    for h in &p.hours {
        if *h > 23 {
            return Err(err(
                "schedule.hours",
                format!("hour {h} is out of range"),
                "hours are 0-23",
            ));
        }
    }
    for m in &p.minutes {
        if *m > 59 {
            return Err(err(
                "schedule.minutes",
                format!("minute {m} is out of range"),
                "minutes are 0-59",
            ));
        }
    }
    for d in &p.month_days {
        if !(1..=31).contains(d) {
            return Err(err(
                "schedule.month_days",
                format!("day {d} is out of range"),
                "month days are 1-31 (a day a month lacks is skipped that month)",
            ));
        }
    }
    let mut week = [false; 7];
    for d in &p.week_days {
        let lower = d.to_ascii_lowercase();
        match WEEK_DAYS.iter().position(|w| *w == lower) {
            Some(i) => week[i] = true,
            None => {
                let near = crate::spec::nearest(&lower, WEEK_DAYS.iter().copied());
                return Err(err(
                    "schedule.week_days",
                    format!("`{d}` is not a day of the week"),
                    match near {
                        Some(n) => format!("did you mean `{n}`? days are monday..sunday"),
                        None => "days are monday, tuesday, ..., sunday".into(),
                    },
                ));
            }
        }
    }
    let interval = i64::from(interval);
    let mut minutes = p.minutes.clone();
    let mut hours = p.hours.clone();
    // Unspecified parts come from the start: its minute, and its hour when no hours given.
    if minutes.is_empty() {
        minutes.push(if hours.is_empty() {
            start.minute() as u32
        } else {
            0
        });
    }
    if hours.is_empty() {
        hours.push(start.hour() as u32);
    }
    minutes.sort_unstable();
    minutes.dedup();
    hours.sort_unstable();
    hours.dedup();
    let times: Vec<(u32, u32)> = hours
        .iter()
        .flat_map(|h| minutes.iter().map(move |m| (*h, *m)))
        .collect();
    Ok(match frequency {
        Frequency::Minute => Rule::Minutes(interval),
        Frequency::Hour => Rule::Hours(interval, minutes),
        Frequency::Day => Rule::Days { interval, times },
        Frequency::Week => {
            if p.week_days.is_empty() {
                week[start.date().weekday().to_monday_zero_offset() as usize] = true;
            }
            Rule::Weeks {
                interval,
                days: week,
                times,
            }
        }
        Frequency::Month => {
            let mut days = p.month_days.clone();
            if days.is_empty() {
                days.push(start.day() as u32);
            }
            Rule::Months {
                interval,
                days,
                times,
            }
        }
    })
}

/// Days since 1970-01-01 (the proleptic Gregorian count).
fn epoch_day(d: Date) -> i64 {
    let (y, m, day) = (
        i64::from(d.year()),
        i64::from(d.month()),
        i64::from(d.day()),
    );
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[path = "tests_trigger.rs"]
mod tests;

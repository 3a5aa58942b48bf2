//! Five-field cron expressions (`MIN HOUR DOM MON DOW`), as Azure ML schedule files write
//! them: `*`, numbers, ranges `a-b`, steps `*/n` `a-b/n` `a/n`, lists `a,b`, month names
//! (`jan`..`dec`) and day names (`sun`..`sat`, `0` and `7` both Sunday). When both
//! day-of-month and day-of-week are restricted, a day matches if either does (as in Vixie
//! cron and Azure). Pure: parsing and matching only.

use std::fmt;

/// A parsed cron expression: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    month_days: u32,
    months: u16,
    week_days: u8,
    /// Whether day-of-month / day-of-week were `*` (unrestricted) as written.
    any_month_day: bool,
    any_week_day: bool,
}

/// Why an expression does not parse: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// `minute`, `hour`, `day of month`, `month`, `day of week`, or empty for the whole.
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "the {} field: {}", self.field, self.message)
        }
    }
}

struct FieldRule {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [FieldRule; 5] = [
    FieldRule {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    FieldRule {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    FieldRule {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    FieldRule {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    FieldRule {
        name: "day of week",
        min: 0,
        max: 7,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

impl Cron {
    /// Parses `MIN HOUR DOM MON DOW`.
    pub fn parse(expression: &str) -> Result<Cron, CronError> {
        let parts: Vec<&str> = expression.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError {
                field: "",
                message: format!(
                    "a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has {}",
                    parts.len()
                ),
            });
        }
        let mut sets = [0u64; 5];
        for (i, (part, rule)) in parts.iter().zip(FIELDS.iter()).enumerate() {
            sets[i] = parse_field(part, rule).map_err(|message| CronError {
                field: rule.name,
                message,
            })?;
        }
        // Sunday is both 0 and 7.
        let mut week_days = sets[4];
        if week_days & (1 << 7) != 0 {
            week_days = (week_days | 1) & 0x7f;
        }
        Ok(Cron {
            minutes: sets[0],
            hours: sets[1] as u32,
            month_days: sets[2] as u32,
            months: sets[3] as u16,
            week_days: week_days as u8,
            any_month_day: parts[2] == "*" || parts[2] == "?",
            any_week_day: parts[4] == "*" || parts[4] == "?",
        })
    }

    pub fn matches_minute(&self, minute: u32) -> bool {
        self.minutes & (1 << minute) != 0
    }

    pub fn matches_hour(&self, hour: u32) -> bool {
        self.hours & (1 << hour) != 0
    }

    /// Whether a day matches: `month` 1..=12, `day` 1..=31, `week_day` 0 = Sunday.
    pub fn matches_day(&self, month: u32, day: u32, week_day: u32) -> bool {
        if self.months & (1 << month) == 0 {
            return false;
        }
        let dom = self.month_days & (1 << day) != 0;
        let dow = self.week_days & (1 << week_day) != 0;
        match (self.any_month_day, self.any_week_day) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The hours that match, ascending.
    pub fn hours(&self) -> impl Iterator<Item = u32> + '_ {
        (0..24).filter(|h| self.matches_hour(*h))
    }

    /// The minutes that match, ascending.
    pub fn minutes(&self) -> impl Iterator<Item = u32> + '_ {
        (0..60).filter(|m| self.matches_minute(*m))
    }
}

fn parse_field(text: &str, rule: &FieldRule) -> Result<u64, String> {
    let mut set = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("`{text}` has an empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .ok()
                    .filter(|s| *s > 0 && *s <= rule.max)
                    .ok_or_else(|| {
                        format!(
                            "`/{s}` is not a step (a whole number from 1 to {})",
                            rule.max
                        )
                    })?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (rule.min, rule.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a, rule)?, value(b, rule)?);
            if a > b {
                return Err(format!(
                    "the range `{range}` runs backwards; write it low to high, e.g. `{b}-{a}`"
                ));
            }
            (a, b)
        } else {
            let a = value(range, rule)?;
            // `a/n` means from a to the end, every n.
            (a, if step.is_some() { rule.max } else { a })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

fn value(text: &str, rule: &FieldRule) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = rule.names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + if rule.min == 1 { 1 } else { 0 });
    }
    let n: u32 = text.parse().map_err(|_| {
        if rule.names.is_empty() {
            format!("`{text}` is not a number")
        } else {
            format!(
                "`{text}` is neither a number nor a name ({})",
                rule.names.join(", ")
            )
        }
    })?;
    if n < rule.min || n > rule.max {
        return Err(format!(
            "{n} is out of range: the {} is {}-{}",
            rule.name, rule.min, rule.max
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_matches_minute_zero_of_every_hour() {
        let c = Cron::parse("0 * * * *").unwrap();
        assert_eq!(c.minutes().collect::<Vec<_>>(), vec![0]);
        assert_eq!(c.hours().count(), 24);
        assert!(c.matches_day(2, 29, 4));
    }

    #[test]
    fn ranges_steps_lists_and_names() {
        let c = Cron::parse("*/15 9-17/4 1,15 jan-mar MON-fri").unwrap();
        assert_eq!(c.minutes().collect::<Vec<_>>(), vec![0, 15, 30, 45]);
        assert_eq!(c.hours().collect::<Vec<_>>(), vec![9, 13, 17]);
        // Both day fields restricted: either matches.
        assert!(c.matches_day(1, 1, 0), "the 1st, a Sunday");
        assert!(c.matches_day(2, 10, 3), "a Wednesday");
        assert!(!c.matches_day(2, 10, 6), "a Saturday the 10th");
        assert!(!c.matches_day(4, 1, 3), "April is not in jan-mar");
        let c = Cron::parse("5/20 0 * * *").unwrap();
        assert_eq!(c.minutes().collect::<Vec<_>>(), vec![5, 25, 45]);
    }

    #[test]
    fn sunday_is_zero_and_seven_and_one_restricted_day_field_rules_alone() {
        let seven = Cron::parse("0 0 * * 7").unwrap();
        assert!(seven.matches_day(5, 3, 0));
        assert!(!seven.matches_day(5, 4, 1));
        let dom = Cron::parse("0 0 13 * *").unwrap();
        assert!(dom.matches_day(5, 13, 5));
        assert!(!dom.matches_day(5, 12, 5));
    }

    #[test]
    fn errors_name_the_field_and_the_fault() {
        let e = Cron::parse("0 * * *").unwrap_err();
        assert!(e.message.contains("has 4"), "{e}");
        let e = Cron::parse("60 * * * *").unwrap_err();
        assert_eq!(e.field, "minute");
        assert!(e.message.contains("0-59"), "{e}");
        let e = Cron::parse("0 5-1 * * *").unwrap_err();
        assert_eq!(e.field, "hour");
        assert!(e.message.contains("1-5"), "{e}");
        let e = Cron::parse("0 0 * foo *").unwrap_err();
        assert!(e.message.contains("jan"), "{e}");
        let e = Cron::parse("*/0 * * * *").unwrap_err();
        assert!(e.message.contains("step"), "{e}");
        assert!(Cron::parse("59/4294967295 * * * *").is_err());
        let e = Cron::parse("0 0 0 * *").unwrap_err();
        assert_eq!(e.field, "day of month");
        assert!(Cron::parse("1,,2 * * * *").is_err());
    }
}

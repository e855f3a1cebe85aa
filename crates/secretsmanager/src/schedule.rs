//! Rotation schedules: `RotationRules` (`AutomaticallyAfterDays`, or `ScheduleExpression`
//! `rate(…)` / `cron(…)`, with an optional `Duration`) parsed, validated and turned into
//! rotation windows.
//!
//! The rules (AWS Secrets Manager User Guide, "Schedule expressions in Secrets Manager
//! rotation"; API reference, `RotationRulesType`):
//! - `rate(N hours|days)`; a secret rotates at most every four hours. Rate windows start at
//!   midnight UTC: for hours, at midnight and every N hours after it, each day; for days, at
//!   midnight of the day N days after the last rotation (as `AutomaticallyAfterDays`).
//! - `cron(Minutes Hours Day-of-month Month Day-of-week Year)` in UTC: minutes must be `0`,
//!   the year `*`, exactly one of day-of-month and day-of-week is `?`.
//! - A window closes after `Duration` (`[0-9]+h`); by default after one hour for schedules in
//!   hours and at the end of the UTC day for schedules in days. A window must not reach into
//!   the next UTC day or the next window.
//!
//! The dev/test knob [`set_hour_seconds`] shortens an hour for `rate()` and
//! `AutomaticallyAfterDays` schedules (their windows then start at the last rotation plus the
//! interval instead of at midnight), so a test can watch a schedule fire; it is off (3600) by
//! default and listed in `docs/aws-fidelity.md`.

use std::sync::atomic::{AtomicU64, Ordering};

use time::{Date, Duration, OffsetDateTime, Time};
use tresor_wire::validate::Validator;

use crate::errors::{self, SecretsManagerError};
use crate::model::RotationRules;

/// The shortest rotation interval AWS allows: four hours.
pub const MIN_RATE_HOURS: i64 = 4;

static HOUR_SECONDS: AtomicU64 = AtomicU64::new(3600);

/// Sets how many real seconds one schedule hour lasts for `rate()` and
/// `AutomaticallyAfterDays` schedules (testing and development only; 3600 is AWS's clock).
pub fn set_hour_seconds(seconds: u64) {
    HOUR_SECONDS.store(seconds.max(1), Ordering::Relaxed);
}

/// The length of one schedule hour, in seconds (3600 unless the test knob is set).
pub fn hour_seconds() -> i64 {
    i64::try_from(HOUR_SECONDS.load(Ordering::Relaxed)).unwrap_or(3600)
}

fn scaled() -> bool {
    hour_seconds() != 3600
}

/// A parsed, valid rotation schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
    /// `Duration`, in hours, when given.
    window_hours: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Hours(i64),
    Days(i64),
    Cron(Cron),
}

/// One rotation window: the rotation starts at some time in `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

impl Window {
    /// `NextRotationDate`: the latest time the rotation will start ("the next rotation is
    /// scheduled to occur on or before this date", API reference, DescribeSecret).
    pub fn latest(&self) -> OffsetDateTime {
        (self.end - Duration::seconds(1)).max(self.start)
    }
}

/// Model constraints of `RotationRules` (ValidationException).
pub fn validate_rules(v: &mut Validator, rules: &RotationRules) {
    v.range(
        "RotationRules.AutomaticallyAfterDays",
        rules.automatically_after_days,
        1,
        1000,
    );
    v.length("RotationRules.Duration", rules.duration.as_deref(), 2, 3);
    if let Some(d) = &rules.duration
        && !(d.ends_with('h')
            && d.len() >= 2
            && d[..d.len() - 1].bytes().all(|b| b.is_ascii_digit()))
    {
        v.fail(
            "RotationRules.Duration",
            Some(d),
            "Member must satisfy regular expression pattern: [0-9]+h",
        );
    }
    v.length(
        "RotationRules.ScheduleExpression",
        rules.schedule_expression.as_deref(),
        1,
        256,
    );
    if let Some(e) = &rules.schedule_expression
        && !e
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"()#?*-/, ".contains(&b))
    {
        v.fail(
            "RotationRules.ScheduleExpression",
            Some(e),
            "Member must satisfy regular expression pattern: [0-9A-Za-z\\(\\)#\\?\\*\\-\\/, ]+",
        );
    }
}

// The texts of the InvalidParameterException errors below are tresor's (AWS's wording for
// these cases is not documented); the rules themselves are the User Guide's.
fn bad(message: impl Into<String>) -> SecretsManagerError {
    errors::invalid_parameter(message)
}

/// Parses and checks `rules` (after [`validate_rules`]). `None`: no schedule was given.
pub fn parse(rules: &RotationRules) -> Result<Option<Schedule>, SecretsManagerError> {
    let window_hours = match &rules.duration {
        Some(d) => Some(
            d.trim_end_matches('h')
                .parse::<i64>()
                .ok()
                .filter(|h| (1..=24).contains(h))
                .ok_or_else(|| {
                    bad(format!(
                        "The rotation window duration {d} must be between 1h and 24h."
                    ))
                })?,
        ),
        None => None,
    };
    let kind = match (rules.automatically_after_days, &rules.schedule_expression) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "You can't specify both AutomaticallyAfterDays and ScheduleExpression in RotationRules.",
            ));
        }
        (Some(days), None) => Kind::Days(days),
        (None, Some(expr)) => parse_expression(expr.trim())?,
        (None, None) => {
            if window_hours.is_some() {
                return Err(bad(
                    "A rotation window Duration needs a ScheduleExpression or AutomaticallyAfterDays.",
                ));
            }
            return Ok(None);
        }
    };
    let s = Schedule { kind, window_hours };
    s.check_window()?;
    Ok(Some(s))
}

fn parse_expression(expr: &str) -> Result<Kind, SecretsManagerError> {
    if let Some(inner) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        let mut parts = inner.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(format!("Invalid rate expression: {expr}")));
        };
        let n: i64 = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(format!("Invalid rate expression: {expr}")))?;
        return match unit {
            "hour" | "hours" => {
                if n < MIN_RATE_HOURS {
                    return Err(bad(format!(
                        "The schedule expression {expr} rotates more often than every {MIN_RATE_HOURS} hours, the shortest rotation interval."
                    )));
                }
                if n % 24 == 0 {
                    Ok(Kind::Days(n / 24))
                } else {
                    Ok(Kind::Hours(n))
                }
            }
            "day" | "days" if n <= 1000 => Ok(Kind::Days(n)),
            _ => Err(bad(format!("Invalid rate expression: {expr}"))),
        };
    }
    if let Some(inner) = expr.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        return Cron::parse(inner)
            .map(Kind::Cron)
            .map_err(|why| bad(format!("Invalid cron expression {expr}: {why}")));
    }
    Err(bad(format!(
        "Invalid schedule expression {expr}: use rate(…) or cron(…)."
    )))
}

impl Schedule {
    /// Whether the schedule counts in hours (default window: one hour) or days (default
    /// window: to the end of the UTC day).
    fn in_hours(&self) -> bool {
        match &self.kind {
            Kind::Hours(_) => true,
            Kind::Days(_) => false,
            Kind::Cron(c) => c.hours.len() > 1,
        }
    }

    /// The `AutomaticallyAfterDays` a schedule in whole days implies (DescribeSecret shows it
    /// next to the expression).
    pub fn days(&self) -> Option<i64> {
        match self.kind {
            Kind::Days(d) => Some(d),
            _ => None,
        }
    }

    fn check_window(&self) -> Result<(), SecretsManagerError> {
        let Some(w) = self.window_hours else {
            return Ok(());
        };
        let starts: Vec<i64> = match &self.kind {
            Kind::Hours(n) => (0..24).step_by(usize::try_from(*n).unwrap_or(24)).collect(),
            Kind::Days(_) => vec![0],
            Kind::Cron(c) => c.hours.iter().map(|h| i64::from(*h)).collect(),
        };
        if let Kind::Hours(n) = self.kind
            && w > n
        {
            return Err(bad(format!(
                "The rotation window ({w}h) must not extend into the next rotation window, {n} hours later."
            )));
        }
        for pair in starts.windows(2) {
            if pair[1] - pair[0] < w {
                return Err(bad(format!(
                    "The rotation window ({w}h) must not extend into the next rotation window."
                )));
            }
        }
        if starts.last().is_some_and(|h| h + w > 24) {
            return Err(bad(format!(
                "The rotation window ({w}h) must not extend into the next UTC day."
            )));
        }
        Ok(())
    }

    fn window_at(&self, start: OffsetDateTime) -> Window {
        let hours = self.window_hours;
        let end = match hours {
            Some(h) => start + Duration::hours(h),
            None if self.in_hours() => start + Duration::hours(1),
            None => start.replace_time(Time::MIDNIGHT) + Duration::days(1),
        };
        Window { start, end }
    }

    /// The first window that starts after `last` (the last rotation, or the moment rotation
    /// was configured).
    pub fn next_window(&self, last: OffsetDateTime) -> Window {
        let last = last.to_offset(time::UtcOffset::UTC);
        if scaled()
            && let Kind::Hours(_) | Kind::Days(_) = self.kind
        {
            // The test knob: intervals and windows in shortened hours, from `last`.
            let hour = hour_seconds();
            let interval = match self.kind {
                Kind::Hours(n) => n,
                Kind::Days(d) => d * 24,
                Kind::Cron(_) => 24,
            };
            let window = self
                .window_hours
                .unwrap_or(if self.in_hours() { 1 } else { 24 });
            let start = last + Duration::seconds(interval * hour);
            return Window {
                start,
                end: start + Duration::seconds(window * hour),
            };
        }
        let midnight = last.replace_time(Time::MIDNIGHT);
        match &self.kind {
            Kind::Days(d) => self.window_at(midnight + Duration::days(*d)),
            Kind::Hours(n) => {
                let mut start = midnight;
                loop {
                    start += Duration::hours(*n);
                    if start.date() != midnight.date() {
                        break self.window_at(start.replace_time(Time::MIDNIGHT));
                    }
                    if start > last {
                        break self.window_at(start);
                    }
                }
            }
            Kind::Cron(c) => match c.next_after(last) {
                Some(start) => self.window_at(start),
                // No match within the search horizon (e.g. 31 February): as far as possible.
                None => self.window_at(midnight + Duration::days(Cron::HORIZON_DAYS)),
            },
        }
    }
}

/// A Secrets Manager cron expression (minutes always 0, year always `*`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cron {
    hours: Vec<u8>,
    days_of_month: DayOfMonth,
    months: Vec<u8>,
    days_of_week: DayOfWeek,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DayOfMonth {
    Any,
    Days(Vec<u8>),
    Last,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum DayOfWeek {
    Any,
    /// 1 = Sunday … 7 = Saturday.
    Days(Vec<u8>),
    /// `DAY#n`: the n-th such weekday of the month.
    Nth(u8, u8),
    /// `DAYL`: the last such weekday of the month.
    Last(u8),
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(token: &str, names: &[&str], min: u8, max: u8) -> Result<u8, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(token)) {
        return Ok(min + u8::try_from(i).unwrap_or(0));
    }
    token
        .parse::<u8>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("'{token}' is not between {min} and {max}"))
}

/// A field of comma-separated items, each `*`, `N`, `N-M`, `N/K`, `*/K` or `/K`.
fn field(text: &str, names: &[&str], min: u8, max: u8) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u8>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad increment in '{item}'"))?,
            ),
            None => (item, 0),
        };
        let (lo, hi) = match range {
            "*" | "" => (min, max),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a, names, min, max)?, value(b, names, min, max)?),
                None => {
                    let v = value(r, names, min, max)?;
                    (v, if step > 0 { max } else { v })
                }
            },
        };
        if lo > hi {
            return Err(format!("empty range '{item}'"));
        }
        let step = step.max(1);
        let mut v = lo;
        while v <= hi {
            out.push(v);
            match v.checked_add(step) {
                Some(n) => v = n,
                None => break,
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

impl Cron {
    /// How far ahead a next window is looked for.
    const HORIZON_DAYS: i64 = 5 * 366;

    fn parse(text: &str) -> Result<Cron, String> {
        let f: Vec<&str> = text.split_whitespace().collect();
        let [minutes, hours, dom, month, dow, year] = f.as_slice() else {
            return Err("a cron expression has six fields".into());
        };
        if *minutes != "0" {
            return Err("the minutes field must be 0".into());
        }
        if *year != "*" {
            return Err("the year field must be *".into());
        }
        let hours = field(hours, &[], 0, 23)?;
        let months = field(month, &MONTHS, 1, 12)?;
        let days_of_month = match *dom {
            "?" => DayOfMonth::Any,
            "L" => DayOfMonth::Last,
            d => DayOfMonth::Days(field(d, &[], 1, 31)?),
        };
        let days_of_week = match *dow {
            "?" => DayOfWeek::Any,
            "L" => DayOfWeek::Days(vec![7]),
            d if d.contains('#') => {
                let (day, n) = d.split_once('#').unwrap_or((d, ""));
                let n = n
                    .parse::<u8>()
                    .ok()
                    .filter(|n| (1..=5).contains(n))
                    .ok_or_else(|| format!("bad '#' in '{d}'"))?;
                DayOfWeek::Nth(value(day, &WEEKDAYS, 1, 7)?, n)
            }
            d if d.len() > 1 && d.ends_with('L') => {
                DayOfWeek::Last(value(&d[..d.len() - 1], &WEEKDAYS, 1, 7)?)
            }
            d => DayOfWeek::Days(field(d, &WEEKDAYS, 1, 7)?),
        };
        let any_dom = matches!(days_of_month, DayOfMonth::Any);
        let any_dow = matches!(days_of_week, DayOfWeek::Any);
        if any_dom == any_dow {
            return Err("use ? in exactly one of day-of-month and day-of-week".into());
        }
        Ok(Cron {
            hours,
            days_of_month,
            months,
            days_of_week,
        })
    }

    fn matches_day(&self, d: Date) -> bool {
        if !self.months.contains(&u8::from(d.month())) {
            return false;
        }
        let last_day = d.month().length(d.year());
        let weekday = d.weekday().number_from_sunday();
        let dom_ok = match &self.days_of_month {
            DayOfMonth::Any => true,
            DayOfMonth::Last => d.day() == last_day,
            DayOfMonth::Days(days) => days.contains(&d.day()),
        };
        let dow_ok = match &self.days_of_week {
            DayOfWeek::Any => true,
            DayOfWeek::Days(days) => days.contains(&weekday),
            DayOfWeek::Nth(day, n) => weekday == *day && (d.day() - 1) / 7 + 1 == *n,
            DayOfWeek::Last(day) => weekday == *day && d.day() + 7 > last_day,
        };
        dom_ok && dow_ok
    }

    /// The first window start strictly after `t`.
    fn next_after(&self, t: OffsetDateTime) -> Option<OffsetDateTime> {
        let mut day = t.date();
        for _ in 0..Self::HORIZON_DAYS {
            if self.matches_day(day) {
                for h in &self.hours {
                    let start = day.with_hms(*h, 0, 0).ok()?.assume_utc();
                    if start > t {
                        return Some(start);
                    }
                }
            }
            day = day.next_day()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a failed test

    use super::*;
    use time::macros::datetime;

    fn rules(days: Option<i64>, expr: Option<&str>, duration: Option<&str>) -> RotationRules {
        RotationRules {
            automatically_after_days: days,
            duration: duration.map(str::to_string),
            schedule_expression: expr.map(str::to_string),
        }
    }

    fn sched(expr: &str, duration: Option<&str>) -> Result<Schedule, String> {
        parse(&rules(None, Some(expr), duration))
            .map(|s| s.expect("a schedule"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn rates_below_four_hours_and_malformed_expressions_are_refused() {
        for bad in [
            "rate(3 hours)",
            "rate(1 hour)",
            "rate(0 days)",
            "rate(5 minutes)",
            "rate(4hours)",
            "rate(1001 days)",
            "cron(5 10 * * ? *)",
            "cron(0 10 * * ? 2030)",
            "cron(0 10 * * *)",
            "cron(0 10 * * * *)",
            "cron(0 10 ? * ? *)",
            "cron(0 25 * * ? *)",
            "cron(0 10 ? * FOO *)",
            "every day",
        ] {
            let e = sched(bad, None).expect_err(bad);
            assert!(e.starts_with("InvalidParameterException"), "{bad}: {e}");
        }
        for good in [
            "rate(4 hours)",
            "rate(1 day)",
            "rate(10 days)",
            "cron(0 /8 * * ? *)",
            "cron(0 8/8 * * ? *)",
            "cron(0 18 ? * SAT *)",
            "cron(0 1 ? 1/3 SUN#1 *)",
            "cron(0 17 L * ? *)",
            "cron(0 8 ? * MON-FRI *)",
            "cron(0 16 1,15 * ? *)",
            "cron(0 0 ? * SUNL *)",
        ] {
            sched(good, None).expect(good);
        }
    }

    #[test]
    fn both_kinds_of_rule_together_are_refused_and_days_are_bounded() {
        let e = parse(&rules(Some(3), Some("rate(3 days)"), None)).expect_err("both");
        assert_eq!(e.code(), "InvalidParameterException");
        let mut v = Validator::new();
        validate_rules(&mut v, &rules(Some(1001), None, Some("3x")));
        let e = crate::validate::finish(v).expect_err("bounds");
        assert_eq!(e.code(), "ValidationException");
        assert!(e.to_string().contains("2 validation errors"), "{e}");
    }

    #[test]
    fn windows_may_not_reach_the_next_window_or_the_next_day() {
        assert!(sched("rate(4 hours)", Some("4h")).is_ok());
        assert!(sched("rate(4 hours)", Some("5h")).is_err());
        assert!(sched("rate(2 days)", Some("24h")).is_ok());
        assert!(sched("rate(2 days)", Some("25h")).is_err());
        assert!(sched("cron(0 20 * * ? *)", Some("4h")).is_ok());
        assert!(sched("cron(0 20 * * ? *)", Some("5h")).is_err());
        assert!(sched("cron(0 2/10 * * ? *)", Some("2h")).is_ok());
        // 22:00 + 3h crosses midnight.
        assert!(sched("cron(0 2/10 * * ? *)", Some("3h")).is_err());
        assert!(sched("cron(0 2/10 * * ? *)", Some("10h")).is_err());
        assert!(sched("cron(0 1,3 * * ? *)", Some("3h")).is_err());
    }

    #[test]
    fn day_schedules_start_at_midnight_and_close_at_the_end_of_the_day() {
        let last = datetime!(2026-03-10 14:25 UTC);
        let s = parse(&rules(Some(30), None, None)).unwrap().unwrap();
        let w = s.next_window(last);
        assert_eq!(w.start, datetime!(2026-04-09 0:00 UTC));
        assert_eq!(w.end, datetime!(2026-04-10 0:00 UTC));
        assert_eq!(w.latest(), datetime!(2026-04-09 23:59:59 UTC));
        let s = sched("rate(2 days)", Some("3h")).unwrap();
        assert_eq!(s.days(), Some(2));
        let w = s.next_window(last);
        assert_eq!(w.start, datetime!(2026-03-12 0:00 UTC));
        assert_eq!(w.end, datetime!(2026-03-12 3:00 UTC));
    }

    #[test]
    fn hour_rates_restart_at_midnight_each_day() {
        let s = sched("rate(10 hours)", None).unwrap();
        let w = s.next_window(datetime!(2026-03-10 0:20 UTC));
        assert_eq!(w.start, datetime!(2026-03-10 10:00 UTC));
        assert_eq!(w.end, datetime!(2026-03-10 11:00 UTC));
        let w = s.next_window(datetime!(2026-03-10 20:30 UTC));
        assert_eq!(w.start, datetime!(2026-03-11 0:00 UTC));
        assert_eq!(
            sched("rate(48 hours)", None)
                .unwrap()
                .next_window(datetime!(2026-03-10 5:00 UTC))
                .start,
            datetime!(2026-03-12 0:00 UTC)
        );
    }

    #[test]
    fn cron_windows_follow_the_documented_examples() {
        let t = datetime!(2026-03-10 14:25 UTC); // a Tuesday
        let next = |e: &str| sched(e, None).unwrap().next_window(t);
        assert_eq!(
            next("cron(0 10 * * ? *)").start,
            datetime!(2026-03-11 10:00 UTC)
        );
        assert_eq!(
            next("cron(0 /8 * * ? *)").start,
            datetime!(2026-03-10 16:00 UTC)
        );
        assert_eq!(
            next("cron(0 18 ? * SAT *)").start,
            datetime!(2026-03-14 18:00 UTC)
        );
        assert_eq!(
            next("cron(0 17 L * ? *)").start,
            datetime!(2026-03-31 17:00 UTC)
        );
        assert_eq!(
            next("cron(0 0 ? * SUN#1 *)").start,
            datetime!(2026-04-05 0:00 UTC)
        );
        assert_eq!(
            next("cron(0 0 ? * FRIL *)").start,
            datetime!(2026-03-27 0:00 UTC)
        );
        assert_eq!(
            next("cron(0 16 1,15 * ? *)").start,
            datetime!(2026-03-15 16:00 UTC)
        );
        assert_eq!(
            next("cron(0 8 ? * MON-FRI *)").start,
            datetime!(2026-03-11 8:00 UTC)
        );
        // A schedule in hours closes after an hour, one in days at the end of the day.
        assert_eq!(
            next("cron(0 /8 * * ? *)").end,
            datetime!(2026-03-10 17:00 UTC)
        );
        assert_eq!(
            next("cron(0 10 * * ? *)").end,
            datetime!(2026-03-12 0:00 UTC)
        );
        assert_eq!(
            sched("cron(0 10 * * ? *)", Some("2h"))
                .unwrap()
                .next_window(t)
                .end,
            datetime!(2026-03-11 12:00 UTC)
        );
    }
}

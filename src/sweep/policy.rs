//! Early-termination policies (`early_termination:` of a sweep job): which running trials to
//! cancel now, given every trial's primary-metric series. Pure logic, no I/O.
//!
//! Rules follow `azureml-contract.md` §2. The *interval* of a trial is the number of times it
//! has reported the primary metric (each `mlflow.log_metric(primary, v)` is one interval). A
//! policy is applied at interval `X` only when `X` is a multiple of `evaluation_interval` and
//! `X >= delay_evaluation` (an `evaluation_interval` of 0 is treated as 1: the sources disagree
//! on the default, see the contract's ⚠).
//!
//! Choices made where Azure documents nothing (⚠/[INF] in the contract), also stated on the
//! items they concern:
//!
//! - **Which interval a trial is judged at.** Each running trial is judged at its *latest*
//!   evaluation point: the largest `X <= reports` that is a multiple of the interval and
//!   `>= delay`. Earlier points are not re-judged, so a trial that survived interval 4 is
//!   never stopped later because newer trials did better at interval 4.
//! - **References.** At interval `X` the references are every trial, running or ended, that
//!   has reported at least `X` values, each seen through its first `X` values only. A trial
//!   that has not reached `X` is not a reference (it has nothing at `X` yet). Ended trials are
//!   references but are never in the returned decisions.
//! - **Idempotence.** [`evaluate`] is a pure function of its input: calling it again with the
//!   same series (after a restart, or when another metric of another name arrives) returns the
//!   same decisions.
//! - **Ties** never stop a trial: every comparison is strict.
//! - **NaN** values count as the worst possible value (a trial whose metric went NaN has
//!   diverged); ±∞ compare as numbers.
//! - **Bandit** `best` is the best of the references' best-so-far values over `1..=X`, and `Y`
//!   is this trial's best over `1..=X`. The trial holding `best` is never stopped, even where the
//!   factor form misbehaves on negative metrics (`Y*(1+sf) < Y` when `Y < 0`); otherwise the
//!   factor form is applied literally, as Azure documents it. Minimize mirrors it
//!   (`Y > best*(1+sf)`, `Y > best + slack_amount`), which Azure does not document.
//! - **Median stopping** takes the median of the references' running averages over `1..=X`
//!   (this trial included) and stops a trial whose best over `1..=X` is strictly worse. With a
//!   single reference the trial's best is never worse than its own average, so nothing stops.
//! - **Truncation selection** ranks the references by their value *at* interval `X` (the X-th
//!   report) and cuts `floor(n * truncation_percentage / 100)` of the `n` references: with few
//!   trials nothing is cut (5 trials at 10% → 0). Ended trials take part in the ranking (Azure's
//!   `exclude_finished_jobs: false`, the only behaviour its schema has) but are never stopped, so
//!   fewer than that many running trials may stop. A trial stops only when it is strictly worse
//!   than the worst trial kept, so trials tied across the cut are all kept.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// `objective.goal`: whether a higher or a lower primary metric is better.
///
/// Read case-insensitively (`Maximize` works), as Azure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    Maximize,
    Minimize,
}

impl Goal {
    /// The schema spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Goal::Maximize => "maximize",
            Goal::Minimize => "minimize",
        }
    }

    /// Whether `a` is strictly better than `b` (NaN is worse than anything, and never better).
    pub fn better(self, a: f64, b: f64) -> bool {
        match (a.is_nan(), b.is_nan()) {
            (true, _) => false,
            (false, true) => true,
            _ => match self {
                Goal::Maximize => a > b,
                Goal::Minimize => a < b,
            },
        }
    }

    /// The best of `values` (NaN only when every value is NaN); `None` when empty.
    pub fn best(self, values: &[f64]) -> Option<f64> {
        values
            .iter()
            .copied()
            .reduce(|acc, v| if self.better(v, acc) { v } else { acc })
    }
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Goal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Goal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`maximize` or `minimize`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Goal, E> {
                if v.eq_ignore_ascii_case("maximize") {
                    Ok(Goal::Maximize)
                } else if v.eq_ignore_ascii_case("minimize") {
                    Ok(Goal::Minimize)
                } else {
                    Err(E::unknown_variant(v, &["maximize", "minimize"]))
                }
            }
        }
        d.deserialize_str(V)
    }
}

/// The slack of a bandit policy: exactly one of `slack_factor` and `slack_amount`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slack {
    /// `slack_factor`: a ratio (maximize: stop when `Y * (1 + factor) < best`).
    Factor(f64),
    /// `slack_amount`: an absolute distance (maximize: stop when `Y < best - amount`).
    Amount(f64),
}

/// `early_termination:` of a sweep job.
///
/// `evaluation_interval` and `delay_evaluation` count primary-metric reports; an
/// `evaluation_interval` of 0 behaves as 1 (see [`EarlyTermination::interval`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EarlyTermination {
    /// Stop a trial whose best so far is not within the slack of the best trial's.
    Bandit {
        slack: Slack,
        evaluation_interval: u32,
        delay_evaluation: u32,
    },
    /// Stop a trial whose best so far is worse than the median of the running averages.
    MedianStopping {
        evaluation_interval: u32,
        delay_evaluation: u32,
    },
    /// Stop the worst `truncation_percentage` percent (1..=99) at each evaluation.
    TruncationSelection {
        truncation_percentage: u32,
        evaluation_interval: u32,
        delay_evaluation: u32,
    },
}

impl EarlyTermination {
    /// The schema name (`bandit`, `median_stopping`, `truncation_selection`).
    pub fn type_name(&self) -> &'static str {
        match self {
            EarlyTermination::Bandit { .. } => "bandit",
            EarlyTermination::MedianStopping { .. } => "median_stopping",
            EarlyTermination::TruncationSelection { .. } => "truncation_selection",
        }
    }

    /// The evaluation interval, with 0 read as 1.
    pub fn interval(&self) -> u32 {
        let (EarlyTermination::Bandit {
            evaluation_interval,
            ..
        }
        | EarlyTermination::MedianStopping {
            evaluation_interval,
            ..
        }
        | EarlyTermination::TruncationSelection {
            evaluation_interval,
            ..
        }) = self;
        (*evaluation_interval).max(1)
    }

    /// `delay_evaluation`.
    pub fn delay(&self) -> u32 {
        let (EarlyTermination::Bandit {
            delay_evaluation, ..
        }
        | EarlyTermination::MedianStopping {
            delay_evaluation, ..
        }
        | EarlyTermination::TruncationSelection {
            delay_evaluation, ..
        }) = self;
        *delay_evaluation
    }

    /// Whether the policy applies at interval `x` (a report count): `x >= 1`, a multiple of
    /// the interval, and `>= delay_evaluation`.
    pub fn applies_at(&self, x: usize) -> bool {
        x >= 1 && x.is_multiple_of(self.interval() as usize) && x >= self.delay() as usize
    }

    /// The latest interval `<= reports` at which the policy applies, if any.
    pub fn latest_evaluation(&self, reports: usize) -> Option<usize> {
        let step = self.interval() as usize;
        let x = reports - reports % step;
        (x >= 1 && x >= self.delay() as usize).then_some(x)
    }
}

/// One trial as a policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialProgress {
    /// The trial's id (returned in [`StopDecision::id`]).
    pub id: String,
    /// Still running (or queued): only these can be stopped. Ended trials are references.
    pub running: bool,
    /// Every value of the primary metric, in report order, as logged (not negated).
    pub metrics: Vec<f64>,
}

/// A running trial to cancel now, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct StopDecision {
    pub id: String,
    /// The interval (report count) the trial was judged at.
    pub interval: usize,
    /// Names the rule and the numbers, e.g. `bandit at interval 4: best 0.931, this trial's
    /// best 0.712 < 0.931/(1+0.1)=0.8464`.
    pub reason: String,
}

/// Which running trials `policy` stops now, in the order of `trials`.
///
/// Each running trial is judged once, at its latest evaluation point (see the module docs for
/// every choice made where Azure is silent). Pure and deterministic: the same input always
/// gives the same decisions.
pub fn evaluate(
    policy: &EarlyTermination,
    goal: Goal,
    trials: &[TrialProgress],
) -> Vec<StopDecision> {
    trials
        .iter()
        .filter(|t| t.running)
        .filter_map(|t| {
            let x = policy.latest_evaluation(t.metrics.len())?;
            let refs: Vec<&[f64]> = trials
                .iter()
                .filter(|r| r.metrics.len() >= x)
                .map(|r| &r.metrics[..x])
                .collect();
            let reason = match policy {
                EarlyTermination::Bandit { slack, .. } => {
                    bandit(*slack, goal, &t.metrics[..x], &refs, x)
                }
                EarlyTermination::MedianStopping { .. } => median(goal, &t.metrics[..x], &refs, x),
                EarlyTermination::TruncationSelection {
                    truncation_percentage,
                    ..
                } => truncation(*truncation_percentage, goal, &t.metrics[..x], &refs, x),
            }?;
            Some(StopDecision {
                id: t.id.clone(),
                interval: x,
                reason,
            })
        })
        .collect()
}

fn bandit(slack: Slack, goal: Goal, own: &[f64], refs: &[&[f64]], x: usize) -> Option<String> {
    let y = goal.best(own)?;
    let bests: Vec<f64> = refs.iter().filter_map(|r| goal.best(r)).collect();
    let best = goal.best(&bests)?;
    if !goal.better(best, y) {
        return None;
    }
    let head = format!(
        "bandit at interval {x}: best {}, this trial's best {}",
        num(best),
        num(y)
    );
    let (stop, rule) = match (goal, slack) {
        (Goal::Maximize, Slack::Factor(sf)) => {
            let limit = best / (1.0 + sf);
            (
                y.is_nan() || y * (1.0 + sf) < best,
                format!("< {}/(1+{})={}", num(best), num(sf), num(limit)),
            )
        }
        (Goal::Maximize, Slack::Amount(sa)) => {
            let limit = best - sa;
            (
                y.is_nan() || y < limit,
                format!("< {}-{}={}", num(best), num(sa), num(limit)),
            )
        }
        (Goal::Minimize, Slack::Factor(sf)) => {
            let limit = best * (1.0 + sf);
            (
                y.is_nan() || y > limit,
                format!("> {}*(1+{})={}", num(best), num(sf), num(limit)),
            )
        }
        (Goal::Minimize, Slack::Amount(sa)) => {
            let limit = best + sa;
            (
                y.is_nan() || y > limit,
                format!("> {}+{}={}", num(best), num(sa), num(limit)),
            )
        }
    };
    stop.then(|| format!("{head} {rule}"))
}

/// The mean of `values`; NaN when any value is NaN (a diverged trial averages to NaN).
fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn median(goal: Goal, own: &[f64], refs: &[&[f64]], x: usize) -> Option<String> {
    let y = goal.best(own)?;
    // NaN averages sort as the worst values.
    let mut averages: Vec<f64> = refs.iter().map(|r| mean(r)).collect();
    averages.sort_by(|a, b| rank(goal, *a, *b));
    let n = averages.len();
    if n == 0 {
        return None;
    }
    let med = if n % 2 == 1 {
        averages[n / 2]
    } else {
        let (a, b) = (averages[n / 2 - 1], averages[n / 2]);
        if a.is_nan() || b.is_nan() {
            if a.is_nan() { b } else { a }
        } else {
            (a + b) / 2.0
        }
    };
    if med.is_nan() || !goal.better(med, y) {
        return None;
    }
    let word = match goal {
        Goal::Maximize => "<",
        Goal::Minimize => ">",
    };
    Some(format!(
        "median_stopping at interval {x}: this trial's best {} {word} {} (median of the running averages of {n} trials)",
        num(y),
        num(med)
    ))
}

/// Ordering from worst to best (NaN first).
fn rank(goal: Goal, a: f64, b: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if goal.better(b, a) {
        Ordering::Less
    } else if goal.better(a, b) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn truncation(
    percentage: u32,
    goal: Goal,
    own: &[f64],
    refs: &[&[f64]],
    x: usize,
) -> Option<String> {
    let y = *own.last()?;
    let mut values: Vec<f64> = refs.iter().filter_map(|r| r.last().copied()).collect();
    values.sort_by(|a, b| rank(goal, *a, *b));
    let n = values.len();
    let cut = n * percentage as usize / 100;
    if cut == 0 || cut >= n {
        return None;
    }
    // The worst value kept; a trial stops only when strictly worse than it.
    let kept = values[cut];
    if !goal.better(kept, y) {
        return None;
    }
    Some(format!(
        "truncation_selection at interval {x}: this trial's value {} is in the worst {percentage}% ({cut} of {n} trials; the worst trial kept has {})",
        num(y),
        num(kept)
    ))
}

/// A number for a reason text: 4 significant digits, trailing zeros trimmed.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    if !(-4..9).contains(&magnitude) {
        return format!("{v:.3e}");
    }
    let precision = (3 - magnitude).max(0) as usize;
    let text = format!("{v:.precision$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

#[cfg(test)]
#[path = "tests_policy.rs"]
mod tests;

//! Tests of the early-termination rules in `policy.rs` (a child module of it, so they reach its
//! private helpers); kept apart so that file holds only the rules.

use super::*;

fn trial(id: &str, running: bool, metrics: &[f64]) -> TrialProgress {
    TrialProgress {
        id: id.into(),
        running,
        metrics: metrics.to_vec(),
    }
}

fn stopped(policy: &EarlyTermination, goal: Goal, trials: &[TrialProgress]) -> Vec<String> {
    evaluate(policy, goal, trials)
        .into_iter()
        .map(|d| d.id)
        .collect()
}

fn bandit_factor(sf: f64, interval: u32, delay: u32) -> EarlyTermination {
    EarlyTermination::Bandit {
        slack: Slack::Factor(sf),
        evaluation_interval: interval,
        delay_evaluation: delay,
    }
}

fn bandit_amount(sa: f64, interval: u32, delay: u32) -> EarlyTermination {
    EarlyTermination::Bandit {
        slack: Slack::Amount(sa),
        evaluation_interval: interval,
        delay_evaluation: delay,
    }
}

fn median_policy(interval: u32, delay: u32) -> EarlyTermination {
    EarlyTermination::MedianStopping {
        evaluation_interval: interval,
        delay_evaluation: delay,
    }
}

fn truncation_policy(pct: u32, interval: u32, delay: u32) -> EarlyTermination {
    EarlyTermination::TruncationSelection {
        truncation_percentage: pct,
        evaluation_interval: interval,
        delay_evaluation: delay,
    }
}

#[test]
fn evaluation_points_follow_interval_and_delay() {
    let p = bandit_factor(0.1, 2, 5);
    let points: Vec<usize> = (0..12).filter(|x| p.applies_at(*x)).collect();
    assert_eq!(points, [6, 8, 10]);
    assert_eq!(p.latest_evaluation(5), None);
    assert_eq!(p.latest_evaluation(7), Some(6));
    assert_eq!(p.latest_evaluation(9), Some(8));
    // Interval 0 behaves as 1.
    let zero = median_policy(0, 0);
    assert_eq!(zero.interval(), 1);
    assert_eq!(zero.latest_evaluation(0), None);
    assert_eq!(zero.latest_evaluation(3), Some(3));
}

#[test]
fn bandit_factor_stops_only_the_trial_outside_the_slack() {
    let p = bandit_factor(0.1, 1, 0);
    let trials = [
        trial("best", true, &[0.5, 0.7, 0.8, 0.931]),
        trial("close", true, &[0.6, 0.85, 0.86, 0.87]),
        trial("bad", true, &[0.3, 0.5, 0.712, 0.7]),
    ];
    let d = evaluate(&p, Goal::Maximize, &trials);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].id, "bad");
    assert_eq!(d[0].interval, 4);
    assert_eq!(
        d[0].reason,
        "bandit at interval 4: best 0.931, this trial's best 0.712 < 0.931/(1+0.1)=0.8464"
    );
}

#[test]
fn bandit_minimize_mirrors_the_rule() {
    let p = bandit_factor(0.1, 1, 0);
    let trials = [
        trial("best", true, &[0.5, 0.2]),
        trial("close", true, &[0.4, 0.21]),
        trial("bad", true, &[0.6, 0.3]),
    ];
    assert_eq!(stopped(&p, Goal::Minimize, &trials), ["bad"]);
    let d = evaluate(&p, Goal::Minimize, &trials);
    assert!(
        d[0].reason.contains("0.3 > 0.2*(1+0.1)=0.22"),
        "{}",
        d[0].reason
    );
    // Under maximize the same series stop the two low ones instead (best 0.6 from "bad").
    assert_eq!(stopped(&p, Goal::Maximize, &trials), ["best", "close"]);
}

#[test]
fn bandit_slack_amount_both_ways() {
    let p = bandit_amount(0.2, 1, 0);
    let up = [
        trial("a", true, &[1.0]),
        trial("b", true, &[0.85]),
        trial("c", true, &[0.79]),
    ];
    assert_eq!(stopped(&p, Goal::Maximize, &up), ["c"]);
    let d = evaluate(&p, Goal::Maximize, &up);
    assert!(d[0].reason.ends_with("0.79 < 1-0.2=0.8"), "{}", d[0].reason);
    let down = [
        trial("a", true, &[1.0]),
        trial("b", true, &[1.15]),
        trial("c", true, &[1.21]),
    ];
    assert_eq!(stopped(&p, Goal::Minimize, &down), ["c"]);
}

#[test]
fn bandit_ties_at_the_threshold_do_not_stop() {
    let p = bandit_amount(0.25, 1, 0);
    let trials = [trial("a", true, &[1.0]), trial("b", true, &[0.75])];
    assert!(stopped(&p, Goal::Maximize, &trials).is_empty());
    // Two trials tied for best never stop each other even with zero slack.
    let zero = bandit_amount(0.0, 1, 0);
    let tied = [trial("a", true, &[0.9]), trial("b", true, &[0.9])];
    assert!(stopped(&zero, Goal::Maximize, &tied).is_empty());
}

#[test]
fn bandit_uses_the_best_so_far_not_the_last_value() {
    let p = bandit_factor(0.1, 1, 0);
    // b dipped at its last report but its best so far is within the slack.
    let trials = [
        trial("a", true, &[0.9, 0.91]),
        trial("b", true, &[0.9, 0.1]),
    ];
    assert!(stopped(&p, Goal::Maximize, &trials).is_empty());
}

#[test]
fn bandit_leader_with_negative_metrics_is_not_stopped() {
    let p = bandit_factor(0.1, 1, 0);
    let trials = [trial("a", true, &[-1.0]), trial("b", true, &[-1.2])];
    // Literally, -1 * 1.1 < -1 would stop the leader; it never is.
    assert_eq!(stopped(&p, Goal::Maximize, &trials), ["b"]);
}

#[test]
fn delay_and_interval_gate_the_evaluation() {
    let trials = [
        trial("a", true, &[0.9, 0.9, 0.9]),
        trial("b", true, &[0.1, 0.1, 0.1]),
    ];
    assert!(stopped(&bandit_factor(0.1, 1, 4), Goal::Maximize, &trials).is_empty());
    assert_eq!(
        stopped(&bandit_factor(0.1, 1, 3), Goal::Maximize, &trials),
        ["b"]
    );
    // Interval 2: judged at report 2 of 3.
    let d = evaluate(&bandit_factor(0.1, 2, 0), Goal::Maximize, &trials);
    assert_eq!(d[0].interval, 2);
    // Interval 4 with 3 reports: no evaluation yet.
    assert!(stopped(&bandit_factor(0.1, 4, 0), Goal::Maximize, &trials).is_empty());
}

#[test]
fn only_trials_that_reached_the_interval_are_references() {
    let p = bandit_factor(0.1, 1, 0);
    // `fast` reached interval 3 with a great value; `slow` is at interval 1, where only
    // `fast`'s first value (0.5) counts.
    let trials = [
        trial("fast", true, &[0.5, 0.8, 0.99]),
        trial("slow", true, &[0.48]),
    ];
    assert!(stopped(&p, Goal::Maximize, &trials).is_empty());
    let trials = [
        trial("fast", true, &[0.5, 0.8, 0.99]),
        trial("slow", true, &[0.40]),
    ];
    assert_eq!(stopped(&p, Goal::Maximize, &trials), ["slow"]);
}

#[test]
fn finished_trials_are_references_but_never_stopped() {
    let p = bandit_factor(0.1, 1, 0);
    let trials = [
        trial("done-best", false, &[0.95, 0.97]),
        trial("done-bad", false, &[0.1, 0.2]),
        trial("running", true, &[0.5, 0.6]),
    ];
    assert_eq!(stopped(&p, Goal::Maximize, &trials), ["running"]);
    let all_done = [trial("a", false, &[0.9]), trial("b", false, &[0.1])];
    assert!(evaluate(&p, Goal::Maximize, &all_done).is_empty());
}

#[test]
fn evaluation_is_idempotent() {
    let p = truncation_policy(25, 1, 0);
    let trials: Vec<TrialProgress> = (0..8)
        .map(|i| {
            trial(
                &format!("t{i}"),
                i % 3 != 0,
                &[0.1 * i as f64, 0.1 * i as f64],
            )
        })
        .collect();
    let first = evaluate(&p, Goal::Maximize, &trials);
    assert_eq!(first, evaluate(&p, Goal::Maximize, &trials));
    assert!(!first.is_empty());
}

#[test]
fn median_stops_trials_below_the_median_of_running_averages() {
    let p = median_policy(1, 0);
    let trials = [
        trial("a", true, &[0.8, 0.9]),  // avg 0.85, best 0.9
        trial("b", true, &[0.7, 0.8]),  // avg 0.75, best 0.8
        trial("c", true, &[0.2, 0.74]), // avg 0.47, best 0.74 < median 0.75
    ];
    let d = evaluate(&p, Goal::Maximize, &trials);
    assert_eq!(d.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["c"]);
    assert!(
        d[0].reason
            .contains("best 0.74 < 0.75 (median of the running averages of 3 trials)"),
        "{}",
        d[0].reason
    );
    // Minimize mirrored: lower is better.
    let down = [
        trial("a", true, &[0.2, 0.1]),  // avg 0.15
        trial("b", true, &[0.3, 0.2]),  // avg 0.25
        trial("c", true, &[0.8, 0.26]), // avg 0.53, best 0.26 > 0.25
    ];
    assert_eq!(stopped(&p, Goal::Minimize, &down), ["c"]);
}

#[test]
fn median_with_few_trials() {
    let p = median_policy(1, 0);
    // One trial: its best is never worse than its own average.
    assert!(stopped(&p, Goal::Maximize, &[trial("a", true, &[0.1, 0.2])]).is_empty());
    // Two trials: the median is the mean of the two averages.
    let two = [trial("a", true, &[0.8, 0.9]), trial("b", true, &[0.3, 0.5])];
    // averages 0.85 and 0.4 → median 0.625; b's best 0.5 is below it.
    assert_eq!(stopped(&p, Goal::Maximize, &two), ["b"]);
    // Equal to the median: kept.
    let tie = [
        trial("a", true, &[1.0]),
        trial("b", true, &[0.0]),
        trial("c", true, &[0.5]),
    ];
    assert_eq!(stopped(&p, Goal::Maximize, &tie), ["b"]);
}

#[test]
fn truncation_cuts_the_floor_of_the_percentage() {
    let p = truncation_policy(20, 1, 0);
    let four: Vec<TrialProgress> = (1..=4)
        .map(|i| trial(&format!("t{i}"), true, &[i as f64]))
        .collect();
    // floor(4 * 20%) = 0: nothing is cut with so few trials.
    assert!(stopped(&p, Goal::Maximize, &four).is_empty());
    let five: Vec<TrialProgress> = (1..=5)
        .map(|i| trial(&format!("t{i}"), true, &[i as f64]))
        .collect();
    assert_eq!(stopped(&p, Goal::Maximize, &five), ["t1"]);
    assert_eq!(stopped(&p, Goal::Minimize, &five), ["t5"]);
    let d = evaluate(&p, Goal::Maximize, &five);
    assert!(
        d[0].reason.contains("worst 20% (1 of 5 trials"),
        "{}",
        d[0].reason
    );
    let p50 = truncation_policy(50, 1, 0);
    assert_eq!(stopped(&p50, Goal::Maximize, &five), ["t1", "t2"]);
    let p99 = truncation_policy(99, 1, 0);
    assert_eq!(
        stopped(&p99, Goal::Maximize, &five),
        ["t1", "t2", "t3", "t4"]
    );
}

#[test]
fn truncation_uses_the_value_at_the_interval_and_finished_trials_rank() {
    let p = truncation_policy(50, 1, 0);
    // Ranked at interval 2: done (0.1) and r1 (0.2) are the worst half; only r1 runs.
    let trials = [
        trial("done", false, &[0.9, 0.1]),
        trial("r1", true, &[0.9, 0.2, 0.0]),
        trial("r2", true, &[0.1, 0.8]),
        trial("r3", true, &[0.1, 0.9]),
    ];
    // r1 is judged at interval 3 where only it has a value: nothing to rank against.
    assert!(stopped(&p, Goal::Maximize, &trials).is_empty());
    let trials = [
        trial("done", false, &[0.9, 0.1]),
        trial("r1", true, &[0.9, 0.2]),
        trial("r2", true, &[0.1, 0.8]),
        trial("r3", true, &[0.1, 0.9]),
    ];
    assert_eq!(stopped(&p, Goal::Maximize, &trials), ["r1"]);
}

#[test]
fn truncation_ties_across_the_cut_are_kept() {
    let p = truncation_policy(25, 1, 0);
    let trials = [
        trial("a", true, &[0.5]),
        trial("b", true, &[0.5]),
        trial("c", true, &[0.9]),
        trial("d", true, &[0.8]),
    ];
    // One of four should go, but a and b tie at the bottom: neither is strictly worse.
    assert!(stopped(&p, Goal::Maximize, &trials).is_empty());
}

#[test]
fn nan_counts_as_the_worst_value() {
    let p = bandit_factor(0.1, 1, 0);
    let trials = [trial("a", true, &[0.5]), trial("b", true, &[f64::NAN])];
    assert_eq!(stopped(&p, Goal::Maximize, &trials), ["b"]);
    assert_eq!(stopped(&p, Goal::Minimize, &trials), ["b"]);
    let t = truncation_policy(50, 1, 0);
    assert_eq!(stopped(&t, Goal::Minimize, &trials), ["b"]);
    let m = median_policy(1, 0);
    let three = [
        trial("a", true, &[0.5]),
        trial("b", true, &[f64::NAN]),
        trial("c", true, &[0.6]),
    ];
    assert_eq!(stopped(&m, Goal::Maximize, &three), ["b"]);
}

#[test]
fn goal_reads_case_insensitively_with_a_suggestion() {
    let g: Goal = serde_yaml::from_str("Maximize").unwrap();
    assert_eq!(g, Goal::Maximize);
    let g: Goal = serde_yaml::from_str("MINIMIZE").unwrap();
    assert_eq!(g, Goal::Minimize);
    let e = serde_yaml::from_str::<Goal>("maximise").unwrap_err();
    assert!(e.to_string().contains("unknown variant `maximise`"), "{e}");
}

#[test]
fn numbers_in_reasons_are_short() {
    assert_eq!(num(0.931), "0.931");
    assert_eq!(num(0.846363636), "0.8464");
    assert_eq!(num(1.0), "1");
    assert_eq!(num(1234.5678), "1235");
    assert_eq!(num(0.00012345), "0.0001234");
    assert_eq!(num(1e-7), "1.000e-7");
    assert_eq!(num(-2.5), "-2.5");
}

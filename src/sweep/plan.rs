//! The sweep controller's decisions as pure functions: trial ids and submissions, the
//! value a trial is ranked by, the history a sampler sees, how many trials to start, and
//! when the sweep is over. The controller (`controller.rs`) only carries them out.

use super::model::{Objective, SweepLimits, SweepSubmission};
use super::policy::Goal;
use super::space::{Observation, Params, TrialState};
use crate::run::model::{JobSubmission, RunStatus};

/// What the controller knows of one trial when it decides.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialSnapshot {
    pub index: u64,
    pub run_id: String,
    pub status: RunStatus,
    pub params: Params,
    /// The primary metric as reported, in order.
    pub series: Vec<f64>,
    pub stopped_by: Option<String>,
}

impl TrialSnapshot {
    /// The value a trial is ranked by: the last finite report of the primary metric (what
    /// `job show` lists as its value, like Azure's run metrics).
    pub fn final_value(&self) -> Option<f64> {
        self.series.iter().rev().copied().find(|v| v.is_finite())
    }
}

/// Trial `index` of a sweep is run `<sweep>_<index>`, as Azure names HyperDrive children.
pub fn trial_run_id(sweep_id: &str, index: u64) -> String {
    format!("{sweep_id}_{index}")
}

/// The submission of one trial: the sweep's trial with the sampled values in its command.
pub fn trial_submission(
    sweep: &SweepSubmission,
    sweep_id: &str,
    index: u64,
    params: &Params,
) -> JobSubmission {
    let mut sub = sweep.trial.clone();
    sub.name = Some(trial_run_id(sweep_id, index));
    sub.display_name = Some(format!(
        "{}_{index}",
        sweep.trial.display_name.as_deref().unwrap_or(sweep_id)
    ));
    sub.command = render_search_space(&sweep.trial.command, params);
    // The best trial's outputs are published as the sweep's when it ends; a trial
    // writing to the output's `path:` would race the others for it.
    for out in sub.outputs.values_mut() {
        out.datastore_path = None;
    }
    if let Some(t) = sweep.limits.trial_timeout_seconds {
        sub.timeout_seconds = Some(sub.timeout_seconds.map_or(t, |own| own.min(t)));
    }
    sub
}

/// Replaces every `${{search_space.x}}` (spaces inside the braces allowed) whose `x` is in
/// `params`; anything else is left as written (the reader has checked the names).
pub fn render_search_space(command: &str, params: &Params) -> String {
    let mut out = String::with_capacity(command.len());
    let mut rest = command;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let inner = after[..end].trim();
        match inner
            .strip_prefix("search_space.")
            .and_then(|name| params.get(name.trim()))
        {
            Some(v) => out.push_str(&crate::spec::render_param(v)),
            None => out.push_str(&rest[start..start + 3 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `value` in "lower is better" form, as samplers see it.
pub fn as_loss(goal: Goal, value: f64) -> f64 {
    match goal {
        Goal::Minimize => value,
        Goal::Maximize => -value,
    }
}

/// The history a sampler sees: live trials are pending points; an ended trial with a value
/// is complete (a trial stopped early keeps the value it reached); the rest failed.
pub fn observations(trials: &[TrialSnapshot], goal: Goal) -> Vec<Observation> {
    trials
        .iter()
        .map(|t| Observation {
            params: t.params.clone(),
            state: if !t.status.is_terminal() {
                TrialState::Pending
            } else {
                match t.final_value() {
                    Some(v) if t.status != RunStatus::Failed => {
                        TrialState::Complete(as_loss(goal, v))
                    }
                    _ => TrialState::Failed,
                }
            },
        })
        .collect()
}

/// Trials ranked best first by the objective: those with a value (Completed before the
/// ones stopped early at the same value), then the rest in index order.
pub fn ranked<'a>(trials: &'a [TrialSnapshot], objective: &Objective) -> Vec<&'a TrialSnapshot> {
    let mut with: Vec<&TrialSnapshot> = trials
        .iter()
        .filter(|t| t.final_value().is_some())
        .collect();
    with.sort_by(|a, b| {
        let (va, vb) = (
            as_loss(objective.goal, a.final_value().unwrap()),
            as_loss(objective.goal, b.final_value().unwrap()),
        );
        va.total_cmp(&vb)
            .then((a.status != RunStatus::Completed).cmp(&(b.status != RunStatus::Completed)))
            .then(a.index.cmp(&b.index))
    });
    let mut rest: Vec<&TrialSnapshot> = trials
        .iter()
        .filter(|t| t.final_value().is_none())
        .collect();
    rest.sort_by_key(|t| t.index);
    with.extend(rest);
    with
}

/// The best trial: the best value among Completed trials (a trial stopped early never
/// wins over one that finished).
pub fn best<'a>(trials: &'a [TrialSnapshot], objective: &Objective) -> Option<&'a TrialSnapshot> {
    ranked(trials, objective)
        .into_iter()
        .find(|t| t.status == RunStatus::Completed && t.final_value().is_some())
}

/// How many new trials may start now.
pub fn open_slots(limits: &SweepLimits, proposed: u64, live: u64) -> u64 {
    let concurrent = limits.max_concurrent_trials.max(1);
    concurrent
        .saturating_sub(live)
        .min(limits.max_total_trials.saturating_sub(proposed))
}

/// Why a sweep stops proposing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// `limits.max_total_trials` trials were proposed.
    TotalReached,
    /// The sampler has nothing left (a grid was covered).
    Exhausted,
    /// `limits.timeout` passed: live trials are canceled.
    TimedOut,
    /// The user canceled the sweep.
    Canceled,
    /// The first trials all failed: more of the same would only burn compute.
    Failing,
    /// The sampler could not propose (its message): live trials finish, nothing more starts.
    SamplerFailed(String),
}

impl Stop {
    /// The stored form of a halt (a stop decided before the limits, kept across passes and
    /// restarts): only `Failing` and `SamplerFailed` are stored.
    pub fn halt_text(&self) -> Option<String> {
        match self {
            Stop::Failing => Some("failing".into()),
            Stop::SamplerFailed(m) => Some(format!("sampler: {m}")),
            _ => None,
        }
    }

    /// Reads back what [`Stop::halt_text`] stored.
    pub fn from_halt(text: &str) -> Stop {
        match text.strip_prefix("sampler: ") {
            Some(m) => Stop::SamplerFailed(m.to_string()),
            None => Stop::Failing,
        }
    }
}

/// How many trials must have failed, with none succeeding, before a sweep gives up.
pub const FAIL_FAST_TRIALS: usize = 3;

/// Whether the sweep should give up: [`FAIL_FAST_TRIALS`] trials failed without a value
/// and none ended well (a broken script or environment, not a bad region). Trials canceled
/// (by the user or a policy) do not count either way. The controller stores the decision,
/// so the trials it then cancels cannot undo it.
pub fn failing(trials: &[TrialSnapshot]) -> bool {
    let failed = trials
        .iter()
        .filter(|t| t.status == RunStatus::Failed && t.final_value().is_none())
        .count();
    let succeeded = trials
        .iter()
        .any(|t| t.status == RunStatus::Completed || t.final_value().is_some());
    failed >= FAIL_FAST_TRIALS && !succeeded
}

/// The sweep's final status and note once nothing is live and no more trials will come.
pub fn ending(stop: Stop, trials: &[TrialSnapshot], limits: &SweepLimits) -> (RunStatus, String) {
    let completed = trials
        .iter()
        .filter(|t| t.status == RunStatus::Completed)
        .count();
    let stopped = trials.iter().filter(|t| t.stopped_by.is_some()).count();
    let failed = trials
        .iter()
        .filter(|t| t.status == RunStatus::Failed)
        .count();
    let tally = format!(
        "{} trials: {completed} completed, {stopped} stopped early, {failed} failed",
        trials.len()
    );
    match stop {
        Stop::Canceled => (RunStatus::Canceled, format!("canceled by request; {tally}")),
        Stop::SamplerFailed(m) => (
            RunStatus::Failed,
            format!("the sampler could not propose more trials ({m}); {tally}"),
        ),
        Stop::Failing => (
            RunStatus::Failed,
            format!(
                "the first {FAIL_FAST_TRIALS} trials failed and none succeeded, so no more were started ({tally}); `tug job show {}` shows the first one's error",
                trials[0].run_id
            ),
        ),
        Stop::TimedOut => (
            RunStatus::Canceled,
            format!(
                "the sweep's limits.timeout of {} s was reached and live trials were canceled; {tally}",
                limits.timeout_seconds.unwrap_or(0)
            ),
        ),
        _ if completed == 0 && stopped == 0 && !trials.is_empty() => (
            RunStatus::Failed,
            format!(
                "every trial failed ({tally}); `tug job show {}` shows the first one's error",
                trials[0].run_id
            ),
        ),
        Stop::Exhausted => (
            RunStatus::Completed,
            format!("the search space is covered; {tally}"),
        ),
        Stop::TotalReached => (
            RunStatus::Completed,
            format!(
                "max_total_trials ({}) reached; {tally}",
                limits.max_total_trials
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trial(index: u64, status: RunStatus, series: &[f64]) -> TrialSnapshot {
        TrialSnapshot {
            index,
            run_id: format!("s_{index}"),
            status,
            params: Params::from([("x".into(), json!(index))]),
            series: series.to_vec(),
            stopped_by: None,
        }
    }

    fn objective(goal: Goal) -> Objective {
        Objective {
            goal,
            primary_metric: "accuracy".into(),
        }
    }

    #[test]
    fn search_space_references_are_rendered_like_python_prints_them() {
        let params = Params::from([
            ("lr".into(), json!(0.1)),
            ("n".into(), json!(5)),
            ("kind".into(), json!("rbf")),
            ("flag".into(), json!(true)),
            ("big".into(), json!(1e-7)),
            ("whole".into(), json!(3.0)),
        ]);
        let cmd = "python t.py --lr ${{search_space.lr}} --n ${{ search_space.n }} --k ${{search_space.kind}} --f ${{search_space.flag}} --b ${{search_space.big}} --w ${{search_space.whole}} --in ${{inputs.data}}";
        assert_eq!(
            render_search_space(cmd, &params),
            "python t.py --lr 0.1 --n 5 --k rbf --f True --b 1e-07 --w 3.0 --in ${{inputs.data}}"
        );
        assert_eq!(render_search_space("a ${{ b", &params), "a ${{ b");
    }

    #[test]
    fn maximize_is_negated_for_samplers_and_live_trials_are_pending() {
        let trials = vec![
            trial(0, RunStatus::Completed, &[0.5, 0.9]),
            trial(1, RunStatus::Running, &[0.7]),
            trial(2, RunStatus::Failed, &[0.99]),
            trial(3, RunStatus::Canceled, &[]),
        ];
        let obs = observations(&trials, Goal::Maximize);
        assert_eq!(obs[0].state, TrialState::Complete(-0.9));
        assert_eq!(obs[1].state, TrialState::Pending);
        assert_eq!(obs[2].state, TrialState::Failed);
        assert_eq!(obs[3].state, TrialState::Failed);
        let obs = observations(&trials, Goal::Minimize);
        assert_eq!(obs[0].state, TrialState::Complete(0.9));
    }

    #[test]
    fn ranking_follows_the_goal_and_the_best_must_have_completed() {
        let mut stopped = trial(2, RunStatus::Canceled, &[0.99]);
        stopped.stopped_by = Some("bandit".into());
        let trials = vec![
            trial(0, RunStatus::Completed, &[0.8]),
            trial(1, RunStatus::Completed, &[0.95, f64::NAN]),
            stopped,
            trial(3, RunStatus::Failed, &[]),
        ];
        let order: Vec<u64> = ranked(&trials, &objective(Goal::Maximize))
            .iter()
            .map(|t| t.index)
            .collect();
        assert_eq!(order, [2, 1, 0, 3]);
        assert_eq!(best(&trials, &objective(Goal::Maximize)).unwrap().index, 1);
        assert_eq!(best(&trials, &objective(Goal::Minimize)).unwrap().index, 0);
    }

    #[test]
    fn slots_respect_both_limits() {
        let limits = SweepLimits {
            max_total_trials: 10,
            max_concurrent_trials: 3,
            timeout_seconds: None,
            trial_timeout_seconds: None,
        };
        assert_eq!(open_slots(&limits, 0, 0), 3);
        assert_eq!(open_slots(&limits, 4, 2), 1);
        assert_eq!(open_slots(&limits, 9, 0), 1);
        assert_eq!(open_slots(&limits, 10, 0), 0);
        assert_eq!(open_slots(&limits, 5, 4), 0);
    }

    #[test]
    fn a_sweep_whose_trials_all_failed_fails() {
        let limits = SweepLimits {
            max_total_trials: 2,
            max_concurrent_trials: 2,
            timeout_seconds: Some(60),
            trial_timeout_seconds: None,
        };
        let failed = vec![
            trial(0, RunStatus::Failed, &[]),
            trial(1, RunStatus::Failed, &[]),
        ];
        let (status, note) = ending(Stop::TotalReached, &failed, &limits);
        assert_eq!(status, RunStatus::Failed);
        assert!(note.contains("tug job show s_0"), "{note}");
        let mixed = vec![
            trial(0, RunStatus::Failed, &[]),
            trial(1, RunStatus::Completed, &[1.0]),
        ];
        assert_eq!(
            ending(Stop::Exhausted, &mixed, &limits).0,
            RunStatus::Completed
        );
        assert!(!failing(&mixed));
        let three = vec![
            trial(0, RunStatus::Failed, &[]),
            trial(1, RunStatus::Failed, &[]),
            trial(2, RunStatus::Running, &[]),
            trial(3, RunStatus::Failed, &[]),
        ];
        assert!(failing(&three));
        assert!(!failing(&three[..3]));
        // Canceling the live trial after the decision does not undo it.
        let mut halted = three.clone();
        halted[2].status = RunStatus::Canceled;
        assert!(failing(&halted));
        let mut late_success = three.clone();
        late_success[2].status = RunStatus::Completed;
        late_success[2].series = vec![1.0];
        assert!(!failing(&late_success));
        assert_eq!(
            Stop::from_halt(&Stop::Failing.halt_text().unwrap()),
            Stop::Failing
        );
        let sampler = Stop::SamplerFailed("no".into());
        assert_eq!(Stop::from_halt(&sampler.halt_text().unwrap()), sampler);
        assert_eq!(Stop::TimedOut.halt_text(), None);
        assert_eq!(ending(Stop::Failing, &three, &limits).0, RunStatus::Failed);
        assert_eq!(
            ending(Stop::SamplerFailed("x".into()), &mixed, &limits).0,
            RunStatus::Failed
        );
        let (status, note) = ending(Stop::TimedOut, &mixed, &limits);
        assert_eq!(status, RunStatus::Canceled);
        assert!(note.contains("60 s"), "{note}");
    }

    #[test]
    fn trials_get_their_index_in_the_id_and_the_tighter_timeout() {
        let sub = SweepSubmission {
            trial: JobSubmission {
                name: Some("sw".into()),
                display_name: None,
                experiment_name: "e".into(),
                description: None,
                tags: Default::default(),
                command: "python t.py --k ${{search_space.k}}".into(),
                code_snapshot: None,
                environment: crate::run::model::ResolvedEnvironment::Image {
                    image: "python:3".into(),
                    conda_file: None,
                    pip_requirements: vec![],
                },
                environment_variables: Default::default(),
                compute: "local".into(),
                inputs: Default::default(),
                outputs: Default::default(),
                resources: Default::default(),
                timeout_seconds: Some(100),
                source: None,
            },
            search_space: Default::default(),
            sampling_algorithm: crate::sweep::SamplingAlgorithm::Grid,
            objective: objective(Goal::Maximize),
            limits: SweepLimits {
                max_total_trials: 4,
                max_concurrent_trials: 2,
                timeout_seconds: None,
                trial_timeout_seconds: Some(30),
            },
            early_termination: None,
        };
        let t = trial_submission(&sub, "sw", 3, &Params::from([("k".into(), json!(7))]));
        assert_eq!(t.name.as_deref(), Some("sw_3"));
        assert_eq!(t.command, "python t.py --k 7");
        assert_eq!(t.timeout_seconds, Some(30));
    }
}

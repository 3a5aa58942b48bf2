//! The terminal side of sweeps: following one live (each trial as it starts and ends, with
//! its value and parameters, and the best at the end) and the ranked trial table of
//! `job show`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use super::output::{self, Format, number};
use crate::client::Client;
use crate::run::model::RunStatus;
use crate::server::api::JobView;
use crate::server::sweep_api::{SweepView, TrialView};
use crate::workspace::Workspace;

/// How often a followed sweep is looked at.
const POLL: Duration = Duration::from_millis(700);

/// Follows sweep `id` until it ends. Exit code 1 unless it completed.
pub(crate) async fn follow(
    ws: &Workspace,
    client: Client,
    id: &str,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut shown: HashMap<String, RunStatus> = HashMap::new();
    let view = super::stream::poll_until_ended(ws, client, id, "sweep", POLL, |view| {
        if let Some(sweep) = &view.sweep
            && format == Format::Table
        {
            let mut by_index: Vec<&TrialView> = sweep.trials.iter().collect();
            by_index.sort_by_key(|t| t.index);
            for t in by_index {
                if shown.get(&t.id) == Some(&t.status) {
                    continue;
                }
                let first = !shown.contains_key(&t.id);
                shown.insert(t.id.clone(), t.status);
                if t.status.is_terminal() {
                    println!("{}", ended_line(sweep, t));
                } else if first {
                    println!("trial {:>3} {}  started  {}", t.index, t.id, params(t));
                }
            }
        }
    })
    .await?;
    if output::structured(format, &view)? {
        return Ok(super::stream::exit_for(view.run.status));
    }
    println!("{}", ending(&view));
    Ok(super::stream::exit_for(view.run.status))
}

fn params(t: &TrialView) -> String {
    t.params
        .iter()
        .map(|(k, v)| format!("{k}={}", crate::spec::render_param(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn ended_line(sweep: &SweepView, t: &TrialView) -> String {
    let value = t
        .value
        .map(|v| format!("{}={}", sweep.objective.primary_metric, number(v)))
        .unwrap_or_else(|| format!("{}=-", sweep.objective.primary_metric));
    let mut line = format!(
        "trial {:>3} {}  {:<9} {value}  {}",
        t.index,
        t.id,
        t.status.as_str(),
        params(t)
    );
    if let Some(rule) = &t.stopped_by {
        line.push_str(&format!("\n          stopped early: {rule}"));
    }
    line
}

/// The closing lines of a followed sweep: how it ended and its best trial.
fn ending(view: &JobView) -> String {
    let mut out = format!("Sweep {} {}", view.run.id, view.run.status);
    let Some(sweep) = &view.sweep else {
        return out;
    };
    if let Some(note) = &sweep.note {
        out.push_str(&format!(": {note}"));
    }
    match sweep
        .best_trial
        .as_ref()
        .and_then(|b| sweep.trials.iter().find(|t| &t.id == b))
    {
        Some(best) => out.push_str(&format!(
            "\nBest trial: {} with {} = {}\n  parameters: {}\n  details: tug job show {}",
            best.id,
            sweep.objective.primary_metric,
            best.value.map(number).unwrap_or_else(|| "-".into()),
            params(best),
            view.run.id
        )),
        None => out.push_str("\nNo trial completed with a value of the primary metric."),
    }
    out
}

/// `job show` of a sweep: its settings, then every trial ranked.
pub(crate) fn detail(sweep: &SweepView) -> String {
    let mut out = Vec::new();
    let mut kv = |k: &str, v: String| out.push(format!("{k:<20}{v}"));
    kv(
        "objective",
        format!(
            "{} {}",
            sweep.objective.goal.as_str(),
            sweep.objective.primary_metric
        ),
    );
    kv("sampling_algorithm", sweep.sampling_algorithm.clone());
    kv(
        "limits",
        format!(
            "{} trials, {} at a time{}{}",
            sweep.limits.max_total_trials,
            sweep.limits.max_concurrent_trials,
            sweep
                .limits
                .timeout_seconds
                .map(|t| format!(", sweep timeout {t} s"))
                .unwrap_or_default(),
            sweep
                .limits
                .trial_timeout_seconds
                .map(|t| format!(", trial timeout {t} s"))
                .unwrap_or_default()
        ),
    );
    if let Some(e) = &sweep.early_termination {
        kv("early_termination", e.to_string());
    }
    if let Some(b) = &sweep.best_trial {
        kv("best_trial", b.clone());
    }
    if let Some(n) = &sweep.note {
        kv("ended", n.clone());
    }
    let metric = sweep.objective.primary_metric.as_str();
    let rows: Vec<Vec<String>> = sweep
        .trials
        .iter()
        .enumerate()
        .map(|(rank, t)| {
            vec![
                if t.value.is_some() {
                    (rank + 1).to_string()
                } else {
                    "-".into()
                },
                t.id.clone(),
                t.status.to_string(),
                t.value.map(number).unwrap_or_else(|| "-".into()),
                t.reports.to_string(),
                t.seconds.map(|s| format!("{s:.1}")).unwrap_or_default(),
                params(t),
                t.stopped_by.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut s = out.join("\n");
    s.push_str("\n\n");
    s.push_str(&output::table(
        &[
            "RANK",
            "TRIAL",
            "STATUS",
            metric,
            "REPORTS",
            "SECONDS",
            "PARAMETERS",
            "STOPPED BY",
        ],
        &rows,
    ));
    s
}

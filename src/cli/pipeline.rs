//! The terminal side of pipelines: following one live (each step as it starts, is reused,
//! skipped or ends), the step table of `job show`, and `job plan`'s decisions.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use super::output::{self, Format};
use crate::client::Client;
use crate::pipeline::graph::StepState;
use crate::server::pipeline_api::{PipelineView, PlanView, StepView};
use crate::workspace::Workspace;

/// How often a followed pipeline is looked at.
const POLL: Duration = Duration::from_millis(500);

/// Follows pipeline `id` until it ends. Exit code 1 unless it completed.
pub(crate) async fn follow(
    ws: &Workspace,
    client: Client,
    id: &str,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut shown: HashMap<String, StepState> = HashMap::new();
    let view = super::stream::poll_until_ended(ws, client, id, "pipeline", POLL, |view| {
        if let Some(p) = &view.pipeline
            && format == Format::Table
        {
            for step in &p.steps {
                if shown.get(&step.step) == Some(&step.state) || step.state == StepState::Waiting {
                    continue;
                }
                shown.insert(step.step.clone(), step.state);
                println!("{}", step_line(step));
            }
        }
    })
    .await?;
    if output::structured(format, &view)? {
        return Ok(super::stream::exit_for(view.run.status));
    }
    let mut end = format!("Pipeline {} {}", view.run.id, view.run.status);
    if let Some(note) = view.pipeline.as_ref().and_then(|p| p.note.as_ref()) {
        end.push_str(&format!(": {note}"));
    }
    println!("{end}\n  details: tug job show {}", view.run.id);
    Ok(super::stream::exit_for(view.run.status))
}

fn state_word(s: StepState) -> &'static str {
    match s {
        StepState::Waiting => "waiting",
        StepState::Running => "running",
        StepState::Completed => "completed",
        StepState::Reused => "reused",
        StepState::Failed => "failed",
        StepState::Canceled => "canceled",
        StepState::Skipped => "skipped",
    }
}

fn step_line(step: &StepView) -> String {
    let mut line = format!("step {:<16} {:<9}", step.step, state_word(step.state));
    match step.state {
        StepState::Running => {
            if let Some(r) = &step.run {
                line.push_str(&format!(" run {r}"));
            }
            if let Some(why) = &step.reason {
                line.push_str(&format!(": {why}"));
            }
        }
        StepState::Reused => {
            if let Some(from) = &step.reused_from {
                line.push_str(&format!(" outputs of run {from}"));
            }
        }
        StepState::Skipped => {
            if let Some(why) = &step.reason {
                line.push_str(&format!(" {why}"));
            }
        }
        StepState::Failed => {
            if let Some(e) = &step.error {
                line.push_str(&format!(" {e}"));
            }
            if let Some(r) = &step.run {
                line.push_str(&format!("\n    log: tug job stream {r}"));
            }
        }
        _ => {
            if let Some(s) = step.seconds {
                line.push_str(&format!(" in {s:.1} s"));
            }
        }
    }
    line
}

/// `job show` of a pipeline: its settings, then every step in graph order.
pub(crate) fn detail(p: &PipelineView) -> String {
    let mut out = vec![format!(
        "{:<20}continue_on_step_failure: {}, force_rerun: {}",
        "settings", p.continue_on_step_failure, p.force_rerun
    )];
    if let Some(note) = &p.note {
        out.push(format!("{:<20}{note}", "result"));
    }
    for (name, (step, output)) in &p.outputs {
        out.push(format!("{:<20}{name} = {step}.outputs.{output}", "output"));
    }
    let rows: Vec<Vec<String>> = p
        .steps
        .iter()
        .map(|s| {
            vec![
                s.step.clone(),
                state_word(s.state).to_string(),
                s.run
                    .clone()
                    .or_else(|| s.reused_from.as_ref().map(|r| format!("(reused) {r}")))
                    .unwrap_or_else(|| "-".into()),
                if s.upstream.is_empty() {
                    "-".into()
                } else {
                    s.upstream.join(", ")
                },
                s.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    out.push(String::new());
    out.push(output::table(
        &["STEP", "STATE", "RUN", "AFTER", "WHY"],
        &rows,
    ));
    out.join("\n")
}

/// `job plan`'s table: each step's decision and its reason.
pub(crate) fn plan_table(plan: &PlanView) -> String {
    let rows: Vec<Vec<String>> = plan
        .steps
        .iter()
        .map(|s| {
            vec![
                s.step.clone(),
                s.action.clone(),
                s.reuse.clone().unwrap_or_else(|| "-".into()),
                s.reason.clone(),
            ]
        })
        .collect();
    format!(
        "{}\n{} to run, {} reused, {} decided after the steps they read have run",
        output::table(&["STEP", "DECISION", "REUSES", "WHY"], &rows),
        plan.run,
        plan.reuse,
        plan.wait
    )
}

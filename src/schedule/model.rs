//! What a schedule is, as the CLI sends it and the store keeps it: its trigger and the job
//! each fire submits, resolved when the schedule was created (code snapshots uploaded,
//! environments resolved), as Azure ML captures a schedule's job at creation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::trigger::TriggerSpec;
use crate::pipeline::PipelineSubmission;
use crate::run::model::JobSubmission;
use crate::sweep::SweepSubmission;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleSubmission {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub trigger: TriggerSpec,
    pub job: ScheduledJob,
    /// The schedule file, for display.
    pub source: Option<String>,
    /// The job file `create_job` named, for display.
    pub job_source: Option<String>,
}

/// The job a fire submits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "job", rename_all = "snake_case")]
pub enum ScheduledJob {
    Command(Box<JobSubmission>),
    Sweep(Box<SweepSubmission>),
    Pipeline(Box<PipelineSubmission>),
}

/// The one run-time expression Azure ML resolves in a scheduled job: the job's name.
const NAME_EXPRESSION: &str = "${{name}}";

impl ScheduledJob {
    pub fn kind(&self) -> &'static str {
        match self {
            ScheduledJob::Command(_) => "command",
            ScheduledJob::Sweep(_) => "sweep",
            ScheduledJob::Pipeline(_) => "pipeline",
        }
    }

    /// This job as fire `run_id` submits it: named `run_id`, with `${{name}}` (in inputs the
    /// schedule set, commands, output paths) standing for it.
    pub fn for_run(&self, run_id: &str) -> Result<ScheduledJob, serde_json::Error> {
        let text = serde_json::to_string(self)?;
        // JSON-escaping cannot touch `${{name}}` or a run id (letters, digits, `-`, `_`).
        let text = text.replace(NAME_EXPRESSION, run_id);
        let mut job: ScheduledJob = serde_json::from_str(&text)?;
        match &mut job {
            ScheduledJob::Command(j) => j.name = Some(run_id.to_string()),
            ScheduledJob::Sweep(s) => s.trial.name = Some(run_id.to_string()),
            ScheduledJob::Pipeline(p) => p.name = Some(run_id.to_string()),
        }
        Ok(job)
    }
}

/// The run id of the fire for `occurrence`: the schedule's name and the occurrence in UTC,
/// so that a fire retried after a crash finds the run it already made.
pub fn fire_run_id(schedule: &str, occurrence: jiff::Timestamp) -> String {
    let stamp = occurrence.strftime("%Y%m%dT%H%M%SZ").to_string();
    let head: String = schedule.chars().take(200).collect();
    format!("{head}-{stamp}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_ids_are_stable_valid_run_ids() {
        let t: jiff::Timestamp = "2026-12-07T02:00:00Z".parse().unwrap();
        let id = fire_run_id("nightly_digits", t);
        assert_eq!(id, "nightly_digits-20261207T020000Z");
        assert!(crate::run::model::valid_run_id(&id));
        let long = "x".repeat(255);
        assert!(crate::run::model::valid_run_id(&fire_run_id(&long, t)));
    }
}

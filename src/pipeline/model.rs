//! What the server runs for a pipeline: every step resolved into the command job it runs,
//! as the CLI sends it after reading and checking the file. Stored whole with the pipeline,
//! so a restarted server goes on from the same definition.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::binding::{InputBinding as Bound, OutputBinding};
use super::graph::{Graph, GraphError, PipelineIo, StepIo};
use crate::run::model::{InputBinding, JobSubmission, ResolvedEnvironment};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PipelineSubmission {
    /// Run id of the pipeline; the server makes one when absent.
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub experiment_name: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub settings: Settings,
    pub steps: BTreeMap<String, StepSubmission>,
    /// `pipeline output → (step, step output)`.
    #[serde(default)]
    pub outputs: BTreeMap<String, (String, String)>,
    /// The pipeline file, for display.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Settings {
    pub continue_on_step_failure: bool,
    pub force_rerun: bool,
    /// Steps running at once; 0 means no bound beyond the graph.
    #[serde(default)]
    pub max_concurrent_steps: usize,
}

/// One step: the command job it runs, with each input bound to another step's output
/// still a placeholder (`tug-step://<step>/outputs/<output>` as its host path), filled in
/// by the controller when the step starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepSubmission {
    pub job: JobSubmission,
    /// The command as written, before input values are put in: what the fingerprint
    /// compares (the values enter it one by one).
    pub command_template: String,
    /// `input → (upstream step, its output)`.
    #[serde(default)]
    pub bound: BTreeMap<String, (String, String)>,
    pub is_deterministic: bool,
    /// `name:version` of the component the step uses.
    pub component: Option<String>,
    /// A sweep step: `job` is its trial (the command holding `${{search_space.x}}`), run
    /// as a sweep with these settings; the best trial's outputs are the step's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::sweep::SweepSettings>,
}

impl PipelineSubmission {
    /// The DAG, rebuilt and checked from the steps themselves: the server does not take a
    /// client's word for the order.
    /// [`PipelineSubmission::graph`] with its errors as one message.
    pub fn checked_graph(&self) -> Result<Graph, String> {
        self.graph().map_err(|errors| {
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub fn graph(&self) -> Result<Graph, Vec<GraphError>> {
        let mut io = BTreeMap::new();
        for (name, step) in &self.steps {
            let mut s = StepIo::default();
            for (input, (from, output)) in &step.bound {
                s.inputs.insert(
                    input.clone(),
                    Bound::StepOutput {
                        step: from.clone(),
                        output: output.clone(),
                    },
                );
            }
            for output in step.job.outputs.keys() {
                let promoted = self
                    .outputs
                    .iter()
                    .find(|(_, (st, o))| st == name && o == output)
                    .map(|(p, _)| p.clone());
                s.outputs.insert(
                    output.clone(),
                    promoted.map_or(OutputBinding::Own, OutputBinding::ParentOutput),
                );
            }
            io.insert(name.clone(), s);
        }
        let pipeline = PipelineIo {
            inputs: Default::default(),
            outputs: self.outputs.keys().cloned().collect(),
        };
        Graph::build(&io, &pipeline)
    }

    /// The pipeline's own run row: what `job list` shows for it. It runs nothing itself.
    pub fn parent_submission(&self) -> JobSubmission {
        JobSubmission {
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            experiment_name: self.experiment_name.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
            command: format!("(pipeline of {} steps)", self.steps.len()),
            code_snapshot: None,
            environment: ResolvedEnvironment::Image {
                image: String::new(),
                conda_file: None,
                pip_requirements: vec![],
            },
            environment_variables: BTreeMap::new(),
            compute: "pipeline".into(),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            resources: Default::default(),
            timeout_seconds: None,
            source: self.source.clone(),
        }
    }
}

impl StepSubmission {
    /// The sweep a sweep step runs, its trial `job` (its bound inputs resolved).
    pub fn sweep_submission(&self, job: JobSubmission) -> Option<crate::sweep::SweepSubmission> {
        let settings = self.sweep.clone()?;
        Some(crate::sweep::SweepSubmission::with_trial(job, settings))
    }

    /// The step's job with its placeholder inputs left out: what can be checked before
    /// any upstream step has run.
    pub fn checkable(&self) -> JobSubmission {
        let mut job = self.job.clone();
        job.inputs.retain(|name, _| !self.bound.contains_key(name));
        job
    }

    /// The step's job with each bound input pointing at `host_path(step, output)`.
    pub fn resolved(&self, mut host_path: impl FnMut(&str, &str) -> String) -> JobSubmission {
        let mut job = self.job.clone();
        for (input, (from, output)) in &self.bound {
            if let Some(InputBinding::Data { host_path: p, .. }) = job.inputs.get_mut(input) {
                *p = host_path(from, output);
            }
        }
        job
    }
}

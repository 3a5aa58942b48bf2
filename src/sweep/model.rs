//! What the server runs for a sweep: the resolved trial and the sweep's settings, as the
//! CLI sends them after reading and checking the file.

use serde::{Deserialize, Serialize};

pub use crate::spec::Objective;

use super::policy::EarlyTermination;
use super::space::{SamplingAlgorithm, SearchSpace};
use crate::run::model::JobSubmission;

/// A sweep job file resolved into everything the controller needs. Stored whole with the
/// sweep, so a restarted server goes on from the same definition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepSubmission {
    /// The sweep's own metadata (name, experiment, tags, compute) and the trial: its
    /// command still holds `${{search_space.x}}`, rendered per trial by the controller.
    pub trial: JobSubmission,
    pub search_space: SearchSpace,
    pub sampling_algorithm: SamplingAlgorithm,
    pub objective: Objective,
    pub limits: SweepLimits,
    #[serde(default)]
    pub early_termination: Option<EarlyTermination>,
}

/// `limits:` of a sweep, with Azure's defaults filled in by the reader.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct SweepLimits {
    pub max_total_trials: u64,
    pub max_concurrent_trials: u64,
    /// Seconds from the sweep's start; when reached, live trials are canceled.
    pub timeout_seconds: Option<u64>,
    /// Each trial's own `limits.timeout`.
    pub trial_timeout_seconds: Option<u64>,
}

/// A sweep's settings without its trial: what a pipeline's sweep step carries beside the
/// trial job, whose bound inputs are known only when the step starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SweepSettings {
    pub search_space: SearchSpace,
    pub sampling_algorithm: SamplingAlgorithm,
    pub objective: Objective,
    pub limits: SweepLimits,
    #[serde(default)]
    pub early_termination: Option<EarlyTermination>,
}

impl SweepSubmission {
    pub fn settings(&self) -> SweepSettings {
        SweepSettings {
            search_space: self.search_space.clone(),
            sampling_algorithm: self.sampling_algorithm.clone(),
            objective: self.objective.clone(),
            limits: self.limits,
            early_termination: self.early_termination.clone(),
        }
    }

    pub fn with_trial(trial: JobSubmission, settings: SweepSettings) -> SweepSubmission {
        SweepSubmission {
            trial,
            search_space: settings.search_space,
            sampling_algorithm: settings.sampling_algorithm,
            objective: settings.objective,
            limits: settings.limits,
            early_termination: settings.early_termination,
        }
    }
}

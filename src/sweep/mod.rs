//! HyperDrive sweeps: the search space, samplers, early-termination policies (pure code, no
//! I/O) and, at the edge, the controller that runs trials as child runs.
//!
//! The pure parts share one vocabulary: a [`SearchSpace`] of named [`Distribution`]s, trial
//! parameters as [`Params`], and a history of [`Observation`]s in "lower is better" form (the
//! controller negates `maximize` objectives before a sampler sees them). Early-termination
//! policies ([`policy`]) take raw metric values and the [`Goal`] instead.

pub mod controller;
pub mod model;
pub mod plan;
pub mod policy;
pub mod sampler;
pub mod space;

pub use model::{Objective, SweepLimits, SweepSettings, SweepSubmission};
pub use policy::{EarlyTermination, Goal, Slack, StopDecision, TrialProgress, evaluate};
pub use space::{
    Distribution, Observation, ParamValue, Params, RandomRule, SamplingAlgorithm, SearchSpace,
    TrialState,
};

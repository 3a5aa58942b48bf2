//! Pipeline jobs: steps run as a DAG, each a child run, outputs of one step the inputs of
//! the next, and steps reused when nothing they depend on changed.
//!
//! Pure parts first: [`binding`] reads the `${{parent...}}` references, [`graph`] checks
//! them and decides each pass what starts, stops and ends, [`reuse`] decides and explains
//! reuse from content hashes. The controller that carries the decisions out lives in the
//! server, like the sweep controller.

pub mod binding;
pub mod controller;
pub mod fingerprint;
pub mod graph;
pub mod model;
pub mod reuse;

pub use model::{PipelineSubmission, Settings, StepSubmission};

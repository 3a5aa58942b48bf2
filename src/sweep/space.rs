//! The search space of a sweep, in Azure ML's terms (`azureml-contract.md` §2).
//!
//! Each dimension is one [`Distribution`]. Log bounds are exponents (`loguniform(min, max)`
//! draws `exp(U(min, max))`), q-variants round to a multiple of `q` (`round(x / q) * q`), and
//! bounds are inclusive. A sampled value is a [`ParamValue`], a JSON scalar, so choices keep
//! their YAML type (`1`, `1.0`, `"1"` and `true` stay different).

use std::collections::BTreeMap;

/// One sampled value: a JSON scalar (number, string or bool).
pub type ParamValue = serde_json::Value;

/// One trial's parameters, by search-space name.
pub type Params = BTreeMap<String, ParamValue>;

/// The search space: name → distribution. Names follow `^[a-zA-Z_][a-zA-Z0-9_]*$`.
pub type SearchSpace = BTreeMap<String, Distribution>;

/// One search-space dimension with Azure's semantics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Distribution {
    /// One of `values` (JSON scalars, in file order).
    Choice { values: Vec<ParamValue> },
    /// An integer in `[0, upper)`.
    Randint { upper: i64 },
    /// `U(min_value, max_value)`.
    Uniform { min_value: f64, max_value: f64 },
    /// `round(U(min_value, max_value) / q) * q`.
    Quniform {
        min_value: f64,
        max_value: f64,
        q: f64,
    },
    /// `exp(U(min_value, max_value))`: the bounds are natural-log exponents.
    Loguniform { min_value: f64, max_value: f64 },
    /// `round(exp(U(min_value, max_value)) / q) * q`.
    Qloguniform {
        min_value: f64,
        max_value: f64,
        q: f64,
    },
    /// `N(mu, sigma)`.
    Normal { mu: f64, sigma: f64 },
    /// `round(N(mu, sigma) / q) * q`.
    Qnormal { mu: f64, sigma: f64, q: f64 },
    /// `exp(N(mu, sigma))`.
    Lognormal { mu: f64, sigma: f64 },
    /// `round(exp(N(mu, sigma)) / q) * q`.
    Qlognormal { mu: f64, sigma: f64, q: f64 },
}

impl Distribution {
    /// The name Azure files use for this distribution (`type:` in `search_space`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Distribution::Choice { .. } => "choice",
            Distribution::Randint { .. } => "randint",
            Distribution::Uniform { .. } => "uniform",
            Distribution::Quniform { .. } => "quniform",
            Distribution::Loguniform { .. } => "loguniform",
            Distribution::Qloguniform { .. } => "qloguniform",
            Distribution::Normal { .. } => "normal",
            Distribution::Qnormal { .. } => "qnormal",
            Distribution::Lognormal { .. } => "lognormal",
            Distribution::Qlognormal { .. } => "qlognormal",
        }
    }

    /// `q` of a quantized distribution.
    pub fn q(&self) -> Option<f64> {
        match *self {
            Distribution::Quniform { q, .. }
            | Distribution::Qloguniform { q, .. }
            | Distribution::Qnormal { q, .. }
            | Distribution::Qlognormal { q, .. } => Some(q),
            _ => None,
        }
    }
}

/// Where a trial stands, as a sampler or a policy needs to know it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrialState {
    /// Proposed and not ended yet (queued or running): a "pending point".
    Pending,
    /// Ended with this final objective value, lower is better.
    Complete(f64),
    /// Ended without a usable value (failed, canceled before reporting, NaN).
    Failed,
}

/// One trial of the history: its parameters and how it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub params: Params,
    pub state: TrialState,
}

/// `sampling_algorithm:` — how trials are proposed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SamplingAlgorithm {
    /// Independent draws; `seed` makes them reproducible; `rule: sobol` draws a scrambled
    /// Sobol sequence instead of pseudo-random points.
    Random {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u64>,
        #[serde(default)]
        rule: RandomRule,
    },
    /// The cartesian product of `choice` values, in order.
    Grid,
    /// Gaussian-process Bayesian optimisation.
    Bayesian,
}

/// `sampling_algorithm.rule` of the random sampler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RandomRule {
    #[default]
    Random,
    Sobol,
}

//! Samplers: how a sweep proposes each trial's parameters. Pure code, no I/O.
//!
//! Every sampler is a function of `(seed, trial index, history)`: [`Sampler::suggest`] keeps no
//! state that could change its answer, so a controller that restarts after a crash rebuilds the
//! sampler with [`sampler_for`] and gets the same proposals again. Random numbers come from our
//! own generator ([`rng`]) and Sobol table ([`sobol`]), not from a dependency, so a seed also
//! means the same trials across tug versions.
//!
//! - `grid` ([`grid`]): the cartesian product of `choice` values, in order.
//! - `random` ([`random`]): independent draws with Azure's semantics; `rule: sobol` takes the
//!   points of a scrambled Sobol sequence instead.
//! - `bayesian` ([`bayesian`]): a Gaussian process with log expected improvement. Azure accepts
//!   only `choice`, `uniform` and `quniform` for it; tug deliberately accepts every distribution
//!   (see the module for how each one is modelled).

mod acquisition;
pub mod bayesian;
mod encoding;
mod gp;
pub mod grid;
mod linalg;
pub mod random;
mod rng;
mod sobol;
mod validate;

use crate::sweep::{Observation, Params, RandomRule, SamplingAlgorithm, SearchSpace};

pub use bayesian::BayesianSampler;
pub use grid::GridSampler;
pub use random::{RandomSampler, SobolSampler};

/// Proposes trial parameters.
pub trait Sampler: Send + Sync {
    /// Parameters of trial number `index` (0-based = how many trials were proposed before),
    /// given every earlier trial (completed, failed, and pending = still running).
    /// `Ok(None)`: nothing left to propose (the grid, or a small discrete space under
    /// `bayesian`, is exhausted).
    fn suggest(&self, index: u64, history: &[Observation]) -> Result<Option<Params>, SamplerError>;
}

/// Why a sampler cannot be built or cannot propose.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("the search space is empty: a sweep needs at least one parameter")]
    EmptySpace,
    #[error("search space parameter `{name}`: {reason}")]
    InvalidDistribution { name: String, reason: String },
    #[error(
        "grid sampling enumerates `choice` values only, but `{name}` is `{kind}`: list its values \
         with `choice`, or use `random` or `bayesian` sampling"
    )]
    GridNeedsChoice { name: String, kind: &'static str },
    #[error(
        "sobol sampling supports at most {max} search-space parameters, this one has {dims}: use \
         `rule: random`"
    )]
    TooManyDimensions { dims: usize, max: usize },
    #[error("a trial in the history does not fit the search space: parameter `{name}` {reason}")]
    HistoryMismatch { name: String, reason: String },
}

/// The sampler for `algorithm` over `space`. `seed` is the algorithm's own seed when the file
/// gives one, else one the controller chose and stored (so a restart reproduces the sweep).
pub fn sampler_for(
    algorithm: &SamplingAlgorithm,
    space: &SearchSpace,
    seed: u64,
) -> Result<Box<dyn Sampler>, SamplerError> {
    validate::validate_space(space)?;
    Ok(match algorithm {
        SamplingAlgorithm::Grid => Box::new(GridSampler::new(space)?),
        SamplingAlgorithm::Random {
            rule: RandomRule::Random,
            ..
        } => Box::new(RandomSampler::new(space, seed)),
        SamplingAlgorithm::Random {
            rule: RandomRule::Sobol,
            ..
        } => Box::new(SobolSampler::new(space, seed)?),
        SamplingAlgorithm::Bayesian => Box::new(BayesianSampler::new(space, seed)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::Distribution;

    #[test]
    fn sampler_for_rejects_bad_spaces() {
        let empty = SearchSpace::new();
        assert!(matches!(
            sampler_for(&SamplingAlgorithm::Bayesian, &empty, 0),
            Err(SamplerError::EmptySpace)
        ));
        let bad: SearchSpace = [(
            "x".to_string(),
            Distribution::Uniform {
                min_value: 2.0,
                max_value: 1.0,
            },
        )]
        .into_iter()
        .collect();
        let err = sampler_for(&SamplingAlgorithm::Grid, &bad, 0)
            .err()
            .unwrap();
        assert!(err.to_string().contains("`x`"), "{err}");
    }
}

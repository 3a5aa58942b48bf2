//! Random sampling with Azure's semantics: independent pseudo-random draws, or the points of a
//! scrambled Sobol sequence (`rule: sobol`), mapped through each distribution's inverse CDF.

use super::encoding::value_from_unit;
use super::rng::Rng;
use super::sobol::{MAX_DIMS, Sobol};
use super::{Sampler, SamplerError};
use crate::sweep::{Distribution, Observation, Params, SearchSpace};

/// Stream tag of the random sampler's draws (keeps them apart from other uses of the seed).
const RANDOM_STREAM: u64 = 0x7261_6E64;

/// Independent draws: trial `index` uses a generator seeded from `(seed, index)` only, so any
/// trial can be recomputed alone and the history is not needed. Dimensions draw in name order.
#[derive(Debug, Clone)]
pub struct RandomSampler {
    dims: Vec<(String, Distribution)>,
    seed: u64,
}

impl RandomSampler {
    /// `space` must be valid (non-empty choices, ordered bounds, ...): build samplers through
    /// [`super::sampler_for`], which checks it and names the offending parameter.
    pub fn new(space: &SearchSpace, seed: u64) -> RandomSampler {
        RandomSampler {
            dims: space.iter().map(|(n, d)| (n.clone(), d.clone())).collect(),
            seed,
        }
    }
}

impl Sampler for RandomSampler {
    fn suggest(
        &self,
        index: u64,
        _history: &[Observation],
    ) -> Result<Option<Params>, SamplerError> {
        let mut rng = Rng::stream(&[self.seed, index, RANDOM_STREAM]);
        Ok(Some(
            self.dims
                .iter()
                .map(|(name, dist)| (name.clone(), value_from_unit(dist, rng.open01())))
                .collect(),
        ))
    }
}

/// Trial `index` is point `index` of a Sobol sequence scrambled by `seed` (one coordinate per
/// parameter, in name order), so any prefix of the trials covers the space evenly.
#[derive(Debug, Clone)]
pub struct SobolSampler {
    dims: Vec<(String, Distribution)>,
    sequence: Sobol,
}

impl SobolSampler {
    /// Fails for more than 32 parameters (our direction-number table).
    pub fn new(space: &SearchSpace, seed: u64) -> Result<SobolSampler, SamplerError> {
        let sequence = Sobol::new(space.len(), seed).ok_or(SamplerError::TooManyDimensions {
            dims: space.len(),
            max: MAX_DIMS,
        })?;
        Ok(SobolSampler {
            dims: space.iter().map(|(n, d)| (n.clone(), d.clone())).collect(),
            sequence,
        })
    }
}

impl Sampler for SobolSampler {
    fn suggest(
        &self,
        index: u64,
        _history: &[Observation],
    ) -> Result<Option<Params>, SamplerError> {
        let point = self.sequence.point(index);
        Ok(Some(
            self.dims
                .iter()
                .zip(point)
                .map(|((name, dist), u)| (name.clone(), value_from_unit(dist, u)))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn every_kind() -> SearchSpace {
        let d = |n: &str, d: Distribution| (n.to_string(), d);
        [
            d(
                "choice",
                Distribution::Choice {
                    values: vec![json!(1), json!("1"), json!(true)],
                },
            ),
            d("randint", Distribution::Randint { upper: 4 }),
            d(
                "uniform",
                Distribution::Uniform {
                    min_value: -2.0,
                    max_value: 3.0,
                },
            ),
            d(
                "quniform",
                Distribution::Quniform {
                    min_value: 0.0,
                    max_value: 10.0,
                    q: 2.0,
                },
            ),
            d(
                "quniform_f",
                Distribution::Quniform {
                    min_value: 0.0,
                    max_value: 1.0,
                    q: 0.25,
                },
            ),
            d(
                "loguniform",
                Distribution::Loguniform {
                    min_value: -3.0,
                    max_value: 1.0,
                },
            ),
            d(
                "qloguniform",
                Distribution::Qloguniform {
                    min_value: 0.0,
                    max_value: 4.0,
                    q: 1.0,
                },
            ),
            d(
                "normal",
                Distribution::Normal {
                    mu: 10.0,
                    sigma: 2.0,
                },
            ),
            d(
                "qnormal",
                Distribution::Qnormal {
                    mu: 0.0,
                    sigma: 5.0,
                    q: 3.0,
                },
            ),
            d(
                "lognormal",
                Distribution::Lognormal {
                    mu: 0.0,
                    sigma: 1.0,
                },
            ),
            d(
                "qlognormal",
                Distribution::Qlognormal {
                    mu: 1.0,
                    sigma: 0.5,
                    q: 0.5,
                },
            ),
        ]
        .into_iter()
        .collect()
    }

    fn check_values(p: &Params) {
        let f = |k: &str| p[k].as_f64().unwrap();
        assert!([json!(1), json!("1"), json!(true)].contains(&p["choice"]));
        assert!(p["randint"].is_i64() && (0..4).contains(&p["randint"].as_i64().unwrap()));
        assert!(p["uniform"].is_f64() && (-2.0..=3.0).contains(&f("uniform")));
        assert!(p["quniform"].is_i64() && p["quniform"].as_i64().unwrap() % 2 == 0);
        assert!((0..=10).contains(&p["quniform"].as_i64().unwrap()));
        assert!(p["quniform_f"].is_f64() && (f("quniform_f") * 4.0).fract() == 0.0);
        // log bounds are exponents: exp(-3) ..= exp(1)
        assert!(((-3.0f64).exp()..=1f64.exp()).contains(&f("loguniform")));
        assert!(
            p["qloguniform"].is_i64() && (1..=55).contains(&p["qloguniform"].as_i64().unwrap())
        );
        assert!(p["normal"].is_f64());
        assert!(p["qnormal"].is_i64() && p["qnormal"].as_i64().unwrap() % 3 == 0);
        assert!(f("lognormal") > 0.0);
        assert!((f("qlognormal") * 2.0).fract() == 0.0);
    }

    #[test]
    fn random_values_are_inside_bounds_with_the_right_types() {
        let sampler = RandomSampler::new(&every_kind(), 11);
        let mut normals = Vec::new();
        for i in 0..500 {
            let p = sampler.suggest(i, &[]).unwrap().unwrap();
            check_values(&p);
            normals.push(p["normal"].as_f64().unwrap());
        }
        let mean = normals.iter().sum::<f64>() / normals.len() as f64;
        let var = normals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / normals.len() as f64;
        assert!(
            (mean - 10.0).abs() < 0.3 && (var.sqrt() - 2.0).abs() < 0.3,
            "{mean} {var}"
        );
    }

    #[test]
    fn random_is_deterministic_given_seed_and_index() {
        let a = RandomSampler::new(&every_kind(), 5);
        let b = RandomSampler::new(&every_kind(), 5);
        let c = RandomSampler::new(&every_kind(), 6);
        assert_eq!(a.suggest(3, &[]).unwrap(), b.suggest(3, &[]).unwrap());
        assert_ne!(a.suggest(3, &[]).unwrap(), a.suggest(4, &[]).unwrap());
        assert_ne!(a.suggest(3, &[]).unwrap(), c.suggest(3, &[]).unwrap());
    }

    #[test]
    fn sobol_values_are_valid_and_well_spread() {
        let space = every_kind();
        let sampler = SobolSampler::new(&space, 3).unwrap();
        let mut cells = [0; 8];
        for i in 0..64 {
            let p = sampler.suggest(i, &[]).unwrap().unwrap();
            check_values(&p);
            cells[((p["uniform"].as_f64().unwrap() + 2.0) / 5.0 * 8.0) as usize] += 1;
        }
        assert_eq!(cells, [8; 8], "the first 64 points stratify each dimension");
        let again = SobolSampler::new(&space, 3).unwrap();
        assert_eq!(
            sampler.suggest(9, &[]).unwrap(),
            again.suggest(9, &[]).unwrap()
        );
    }

    #[test]
    fn sobol_first_points_fill_the_square() {
        let space: SearchSpace = ["a", "b"]
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    Distribution::Uniform {
                        min_value: 0.0,
                        max_value: 1.0,
                    },
                )
            })
            .collect();
        let sampler = SobolSampler::new(&space, 99).unwrap();
        let mut cells = [[0; 4]; 4];
        for i in 0..16 {
            let p = sampler.suggest(i, &[]).unwrap().unwrap();
            let (a, b) = (p["a"].as_f64().unwrap(), p["b"].as_f64().unwrap());
            cells[(a * 4.0) as usize][(b * 4.0) as usize] += 1;
        }
        assert!(cells.iter().flatten().all(|&c| c == 1), "{cells:?}");
    }
}

//! Grid sampling: every combination of the `choice` values, each exactly once.

use super::{Sampler, SamplerError};
use crate::sweep::{Distribution, Observation, ParamValue, Params, SearchSpace};

/// The cartesian product of all `choice` dimensions, enumerated like nested loops over the
/// parameter names in sorted order: the **first name varies slowest**, the last fastest, and
/// each dimension's values come in file order. Trial `index` is combination `index`; after the
/// last combination `suggest` returns `None`. The history is not needed.
#[derive(Debug, Clone)]
pub struct GridSampler {
    dims: Vec<(String, Vec<ParamValue>)>,
    total: u128,
}

impl GridSampler {
    pub fn new(space: &SearchSpace) -> Result<GridSampler, SamplerError> {
        let mut dims = Vec::with_capacity(space.len());
        for (name, dist) in space {
            match dist {
                Distribution::Choice { values } if !values.is_empty() => {
                    dims.push((name.clone(), values.clone()))
                }
                Distribution::Choice { .. } => {
                    return Err(SamplerError::InvalidDistribution {
                        name: name.clone(),
                        reason: "choice has no values".into(),
                    });
                }
                other => {
                    return Err(SamplerError::GridNeedsChoice {
                        name: name.clone(),
                        kind: other.type_name(),
                    });
                }
            }
        }
        if dims.is_empty() {
            return Err(SamplerError::EmptySpace);
        }
        let total = dims
            .iter()
            .fold(1u128, |acc, (_, v)| acc.saturating_mul(v.len() as u128));
        Ok(GridSampler { dims, total })
    }

    /// How many combinations the grid has (saturating at `u128::MAX`).
    pub fn len(&self) -> u128 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Sampler for GridSampler {
    fn suggest(
        &self,
        index: u64,
        _history: &[Observation],
    ) -> Result<Option<Params>, SamplerError> {
        if u128::from(index) >= self.total {
            return Ok(None);
        }
        // Mixed-radix digits of `index`, last dimension least significant.
        let mut rest = u128::from(index);
        let mut params = Params::new();
        for (name, values) in self.dims.iter().rev() {
            let radix = values.len() as u128;
            params.insert(name.clone(), values[(rest % radix) as usize].clone());
            rest /= radix;
        }
        Ok(Some(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space() -> SearchSpace {
        [
            ("a", vec![json!(1), json!(2)]),
            ("b", vec![json!("x"), json!("y"), json!("z")]),
            ("c", vec![json!(true), json!(1.5)]),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_string(), Distribution::Choice { values: v }))
        .collect()
    }

    #[test]
    fn grid_covers_the_product_once_in_order() {
        let grid = GridSampler::new(&space()).unwrap();
        assert_eq!(grid.len(), 12);
        let all: Vec<Params> = (0..12)
            .map(|i| grid.suggest(i, &[]).unwrap().unwrap())
            .collect();
        for (i, p) in all.iter().enumerate() {
            for q in &all[..i] {
                assert_ne!(p, q, "duplicate combination");
            }
        }
        assert_eq!(all[0]["a"], json!(1));
        assert_eq!(all[0]["b"], json!("x"));
        assert_eq!(all[1]["c"], json!(1.5), "the last name varies fastest");
        assert_eq!(all[6]["a"], json!(2), "the first name varies slowest");
        assert_eq!(grid.suggest(12, &[]).unwrap(), None);
    }

    #[test]
    fn grid_refuses_non_choice_dimensions() {
        let mut s = space();
        s.insert(
            "lr".into(),
            Distribution::Uniform {
                min_value: 0.0,
                max_value: 1.0,
            },
        );
        let err = GridSampler::new(&s).unwrap_err();
        assert!(
            matches!(err, SamplerError::GridNeedsChoice { ref name, kind: "uniform" } if name == "lr")
        );
        assert!(err.to_string().contains("random"));
    }
}

//! Checks of a search space's distribution parameters, so samplers can assume sane values.

use super::SamplerError;
use crate::sweep::{Distribution, SearchSpace};

/// Check every distribution's parameters so samplers can assume sane values.
pub(crate) fn validate_space(space: &SearchSpace) -> Result<(), SamplerError> {
    if space.is_empty() {
        return Err(SamplerError::EmptySpace);
    }
    for (name, dist) in space {
        let bad = |reason: String| {
            Err(SamplerError::InvalidDistribution {
                name: name.clone(),
                reason,
            })
        };
        let finite = |xs: &[f64]| xs.iter().all(|x| x.is_finite());
        match *dist {
            Distribution::Choice { ref values } => {
                if values.is_empty() {
                    return bad("choice has no values".into());
                }
            }
            Distribution::Randint { upper } => {
                if upper < 1 {
                    return bad(format!("randint upper must be at least 1, got {upper}"));
                }
            }
            Distribution::Uniform {
                min_value,
                max_value,
            }
            | Distribution::Loguniform {
                min_value,
                max_value,
            } => {
                if !finite(&[min_value, max_value]) || min_value > max_value {
                    return bad(format!(
                        "needs finite min_value <= max_value, got {min_value} and {max_value}"
                    ));
                }
            }
            Distribution::Quniform {
                min_value,
                max_value,
                q,
            }
            | Distribution::Qloguniform {
                min_value,
                max_value,
                q,
            } => {
                if !finite(&[min_value, max_value, q]) || min_value > max_value || q <= 0.0 {
                    return bad(format!(
                        "needs finite min_value <= max_value and q > 0, got {min_value}, {max_value}, q {q}"
                    ));
                }
            }
            Distribution::Normal { mu, sigma } | Distribution::Lognormal { mu, sigma } => {
                if !finite(&[mu, sigma]) || sigma <= 0.0 {
                    return bad(format!(
                        "needs finite mu and sigma > 0, got {mu} and {sigma}"
                    ));
                }
            }
            Distribution::Qnormal { mu, sigma, q } | Distribution::Qlognormal { mu, sigma, q } => {
                if !finite(&[mu, sigma, q]) || sigma <= 0.0 || q <= 0.0 {
                    return bad(format!(
                        "needs finite mu, sigma > 0 and q > 0, got {mu}, {sigma}, q {q}"
                    ));
                }
            }
        }
        if log_exponent_too_large(dist) {
            return bad(format!(
                "`{}` bounds are natural-log exponents and e^{} overflows (the largest is \
                 e^{MAX_EXPONENT}): did you mean ln of the value?",
                dist.type_name(),
                match *dist {
                    Distribution::Loguniform { max_value, .. }
                    | Distribution::Qloguniform { max_value, .. } => max_value,
                    _ => 0.0,
                }
            ));
        }
    }
    Ok(())
}

/// `ln(f64::MAX)`, rounded down: a larger exponent overflows to infinity.
const MAX_EXPONENT: f64 = 709.0;

/// Whether a log distribution's upper exponent would overflow.
fn log_exponent_too_large(dist: &Distribution) -> bool {
    match *dist {
        Distribution::Loguniform { max_value, .. }
        | Distribution::Qloguniform { max_value, .. } => max_value > MAX_EXPONENT,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(dist: Distribution) -> SearchSpace {
        [("lr".to_string(), dist)].into_iter().collect()
    }

    #[test]
    fn bad_parameters_are_named() {
        let cases = [
            Distribution::Choice { values: vec![] },
            Distribution::Randint { upper: 0 },
            Distribution::Quniform {
                min_value: 0.0,
                max_value: 1.0,
                q: 0.0,
            },
            Distribution::Normal {
                mu: 0.0,
                sigma: -1.0,
            },
            Distribution::Loguniform {
                min_value: 0.0,
                max_value: 1000.0,
            },
        ];
        for dist in cases {
            let err = validate_space(&one(dist.clone())).unwrap_err();
            assert!(err.to_string().contains("`lr`"), "{dist:?}: {err}");
        }
        assert!(
            validate_space(&one(Distribution::Loguniform {
                min_value: -9.0,
                max_value: 0.0
            }))
            .is_ok()
        );
    }
}

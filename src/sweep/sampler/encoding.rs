//! Between a search space and the unit cube the samplers work in: one coordinate per dimension
//! for random and Sobol draws (through each distribution's inverse CDF), and the Bayesian
//! sampler's encoding (one-hot choices, log and quantile scales) in both directions.

use super::SamplerError;
use super::rng::{inverse_normal_cdf, normal_cdf};
use crate::sweep::{Distribution, ParamValue, Params, SearchSpace};

/// How far into the tails the Bayesian sampler searches a normal or lognormal dimension: it works
/// on the probability scale `u = Φ((x - μ)/σ)`, clipped to `[TAIL, 1 - TAIL]` (±3.09σ).
pub(crate) const TAIL: f64 = 0.001;

/// Enumerate a fully discrete space for the Bayesian sampler only up to this many points.
pub(crate) const MAX_ENUMERATED: usize = 1000;

/// `round(x / q) * q` (Azure's quantisation), computed so that `q = 0.1` gives `0.3`, not
/// `0.30000000000000004`.
pub(crate) fn quantize(x: f64, q: f64) -> f64 {
    let steps = (x / q).round();
    let inverse = 1.0 / q;
    if inverse > 1.0 && (inverse - inverse.round()).abs() < 1e-9 * inverse {
        steps / inverse.round()
    } else {
        steps * q
    }
}

/// A number as the JSON value a trial receives: an integer when the distribution is integral
/// (`randint`, or a q-variant with whole `q`), else a float.
fn number(x: f64, integral: bool) -> ParamValue {
    if integral && x.abs() < 9.007_199_254_740_992e15 {
        ParamValue::from(x as i64)
    } else {
        ParamValue::from(x)
    }
}

fn index_in(u: f64, count: usize) -> usize {
    ((u * count as f64) as usize).min(count - 1)
}

fn whole(q: f64) -> bool {
    q.fract() == 0.0
}

/// The value a unit coordinate `u` in (0, 1) stands for: each distribution's inverse CDF, so a
/// uniform `u` gives a draw with Azure's semantics (random and Sobol samplers).
pub(crate) fn value_from_unit(dist: &Distribution, u: f64) -> ParamValue {
    let between = |lo: f64, hi: f64| lo + u * (hi - lo);
    match *dist {
        Distribution::Choice { ref values } => values[index_in(u, values.len())].clone(),
        Distribution::Randint { upper } => ParamValue::from(index_in(u, upper as usize) as i64),
        Distribution::Uniform {
            min_value,
            max_value,
        } => number(between(min_value, max_value), false),
        Distribution::Quniform {
            min_value,
            max_value,
            q,
        } => number(quantize(between(min_value, max_value), q), whole(q)),
        Distribution::Loguniform {
            min_value,
            max_value,
        } => number(between(min_value, max_value).exp(), false),
        Distribution::Qloguniform {
            min_value,
            max_value,
            q,
        } => number(quantize(between(min_value, max_value).exp(), q), whole(q)),
        Distribution::Normal { mu, sigma } => number(mu + sigma * inverse_normal_cdf(u), false),
        Distribution::Qnormal { mu, sigma, q } => {
            number(quantize(mu + sigma * inverse_normal_cdf(u), q), whole(q))
        }
        Distribution::Lognormal { mu, sigma } => {
            number((mu + sigma * inverse_normal_cdf(u)).exp(), false)
        }
        Distribution::Qlognormal { mu, sigma, q } => number(
            quantize((mu + sigma * inverse_normal_cdf(u)).exp(), q),
            whole(q),
        ),
    }
}

/// The Bayesian sampler's view of a search space: every point is a vector in `[0, 1]^width`.
///
/// - `choice` with k > 1 values: k one-hot coordinates (decoded by argmax); with one value, none.
/// - `randint(upper)`: one coordinate, value `k` sits at the centre `(k + 0.5) / upper` of its cell.
/// - `uniform`/`quniform`: linear; `loguniform`/`qloguniform`: linear in the exponent.
/// - `normal`/`lognormal` and their q-variants: the probability scale `Φ((x - μ)/σ)` (of `ln x`
///   for lognormal), clipped to `[TAIL, 1 - TAIL]`, so the prior becomes uniform.
///
/// Quantised values are rounded when decoding; [`Encoding::project`] snaps a vector to the point
/// its decoded value encodes to, so the model sees exactly what would be evaluated.
#[derive(Debug, Clone)]
pub(crate) struct Encoding {
    dims: Vec<(String, Distribution)>,
    offsets: Vec<usize>,
    width: usize,
}

impl Encoding {
    pub(crate) fn new(space: &SearchSpace) -> Encoding {
        let mut offsets = Vec::with_capacity(space.len());
        let mut width = 0;
        for dist in space.values() {
            offsets.push(width);
            width += match dist {
                Distribution::Choice { values } if values.len() > 1 => values.len(),
                Distribution::Choice { .. } => 0,
                _ => 1,
            };
        }
        Encoding {
            dims: space.iter().map(|(n, d)| (n.clone(), d.clone())).collect(),
            offsets,
            width,
        }
    }

    pub(crate) fn width(&self) -> usize {
        self.width
    }

    pub(crate) fn dimensions(&self) -> usize {
        self.dims.len()
    }

    /// A trial's parameters as a vector; an error names a parameter that is missing or does
    /// not fit its distribution (history written against another search space).
    pub(crate) fn encode(&self, params: &Params) -> Result<Vec<f64>, SamplerError> {
        let mut x = vec![0.0; self.width];
        for ((name, dist), &at) in self.dims.iter().zip(&self.offsets) {
            let value = params
                .get(name)
                .ok_or_else(|| SamplerError::HistoryMismatch {
                    name: name.clone(),
                    reason: "missing from a trial's parameters".into(),
                })?;
            let mismatch = |reason: &str| SamplerError::HistoryMismatch {
                name: name.clone(),
                reason: format!("{reason}, got {value}"),
            };
            if let Distribution::Choice { values } = dist {
                let k = values
                    .iter()
                    .position(|v| v == value)
                    .ok_or_else(|| mismatch("not one of the choice values"))?;
                if values.len() > 1 {
                    x[at + k] = 1.0;
                }
                continue;
            }
            let v = value
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| mismatch("not a finite number"))?;
            x[at] = coordinate_of(dist, v);
        }
        Ok(x)
    }

    /// The parameters a vector stands for (rounding quantised dimensions).
    pub(crate) fn decode(&self, x: &[f64]) -> Params {
        self.dims
            .iter()
            .zip(&self.offsets)
            .map(|((name, dist), &at)| {
                let value = match dist {
                    Distribution::Choice { values } if values.len() > 1 => {
                        values[argmax(&x[at..at + values.len()])].clone()
                    }
                    Distribution::Choice { values } => values[0].clone(),
                    _ => value_from_unit(dist, clip(dist, x[at])),
                };
                (name.clone(), value)
            })
            .collect()
    }

    /// Snap `x` in place to the encoding of the point it decodes to.
    pub(crate) fn project(&self, x: &mut [f64]) {
        for ((_, dist), &at) in self.dims.iter().zip(&self.offsets) {
            match dist {
                Distribution::Choice { values } if values.len() > 1 => {
                    let k = argmax(&x[at..at + values.len()]);
                    for (j, c) in x[at..at + values.len()].iter_mut().enumerate() {
                        *c = if j == k { 1.0 } else { 0.0 };
                    }
                }
                Distribution::Choice { .. } => {}
                Distribution::Uniform { .. }
                | Distribution::Loguniform { .. }
                | Distribution::Normal { .. }
                | Distribution::Lognormal { .. } => x[at] = clip(dist, x[at]),
                _ => {
                    let value = value_from_unit(dist, clip(dist, x[at]));
                    x[at] = coordinate_of(dist, value.as_f64().unwrap_or(0.0));
                }
            }
        }
    }

    /// A vector from one unit coordinate per dimension (a Sobol or random point), projected.
    pub(crate) fn encode_units(&self, units: &[f64]) -> Vec<f64> {
        let mut x = vec![0.0; self.width];
        for (((_, dist), &at), &u) in self.dims.iter().zip(&self.offsets).zip(units) {
            match dist {
                Distribution::Choice { values } if values.len() > 1 => {
                    x[at + index_in(u, values.len())] = 1.0
                }
                Distribution::Choice { .. } => {}
                _ => x[at] = u,
            }
        }
        self.project(&mut x);
        x
    }

    /// Box bounds for the acquisition optimiser: one-hot choice coordinates stay where they are
    /// (other choices are reached through candidates, not gradients), ordinal coordinates are
    /// relaxed to `[0, 1]` and rounded afterwards by [`Encoding::project`].
    pub(crate) fn bounds_around(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut lower = vec![0.0; self.width];
        let mut upper = vec![1.0; self.width];
        for ((_, dist), &at) in self.dims.iter().zip(&self.offsets) {
            match dist {
                Distribution::Choice { values } if values.len() > 1 => {
                    let held = at..at + values.len();
                    lower[held.clone()].copy_from_slice(&x[held.clone()]);
                    upper[held.clone()].copy_from_slice(&x[held]);
                }
                Distribution::Choice { .. } => {}
                Distribution::Normal { .. }
                | Distribution::Qnormal { .. }
                | Distribution::Lognormal { .. }
                | Distribution::Qlognormal { .. } => {
                    lower[at] = TAIL;
                    upper[at] = 1.0 - TAIL;
                }
                _ => {}
            }
        }
        (lower, upper)
    }

    /// Every point of a fully discrete space with at most [`MAX_ENUMERATED`] points, encoded;
    /// `None` when some dimension is continuous or the product is larger.
    pub(crate) fn enumerate(&self) -> Option<Vec<Vec<f64>>> {
        let mut per_dim: Vec<Vec<Vec<f64>>> = Vec::with_capacity(self.dims.len());
        let mut total: usize = 1;
        for (_, dist) in &self.dims {
            let options: Vec<Vec<f64>> = match *dist {
                Distribution::Choice { ref values } if values.len() > 1 => (0..values.len())
                    .map(|k| (0..values.len()).map(|j| f64::from(j == k)).collect())
                    .collect(),
                Distribution::Choice { .. } => vec![vec![]],
                Distribution::Randint { upper } if (upper as usize) <= MAX_ENUMERATED => (0..upper)
                    .map(|k| vec![coordinate_of(dist, k as f64)])
                    .collect(),
                Distribution::Quniform {
                    min_value,
                    max_value,
                    q,
                } => steps(min_value, max_value, q)?
                    .map(|v| vec![coordinate_of(dist, v)])
                    .collect(),
                Distribution::Qloguniform {
                    min_value,
                    max_value,
                    q,
                } => steps(min_value.exp(), max_value.exp(), q)?
                    .map(|v| vec![coordinate_of(dist, v)])
                    .collect(),
                _ => return None,
            };
            let mut options = options;
            options.dedup();
            total = total.checked_mul(options.len())?;
            if total > MAX_ENUMERATED {
                return None;
            }
            per_dim.push(options);
        }
        let mut points = vec![Vec::with_capacity(self.width)];
        for options in &per_dim {
            points = points
                .iter()
                .flat_map(|p| {
                    options.iter().map(move |o| {
                        let mut q = p.clone();
                        q.extend_from_slice(o);
                        q
                    })
                })
                .collect();
        }
        Some(points)
    }
}

/// The quantised values `round(x/q)*q` for x in `[lo, hi]`, if there are at most
/// [`MAX_ENUMERATED`] of them.
fn steps(lo: f64, hi: f64, q: f64) -> Option<impl Iterator<Item = f64>> {
    let first = (lo / q).round();
    let last = (hi / q).round();
    if last - first >= MAX_ENUMERATED as f64 {
        return None;
    }
    Some((first as i64..=last as i64).map(move |k| quantize(k as f64 * q, q)))
}

/// Where value `v` of a non-choice distribution sits on the unit coordinate.
fn coordinate_of(dist: &Distribution, v: f64) -> f64 {
    let linear = |lo: f64, hi: f64, x: f64| {
        if hi > lo {
            ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.5
        }
    };
    let ln = |x: f64| if x > 0.0 { x.ln() } else { f64::NEG_INFINITY };
    let probability = |z: f64| normal_cdf(z).clamp(TAIL, 1.0 - TAIL);
    match *dist {
        Distribution::Choice { .. } => 0.0,
        Distribution::Randint { upper } => ((v + 0.5) / upper as f64).clamp(0.0, 1.0),
        Distribution::Uniform {
            min_value,
            max_value,
        }
        | Distribution::Quniform {
            min_value,
            max_value,
            ..
        } => linear(min_value, max_value, v),
        Distribution::Loguniform {
            min_value,
            max_value,
        }
        | Distribution::Qloguniform {
            min_value,
            max_value,
            ..
        } => linear(min_value, max_value, ln(v)),
        Distribution::Normal { mu, sigma } | Distribution::Qnormal { mu, sigma, .. } => {
            probability((v - mu) / sigma)
        }
        Distribution::Lognormal { mu, sigma } | Distribution::Qlognormal { mu, sigma, .. } => {
            probability((ln(v) - mu) / sigma)
        }
    }
}

/// The range a coordinate may take when decoding: `[0, 1]`, or the clipped tails of a normal.
fn clip(dist: &Distribution, u: f64) -> f64 {
    match dist {
        Distribution::Normal { .. }
        | Distribution::Qnormal { .. }
        | Distribution::Lognormal { .. }
        | Distribution::Qlognormal { .. } => u.clamp(TAIL, 1.0 - TAIL),
        _ => u.clamp(0.0, 1.0),
    }
}

fn argmax(xs: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn space(entries: &[(&str, Distribution)]) -> SearchSpace {
        entries
            .iter()
            .map(|(n, d)| (n.to_string(), d.clone()))
            .collect()
    }

    #[test]
    fn quantize_rounds_to_clean_multiples() {
        assert_eq!(quantize(0.29, 0.1), 0.3);
        assert_eq!(quantize(7.4, 2.0), 8.0);
        assert_eq!(quantize(-0.26, 0.5), -0.5);
        assert_eq!(quantize(1.3, 0.25), 1.25);
    }

    #[test]
    fn value_types_follow_the_distribution() {
        let randint = Distribution::Randint { upper: 3 };
        assert_eq!(value_from_unit(&randint, 0.999), json!(2));
        let q_whole = Distribution::Quniform {
            min_value: 0.0,
            max_value: 10.0,
            q: 2.0,
        };
        assert!(value_from_unit(&q_whole, 0.33).is_i64());
        let q_frac = Distribution::Quniform {
            min_value: 0.0,
            max_value: 1.0,
            q: 0.1,
        };
        assert_eq!(value_from_unit(&q_frac, 0.33), json!(0.3));
        let choice = Distribution::Choice {
            values: vec![json!(1), json!("1"), json!(true)],
        };
        assert_eq!(value_from_unit(&choice, 0.5), json!("1"));
    }

    #[test]
    fn encoding_round_trips_every_kind() {
        let s = space(&[
            (
                "a",
                Distribution::Choice {
                    values: vec![json!("x"), json!(2), json!(false)],
                },
            ),
            ("b", Distribution::Randint { upper: 5 }),
            (
                "c",
                Distribution::Uniform {
                    min_value: -1.0,
                    max_value: 3.0,
                },
            ),
            (
                "d",
                Distribution::Qloguniform {
                    min_value: 0.0,
                    max_value: 5.0,
                    q: 1.0,
                },
            ),
            (
                "e",
                Distribution::Normal {
                    mu: 1.0,
                    sigma: 2.0,
                },
            ),
            (
                "f",
                Distribution::Qlognormal {
                    mu: 0.0,
                    sigma: 1.0,
                    q: 0.5,
                },
            ),
        ]);
        let enc = Encoding::new(&s);
        assert_eq!(enc.width(), 8);
        let params: Params = [
            ("a", json!(2)),
            ("b", json!(3)),
            ("c", json!(0.25)),
            ("d", json!(17)),
            ("e", json!(-0.5)),
            ("f", json!(1.5)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let x = enc.encode(&params).unwrap();
        let back = enc.decode(&x);
        assert_eq!(back["a"], json!(2));
        assert_eq!(back["b"], json!(3));
        assert!((back["c"].as_f64().unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(back["d"], json!(17));
        assert!((back["e"].as_f64().unwrap() + 0.5).abs() < 1e-9);
        assert_eq!(back["f"], json!(1.5));
        let mut projected = x.clone();
        enc.project(&mut projected);
        for (a, b) in x.iter().zip(&projected) {
            assert!((a - b).abs() < 1e-9);
        }
    }

    #[test]
    fn encode_names_the_parameter_that_does_not_fit() {
        let s = space(&[(
            "lr",
            Distribution::Uniform {
                min_value: 0.0,
                max_value: 1.0,
            },
        )]);
        let err = Encoding::new(&s)
            .encode(&[("lr".to_string(), json!("fast"))].into_iter().collect())
            .unwrap_err();
        assert!(err.to_string().contains("lr"), "{err}");
    }

    #[test]
    fn small_discrete_spaces_are_enumerated() {
        let s = space(&[
            (
                "k",
                Distribution::Quniform {
                    min_value: 1.0,
                    max_value: 50.0,
                    q: 1.0,
                },
            ),
            (
                "w",
                Distribution::Choice {
                    values: vec![json!("u"), json!("d")],
                },
            ),
        ]);
        let points = Encoding::new(&s).enumerate().unwrap();
        assert_eq!(points.len(), 100);
        let c = space(&[(
            "x",
            Distribution::Uniform {
                min_value: 0.0,
                max_value: 1.0,
            },
        )]);
        assert!(Encoding::new(&c).enumerate().is_none());
    }
}

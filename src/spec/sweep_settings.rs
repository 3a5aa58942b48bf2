//! The settings of a sweep job file around its search space: `sampling_algorithm:`, `limits:`
//! (with Azure's defaults and ranges) and `early_termination:`, each as written and as read.
//!
//! Split from `sweep.rs` to keep that file to the job's types and overall reading; the
//! cross-field check (no early termination with Bayesian sampling) stays there.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::document::Document;
use super::enums::parse_choice;
use super::error::{SpecError, backticked};
use super::index::join;
use super::literal::{Literal, python_float_repr};
use super::sweep::{DEFAULT_SWEEP_TIMEOUT, MAX_CONCURRENT_TRIALS, MAX_TOTAL_TRIALS, SweepLimits};
use super::sweep_space::{located, number};
use crate::sweep::{EarlyTermination, RandomRule, SamplingAlgorithm, Slack};

/// `sampling_algorithm:` as written: a name, or a mapping with `type`.
pub(super) enum RawSampling {
    Name(String),
    Map(RawSamplingMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSamplingMap {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    logbase: Option<serde_yaml::Value>,
}

impl<'de> Deserialize<'de> for RawSampling {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSampling;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`random`, `grid` or `bayesian`, or a mapping with `type`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSampling, E> {
                Ok(RawSampling::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSampling, A::Error> {
                RawSamplingMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSampling::Map)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    #[serde(default)]
    pub max_total_trials: Option<i64>,
    #[serde(default)]
    pub max_concurrent_trials: Option<i64>,
    #[serde(default)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub trial_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    evaluation_interval: Option<i64>,
    #[serde(default)]
    delay_evaluation: Option<i64>,
    #[serde(default)]
    slack_factor: Option<Literal>,
    #[serde(default)]
    slack_amount: Option<Literal>,
    #[serde(default)]
    truncation_percentage: Option<i64>,
    /// In one Azure doc example only (not in the SDK or REST schema); refused with a reason.
    #[serde(default)]
    exclude_finished_jobs: Option<serde_yaml::Value>,
}

const SAMPLERS: &[&str] = &["random", "grid", "bayesian"];
const POLICIES: &[&str] = &["bandit", "median_stopping", "truncation_selection"];

pub(super) fn sampling_algorithm(
    doc: &Document,
    raw: RawSampling,
) -> Result<SamplingAlgorithm, SpecError> {
    let field = "sampling_algorithm";
    let (name, name_field, map) = match raw {
        RawSampling::Name(name) => (name, field.to_string(), None),
        RawSampling::Map(map) => {
            let Some(name) = map.kind.clone() else {
                return Err(doc.missing(
                    "sampling_algorithm.type",
                    field,
                    "missing required field `sampling_algorithm.type`".into(),
                    "add `type: random` (or `grid`, `bayesian`)",
                ));
            };
            (name, join(field, "type"), Some(map))
        }
    };
    let which = parse_choice("sampling algorithm", &name, SAMPLERS)
        .map_err(|m| located(doc, &name_field, m))?;
    let Some(map) = map else {
        return Ok(match which {
            0 => SamplingAlgorithm::Random {
                seed: None,
                rule: RandomRule::Random,
            },
            1 => SamplingAlgorithm::Grid,
            _ => SamplingAlgorithm::Bayesian,
        });
    };
    if which != 0 {
        let extra = [
            ("seed", map.seed.is_some()),
            ("rule", map.rule.is_some()),
            ("logbase", map.logbase.is_some()),
        ];
        if let Some((key, _)) = extra.iter().find(|(_, set)| *set) {
            return Err(doc.invalid(
                &join(field, key),
                true,
                format!(
                    "`sampling_algorithm.{key}` belongs to random sampling, but this one is `{}`",
                    SAMPLERS[which]
                ),
                format!("remove `{key}`, or use `type: random`"),
            ));
        }
        return Ok(if which == 1 {
            SamplingAlgorithm::Grid
        } else {
            SamplingAlgorithm::Bayesian
        });
    }
    if map.logbase.is_some() {
        return Err(doc.unsupported(
            "sampling_algorithm.logbase",
            true,
            "`sampling_algorithm.logbase` (an undocumented SDK option) is not supported by tug"
                .into(),
            "remove `logbase`; log distributions use natural-log exponents (`loguniform`, `lognormal`)",
        ));
    }
    let seed = match map.seed {
        None => None,
        Some(s) => Some(u64::try_from(s).map_err(|_| {
            doc.invalid(
                "sampling_algorithm.seed",
                false,
                format!("`sampling_algorithm.seed` is {s}; a seed is a whole number ≥ 0"),
                "use a non-negative seed, e.g. `seed: 42`",
            )
        })?),
    };
    let rule = match &map.rule {
        None => RandomRule::Random,
        Some(rule) => {
            match parse_choice("random rule", rule, &["random", "sobol"])
                .map_err(|m| located(doc, "sampling_algorithm.rule", m))?
            {
                0 => RandomRule::Random,
                _ => RandomRule::Sobol,
            }
        }
    };
    Ok(SamplingAlgorithm::Random { seed, rule })
}

pub(super) fn limits(doc: &Document, raw: Option<RawLimits>) -> Result<SweepLimits, SpecError> {
    let Some(raw) = raw else {
        return Ok(SweepLimits::default());
    };
    let ranged = |key: &str, value: i64, max: i64, help: &str| -> Result<u32, SpecError> {
        if (1..=max).contains(&value) {
            return Ok(value as u32);
        }
        let field = join("limits", key);
        Err(doc.invalid(
            &field,
            false,
            format!("`{field}` is {value}; Azure allows 1 to {max}"),
            help.to_string(),
        ))
    };
    let total = match raw.max_total_trials {
        None => MAX_TOTAL_TRIALS,
        Some(v) => ranged(
            "max_total_trials",
            v,
            MAX_TOTAL_TRIALS.into(),
            "set how many trials to run in all, e.g. `max_total_trials: 20`",
        )?,
    };
    let concurrent = match raw.max_concurrent_trials {
        None => total.min(MAX_CONCURRENT_TRIALS),
        Some(v) => ranged(
            "max_concurrent_trials",
            v,
            MAX_CONCURRENT_TRIALS.into(),
            "set how many trials may run at once, e.g. `max_concurrent_trials: 4`",
        )?
        .min(total),
    };
    let seconds = |key: &str, value: Option<i64>| -> Result<Option<u64>, SpecError> {
        match value {
            None => Ok(None),
            Some(v) if v >= 1 => Ok(Some(v as u64)),
            Some(v) => {
                let field = join("limits", key);
                Err(doc.invalid(
                    &field,
                    false,
                    format!("`{field}` is {v}; a timeout is a number of seconds ≥ 1"),
                    format!("give whole seconds, e.g. `{key}: 3600`, or remove it"),
                ))
            }
        }
    };
    Ok(SweepLimits {
        max_total_trials: total,
        max_concurrent_trials: concurrent,
        timeout: seconds("timeout", raw.timeout)?.unwrap_or(DEFAULT_SWEEP_TIMEOUT),
        trial_timeout: seconds("trial_timeout", raw.trial_timeout)?,
    })
}

pub(super) fn policy(doc: &Document, raw: RawPolicy) -> Result<EarlyTermination, SpecError> {
    let field = "early_termination";
    let Some(kind) = raw.kind.as_deref() else {
        return Err(doc.missing(
            "early_termination.type",
            field,
            "missing required field `early_termination.type`".into(),
            format!("add `type:`: one of {}", backticked(POLICIES)),
        ));
    };
    let which = parse_choice("early termination policy", kind, POLICIES)
        .map_err(|m| located(doc, "early_termination.type", m))?;
    let count = |key: &str, value: Option<i64>| -> Result<u32, SpecError> {
        match value {
            None => Ok(0),
            Some(v) if (0..=i64::from(u32::MAX)).contains(&v) => Ok(v as u32),
            Some(v) => Err(doc.invalid(
                &join(field, key),
                false,
                format!("`{field}.{key}` is {v}; it counts metric reports, so it is ≥ 0"),
                format!("write a whole number ≥ 0, e.g. `{key}: 1`"),
            )),
        }
    };
    if raw.exclude_finished_jobs.is_some() {
        return Err(doc.unsupported(
            "early_termination.exclude_finished_jobs",
            true,
            "`exclude_finished_jobs` appears in one Azure doc example but in neither the SDK nor the REST schema, so Azure's CLI refuses it too".into(),
            "remove it; ended trials always take part in the comparison (they are never stopped)",
        ));
    }
    let evaluation_interval = count("evaluation_interval", raw.evaluation_interval)?;
    let delay_evaluation = count("delay_evaluation", raw.delay_evaluation)?;
    let name = POLICIES[which];
    let foreign = [
        ("slack_factor", raw.slack_factor.is_some(), 0),
        ("slack_amount", raw.slack_amount.is_some(), 0),
        (
            "truncation_percentage",
            raw.truncation_percentage.is_some(),
            2,
        ),
    ];
    for (key, set, owner) in foreign {
        if set && owner != which {
            return Err(doc.invalid(
                &join(field, key),
                true,
                format!(
                    "`{key}` belongs to the `{}` policy, but this one is `{name}`",
                    POLICIES[owner]
                ),
                format!("remove `{key}`, or change `type`"),
            ));
        }
    }
    match which {
        0 => {
            let slack = match (raw.slack_factor, raw.slack_amount) {
                (Some(_), Some(_)) => {
                    return Err(doc.invalid(
                        "early_termination.slack_amount",
                        true,
                        "`slack_factor` and `slack_amount` are both set; a bandit policy takes exactly one".into(),
                        "keep `slack_factor` (a ratio, e.g. 0.1) or `slack_amount` (a distance in metric units), not both",
                    ));
                }
                (None, None) => {
                    return Err(doc.missing(
                        "early_termination.slack_factor",
                        field,
                        "a bandit policy needs `slack_factor` or `slack_amount`".into(),
                        "add `slack_factor: 0.1` (stop trials more than 10% behind the best) or `slack_amount: 0.05`",
                    ));
                }
                (Some(f), None) => {
                    let key = "early_termination.slack_factor";
                    Slack::Factor(non_negative(doc, key, number(doc, key, f)?)?)
                }
                (None, Some(a)) => {
                    let key = "early_termination.slack_amount";
                    Slack::Amount(non_negative(doc, key, number(doc, key, a)?)?)
                }
            };
            Ok(EarlyTermination::Bandit {
                slack,
                evaluation_interval,
                delay_evaluation,
            })
        }
        1 => Ok(EarlyTermination::MedianStopping {
            evaluation_interval,
            delay_evaluation,
        }),
        _ => {
            let Some(pct) = raw.truncation_percentage else {
                return Err(doc.missing(
                    "early_termination.truncation_percentage",
                    field,
                    "missing required field `early_termination.truncation_percentage`".into(),
                    "add the percentage of trials to cut at each evaluation, 1 to 99, e.g. `truncation_percentage: 20`",
                ));
            };
            if !(1..=99).contains(&pct) {
                return Err(doc.invalid(
                    "early_termination.truncation_percentage",
                    false,
                    format!("`early_termination.truncation_percentage` is {pct}; Azure allows 1 to 99"),
                    "give the percentage of trials to cut at each evaluation, e.g. `truncation_percentage: 20`",
                ));
            }
            Ok(EarlyTermination::TruncationSelection {
                truncation_percentage: pct as u32,
                evaluation_interval,
                delay_evaluation,
            })
        }
    }
}

fn non_negative(doc: &Document, field: &str, value: f64) -> Result<f64, SpecError> {
    if value >= 0.0 {
        return Ok(value);
    }
    Err(doc.invalid(
        field,
        false,
        format!(
            "`{field}` is {}; a slack cannot be negative",
            python_float_repr(value)
        ),
        "give a slack ≥ 0, e.g. `slack_factor: 0.1`",
    ))
}

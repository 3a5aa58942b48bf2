//! The `search_space:` of a sweep job file: each entry as written, checked against its
//! distribution's parameters, and turned into a [`crate::sweep::Distribution`].
//!
//! Split from `sweep.rs` to keep that file to the job's types and overall reading. Every number
//! is re-read with Azure's YAML 1.1 rules ([`number`], also used for the policy's slack in
//! `sweep_settings.rs`), and `choice` values are kept as the scalars a trial receives.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::document::Document;
use super::enums::parse_choice;
use super::error::{Marked, MarkedKind, SpecError, backticked};
use super::index::join;
use super::io::check_name;
use super::literal::{Literal, python_float_repr};
use crate::sweep::{Distribution, ParamValue, SamplingAlgorithm, SearchSpace};

/// One `search_space:` entry as written: every parameter of every distribution, checked
/// against its `type` in [`dimension`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDimension {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    values: Option<Vec<ChoiceValue>>,
    #[serde(default)]
    upper: Option<Literal>,
    #[serde(default)]
    min_value: Option<Literal>,
    #[serde(default)]
    max_value: Option<Literal>,
    #[serde(default)]
    q: Option<Literal>,
    #[serde(default)]
    mu: Option<Literal>,
    #[serde(default)]
    sigma: Option<Literal>,
}

/// One element of `values:` of a `choice`: a scalar. Mappings (Azure's nested search
/// spaces) and lists are refused with their position.
struct ChoiceValue(Literal);

impl<'de> Deserialize<'de> for ChoiceValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ChoiceValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value (string, number or boolean)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Int(v.into())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Int(v.into())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Str(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Null))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<ChoiceValue, A::Error> {
                Err(Marked::unsupported(
                    "`{field}` is a mapping: choices of nested search spaces are not supported by tug",
                    "make each choice a single value (text, number or boolean); to sweep several settings together, encode them in one string and split it in the script",
                )
                .into_de())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<ChoiceValue, A::Error> {
                Err(Marked::invalid(
                    "`{field}` is a list: each choice must be a single value",
                    "make each choice a single value (text, number or boolean), e.g. `values: [16, 32, 64]`",
                )
                .into_de())
            }
        }
        d.deserialize_any(V)
    }
}

/// A [`Marked`] error (from [`parse_choice`]) about `field`, located in `doc`.
pub(super) fn located(doc: &Document, field: &str, m: Marked) -> SpecError {
    let message = m.message.replace("{field}", field);
    match m.kind {
        MarkedKind::Unsupported => doc.unsupported(field, false, message, m.help),
        _ => doc.invalid(field, false, message, m.help),
    }
}

/// Each distribution and its parameters, in the order Azure's reference lists them.
const DISTRIBUTIONS: &[(&str, &[&str])] = &[
    ("choice", &["values"]),
    ("randint", &["upper"]),
    ("uniform", &["min_value", "max_value"]),
    ("quniform", &["min_value", "max_value", "q"]),
    ("loguniform", &["min_value", "max_value"]),
    ("qloguniform", &["min_value", "max_value", "q"]),
    ("normal", &["mu", "sigma"]),
    ("qnormal", &["mu", "sigma", "q"]),
    ("lognormal", &["mu", "sigma"]),
    ("qlognormal", &["mu", "sigma", "q"]),
];

pub(super) fn search_space(
    doc: &Document,
    raw: BTreeMap<String, RawDimension>,
    sampler: &SamplingAlgorithm,
) -> Result<SearchSpace, SpecError> {
    if raw.is_empty() {
        return Err(doc.invalid(
            "search_space",
            true,
            "`search_space` is empty: a sweep needs at least one value to vary".into(),
            "add an entry, e.g. `lr: {type: uniform, min_value: 0.001, max_value: 0.1}`",
        ));
    }
    let mut out = SearchSpace::new();
    for (name, dim) in raw {
        let field = join("search_space", &name);
        check_name(
            doc,
            "search_space",
            "search-space",
            &name,
            "the trial command",
        )?;
        let d = dimension(doc, &field, dim)?;
        if *sampler == SamplingAlgorithm::Grid && !matches!(d, Distribution::Choice { .. }) {
            return Err(doc.invalid(
                &join(&field, "type"),
                false,
                format!(
                    "grid sampling only takes `choice` entries, and `{field}` is `{}`",
                    d.type_name()
                ),
                "list the values to try (`type: choice` with `values: [...]`), or use `sampling_algorithm: random`",
            ));
        }
        out.insert(name, d);
    }
    Ok(out)
}

fn dimension(doc: &Document, field: &str, raw: RawDimension) -> Result<Distribution, SpecError> {
    let names: Vec<&str> = DISTRIBUTIONS.iter().map(|(n, _)| *n).collect();
    let Some(kind) = raw.kind.as_deref() else {
        return Err(doc.missing(
            &join(field, "type"),
            field,
            format!("missing required field `{field}.type`"),
            format!(
                "add the distribution's `type`: one of {}",
                backticked(&names)
            ),
        ));
    };
    let which = parse_choice("distribution", kind, &names)
        .map_err(|m| located(doc, &join(field, "type"), m))?;
    let (type_name, params) = DISTRIBUTIONS[which];
    let present = [
        ("values", raw.values.is_some()),
        ("upper", raw.upper.is_some()),
        ("min_value", raw.min_value.is_some()),
        ("max_value", raw.max_value.is_some()),
        ("q", raw.q.is_some()),
        ("mu", raw.mu.is_some()),
        ("sigma", raw.sigma.is_some()),
    ];
    for (key, set) in present {
        if set && !params.contains(&key) {
            return Err(doc.invalid(
                &join(field, key),
                true,
                format!(
                    "`{key}` is not a parameter of `{type_name}`, which takes {}",
                    backticked(params)
                ),
                format!("remove `{key}`, or change `type` to the distribution you meant"),
            ));
        }
    }
    for key in params {
        let set = present.iter().any(|(k, s)| k == key && *s);
        if !set {
            return Err(doc.missing(
                &join(field, key),
                field,
                format!(
                    "missing required field `{field}.{key}`: `{type_name}` takes {}",
                    backticked(params)
                ),
                format!("add `{key}:` under `{field}`"),
            ));
        }
    }
    let num = |key: &str, value: &Option<Literal>| -> Result<f64, SpecError> {
        number(
            doc,
            &join(field, key),
            value.clone().expect("checked present"),
        )
    };
    let d = match type_name {
        "choice" => {
            let values = choices(doc, field, raw.values.expect("checked present"))?;
            Distribution::Choice { values }
        }
        "randint" => Distribution::Randint {
            upper: randint_upper(doc, &join(field, "upper"), raw.upper.expect("checked"))?,
        },
        "uniform" | "quniform" | "loguniform" | "qloguniform" => {
            let min_value = num("min_value", &raw.min_value)?;
            let max_value = num("max_value", &raw.max_value)?;
            if min_value >= max_value {
                return Err(doc.invalid(
                    &join(field, "max_value"),
                    false,
                    format!(
                        "`{field}`: `min_value` ({}) must be below `max_value` ({})",
                        python_float_repr(min_value),
                        python_float_repr(max_value)
                    ),
                    if type_name.contains("log") {
                        "swap them or widen the range; for log distributions the bounds are natural-log exponents (`min_value: -9.2` is e^-9.2 ≈ 1e-4)"
                    } else {
                        "swap them or widen the range"
                    },
                ));
            }
            match type_name {
                "uniform" => Distribution::Uniform {
                    min_value,
                    max_value,
                },
                "loguniform" => Distribution::Loguniform {
                    min_value,
                    max_value,
                },
                _ => {
                    let q = positive(doc, &join(field, "q"), num("q", &raw.q)?, "q")?;
                    if type_name == "quniform" {
                        Distribution::Quniform {
                            min_value,
                            max_value,
                            q,
                        }
                    } else {
                        Distribution::Qloguniform {
                            min_value,
                            max_value,
                            q,
                        }
                    }
                }
            }
        }
        _ => {
            let mu = num("mu", &raw.mu)?;
            let sigma = positive(
                doc,
                &join(field, "sigma"),
                num("sigma", &raw.sigma)?,
                "sigma",
            )?;
            // `q` is present exactly for the q-variants (checked above against `params`).
            let q = match &raw.q {
                Some(_) => positive(doc, &join(field, "q"), num("q", &raw.q)?, "q")?,
                None => 0.0,
            };
            match type_name {
                "normal" => Distribution::Normal { mu, sigma },
                "lognormal" => Distribution::Lognormal { mu, sigma },
                "qnormal" => Distribution::Qnormal { mu, sigma, q },
                _ => Distribution::Qlognormal { mu, sigma, q },
            }
        }
    };
    Ok(d)
}

/// Re-read `value` with YAML 1.1 rules and require a finite number.
pub(super) fn number(doc: &Document, field: &str, value: Literal) -> Result<f64, SpecError> {
    match doc.literal(field, value) {
        Literal::Int(i) => Ok(i as f64),
        Literal::Float(f) if f.is_finite() => Ok(f),
        Literal::Str(s)
            if s.contains(['e', 'E']) && !s.contains('.') && s.parse::<f64>().is_ok() =>
        {
            let fixed = match s.split_once(['e', 'E']) {
                Some((m, e)) => format!(
                    "{m}.0e{}",
                    if e.starts_with(['-', '+']) {
                        e.to_string()
                    } else {
                        format!("+{e}")
                    }
                ),
                None => s.clone(),
            };
            Err(doc.invalid(
                field,
                false,
                format!("`{field}` must be a number, but Azure reads `{s}` as text (YAML 1.1 needs a dot in a number with an exponent)"),
                format!("write it with a dot and a signed exponent, e.g. `{fixed}`"),
            ))
        }
        other => Err(doc.invalid(
            field,
            false,
            format!(
                "`{field}` must be a finite number, found {}",
                other.describe()
            ),
            "write a number without quotes, e.g. `0.01`",
        )),
    }
}

fn positive(doc: &Document, field: &str, value: f64, key: &str) -> Result<f64, SpecError> {
    if value > 0.0 {
        return Ok(value);
    }
    Err(doc.invalid(
        field,
        false,
        format!(
            "`{field}` is {}; `{key}` must be greater than 0",
            python_float_repr(value)
        ),
        if key == "q" {
            "give the step to round to, e.g. `q: 1` for whole numbers"
        } else {
            "give a positive standard deviation, e.g. `sigma: 1.0`"
        },
    ))
}

fn randint_upper(doc: &Document, field: &str, value: Literal) -> Result<i64, SpecError> {
    match doc.literal(field, value) {
        Literal::Int(i) if i >= 1 => Ok(i64::try_from(i).unwrap_or(i64::MAX)),
        Literal::Int(i) => Err(doc.invalid(
            field,
            false,
            format!("`{field}` is {i}: `randint` draws from 0 to `upper` - 1, so `upper` must be at least 1"),
            "set `upper` to the number of values to draw from, e.g. `upper: 10` for 0..9",
        )),
        other => Err(doc.invalid(
            field,
            false,
            format!("`{field}` must be a whole number, found {}", other.describe()),
            "write a whole number without quotes, e.g. `upper: 10`",
        )),
    }
}

fn choices(
    doc: &Document,
    field: &str,
    raw: Vec<ChoiceValue>,
) -> Result<Vec<ParamValue>, SpecError> {
    let values_field = join(field, "values");
    if raw.is_empty() {
        return Err(doc.invalid(
            &values_field,
            false,
            format!("`{values_field}` is empty: a choice needs at least one value"),
            "list the values to try, e.g. `values: [0.01, 0.1, 1.0]`",
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, ChoiceValue(v)) in raw.into_iter().enumerate() {
        let item = format!("{values_field}[{i}]");
        let value = match doc.literal(&item, v) {
            Literal::Str(s) => ParamValue::String(s),
            Literal::Bool(b) => ParamValue::Bool(b),
            Literal::Int(n) => match i64::try_from(n) {
                Ok(n) => ParamValue::from(n),
                Err(_) => {
                    return Err(doc.invalid(
                        &item,
                        false,
                        format!("`{item}` ({n}) does not fit in 64 bits"),
                        "use a smaller number, or quote it to pass it as text",
                    ));
                }
            },
            Literal::Float(f) => match serde_json::Number::from_f64(f) {
                Some(n) => ParamValue::Number(n),
                None => {
                    return Err(doc.invalid(
                        &item,
                        false,
                        format!(
                            "`{item}` is {}, which a trial cannot receive as a value",
                            python_float_repr(f)
                        ),
                        "use a finite number, or quote it to pass it as text",
                    ));
                }
            },
            Literal::Null => {
                return Err(doc.invalid(
                    &item,
                    false,
                    format!("`{item}` is empty (null)"),
                    "give a value, or quote `'None'` to pass the text None",
                ));
            }
        };
        out.push(value);
    }
    Ok(out)
}

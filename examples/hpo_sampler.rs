//! P4 benchmark adapter: tug's real samplers behind the JSON-lines ask/tell protocol of the
//! shared HPO harness (`bench/hpo/PROTOCOL.md`), so they run on the same objectives and seeds as
//! Optuna's.
//!
//! ```text
//! hpo_sampler [--sampler bayesian|random|sobol]      (default bayesian)
//! ```
//!
//! The protocol's space maps onto Azure distributions: `float` → `uniform`, `float` + `log` →
//! `loguniform(ln low, ln high)`, `int` → `quniform(low, high, 1)`, `int` + `log` →
//! `qloguniform(ln low, ln high, 1)`, `categorical` → `choice`. Proposals are clamped to the
//! bounds on the way back (rounding may step past them) and ints stay JSON integers. Every
//! `ask` calls `sampler_for(..).suggest(index, history)` with the told values as history.

use std::io::{BufRead, Write};

use serde_json::{Value, json};
use tug::sweep::sampler::{Sampler, sampler_for};
use tug::sweep::{
    Distribution, Observation, Params, RandomRule, SamplingAlgorithm, SearchSpace, TrialState,
};

/// What the harness accepts for one parameter.
enum Bounds {
    Float(f64, f64),
    Int(i64, i64),
    Categorical,
}

struct Run {
    bounds: Vec<(String, Bounds)>,
    sampler: Box<dyn Sampler>,
    history: Vec<Observation>,
    /// The proposal of the last `ask`, waiting for its `tell`.
    asked: Option<Params>,
}

fn parse_space(space: &Value) -> Result<(SearchSpace, Vec<(String, Bounds)>), String> {
    let object = space.as_object().ok_or("space must be an object")?;
    let mut out = SearchSpace::new();
    let mut bounds = Vec::new();
    for (name, spec) in object {
        let kind = spec["type"]
            .as_str()
            .ok_or(format!("{name}: missing type"))?;
        let log = spec["log"].as_bool().unwrap_or(false);
        let number = |field: &str| {
            spec[field]
                .as_f64()
                .ok_or(format!("{name}: missing numeric {field}"))
        };
        let (dist, bound) = match kind {
            "float" | "int" => {
                let (low, high) = (number("low")?, number("high")?);
                if low.is_nan() || high.is_nan() || low > high || (log && low <= 0.0) {
                    return Err(format!("{name}: bad bounds {low}..{high}"));
                }
                let dist = match (kind, log) {
                    ("float", false) => Distribution::Uniform {
                        min_value: low,
                        max_value: high,
                    },
                    ("float", true) => Distribution::Loguniform {
                        min_value: low.ln(),
                        max_value: high.ln(),
                    },
                    (_, false) => Distribution::Quniform {
                        min_value: low,
                        max_value: high,
                        q: 1.0,
                    },
                    (_, true) => Distribution::Qloguniform {
                        min_value: low.ln(),
                        max_value: high.ln(),
                        q: 1.0,
                    },
                };
                let bound = if kind == "float" {
                    Bounds::Float(low, high)
                } else {
                    Bounds::Int(low as i64, high as i64)
                };
                (dist, bound)
            }
            "categorical" => {
                let values = spec["choices"]
                    .as_array()
                    .filter(|v| !v.is_empty())
                    .ok_or(format!(
                        "{name}: categorical needs a non-empty choices list"
                    ))?
                    .clone();
                (Distribution::Choice { values }, Bounds::Categorical)
            }
            other => return Err(format!("{name}: unknown type {other:?}")),
        };
        out.insert(name.clone(), dist);
        bounds.push((name.clone(), bound));
    }
    Ok((out, bounds))
}

/// The proposal as the harness accepts it: inside the bounds, ints as JSON integers.
fn to_protocol(params: &Params, bounds: &[(String, Bounds)]) -> Value {
    let mut out = serde_json::Map::new();
    for (name, bound) in bounds {
        let value = &params[name];
        let v = match *bound {
            Bounds::Float(low, high) => json!(value.as_f64().unwrap_or(low).clamp(low, high)),
            Bounds::Int(low, high) => {
                json!((value.as_f64().unwrap_or(low as f64).round() as i64).clamp(low, high))
            }
            Bounds::Categorical => value.clone(),
        };
        out.insert(name.clone(), v);
    }
    Value::Object(out)
}

fn handle(line: &str, algorithm: &SamplingAlgorithm, run: &mut Option<Run>) -> Value {
    let request: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return json!({"error": format!("request is not JSON: {e}")}),
    };
    match request["op"].as_str() {
        Some("init") => {
            let (space, bounds) = match parse_space(&request["space"]) {
                Ok(s) => s,
                Err(e) => return json!({"error": e}),
            };
            let Some(seed) = request["seed"].as_u64() else {
                return json!({"error": "init needs a non-negative integer seed"});
            };
            match sampler_for(algorithm, &space, seed) {
                Ok(sampler) => {
                    *run = Some(Run {
                        bounds,
                        sampler,
                        history: Vec::new(),
                        asked: None,
                    });
                    json!({"ok": true})
                }
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        Some("ask") => {
            let Some(run) = run.as_mut() else {
                return json!({"error": "ask before init"});
            };
            if run.asked.is_some() {
                return json!({"error": "two asks without a tell"});
            }
            match run.sampler.suggest(run.history.len() as u64, &run.history) {
                Ok(Some(params)) => {
                    let reply = json!({"params": to_protocol(&params, &run.bounds)});
                    run.asked = Some(params);
                    reply
                }
                Ok(None) => json!({"error": "the search space is exhausted"}),
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        Some("tell") => {
            let Some(run) = run.as_mut() else {
                return json!({"error": "tell before init"});
            };
            let Some(value) = request["value"].as_f64().filter(|v| v.is_finite()) else {
                return json!({"error": "tell needs a finite numeric value"});
            };
            let Some(params) = run.asked.take() else {
                return json!({"error": "tell without an ask"});
            };
            run.history.push(Observation {
                params,
                state: TrialState::Complete(value),
            });
            json!({"ok": true})
        }
        Some("close") => json!({"ok": true}),
        _ => json!({"error": format!("unknown op in {line}")}),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut name = "bayesian".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sampler" => name = args.next().unwrap_or_default(),
            other => match other.strip_prefix("--sampler=") {
                Some(v) => name = v.to_string(),
                None => {
                    eprintln!("usage: hpo_sampler [--sampler bayesian|random|sobol]");
                    std::process::exit(2);
                }
            },
        }
    }
    let algorithm = match name.as_str() {
        "bayesian" => SamplingAlgorithm::Bayesian,
        "random" => SamplingAlgorithm::Random {
            seed: None,
            rule: RandomRule::Random,
        },
        "sobol" => SamplingAlgorithm::Random {
            seed: None,
            rule: RandomRule::Sobol,
        },
        other => {
            eprintln!("unknown sampler {other:?}: use bayesian, random or sobol");
            std::process::exit(2);
        }
    };
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut run = None;
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = handle(&line, &algorithm, &mut run);
        let close = serde_json::from_str::<Value>(&line).is_ok_and(|r| r["op"] == "close");
        if writeln!(stdout, "{reply}")
            .and_then(|_| stdout.flush())
            .is_err()
            || close
        {
            break;
        }
    }
}

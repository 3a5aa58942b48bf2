//! A pipeline's sweep step (`type: sweep`): a command component as the trial (`trial:`),
//! sampled with the sweep job's own settings (`search_space`, `sampling_algorithm`,
//! `objective`, `limits`, `early_termination`), its best trial's outputs the step's.
//!
//! The trial is resolved like any component step, except that the inputs the search space
//! names are given per trial: the step may not give them, the component must declare them
//! as values, and each distribution must fit its input's type (an `integer` input is not
//! sampled from `uniform`, whose `2.7` its script would refuse).

use super::InputType;
use super::component::{CommandComponent, ComponentInput};
use super::document::Document;
use super::error::{SpecError, backticked, nearest};
use super::index::join;
use super::io::Output;
use super::job::CommandJob;
use super::pipeline::{ComponentResolver, RawStep};
use super::pipeline_component::{ComponentUse, component_job, load_component};
use super::sweep::{SweepJob, SweepSettings};
use crate::pipeline::graph::StepIo;
use crate::sweep::Distribution;

const SWEEP_STEP_EXAMPLE: &str = "      type: sweep\n      trial: ./train.yml\n      sampling_algorithm: random\n      search_space:\n        lr: {type: uniform, min_value: 0.001, max_value: 0.1}\n      objective: {goal: maximize, primary_metric: accuracy}\n      limits: {max_total_trials: 10}";

/// The keys only a sweep step has, refused on a command step with the fix.
pub(super) fn refuse_sweep_keys(view: &Document, step: &RawStep) -> Result<(), SpecError> {
    for (key, given) in [
        ("trial", step.trial.is_some()),
        ("search_space", step.search_space.is_some()),
        ("sampling_algorithm", step.sampling_algorithm.is_some()),
        ("objective", step.objective.is_some()),
        ("early_termination", step.early_termination.is_some()),
    ] {
        if given {
            return Err(view.invalid(
                key,
                true,
                format!("`{key}` belongs to a sweep step, and this is a command step"),
                "add `type: sweep` to the step (its trial is a component: `trial: ./train.yml`), or remove the key",
            ));
        }
    }
    Ok(())
}

/// A sweep step: its trial as a command job (the command holding `${{search_space.x}}`),
/// the sweep's settings, and the trial's component.
pub(super) fn sweep_step(
    view: &Document,
    mut step: RawStep,
    outputs: std::collections::BTreeMap<String, Output>,
    compute: String,
    bindings: &mut StepIo,
    parent_inputs: &std::collections::BTreeMap<String, super::io::Input>,
    resolve: &mut ComponentResolver<'_>,
) -> Result<(CommandJob, SweepSettings, CommandComponent), SpecError> {
    for (key, given) in [
        ("component", step.component.is_some()),
        ("command", step.command.is_some()),
        ("code", step.code.is_some()),
        ("environment", step.environment.is_some()),
    ] {
        if given {
            return Err(view.invalid(
                key,
                true,
                format!("a sweep step runs its trial component; it has no `{key}` of its own"),
                "name the component each trial runs with `trial: ./train.yml` (or `trial: azureml:<name>:<version>`), and set `command`, `code` and `environment` in it",
            ));
        }
    }
    let required = |field: &str, what: &str| {
        view.missing(
            field,
            "type",
            format!("missing required field `{field}`: a sweep step needs {what}"),
            format!("add it; a sweep step looks like:\n{SWEEP_STEP_EXAMPLE}"),
        )
    };
    let reference = match step.trial.take() {
        None => return Err(required("trial", "the component each trial runs")),
        Some(serde_yaml::Value::String(r)) => r,
        Some(_) => {
            return Err(view.invalid(
                "trial",
                false,
                "a sweep step's `trial:` names a command component; an inline trial is a standalone sweep job's".into(),
                "write the trial as a component file and name it (`trial: ./train.yml`), or run the sweep as its own job (`type: sweep`)",
            ));
        }
    };
    let component = load_component(view, "trial", &reference, resolve)?;
    let sampling = step.sampling_algorithm.take().ok_or_else(|| {
        required(
            "sampling_algorithm",
            "a sampler (`random`, `grid` or `bayesian`)",
        )
    })?;
    let raw_space = step
        .search_space
        .take()
        .ok_or_else(|| required("search_space", "the values to try"))?;
    let objective = step
        .objective
        .take()
        .ok_or_else(|| required("objective", "the metric to optimize"))?;
    let settings = SweepSettings::read(
        view,
        sampling,
        raw_space,
        objective,
        step.limits.take(),
        step.early_termination.take(),
    )?;
    check_space(view, &step, &component, &settings)?;
    let sampled: Vec<&str> = settings.search_space.keys().map(String::as_str).collect();
    let mut job = component_job(
        view,
        &step,
        &component,
        ComponentUse {
            outputs,
            compute,
            limits: None,
            sampled: &sampled,
            parent_inputs,
        },
        bindings,
    )?;
    job.inputs
        .retain(|name, _| !sampled.contains(&name.as_str()));
    bindings
        .inputs
        .retain(|name, _| !sampled.contains(&name.as_str()));
    let sweep = SweepJob::from_trial(job, settings.clone());
    let job = sweep.trial_job(&sweep.placeholder_params())?;
    Ok((job, settings, component))
}

/// Every search-space entry is an input of the trial's component that the step leaves to
/// the sweep, of a type its distribution can give.
fn check_space(
    view: &Document,
    step: &RawStep,
    component: &CommandComponent,
    settings: &SweepSettings,
) -> Result<(), SpecError> {
    let reference = component.reference();
    let literal: Vec<&str> = component
        .inputs
        .iter()
        .filter(|(_, d)| d.input_type.is_literal())
        .map(|(n, _)| n.as_str())
        .collect();
    for (name, dist) in &settings.search_space {
        let field = join("search_space", name);
        let Some(decl) = component.inputs.get(name) else {
            let hint = nearest(name, literal.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            return Err(view.invalid(
                &field,
                true,
                format!("the trial component `{reference}` has no input `{name}` to sample"),
                format!(
                    "{hint}a sweep step samples its trial's inputs; they are {}",
                    backticked(&literal)
                ),
            ));
        };
        if step.inputs.contains_key(name) {
            return Err(view.invalid(
                &join("inputs", name),
                true,
                format!("input `{name}` is also in `search_space`: each trial is given a sampled value for it"),
                format!("remove `{name}` from the step's `inputs:`, or from `search_space:`"),
            ));
        }
        if let Some(why) = misfit(decl.input_type, dist) {
            return Err(view.invalid(
                &field,
                false,
                format!(
                    "input `{name}` of `{reference}` is `{}`, but `search_space.{name}` {why}",
                    decl.input_type.as_str()
                ),
                fix_for(decl.input_type),
            ));
        }
        if let Some((message, help)) = out_of_bounds(decl, dist) {
            return Err(view.invalid(
                &field,
                false,
                format!("`search_space.{name}` {message}"),
                help,
            ));
        }
    }
    Ok(())
}

/// The declared `min`/`max`/`enum` of an input that `dist` can draw values beyond.
fn out_of_bounds(decl: &ComponentInput, dist: &Distribution) -> Option<(String, String)> {
    if let (Some(allowed), Distribution::Choice { values }) = (&decl.allowed, dist)
        && let Some(v) = values
            .iter()
            .find(|v| !allowed.iter().any(|a| v.as_str() == Some(a.as_str())))
    {
        return Some((
            format!("has the choice {v}, which is not in the input's `enum`"),
            format!("choose from {}", backticked(allowed)),
        ));
    }
    if decl.min.is_none() && decl.max.is_none() {
        return None;
    }
    let Some((lo, hi)) = range(dist) else {
        return Some((
            "draws from an unbounded distribution, and the input has `min`/`max`".into(),
            "sample it with a bounded one (`uniform`, `loguniform`, `choice`, ...), or remove `min`/`max` from the component".into(),
        ));
    };
    if let Some(min) = decl.min
        && lo < min
    {
        return Some((
            format!("draws values down to {lo}, below the input's `min` ({min})"),
            format!("keep the distribution at or above {min}"),
        ));
    }
    if let Some(max) = decl.max
        && hi > max
    {
        return Some((
            format!("draws values up to {hi}, above the input's `max` ({max})"),
            format!("keep the distribution at or below {max}"),
        ));
    }
    None
}

/// The least and greatest values `dist` draws, when it is bounded.
fn range(dist: &Distribution) -> Option<(f64, f64)> {
    match dist {
        Distribution::Choice { values } => {
            let numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
            let lo = numbers.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = numbers.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (!numbers.is_empty()).then_some((lo, hi))
        }
        Distribution::Randint { upper } => Some((0.0, (*upper - 1) as f64)),
        Distribution::Uniform {
            min_value,
            max_value,
        } => Some((*min_value, *max_value)),
        // Rounded to a multiple of `q`, which can pass a bound (`round(1 / 0.4) * 0.4` is 1.2).
        Distribution::Quniform {
            min_value,
            max_value,
            q,
        } => Some((rounded(*min_value, *q), rounded(*max_value, *q))),
        Distribution::Loguniform {
            min_value,
            max_value,
        } => Some((min_value.exp(), max_value.exp())),
        Distribution::Qloguniform {
            min_value,
            max_value,
            q,
        } => Some((rounded(min_value.exp(), *q), rounded(max_value.exp(), *q))),
        _ => None,
    }
}

/// Why values drawn from `dist` do not fit an input of type `ty`, if they do not.
fn misfit(ty: InputType, dist: &Distribution) -> Option<String> {
    let choices = match dist {
        Distribution::Choice { values } => Some(values),
        _ => None,
    };
    match ty {
        InputType::Number => match choices {
            Some(values) if values.iter().any(|v| !v.is_number()) => {
                Some("has choices that are not numbers".into())
            }
            _ => None,
        },
        InputType::Integer => match (dist, choices) {
            (Distribution::Randint { .. }, _) => None,
            (_, Some(values)) if values.iter().all(|v| v.is_i64() || v.is_u64()) => None,
            (_, Some(_)) => Some("has choices that are not whole numbers".into()),
            _ => Some("draws numbers with fractions (`2.7`)".into()),
        },
        InputType::String => match choices {
            Some(_) => None,
            None => Some("draws numbers; a text input is sampled with `choice`".into()),
        },
        InputType::Boolean => match choices {
            Some(values) if values.iter().all(|v| v.is_boolean()) => None,
            _ => Some("draws values other than `true` and `false`".into()),
        },
        _ => Some("samples data; a sweep samples values".into()),
    }
}

fn fix_for(ty: InputType) -> String {
    match ty {
        InputType::Integer => {
            "sample it with `type: randint` or a `choice` of whole numbers, or declare the input `type: number`".into()
        }
        InputType::Boolean => "sample it with `{type: choice, values: [true, false]}`".into(),
        InputType::String => "sample it with `{type: choice, values: [...]}`".into(),
        _ => "sample a value input (`number`, `integer`, `string` or `boolean`)".into(),
    }
}

fn rounded(x: f64, q: f64) -> f64 {
    (x / q).round() * q
}

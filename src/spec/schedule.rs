//! The schedule file (`az ml schedule create -f`): `name`, a `trigger` (`cron` or
//! `recurrence`, with `start_time`, `end_time`, `time_zone`) and `create_job` (a job file, or
//! `{type: pipeline, job: <file>, ...}` with overrides of its `inputs`, `outputs`,
//! `settings`, `tags`, `experiment_name`).
//!
//! Read like every spec file. The trigger is checked by the same code that fires it
//! (`schedule::trigger`), so a trigger that reads here fires as read; its errors are located
//! at the field they concern. Accepts the docs' spellings `timezone` and `pattern` for
//! `time_zone` and `schedule`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use super::document::{Document, top_keys};
use super::error::SpecError;
use super::fields::{fix_scalar_map, scalar_map};
use crate::schedule::trigger::{Frequency, Pattern, Trigger, TriggerSpec, Window};

/// A schedule file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleFile {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub trigger: TriggerSpec,
    pub create_job: CreateJob,
}

/// What each fire submits: a job file (joined to the schedule file's folder) and the
/// `--set`-style overrides the schedule applies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateJob {
    pub file: PathBuf,
    /// `type:` when given (Azure schedules pipeline jobs; tug also takes command and sweep).
    pub kind: Option<String>,
    /// `(field, YAML value text)`, as `tug job create --set` gives them.
    pub overrides: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    name: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_map")]
    properties: BTreeMap<String, String>,
    trigger: RawTrigger,
    create_job: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    #[serde(rename = "type")]
    kind: TriggerKind,
    #[serde(default)]
    expression: Option<String>,
    #[serde(default)]
    frequency: Option<Frequency>,
    #[serde(default)]
    interval: Option<u32>,
    #[serde(default)]
    schedule: Option<RawPattern>,
    #[serde(default)]
    pattern: Option<RawPattern>,
    #[serde(default)]
    start_time: Option<String>,
    #[serde(default)]
    end_time: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum TriggerKind {
    Cron,
    Recurrence,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    #[serde(default)]
    hours: Vec<u32>,
    #[serde(default)]
    minutes: Vec<u32>,
    #[serde(default)]
    week_days: Vec<String>,
    #[serde(default)]
    month_days: Vec<u32>,
}

pub(crate) const SCHEDULE_EXAMPLE: &str = "      name: nightly\n      trigger:\n        type: cron\n        expression: \"0 2 * * *\"\n        time_zone: UTC\n      create_job: ./pipeline.yml";

/// The keys `create_job:` takes besides `type` and `job`, each applied to the job file.
const OVERRIDABLE: [&str; 7] = [
    "inputs",
    "outputs",
    "settings",
    "tags",
    "experiment_name",
    "display_name",
    "description",
];

pub(crate) fn read(doc: &Document, now: jiff::Timestamp) -> Result<ScheduleFile, SpecError> {
    let root = doc.root_mapping(SCHEDULE_EXAMPLE)?;
    if !top_keys(root).any(|k| k == "trigger") {
        return Err(doc.missing(
            "trigger",
            "",
            "a schedule needs a `trigger`".into(),
            "add `trigger: {type: cron, expression: \"0 2 * * *\"}` or `trigger: {type: recurrence, frequency: day, interval: 1}`",
        ));
    }
    if !top_keys(root).any(|k| k == "create_job") {
        return Err(doc.missing(
            "create_job",
            "",
            "a schedule needs a `create_job`: the job each fire submits".into(),
            "add `create_job: ./pipeline.yml` (a job file next to this one)",
        ));
    }
    let raw: RawSchedule = doc.deserialize()?;
    let _ = raw.properties;
    if !crate::run::model::valid_run_id(&raw.name) {
        return Err(doc.invalid(
            "name",
            false,
            format!("`{}` is not a valid schedule name", raw.name),
            "a schedule name starts with a letter or digit and has only letters, digits, `-` and `_` (at most 255)",
        ));
    }
    let mut tags = raw.tags;
    fix_scalar_map(doc, "tags", &mut tags);
    let trigger = trigger(doc, raw.trigger, now)?;
    let create_job = create_job(doc, &raw.create_job)?;
    Ok(ScheduleFile {
        name: raw.name,
        display_name: raw.display_name,
        description: raw.description,
        tags,
        trigger,
        create_job,
    })
}

fn trigger(
    doc: &Document,
    raw: RawTrigger,
    now: jiff::Timestamp,
) -> Result<TriggerSpec, SpecError> {
    let time_zone_field = if raw.timezone.is_some() && raw.time_zone.is_none() {
        "trigger.timezone"
    } else {
        "trigger.time_zone"
    };
    if raw.timezone.is_some() && raw.time_zone.is_some() {
        return Err(doc.invalid(
            "trigger.timezone",
            true,
            "both `time_zone` and `timezone` are given".into(),
            "keep one: `time_zone` is what the SDK and Azure's examples write",
        ));
    }
    let window = Window {
        start_time: raw.start_time,
        end_time: raw.end_time,
        time_zone: raw.time_zone.or(raw.timezone),
    };
    let schedule_field = if raw.pattern.is_some() {
        "trigger.pattern"
    } else {
        "trigger.schedule"
    };
    let spec = match raw.kind {
        TriggerKind::Cron => {
            for (field, given) in [
                ("frequency", raw.frequency.is_some()),
                ("interval", raw.interval.is_some()),
                ("schedule", raw.schedule.is_some() || raw.pattern.is_some()),
            ] {
                if given {
                    return Err(doc.invalid(
                        &format!("trigger.{field}"),
                        true,
                        format!("`{field}` belongs to a recurrence trigger, and this one is `type: cron`"),
                        "a cron trigger takes `expression` (with `start_time`, `end_time`, `time_zone`); or make it `type: recurrence`",
                    ));
                }
            }
            let Some(expression) = raw.expression else {
                return Err(doc.missing(
                    "trigger.expression",
                    "trigger.type",
                    "a cron trigger needs an `expression`".into(),
                    "add `expression: \"0 2 * * *\"` (minute hour day-of-month month day-of-week)",
                ));
            };
            TriggerSpec::Cron { expression, window }
        }
        TriggerKind::Recurrence => {
            if raw.expression.is_some() {
                return Err(doc.invalid(
                    "trigger.expression",
                    true,
                    "`expression` belongs to a cron trigger, and this one is `type: recurrence`".into(),
                    "a recurrence takes `frequency`, `interval` and `schedule`; or make it `type: cron`",
                ));
            }
            if raw.schedule.is_some() && raw.pattern.is_some() {
                return Err(doc.invalid(
                    "trigger.pattern",
                    true,
                    "both `schedule` and `pattern` are given".into(),
                    "keep one: `schedule` is what the SDK and Azure's examples write",
                ));
            }
            let Some(frequency) = raw.frequency else {
                return Err(doc.missing(
                    "trigger.frequency",
                    "trigger.type",
                    "a recurrence trigger needs a `frequency`".into(),
                    "add `frequency: day` (minute, hour, day, week or month) and `interval: 1`",
                ));
            };
            let Some(interval) = raw.interval else {
                return Err(doc.missing(
                    "trigger.interval",
                    "trigger.frequency",
                    "a recurrence trigger needs an `interval`".into(),
                    format!("add `interval: 1` to fire every {}", frequency.noun()),
                ));
            };
            let schedule = raw.schedule.or(raw.pattern).map(|p| Pattern {
                hours: p.hours,
                minutes: p.minutes,
                week_days: p.week_days,
                month_days: p.month_days,
            });
            TriggerSpec::Recurrence {
                frequency,
                interval,
                schedule,
                window,
            }
        }
    };
    // The same code that fires the schedule checks it.
    let compiled = Trigger::compile(&spec, now).map_err(|e| {
        let field = match e.field.as_str() {
            "time_zone" => time_zone_field.to_string(),
            f if f.starts_with("schedule") => f.replacen("schedule", schedule_field, 1),
            f => format!("trigger.{f}"),
        };
        doc.invalid(&field, false, e.message, e.help)
    })?;
    if compiled
        .next_after(now.max(compiled.start) - jiff::SignedDuration::from_secs(1))
        .is_none()
    {
        let field = if compiled.end.is_some() {
            "trigger.end_time"
        } else {
            "trigger"
        };
        return Err(doc.invalid(
            field,
            false,
            "this schedule would never fire: no occurrence lies ahead".into(),
            match compiled.end {
                Some(end) => format!("`end_time` ({end}) has passed or comes before the first occurrence; move it later or leave it out"),
                None => "check the expression's day and month (30 February never comes)".into(),
            },
        ));
    }
    Ok(spec)
}

fn create_job(doc: &Document, value: &Value) -> Result<CreateJob, SpecError> {
    let base = doc.path.parent().unwrap_or(Path::new(""));
    let file_at = |given: &str, field: &str| -> Result<PathBuf, SpecError> {
        if let Some(name) = given.strip_prefix("azureml:") {
            return Err(doc.unsupported(
                field,
                false,
                format!("`{given}` names a job in an Azure ML workspace; tug schedules job files"),
                format!("point at the job file instead, e.g. `./{name}.yml` next to this schedule"),
            ));
        }
        let path = given.strip_prefix("file:").unwrap_or(given);
        if path.trim().is_empty() {
            return Err(doc.invalid(
                field,
                false,
                "the job file is empty".into(),
                "give the job file to submit, e.g. `./pipeline.yml`",
            ));
        }
        // `./x.yml` joined as `dir/x.yml`, so messages and `schedule show` read cleanly.
        Ok(base
            .join(path)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect())
    };
    match value {
        Value::String(s) => Ok(CreateJob {
            file: file_at(s, "create_job")?,
            kind: None,
            overrides: vec![],
        }),
        Value::Mapping(map) => {
            let mut kind = None;
            let mut file = None;
            let mut overrides = vec![];
            for (key, v) in map {
                let key = key.as_str().unwrap_or_default();
                let field = format!("create_job.{key}");
                match key {
                    "type" => {
                        let t = v.as_str().unwrap_or_default();
                        if !matches!(t, "pipeline" | "command" | "sweep") {
                            return Err(doc.invalid(
                                &field,
                                false,
                                format!("`type: {t}` is not a job type tug schedules"),
                                "write `type: pipeline` (or command or sweep), matching the job file",
                            ));
                        }
                        kind = Some(t.to_string());
                    }
                    "job" => match v.as_str() {
                        Some(s) => file = Some(file_at(s, &field)?),
                        None => {
                            return Err(doc.invalid(
                                &field,
                                false,
                                "`job` is not a file path".into(),
                                "give the job file to submit, e.g. `job: ./pipeline.yml`",
                            ));
                        }
                    },
                    k if OVERRIDABLE.contains(&k) => flatten(doc, k, v, &mut overrides)?,
                    other => {
                        let near = crate::spec::nearest(
                            other,
                            OVERRIDABLE.iter().copied().chain(["type", "job"]),
                        );
                        return Err(doc.invalid(
                            &field,
                            true,
                            format!("`create_job` has no field `{other}`"),
                            match near {
                                Some(n) => format!("did you mean `{n}`? `create_job` takes `type`, `job`, and overrides of {}", OVERRIDABLE.join(", ")),
                                None => format!("`create_job` takes `type`, `job`, and overrides of {}", OVERRIDABLE.join(", ")),
                            },
                        ));
                    }
                }
            }
            let Some(file) = file else {
                return Err(doc.missing(
                    "create_job.job",
                    "create_job",
                    "`create_job` needs `job`: the job file each fire submits".into(),
                    "add `job: ./pipeline.yml`",
                ));
            };
            Ok(CreateJob {
                file,
                kind,
                overrides,
            })
        }
        _ => Err(doc.invalid(
            "create_job",
            false,
            "`create_job` is neither a job file nor a mapping".into(),
            "write `create_job: ./pipeline.yml`, or `create_job: {type: pipeline, job: ./pipeline.yml, inputs: {...}}`",
        )),
    }
}

/// `inputs: {a: 1, d: {type: uri_folder, path: x}}` → `inputs.a=1`, `inputs.d={...}`;
/// scalars as text, mappings and lists as JSON (a YAML flow collection).
fn flatten(
    doc: &Document,
    key: &str,
    value: &Value,
    out: &mut Vec<(String, String)>,
) -> Result<(), SpecError> {
    let text = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Null => "null".into(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            other => serde_json::to_string(other).unwrap_or_default(),
        }
    };
    match (key, value) {
        ("experiment_name" | "display_name" | "description", v) => {
            out.push((key.to_string(), text(v)));
        }
        (_, Value::Mapping(map)) => {
            for (k, v) in map {
                out.push((format!("{key}.{}", k.as_str().unwrap_or_default()), text(v)));
            }
        }
        (_, Value::Null) => {}
        _ => {
            return Err(doc.invalid(
                &format!("create_job.{key}"),
                false,
                format!("`create_job.{key}` is not a mapping"),
                format!("give `{key}` as a mapping of names to values, as in the job file"),
            ));
        }
    }
    Ok(())
}

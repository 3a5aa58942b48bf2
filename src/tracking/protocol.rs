//! Request and response bodies of the MLflow REST API (protobuf's JSON mapping: 64-bit
//! integers may arrive as strings, NaN and infinities arrive as strings, unknown fields
//! are ignored), and how tug's records look through it.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::MlflowError;
use crate::run::model::RunStatus;
use crate::store::{LoggedModelRecord, MetricPoint, RunRecord, RunTracking};

/// MLflow's limits (`mlflow.utils.validation`).
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_PARAM_VALUE: usize = 6000;
pub const MAX_TAG_VALUE: usize = 8000;
pub const MAX_KEY: usize = 250;
pub const MAX_EXPERIMENT_NAME: usize = 500;

/// An int64 field: a JSON number or a decimal string.
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    })
}

/// A double field: a JSON number, or `"NaN"`, `"Infinity"`, `"-Infinity"` (or a numeric
/// string). `None` when absent or unreadable.
pub fn parse_double(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.trim() {
            "NaN" | "nan" => Some(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
            "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// A double as protobuf's JSON writes it.
pub fn double_json(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MetricIn {
    pub key: String,
    pub value: Value,
    #[serde(deserialize_with = "lenient_i64")]
    pub timestamp: Option<i64>,
    #[serde(deserialize_with = "lenient_i64")]
    pub step: Option<i64>,
}

/// The run a request names: `run_id`, or the deprecated `run_uuid` older clients send.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RunRef {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
}

impl RunRef {
    pub fn id(&self) -> Result<&str, MlflowError> {
        self.run_id
            .as_deref()
            .or(self.run_uuid.as_deref())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'run_id'"))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateRun {
    pub experiment_id: Option<String>,
    pub run_name: Option<String>,
    #[serde(deserialize_with = "lenient_i64")]
    pub start_time: Option<i64>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UpdateRun {
    #[serde(flatten)]
    pub run: RunRef,
    pub status: Option<String>,
    pub run_name: Option<String>,
    #[serde(deserialize_with = "lenient_i64")]
    pub end_time: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogMetric {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(flatten)]
    pub metric: MetricIn,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogKeyValue {
    #[serde(flatten)]
    pub run: RunRef,
    pub key: String,
    pub value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogBatch {
    #[serde(flatten)]
    pub run: RunRef,
    pub metrics: Vec<MetricIn>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogInputs {
    #[serde(flatten)]
    pub run: RunRef,
    pub datasets: Vec<Value>,
    pub models: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogOutputs {
    #[serde(flatten)]
    pub run: RunRef,
    pub models: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogModel {
    #[serde(flatten)]
    pub run: RunRef,
    pub model_json: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateExperiment {
    pub name: String,
    pub artifact_location: Option<String>,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateLoggedModel {
    pub experiment_id: Option<String>,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<KeyValue>,
    pub tags: Vec<KeyValue>,
}

/// A checked batch: metrics as (key, step, value, seconds), params and tags as pairs.
#[derive(Debug)]
pub struct CheckedBatch {
    pub metrics: Vec<(String, i64, f64, f64)>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// Checks a key the way MLflow does: it becomes a file name in MLflow's file store, so
/// only letters, digits, `_ - . / : ` and spaces, and no `..` path steps.
pub fn check_key(kind: &str, key: &str) -> Result<(), MlflowError> {
    if key.is_empty() {
        return Err(MlflowError::invalid(format!(
            "missing value for required parameter 'key' of a {kind}"
        )));
    }
    if key.len() > MAX_KEY {
        return Err(MlflowError::invalid(format!(
            "{kind} name '{}…' is {} characters; the limit is {MAX_KEY}",
            key.chars().take(40).collect::<String>(),
            key.len()
        )));
    }
    let ok_char = |c: char| c.is_alphanumeric() || "_-./: ".contains(c);
    if !key.chars().all(ok_char) {
        return Err(MlflowError::invalid(format!(
            "invalid {kind} name '{key}': names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colons (:) and slashes (/)"
        )));
    }
    if key.starts_with('/') || key.split('/').any(|p| p == "..") {
        return Err(MlflowError::invalid(format!(
            "invalid {kind} name '{key}': names may not start with '/' or contain '..' steps"
        )));
    }
    Ok(())
}

fn check_value(kind: &str, key: &str, value: &str, max: usize) -> Result<(), MlflowError> {
    if value.len() > max {
        return Err(MlflowError::invalid(format!(
            "{kind} '{key}' has a value of {} characters; the limit is {max}",
            value.len()
        )));
    }
    Ok(())
}

/// One metric point; `now_ms` stands in for a missing timestamp.
pub fn check_metric(m: &MetricIn, now_ms: i64) -> Result<(String, i64, f64, f64), MlflowError> {
    check_key("metric", &m.key)?;
    let value = parse_double(&m.value).ok_or_else(|| {
        MlflowError::invalid(format!(
            "metric '{}' has value {}; expected a number (or \"NaN\", \"Infinity\", \"-Infinity\")",
            m.key, m.value
        ))
    })?;
    let ms = m.timestamp.unwrap_or(now_ms);
    Ok((
        m.key.clone(),
        m.step.unwrap_or(0),
        value,
        ms as f64 / 1000.0,
    ))
}

pub fn check_param(kv: &KeyValue) -> Result<(String, String), MlflowError> {
    check_key("param", &kv.key)?;
    let value = kv.value.clone().unwrap_or_default();
    check_value("param", &kv.key, &value, MAX_PARAM_VALUE)?;
    Ok((kv.key.clone(), value))
}

pub fn check_tag(kv: &KeyValue) -> Result<(String, String), MlflowError> {
    check_key("tag", &kv.key)?;
    let value = kv.value.clone().unwrap_or_default();
    check_value("tag", &kv.key, &value, MAX_TAG_VALUE)?;
    Ok((kv.key.clone(), value))
}

/// Checks a `log-batch` body against MLflow's limits; nothing is stored when any entry fails.
pub fn check_batch(b: &LogBatch, now_ms: i64) -> Result<CheckedBatch, MlflowError> {
    if b.metrics.len() > MAX_METRICS_PER_BATCH {
        return Err(MlflowError::invalid(format!(
            "a batch logged {} metrics; the limit is {MAX_METRICS_PER_BATCH} (send several batches)",
            b.metrics.len()
        )));
    }
    for (what, n) in [("params", b.params.len()), ("tags", b.tags.len())] {
        if n > MAX_PARAMS_TAGS_PER_BATCH {
            return Err(MlflowError::invalid(format!(
                "a batch logged {n} {what}; the limit is {MAX_PARAMS_TAGS_PER_BATCH}"
            )));
        }
    }
    let total = b.metrics.len() + b.params.len() + b.tags.len();
    if total > MAX_ENTITIES_PER_BATCH {
        return Err(MlflowError::invalid(format!(
            "a batch logged {total} metrics, params and tags together; the limit is {MAX_ENTITIES_PER_BATCH}"
        )));
    }
    let mut params: Vec<(String, String)> = Vec::new();
    for p in &b.params {
        let (k, v) = check_param(p)?;
        // MLflow refuses a batch that gives one param two values.
        if let Some((_, old)) = params.iter().find(|(pk, _)| *pk == k) {
            if *old != v {
                return Err(MlflowError::invalid(format!(
                    "param '{k}' appears twice in the batch with different values ('{old}', '{v}')"
                )));
            }
            continue;
        }
        params.push((k, v));
    }
    Ok(CheckedBatch {
        metrics: b
            .metrics
            .iter()
            .map(|m| check_metric(m, now_ms))
            .collect::<Result<_, _>>()?,
        params,
        tags: b.tags.iter().map(check_tag).collect::<Result<_, _>>()?,
    })
}

/// tug's run status through MLflow's five.
pub fn mlflow_status(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Queued | RunStatus::Preparing | RunStatus::Starting => "SCHEDULED",
        RunStatus::Running | RunStatus::Finalizing => "RUNNING",
        RunStatus::Completed => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Canceled => "KILLED",
    }
}

/// MLflow's final status as tug's; `None` for a status that does not end a run.
pub fn terminal_status(s: &str) -> Result<Option<RunStatus>, MlflowError> {
    match s {
        "FINISHED" => Ok(Some(RunStatus::Completed)),
        "FAILED" => Ok(Some(RunStatus::Failed)),
        "KILLED" => Ok(Some(RunStatus::Canceled)),
        "RUNNING" | "SCHEDULED" => Ok(None),
        other => Err(MlflowError::invalid(format!(
            "unknown run status '{other}'; expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
        ))),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time tug stored.
pub fn millis(rfc3339: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(rfc3339.trim_end_matches('Z')).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(d.as_millis() as i64)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The artifact root MLflow clients resolve against the tracking server.
pub fn run_artifact_uri(experiment_id: i64, run_id: &str) -> String {
    format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts")
}

pub fn kv_list(map: &BTreeMap<String, String>) -> Value {
    Value::Array(
        map.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

pub fn metric_json(p: &MetricPoint) -> Value {
    json!({
        "key": p.name,
        "value": double_json(p.value),
        "timestamp": (p.ts * 1000.0).round() as i64,
        "step": p.step,
    })
}

/// The name a run shows: its display name, else the `mlflow.runName` tag, else its id.
pub fn run_name(run: &RunRecord) -> String {
    run.display_name
        .clone()
        .or_else(|| run.tags.get("mlflow.runName").cloned())
        .unwrap_or_else(|| run.id.clone())
}

pub fn run_info(run: &RunRecord, experiment_id: i64, tracking: &RunTracking) -> Value {
    let mut info = json!({
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run_name(run),
        "experiment_id": experiment_id.to_string(),
        "user_id": run.tags.get("mlflow.user").cloned().unwrap_or_default(),
        "status": mlflow_status(run.status),
        "start_time": run.started_at.as_deref().or(Some(&run.created_at)).and_then(millis),
        "artifact_uri": run_artifact_uri(experiment_id, &run.id),
        "lifecycle_stage": if tracking.deleted { "deleted" } else { "active" },
    });
    if let Some(end) = run.ended_at.as_deref().and_then(millis) {
        info["end_time"] = json!(end);
    }
    info
}

/// A whole run: info, the latest value of each metric, params, tags (tug's own facts
/// added as `tug.*` tags), inputs and outputs.
pub fn run_json(
    run: &RunRecord,
    experiment_id: i64,
    tracking: &RunTracking,
    latest: &[MetricPoint],
) -> Value {
    let mut tags = run.tags.clone();
    tags.entry("mlflow.runName".into())
        .or_insert_with(|| run_name(run));
    if run.kind != crate::store::TRACKED_KIND {
        tags.insert("tug.status".into(), run.status.as_str().into());
        if !run.compute.is_empty() {
            tags.insert("tug.compute".into(), run.compute.clone());
        }
    }
    if let Some(parent) = &run.parent_id {
        tags.entry("mlflow.parentRunId".into())
            .or_insert_with(|| parent.clone());
    }
    json!({
        "info": run_info(run, experiment_id, tracking),
        "data": {
            "metrics": latest.iter().map(metric_json).collect::<Vec<_>>(),
            "params": kv_list(&run.params),
            "tags": kv_list(&tags),
        },
        "inputs": {"dataset_inputs": tracking.datasets, "model_inputs": []},
        "outputs": {"model_outputs": tracking.model_outputs},
    })
}

pub fn experiment_json(e: &crate::store::ExperimentRecord) -> Value {
    let created = millis(&e.created_at);
    json!({
        "experiment_id": e.id.to_string(),
        "name": e.name,
        "artifact_location": format!("mlflow-artifacts:/{}", e.id),
        "lifecycle_stage": "active",
        "creation_time": created,
        "last_update_time": created,
        "tags": kv_list(&e.tags),
    })
}

pub fn logged_model_json(m: &LoggedModelRecord) -> Value {
    let artifact_uri = match &m.source_run_id {
        Some(run) => format!(
            "{}/{}",
            run_artifact_uri(m.experiment_id, run),
            m.artifact_path
        ),
        None => format!(
            "mlflow-artifacts:/{}/models/{}/artifacts",
            m.experiment_id, m.id
        ),
    };
    let mut info = json!({
        "model_id": m.id,
        "experiment_id": m.experiment_id.to_string(),
        "name": m.name,
        "artifact_uri": artifact_uri,
        "creation_timestamp_ms": m.created_ms,
        "last_updated_timestamp_ms": m.updated_ms,
        "status": m.status,
        "tags": kv_list(&m.tags),
    });
    if let Some(r) = &m.source_run_id {
        info["source_run_id"] = json!(r);
    }
    if let Some(t) = &m.model_type {
        info["model_type"] = json!(t);
    }
    if let Some(s) = &m.status_message {
        info["status_message"] = json!(s);
    }
    json!({"info": info, "data": {"params": kv_list(&m.params), "metrics": []}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(key: &str, value: Value) -> MetricIn {
        MetricIn {
            key: key.into(),
            value,
            timestamp: Some(1500),
            step: Some(3),
        }
    }

    #[test]
    fn int64_and_doubles_arrive_in_either_form() {
        let m: LogMetric = serde_json::from_value(json!({
            "run_id": "r", "key": "loss", "value": "NaN", "timestamp": "1700000000000",
            "step": 2, "model_id": "ignored", "dataset_digest": "x"
        }))
        .unwrap();
        assert_eq!(m.run.id().unwrap(), "r");
        assert_eq!(m.metric.timestamp, Some(1_700_000_000_000));
        assert!(parse_double(&m.metric.value).unwrap().is_nan());
        assert_eq!(parse_double(&json!("-Infinity")), Some(f64::NEG_INFINITY));
        assert_eq!(parse_double(&json!(0.5)), Some(0.5));
        assert_eq!(parse_double(&json!("abc")), None);
        assert_eq!(double_json(f64::INFINITY), json!("Infinity"));
        let old: RunRef = serde_json::from_value(json!({"run_uuid": "u"})).unwrap();
        assert_eq!(old.id().unwrap(), "u");
        assert!(RunRef::default().id().is_err());
    }

    #[test]
    fn keys_follow_mlflow_rules() {
        for good in ["acc", "train/loss", "f1 score", "a.b-c_d:e"] {
            check_key("metric", good).unwrap();
        }
        for bad in ["", "../x", "/abs", "a/../b", "semi;colon", &"k".repeat(251)] {
            let e = check_key("metric", bad).unwrap_err();
            assert_eq!(
                e.code,
                super::super::ErrorCode::InvalidParameterValue,
                "{bad}"
            );
        }
    }

    #[test]
    fn batches_are_checked_whole() {
        let b = LogBatch {
            metrics: vec![metric("a", json!(1.0)), metric("b", json!("Infinity"))],
            params: vec![KeyValue {
                key: "lr".into(),
                value: Some("0.1".into()),
            }],
            ..Default::default()
        };
        let c = check_batch(&b, 0).unwrap();
        assert_eq!(c.metrics[0], ("a".into(), 3, 1.0, 1.5));
        assert_eq!(c.metrics[1].2, f64::INFINITY);

        let too_many = LogBatch {
            metrics: (0..1001).map(|_| metric("a", json!(1))).collect(),
            ..Default::default()
        };
        assert!(
            check_batch(&too_many, 0)
                .unwrap_err()
                .message
                .contains("1001")
        );
        let bad_value = LogBatch {
            metrics: vec![metric("a", json!(1)), metric("b", json!({"x": 1}))],
            ..Default::default()
        };
        assert!(
            check_batch(&bad_value, 0)
                .unwrap_err()
                .message
                .contains("'b'")
        );
        let twice = LogBatch {
            params: vec![
                KeyValue {
                    key: "p".into(),
                    value: Some("1".into()),
                },
                KeyValue {
                    key: "p".into(),
                    value: Some("2".into()),
                },
            ],
            ..Default::default()
        };
        assert!(check_batch(&twice, 0).is_err());
        let long = LogBatch {
            params: vec![KeyValue {
                key: "p".into(),
                value: Some("x".repeat(6001)),
            }],
            ..Default::default()
        };
        assert!(check_batch(&long, 0).unwrap_err().message.contains("6000"));
    }

    #[test]
    fn statuses_map_both_ways() {
        assert_eq!(mlflow_status(RunStatus::Preparing), "SCHEDULED");
        assert_eq!(mlflow_status(RunStatus::Finalizing), "RUNNING");
        assert_eq!(mlflow_status(RunStatus::Canceled), "KILLED");
        assert_eq!(
            terminal_status("FINISHED").unwrap(),
            Some(RunStatus::Completed)
        );
        assert_eq!(terminal_status("RUNNING").unwrap(), None);
        assert!(terminal_status("DONE").is_err());
    }

    #[test]
    fn stored_times_become_milliseconds() {
        assert_eq!(millis("1970-01-01T00:00:01.500Z"), Some(1500));
        assert_eq!(millis("garbage"), None);
    }
}

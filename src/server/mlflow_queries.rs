//! Reading many runs or points: `runs/search` (MLflow's filter grammar, `crate::tracking::search`)
//! and `metrics/get-history`, both paged with offset tokens.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use serde_json::{Value, json};

use super::AppState;
use super::mlflow_api::{
    MlResult, Reply, body, experiment_id, query, run_id_query, run_json, store,
};
use crate::store::RunRecord;
use crate::tracking::MlflowError;
use crate::tracking::protocol as p;
use crate::tracking::search::{self, RunFacts};

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SearchRuns {
    experiment_ids: Vec<String>,
    filter: Option<String>,
    run_view_type: Option<String>,
    max_results: Option<i64>,
    order_by: Vec<String>,
    page_token: Option<String>,
}

fn page(token: Option<&str>) -> MlResult<usize> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| MlflowError::invalid(format!("invalid page token '{t}'"))),
    }
}

pub(super) async fn search_runs(State(s): State<Arc<AppState>>, bytes: Bytes) -> Reply {
    let req: SearchRuns = body(&bytes)?;
    let clauses = search::parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let mut order = search::parse_order(&req.order_by)?;
    if order.is_empty() {
        order = search::parse_order(&["attributes.start_time DESC".into()])?;
    }
    let max = req.max_results.unwrap_or(1000).clamp(1, 50_000) as usize;
    let start = page(req.page_token.as_deref())?;
    let mut names = Vec::new();
    let mut ids = HashMap::new();
    for e in &req.experiment_ids {
        let exp = store(&s).experiment(experiment_id(e)?)?;
        ids.insert(exp.name.clone(), exp.id);
        names.push(exp.name);
    }
    let view = req.run_view_type.as_deref().unwrap_or("ACTIVE_ONLY");
    let mut found: Vec<(RunFacts, RunRecord)> = Vec::new();
    for run in store(&s).runs_of_experiments(&names)? {
        let tracking = store(&s).run_tracking(&run.id)?;
        let keep = match view {
            "DELETED_ONLY" => tracking.deleted,
            "ALL" => true,
            _ => !tracking.deleted,
        };
        if !keep {
            continue;
        }
        let exp_id = ids.get(&run.experiment).copied().unwrap_or(0);
        let info = p::run_info(&run, exp_id, &tracking);
        let mut attributes = BTreeMap::new();
        for key in ["status", "run_name", "run_id", "user_id", "artifact_uri"] {
            if let Some(v) = info[key].as_str() {
                attributes.insert(key.to_string(), search::Value::Text(v.into()));
            }
        }
        for key in ["start_time", "end_time"] {
            if let Some(v) = info[key].as_i64() {
                attributes.insert(key.to_string(), search::Value::Number(v as f64));
            }
        }
        let mut tags = run.tags.clone();
        tags.entry("mlflow.runName".into())
            .or_insert_with(|| p::run_name(&run));
        let facts = RunFacts {
            metrics: store(&s).last_metrics(&run.id)?,
            params: run.params.clone(),
            tags,
            attributes,
        };
        if search::matches(&facts, &clauses) {
            found.push((facts, run));
        }
    }
    found.sort_by(|a, b| search::order(&a.0, &b.0, &order));
    let mut runs = Vec::new();
    for (_, run) in found.iter().skip(start).take(max) {
        runs.push(run_json(&s, run)?);
    }
    let mut out = json!({"runs": runs});
    if start + max < found.len() {
        out["next_page_token"] = json!((start + max).to_string());
    }
    Ok(Json(out))
}

pub(super) async fn metric_history(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let id = run_id_query(&q)?;
    let key = query(&q, "metric_key")?;
    store(&s).run(id)?;
    let max = match q.get("max_results") {
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| MlflowError::invalid(format!("max_results '{m}' is not a number")))?,
        None => 25_000,
    }
    .clamp(1, 25_000);
    let start = page(q.get("page_token").map(String::as_str))?;
    let points = store(&s).metrics(id, Some(key), 0)?;
    let metrics: Vec<Value> = points
        .iter()
        .skip(start)
        .take(max)
        .map(|(_, p)| p::metric_json(p))
        .collect();
    let mut out = json!({"metrics": metrics});
    if start + max < points.len() {
        out["next_page_token"] = json!((start + max).to_string());
    }
    Ok(Json(out))
}

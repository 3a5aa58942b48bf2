//! What the MLflow tracking API needs beyond tug's own runs: experiments with integer ids,
//! runs started by an MLflow client (kind `mlflow`), params that never change once
//! logged, the datasets and model outputs a run records, and MLflow 3's logged models.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{Error, RUN_COLUMNS, Result, RunRecord, Store, now, row_to_run};
use crate::run::model::{JobSubmission, ResolvedEnvironment, RunStatus};

/// The kind of a run that an MLflow client created (no container: the client decides
/// when it ends).
pub const TRACKED_KIND: &str = "mlflow";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExperimentRecord {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub tags: BTreeMap<String, String>,
}

/// What MLflow records about a run that tug's own run columns do not hold.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunTracking {
    /// `runs/log-inputs` datasets, as the client sent them (deduplicated by name+digest).
    #[serde(default)]
    pub datasets: Vec<serde_json::Value>,
    /// `runs/outputs` logged-model outputs (`{model_id, step}`).
    #[serde(default)]
    pub model_outputs: Vec<serde_json::Value>,
    /// `runs/delete` marks a run deleted (MLflow's lifecycle stage); its files stay.
    #[serde(default)]
    pub deleted: bool,
}

/// An MLflow 3 logged model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoggedModelRecord {
    pub id: String,
    pub experiment_id: i64,
    pub name: String,
    pub source_run_id: Option<String>,
    pub model_type: Option<String>,
    /// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    pub status: String,
    pub status_message: Option<String>,
    /// Where its files live, relative to the run's folder (or to `models/<id>` without a run).
    pub artifact_path: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

/// One batch of MLflow writes to a run, stored in one transaction.
#[derive(Debug, Default)]
pub struct TrackingBatch {
    /// (name, step, value, timestamp in seconds)
    pub metrics: Vec<(String, i64, f64, f64)>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

pub(super) fn ensure_experiment(tx: &Transaction<'_>, name: &str) -> Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO experiments (name, created_at) VALUES (?1, ?2)",
        params![name, now()],
    )?;
    Ok(())
}

fn row_to_experiment(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ExperimentRecord>> {
    let tags: String = r.get(3)?;
    Ok((|| {
        Ok(ExperimentRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            created_at: r.get(2)?,
            tags: serde_json::from_str(&tags)?,
        })
    })())
}

const EXPERIMENT_COLUMNS: &str = "id, name, created_at, tags";

/// A JSON column tug reads and rewrites whole: its SELECT and UPDATE by id.
#[derive(Clone, Copy)]
struct JsonColumn {
    select: &'static str,
    update: &'static str,
}

const RUN_TRACKING: JsonColumn = JsonColumn {
    select: "SELECT tracking FROM runs WHERE id = ?1",
    update: "UPDATE runs SET tracking = ?2 WHERE id = ?1",
};

const LOGGED_MODEL: JsonColumn = JsonColumn {
    select: "SELECT record FROM logged_models WHERE id = ?1",
    update: "UPDATE logged_models SET record = ?2 WHERE id = ?1",
};

impl Store {
    pub fn experiment(&self, id: i64) -> Result<ExperimentRecord> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ?1"),
            params![id],
            row_to_experiment,
        )
        .optional()?
        .ok_or_else(|| Error::NoExperiment(id.to_string()))?
    }

    pub fn experiment_named(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE name = ?1"),
            params![name],
            row_to_experiment,
        )
        .optional()?
        .transpose()
    }

    pub fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments ORDER BY id"
        ))?;
        let rows = stmt.query_map([], row_to_experiment)?;
        rows.map(|r| r?).collect()
    }

    /// Creates an experiment; refuses a name that exists.
    pub fn create_experiment(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<ExperimentRecord> {
        {
            let conn = self.conn();
            let n = conn.execute(
                "INSERT OR IGNORE INTO experiments (name, created_at, tags) VALUES (?1, ?2, ?3)",
                params![name, now(), serde_json::to_string(tags)?],
            )?;
            if n == 0 {
                return Err(Error::ExperimentExists(name.to_string()));
            }
        }
        self.changed();
        self.experiment_named(name)?
            .ok_or_else(|| Error::NoExperiment(name.to_string()))
    }

    pub fn set_experiment_tag(&self, id: i64, key: &str, value: &str) -> Result<()> {
        let mut exp = self.experiment(id)?;
        exp.tags.insert(key.to_string(), value.to_string());
        self.conn().execute(
            "UPDATE experiments SET tags = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(&exp.tags)?],
        )?;
        Ok(())
    }

    /// A run an MLflow client started: Running at once, ended only by the client.
    pub fn insert_tracked_run(
        &self,
        id: &str,
        experiment: &str,
        display_name: Option<&str>,
        tags: &BTreeMap<String, String>,
        parent: Option<&str>,
    ) -> Result<RunRecord> {
        let submission = JobSubmission {
            name: Some(id.to_string()),
            display_name: display_name.map(str::to_string),
            experiment_name: experiment.to_string(),
            description: None,
            tags: tags.clone(),
            command: String::new(),
            code_snapshot: None,
            environment: ResolvedEnvironment::Image {
                image: String::new(),
                conda_file: None,
                pip_requirements: vec![],
            },
            environment_variables: BTreeMap::new(),
            compute: String::new(),
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            resources: Default::default(),
            timeout_seconds: None,
            source: None,
        };
        {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            super::insert_run_row(&tx, id, &submission, "", TRACKED_KIND, parent)?;
            tx.commit()?;
        }
        self.transition(id, RunStatus::Running, Default::default())?;
        self.run(id)
    }

    /// Runs an MLflow client nested under `parent` and left running end as it ended (a
    /// script that crashed never ends them; the real client's exit hook would have).
    pub(super) fn end_nested_runs(&self, parent: &str, to: RunStatus) -> Result<()> {
        let open: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare(
                "SELECT id FROM runs WHERE parent_id = ?1 AND kind = ?2 AND status = 'Running'",
            )?;
            stmt.query_map(params![parent, TRACKED_KIND], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?
        };
        for id in open {
            let t = super::Transition {
                error: Some(format!("ended with the run it is nested in, `{parent}`")),
                ..Default::default()
            };
            match self.transition(&id, to, t) {
                // The client ended it meanwhile.
                Ok(_) | Err(Error::Transition { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Stores metrics, params and tags of one MLflow request. A param logged again with
    /// a different value is refused and nothing of the batch is stored (MLflow's rule).
    pub fn log_tracking(&self, id: &str, batch: &TrackingBatch) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (p, t): (String, String) = tx
            .query_row(
                "SELECT params, tags FROM runs WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NoRun(id.to_string()))?;
        if !batch.metrics.is_empty() {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO metrics (run_id, name, step, value, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (name, step, value, ts) in &batch.metrics {
                stmt.execute(params![id, name, step, value, ts])?;
            }
        }
        if !batch.params.is_empty() || !batch.tags.is_empty() {
            let mut p: BTreeMap<String, String> = serde_json::from_str(&p)?;
            let mut t: BTreeMap<String, String> = serde_json::from_str(&t)?;
            for (k, v) in &batch.params {
                match p.get(k) {
                    Some(old) if old != v => {
                        return Err(Error::ParamChanged {
                            run: id.to_string(),
                            key: k.clone(),
                            old: old.clone(),
                            new: v.clone(),
                        });
                    }
                    _ => {
                        p.insert(k.clone(), v.clone());
                    }
                }
            }
            for (k, v) in &batch.tags {
                t.insert(k.clone(), v.clone());
            }
            tx.execute(
                "UPDATE runs SET params = ?2, tags = ?3 WHERE id = ?1",
                params![id, serde_json::to_string(&p)?, serde_json::to_string(&t)?],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.changed();
        Ok(())
    }

    pub fn delete_tag(&self, id: &str, key: &str) -> Result<bool> {
        let mut run = self.run(id)?;
        let had = run.tags.remove(key).is_some();
        self.conn().execute(
            "UPDATE runs SET tags = ?2 WHERE id = ?1",
            params![id, serde_json::to_string(&run.tags)?],
        )?;
        self.changed();
        Ok(had)
    }

    pub fn set_display_name(&self, id: &str, name: &str) -> Result<()> {
        let n = self.conn().execute(
            "UPDATE runs SET display_name = ?2 WHERE id = ?1",
            params![id, name],
        )?;
        if n == 0 {
            return Err(Error::NoRun(id.to_string()));
        }
        self.changed();
        Ok(())
    }

    pub fn run_tracking(&self, id: &str) -> Result<RunTracking> {
        self.read_json(RUN_TRACKING, id, || Error::NoRun(id.to_string()))
    }

    /// Changes a run's MLflow-only record under the store's lock (no lost updates).
    pub fn update_run_tracking(&self, id: &str, f: impl FnOnce(&mut RunTracking)) -> Result<()> {
        self.update_json(RUN_TRACKING, id, || Error::NoRun(id.to_string()), f)
            .map(|_| ())
    }

    /// Every run (trials included) of the named experiments, newest first.
    pub fn runs_of_experiments(&self, names: &[String]) -> Result<Vec<RunRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE experiment IN (SELECT value FROM json_each(?1))
             ORDER BY seq DESC"
        ))?;
        let rows = stmt.query_map(params![serde_json::to_string(names)?], row_to_run)?;
        rows.map(|r| r?).collect()
    }

    pub fn insert_logged_model(&self, rec: &LoggedModelRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO logged_models (id, experiment_id, run_id, record) VALUES (?1, ?2, ?3, ?4)",
            params![
                rec.id,
                rec.experiment_id,
                rec.source_run_id,
                serde_json::to_string(rec)?
            ],
        )?;
        Ok(())
    }

    pub fn logged_model(&self, id: &str) -> Result<LoggedModelRecord> {
        self.read_json(LOGGED_MODEL, id, || Error::NoLoggedModel(id.to_string()))
    }

    pub fn update_logged_model(
        &self,
        id: &str,
        f: impl FnOnce(&mut LoggedModelRecord),
    ) -> Result<LoggedModelRecord> {
        self.update_json(LOGGED_MODEL, id, || Error::NoLoggedModel(id.to_string()), f)
    }

    fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        col: JsonColumn,
        id: &str,
        missing: impl FnOnce() -> Error,
    ) -> Result<T> {
        let text: String = self
            .conn()
            .query_row(col.select, params![id], |r| r.get(0))
            .optional()?
            .ok_or_else(missing)?;
        Ok(serde_json::from_str(&text)?)
    }

    /// Reads, changes and writes back one JSON column in one transaction.
    fn update_json<T: serde::de::DeserializeOwned + Serialize>(
        &self,
        col: JsonColumn,
        id: &str,
        missing: impl FnOnce() -> Error,
        f: impl FnOnce(&mut T),
    ) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let text: String = tx
            .query_row(col.select, params![id], |r| r.get(0))
            .optional()?
            .ok_or_else(missing)?;
        let mut value: T = serde_json::from_str(&text)?;
        f(&mut value);
        tx.execute(col.update, params![id, serde_json::to_string(&value)?])?;
        tx.commit()?;
        Ok(value)
    }

    /// Logged models of the given experiments, newest first.
    pub fn logged_models(&self, experiment_ids: &[i64]) -> Result<Vec<LoggedModelRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT record FROM logged_models
             WHERE experiment_id IN (SELECT value FROM json_each(?1)) ORDER BY seq DESC",
        )?;
        let rows = stmt.query_map(params![serde_json::to_string(experiment_ids)?], |r| {
            r.get::<_, String>(0)
        })?;
        rows.map(|r| Ok(serde_json::from_str(&r?)?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(params: &[(&str, &str)]) -> TrackingBatch {
        TrackingBatch {
            metrics: vec![("loss".into(), 0, 0.5, 1.0), ("loss".into(), 1, 0.25, 2.0)],
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: vec![("team".into(), "a".into())],
        }
    }

    #[test]
    fn default_experiment_is_zero_and_runs_create_theirs() {
        let s = Store::in_memory().unwrap();
        assert_eq!(s.experiment(0).unwrap().name, "Default");
        let r = s
            .insert_tracked_run("r1", "digits", Some("first"), &BTreeMap::new(), None)
            .unwrap();
        assert_eq!(r.status, RunStatus::Running);
        assert_eq!(r.kind, TRACKED_KIND);
        let e = s.experiment_named("digits").unwrap().unwrap();
        assert!(e.id > 0);
        assert!(matches!(
            s.create_experiment("digits", &BTreeMap::new()),
            Err(Error::ExperimentExists(_))
        ));
        let made = s.create_experiment("other", &BTreeMap::new()).unwrap();
        assert_eq!(made.id, e.id + 1);
        assert!(matches!(s.experiment(999), Err(Error::NoExperiment(_))));
    }

    #[test]
    fn a_changed_param_refuses_the_whole_batch() {
        let s = Store::in_memory().unwrap();
        s.insert_tracked_run("r1", "e", None, &BTreeMap::new(), None)
            .unwrap();
        s.log_tracking("r1", &batch(&[("lr", "0.1")])).unwrap();
        // The same value again is fine (clients retry).
        s.log_tracking("r1", &batch(&[("lr", "0.1")])).unwrap();
        let err = s.log_tracking("r1", &batch(&[("lr", "0.2")])).unwrap_err();
        assert!(matches!(err, Error::ParamChanged { .. }), "{err}");
        assert_eq!(s.metrics("r1", Some("loss"), 0).unwrap().len(), 4);
        let r = s.run("r1").unwrap();
        assert_eq!(r.params["lr"], "0.1");
        assert_eq!(r.tags["team"], "a");
        assert!(s.delete_tag("r1", "team").unwrap());
        assert!(!s.run("r1").unwrap().tags.contains_key("team"));
        assert!(matches!(
            s.log_tracking("nope", &batch(&[])),
            Err(Error::NoRun(_))
        ));
    }

    #[test]
    fn logged_models_round_trip_and_update() {
        let s = Store::in_memory().unwrap();
        s.insert_tracked_run("r1", "e", None, &BTreeMap::new(), None)
            .unwrap();
        let e = s.experiment_named("e").unwrap().unwrap();
        let rec = LoggedModelRecord {
            id: "m-1".into(),
            experiment_id: e.id,
            name: "model".into(),
            source_run_id: Some("r1".into()),
            model_type: None,
            status: "LOGGED_MODEL_PENDING".into(),
            status_message: None,
            artifact_path: "model".into(),
            created_ms: 1,
            updated_ms: 1,
            tags: BTreeMap::new(),
            params: BTreeMap::new(),
        };
        s.insert_logged_model(&rec).unwrap();
        let done = s
            .update_logged_model("m-1", |m| m.status = "LOGGED_MODEL_READY".into())
            .unwrap();
        assert_eq!(s.logged_model("m-1").unwrap(), done);
        assert_eq!(s.logged_models(&[e.id]).unwrap().len(), 1);
        assert!(s.logged_models(&[0]).unwrap().is_empty());
        s.update_run_tracking("r1", |t| {
            t.model_outputs.push(serde_json::json!({"model_id": "m-1"}))
        })
        .unwrap();
        assert_eq!(s.run_tracking("r1").unwrap().model_outputs.len(), 1);
    }
}

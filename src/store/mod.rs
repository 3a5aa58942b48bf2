//! The workspace store: runs, their status history, metrics and registered environments
//! in SQLite (WAL). This module owns every SQL string in tug.

mod components;
mod data_assets;
mod endpoints;
mod migrations;
mod models;
mod pipelines;
mod schedules;
mod sweeps;
mod tracking;

pub use components::ComponentRecord;
pub use data_assets::DataRecord;
pub use models::ModelRecord;
pub use pipelines::{PipelineRecord, StepDecision, StepRecord, StepRow, StepStart};
pub use schedules::{FireCause, FireRecord, FireState, NewFire, ScheduleRecord};
pub use sweeps::{SweepRecord, TrialInsert, TrialRecord};
pub use tracking::{ExperimentRecord, LoggedModelRecord, RunTracking, TRACKED_KIND, TrackingBatch};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::run::model::{JobSubmission, ResolvedEnvironment, RunStatus};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the workspace store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("store migration to schema version {version} failed: {source}")]
    Migrate {
        version: usize,
        source: rusqlite::Error,
    },
    #[error(
        "the workspace store has schema version {found}, newer than this tug understands ({known}); upgrade tug"
    )]
    TooNew { found: usize, known: usize },
    #[error("store query failed: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("no run named `{0}` in this workspace; `tug job list` shows the runs")]
    NoRun(String),
    #[error("a run named `{0}` already exists; choose another `name:` or omit it")]
    RunExists(String),
    #[error("run `{id}` is {from}; it cannot become {to}")]
    Transition {
        id: String,
        from: RunStatus,
        to: RunStatus,
    },
    #[error(
        "environment `{name}` version `{version}` already exists with different content; bump `version:`"
    )]
    EnvironmentConflict { name: String, version: String },
    #[error(
        "model `{name}` version `{version}` already exists; omit `version:` to get the next one, or choose another"
    )]
    ModelExists { name: String, version: String },
    #[error("no model `{0}` in this workspace; `tug model list` shows the registered ones")]
    NoModel(String),
    #[error("no experiment with id `{0}` in this workspace")]
    NoExperiment(String),
    #[error("an experiment named `{0}` already exists")]
    ExperimentExists(String),
    #[error(
        "param `{key}` of run `{run}` was logged as `{old}`; it cannot change to `{new}` (log a new param name, or a metric)"
    )]
    ParamChanged {
        run: String,
        key: String,
        old: String,
        new: String,
    },
    #[error("no logged model `{0}` in this workspace")]
    NoLoggedModel(String),
    #[error("no schedule named `{0}` in this workspace; `tug schedule list` shows them")]
    NoSchedule(String),
    #[error("no component `{0}` in this workspace; `tug component list` shows the registered ones")]
    NoComponent(String),
    #[error(
        "component `{name}` version `{version}` already exists with different content; bump `version:` (or leave it out for the next one)"
    )]
    ComponentConflict { name: String, version: String },
    #[error("no data asset `{0}` in this workspace; `tug data list` shows the registered ones")]
    NoData(String),
    #[error(
        "data asset `{name}` version `{version}` already exists with different data; leave `version` out for the next one"
    )]
    DataConflict { name: String, version: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A run as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub experiment: String,
    pub display_name: Option<String>,
    pub status: RunStatus,
    pub compute: String,
    pub submission: JobSubmission,
    pub env_hash: Option<String>,
    pub image: Option<String>,
    pub container: Option<String>,
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub cancel_requested: bool,
    /// Timestamp (RFC 3339, nanoseconds) of the last container log line processed.
    pub log_cursor: Option<String>,
    /// Length of `std_log.txt` when the cursor was stored: a resumed follower cuts the
    /// file back to it, so lines written after the last commit are not written twice.
    #[serde(default)]
    pub log_bytes: u64,
    /// Secret that marks metric frames in this run's log stream.
    #[serde(skip_serializing, default)]
    pub log_nonce: String,
    /// The final status decided when the container ended (set on entering Finalizing),
    /// so a restart mid-collection finishes the run the same way.
    pub outcome: Option<RunStatus>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    /// `command`, or `sweep` for a sweep's parent run (driven by the sweep controller).
    #[serde(default = "command_kind")]
    pub kind: String,
    /// The sweep a trial belongs to.
    #[serde(default)]
    pub parent_id: Option<String>,
}

fn command_kind() -> String {
    "command".into()
}

/// One point of a metric series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    pub name: String,
    pub step: i64,
    pub value: f64,
    pub ts: f64,
}

/// A registered environment version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentRecord {
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    pub environment: ResolvedEnvironment,
    pub created_at: String,
}

/// What changes with a status transition, besides the status.
#[derive(Debug, Default)]
pub struct Transition {
    pub exit_code: Option<i64>,
    pub error: Option<String>,
    pub env_hash: Option<String>,
    pub image: Option<String>,
    pub container: Option<String>,
    pub outcome: Option<RunStatus>,
}

/// The store. One connection behind a mutex: the server is its only writer and every
/// statement is short.
pub struct Store {
    conn: Mutex<Connection>,
    /// Bumped after every write a watcher may care about (status, metrics, log cursor),
    /// so live views wake at once instead of polling.
    changes: tokio::sync::watch::Sender<u64>,
}

pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl Store {
    /// Opens (creating and migrating as needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path).map_err(|source| Error::Open {
            path: path.display().to_string(),
            source,
        })?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::migrate(&conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            changes: tokio::sync::watch::channel(0).0,
        })
    }

    /// An in-memory store, for tests.
    pub fn in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory()?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::migrate(&conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            changes: tokio::sync::watch::channel(0).0,
        })
    }

    /// A receiver that sees a new value after each change to runs or metrics.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes watchers: something they show changed outside the store (a log file).
    pub fn notify(&self) {
        self.changed();
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The workspace's stable id (labels every container this workspace creates).
    pub fn workspace_id(&self) -> Result<String> {
        let conn = self.conn();
        let id: Option<String> = conn
            .query_row("SELECT value FROM workspace WHERE key = 'id'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(id) = id {
            return Ok(id);
        }
        let id = crate::workspace::random_hex(6);
        conn.execute(
            "INSERT INTO workspace (key, value) VALUES ('id', ?1)",
            params![id],
        )?;
        Ok(id)
    }

    /// A workspace-wide setting tug keeps for itself (e.g. the tracking port).
    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM workspace WHERE key = ?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO workspace (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// Stores a new run as Queued.
    pub fn insert_run(&self, id: &str, submission: &JobSubmission, nonce: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_run_row(&tx, id, submission, nonce, "command", None)?;
        tx.commit()?;
        Ok(())
    }

    /// Moves a run to `to`, recording what came with the move. Refuses moves the
    /// lifecycle forbids (e.g. out of a terminal state), so a late event can never
    /// resurrect a finished run.
    pub fn transition(&self, id: &str, to: RunStatus, t: Transition) -> Result<RunStatus> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let from: String = tx
            .query_row("SELECT status FROM runs WHERE id = ?1", params![id], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| Error::NoRun(id.to_string()))?;
        let from = RunStatus::parse(&from).unwrap_or(RunStatus::Failed);
        if !from.can_become(to) {
            return Err(Error::Transition {
                id: id.to_string(),
                from,
                to,
            });
        }
        let at = now();
        tx.execute(
            "UPDATE runs SET status = ?2,
                exit_code = COALESCE(?3, exit_code), error = COALESCE(?4, error),
                env_hash = COALESCE(?5, env_hash), image = COALESCE(?6, image),
                container = COALESCE(?7, container), outcome = COALESCE(?9, outcome),
                started_at = CASE WHEN ?2 = 'Running' THEN ?8 ELSE started_at END,
                ended_at = CASE WHEN ?2 IN ('Completed','Failed','Canceled') THEN ?8 ELSE ended_at END
             WHERE id = ?1",
            params![
                id,
                to.as_str(),
                t.exit_code,
                t.error,
                t.env_hash,
                t.image,
                t.container,
                at,
                t.outcome.map(RunStatus::as_str),
            ],
        )?;
        tx.execute(
            "INSERT INTO run_events (run_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, to.as_str(), at, t.error],
        )?;
        tx.commit()?;
        drop(conn);
        self.changed();
        if to.is_terminal() {
            self.end_nested_runs(id, to)?;
        }
        Ok(from)
    }

    /// Marks a run as asked to cancel; returns its record.
    pub fn request_cancel(&self, id: &str) -> Result<RunRecord> {
        let n = self.conn().execute(
            "UPDATE runs SET cancel_requested = 1 WHERE id = ?1",
            params![id],
        )?;
        if n == 0 {
            return Err(Error::NoRun(id.to_string()));
        }
        self.run(id)
    }

    pub fn run(&self, id: &str) -> Result<RunRecord> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?;
        stmt.query_row(params![id], row_to_run)
            .optional()?
            .ok_or_else(|| Error::NoRun(id.to_string()))?
    }

    /// Top-level runs (no trials), newest first; with `parent`, only that sweep's trials.
    pub fn runs(
        &self,
        experiment: Option<&str>,
        parent: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR experiment = ?1)
             AND ((?3 IS NULL AND parent_id IS NULL) OR parent_id = ?3)
             ORDER BY seq DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![experiment, limit as i64, parent], row_to_run)?;
        rows.map(|r| r?).collect()
    }

    /// Command runs (trials included) not yet Completed, Failed or Canceled. Sweep parents
    /// are not here: their controller resumes them (`live_sweeps`).
    pub fn live_runs(&self) -> Result<Vec<RunRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE status NOT IN ('Completed','Failed','Canceled') AND kind = 'command' ORDER BY seq"
        ))?;
        let rows = stmt.query_map([], row_to_run)?;
        rows.map(|r| r?).collect()
    }

    /// Status history: (status, at, detail).
    pub fn events(&self, id: &str) -> Result<Vec<(String, String, Option<String>)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT status, at, detail FROM run_events WHERE run_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Stores metric points and params/tags from a batch of log lines, and the log
    /// cursor after them, in one transaction: a restart that re-reads the log from the
    /// cursor never counts a point twice.
    pub fn record_log_batch(
        &self,
        id: &str,
        metrics: &[(String, Option<i64>, f64, f64)],
        params: &BTreeMap<String, String>,
        tags: &BTreeMap<String, String>,
        cursor: Option<(&str, u64)>,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (name, step, value, ts) in metrics {
            let step = match step {
                Some(s) => *s,
                None => tx.query_row(
                    "SELECT COUNT(*) FROM metrics WHERE run_id = ?1 AND name = ?2",
                    params![id, name],
                    |r| r.get(0),
                )?,
            };
            tx.execute(
                "INSERT INTO metrics (run_id, name, step, value, ts) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, name, step, value, ts],
            )?;
        }
        if !params.is_empty() || !tags.is_empty() {
            let (p, t): (String, String) = tx.query_row(
                "SELECT params, tags FROM runs WHERE id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut p: BTreeMap<String, String> = serde_json::from_str(&p)?;
            let mut t: BTreeMap<String, String> = serde_json::from_str(&t)?;
            p.extend(params.clone());
            t.extend(tags.clone());
            tx.execute(
                "UPDATE runs SET params = ?2, tags = ?3 WHERE id = ?1",
                params![id, serde_json::to_string(&p)?, serde_json::to_string(&t)?],
            )?;
        }
        if let Some((c, bytes)) = cursor {
            tx.execute(
                "UPDATE runs SET log_cursor = ?2, log_bytes = ?3 WHERE id = ?1",
                params![id, c, bytes as i64],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.changed();
        Ok(())
    }

    /// Metric points of a run after row `after` (for live streaming), optionally one name.
    pub fn metrics(
        &self,
        id: &str,
        name: Option<&str>,
        after: i64,
    ) -> Result<Vec<(i64, MetricPoint)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT rowid, name, step, value, ts FROM metrics
             WHERE run_id = ?1 AND (?2 IS NULL OR name = ?2) AND rowid > ?3 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![id, name, after], |r| {
            Ok((
                r.get(0)?,
                MetricPoint {
                    name: r.get(1)?,
                    step: r.get(2)?,
                    value: r.get::<_, Option<f64>>(3)?.unwrap_or(f64::NAN),
                    ts: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Each metric's latest point (highest step, then newest), as MLflow reports a run.
    pub fn latest_metric_points(&self, id: &str) -> Result<Vec<MetricPoint>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT name, step, value, ts FROM metrics m WHERE run_id = ?1 AND rowid =
               (SELECT rowid FROM metrics WHERE run_id = m.run_id AND name = m.name
                ORDER BY step DESC, ts DESC, rowid DESC LIMIT 1)
             ORDER BY name",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            Ok(MetricPoint {
                name: r.get(0)?,
                step: r.get(1)?,
                value: r.get::<_, Option<f64>>(2)?.unwrap_or(f64::NAN),
                ts: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The last value of each metric of a run.
    pub fn last_metrics(&self, id: &str) -> Result<BTreeMap<String, f64>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, value FROM metrics m WHERE run_id = ?1 AND rowid =
               (SELECT MAX(rowid) FROM metrics WHERE run_id = m.run_id AND name = m.name)",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            Ok((r.get(0)?, r.get::<_, Option<f64>>(1)?.unwrap_or(f64::NAN)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Registers an environment version. Re-registering identical content is a no-op.
    pub fn put_environment(&self, rec: &EnvironmentRecord) -> Result<()> {
        let conn = self.conn();
        let json = serde_json::to_string(&rec.environment)?;
        let existing: Option<String> = conn
            .query_row(
                "SELECT spec FROM environments WHERE name = ?1 AND version = ?2",
                params![rec.name, rec.version],
                |r| r.get(0),
            )
            .optional()?;
        match existing {
            Some(s) if s == json => Ok(()),
            Some(_) => Err(Error::EnvironmentConflict {
                name: rec.name.clone(),
                version: rec.version.clone(),
            }),
            None => {
                conn.execute(
                    "INSERT INTO environments (name, version, description, spec, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![rec.name, rec.version, rec.description, json, rec.created_at],
                )?;
                Ok(())
            }
        }
    }

    /// One environment version, or the latest (most recently created) when `version` is None.
    pub fn environment(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<EnvironmentRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, version, description, spec, created_at FROM environments
             WHERE name = ?1 AND (?2 IS NULL OR version = ?2) ORDER BY seq DESC LIMIT 1",
        )?;
        let row = stmt
            .query_row(params![name, version], row_to_env)
            .optional()?;
        row.transpose()
    }

    pub fn environments(&self) -> Result<Vec<EnvironmentRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT name, version, description, spec, created_at FROM environments ORDER BY name, seq",
        )?;
        let rows = stmt.query_map([], row_to_env)?;
        rows.map(|r| r?).collect()
    }

    /// Next free numeric version of an environment name ("1" when new).
    pub fn next_environment_version(&self, name: &str) -> Result<String> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM environments WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        Ok((n + 1).to_string())
    }
}

/// Inserts a Queued run and its first event; a taken id is [`Error::RunExists`].
pub(crate) fn insert_run_row(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    submission: &JobSubmission,
    nonce: &str,
    kind: &str,
    parent: Option<&str>,
) -> Result<()> {
    let at = now();
    tracking::ensure_experiment(tx, &submission.experiment_name)?;
    let res = tx.execute(
        "INSERT INTO runs (id, experiment, display_name, status, compute, submission, created_at,
            log_nonce, tags, kind, parent_id)
         VALUES (?1, ?2, ?3, 'Queued', ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            submission.experiment_name,
            submission.display_name,
            submission.compute,
            serde_json::to_string(submission)?,
            at,
            nonce,
            serde_json::to_string(&submission.tags)?,
            kind,
            parent,
        ],
    );
    match res {
        // The id is taken (UNIQUE or PRIMARY KEY); other constraints are real errors.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            return Err(Error::RunExists(id.to_string()));
        }
        r => r?,
    };
    tx.execute(
        "INSERT INTO run_events (run_id, status, at) VALUES (?1, 'Queued', ?2)",
        params![id, at],
    )?;
    Ok(())
}

pub(crate) const RUN_COLUMNS: &str =
    "id, experiment, display_name, status, compute, submission, env_hash, image,
    container, exit_code, error, created_at, started_at, ended_at, cancel_requested, log_cursor,
    log_nonce, params, tags, outcome, log_bytes, kind, parent_id";

pub(crate) fn row_to_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<RunRecord>> {
    row_to_run_offset(r, 0)
}

/// A run read from [`RUN_COLUMNS`] starting at column `o` (after a join's own columns).
pub(crate) fn row_to_run_offset(
    r: &rusqlite::Row<'_>,
    o: usize,
) -> rusqlite::Result<Result<RunRecord>> {
    let status: String = r.get(o + 3)?;
    let submission: String = r.get(o + 5)?;
    let params: String = r.get(o + 17)?;
    let tags: String = r.get(o + 18)?;
    let rec = (|| -> Result<RunRecord> {
        Ok(RunRecord {
            id: r.get(o)?,
            experiment: r.get(o + 1)?,
            display_name: r.get(o + 2)?,
            status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
            compute: r.get(o + 4)?,
            submission: serde_json::from_str(&submission)?,
            env_hash: r.get(o + 6)?,
            image: r.get(o + 7)?,
            container: r.get(o + 8)?,
            exit_code: r.get(o + 9)?,
            error: r.get(o + 10)?,
            created_at: r.get(o + 11)?,
            started_at: r.get(o + 12)?,
            ended_at: r.get(o + 13)?,
            cancel_requested: r.get::<_, i64>(o + 14)? != 0,
            log_cursor: r.get(o + 15)?,
            log_nonce: r.get(o + 16)?,
            params: serde_json::from_str(&params)?,
            tags: serde_json::from_str(&tags)?,
            outcome: r
                .get::<_, Option<String>>(o + 19)?
                .and_then(|s| RunStatus::parse(&s)),
            log_bytes: r.get::<_, i64>(o + 20)? as u64,
            kind: r.get(o + 21)?,
            parent_id: r.get(o + 22)?,
        })
    })();
    Ok(rec)
}

fn row_to_env(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<EnvironmentRecord>> {
    let spec: String = r.get(3)?;
    Ok((|| -> Result<EnvironmentRecord> {
        Ok(EnvironmentRecord {
            name: r.get(0)?,
            version: r.get(1)?,
            description: r.get(2)?,
            environment: serde_json::from_str(&spec)?,
            created_at: r.get(4)?,
        })
    })())
}

#[cfg(test)]
pub(crate) mod tests;

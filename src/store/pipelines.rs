//! Pipelines: the parent run, its stored definition, and one row per step saying what
//! became of it (waiting, started as a child run, reused from an earlier run, skipped),
//! with the fingerprint and decision it was started or reused with. Only the pipeline
//! controller writes here.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Error, RUN_COLUMNS, Result, RunRecord, Store, insert_run_row};
use crate::run::model::JobSubmission;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineRecord {
    pub run: RunRecord,
    /// `pipeline::PipelineSubmission` as JSON, fixed at creation.
    pub spec: serde_json::Value,
    /// Why the pipeline ended.
    pub note: Option<String>,
}

/// What the controller recorded for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepRow {
    Waiting,
    /// Its own child run exists; how it goes is that run's status.
    Started,
    Reused,
    Skipped,
}

impl StepRow {
    fn as_str(self) -> &'static str {
        match self {
            StepRow::Waiting => "waiting",
            StepRow::Started => "started",
            StepRow::Reused => "reused",
            StepRow::Skipped => "skipped",
        }
    }
    fn parse(s: &str) -> StepRow {
        match s {
            "started" => StepRow::Started,
            "reused" => StepRow::Reused,
            "skipped" => StepRow::Skipped,
            _ => StepRow::Waiting,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    pub row: StepRow,
    /// The step's own run, once started.
    pub run: Option<RunRecord>,
    /// The earlier run whose outputs a reused step uses.
    pub reused_from: Option<String>,
    pub fingerprint: Option<serde_json::Value>,
    pub key: Option<String>,
    /// `pipeline::reuse::Decision` as JSON.
    pub decision: Option<serde_json::Value>,
    /// The decision or skip, in words.
    pub reason: Option<String>,
}

impl StepRecord {
    /// The run whose outputs are this step's: its own, or the reused one.
    pub fn outputs_run(&self) -> Option<&str> {
        self.reused_from
            .as_deref()
            .or(self.run.as_ref().map(|r| r.id.as_str()))
    }
}

/// How the step was decided, as stored with it.
pub struct StepDecision<'a> {
    pub fingerprint: &'a serde_json::Value,
    pub key: Option<&'a str>,
    pub decision: &'a serde_json::Value,
    pub reason: &'a str,
}

/// What became of a step the controller asked to start or reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStart {
    Done,
    /// The step is no longer waiting: it was decided already (a pass before a restart).
    Taken,
    /// The pipeline was asked to cancel, or has ended, meanwhile.
    PipelineStopping,
}

impl Store {
    /// Stores a new pipeline: its parent run (Queued, kind `pipeline`), its definition,
    /// and a waiting row per step, in one transaction.
    pub fn insert_pipeline(
        &self,
        id: &str,
        parent: &JobSubmission,
        spec: &serde_json::Value,
        steps: &[String],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_run_row(&tx, id, parent, "", "pipeline", None)?;
        tx.execute(
            "INSERT INTO pipelines (run_id, spec) VALUES (?1, ?2)",
            params![id, serde_json::to_string(spec)?],
        )?;
        for step in steps {
            tx.execute(
                "INSERT INTO pipeline_steps (pipeline_id, step, state) VALUES (?1, ?2, 'waiting')",
                params![id, step],
            )?;
        }
        tx.commit()?;
        drop(conn);
        self.changed();
        Ok(())
    }

    pub fn pipeline(&self, id: &str) -> Result<PipelineRecord> {
        let run = self.run(id)?;
        let (spec, note): (String, Option<String>) = self
            .conn()
            .query_row(
                "SELECT spec, note FROM pipelines WHERE run_id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NoRun(id.to_string()))?;
        Ok(PipelineRecord {
            run,
            spec: serde_json::from_str(&spec)?,
            note,
        })
    }

    /// A pipeline's steps by name, each with its run if it has one.
    pub fn pipeline_steps(&self, pipeline: &str) -> Result<Vec<StepRecord>> {
        let conn = self.conn();
        let cols = RUN_COLUMNS
            .split(',')
            .map(|c| format!("r.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn.prepare(&format!(
            "SELECT s.step, s.state, s.reused_from, s.fingerprint, s.key, s.decision, s.reason,
                    s.run_id, {cols}
             FROM pipeline_steps s LEFT JOIN runs r ON r.id = s.run_id
             WHERE s.pipeline_id = ?1 ORDER BY s.step"
        ))?;
        type Head = (
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let rows = stmt.query_map(params![pipeline], |r| {
            let head: Head = (
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            );
            // The run's columns are offset by the step's; read them only when joined.
            let run = match &head.7 {
                Some(_) => Some(super::row_to_run_offset(r, 8)?),
                None => None,
            };
            Ok((head, run))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let ((step, state, reused_from, fp, key, decision, reason, _), run) = row?;
            out.push(StepRecord {
                step,
                row: StepRow::parse(&state),
                run: run.transpose()?,
                reused_from,
                fingerprint: fp.map(|s| serde_json::from_str(&s)).transpose()?,
                key,
                decision: decision.map(|s| serde_json::from_str(&s)).transpose()?,
                reason,
            });
        }
        Ok(out)
    }

    /// Stores step `step`'s run (Queued, a child of the pipeline) and the decision to run
    /// it, in one transaction: a step is started at most once, even across restarts. A
    /// run id in use is [`Error::RunExists`].
    pub fn start_step(
        &self,
        pipeline: &str,
        step: &str,
        run_id: &str,
        submission: &JobSubmission,
        nonce: &str,
        decided: &StepDecision<'_>,
    ) -> Result<StepStart> {
        self.decide_step(
            pipeline,
            step,
            decided,
            StepRow::Started,
            Some(run_id),
            None,
            |tx| insert_run_row(tx, run_id, submission, nonce, "command", Some(pipeline)),
        )
    }

    /// [`Store::start_step`] for a sweep step: the sweep's parent run (kind `sweep`, a child
    /// of the pipeline) and its definition and seed, with the step's row, in one
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn start_sweep_step(
        &self,
        pipeline: &str,
        step: &str,
        run_id: &str,
        trial: &JobSubmission,
        spec: &serde_json::Value,
        seed: u64,
        decided: &StepDecision<'_>,
    ) -> Result<StepStart> {
        self.decide_step(
            pipeline,
            step,
            decided,
            StepRow::Started,
            Some(run_id),
            None,
            |tx| super::sweeps::insert_sweep_rows(tx, run_id, trial, spec, seed, Some(pipeline)),
        )
    }

    /// Records that a step uses `from_run`'s outputs instead of running.
    pub fn reuse_step(
        &self,
        pipeline: &str,
        step: &str,
        from_run: &str,
        decided: &StepDecision<'_>,
    ) -> Result<StepStart> {
        self.decide_step(
            pipeline,
            step,
            decided,
            StepRow::Reused,
            None,
            Some(from_run),
            |_| Ok(()),
        )
    }

    /// Writes what `also` writes and the step's decision in one transaction, if the step is
    /// still waiting and its pipeline not stopping.
    #[allow(clippy::too_many_arguments)]
    fn decide_step(
        &self,
        pipeline: &str,
        step: &str,
        decided: &StepDecision<'_>,
        row: StepRow,
        run_id: Option<&str>,
        reused_from: Option<&str>,
        also: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<()>,
    ) -> Result<StepStart> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if let Some(not) = waiting_check(&tx, pipeline, step)? {
            return Ok(not);
        }
        also(&tx)?;
        set_step(&tx, pipeline, step, row, run_id, reused_from, decided)?;
        tx.commit()?;
        drop(conn);
        self.changed();
        Ok(StepStart::Done)
    }

    /// Records that a waiting step will not run, and why.
    pub fn skip_step(&self, pipeline: &str, step: &str, reason: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE pipeline_steps SET state = 'skipped', reason = ?3
             WHERE pipeline_id = ?1 AND step = ?2 AND state = 'waiting'",
            params![pipeline, step, reason],
        )?;
        self.changed();
        Ok(())
    }

    pub fn set_pipeline_note(&self, pipeline: &str, note: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE pipelines SET note = ?2 WHERE run_id = ?1",
            params![pipeline, note],
        )?;
        self.changed();
        Ok(())
    }

    /// Step runs that Completed with fingerprint key `key`, newest first (at most 20):
    /// the outputs of any whose folder remains can stand for a step with the same key.
    pub fn completed_steps_with_key(&self, key: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.run_id FROM pipeline_steps s JOIN runs r ON r.id = s.run_id
             WHERE s.key = ?1 AND s.state = 'started' AND r.status = 'Completed'
             ORDER BY r.seq DESC LIMIT 20",
        )?;
        let rows = stmt
            .query_map(params![key], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(rows)
    }

    /// The latest earlier decision for step `step` of a pipeline in `experiment` (other
    /// than `pipeline`), with the run it ran or reused and its fingerprint: what a
    /// rerun's reason is told against.
    pub fn latest_step_fingerprint(
        &self,
        experiment: &str,
        step: &str,
        pipeline: Option<&str>,
    ) -> Result<Option<(String, serde_json::Value)>> {
        let row: Option<(String, String)> = self
            .conn()
            .query_row(
                "SELECT COALESCE(s.run_id, s.reused_from), s.fingerprint
                 FROM pipeline_steps s JOIN runs p ON p.id = s.pipeline_id
                 WHERE p.experiment = ?1 AND s.step = ?2 AND s.fingerprint IS NOT NULL
                   AND (?3 IS NULL OR s.pipeline_id != ?3)
                 ORDER BY p.seq DESC LIMIT 1",
                params![experiment, step, pipeline],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(run, fp)| Ok((run, serde_json::from_str(&fp)?)))
            .transpose()
    }

    /// Pipelines whose parent run has not ended.
    pub fn live_pipelines(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id FROM runs WHERE kind = 'pipeline'
             AND status NOT IN ('Completed','Failed','Canceled') ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// Why a step cannot be decided now, if it cannot: it is not waiting, or its pipeline
/// is stopping.
fn waiting_check(
    tx: &rusqlite::Transaction<'_>,
    pipeline: &str,
    step: &str,
) -> Result<Option<StepStart>> {
    let (status, cancel): (String, bool) = tx.query_row(
        "SELECT status, cancel_requested FROM runs WHERE id = ?1",
        params![pipeline],
        |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)),
    )?;
    if cancel || matches!(status.as_str(), "Completed" | "Failed" | "Canceled") {
        return Ok(Some(StepStart::PipelineStopping));
    }
    let state: Option<String> = tx
        .query_row(
            "SELECT state FROM pipeline_steps WHERE pipeline_id = ?1 AND step = ?2",
            params![pipeline, step],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match state.as_deref() {
        Some("waiting") => None,
        _ => Some(StepStart::Taken),
    })
}

fn set_step(
    tx: &rusqlite::Transaction<'_>,
    pipeline: &str,
    step: &str,
    row: StepRow,
    run_id: Option<&str>,
    reused_from: Option<&str>,
    d: &StepDecision<'_>,
) -> Result<()> {
    tx.execute(
        "UPDATE pipeline_steps SET state = ?3, run_id = ?4, reused_from = ?5, fingerprint = ?6,
            key = ?7, decision = ?8, reason = ?9
         WHERE pipeline_id = ?1 AND step = ?2",
        params![
            pipeline,
            step,
            row.as_str(),
            run_id,
            reused_from,
            serde_json::to_string(d.fingerprint)?,
            d.key,
            serde_json::to_string(d.decision)?,
            d.reason,
        ],
    )?;
    Ok(())
}

//! Sweeps: the parent run, its stored definition and seed, and its trials bound to their
//! index. Only the sweep controller writes here.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Error, RUN_COLUMNS, Result, RunRecord, Store, insert_run_row, row_to_run};
use crate::run::model::JobSubmission;

/// A sweep as stored: its parent run and what the controller needs to go on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRecord {
    pub run: RunRecord,
    /// The sweep's definition (`sweep::SweepSubmission` as JSON), fixed at creation.
    pub spec: serde_json::Value,
    /// The sampler's seed: the file's, or one drawn at creation and kept, so a resumed
    /// controller proposes what the first one would have.
    pub seed: u64,
    pub best_trial: Option<String>,
    /// Why the sweep ended (limit reached, timeout, ...).
    pub note: Option<String>,
    /// Why the sweep stopped proposing before its limits (its first trials all failed, the
    /// sampler failed), kept so the decision survives the live trials ending or a restart.
    #[serde(default)]
    pub halt: Option<String>,
}

/// What became of a trial the controller asked to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialInsert {
    Inserted,
    /// That index exists already: a proposal is made at most once.
    IndexTaken,
    /// The sweep was asked to cancel (or has ended) meanwhile: nothing is started.
    SweepStopping,
}

/// One trial: its index in the sweep, its run, the parameters it was given, and the
/// early-termination rule that stopped it, if one did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialRecord {
    pub index: u64,
    pub run: RunRecord,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub stopped_by: Option<String>,
}

impl Store {
    /// Stores a new sweep: its parent run (Queued, kind `sweep`) and definition.
    pub fn insert_sweep(
        &self,
        id: &str,
        parent: &JobSubmission,
        spec: &serde_json::Value,
        seed: u64,
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        insert_sweep_rows(&tx, id, parent, spec, seed, None)?;
        tx.commit()?;
        drop(conn);
        self.changed();
        Ok(())
    }

    /// Stores trial `index` of `sweep` and its Queued run in one transaction, unless the
    /// index is taken or the sweep is stopping. A run id in use is [`Error::RunExists`].
    pub fn insert_trial(
        &self,
        sweep: &str,
        index: u64,
        run_id: &str,
        submission: &JobSubmission,
        nonce: &str,
        params_json: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<TrialInsert> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let (status, cancel): (String, bool) = tx.query_row(
            "SELECT status, cancel_requested FROM runs WHERE id = ?1",
            params![sweep],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)),
        )?;
        if cancel || matches!(status.as_str(), "Completed" | "Failed" | "Canceled") {
            return Ok(TrialInsert::SweepStopping);
        }
        let taken: bool = tx
            .query_row(
                "SELECT 1 FROM sweep_trials WHERE sweep_id = ?1 AND idx = ?2",
                params![sweep, index as i64],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if taken {
            return Ok(TrialInsert::IndexTaken);
        }
        insert_run_row(&tx, run_id, submission, nonce, "command", Some(sweep))?;
        tx.execute(
            "INSERT INTO sweep_trials (sweep_id, idx, run_id, params) VALUES (?1, ?2, ?3, ?4)",
            params![
                sweep,
                index as i64,
                run_id,
                serde_json::to_string(params_json)?
            ],
        )?;
        tx.commit()?;
        drop(conn);
        self.changed();
        Ok(TrialInsert::Inserted)
    }

    pub fn sweep(&self, id: &str) -> Result<SweepRecord> {
        let run = self.run(id)?;
        let conn = self.conn();
        type Row = (String, i64, Option<String>, Option<String>, Option<String>);
        let (spec, seed, best_trial, note, halt): Row = conn
            .query_row(
                "SELECT spec, seed, best_trial, note, halt FROM sweeps WHERE run_id = ?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?
            .ok_or_else(|| Error::NoRun(id.to_string()))?;
        Ok(SweepRecord {
            run,
            spec: serde_json::from_str(&spec)?,
            seed: seed as u64,
            best_trial,
            note,
            halt,
        })
    }

    /// A sweep's trials in index order.
    pub fn trials(&self, sweep: &str) -> Result<Vec<TrialRecord>> {
        let conn = self.conn();
        let cols = RUN_COLUMNS
            .split(',')
            .map(|c| format!("r.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn.prepare(&format!(
            "SELECT {cols}, t.idx, t.params, t.stopped_by FROM sweep_trials t
             JOIN runs r ON r.id = t.run_id WHERE t.sweep_id = ?1 ORDER BY t.idx"
        ))?;
        let n = RUN_COLUMNS.split(',').count();
        let rows = stmt.query_map(params![sweep], |r| {
            let run = row_to_run(r)?;
            let index: i64 = r.get(n)?;
            let p: String = r.get(n + 1)?;
            let stopped_by: Option<String> = r.get(n + 2)?;
            Ok((run, index, p, stopped_by))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (run, index, p, stopped_by) = row?;
            out.push(TrialRecord {
                index: index as u64,
                run: run?,
                params: serde_json::from_str(&p)?,
                stopped_by,
            });
        }
        Ok(out)
    }

    /// Records why a trial is being stopped, before it is canceled; only while its run has
    /// not begun to end (a trial that is already finishing is not "stopped early"). True
    /// when recorded.
    pub fn set_trial_stopped(&self, sweep: &str, index: u64, reason: &str) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE sweep_trials SET stopped_by = ?3
             WHERE sweep_id = ?1 AND idx = ?2 AND stopped_by IS NULL AND run_id IN
               (SELECT id FROM runs WHERE status IN ('Queued','Preparing','Starting','Running'))",
            params![sweep, index as i64, reason],
        )?;
        self.changed();
        Ok(n == 1)
    }

    /// Records that a sweep stops proposing, and why (kept until it ends).
    pub fn set_sweep_halt(&self, sweep: &str, halt: &str) -> Result<()> {
        self.conn().execute(
            "UPDATE sweeps SET halt = COALESCE(halt, ?2) WHERE run_id = ?1",
            params![sweep, halt],
        )?;
        self.changed();
        Ok(())
    }

    /// Records the best trial so far and, once the sweep ends, why.
    pub fn set_sweep_outcome(
        &self,
        sweep: &str,
        best_trial: Option<&str>,
        note: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE sweeps SET best_trial = ?2, note = COALESCE(?3, note) WHERE run_id = ?1",
            params![sweep, best_trial, note],
        )?;
        self.changed();
        Ok(())
    }

    /// Sweeps whose parent run has not ended.
    pub fn live_sweeps(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id FROM runs WHERE kind = 'sweep'
             AND status NOT IN ('Completed','Failed','Canceled') ORDER BY seq",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A sweep's parent run (Queued, kind `sweep`, a child of `parent_run` if it is a pipeline's
/// step) and its definition and seed, within `tx`.
pub(super) fn insert_sweep_rows(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    parent: &JobSubmission,
    spec: &serde_json::Value,
    seed: u64,
    parent_run: Option<&str>,
) -> Result<()> {
    insert_run_row(tx, id, parent, "", "sweep", parent_run)?;
    tx.execute(
        "INSERT INTO sweeps (run_id, spec, seed) VALUES (?1, ?2, ?3)",
        params![id, serde_json::to_string(spec)?, seed as i64],
    )?;
    Ok(())
}

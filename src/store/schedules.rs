//! Schedules and their fires. A fire row is written, with the run id it will submit and
//! the schedule's next occurrence, in one transaction before the job is submitted; the
//! schedule controller is the only writer.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Error, Result, Store, now};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub name: String,
    /// `schedule::ScheduleSubmission` as JSON.
    pub spec: serde_json::Value,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    /// The start the trigger counts from (the creation time when the file gave none).
    pub start_at: String,
    /// The occurrence the schedule waits for; `None` once its window has ended.
    pub next_fire: Option<String>,
    /// The last thing worth telling about it (missed fires, a fire that failed).
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireState {
    /// Written, job not yet known to be submitted.
    Firing,
    Submitted,
    Failed,
}

/// Why a fire happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FireCause {
    /// Its occurrence came while the server ran.
    Schedule,
    /// Occurrences passed while no server ran; this one fire stands for them.
    CatchUp,
    /// `tug schedule trigger`.
    Manual,
}

impl FireState {
    fn as_str(self) -> &'static str {
        match self {
            FireState::Firing => "firing",
            FireState::Submitted => "submitted",
            FireState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> FireState {
        match s {
            "submitted" => FireState::Submitted,
            "failed" => FireState::Failed,
            _ => FireState::Firing,
        }
    }
}

impl FireCause {
    fn as_str(self) -> &'static str {
        match self {
            FireCause::Schedule => "schedule",
            FireCause::CatchUp => "catch_up",
            FireCause::Manual => "manual",
        }
    }
    fn parse(s: &str) -> FireCause {
        match s {
            "catch_up" => FireCause::CatchUp,
            "manual" => FireCause::Manual,
            _ => FireCause::Schedule,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FireRecord {
    pub seq: i64,
    pub schedule: String,
    pub occurrence: String,
    pub fired_at: String,
    pub run_id: String,
    pub state: FireState,
    /// Occurrences this fire stood for beyond its own (passed while no server ran).
    pub missed: usize,
    pub cause: FireCause,
    pub error: Option<String>,
}

/// A fire about to be written.
pub struct NewFire<'a> {
    pub occurrence: &'a str,
    pub run_id: &'a str,
    pub missed: usize,
    pub cause: FireCause,
    /// The schedule's next occurrence after this fire; `None` keeps it (manual fires).
    pub next_fire: Option<Option<&'a str>>,
    pub note: Option<&'a str>,
}

const SCHEDULE_COLUMNS: &str =
    "name, spec, enabled, created_at, updated_at, start_at, next_fire, note";

fn row_to_schedule(r: &rusqlite::Row<'_>) -> rusqlite::Result<(ScheduleRecord, String)> {
    Ok((
        ScheduleRecord {
            name: r.get(0)?,
            spec: serde_json::Value::Null,
            enabled: r.get::<_, i64>(2)? != 0,
            created_at: r.get(3)?,
            updated_at: r.get(4)?,
            start_at: r.get(5)?,
            next_fire: r.get(6)?,
            note: r.get(7)?,
        },
        r.get(1)?,
    ))
}

fn finish(row: (ScheduleRecord, String)) -> Result<ScheduleRecord> {
    let (mut rec, spec) = row;
    rec.spec = serde_json::from_str(&spec)?;
    Ok(rec)
}

fn row_to_fire(r: &rusqlite::Row<'_>) -> rusqlite::Result<FireRecord> {
    Ok(FireRecord {
        seq: r.get(0)?,
        schedule: r.get(1)?,
        occurrence: r.get(2)?,
        fired_at: r.get(3)?,
        run_id: r.get(4)?,
        state: FireState::parse(&r.get::<_, String>(5)?),
        missed: r.get::<_, i64>(6)? as usize,
        cause: FireCause::parse(&r.get::<_, String>(7)?),
        error: r.get(8)?,
    })
}

const FIRE_COLUMNS: &str =
    "seq, schedule, occurrence, fired_at, run_id, state, missed, cause, error";

impl Store {
    /// Creates the schedule, or replaces its definition (keeping its fires); true when it
    /// was created.
    pub fn put_schedule(
        &self,
        name: &str,
        spec: &serde_json::Value,
        start_at: &str,
        next_fire: Option<&str>,
    ) -> Result<bool> {
        let at = now();
        let conn = self.conn();
        let existed: bool = conn
            .query_row(
                "SELECT 1 FROM schedules WHERE name = ?1",
                params![name],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        conn.execute(
            "INSERT INTO schedules (name, spec, enabled, created_at, updated_at, start_at, next_fire, note)
             VALUES (?1, ?2, 1, ?3, ?3, ?4, ?5, NULL)
             ON CONFLICT (name) DO UPDATE SET spec = ?2, enabled = 1, updated_at = ?3,
                start_at = ?4, next_fire = ?5, note = NULL",
            params![name, serde_json::to_string(spec)?, at, start_at, next_fire],
        )?;
        drop(conn);
        self.changed();
        Ok(!existed)
    }

    pub fn schedule(&self, name: &str) -> Result<ScheduleRecord> {
        let row = self
            .conn()
            .query_row(
                &format!("SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE name = ?1"),
                params![name],
                row_to_schedule,
            )
            .optional()?
            .ok_or_else(|| Error::NoSchedule(name.to_string()))?;
        finish(row)
    }

    pub fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {SCHEDULE_COLUMNS} FROM schedules ORDER BY name"
        ))?;
        let rows = stmt
            .query_map([], row_to_schedule)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish).collect()
    }

    /// Turns the schedule on (waiting for `next_fire`) or off.
    pub fn set_schedule_enabled(
        &self,
        name: &str,
        enabled: bool,
        next_fire: Option<&str>,
    ) -> Result<ScheduleRecord> {
        let n = self.conn().execute(
            "UPDATE schedules SET enabled = ?2, next_fire = ?3, updated_at = ?4, note = NULL
             WHERE name = ?1",
            params![name, enabled as i64, next_fire, now()],
        )?;
        if n == 0 {
            return Err(Error::NoSchedule(name.to_string()));
        }
        self.changed();
        self.schedule(name)
    }

    /// Deletes the schedule and its fire history (the runs it made stay).
    pub fn delete_schedule(&self, name: &str) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let n = tx.execute("DELETE FROM schedules WHERE name = ?1", params![name])?;
        if n == 0 {
            return Err(Error::NoSchedule(name.to_string()));
        }
        tx.execute(
            "DELETE FROM schedule_fires WHERE schedule = ?1",
            params![name],
        )?;
        tx.commit()?;
        drop(conn);
        self.changed();
        Ok(())
    }

    /// Writes a fire (state `firing`) and, in the same transaction, the schedule's next
    /// occurrence: a restart sees either neither or both.
    pub fn begin_fire(&self, schedule: &str, fire: &NewFire<'_>) -> Result<FireRecord> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let at = now();
        tx.execute(
            "INSERT INTO schedule_fires (schedule, occurrence, fired_at, run_id, state, missed, cause)
             VALUES (?1, ?2, ?3, ?4, 'firing', ?5, ?6)",
            params![
                schedule,
                fire.occurrence,
                at,
                fire.run_id,
                fire.missed as i64,
                fire.cause.as_str()
            ],
        )?;
        let seq = tx.last_insert_rowid();
        if let Some(next) = fire.next_fire {
            tx.execute(
                "UPDATE schedules SET next_fire = ?2, note = ?3 WHERE name = ?1",
                params![schedule, next, fire.note],
            )?;
        } else if fire.note.is_some() {
            tx.execute(
                "UPDATE schedules SET note = ?2 WHERE name = ?1",
                params![schedule, fire.note],
            )?;
        }
        let rec = tx.query_row(
            &format!("SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE seq = ?1"),
            params![seq],
            row_to_fire,
        )?;
        tx.commit()?;
        drop(conn);
        self.changed();
        Ok(rec)
    }

    /// Records how submitting fire `seq` went.
    pub fn end_fire(&self, seq: i64, state: FireState, error: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE schedule_fires SET state = ?2, error = ?3 WHERE seq = ?1",
            params![seq, state.as_str(), error],
        )?;
        self.changed();
        Ok(())
    }

    /// The newest `limit` fires of a schedule, newest first.
    pub fn schedule_fires(&self, schedule: &str, limit: usize) -> Result<Vec<FireRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE schedule = ?1 ORDER BY seq DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![schedule, limit as i64], row_to_fire)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Fires written but not known to be submitted (the server died in between).
    pub fn unfinished_fires(&self) -> Result<Vec<FireRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT {FIRE_COLUMNS} FROM schedule_fires WHERE state = 'firing' ORDER BY seq"
        ))?;
        let rows = stmt
            .query_map([], row_to_fire)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    /// Whether a run with this id exists.
    pub fn run_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn()
            .query_row("SELECT 1 FROM runs WHERE id = ?1", params![id], |_| Ok(()))
            .optional()?
            .is_some())
    }
}

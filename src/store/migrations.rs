//! Versioned schema migrations, applied in order and recorded in `PRAGMA user_version`.
//!
//! Append new steps; never edit a released one.

use rusqlite::Connection;

use super::Error;

const STEPS: &[&str] = &[
    // 1: runs, status history, metrics, environments.
    "CREATE TABLE workspace (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        experiment TEXT NOT NULL,
        display_name TEXT,
        status TEXT NOT NULL,
        compute TEXT NOT NULL,
        submission TEXT NOT NULL,
        env_hash TEXT,
        image TEXT,
        container TEXT,
        exit_code INTEGER,
        error TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        ended_at TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        log_cursor TEXT,
        log_bytes INTEGER NOT NULL DEFAULT 0,
        log_nonce TEXT NOT NULL,
        outcome TEXT,
        params TEXT NOT NULL DEFAULT '{}',
        tags TEXT NOT NULL DEFAULT '{}'
     );
     CREATE INDEX runs_experiment ON runs (experiment, seq);
     CREATE TABLE run_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id),
        status TEXT NOT NULL,
        at TEXT NOT NULL,
        detail TEXT
     );
     CREATE INDEX run_events_run ON run_events (run_id, id);
     CREATE TABLE metrics (
        run_id TEXT NOT NULL REFERENCES runs (id),
        name TEXT NOT NULL,
        step INTEGER NOT NULL,
        value REAL,
        ts REAL NOT NULL
     );
     CREATE INDEX metrics_run_name ON metrics (run_id, name);
     CREATE TABLE environments (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        description TEXT,
        spec TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (name, version)
     );",
    // 2: model registry, online endpoints and their deployments.
    "CREATE TABLE models (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        record TEXT NOT NULL,
        archived INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        UNIQUE (name, version)
     );
     CREATE TABLE endpoints (
        name TEXT PRIMARY KEY,
        record TEXT NOT NULL,
        created_at TEXT NOT NULL
     );
     CREATE TABLE deployments (
        endpoint TEXT NOT NULL REFERENCES endpoints (name),
        name TEXT NOT NULL,
        record TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (endpoint, name)
     );",
    // 3: sweeps. A sweep is a parent run (kind 'sweep'); its trials are child runs, each
    // bound to its index in the sweep so that a restarted controller can never propose
    // the same trial twice.
    "ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'command';
     ALTER TABLE runs ADD COLUMN parent_id TEXT REFERENCES runs (id);
     CREATE INDEX runs_parent ON runs (parent_id, seq);
     CREATE TABLE sweeps (
        run_id TEXT PRIMARY KEY REFERENCES runs (id),
        spec TEXT NOT NULL,
        seed INTEGER NOT NULL,
        best_trial TEXT,
        note TEXT,
        halt TEXT
     );
     CREATE TABLE sweep_trials (
        sweep_id TEXT NOT NULL REFERENCES runs (id),
        idx INTEGER NOT NULL,
        run_id TEXT NOT NULL UNIQUE REFERENCES runs (id),
        params TEXT NOT NULL,
        stopped_by TEXT,
        PRIMARY KEY (sweep_id, idx)
     );",
    // 4: MLflow tracking. Experiments get the integer ids MLflow clients expect (0 is
    // MLflow's `Default`); runs carry what only MLflow records (datasets, model outputs);
    // MLflow 3's logged models have their own table.
    "CREATE TABLE experiments (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}'
     );
     INSERT INTO experiments (id, name, created_at)
        VALUES (0, 'Default', strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
     INSERT OR IGNORE INTO experiments (name, created_at)
        SELECT experiment, MIN(created_at) FROM runs GROUP BY experiment ORDER BY MIN(seq);
     ALTER TABLE runs ADD COLUMN tracking TEXT NOT NULL DEFAULT '{}';
     CREATE TABLE logged_models (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        experiment_id INTEGER NOT NULL REFERENCES experiments (id),
        run_id TEXT REFERENCES runs (id),
        record TEXT NOT NULL
     );",
    // 5: pipelines. A pipeline is a parent run (kind 'pipeline'); each step has one row
    // from the start, so that a step is decided (started, reused or skipped) exactly once
    // whatever restarts come between. `key` is the step's fingerprint hash, looked up to
    // reuse a completed run with the same one.
    "CREATE TABLE pipelines (
        run_id TEXT PRIMARY KEY REFERENCES runs (id),
        spec TEXT NOT NULL,
        note TEXT
     );
     CREATE TABLE pipeline_steps (
        pipeline_id TEXT NOT NULL REFERENCES runs (id),
        step TEXT NOT NULL,
        state TEXT NOT NULL,
        run_id TEXT UNIQUE REFERENCES runs (id),
        reused_from TEXT REFERENCES runs (id),
        fingerprint TEXT,
        key TEXT,
        decision TEXT,
        reason TEXT,
        PRIMARY KEY (pipeline_id, step)
     );
     CREATE INDEX pipeline_steps_key ON pipeline_steps (key);
     CREATE INDEX pipeline_steps_step ON pipeline_steps (step);",
    // 6: schedules. `next_fire` is the occurrence the schedule waits for (NULL once its
    // window has ended); a fire is written with its run id before the job is submitted,
    // so a server that dies in between submits that same run on restart, never a second.
    "CREATE TABLE schedules (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        start_at TEXT NOT NULL,
        next_fire TEXT,
        note TEXT
     );
     CREATE TABLE schedule_fires (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule TEXT NOT NULL,
        occurrence TEXT NOT NULL,
        fired_at TEXT NOT NULL,
        run_id TEXT NOT NULL,
        state TEXT NOT NULL,
        missed INTEGER NOT NULL DEFAULT 0,
        cause TEXT NOT NULL,
        error TEXT
     );
     CREATE INDEX schedule_fires_schedule ON schedule_fires (schedule, seq);",
    // 7: registered command components. `record` holds the component's file text and the
    // snapshot of the files it names (code, additional includes, conda file).
    "CREATE TABLE components (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        record TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (name, version)
     );",
    // 8: data assets (`tug data create`): each version's type and where its data is (a
    // copy in the workspace datastore for local data, else the URI it names).
    "CREATE TABLE data_assets (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        record TEXT NOT NULL,
        created_at TEXT NOT NULL,
        UNIQUE (name, version)
     );",
];

/// Brings the schema up to date; refuses a store written by a newer tug.
pub fn migrate(conn: &Connection) -> Result<(), Error> {
    let found: usize = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))? as usize;
    if found > STEPS.len() {
        return Err(Error::TooNew {
            found,
            known: STEPS.len(),
        });
    }
    for (i, sql) in STEPS.iter().enumerate().skip(found) {
        let version = i + 1;
        let run = || -> rusqlite::Result<()> {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version as i64)?;
            tx.commit()
        };
        run().map_err(|source| Error::Migrate { version, source })?;
    }
    Ok(())
}

#[cfg(test)]
pub const LATEST: usize = STEPS.len();

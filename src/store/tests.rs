//! Store tests against in-memory and on-disk SQLite.

use super::*;
use crate::run::model::{ResolvedEnvironment, Resources};

/// A minimal command job, for tests elsewhere in the crate too.
pub(crate) fn submission() -> JobSubmission {
    JobSubmission {
        name: None,
        display_name: Some("d".into()),
        experiment_name: "exp".into(),
        description: None,
        tags: BTreeMap::new(),
        command: "echo hi".into(),
        code_snapshot: None,
        environment: ResolvedEnvironment::Image {
            image: "tug/python:3.11-minimal".into(),
            conda_file: None,
            pip_requirements: vec![],
        },
        environment_variables: BTreeMap::new(),
        compute: "local".into(),
        inputs: BTreeMap::new(),
        outputs: BTreeMap::new(),
        resources: Resources::default(),
        timeout_seconds: None,
        source: None,
    }
}

#[test]
fn migrations_reach_latest_and_are_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.db");
    Store::open(&path).unwrap();
    Store::open(&path).unwrap();
    let conn = Connection::open(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v as usize, migrations::LATEST);
}

#[test]
fn refuses_newer_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.db");
    Store::open(&path).unwrap();
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    assert!(matches!(Store::open(&path), Err(Error::TooNew { .. })));
}

#[test]
fn run_lifecycle_is_recorded_and_enforced() {
    let s = Store::in_memory().unwrap();
    s.insert_run("r1", &submission(), "n").unwrap();
    assert!(matches!(
        s.insert_run("r1", &submission(), "n"),
        Err(Error::RunExists(_))
    ));
    s.transition("r1", RunStatus::Preparing, Transition::default())
        .unwrap();
    s.transition("r1", RunStatus::Running, Transition::default())
        .unwrap();
    s.transition(
        "r1",
        RunStatus::Failed,
        Transition {
            exit_code: Some(2),
            error: Some("boom".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let r = s.run("r1").unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.exit_code, Some(2));
    assert!(r.started_at.is_some() && r.ended_at.is_some());
    assert!(matches!(
        s.transition("r1", RunStatus::Completed, Transition::default()),
        Err(Error::Transition { .. })
    ));
    let ev: Vec<String> = s.events("r1").unwrap().into_iter().map(|e| e.0).collect();
    assert_eq!(ev, ["Queued", "Preparing", "Running", "Failed"]);
    assert!(s.live_runs().unwrap().is_empty());
}

#[test]
fn metrics_series_steps_and_last_values() {
    let s = Store::in_memory().unwrap();
    s.insert_run("r1", &submission(), "n").unwrap();
    let mut params = BTreeMap::new();
    params.insert("C".to_string(), "1.0".to_string());
    s.record_log_batch(
        "r1",
        &[
            ("acc".into(), None, 0.5, 1.0),
            ("acc".into(), None, 0.7, 2.0),
            ("loss".into(), Some(10), 0.1, 2.0),
        ],
        &params,
        &BTreeMap::new(),
        Some(("2026-01-01T00:00:00.000000001Z", 42)),
    )
    .unwrap();
    let series = s.metrics("r1", Some("acc"), 0).unwrap();
    let steps: Vec<i64> = series.iter().map(|(_, p)| p.step).collect();
    assert_eq!(steps, [0, 1]);
    let last = s.last_metrics("r1").unwrap();
    assert_eq!(last["acc"], 0.7);
    assert_eq!(last["loss"], 0.1);
    let r = s.run("r1").unwrap();
    assert_eq!(r.params["C"], "1.0");
    assert_eq!(
        r.log_cursor.as_deref(),
        Some("2026-01-01T00:00:00.000000001Z")
    );
    assert_eq!(r.log_bytes, 42);
    let after = series[0].0;
    assert_eq!(s.metrics("r1", Some("acc"), after).unwrap().len(), 1);
}

#[test]
fn environments_versioned_and_latest() {
    let s = Store::in_memory().unwrap();
    let mk = |v: &str, image: &str| EnvironmentRecord {
        name: "sk".into(),
        version: v.into(),
        description: None,
        environment: ResolvedEnvironment::Image {
            image: image.into(),
            conda_file: None,
            pip_requirements: vec![],
        },
        created_at: now(),
    };
    s.put_environment(&mk("1", "a")).unwrap();
    s.put_environment(&mk("1", "a")).unwrap();
    assert!(matches!(
        s.put_environment(&mk("1", "b")),
        Err(Error::EnvironmentConflict { .. })
    ));
    s.put_environment(&mk("2", "b")).unwrap();
    assert_eq!(s.environment("sk", None).unwrap().unwrap().version, "2");
    assert_eq!(
        s.environment("sk", Some("1")).unwrap().unwrap().version,
        "1"
    );
    assert!(s.environment("nope", None).unwrap().is_none());
    assert_eq!(s.next_environment_version("sk").unwrap(), "3");
}

#[test]
fn a_sweep_index_is_taken_once_and_trials_come_back_in_order() {
    let s = Store::in_memory().unwrap();
    let spec = serde_json::json!({"any": "definition"});
    s.insert_sweep("sw", &submission(), &spec, 42).unwrap();
    let params = |x: i64| {
        let mut m = serde_json::Map::new();
        m.insert("x".into(), serde_json::json!(x));
        m
    };
    let insert =
        |i: u64, id: &str| s.insert_trial("sw", i, id, &submission(), "n", &params(i as i64));
    assert_eq!(insert(1, "sw_1").unwrap(), TrialInsert::Inserted);
    assert_eq!(insert(0, "sw_0").unwrap(), TrialInsert::Inserted);
    // The same index again (a restarted controller re-proposing) stores nothing.
    assert_eq!(insert(1, "sw_1b").unwrap(), TrialInsert::IndexTaken);
    assert!(matches!(s.run("sw_1b"), Err(Error::NoRun(_))));
    // A taken run id fails the whole transaction: no trial row without its run.
    assert!(matches!(insert(2, "sw_0"), Err(Error::RunExists(_))));
    let trials = s.trials("sw").unwrap();
    assert_eq!(
        trials.iter().map(|t| t.index).collect::<Vec<_>>(),
        [0, 1],
        "index order, and index 2 was rolled back"
    );
    assert_eq!(trials[1].params["x"], 1);
    assert_eq!(trials[0].run.parent_id.as_deref(), Some("sw"));

    let rec = s.sweep("sw").unwrap();
    assert_eq!(rec.seed, 42);
    assert_eq!(rec.spec, spec);
    assert_eq!(rec.run.kind, "sweep");
    // The parent is resumed by the sweep controller, its trials by the runner.
    assert_eq!(s.live_sweeps().unwrap(), ["sw"]);
    let live: Vec<String> = s.live_runs().unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(live, ["sw_1", "sw_0"]);
    let children: Vec<String> = s
        .runs(None, Some("sw"), 10)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(children, ["sw_0", "sw_1"], "newest first");

    assert!(s.set_trial_stopped("sw", 0, "bandit: ...").unwrap());
    assert!(
        !s.set_trial_stopped("sw", 0, "again").unwrap(),
        "the first reason stays"
    );
    s.transition("sw_1", RunStatus::Completed, Transition::default())
        .unwrap();
    assert!(
        !s.set_trial_stopped("sw", 1, "late").unwrap(),
        "an ended trial is not stopped"
    );
    s.set_sweep_halt("sw", "failing").unwrap();
    s.set_sweep_halt("sw", "other").unwrap();
    assert_eq!(s.sweep("sw").unwrap().halt.as_deref(), Some("failing"));
    s.set_sweep_outcome("sw", Some("sw_1"), Some("done"))
        .unwrap();
    s.set_sweep_outcome("sw", Some("sw_1"), None).unwrap();
    let rec = s.sweep("sw").unwrap();
    assert_eq!(rec.best_trial.as_deref(), Some("sw_1"));
    assert_eq!(
        rec.note.as_deref(),
        Some("done"),
        "a later None keeps the note"
    );
    assert_eq!(
        s.trials("sw").unwrap()[0].stopped_by.as_deref(),
        Some("bandit: ...")
    );
    // A sweep asked to cancel starts nothing more.
    s.request_cancel("sw").unwrap();
    assert_eq!(insert(5, "sw_5").unwrap(), TrialInsert::SweepStopping);
    assert!(matches!(s.run("sw_5"), Err(Error::NoRun(_))));
}

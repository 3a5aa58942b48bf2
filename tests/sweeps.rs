//! Sweeps on the real Docker engine with small budgets: grid coverage, the concurrency
//! limit, early termination stopping exactly the trial its rule names, the best trial,
//! cancel, and a server killed mid-sweep.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Ws;
use common::sweep::{TRIAL, bandit_sweep, sweep_id, sweep_yaml, trials};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(240);

fn time(s: &Value) -> Option<std::time::SystemTime> {
    humantime::parse_rfc3339_weak(s.as_str()?).ok()
}

/// The most runs that were live (started, not ended) at one instant.
fn max_overlap(runs: &[Value]) -> usize {
    let mut edges: Vec<(std::time::SystemTime, i32)> = Vec::new();
    for r in runs {
        if let (Some(a), Some(b)) = (time(&r["started_at"]), time(&r["ended_at"])) {
            edges.push((a, 1));
            edges.push((b, -1));
        }
    }
    // Ends sort before starts at the same instant.
    edges.sort();
    let (mut live, mut most) = (0, 0);
    for (_, d) in edges {
        live += d;
        most = most.max(live);
    }
    most as usize
}

#[test]
fn grid_covers_the_product_within_the_concurrency_limit_and_ranks_the_best_first() {
    let ws = Ws::new();
    ws.write("src/trial.py", TRIAL);
    let id = ws.submit(
        "sweep.yml",
        &sweep_yaml(
            "--b ${{search_space.b}} --pause 0.5",
            "sampling_algorithm: grid\n\
             search_space:\n  a:\n    type: choice\n    values: [1, 2, 3]\n  b:\n    type: choice\n    values: [x, y]\n\
             limits:\n  max_total_trials: 10\n  max_concurrent_trials: 2\n",
        ),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    let ts = trials(&v);
    assert_eq!(
        ts.len(),
        6,
        "a 3x2 grid is 6 trials even with max_total_trials 10"
    );
    let combos: BTreeSet<(String, String)> = ts
        .iter()
        .map(|t| (t["params"]["a"].to_string(), t["params"]["b"].to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = ["1", "2", "3"]
        .iter()
        .flat_map(|a| ["\"x\"", "\"y\""].map(|b| (a.to_string(), b.to_string())))
        .collect();
    assert_eq!(combos, want, "exactly the product, each once");
    // Ranked best first: a=3, b=y scores 31.
    assert_eq!(ts[0]["value"], 31.0);
    assert_eq!(ts[0]["params"]["a"], 3);
    assert_eq!(ts[0]["params"]["b"], "y");
    assert_eq!(v["sweep"]["best_trial"], ts[0]["id"]);
    let values: Vec<f64> = ts.iter().map(|t| t["value"].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    assert!(
        v["sweep"]["note"].as_str().unwrap().contains("covered"),
        "{v:#}"
    );

    // The trials are child runs: listed by parent, each within the limit of 2 at a time.
    let children = ws.json(&["job", "list", "--parent", &id]);
    let children = children.as_array().unwrap();
    assert_eq!(children.len(), 6);
    assert!(children.iter().all(|c| c["parent_id"] == id.as_str()));
    assert!(children.iter().all(|c| c["status"] == "Completed"));
    let overlap = max_overlap(children);
    assert!(
        overlap <= 2,
        "{overlap} trials ran at once with max_concurrent_trials 2"
    );
    // On the parent: the best trial's metrics, and its outputs as the sweep's.
    let listed = ws.json(&["job", "list"]);
    let parent = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == id.as_str())
        .expect("the sweep is listed; its trials are not");
    assert_eq!(parent["metrics"]["score"], 31.0);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed:#}");
    ws.ok(&["job", "download", &id, "-p", "dl"]);
    let best = std::fs::read_to_string(ws.path().join("dl/artifacts/outputs/score.txt")).unwrap();
    assert_eq!(best, "31.0");
    // The human view ranks too.
    let shown = ws.ok(&["job", "show", &id]);
    assert!(shown.contains("RANK"), "{shown}");
    assert!(shown.contains("a=3 b=y"), "{shown}");
}

#[test]
fn bandit_stops_the_trial_its_rule_names_and_only_it() {
    let ws = Ws::new();
    ws.write("src/trial.py", TRIAL);
    // a=0.1 scores 1 at every step and reports 3x slower than the others: by its second
    // report the best (a=1: 10) is there, and 1 * 1.1 < 10 stops it. a=0.95 scores 9.5,
    // within 10 % of 10 (9.5 * 1.1 = 10.45), and runs to the end.
    ws.write("sweep.yml", &bandit_sweep());
    // Followed live: each trial as it ends, the rule that stopped one, the best at the end.
    let streamed = ws.ok(&["job", "create", "-f", "sweep.yml", "--stream"]);
    assert!(streamed.contains("stopped early: bandit"), "{streamed}");
    assert!(streamed.contains("Best trial:"), "{streamed}");
    let id = sweep_id(&streamed);
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    let ts = trials(&v);
    assert_eq!(ts.len(), 3);
    for t in &ts {
        let a = t["params"]["a"].as_f64().unwrap();
        if a == 0.1 {
            assert_eq!(t["status"], "Canceled", "{t:#}");
            let rule = t["stopped_by"].as_str().expect("the rule is recorded");
            assert!(rule.contains("bandit"), "{rule}");
            assert!(t["reports"].as_u64().unwrap() < 8, "stopped early: {t:#}");
        } else {
            assert_eq!(t["status"], "Completed", "{t:#}");
            assert!(t["stopped_by"].is_null(), "{t:#}");
            assert_eq!(t["reports"], 8);
        }
    }
    assert_eq!(ts[0]["params"]["a"], 1);
    let shown = ws.ok(&["job", "show", &id]);
    assert!(shown.contains("bandit"), "{shown}");
}

#[test]
fn canceling_a_sweep_cancels_its_trials_and_leaves_no_container() {
    let ws = Ws::new();
    ws.write("src/trial.py", TRIAL);
    let id = ws.submit(
        "sweep.yml",
        &sweep_yaml(
            "--steps 100 --pause 0.5",
            "sampling_algorithm:\n  type: random\n  seed: 3\n\
             search_space:\n  a:\n    type: uniform\n    min_value: 0\n    max_value: 1\n\
             limits:\n  max_total_trials: 5\n  max_concurrent_trials: 2\n",
        ),
    );
    ws.wait_for(&id, LIMIT, |v| {
        trials(v)
            .iter()
            .filter(|t| t["status"] == "Running")
            .count()
            == 2
    });
    ws.ok(&["job", "cancel", &id]);
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Canceled", "{v:#}");
    let ts = trials(&v);
    assert_eq!(ts.len(), 2, "no trial starts after the cancel: {v:#}");
    assert!(ts.iter().all(|t| t["status"] == "Canceled"), "{v:#}");
    let ws_id = ws.workspace_id().unwrap();
    assert!(ws.containers(&ws_id).is_empty());
}

#[test]
fn a_server_killed_mid_sweep_resumes_with_no_duplicate_and_no_lost_trial() {
    let ws = Ws::new();
    ws.write("src/trial.py", TRIAL);
    let id = ws.submit(
        "sweep.yml",
        &sweep_yaml(
            "--steps 4 --pause 0.5",
            "sampling_algorithm:\n  type: random\n  seed: 11\n\
             search_space:\n  a:\n    type: uniform\n    min_value: 0\n    max_value: 1\n\
             limits:\n  max_total_trials: 6\n  max_concurrent_trials: 2\n",
        ),
    );
    ws.wait_for(&id, LIMIT, |v| {
        let ts = trials(v);
        ts.len() >= 3 && ts.iter().any(|t| t["status"] == "Running")
    });
    let before = trials(&ws.show(&id));
    let pid = ws.server_pid().expect("server running");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(500));
    // The next command starts a new server, which resumes trials and the sweep.
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    let ts = trials(&v);
    assert_eq!(ts.len(), 6, "{v:#}");
    let indices: BTreeSet<u64> = ts.iter().map(|t| t["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, (0..6).collect(), "every index exactly once");
    let ids: BTreeSet<&str> = ts.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 6);
    assert!(ts.iter().all(|t| t["status"] == "Completed"), "{v:#}");
    // Trials proposed before the kill kept their parameters.
    for b in &before {
        let after = ts.iter().find(|t| t["id"] == b["id"]).unwrap();
        assert_eq!(after["params"], b["params"]);
    }
    let a: BTreeSet<String> = ts.iter().map(|t| t["params"]["a"].to_string()).collect();
    assert_eq!(a.len(), 6, "six distinct draws");
    let ws_id = ws.workspace_id().unwrap();
    assert!(ws.containers(&ws_id).is_empty());
}

#[test]
fn a_sweep_whose_first_trials_fail_stops_proposing_and_fails() {
    let ws = Ws::new();
    ws.write("src/trial.py", TRIAL);
    let id = ws.submit(
        "sweep.yml",
        &sweep_yaml(
            "--fail",
            "sampling_algorithm: random\n\
             search_space:\n  a:\n    type: uniform\n    min_value: 0\n    max_value: 1\n\
             limits:\n  max_total_trials: 20\n  max_concurrent_trials: 2\n",
        ),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Failed", "{v:#}");
    let note = v["sweep"]["note"].as_str().unwrap();
    assert!(note.contains("first 3 trials failed"), "{note}");
    let n = trials(&v).len();
    // Three failures decide it; at most the two then live are canceled, nothing after.
    assert!(
        (3..=5).contains(&n),
        "{n} trials for a broken script: {v:#}"
    );
    assert!(
        v["error"].as_str().unwrap().contains("tug job show"),
        "{v:#}"
    );
}

#[test]
fn the_sweep_timeout_cancels_live_trials_and_ends_the_sweep() {
    let ws = Ws::new();
    ws.write("src/trial.py", TRIAL);
    let id = ws.submit(
        "sweep.yml",
        &sweep_yaml(
            "--steps 200 --pause 0.5",
            "sampling_algorithm: random\n\
             search_space:\n  a:\n    type: uniform\n    min_value: 0\n    max_value: 1\n\
             limits:\n  max_total_trials: 6\n  max_concurrent_trials: 2\n  timeout: 5\n",
        ),
    );
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Canceled", "{v:#}");
    let note = v["sweep"]["note"].as_str().unwrap();
    assert!(note.contains("limits.timeout of 5 s"), "{note}");
    let ts = trials(&v);
    assert_eq!(ts.len(), 2, "{v:#}");
    assert!(ts.iter().all(|t| t["status"] == "Canceled"), "{v:#}");
    let ws_id = ws.workspace_id().unwrap();
    assert!(ws.containers(&ws_id).is_empty());
}

#[test]
fn a_sweep_whose_trials_log_no_objective_completes_and_says_its_outputs_were_not_taken() {
    let ws = Ws::new();
    ws.write("src/trial.py", TRIAL);
    let text = sweep_yaml(
        "",
        "sampling_algorithm: grid\nsearch_space:\n  a:\n    type: choice\n    values: [1]\nlimits:\n  max_total_trials: 1\noutputs:\n  model: {type: uri_folder}\n",
    )
    .replace("primary_metric: score", "primary_metric: accuracy");
    let id = ws.submit("sweep.yml", &text);
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    let note = v["sweep"]["note"].as_str().unwrap();
    assert!(
        note.contains("no trial completed with a value of `accuracy`"),
        "{note}"
    );
}

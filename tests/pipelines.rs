//! Pipeline jobs on the real Docker engine: steps run in DAG order with one step's output
//! mounted as the next one's input; an unchanged resubmit runs nothing; an edited file
//! reruns its step and, only if that step's outputs change, the steps after it; a failing
//! step stops or skips per `continue_on_step_failure`; cancel; a server SIGKILLed
//! mid-pipeline resumes with no step run twice. `tug job plan` is checked against what
//! the controller then does.

mod common;

use std::time::Duration;

use common::{MINIMAL, Ws};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(240);

fn step(code: &str, command: &str, inputs: &str, outputs: &str) -> String {
    format!(
        "    code: {code}\n    command: {command}\n    environment:\n      image: {MINIMAL}\n{inputs}{outputs}"
    )
}

/// a → b → c: a writes 1, b adds what b.py says, c copies b's number into its result.
fn chain(ws: &Ws, add: u32, comment: &str) {
    ws.write(
        "a/a.py",
        "import os, sys\nos.makedirs(sys.argv[1], exist_ok=True)\nopen(os.path.join(sys.argv[1], 'n.txt'), 'w').write('1')\n",
    );
    ws.write(
        "b/b.py",
        &format!(
            "import os, sys\n# {comment}\nn = int(open(os.path.join(sys.argv[1], 'n.txt')).read())\nopen(os.path.join(sys.argv[2], 'n.txt'), 'w').write(str(n + {add}))\n"
        ),
    );
    ws.write(
        "c/c.py",
        "import os, sys\nn = open(os.path.join(sys.argv[1], 'n.txt')).read()\nopen(os.path.join(sys.argv[2], 'final.txt'), 'w').write(n)\nprint('final', n)\n",
    );
    let text = format!(
        "type: pipeline\nexperiment_name: chain\njobs:\n  a:\n{}\n  b:\n{}\n  c:\n{}\n",
        step(
            "a",
            "python a.py ${{outputs.out}}",
            "",
            "    outputs:\n      out: {type: uri_folder}\n"
        ),
        step(
            "b",
            "python b.py ${{inputs.x}} ${{outputs.out}}",
            "    inputs:\n      x: ${{parent.jobs.a.outputs.out}}\n",
            "    outputs:\n      out: {type: uri_folder}\n"
        ),
        step(
            "c",
            "python c.py ${{inputs.x}} ${{outputs.result}}",
            "    inputs:\n      x: ${{parent.jobs.b.outputs.out}}\n",
            "    outputs:\n      result: {type: uri_folder}\n"
        ),
    );
    ws.write("chain.yml", &text);
}

fn plan(ws: &Ws, file: &str) -> Vec<(String, String, String)> {
    let v = ws.json(&["job", "plan", "-f", file]);
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["action"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Submits `file`, follows it to its end; returns the pipeline's id and final view.
fn run(ws: &Ws, file: &str) -> (String, Value) {
    let out = ws
        .tug_cmd(&["job", "create", "-f", file, "--stream"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Submitted pipeline "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!(
                "no pipeline id in:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    (id.clone(), ws.show(&id))
}

fn steps(v: &Value) -> Vec<(String, String)> {
    v["pipeline"]["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {v:#}"))
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn step_field<'a>(v: &'a Value, step: &str, field: &str) -> &'a Value {
    let s = v["pipeline"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .unwrap();
    &s[field]
}

fn children(ws: &Ws, pipeline: &str) -> Vec<Value> {
    ws.json(&["job", "list", "--parent", pipeline])
        .as_array()
        .unwrap()
        .clone()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn steps_run_in_order_and_are_reused_by_content_as_the_plan_says() {
    let ws = Ws::new();
    chain(&ws, 10, "first");
    let p = plan(&ws, "chain.yml");
    assert_eq!(
        p.iter()
            .map(|(s, a, _)| (s.as_str(), a.as_str()))
            .collect::<Vec<_>>(),
        [("a", "run"), ("b", "wait"), ("c", "wait")],
        "{p:?}"
    );
    assert!(p[0].2.contains("no earlier run"), "{p:?}");

    let (first, v) = run(&ws, "chain.yml");
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert_eq!(
        steps(&v),
        pairs(&[("a", "completed"), ("b", "completed"), ("c", "completed")])
    );
    let c_run = step_field(&v, "c", "run").as_str().unwrap().to_string();
    let final_txt = ws.run_dir(&c_run).join("named-outputs/result/final.txt");
    assert_eq!(std::fs::read_to_string(&final_txt).unwrap(), "11");
    assert_eq!(children(&ws, &first).len(), 3);

    // Unchanged: every step reused, nothing runs.
    let p = plan(&ws, "chain.yml");
    assert!(p.iter().all(|(_, a, _)| a == "reuse"), "{p:?}");
    let (second, v) = run(&ws, "chain.yml");
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert_eq!(
        steps(&v),
        pairs(&[("a", "reused"), ("b", "reused"), ("c", "reused")])
    );
    assert_eq!(step_field(&v, "c", "reused_from"), c_run.as_str());
    assert!(children(&ws, &second).is_empty(), "no step ran");

    // A comment in b.py: b reruns, its output is byte for byte the same, so c is reused.
    chain(&ws, 10, "edited");
    let p = plan(&ws, "chain.yml");
    assert_eq!(p[0].1, "reuse");
    assert_eq!(p[1].1, "run");
    assert!(p[1].2.contains("code file `b.py` changed"), "{p:?}");
    assert_eq!(p[2].1, "wait", "{p:?}");
    let (_, v) = run(&ws, "chain.yml");
    assert_eq!(
        steps(&v),
        pairs(&[("a", "reused"), ("b", "completed"), ("c", "reused")]),
        "{v:#}"
    );

    // A real change in b: b and c rerun, and c's reason names the changed input file.
    chain(&ws, 20, "edited");
    let (_, v) = run(&ws, "chain.yml");
    assert_eq!(
        steps(&v),
        pairs(&[("a", "reused"), ("b", "completed"), ("c", "completed")]),
        "{v:#}"
    );
    let why = step_field(&v, "c", "reason").as_str().unwrap();
    assert!(why.contains("input `x`: file `n.txt` changed"), "{why}");
    let c_run = step_field(&v, "c", "run").as_str().unwrap();
    let final_txt = ws.run_dir(c_run).join("named-outputs/result/final.txt");
    assert_eq!(std::fs::read_to_string(&final_txt).unwrap(), "21");

    // force_rerun runs everything again, and says why.
    let out = ws.json(&[
        "job",
        "plan",
        "-f",
        "chain.yml",
        "--set",
        "settings.force_rerun=true",
    ]);
    assert_eq!(out["run"], 3, "every step runs: {out:#}");
    assert!(
        out["steps"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("force_rerun"),
        "{out:#}"
    );

    // The run c would reuse lost its folder: c runs, and the plan says why.
    std::fs::remove_dir_all(ws.run_dir(c_run)).unwrap();
    let p = plan(&ws, "chain.yml");
    assert_eq!(p[2].1, "run", "{p:?}");
    assert!(
        p[2].2.contains(&format!(
            "nothing changed since run {c_run}, but its outputs are gone"
        )),
        "{p:?}"
    );
}

fn failing(ws: &Ws, continue_on_failure: bool, slow_secs: u32) -> &'static str {
    ws.write("ok/ok.py", "print('ok')\n");
    let text = format!(
        "type: pipeline\nexperiment_name: failing\nsettings:\n  continue_on_step_failure: {continue_on_failure}\njobs:\n  bad:\n{}\n  after_bad:\n{}\n  slow:\n{}\n",
        step(
            "ok",
            "python -c 'import sys; sys.exit(3)' ${{outputs.out}}",
            "",
            "    outputs:\n      out: {type: uri_folder}\n"
        ),
        step(
            "ok",
            "python ok.py ${{inputs.x}}",
            "    inputs:\n      x: ${{parent.jobs.bad.outputs.out}}\n",
            ""
        ),
        step("ok", &format!("sleep {slow_secs}"), "", ""),
    );
    ws.write("failing.yml", &text);
    "failing.yml"
}

#[test]
fn a_failed_step_cancels_everything_or_only_what_reads_it() {
    let ws = Ws::new();
    let file = failing(&ws, false, 60);
    let (_, v) = run(&ws, file);
    assert_eq!(v["status"], "Failed", "{v:#}");
    assert!(v["error"].as_str().unwrap().contains("`bad`"), "{v:#}");
    let s = steps(&v);
    assert!(s.contains(&("bad".into(), "failed".into())), "{s:?}");
    assert!(s.contains(&("after_bad".into(), "skipped".into())), "{s:?}");
    assert!(
        s.contains(&("slow".into(), "canceled".into())),
        "a failure stops the independent step too: {s:?}"
    );

    let ws = Ws::new();
    let file = failing(&ws, true, 3);
    let (_, v) = run(&ws, file);
    assert_eq!(v["status"], "Failed", "{v:#}");
    let s = steps(&v);
    assert!(s.contains(&("after_bad".into(), "skipped".into())), "{s:?}");
    assert!(
        s.contains(&("slow".into(), "completed".into())),
        "with continue_on_step_failure the independent step finishes: {s:?}"
    );
    let why = step_field(&v, "after_bad", "reason").as_str().unwrap();
    assert!(why.contains("`bad`"), "{why}");
}

fn long_chain(ws: &Ws, secs: u32) {
    ws.write("w/w.py", &format!("import os, sys, time\ntime.sleep({secs})\nopen(os.path.join(sys.argv[1], 'done'), 'w').write('x')\n"));
    let text = format!(
        "type: pipeline\nexperiment_name: long\njobs:\n  first:\n{}\n  second:\n{}\n",
        step(
            "w",
            "python w.py ${{outputs.out}}",
            "",
            "    outputs:\n      out: {type: uri_folder}\n"
        ),
        step(
            "w",
            "ls ${{inputs.x}}/done",
            "    inputs:\n      x: ${{parent.jobs.first.outputs.out}}\n",
            ""
        ),
    );
    ws.write("long.yml", &text);
}

/// SIGKILLs the workspace's server; its pid. The next command starts another.
fn kill_server(ws: &Ws) -> i32 {
    let pid = ws.server_pid().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    pid
}

fn wait_step_running(ws: &Ws, id: &str, step: &str) -> Value {
    ws.wait_for(id, LIMIT, |v| {
        v["pipeline"]["steps"].as_array().is_some_and(|s| {
            s.iter()
                .any(|x| x["step"] == step && x["status"] == "Running")
        })
    })
}

#[test]
fn cancel_stops_the_running_step_and_skips_the_rest() {
    let ws = Ws::new();
    long_chain(&ws, 120);
    let id = ws.json(&["job", "create", "-f", "long.yml"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_step_running(&ws, &id, "first");
    ws.ok(&["job", "cancel", &id]);
    let v = ws.wait(&id, Duration::from_secs(60));
    assert_eq!(v["status"], "Canceled", "{v:#}");
    assert_eq!(
        steps(&v),
        pairs(&[("first", "canceled"), ("second", "skipped")])
    );
    let ws_id = ws.workspace_id().unwrap();
    assert!(ws.containers(&ws_id).is_empty(), "no container left");
}

#[test]
fn a_server_killed_mid_pipeline_resumes_with_no_step_run_twice() {
    let ws = Ws::new();
    long_chain(&ws, 5);
    let id = ws.json(&["job", "create", "-f", "long.yml"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_step_running(&ws, &id, "first");
    let pid = kill_server(&ws);
    // The next command starts a server, which resumes the step run and the pipeline.
    let v = ws.wait(&id, LIMIT);
    assert_ne!(ws.server_pid(), Some(pid));
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    assert_eq!(
        steps(&v),
        pairs(&[("first", "completed"), ("second", "completed")])
    );
    let runs = children(&ws, &id);
    assert_eq!(runs.len(), 2, "one run per step: {runs:#?}");
}

/// prep → tune (a sweep of fit.yml over `a`) → report: the sweep's trials read prep's
/// output, and report reads the best trial's.
fn tuned(ws: &Ws, values: &str) {
    ws.write(
        "prep/prep.py",
        "import os, sys\nopen(os.path.join(sys.argv[1], 'n.txt'), 'w').write('1')\n",
    );
    ws.write(
        "fit/fit.py",
        "import os, sys, tug\na = float(sys.argv[1])\nn = int(open(os.path.join(sys.argv[2], 'n.txt')).read())\nscore = a * 10 + n\ntug.log('score', score)\nopen(os.path.join(sys.argv[3], 'score.txt'), 'w').write(str(score))\n",
    );
    ws.write(
        "fit/fit.yml",
        &format!(
            "name: fit\nversion: 1\ninputs:\n  a: {{type: number, default: 0}}\n  data: {{type: uri_folder}}\noutputs:\n  model: {{type: uri_folder}}\ncode: .\ncommand: python fit.py ${{{{inputs.a}}}} ${{{{inputs.data}}}} ${{{{outputs.model}}}}\nenvironment:\n  image: {MINIMAL}\n"
        ),
    );
    ws.write(
        "report/report.py",
        "import os, sys\nprint('best', open(os.path.join(sys.argv[1], 'score.txt')).read(), flush=True)\n",
    );
    let text = format!(
        "type: pipeline\nexperiment_name: tuned\noutputs:\n  best:\n    type: uri_folder\n    path: azureml://datastores/workspaceblobstore/paths/${{{{name}}}}/best\njobs:\n  prep:\n{}\n  tune:\n    type: sweep\n    trial: ./fit/fit.yml\n    inputs:\n      data: ${{{{parent.jobs.prep.outputs.out}}}}\n    outputs:\n      model: ${{{{parent.outputs.best}}}}\n    sampling_algorithm: grid\n    search_space:\n      a: {{type: choice, values: {values}}}\n    objective: {{goal: maximize, primary_metric: score}}\n    limits: {{max_total_trials: 3, max_concurrent_trials: 2}}\n  report:\n{}\n",
        step(
            "prep",
            "python prep.py ${{outputs.out}}",
            "",
            "    outputs:\n      out: {type: uri_folder}\n"
        ),
        step(
            "report",
            "python report.py ${{inputs.m}}",
            "    inputs:\n      m: ${{parent.jobs.tune.outputs.model}}\n",
            ""
        ),
    );
    ws.write("tuned.yml", &text);
}

#[test]
fn a_sweep_steps_best_trial_feeds_the_next_step_and_an_unchanged_sweep_is_reused() {
    let ws = Ws::new();
    tuned(&ws, "[1, 3, 2]");
    let (_, v) = run(&ws, "tuned.yml");
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    assert_eq!(
        steps(&v),
        pairs(&[
            ("prep", "completed"),
            ("tune", "completed"),
            ("report", "completed")
        ])
    );
    let sweep_id = step_field(&v, "tune", "run").as_str().unwrap().to_string();
    let sweep = ws.show(&sweep_id);
    let trials = sweep["sweep"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{sweep:#}");
    assert_eq!(trials[0]["value"], 31.0, "a=3 on n=1 is best: {sweep:#}");
    // The best trial's output is the sweep's own, and the next step read it.
    let taken = ws.run_dir(&sweep_id).join("named-outputs/model/score.txt");
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "31.0");
    // The pipeline output's `path:` holds the best trial's files, and only the sweep wrote it.
    let best_at = |pipeline: &str| {
        std::fs::read_to_string(ws.path().join(format!(
            ".tug/datastores/workspaceblobstore/{pipeline}/best/score.txt"
        )))
        .unwrap_or_default()
    };
    let first = v["id"].as_str().unwrap().to_string();
    assert_eq!(best_at(&first), "31.0");
    let stray: Vec<_> = std::fs::read_dir(ws.path().join(".tug/datastores/workspaceblobstore"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("_tune_"))
        .collect();
    assert!(
        stray.is_empty(),
        "a trial wrote the pipeline's output: {stray:?}"
    );
    let report = step_field(&v, "report", "run")
        .as_str()
        .unwrap()
        .to_string();
    let log = std::fs::read_to_string(ws.run_dir(&report).join("user_logs/std_log.txt"))
        .unwrap_or_default();
    assert!(log.contains("best 31.0"), "{log}");

    // Unchanged: the sweep is reused whole, no trial runs.
    let p = plan(&ws, "tuned.yml");
    assert!(p.iter().all(|(_, a, _)| a == "reuse"), "{p:?}");
    let (second, v) = run(&ws, "tuned.yml");
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert_eq!(step_field(&v, "tune", "reused_from"), sweep_id.as_str());
    assert_eq!(
        best_at(&second),
        "31.0",
        "the reused sweep's best, at this pipeline's path"
    );
    assert!(children(&ws, &second).is_empty(), "no step ran");

    // Another search space: the sweep reruns, and the plan names the setting.
    tuned(&ws, "[1, 2]");
    let p = plan(&ws, "tuned.yml");
    assert_eq!(p[1].0, "tune");
    assert_eq!(p[1].1, "run", "{p:?}");
    assert!(p[1].2.contains("sweep `search_space.a`"), "{p:?}");
}

/// One sweep step: 3 trials of a script that logs `score` and sleeps `secs`, 2 at a time.
fn slow_sweep(ws: &Ws, secs: u32) {
    ws.write(
        "slow/slow.py",
        &format!(
            "import sys, time, tug\ntug.log('score', float(sys.argv[1]))\ntime.sleep({secs})\n"
        ),
    );
    ws.write(
        "slow/slow.yml",
        &format!(
            "name: slow\nversion: 1\ninputs:\n  a: {{type: number}}\ncode: .\ncommand: python slow.py ${{{{inputs.a}}}}\nenvironment:\n  image: {MINIMAL}\n"
        ),
    );
    ws.write(
        "slow.yml",
        "type: pipeline\njobs:\n  tune:\n    type: sweep\n    trial: ./slow/slow.yml\n    sampling_algorithm: grid\n    search_space:\n      a: {type: choice, values: [1, 2, 3]}\n    objective: {goal: maximize, primary_metric: score}\n    limits: {max_total_trials: 3, max_concurrent_trials: 2}\n",
    );
}

/// Submits [`slow_sweep`] and waits until 2 of its trials run: the pipeline's and the
/// sweep's ids.
fn start_slow_sweep(ws: &Ws, secs: u32) -> (String, String) {
    slow_sweep(ws, secs);
    let id = ws.json(&["job", "create", "-f", "slow.yml"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = wait_step_running(ws, &id, "tune");
    let sweep_id = step_field(&v, "tune", "run").as_str().unwrap().to_string();
    wait_trials_running(ws, &sweep_id, 2);
    (id, sweep_id)
}

fn wait_trials_running(ws: &Ws, sweep_id: &str, n: usize) {
    ws.wait_for(sweep_id, LIMIT, |s| {
        s["sweep"]["trials"]
            .as_array()
            .is_some_and(|t| t.iter().filter(|t| t["status"] == "Running").count() == n)
    });
}

#[test]
fn a_server_killed_mid_sweep_step_resumes_it_with_no_trial_run_twice() {
    let ws = Ws::new();
    let (id, sweep_id) = start_slow_sweep(&ws, 4);
    let pid = kill_server(&ws);
    let v = ws.wait(&id, LIMIT);
    assert_ne!(ws.server_pid(), Some(pid));
    assert_eq!(v["status"], "Completed", "{v:#}\n{}", ws.server_log());
    assert_eq!(children(&ws, &id).len(), 1, "one sweep run");
    let sweep = ws.show(&sweep_id);
    let trials = sweep["sweep"]["trials"].as_array().unwrap();
    let mut a: Vec<String> = trials
        .iter()
        .map(|t| t["params"]["a"].to_string())
        .collect();
    a.sort();
    assert_eq!(a, ["1", "2", "3"], "each trial once: {sweep:#}");
    assert_eq!(sweep["sweep"]["best_trial"], trials[0]["id"]);
}

#[test]
fn canceling_a_pipeline_cancels_its_sweep_steps_trials() {
    let ws = Ws::new();
    let (id, sweep_id) = start_slow_sweep(&ws, 120);
    ws.ok(&["job", "cancel", &id]);
    let v = ws.wait(&id, Duration::from_secs(60));
    assert_eq!(v["status"], "Canceled", "{v:#}");
    assert_eq!(steps(&v), pairs(&[("tune", "canceled")]));
    let sweep = ws.show(&sweep_id);
    assert_eq!(sweep["status"], "Canceled", "{sweep:#}");
    let trials = sweep["sweep"]["trials"].as_array().unwrap();
    assert_eq!(
        trials.len(),
        2,
        "no trial started after the cancel: {sweep:#}"
    );
    assert!(
        trials.iter().all(|t| t["status"] == "Canceled"),
        "{sweep:#}"
    );
    let ws_id = ws.workspace_id().unwrap();
    assert!(ws.containers(&ws_id).is_empty(), "no container left");
}

#[test]
fn a_plan_pulls_no_image_and_creates_nothing() {
    let ws = Ws::new();
    ws.write(
        "p.yml",
        "type: pipeline\njobs:\n  a:\n    command: echo hi\n    environment:\n      image: registry.invalid/nothing:1\n",
    );
    let started = std::time::Instant::now();
    let p = plan(&ws, "p.yml");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no pull attempted: {:?}",
        started.elapsed()
    );
    assert_eq!(p[0].1, "run", "{p:?}");
    assert!(p[0].2.contains("a plan does not pull it"), "{p:?}");
    assert!(
        ws.json(&["job", "list"]).as_array().unwrap().is_empty(),
        "nothing created"
    );
}

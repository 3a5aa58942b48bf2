//! Command jobs on the real Docker engine, through the real CLI and server.

mod common;

use std::time::{Duration, Instant};

use common::{Ws, job_yaml};

const MIN: Duration = Duration::from_secs(120);

const TRAIN: &str = r#"
import os, sys, tug
tug.log_params({"lr": 0.1, "layers": 3})
tug.set_tags({"team": "vision"})
for step in range(3):
    tug.log("loss", 1.0 / (step + 1))
    print(f"epoch {step}", flush=True)
os.makedirs("outputs", exist_ok=True)
with open("outputs/result.txt", "w") as f:
    f.write("ok")
with open("logs/train.log", "w") as f:
    f.write("log line")
with open(os.path.join(sys.argv[1], "weights.bin"), "w") as f:
    f.write("w")
print("user text, no newline", end="")
tug.log("accuracy", 0.93)
print("done")
"#;

#[test]
fn success_collects_outputs_logs_and_metrics() {
    let ws = Ws::new();
    ws.write("src/train.py", TRAIN);
    let id = ws.submit(
        "job.yml",
        &job_yaml(
            "python train.py ${{outputs.model}}",
            "outputs:\n  model:\nenvironment_variables:\n  SEED: \"7\"\n",
        ),
    );
    let v = ws.wait(&id, MIN);
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert_eq!(v["exit_code"], 0);
    let dir = ws.run_dir(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("outputs/result.txt")).unwrap(),
        "ok"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("logs/train.log")).unwrap(),
        "log line"
    );
    assert!(dir.join("named-outputs/model/weights.bin").is_file());
    let log = std::fs::read_to_string(dir.join("user_logs/std_log.txt")).unwrap();
    assert!(log.contains("epoch 2"), "{log}");
    assert!(log.contains("user text, no newline"), "{log}");
    assert!(
        !log.contains("\u{1e}tug:"),
        "metric frames must not reach the user log: {log}"
    );
    assert_eq!(v["metrics"]["accuracy"], 0.93);
    assert_eq!(
        common::metric_series(&v, &ws, &id, "loss"),
        [1.0, 0.5, 1.0 / 3.0]
    );
    assert_eq!(v["params"]["lr"], "0.1");
    assert_eq!(v["tags"]["team"], "vision");
    // The container is gone once the run is collected.
    let ws_id = ws.workspace_id().unwrap();
    assert!(ws.containers(&ws_id).is_empty());

    // Download lays files out as `az ml job download --all` does.
    let dl = ws.path().join("dl");
    ws.ok(&["job", "download", &id, "--all", "-p", dl.to_str().unwrap()]);
    assert!(dl.join("artifacts/outputs/result.txt").is_file());
    assert!(dl.join("named-outputs/model/weights.bin").is_file());
}

#[test]
fn failure_carries_exit_code_last_lines_and_outputs() {
    let ws = Ws::new();
    ws.write(
        "src/fail.py",
        "import os\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/partial.txt','w').write('p')\nfor i in range(30):\n    print(f'line {i}')\nprint('fatal: the data is wrong', flush=True)\nraise SystemExit(3)\n",
    );
    let id = ws.submit("job.yml", &job_yaml("python fail.py", ""));
    let v = ws.wait(&id, MIN);
    assert_eq!(v["status"], "Failed", "{v:#}");
    assert_eq!(v["exit_code"], 3);
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("exited with code 3"), "{err}");
    assert!(err.contains("fatal: the data is wrong"), "{err}");
    assert!(!err.contains("line 5\n"), "only the last lines: {err}");
    assert!(ws.run_dir(&id).join("outputs/partial.txt").is_file());
    // The human view shows the reason too.
    let text = ws.ok(&["job", "show", &id]);
    assert!(text.contains("fatal: the data is wrong"), "{text}");
}

#[test]
fn cancel_stops_the_container_and_collects_outputs() {
    let ws = Ws::new();
    ws.write(
        "src/long.py",
        "import os, time\nos.makedirs('outputs', exist_ok=True)\nopen('outputs/started.txt','w').write('s')\nprint('started', flush=True)\ntime.sleep(600)\n",
    );
    let id = ws.submit("job.yml", &job_yaml("python long.py", ""));
    ws.wait_for(&id, MIN, |v| {
        v["status"] == "Running"
            && std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt"))
                .is_ok_and(|l| l.contains("started"))
    });
    let start = Instant::now();
    ws.ok(&["job", "cancel", &id]);
    let v = ws.wait(&id, Duration::from_secs(60));
    assert_eq!(v["status"], "Canceled", "{v:#}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "cancel took {:?}",
        start.elapsed()
    );
    assert!(ws.run_dir(&id).join("outputs/started.txt").is_file());
    assert!(ws.containers(&ws.workspace_id().unwrap()).is_empty());
    // Canceling again says it had ended.
    let again = ws.ok(&["job", "cancel", &id]);
    assert!(again.contains("already ended"), "{again}");
}

#[test]
fn timeout_stops_the_run_and_says_why() {
    let ws = Ws::new();
    ws.write("src/x.txt", "");
    let id = ws.submit(
        "job.yml",
        &job_yaml("echo begin && sleep 300", "limits:\n  timeout: 3\n"),
    );
    let start = Instant::now();
    let v = ws.wait(&id, MIN);
    assert_eq!(v["status"], "Failed", "{v:#}");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("limits.timeout of 3 s"), "{err}");
    assert!(err.contains("begin"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn metrics_are_visible_while_the_run_is_running() {
    let ws = Ws::new();
    ws.write(
        "src/live.py",
        "import time, tug\nfor i in range(3):\n    tug.log('progress', i)\ntime.sleep(600)\n",
    );
    let id = ws.submit("job.yml", &job_yaml("python live.py", ""));
    let v = ws.wait_for(&id, MIN, |v| v["metrics"]["progress"] == 2.0);
    assert_eq!(
        v["status"], "Running",
        "metrics arrive before the run ends: {v:#}"
    );
    ws.ok(&["job", "cancel", &id]);
    assert_eq!(ws.wait(&id, MIN)["status"], "Canceled");
}

#[test]
fn editing_code_only_builds_nothing() {
    let ws = Ws::new();
    ws.write("conda.yml", "dependencies:\n  - python=3.11\n  - pip\n");
    ws.write("src/main.py", "print('one')\n");
    let yaml = job_yaml("python main.py", "").replace(
        &format!("  image: {}\n", common::MINIMAL),
        &format!("  image: {}\n  conda_file: conda.yml\n", common::MINIMAL),
    );
    let first = ws.submit("job.yml", &yaml);
    let a = ws.wait(&first, MIN);
    assert_eq!(a["status"], "Completed", "{a:#}");
    ws.write("src/main.py", "print('two')\n");
    let second = ws.submit("job.yml", &yaml);
    let b = ws.wait(&second, MIN);
    assert_eq!(b["status"], "Completed", "{b:#}");
    assert_eq!(a["image"], b["image"]);
    let build = std::fs::read_to_string(ws.run_dir(&second).join("system_logs/build.log")).unwrap();
    assert!(
        build.starts_with("reused "),
        "second submit must not build: {build}"
    );
    assert!(!build.contains("Step "), "{build}");
    let log = std::fs::read_to_string(ws.run_dir(&second).join("user_logs/std_log.txt")).unwrap();
    assert_eq!(log.trim(), "two", "the new code ran");
}

#[test]
fn two_concurrent_clis_share_one_server() {
    let ws = Ws::new();
    std::fs::create_dir_all(ws.path().join(".tug")).unwrap();
    // Started at the same moment from separate processes:
    let handles: Vec<_> = (0..3)
        .map(|_| {
            ws.tug_cmd(&["job", "list", "-o", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for h in handles {
        let out = h.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a CLI failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            ws.server_log()
        );
    }
    let listening = ws.server_log().matches("tug server listening").count();
    assert_eq!(
        listening,
        1,
        "one server for the workspace:\n{}",
        ws.server_log()
    );
}

#[test]
fn server_runs_detached_and_stops_when_asked() {
    let ws = Ws::new();
    ws.ok(&["job", "list"]);
    let pid = ws.server_pid().expect("a server started");
    let status = ws.ok(&["server", "status"]);
    assert!(status.contains(&pid.to_string()), "{status}");
    // Its own session: not in our process group.
    let sid = unsafe { libc::getsid(pid) };
    assert_eq!(sid, pid, "the server leads its own session");
    ws.ok(&["server", "stop"]);
    assert!(ws.server_pid().is_none(), "server.json removed on stop");
    let out = ws.tug(&["server", "status"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn an_unfinished_last_line_reaches_the_log() {
    let ws = Ws::new();
    ws.write("src/x.txt", "");
    let id = ws.submit(
        "job.yml",
        &job_yaml("printf 'first\\nno newline at the end'", ""),
    );
    let v = ws.wait(&id, MIN);
    assert_eq!(v["status"], "Completed", "{v:#}");
    let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap();
    assert_eq!(log, "first\nno newline at the end\n");
}

#[test]
fn concurrent_submits_share_one_server_and_both_run() {
    let ws = Ws::new();
    ws.write("src/x.txt", "");
    ws.write("job.yml", &job_yaml("echo hi", ""));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            ws.tug_cmd(&["job", "create", "-f", "job.yml", "-o", "json"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let ids: Vec<String> = handles
        .into_iter()
        .map(|h| {
            let out = h.wait_with_output().unwrap();
            assert!(out.status.success());
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    for id in &ids {
        assert_eq!(ws.wait(id, MIN)["status"], "Completed");
    }
    assert_eq!(ws.server_log().matches("tug server listening").count(), 1);
}

//! A server killed with SIGKILL loses nothing: the next one re-attaches to running
//! containers, finishes runs that ended meanwhile, and fails runs whose container vanished.

mod common;

use std::time::Duration;

use common::{Ws, job_yaml};

const LIMIT: Duration = Duration::from_secs(120);

/// Logs `a`, waits for the test to create `go` in the mounted gate folder, logs `b`.
const GATED: &str = r#"
import os, time, tug
tug.log("a", 1)
print("before gate", flush=True)
while not os.path.exists(os.path.join(os.environ["AZURE_ML_INPUT_gate"], "go")):
    time.sleep(0.2)
tug.log("b", 2)
os.makedirs("outputs", exist_ok=True)
open("outputs/after.txt", "w").write("done")
print("after gate", flush=True)
"#;

fn gated_job(ws: &Ws) -> String {
    gated_job_with(ws, "")
}

/// Submits the gated job (with `extra` job-file lines) and waits until it logged `a`.
fn gated_job_with(ws: &Ws, extra: &str) -> String {
    ws.write("src/gated.py", GATED);
    std::fs::create_dir_all(ws.path().join("gate")).unwrap();
    let id = ws.submit(
        "job.yml",
        &job_yaml(
            "python gated.py",
            &format!("inputs:\n  gate:\n    type: uri_folder\n    path: gate\n{extra}"),
        ),
    );
    ws.wait_for(&id, LIMIT, |v| {
        v["status"] == "Running" && v["metrics"]["a"] == 1.0
    });
    id
}

fn kill_server(ws: &Ws) {
    let pid = ws.server_pid().expect("server running");
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for _ in 0..100 {
        if unsafe { libc::kill(pid, 0) } != 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server {pid} survived SIGKILL");
}

fn open_gate(ws: &Ws) {
    std::fs::write(ws.path().join("gate/go"), "").unwrap();
}

fn assert_finished_once(ws: &Ws, id: &str) {
    let v = ws.wait(id, LIMIT);
    assert_eq!(v["status"], "Completed", "{v:#}");
    assert_eq!(
        common::metric_series(&v, ws, id, "a"),
        [1.0],
        "no metric counted twice"
    );
    assert_eq!(common::metric_series(&v, ws, id, "b"), [2.0]);
    assert!(ws.run_dir(id).join("outputs/after.txt").is_file());
    let log = std::fs::read_to_string(ws.run_dir(id).join("user_logs/std_log.txt")).unwrap();
    assert_eq!(log.matches("before gate").count(), 1, "{log}");
    assert_eq!(log.matches("after gate").count(), 1, "{log}");
}

#[test]
fn restarted_server_reattaches_to_a_running_container() {
    let ws = Ws::new();
    let id = gated_job(&ws);
    kill_server(&ws);
    // Any command brings a new server, which picks the run up.
    ws.ok(&["job", "list"]);
    assert!(ws.server_log().matches("resuming run").count() >= 1);
    open_gate(&ws);
    assert_finished_once(&ws, &id);
}

#[test]
fn restarted_server_collects_a_run_that_ended_while_it_was_down() {
    let ws = Ws::new();
    let id = gated_job(&ws);
    let ws_id = ws.workspace_id().unwrap();
    kill_server(&ws);
    open_gate(&ws);
    // Wait until the container has exited with nobody watching.
    let name = format!("tug-{ws_id}-{id}");
    let out = std::process::Command::new("docker")
        .args(["wait", &name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert_finished_once(&ws, &id);
    assert!(ws.containers(&ws_id).is_empty());
}

#[test]
fn restarted_server_fails_a_run_whose_container_vanished() {
    let ws = Ws::new();
    let id = gated_job(&ws);
    let ws_id = ws.workspace_id().unwrap();
    kill_server(&ws);
    let out = std::process::Command::new("docker")
        .args(["rm", "-f", &format!("tug-{ws_id}-{id}")])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Failed", "{v:#}");
    assert!(
        v["error"].as_str().unwrap().contains("disappeared"),
        "{v:#}"
    );
}

#[test]
fn a_stream_survives_a_server_stop_and_resumes_without_repeats() {
    let ws = Ws::new();
    ws.write("src/gated.py", GATED);
    std::fs::create_dir_all(ws.path().join("gate")).unwrap();
    ws.write(
        "job.yml",
        &job_yaml(
            "python gated.py",
            "inputs:\n  gate:\n    type: uri_folder\n    path: gate\n",
        ),
    );
    let child = ws
        .tug_cmd(&["job", "create", "-f", "job.yml", "--stream"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the run to reach the gate, then stop the server under the open stream.
    let id = loop {
        let jobs = ws.json(&["job", "list"]);
        if let Some(j) = jobs.as_array().and_then(|a| a.first())
            && j["metrics"]["a"] == 1.0
        {
            break j["id"].as_str().unwrap().to_string();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stopped = std::time::Instant::now();
    ws.ok(&["server", "stop"]);
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "stop waited for the stream"
    );
    open_gate(&ws);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout.matches("before gate").count(), 1, "{stdout}");
    assert_eq!(stdout.matches("after gate").count(), 1, "{stdout}");
    assert_eq!(stderr.matches("[metric] a = 1").count(), 1, "{stderr}");
    assert_finished_once(&ws, &id);
}

#[test]
fn time_the_server_was_down_does_not_count_against_the_timeout() {
    let ws = Ws::new();
    let id = gated_job_with(&ws, "limits:\n  timeout: 6\n");
    let ws_id = ws.workspace_id().unwrap();
    kill_server(&ws);
    open_gate(&ws);
    let out = std::process::Command::new("docker")
        .args(["wait", &format!("tug-{ws_id}-{id}")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    // Well past the deadline before any server looks again.
    std::thread::sleep(Duration::from_secs(7));
    let v = ws.wait(&id, LIMIT);
    assert_eq!(v["status"], "Completed", "ended by itself in time: {v:#}");
}

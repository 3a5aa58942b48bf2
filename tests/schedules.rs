//! Schedules on the real Docker engine and the real server clock: a recurrence fires on
//! time and its job runs; the server stays up for an enabled schedule past its idle limit;
//! an occurrence that passes while no server runs is fired once when one comes back, and
//! says so; enable, disable, trigger and delete do what they say; a bad job file behind a
//! good schedule creates nothing. Triggers start a few seconds ahead, so nothing waits on
//! a whole minute.

mod common;

use std::time::{Duration, Instant};

use common::{MINIMAL, Ws};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(90);

/// A pipeline of one step that prints the pipeline input it was given.
fn job(ws: &Ws) {
    ws.write(
        "hello.yml",
        &format!(
            "type: pipeline\nexperiment_name: nightly\ninputs:\n  greeting: hi\njobs:\n  say:\n    command: echo said ${{{{inputs.g}}}}\n    environment:\n      image: {MINIMAL}\n    inputs:\n      g: ${{{{parent.inputs.greeting}}}}\n"
        ),
    );
}

/// A minute recurrence whose next occurrence is `ahead` from now (whole seconds).
fn schedule(ws: &Ws, name: &str, ahead: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let start = now + ahead - 60;
    let start =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(start));
    let file = format!("{name}.yml");
    ws.write(
        &file,
        &format!(
            "name: {name}\ntrigger:\n  type: recurrence\n  frequency: minute\n  interval: 1\n  start_time: \"{start}\"\ncreate_job:\n  type: pipeline\n  job: ./hello.yml\n  inputs:\n    greeting: ${{{{name}}}}\n"
        ),
    );
    file
}

fn show(ws: &Ws, name: &str) -> Value {
    ws.json(&["schedule", "show", name])
}

/// Waits until the schedule has `n` fires; returns its view.
fn fires(ws: &Ws, name: &str, n: usize) -> Value {
    let start = Instant::now();
    loop {
        let v = show(ws, name);
        if v["fires"].as_array().map_or(0, Vec::len) >= n {
            return v;
        }
        assert!(
            start.elapsed() < LIMIT,
            "schedule {name} did not fire {n} times: {v:#}\n{}",
            ws.server_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_recurrence_fires_on_time_and_its_job_gets_the_run_name() {
    let ws = Ws::new();
    job(&ws);
    let file = schedule(&ws, "often", 4);
    let out = ws.ok(&["schedule", "create", "-f", &file]);
    assert!(out.contains("Created schedule often"), "{out}");
    let created = Instant::now();
    // Nothing fired yet: its first occurrence is ahead.
    assert!(show(&ws, "often")["fires"].as_array().unwrap().is_empty());

    let v = fires(&ws, "often", 1);
    let waited = created.elapsed();
    assert!(waited < Duration::from_secs(20), "fired after {waited:?}");
    let fire = &v["fires"][0];
    assert_eq!(fire["cause"], "schedule", "{v:#}");
    assert_eq!(fire["missed"], 0);
    let run = fire["run_id"].as_str().unwrap().to_string();
    assert!(run.starts_with("often-"), "{run}");
    // The next occurrence is a minute after the one that fired.
    let occurrence: jiff::Timestamp = fire["occurrence"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = v["next_fire"].as_str().unwrap().parse().unwrap();
    assert_eq!(next.as_second() - occurrence.as_second(), 60, "{v:#}");

    let done = ws.wait(&run, LIMIT);
    assert_eq!(done["status"], "Completed", "{done:#}");
    // `${{name}}` in the schedule's input override became the run's name.
    let step = format!("{run}_say");
    let log = std::fs::read_to_string(ws.run_dir(&step).join("user_logs/std_log.txt")).unwrap();
    assert!(log.contains(&format!("said {run}")), "{log}");

    let status = ws.ok(&["server", "status"]);
    assert!(
        status.contains("1 enabled schedule keeps it up"),
        "{status}"
    );
}

#[test]
fn an_enabled_schedule_keeps_the_server_past_its_idle_limit() {
    let ws = Ws::new();
    job(&ws);
    let file = schedule(&ws, "later", 50);
    let out = ws
        .tug_cmd(&["schedule", "create", "-f", &file])
        .env("TUG_IDLE_TIMEOUT", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = ws.server_pid().expect("a server runs");
    std::thread::sleep(Duration::from_secs(4));
    assert!(alive(pid), "the server exited with a schedule waiting");
    // Disabled, nothing holds it: it exits within its idle limit.
    let out = ws
        .tug_cmd(&["schedule", "disable", "later"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the idle server stayed up with no schedule enabled"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

#[test]
fn an_occurrence_missed_while_no_server_ran_fires_once_on_restart() {
    let ws = Ws::new();
    job(&ws);
    let file = schedule(&ws, "missed", 3);
    ws.ok(&["schedule", "create", "-f", &file]);
    ws.ok(&["server", "stop"]);
    // The occurrence passes with no server.
    std::thread::sleep(Duration::from_secs(5));
    assert!(ws.server_pid().is_none());
    let v = fires(&ws, "missed", 1);
    let fire = &v["fires"][0];
    assert_eq!(fire["cause"], "catch_up", "{v:#}");
    let note = v["note"].as_str().unwrap_or_default();
    assert!(note.contains("passed while no server ran"), "{note}");
    let run = fire["run_id"].as_str().unwrap();
    assert_eq!(ws.wait(run, LIMIT)["status"], "Completed");
    // Once: the schedule waits for the next occurrence, a minute on.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(show(&ws, "missed")["fires"].as_array().unwrap().len(), 1);
}

#[test]
fn disable_enable_trigger_and_delete() {
    let ws = Ws::new();
    job(&ws);
    let file = schedule(&ws, "manual", 55);
    ws.ok(&["schedule", "create", "-f", &file]);
    let v = ws.json(&["schedule", "disable", "manual"]);
    assert_eq!(v["enabled"], false);
    let list = ws.ok(&["schedule", "list"]);
    assert!(
        list.contains("manual") && list.contains("disabled"),
        "{list}"
    );

    // A trigger fires a disabled schedule too.
    let fire = ws.json(&["schedule", "trigger", "manual"]);
    assert_eq!(fire["cause"], "manual", "{fire:#}");
    let run = fire["run_id"].as_str().unwrap();
    assert_eq!(ws.wait(run, LIMIT)["status"], "Completed");

    // Enabled again: its next fire is ahead, not one made up for the pause.
    let v = ws.json(&["schedule", "enable", "manual"]);
    assert_eq!(v["enabled"], true);
    let next: jiff::Timestamp = v["next_fire"].as_str().unwrap().parse().unwrap();
    assert!(next > jiff::Timestamp::now(), "{v:#}");

    // Delete refuses an enabled schedule, then works once it is disabled.
    let out = ws.tug(&["schedule", "delete", "manual"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tug schedule disable manual"), "{err}");
    ws.ok(&["schedule", "disable", "manual"]);
    ws.ok(&["schedule", "delete", "manual"]);
    assert!(
        ws.json(&["schedule", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The run it made stays.
    assert_eq!(ws.show(run)["status"], "Completed");
}

#[test]
fn a_bad_job_behind_a_good_schedule_creates_nothing() {
    let ws = Ws::new();
    ws.write(
        "broken.yml",
        "type: pipeline\njobs:\n  a:\n    command: echo ${{inputs.nope}}\n    environment:\n      image: python:3.11\n",
    );
    ws.write(
        "nightly.yml",
        "name: nightly\ntrigger:\n  type: cron\n  expression: \"0 2 * * *\"\ncreate_job: ./broken.yml\n",
    );
    let out = ws.tug(&["schedule", "create", "-f", "nightly.yml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nightly.yml"), "names the schedule: {err}");
    assert!(
        err.contains("broken.yml:4:"),
        "locates the fault in the job file: {err}"
    );
    assert!(err.contains("inputs.nope") || err.contains("nope"), "{err}");
    assert!(
        !ws.path().join(".tug/tug.db").exists(),
        "nothing was created"
    );
    assert!(ws.server_pid().is_none());
}

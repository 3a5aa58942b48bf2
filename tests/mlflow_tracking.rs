//! The MLflow tracking API with real clients from PyPI (`tests/mlflow/clients.sh`, run by
//! `make test`): on the host against the CLI's listener with the workspace token, and
//! inside real job containers, where tug gives each run its own URI and token.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{MINIMAL, Ws};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(300);

/// The client versions the cache holds; with `TUG_E2E_REQUIRED` a missing one fails.
fn clients() -> Vec<(String, PathBuf)> {
    let cache = PathBuf::from(
        std::env::var("TUG_MLFLOW_CACHE").unwrap_or_else(|_| "/var/cache/tug-mlflow".into()),
    );
    let mut found = Vec::new();
    for v in ["3.18.0", "3.15.2", "2.22.5"] {
        let dir = cache.join(v);
        if dir.join("ready").exists() {
            found.push((v.to_string(), dir));
        } else {
            assert!(
                std::env::var_os("TUG_E2E_REQUIRED").is_none(),
                "mlflow-skinny {v} is not in {}: run tests/mlflow/clients.sh",
                cache.display()
            );
        }
    }
    found
}

fn server_url(ws: &Ws) -> String {
    ws.ok(&["job", "list"]);
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path().join(".tug/server.json")).unwrap())
            .unwrap();
    info["url"].as_str().unwrap().to_string()
}

const HOST_SCRIPT: &str = r#"
import json, math, mlflow
from mlflow import MlflowClient
mlflow.set_experiment("host-exp")
with mlflow.start_run(run_name="from-laptop") as run:
    mlflow.log_param("hello_param", "world")
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"acc": 0.75, "nan_metric": float("nan")})
    mlflow.set_tags({"team": "vision"})
    open("hello.txt", "w").write("hello world\n")
    mlflow.log_artifact("hello.txt")
    mlflow.log_dict({"k": 1}, "cfg/settings.json")
c = MlflowClient()
r = c.get_run(run.info.run_id)
hist = c.get_metric_history(run.info.run_id, "loss")
found = mlflow.search_runs(experiment_names=["host-exp"], filter_string="metrics.acc > 0.5",
                           output_format="list")
err = None
try:
    c.log_param(run.info.run_id, "hello_param", "changed")
except Exception as e:
    err = getattr(e, "error_code", str(e))
try:
    c.get_run("no_such_run")
except Exception as e:
    missing = getattr(e, "error_code", str(e))
print("RESULT " + json.dumps({
    "run_id": run.info.run_id, "status": r.info.status, "params": r.data.params,
    "metrics": {k: (None if math.isnan(v) else v) for k, v in r.data.metrics.items()},
    "history": [m.value for m in hist], "found": [x.info.run_id for x in found],
    "artifacts": sorted(a.path for a in c.list_artifacts(run.info.run_id)),
    "param_change": err, "missing": missing,
}))
"#;

fn result_line(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no result from the client:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    serde_json::from_str(line).unwrap()
}

#[test]
fn host_clients_create_log_and_read_runs() {
    for (version, dir) in clients() {
        let ws = Ws::new();
        let url = server_url(&ws);
        let token = std::fs::read_to_string(ws.path().join(".tug/token")).unwrap();
        let script = ws.write("host.py", HOST_SCRIPT);
        let out = Command::new(dir.join("venv/bin/python"))
            .arg(&script)
            .current_dir(ws.path())
            .env("MLFLOW_TRACKING_URI", &url)
            .env("MLFLOW_TRACKING_TOKEN", token.trim())
            .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            .output()
            .unwrap();
        let r = result_line(&out);
        assert_eq!(r["status"], "FINISHED", "{version}: {r:#}");
        assert_eq!(r["params"]["hello_param"], "world", "{version}");
        assert_eq!(r["metrics"]["acc"], 0.75, "{version}");
        assert_eq!(r["metrics"]["loss"], 0.2, "{version}: latest step wins");
        assert!(r["metrics"]["nan_metric"].is_null(), "{version}: NaN kept");
        assert_eq!(r["history"].as_array().unwrap().len(), 5, "{version}");
        assert_eq!(r["found"][0], r["run_id"], "{version}");
        assert_eq!(
            r["artifacts"],
            serde_json::json!(["cfg", "hello.txt"]),
            "{version}"
        );
        assert_eq!(r["param_change"], "INVALID_PARAMETER_VALUE", "{version}");
        assert_eq!(r["missing"], "RESOURCE_DOES_NOT_EXIST", "{version}");

        // tug sees the same run: status, params, metrics and the files in its folder.
        let id = r["run_id"].as_str().unwrap();
        let v = ws.show(id);
        assert_eq!(v["status"], "Completed", "{version}: {v:#}");
        assert_eq!(v["experiment"], "host-exp");
        assert_eq!(v["params"]["hello_param"], "world");
        assert_eq!(
            std::fs::read_to_string(ws.run_dir(id).join("hello.txt")).unwrap(),
            "hello world\n"
        );
        assert!(ws.run_dir(id).join("cfg/settings.json").is_file());

        // What the client logged is downloaded and registered like any run output.
        let dl = ws.path().join("dl");
        ws.ok(&["job", "download", id, "-p", dl.to_str().unwrap()]);
        assert!(dl.join("artifacts/hello.txt").is_file(), "{version}");
        assert!(
            dl.join("artifacts/cfg/settings.json").is_file(),
            "{version}"
        );
        let m = ws.json(&[
            "model",
            "create",
            "--name",
            "cfg",
            "--path",
            &format!("runs:/{id}/cfg"),
        ]);
        assert_eq!(m["job_id"], id, "{version}: {m:#}");
    }
}

#[test]
fn a_wrong_token_is_refused_in_mlflow_terms() {
    let ws = Ws::new();
    let url = server_url(&ws);
    let client = reqwest::blocking::Client::new();
    let get = |path: &str, token: &str| {
        let r = client
            .get(format!("{url}{path}"))
            .bearer_auth(token)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap_or_default())
    };
    let (status, body) = get("/api/2.0/mlflow/experiments/get?experiment_id=0", "wrong");
    assert_eq!(status, 401);
    assert_eq!(body["error_code"], "UNAUTHENTICATED");
    let token = std::fs::read_to_string(ws.path().join(".tug/token")).unwrap();
    let (status, body) = get(
        "/api/2.0/mlflow/experiments/get?experiment_id=0",
        token.trim(),
    );
    assert_eq!(status, 200);
    assert_eq!(body["experiment"]["name"], "Default");
    let (status, body) = get("/api/2.0/mlflow/no/such/endpoint", token.trim());
    assert_eq!(status, 404);
    assert_eq!(body["error_code"], "ENDPOINT_NOT_FOUND");
    let (status, body) = get(
        "/api/2.0/mlflow/experiments/get?experiment_id=x",
        token.trim(),
    );
    assert_eq!(status, 400, "{body}");
    // A forged run token for a run that does not exist reaches nothing.
    let (status, _) = get(
        "/api/2.0/mlflow/runs/get?run_id=r",
        "tug-run.r.0000000000000000000000000000000000000000000000000000000000000000",
    );
    assert_eq!(status, 401);
}

/// The script of Azure's `hello-mlflow` job, then what a job's token may not do, then an
/// exit code that contradicts the client's FINISHED.
const JOB_SCRIPT: &str = r#"
import json, os, sys, urllib.request, urllib.error
import mlflow
from random import random
mlflow.log_param("hello_param", "world")
mlflow.log_metric("hello_metric", random())
os.system("echo 'hello world' > helloworld.txt")
mlflow.log_artifact("helloworld.txt")
for step in range(3):
    mlflow.log_metric("accuracy", 0.5 + step / 10, step=step)
mlflow.end_run()

def call(path, body):
    req = urllib.request.Request(os.environ["MLFLOW_TRACKING_URI"] + path,
        data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": "Bearer " + os.environ["MLFLOW_TRACKING_TOKEN"],
                 "Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(req).status
    except urllib.error.HTTPError as e:
        return e.code

print("OTHER_RUN", call("/api/2.0/mlflow/runs/log-parameter",
                        {"run_id": os.environ["OTHER_RUN"], "key": "x", "value": "y"}))
print("NEW_RUN", call("/api/2.0/mlflow/runs/create", {"experiment_id": "0"}))
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"#;

fn mlflow_env(ws: &Ws, version: &str, dir: &std::path::Path) {
    let ctx = ws.path().join(format!("env-{version}"));
    std::fs::create_dir_all(ctx.join("wheels")).unwrap();
    for e in std::fs::read_dir(dir.join("wheels")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), ctx.join("wheels").join(e.file_name())).unwrap();
    }
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {MINIMAL}\nCOPY wheels /wheels\n\
             RUN python3 -m venv /opt/mlflow && /opt/mlflow/bin/pip install --quiet --no-index --find-links /wheels mlflow-skinny=={version} && rm -rf /wheels\n\
             ENV PATH=/opt/mlflow/bin:$PATH\n"
        ),
    )
    .unwrap();
}

/// The MLflow requests the server logged, by route, in order.
fn request_sequence(ws: &Ws) -> String {
    ws.server_log()
        .lines()
        .filter_map(|l| l.split_once("tug::mlflow::requests: ").map(|(_, r)| r))
        .map(|r| format!("{r}\n"))
        .collect()
}

/// What `hello-mlflow.py` makes each client version send, against the recorded sequence in
/// tests/mlflow/requests/<version>.txt, so a client release that calls something new (or
/// stops calling something) shows up as a diff. `TUG_BLESS=1` records it anew.
fn check_request_sequence(ws: &Ws, version: &str) {
    let got = request_sequence(ws);
    assert!(!got.is_empty(), "no request lines in the server log");
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/mlflow/requests/{version}.txt"));
    if std::env::var_os("TUG_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&file).unwrap_or_default();
    if got != want {
        let mut diff = String::new();
        for d in diff_lines(&want, &got) {
            diff.push_str(&d);
        }
        panic!(
            "mlflow-skinny {version} sends another request sequence than {} records:\n{diff}\n\
             If the client changed and tug answers the new calls, record it with TUG_BLESS=1.",
            file.display()
        );
    }
}

/// A line diff (`-` recorded, `+` now) by longest common subsequence; the files are short.
fn diff_lines(a: &str, b: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(format!("  {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push(format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[test]
fn jobs_log_through_mlflow_from_their_containers() {
    for (version, dir) in clients() {
        let ws = Ws::new();
        // The server this workspace starts logs each MLflow request by route.
        ws.tug_cmd(&["job", "list"])
            .env("RUST_LOG", "info,tug::mlflow::requests=debug")
            .output()
            .unwrap();
        mlflow_env(&ws, &version, &dir);
        ws.write("src/hello-mlflow.py", JOB_SCRIPT);
        let other = ws.submit("other.yml", &common::job_yaml("echo other", ""));
        ws.wait(&other, LIMIT);
        let job = |exit: u8| {
            format!(
                "experiment_name: mlflow-jobs\ncode: src\ncommand: python hello-mlflow.py\n\
                 environment:\n  build:\n    path: env-{version}\n\
                 environment_variables:\n  OTHER_RUN: {other}\n  EXIT_CODE: \"{exit}\"\n"
            )
        };
        let id = ws.submit("ok.yml", &job(0));
        let v = ws.wait(&id, LIMIT);
        check_request_sequence(&ws, &version);
        let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt"))
            .unwrap_or_default();
        assert_eq!(v["status"], "Completed", "{version}: {v:#}\n{log}");
        assert_eq!(v["params"]["hello_param"], "world", "{version}: {v:#}");
        assert!(
            v["metrics"]["hello_metric"].as_f64().is_some(),
            "{version}: {v:#}"
        );
        assert!((v["metrics"]["accuracy"].as_f64().unwrap() - 0.7).abs() < 1e-9);
        assert_eq!(
            std::fs::read_to_string(ws.run_dir(&id).join("helloworld.txt")).unwrap(),
            "hello world\n",
            "{version}"
        );
        assert!(log.contains("OTHER_RUN 403"), "{version}: {log}");
        assert!(log.contains("NEW_RUN 403"), "{version}: {log}");
        // The token is a secret: never in the run's log.
        assert!(!log.contains("tug-run."), "{version}: {log}");

        // The client said FINISHED; the exit code says otherwise, and wins.
        let id = ws.submit("fail.yml", &job(3));
        let v = ws.wait(&id, LIMIT);
        assert_eq!(v["status"], "Failed", "{version}: {v:#}");
        assert_eq!(v["params"]["hello_param"], "world", "{version}");
    }
}

const NESTED_SCRIPT: &str = r#"
import os, mlflow
with mlflow.start_run():  # the job's own run (MLFLOW_RUN_ID)
    mlflow.log_param("outer", 1)
    for i in range(2):
        with mlflow.start_run(nested=True, run_name="child%d" % i) as child:
            mlflow.log_metric("m", i)
            print("CHILD", child.info.run_id, flush=True)
    left = mlflow.start_run(nested=True, run_name="left-open")
    print("LEFT", left.info.run_id, flush=True)
    os._exit(4)  # a crash: no exit hook ends `left-open`
"#;

/// `start_run(nested=True)` inside a job: child runs under the job's run, writable with the
/// job's token, ended by the client or, when the script dies first, with the job.
#[test]
fn nested_runs_in_a_job_belong_to_it() {
    for (version, dir) in clients() {
        let ws = Ws::new();
        mlflow_env(&ws, &version, &dir);
        ws.write("src/nested.py", NESTED_SCRIPT);
        let id = ws.submit(
            "nested.yml",
            &format!(
                "experiment_name: nesting\ncode: src\ncommand: python nested.py\n\
                 environment:\n  build:\n    path: env-{version}\n"
            ),
        );
        let v = ws.wait(&id, LIMIT);
        let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt"))
            .unwrap_or_default();
        assert_eq!(v["status"], "Failed", "{version}: exit 4\n{log}");
        assert_eq!(v["params"]["outer"], "1", "{version}: {v:#}\n{log}");
        let ids = |prefix: &str| -> Vec<String> {
            log.lines()
                .filter_map(|l| l.strip_prefix(prefix))
                .map(|s| s.trim().to_string())
                .collect()
        };
        let children = ids("CHILD ");
        assert_eq!(children.len(), 2, "{version}: {log}");
        for (i, child) in children.iter().enumerate() {
            let c = ws.show(child);
            assert_eq!(c["parent_id"], id.as_str(), "{version}: {c:#}");
            assert_eq!(c["experiment"], "nesting", "{version}: {c:#}");
            assert_eq!(c["status"], "Completed", "{version}: {c:#}");
            assert_eq!(c["metrics"]["m"], i as f64, "{version}: {c:#}");
            assert_eq!(c["display_name"], format!("child{i}"), "{version}: {c:#}");
        }
        let left = ws.show(&ids("LEFT ")[0]);
        assert_eq!(
            left["status"], "Failed",
            "{version}: ends with the job: {left:#}"
        );
        // Nested runs are the job's, not top-level runs of their own.
        let listed = ws.json(&["job", "list"]);
        assert_eq!(listed.as_array().unwrap().len(), 1, "{version}: {listed:#}");
    }
}

//! Test harness: a throw-away workspace driven through the real `tug` binary, on the
//! real Docker engine. Dropping it stops the workspace's server and removes any
//! container it left.

#![allow(dead_code)]

pub mod cluster;
pub mod sweep;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const MINIMAL: &str = "tug/python:3.11-minimal";
pub const SKLEARN: &str = "tug/python:3.11-sklearn";

/// Panics with the fix when a base image is missing (CI builds them in .ci/run).
pub fn require_image(image: &str) {
    let ok = Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let script = if image.starts_with("tug/curated:") {
        "images/build-curated.sh all"
    } else {
        "images/build-base.sh all"
    };
    assert!(
        ok,
        "base image {image} is missing: run `{script}` (or `make test`)"
    );
}

pub struct Ws {
    pub dir: tempfile::TempDir,
}

impl Ws {
    pub fn new() -> Ws {
        require_image(MINIMAL);
        Ws {
            dir: tempfile::Builder::new()
                .prefix("tug-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn tug_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tug"));
        c.args(args)
            .current_dir(self.path())
            .env("TUG_WORKSPACE", self.path())
            .env("TUG_IDLE_TIMEOUT", "60")
            .env_remove("RUST_LOG");
        c
    }

    pub fn tug(&self, args: &[&str]) -> Output {
        self.tug_cmd(args).output().expect("running tug")
    }

    /// Runs tug, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.tug(args);
        assert!(
            out.status.success(),
            "tug {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }

    /// `tug secret set NAME` with the value on stdin, as a user types it.
    pub fn set_secret(&self, name: &str, value: &str) {
        use std::io::Write;
        let mut child = self
            .tug_cmd(&["secret", "set", name])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{value}\n").as_bytes()).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes `yaml` as `name` and submits it; returns the run id.
    pub fn submit(&self, name: &str, yaml: &str) -> String {
        self.write(name, yaml);
        let v = self.json(&["job", "create", "-f", name]);
        v["id"].as_str().unwrap().to_string()
    }

    pub fn show(&self, id: &str) -> Value {
        self.json(&["job", "show", id])
    }

    /// Polls until the run ends (or `limit` passes); returns its final view.
    pub fn wait(&self, id: &str, limit: Duration) -> Value {
        self.wait_for(id, limit, |v| {
            matches!(
                v["status"].as_str(),
                Some("Completed" | "Failed" | "Canceled")
            )
        })
    }

    pub fn wait_for(&self, id: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let v = self.show(id);
            if pred(&v) {
                return v;
            }
            assert!(
                start.elapsed() < limit,
                "run {id} did not reach the expected state in {limit:?}; last: {v:#}\nserver log:\n{}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn run_dir(&self, id: &str) -> PathBuf {
        self.path().join(".tug/artifacts/runs").join(id)
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.path().join(".tug/server.log")).unwrap_or_default()
    }

    pub fn server_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.path().join(".tug/server.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    pub fn workspace_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.path().join(".tug/server.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["workspace_id"].as_str().map(str::to_string)
    }

    /// Names of this workspace's containers the engine holds.
    pub fn containers(&self, ws_id: &str) -> Vec<String> {
        labelled(&["ps", "-a", "--format", "{{.Names}}"], ws_id)
    }

    /// Names of the workspace's Docker networks (one per endpoint).
    pub fn networks(&self, ws_id: &str) -> Vec<String> {
        labelled(&["network", "ls", "--format", "{{.Name}}"], ws_id)
    }
}

/// Names `docker <list command>` prints for objects labelled with the workspace id.
fn labelled(list: &[&str], ws_id: &str) -> Vec<String> {
    let filter = format!("label=tug.workspace={ws_id}");
    let out = Command::new("docker")
        .args(list)
        .args(["--filter", &filter])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

impl Drop for Ws {
    fn drop(&mut self) {
        let ws_id = self.workspace_id();
        let _ = self.tug(&["server", "stop"]);
        if let Some(id) = ws_id {
            for c in self.containers(&id) {
                let _ = Command::new("docker").args(["rm", "-f", &c]).output();
            }
            for n in self.networks(&id) {
                let _ = Command::new("docker").args(["network", "rm", &n]).output();
            }
        }
    }
}

/// A job file on the minimal image running `command` in a `src/` code folder.
pub fn job_yaml(command: &str, extra: &str) -> String {
    format!(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n\
         experiment_name: tests\n\
         code: src\n\
         command: {command}\n\
         environment:\n  image: {MINIMAL}\n\
         {extra}"
    )
}

pub fn metric_series(v: &Value, ws: &Ws, id: &str, name: &str) -> Vec<f64> {
    let _ = v;
    let points = ws.json(&["job", "show", id, "--metric", name]);
    points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect()
}

/// 150 rows shaped like Azure's iris.csv: three well-separated classes.
pub fn iris_csv() -> String {
    let mut s = String::from("sepal_length,sepal_width,petal_length,petal_width,species\n");
    for i in 0..150 {
        let class = i % 3;
        let jitter = (i * 7 % 10) as f64 / 20.0;
        let base = 1.0 + 2.0 * class as f64;
        s.push_str(&format!(
            "{:.2},{:.2},{:.2},{:.2},{}\n",
            4.5 + base / 2.0 + jitter,
            3.0 + jitter / 2.0,
            base + jitter,
            base / 3.0 + jitter / 4.0,
            ["Iris-setosa", "Iris-versicolor", "Iris-virginica"][class]
        ));
    }
    s
}

/// Copies a folder tree (the example folders a test works in).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A loopback port nothing listens on right now (for a server a test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

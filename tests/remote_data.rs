//! Remote data inputs against real servers on loopback: Python's `http.server` for
//! `http(s)://` files, and moto's S3-compatible server (installed by `make prereqs`) for
//! `s3://` folders and `azureml://datastores/...` URIs. Each fetch is checked against the
//! server's own request log: unchanged data is not downloaded twice, changed data is, and an
//! unreachable store falls back to the cached copy or fails with the fix.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{MINIMAL, Ws};

/// A server process on a loopback port, killed on drop.
struct Server {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(mut cmd: Command, port: u16, log: std::path::PathBuf) -> Server {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
        let server = Server { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{cmd:?} did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Requests of `method` for `path` in the server's log.
    fn count(&self, method: &str, path: &str) -> usize {
        let needle = format!("\"{method} {path} ");
        self.log().matches(&needle).count()
    }
}

fn http_server(dir: &Path, log: std::path::PathBuf) -> Server {
    let port = common::free_port();
    let mut cmd = Command::new("python3");
    cmd.args([
        "-u",
        "-m",
        "http.server",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
    ])
    .current_dir(dir);
    Server::start(cmd, port, log)
}

fn create(ws: &Ws, file: &str, env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = ws.tug_cmd(&["job", "create", "-f", file, "--stream"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs `file` to completion; returns (the job's log, tug's stderr).
fn run_ok(ws: &Ws, file: &str, env: &[(&str, String)]) -> (String, String) {
    let out = create(ws, file, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{file}:\nstdout:\n{}\nstderr:\n{stderr}\nserver:\n{}",
        String::from_utf8_lossy(&out.stdout),
        ws.server_log()
    );
    let jobs = ws.json(&["job", "list"]);
    let id = jobs.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = ws.show(&id);
    assert_eq!(v["status"], "Completed", "{v:#}");
    let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap();
    (log, stderr)
}

fn job_count(ws: &Ws) -> usize {
    ws.json(&["job", "list"]).as_array().unwrap().len()
}

fn file_job(url: &str) -> String {
    format!(
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n\
         command: echo \"at ${{{{inputs.data}}}}\" && cat ${{{{inputs.data}}}}\n\
         inputs:\n  data:\n    type: uri_file\n    path: {url}\n\
         environment:\n  image: {MINIMAL}\n"
    )
}

#[test]
fn an_http_file_is_fetched_once_fetched_again_when_it_changes_and_cached_offline() {
    let ws = Ws::new();
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("data")).unwrap();
    std::fs::write(site.path().join("data/iris.csv"), "first version\n").unwrap();
    let server = http_server(site.path(), ws.path().join("http.log"));
    let url = format!("http://127.0.0.1:{}/data/iris.csv", server.port);
    ws.write("job.yml", &file_job(&url));

    let (log, stderr) = run_ok(&ws, "job.yml", &[]);
    assert!(
        log.contains("at /tug/inputs/data/iris.csv"),
        "the URL's file name: {log}"
    );
    assert!(
        stderr.contains("inputs.data: Downloading data/iris.csv (14 B)"),
        "{stderr}"
    );
    assert!(log.contains("first version"), "{log}");
    assert_eq!(server.count("GET", "/data/iris.csv"), 1, "{}", server.log());

    // Unchanged: the store is asked (HEAD), nothing is downloaded again.
    let (log, stderr) = run_ok(&ws, "job.yml", &[]);
    assert!(!stderr.contains("Downloading"), "{stderr}");
    assert!(log.contains("first version"), "{log}");
    assert_eq!(server.count("GET", "/data/iris.csv"), 1, "{}", server.log());
    assert!(
        server.count("HEAD", "/data/iris.csv") >= 2,
        "{}",
        server.log()
    );

    // Changed behind the same URL: fetched again, and the job sees the new content.
    std::fs::write(site.path().join("data/iris.csv"), "the second version\n").unwrap();
    let (log, _) = run_ok(&ws, "job.yml", &[]);
    assert!(log.contains("the second version"), "{log}");
    assert_eq!(server.count("GET", "/data/iris.csv"), 2, "{}", server.log());

    // A missing file: refused before anything is created.
    let before = job_count(&ws);
    ws.write(
        "missing.yml",
        &file_job(&url.replace("iris.csv", "nope.csv")),
    );
    let out = create(&ws, "missing.yml", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("missing.yml: `inputs.data.path`") && err.contains("does not exist"),
        "{err}"
    );
    assert_eq!(job_count(&ws), before);

    // The first version's blob is no longer referred to: prune removes it and only it,
    // once it is older than prune's grace hour.
    let young = ws.json(&["data", "cache", "prune", "--dry-run"]);
    assert!(young["removed"].as_array().unwrap().is_empty(), "{young:#}");
    let blobs = ws.path().join(".tug/cache/data/blobs");
    for blob in std::fs::read_dir(&blobs).unwrap() {
        let hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::open(blob.unwrap().path())
            .unwrap()
            .set_modified(hours_ago)
            .unwrap();
    }
    let pruned = ws.json(&["data", "cache", "prune"]);
    assert_eq!(pruned["bytes"], "first version\n".len(), "{pruned:#}");
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1, "{pruned:#}");

    // `data fetch` (a uri_file unless told) answers from the same cache entry.
    let out = ws.ok(&["data", "fetch", &url]);
    assert!(out.contains("the cached copy is current"), "{out}");
    assert_eq!(server.count("GET", "/data/iris.csv"), 2, "{}", server.log());

    // The server goes away: the cached copy is used, and the user is told.
    drop(server);
    let (log, stderr) = run_ok(&ws, "job.yml", &[]);
    assert!(log.contains("the second version"), "{log}");
    assert!(stderr.contains("using the copy cached at"), "{stderr}");

    // ...but data never fetched is a clear error that says how to give tug a copy.
    let before = job_count(&ws);
    let out = create(&ws, "missing.yml", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot reach http://127.0.0.1:"), "{err}");
    assert!(
        err.contains("tug data cache add http://127.0.0.1:"),
        "{err}"
    );
    assert_eq!(job_count(&ws), before, "nothing created");

    // Handing the cache a copy makes the same file run unchanged.
    ws.write("nope.csv", "handed over\n");
    ws.ok(&[
        "data",
        "cache",
        "add",
        &url.replace("iris.csv", "nope.csv"),
        "--from",
        "nope.csv",
    ]);
    let (log, _) = run_ok(&ws, "missing.yml", &[]);
    assert!(log.contains("handed over"), "{log}");
}

/// moto's S3 server on a free loopback port.
fn s3_server(log: std::path::PathBuf) -> Server {
    let port = common::free_port();
    let mut cmd = Command::new("moto_server");
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    if Command::new("moto_server").arg("--help").output().is_err() {
        panic!("moto_server is not installed: run `make prereqs` (pip install 'moto[server]')");
    }
    Server::start(cmd, port, log)
}

/// Puts objects through boto3 (moto's dependency), as a user's upload would.
fn s3_put(port: u16, bucket: &str, objects: &[(&str, &str)]) {
    let mut script = format!(
        "import boto3\n\
         s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{port}', region_name='us-east-1',\n\
         aws_access_key_id='tug-test', aws_secret_access_key='not-a-real-secret-9f3a')\n\
         try:\n    s3.create_bucket(Bucket='{bucket}')\n\
         except s3.exceptions.BucketAlreadyOwnedByYou:\n    pass\n"
    );
    for (key, body) in objects {
        script.push_str(&format!(
            "s3.put_object(Bucket='{bucket}', Key='{key}', Body={body:?}.encode())\n"
        ));
    }
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_s3_folder_and_a_datastore_uri_come_through_an_s3_compatible_server() {
    let ws = Ws::new();
    let server = s3_server(ws.path().join("s3.log"));
    s3_put(
        server.port,
        "team",
        &[
            // the zero-byte "folder" objects that S3 consoles create
            ("raw/iris/", ""),
            ("raw/iris/sub/", ""),
            ("raw/iris/a.csv", "a,1\n"),
            ("raw/iris/sub/b.csv", "b,2\n"),
            ("raw/other.csv", "x\n"),
        ],
    );
    ws.ok(&["job", "list"]); // creates the workspace and its config
    let config = ws.path().join(".tug/config.yaml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("datastores:\n  lake: {url: s3://team/raw}\n");
    std::fs::write(&config, text).unwrap();
    let secret = "not-a-real-secret-9f3a";
    let env = [
        (
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", server.port),
        ),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "tug-test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    ws.write(
        "job.yml",
        &format!(
            "command: cd ${{{{inputs.d}}}} && find . -type f | sort && cat sub/b.csv\n\
             inputs:\n  d:\n    type: uri_folder\n    path: azureml://datastores/lake/paths/iris/\n\
             environment:\n  image: {MINIMAL}\n"
        ),
    );
    let (log, _) = run_ok(&ws, "job.yml", &env);
    assert!(
        log.contains("./a.csv\n./sub/b.csv\nb,2"),
        "only the prefix, laid out: {log}"
    );
    assert!(!log.contains("other.csv"), "{log}");

    // One object changes: the job sees it; the cache holds one record of two objects.
    s3_put(
        server.port,
        "team",
        &[("raw/iris/sub/b.csv", "b,3 changed\n")],
    );
    let (log, _) = run_ok(&ws, "job.yml", &env);
    assert!(log.contains("b,3 changed"), "{log}");
    let cached = ws.json(&["data", "cache", "list"]);
    let cached = cached.as_array().unwrap();
    assert_eq!(cached.len(), 1, "{cached:#?}");
    assert_eq!(cached[0]["uri"], "s3://team/raw/iris/");
    assert_eq!(cached[0]["objects"].as_array().unwrap().len(), 2);

    // The same data by its s3:// URI is the same cache entry: `data fetch` finds it current.
    let mut fetch = ws.tug_cmd(&[
        "data",
        "fetch",
        "s3://team/raw/iris/",
        "--type",
        "uri-folder",
    ]);
    for (k, v) in &env {
        fetch.env(k, v);
    }
    let out = fetch.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the cached copy is current"), "{stdout}");

    // A prefix with nothing under it, and a datastore nobody defined: located errors.
    ws.write(
        "empty.yml",
        &std::fs::read_to_string(ws.path().join("job.yml"))
            .unwrap()
            .replace("paths/iris/", "paths/nothing/"),
    );
    let out = create(&ws, "empty.yml", &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("empty.yml: `inputs.d.path`")
            && err.contains("no objects under this prefix"),
        "{err}"
    );
    ws.write(
        "unknown.yml",
        &std::fs::read_to_string(ws.path().join("job.yml"))
            .unwrap()
            .replace("datastores/lake", "datastores/nowhere"),
    );
    let out = create(&ws, "unknown.yml", &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("datastores:\n      nowhere: {url:"),
        "{err}"
    );
    assert_eq!(job_count(&ws), 2);

    // The credentials were used by the CLI and stored nowhere.
    let grep = Command::new("grep")
        .args(["-rl", secret, ws.path().join(".tug").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&grep.stdout)
    );
    assert!(!ws.server_log().contains(secret));
}

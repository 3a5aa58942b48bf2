//! The real `tug-infsrv` binary with the real Python worker (`images/serving`, embedded), over
//! loopback HTTP, against the scoring scripts in `tests/scoring/`.
//!
//! Skipped (with a message) when `python3` is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sha2::Digest;

fn python_available() -> bool {
    let found = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skipping: python3 is not installed; tug-infsrv's workers need it");
    }
    found
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scoring")
        .join(name)
}

/// A running `tug-infsrv`; killed on drop. Its stderr goes to a file read by [`Server::log`].
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server and waits until `GET /` says a worker is ready.
    async fn start(script_name: &str, workers: u32, env: &[(&str, &str)]) -> Server {
        let server = Server::spawn(script_name, workers, env);
        server.wait_healthy().await;
        server
    }

    fn spawn(script_name: &str, workers: u32, env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let port = common::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_tug-infsrv"))
            .arg("--entry_script")
            .arg(script(script_name))
            .args(["--model_dir", dir.path().to_str().unwrap()])
            .args([
                "--port",
                &port.to_string(),
                "--worker_count",
                &workers.to_string(),
            ])
            .env_remove("TUG_AUTH_KEY_SHA256")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Server {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(response) = client().get(self.url("/")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tug-infsrv never became healthy; its log:\n{}", self.log());
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tug-infsrv did not exit; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child we have not reaped.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// POSTs `body` to /score in the background (for requests that must be in flight while
    /// the test goes on).
    fn score_in_background(
        &self,
        body: &str,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        tokio::spawn(
            client()
                .post(self.url("/score"))
                .body(body.to_string())
                .send(),
        )
    }

    async fn score(&self, body: &str) -> reqwest::Response {
        client()
            .post(self.url("/score"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn metric(&self, line_prefix: &str) -> f64 {
        let text = client()
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(line_prefix)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Server {
    /// SIGTERM first, so the server removes its temporary shim folder; SIGKILL if it lingers.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header in {:?}", response.headers()))
}

const RUN_RAISED: &str = r#"{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}"#;

#[tokio::test]
async fn health_score_and_the_contract_headers() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 1, &[]).await;

    let health = client().get(server.url("/")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(header(&health, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&health, "x-ms-run-function-failed"), "False");
    assert!(header(&health, "x-ms-server-version").starts_with("tug-infsrv/"));
    assert_eq!(header(&health, "x-request-id").len(), 36);
    assert_eq!(health.text().await.unwrap(), "Healthy");

    let scored = client()
        .post(server.url("/score"))
        .header("content-type", "application/json")
        .header("x-request-id", "req-1")
        .header("x-ms-client-request-id", "client-1")
        .header("TraceId", "trace-1")
        .body(r#"{"a": [1, 2]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(scored.status(), 200);
    assert_eq!(header(&scored, "content-type"), "application/json");
    assert_eq!(header(&scored, "x-ms-run-function-failed"), "False");
    assert_eq!(header(&scored, "x-request-id"), "req-1");
    assert_eq!(header(&scored, "x-ms-request-id"), "client-1");
    assert_eq!(header(&scored, "x-ms-client-request-id"), "client-1");
    assert_eq!(header(&scored, "traceid"), "trace-1");
    let exec_ms = header(&scored, "x-ms-run-fn-exec-ms");
    assert!(
        exec_ms.parse::<f64>().is_ok() && exec_ms.split('.').nth(1).unwrap().len() == 3,
        "{exec_ms}"
    );
    let body: serde_json::Value = scored.json().await.unwrap();
    assert_eq!(body["echo"], serde_json::json!({"a": [1, 2]}));

    let missing = client().get(server.url("/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(header(&missing, "x-ms-run-function-failed"), "False");
    assert!(missing.headers().get("x-request-id").is_none());
    assert_eq!(
        missing.text().await.unwrap(),
        r#"{"message": "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."}"#
    );
    let put = client()
        .put(server.url("/score"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
    assert_eq!(
        put.text().await.unwrap(),
        r#"{"message": "The method is not allowed for the requested URL."}"#
    );
    let options = client()
        .request(reqwest::Method::OPTIONS, server.url("/score"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (options.status().as_u16(), options.text().await.unwrap()),
        (200, String::new())
    );

    let swagger = client()
        .get(server.url("/swagger.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(swagger.status(), 200);
    let doc: serde_json::Value = swagger.json().await.unwrap();
    assert_eq!(doc["swagger"], "2.0");
    let bad_version = client()
        .get(server.url("/swagger.json?version=4"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_version.status(), 404);
    assert!(
        bad_version
            .text()
            .await
            .unwrap()
            .contains("Swagger version [4] is not valid")
    );

    let long_id = client()
        .get(server.url("/"))
        .header("x-request-id", "x".repeat(101))
        .send()
        .await
        .unwrap();
    assert_eq!(long_id.status(), 431);
    assert_eq!(
        long_id.text().await.unwrap(),
        r#"{"message": "x-request-id must not exceed 100 characters"}"#
    );
}

#[tokio::test]
async fn cors_and_the_service_path_prefix() {
    if !python_available() {
        return;
    }
    let env = [
        ("AML_CORS_ORIGINS", "https://a.example"),
        ("SERVICE_PATH_PREFIX", "api/v1"),
    ];
    let server = Server::start("behaviours.py", 1, &env).await;
    let preflight = client()
        .request(reqwest::Method::OPTIONS, server.url("/api/v1/score"))
        .header("origin", "https://a.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        "https://a.example"
    );
    assert_eq!(
        header(&preflight, "access-control-allow-methods"),
        "GET, POST"
    );
    assert_eq!(
        header(&preflight, "access-control-allow-headers"),
        "content-type"
    );

    let scored = client()
        .post(server.url("/api/v1/score"))
        .header("origin", "https://a.example")
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(scored.status(), 200);
    assert_eq!(
        header(&scored, "access-control-allow-origin"),
        "https://a.example"
    );
    let other_origin = client()
        .post(server.url("/score"))
        .header("origin", "https://b.example")
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_origin.status(),
        200,
        "the bare path works too, as under azmlinfsrv"
    );
    assert!(
        other_origin
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let health = client().get(server.url("/api/v1")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "Healthy");
}

#[tokio::test]
async fn bad_json_reaching_run_and_run_raising_are_500_with_the_failure_header() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 1, &[]).await;
    for body in [r#"{"data": [[0.0, 1.0"#, "raise"] {
        let response = server.score(body).await;
        assert_eq!(response.status(), 500, "{body}");
        assert_eq!(header(&response, "x-ms-run-function-failed"), "True");
        assert!(response.headers().get("x-ms-run-fn-exec-ms").is_none());
        assert_eq!(response.text().await.unwrap(), RUN_RAISED);
    }
    // The worker survived both.
    assert_eq!(server.score("[1]").await.status(), 200);
    assert!(
        server.log().contains("run() was told to raise"),
        "the traceback goes to the log"
    );
}

#[tokio::test]
async fn init_raising_makes_the_server_exit_3_with_the_traceback() {
    if !python_available() {
        return;
    }
    let mut server = Server::spawn("init_raises.py", 2, &[]);
    let status = server.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "log:\n{}", server.log());
    let log = server.log();
    assert!(
        log.contains("FileNotFoundError: model.pkl not found (marker 7f3a)"),
        "{log}"
    );
    assert!(log.contains("Traceback"), "{log}");
}

#[tokio::test]
async fn key_auth_guards_everything_but_health() {
    if !python_available() {
        return;
    }
    let digest = hex(&sha2::Sha256::digest(b"s3cret"));
    let other = hex(&sha2::Sha256::digest(b"rotated"));
    let keys = format!("{other},{digest}");
    let server = Server::start("behaviours.py", 1, &[("TUG_AUTH_KEY_SHA256", &keys)]).await;

    assert_eq!(
        client().get(server.url("/")).send().await.unwrap().status(),
        200
    );
    for key in [None, Some("Bearer wrong"), Some("s3cret")] {
        let mut request = client().post(server.url("/score")).body("[1]");
        if let Some(key) = key {
            request = request.header("authorization", key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{key:?}");
        assert!(
            response
                .text()
                .await
                .unwrap()
                .starts_with(r#"{"message": "#)
        );
    }
    assert_eq!(
        client()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    for key in ["Bearer s3cret", "Bearer rotated"] {
        let response = client()
            .post(server.url("/score"))
            .header("authorization", key)
            .body("[1]")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{key}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn oversized_body_is_413() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 1, &[("TUG_MAX_REQUEST_BYTES", "1000")]).await;
    let fits = format!("\"{}\"", "a".repeat(998));
    assert_eq!(server.score(&fits).await.status(), 200);
    let response = server.score(&format!("\"{}\"", "a".repeat(999))).await;
    assert_eq!(response.status(), 413);
    assert_eq!(header(&response, "x-ms-run-function-failed"), "False");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("TUG_MAX_REQUEST_BYTES")
    );
}

#[tokio::test]
async fn a_worker_killed_mid_request_fails_only_that_request_and_is_replaced() {
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let init_log = dir.path().join("inits");
    let server = Server::start(
        "behaviours.py",
        2,
        &[("INIT_LOG", init_log.to_str().unwrap())],
    )
    .await;
    let inits = || std::fs::read_to_string(&init_log).unwrap().lines().count();
    // Both workers are ready, so both have run init().
    let deadline = Instant::now() + Duration::from_secs(10);
    while inits() < 2 {
        assert!(Instant::now() < deadline, "workers did not both start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let slow = server.score_in_background("sleep:1");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let died = server.score("die").await;
    assert_eq!(died.status(), 500);
    assert_eq!(header(&died, "x-ms-run-function-failed"), "True");
    assert!(died.text().await.unwrap().contains("died"));

    let slow = slow.await.unwrap().unwrap();
    assert_eq!(
        slow.status(),
        200,
        "the other worker's request is unaffected"
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    while inits() < 3 {
        assert!(
            Instant::now() < deadline,
            "no replacement ran init(); log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..4 {
        assert_eq!(server.score("{}").await.status(), 200);
    }
    assert_eq!(server.metric("tug_infsrv_worker_restarts_total").await, 1.0);
    assert_eq!(server.metric("tug_infsrv_workers_ready").await, 2.0);
}

#[tokio::test]
async fn a_worker_dying_fails_only_its_request_and_the_ones_pipelined_behind_it_run_later() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 1, &[]).await;
    let first = server.score_in_background("sleep_die:1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The only worker is busy: these are written to it behind the first one. The worker never
    // starts them, so they wait for the replacement instead of failing.
    let behind: Vec<_> = (0..3)
        .map(|i| server.score_in_background(&format!("{{\"n\": {i}}}")))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.metric("tug_infsrv_queue_depth").await,
        3.0,
        "the three requests wait behind the first"
    );
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 500);
    assert_eq!(header(&first, "x-ms-run-function-failed"), "True");
    assert!(first.text().await.unwrap().contains("died"));
    for (i, call) in behind.into_iter().enumerate() {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status(), 200, "request {i} behind the dead one");
        let text = response.text().await.unwrap();
        assert!(text.contains(&format!("\"n\": {i}}}")), "{i}: {text}");
    }
    assert_eq!(server.metric("tug_infsrv_worker_restarts_total").await, 1.0);
    assert_eq!(
        server
            .metric(r#"tug_infsrv_requests_total{route="/score",code="500"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn a_pipelined_request_that_kills_the_worker_fails_and_the_ones_behind_run_once() {
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs");
    let server = Server::start("behaviours.py", 1, &[("RUN_LOG", log.to_str().unwrap())]).await;
    let first = server.score_in_background("sleep:0.5");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Both are written to the busy worker behind the first; the first of them kills it.
    let killer = server.score_in_background("die");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = server.score_in_background("append:after");
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status(), 200, "the request ahead is answered");
    let first_pid = first.json::<serde_json::Value>().await.unwrap()["pid"].clone();
    let killer = killer.await.unwrap().unwrap();
    assert_eq!(killer.status(), 500);
    assert!(killer.text().await.unwrap().contains("died"));
    let after = after.await.unwrap().unwrap();
    assert_eq!(
        after.status(),
        200,
        "the request behind the killer waits for the replacement"
    );
    let after_pid = after.json::<serde_json::Value>().await.unwrap()["pid"].clone();
    assert_ne!(after_pid, first_pid, "answered by the replacement");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "after\n",
        "it ran exactly once"
    );
    assert_eq!(server.metric("tug_infsrv_worker_restarts_total").await, 1.0);
}

#[tokio::test]
async fn a_pipelined_request_is_not_timed_out_in_the_queue() {
    if !python_available() {
        return;
    }
    // WORKER_TIMEOUT bounds both the wait for a worker and each request's time on one. The
    // third request is pipelined at once and waits ~1.6 s behind two of 0.9 s: past the
    // limit in all, but it is no longer waiting in the queue once it is on the worker.
    let server = Server::start("behaviours.py", 1, &[("WORKER_TIMEOUT", "1")]).await;
    let first = server.score_in_background("sleep:0.9");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = server.score_in_background("sleep:0.9");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = server.score("{}").await;
    assert_eq!(third.status(), 200, "{}", third.text().await.unwrap());
    assert_eq!(first.await.unwrap().unwrap().status(), 200);
    assert_eq!(second.await.unwrap().unwrap().status(), 200);
    assert_eq!(server.metric("tug_infsrv_worker_restarts_total").await, 0.0);
}

#[tokio::test]
async fn with_pipelining_off_a_queued_request_waits_for_the_replacement_too() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 1, &[("TUG_PIPELINE", "0")]).await;
    let first = server.score_in_background("sleep_die:0.5");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = server.score("{}").await;
    assert_eq!(first.await.unwrap().unwrap().status(), 500);
    assert_eq!(second.status(), 200);
}

#[tokio::test]
async fn pipelined_requests_are_all_answered_in_order_of_their_own_ids() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 2, &[]).await;
    let mut calls = Vec::new();
    for i in 0..64 {
        let request = client()
            .post(server.url("/score"))
            .body(format!("{{\"n\": {i}}}"))
            .send();
        calls.push(tokio::spawn(request));
    }
    for (i, call) in calls.into_iter().enumerate() {
        let response = call.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(text.contains(&format!("\"n\": {i}}}")), "{i}: {text}");
    }
}

#[tokio::test]
async fn worker_timeout_kills_the_worker_answers_500_and_replaces_it() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 1, &[("WORKER_TIMEOUT", "1")]).await;
    let started = Instant::now();
    let response = server.score("sleep:30").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered at the timeout, not after run()"
    );
    assert_eq!(response.status(), 500);
    assert_eq!(header(&response, "x-ms-run-function-failed"), "True");
    assert!(response.text().await.unwrap().contains("WORKER_TIMEOUT"));
    // The next request waits for the replacement, then succeeds.
    assert_eq!(server.score("{}").await.status(), 200);
    assert_eq!(server.metric("tug_infsrv_worker_restarts_total").await, 1.0);
}

#[tokio::test]
async fn a_replacement_whose_init_fails_makes_the_server_exit_3() {
    if !python_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("initialized");
    let mut server = Server::start(
        "behaviours.py",
        1,
        &[("FAIL_REINIT", marker.to_str().unwrap())],
    )
    .await;
    assert_eq!(server.score("die").await.status(), 500);
    let status =
        tokio::task::spawn_blocking(move || (server.wait_exit(Duration::from_secs(30)), server))
            .await
            .unwrap();
    let log = status.1.log();
    assert_eq!(status.0.code(), Some(3), "log:\n{log}");
    assert!(
        log.contains("init() refuses to run twice (marker 91c2)"),
        "{log}"
    );
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 1, &[("TUG_MAX_QUEUE", "1")]).await;
    let busy = server.score_in_background("sleep:1.5");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = server.score_in_background("sleep:0.1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.metric("tug_infsrv_queue_depth").await, 1.0);

    let refused = server.score("{}").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(header(&refused, "x-ms-run-function-failed"), "False");

    assert_eq!(busy.await.unwrap().unwrap().status(), 200);
    assert_eq!(queued.await.unwrap().unwrap().status(), 200);
    assert_eq!(server.metric("tug_infsrv_queue_depth").await, 0.0);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_code() {
    if !python_available() {
        return;
    }
    let server = Server::start("behaviours.py", 1, &[]).await;
    let ok = r#"tug_infsrv_requests_total{route="/score",code="200"}"#;
    let failed = r#"tug_infsrv_requests_total{route="/score",code="500"}"#;
    let before = server.metric(ok).await;
    server.score("[1]").await;
    server.score("[2]").await;
    server.score("raise").await;
    assert_eq!(server.metric(ok).await, before + 2.0);
    assert_eq!(server.metric(failed).await, 1.0);
    assert_eq!(
        server
            .metric("tug_infsrv_run_function_failures_total")
            .await,
        1.0
    );
    assert_eq!(
        server
            .metric(r#"tug_infsrv_request_duration_seconds_count{route="/score"}"#)
            .await,
        3.0
    );
    let text = client().get(server.url("/metrics")).send().await.unwrap();
    assert!(header(&text, "content-type").starts_with("text/plain; version=0.0.4"));
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits_0() {
    if !python_available() {
        return;
    }
    let mut server = Server::start("behaviours.py", 1, &[]).await;
    let in_flight = server.score_in_background("sleep:1.5");
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.signal(libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        client().get(server.url("/")).send().await.is_err(),
        "no new connections after SIGTERM"
    );
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["slept"],
        1.5
    );
    let status = tokio::task::spawn_blocking(move || {
        let status = server.wait_exit(Duration::from_secs(15));
        (status, server)
    })
    .await
    .unwrap();
    assert_eq!(status.0.code(), Some(0), "log:\n{}", status.1.log());
}

#[test]
fn router_is_dispatched_as_a_subcommand() {
    let output = Command::new(env!("CARGO_BIN_EXE_tug-infsrv"))
        .args(["router", "--help"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("--config"),
        "the router's own flags: {stdout}"
    );
}

#[test]
fn bad_settings_exit_2_naming_the_setting() {
    let output = Command::new(env!("CARGO_BIN_EXE_tug-infsrv"))
        .args(["--entry_script", script("behaviours.py").to_str().unwrap()])
        .env("WORKER_COUNT", "many")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("environment variable WORKER_COUNT"),
        "{stderr}"
    );
}

//! The endpoint router end to end: the real `tug-infsrv router` process in front of small
//! HTTP upstreams started inside the test, driven over loopback and with signals.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

const PRIMARY_KEY: &str = "primary-key-for-tests";
const SECONDARY_KEY: &str = "secondary-key-for-tests";

// ---------------------------------------------------------------------------------------
// Upstreams: stand-ins for a deployment's scoring containers.

/// A scoring instance answering `POST /score` with its name (as a JSON string).
/// `?sleep_ms=N` delays the answer, `?status=N` answers with that status instead.
struct TestUpstream {
    address: SocketAddr,
    /// Requests to `/score` received (counted on arrival, before any sleep).
    hits: Arc<AtomicUsize>,
    /// Extra delay on every answer of this instance alone.
    delay_ms: Arc<AtomicU64>,
}

impl TestUpstream {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (counter, delay) = (Arc::clone(&hits), Arc::clone(&delay_ms));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (counter, delay) = (Arc::clone(&counter), Arc::clone(&delay));
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let delay = Duration::from_millis(delay.load(Ordering::SeqCst));
                        answer(name, Arc::clone(&counter), delay, request)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestUpstream {
            address,
            hits,
            delay_ms,
        }
    }

    fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn answer(
    name: &'static str,
    hits: Arc<AtomicUsize>,
    delay: Duration,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/score" {
        let mut response = Response::new(Full::new(Bytes::from_static(b"{\"message\": \"no\"}")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let query: HashMap<String, String> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let request_id = request.headers().get("x-request-id").cloned();
    let saw_authorization = request.headers().contains_key("authorization");
    let body = request.into_body().collect().await.unwrap().to_bytes();
    tokio::time::sleep(delay).await;
    if let Some(ms) = query.get("sleep_ms") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    }
    let status = query.get("status").map_or(200, |s| s.parse().unwrap());
    let text = if status == 200 {
        format!("\"{name}\"")
    } else {
        format!("{{\"message\": \"{name} failed on purpose\"}}")
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    let headers = response.headers_mut();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-seen-body-bytes", body.len().into());
    headers.insert(
        "x-seen-authorization",
        if saw_authorization { "yes" } else { "no" }
            .parse()
            .unwrap(),
    );
    if let Some(id) = request_id {
        headers.insert("x-request-id", id);
    }
    Ok(response)
}

// ---------------------------------------------------------------------------------------
// The router process.

struct RouterProcess {
    child: Child,
    base: String,
    config_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl RouterProcess {
    fn start(config: &Value) -> Self {
        Self::start_with(Some(config), None)
    }

    /// With `seed` and no config file: what a router pod on a cluster does.
    fn start_with(config: Option<&Value>, seed: Option<&std::path::Path>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("router.json");
        if let Some(config) = config {
            std::fs::write(&config_path, config.to_string()).unwrap();
        }
        let mut command = Command::new(env!("CARGO_BIN_EXE_tug-infsrv"));
        command.arg("router").arg("--config").arg(&config_path);
        if let Some(seed) = seed {
            command.arg("--seed").arg(seed);
        }
        let mut child = command
            .args(["--port", "0"])
            .env("RUST_LOG", "tug=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (address_sender, address_receiver) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::clone(&log);
        // Drains stderr for the router's whole life so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[router] {line}");
                if let Some((_, rest)) = line.split_once("listening on http://") {
                    let address = rest.split_whitespace().next().unwrap_or_default();
                    let _ = address_sender.send(address.to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let address = address_receiver
            .recv_timeout(Duration::from_secs(30))
            .expect("router did not announce its address");
        RouterProcess {
            child,
            base: format!("http://{address}"),
            config_path,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on the router child we spawned; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    fn rewrite_config(&self, config: &Value) {
        // Write then rename, as the control plane should, so a reload never reads half a file.
        let staging = self.config_path.with_extension("json.new");
        std::fs::write(&staging, config.to_string()).unwrap();
        std::fs::rename(&staging, &self.config_path).unwrap();
    }

    fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has `count` lines containing `text`.
    async fn wait_for_log(&self, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.log_lines().iter().filter(|l| l.contains(text)).count();
            if seen >= count {
                return;
            }
            assert!(Instant::now() < deadline, "no log line with {text:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "router did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn sha256_hex(key: &str) -> String {
    tug::serving::router::sha256_hex(key)
}

fn deployment(name: &str, instances: &[&TestUpstream]) -> Value {
    json!({
        "name": name,
        "instances": instances.iter().map(|u| u.address.to_string()).collect::<Vec<_>>(),
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn message(&self) -> String {
        let value: Value =
            serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body));
        value["message"].as_str().unwrap().to_string()
    }
}

/// POSTs `{}` to `url` with the given extra headers.
async fn post(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = client.post(url).body("{}");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// Waits until `probe` returns the same value twice 300 ms apart (background work settled).
async fn settled(probe: impl Fn() -> usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = probe();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = probe();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

/// Asserts `count` of `trials` is within 5 sigma of the binomial mean for `p`.
fn assert_binomial(count: usize, trials: usize, p: f64, what: &str) {
    let mean = trials as f64 * p;
    let sigma = (trials as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - mean).abs() <= 5.0 * sigma,
        "{what}: {count} of {trials}, expected {mean} ± {}",
        5.0 * sigma
    );
}

// ---------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_open_and_everything_else_needs_a_key() {
    let blue = TestUpstream::start("blue").await;
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "key_sha256": [sha256_hex(PRIMARY_KEY), sha256_hex(SECONDARY_KEY)],
        "deployments": [deployment("blue", &[&blue])],
        "traffic": {"blue": 100},
    }));
    let client = client();

    let health = client.get(router.url("/")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "Healthy");

    let missing = post(&client, &router.url("/score"), &[]).await;
    assert_eq!(missing.status, 401);
    assert!(missing.message().contains("Bearer"), "{}", missing.body);
    let wrong = post(
        &client,
        &router.url("/score"),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        blue.hits(),
        0,
        "rejected requests must not reach the deployment"
    );

    for key in [PRIMARY_KEY, SECONDARY_KEY] {
        let bearer = format!("Bearer {key}");
        let answer = post(
            &client,
            &router.url("/score?x=1"),
            &[("authorization", &bearer), ("x-request-id", "req-123")],
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.body, "\"blue\"");
        assert_eq!(answer.header("azureml-model-deployment"), Some("blue"));
        assert_eq!(answer.header("x-request-id"), Some("req-123"));
        assert_eq!(answer.header("x-seen-authorization"), Some("yes"));
        assert_eq!(answer.header("x-seen-body-bytes"), Some("2"));
    }

    let metrics = client.get(router.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 401);
    let metrics = client
        .get(router.url("/metrics"))
        .bearer_auth(PRIMARY_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert_eq!(
        metric(
            &text,
            "tug_router_requests_total{deployment=\"blue\",code=\"200\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "tug_router_requests_total{deployment=\"\",code=\"401\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &text,
            "tug_router_request_duration_seconds_count{deployment=\"blue\"}"
        ),
        Some(2.0)
    );

    let log = router.log_lines().join("\n");
    assert!(
        !log.contains(PRIMARY_KEY) && !log.contains(SECONDARY_KEY),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_traffic_splits_70_30() {
    let blue = TestUpstream::start("blue").await;
    let green = TestUpstream::start("green").await;
    // Four requests at a time: allow them, or the 2 × 1 × 1 limit answers 429.
    let concurrent = |name, upstream| {
        let mut d = deployment(name, &[upstream]);
        d["max_concurrent_requests_per_instance"] = json!(4);
        d
    };
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [concurrent("blue", &blue), concurrent("green", &green)],
        "traffic": {"blue": 70, "green": 30},
    }));
    let client = client();
    let url = router.url("/score");
    let trials = 2000;
    let bodies: Vec<String> = futures_util::stream::iter(0..trials)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let answer = post(&client, &url, &[]).await;
                assert_eq!(answer.status, 200, "{}", answer.body);
                answer.body
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    let to_blue = bodies.iter().filter(|b| *b == "\"blue\"").count();
    assert_eq!(
        to_blue + bodies.iter().filter(|b| *b == "\"green\"").count(),
        trials
    );
    assert_binomial(to_blue, trials, 0.7, "requests to blue");
    assert_eq!((blue.hits(), green.hits()), (to_blue, trials - to_blue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_picks_a_deployment_even_at_zero_percent() {
    let blue = TestUpstream::start("blue").await;
    let green = TestUpstream::start("green").await;
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [deployment("blue", &[&blue]), deployment("green", &[&green])],
        "traffic": {"blue": 100, "green": 0},
        "mirror_traffic": {"green": 50},
    }));
    let client = client();
    for _ in 0..20 {
        let answer = post(
            &client,
            &router.url("/score"),
            &[("azureml-model-deployment", "green")],
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body, "\"green\"");
        assert_eq!(answer.header("azureml-model-deployment"), Some("green"));
    }
    // Named requests to blue are never mirrored to green.
    for _ in 0..20 {
        let answer = post(
            &client,
            &router.url("/score"),
            &[("azureml-model-deployment", "blue")],
        )
        .await;
        assert_eq!(answer.body, "\"blue\"");
    }
    assert_eq!(settled(|| green.hits()).await, 20);

    let unknown = post(
        &client,
        &router.url("/score"),
        &[("azureml-model-deployment", "red")],
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.message().contains("no deployment 'red'"),
        "{}",
        unknown.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_live_traffic_is_404_with_what_to_do() {
    let blue = TestUpstream::start("blue").await;
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [deployment("blue", &[&blue])],
    }));
    let answer = post(&client(), &router.url("/score"), &[]).await;
    assert_eq!(answer.status, 404);
    let message = answer.message();
    assert!(
        message.starts_with("No deployment with traffic"),
        "{message}"
    );
    assert!(message.contains("tug online-endpoint update"), "{message}");
    assert_eq!(blue.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_errors_are_424_and_other_paths_pass_through() {
    let blue = TestUpstream::start("blue").await;
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [deployment("blue", &[&blue])],
        "traffic": {"blue": 100},
    }));
    let client = client();
    let answer = post(&client, &router.url("/score?status=500"), &[]).await;
    assert_eq!(answer.status, 424);
    assert_eq!(
        answer.header("ms-azureml-model-error-statuscode"),
        Some("500")
    );
    assert_eq!(
        answer.header("ms-azureml-model-error-reason"),
        Some("Internal Server Error")
    );
    assert_eq!(answer.header("azureml-model-deployment"), Some("blue"));
    assert_eq!(answer.message(), "blue failed on purpose");

    let answer = post(&client, &router.url("/score?status=400"), &[]).await;
    assert_eq!(answer.status, 424);
    assert_eq!(
        answer.header("ms-azureml-model-error-statuscode"),
        Some("400")
    );

    let answer = post(&client, &router.url("/swagger.json"), &[]).await;
    assert_eq!(answer.status, 404, "non-score paths keep their status");
    assert_eq!(answer.header("azureml-model-deployment"), Some("blue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_request_timeout_is_408() {
    let blue = TestUpstream::start("blue").await;
    let mut slow = deployment("blue", &[&blue]);
    slow["request_timeout_ms"] = json!(300);
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [slow],
        "traffic": {"blue": 100},
    }));
    let started = Instant::now();
    let answer = post(&client(), &router.url("/score?sleep_ms=3000"), &[]).await;
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(answer.header("azureml-model-deployment"), Some("blue"));
    assert_eq!(
        answer.header("x-request-id").map(str::len),
        Some(36),
        "a made-up request id"
    );
    assert!(answer.message().contains("300 ms"), "{}", answer.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_twice_the_concurrency_in_flight_is_429() {
    let blue = TestUpstream::start("blue").await;
    // 1 instance × max_concurrent_requests_per_instance 1 × 2 = 2 in flight at most.
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [deployment("blue", &[&blue])],
        "traffic": {"blue": 100},
    }));
    let client = client();
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (client.clone(), router.url("/score?sleep_ms=1500"));
            tokio::spawn(async move { post(&client, &url, &[]).await.status })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while blue.hits() < 2 {
        assert!(Instant::now() < deadline, "slow requests never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let third = post(&client, &router.url("/score"), &[]).await;
    assert_eq!(third.status, 429, "{}", third.body);
    assert_eq!(third.header("azureml-model-deployment"), Some("blue"));
    for request in slow {
        assert_eq!(request.await.unwrap(), 200);
    }
    let after = post(&client, &router.url("/score"), &[]).await;
    assert_eq!(after.status, 200, "places are freed when requests finish");
    assert_eq!(
        blue.hits(),
        3,
        "the refused request never reached the instance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_instances_are_skipped_once_then_502() {
    let blue = TestUpstream::start("blue").await;
    let dead = {
        // A port nothing listens on any more.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [
            {"name": "blue", "instances": [dead, blue.address.to_string()]},
            {"name": "gone", "instances": [dead]},
            {"name": "empty", "instances": []},
        ],
        "traffic": {"blue": 100},
    }));
    let client = client();
    for _ in 0..6 {
        let answer = post(&client, &router.url("/score"), &[]).await;
        assert_eq!(
            answer.status, 200,
            "the live instance answers for the dead one"
        );
    }
    let gone = post(
        &client,
        &router.url("/score"),
        &[("azureml-model-deployment", "gone")],
    )
    .await;
    assert_eq!(gone.status, 502);
    assert!(gone.message().contains("'gone'"), "{}", gone.body);
    let empty = post(
        &client,
        &router.url("/score"),
        &[("azureml-model-deployment", "empty")],
    )
    .await;
    assert_eq!(empty.status, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_100_mib_are_413() {
    let blue = TestUpstream::start("blue").await;
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [deployment("blue", &[&blue])],
        "traffic": {"blue": 100},
    }));
    let address = router.base.trim_start_matches("http://").to_string();
    let reply = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!(
            "POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            100 * 1024 * 1024 + 1
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = vec![0u8; 4096];
        let read = stream.read(&mut reply).unwrap();
        String::from_utf8_lossy(&reply[..read]).to_string()
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert_eq!(blue.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_switches_traffic_without_failing_in_flight_requests() {
    let blue = TestUpstream::start("blue").await;
    let green = TestUpstream::start("green").await;
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [deployment("blue", &[&blue]), deployment("green", &[&green])],
        "traffic": {"blue": 100},
    }));
    let client = client();
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let (client, url) = (client.clone(), router.url("/score?sleep_ms=1000"));
            tokio::spawn(async move { post(&client, &url, &[]).await })
        })
        .collect();
    while blue.hits() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The new config drops blue altogether: its in-flight requests must still finish on it.
    router.rewrite_config(&json!({
        "endpoint": "ep",
        "deployments": [deployment("green", &[&green])],
        "traffic": {"green": 100},
    }));
    router.signal(libc::SIGHUP);
    router.wait_for_log("SIGHUP: reloaded", 1).await;
    for _ in 0..5 {
        let answer = post(&client, &router.url("/score"), &[]).await;
        assert_eq!(answer.body, "\"green\"");
    }
    for request in in_flight {
        let answer = request.await.unwrap();
        assert_eq!((answer.status, answer.body.as_str()), (200, "\"blue\""));
    }

    // A config that breaks the rules is refused; the router keeps serving the last good one.
    router.rewrite_config(&json!({
        "endpoint": "ep",
        "deployments": [deployment("green", &[&green])],
        "traffic": {"green": 90},
    }));
    router.signal(libc::SIGHUP);
    router.wait_for_log("keeping the previous config", 1).await;
    let log = router.log_lines().join("\n");
    assert!(log.contains("adds up to 90%"), "{log}");
    let answer = post(&client, &router.url("/score"), &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "\"green\""));

    std::fs::write(&router.config_path, "{not json").unwrap();
    router.signal(libc::SIGHUP);
    router.wait_for_log("keeping the previous config", 2).await;
    assert_eq!(post(&client, &router.url("/score"), &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_traffic_reaches_the_mirror_but_the_caller_sees_live_answers() {
    let blue = TestUpstream::start("blue").await;
    let green = TestUpstream::start("green").await;
    let mut mirror = deployment("green", &[&green]);
    // Room for the copies: the mirror's answers never hold up the caller anyway.
    mirror["max_concurrent_requests_per_instance"] = json!(8);
    let router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [deployment("blue", &[&blue]), mirror],
        "traffic": {"blue": 100},
        "mirror_traffic": {"green": 30},
    }));
    let client = client();
    let trials = 1000;
    for _ in 0..trials {
        let answer = post(&client, &router.url("/score"), &[]).await;
        assert_eq!(answer.body, "\"blue\"");
        assert_eq!(answer.header("azureml-model-deployment"), Some("blue"));
    }
    let mirrored = settled(|| green.hits()).await;
    assert_binomial(mirrored, trials, 0.3, "copies to green");
    assert_eq!(blue.hits(), trials);

    // A slow mirror never delays the live answer: wait for a few copies to be under way
    // while timing each live request.
    green.set_delay(Duration::from_millis(1500));
    let before = green.hits();
    for attempt in 0.. {
        assert!(attempt < 200, "no copies reached green");
        let started = Instant::now();
        let answer = post(&client, &router.url("/score"), &[]).await;
        assert_eq!(answer.body, "\"blue\"");
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{:?}",
            started.elapsed()
        );
        if green.hits() >= before + 3 {
            break;
        }
    }
    let slow_copies = settled(|| green.hits()).await - mirrored;

    let text = client
        .get(router.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sent = metric(
        &text,
        "tug_router_mirror_requests_total{deployment=\"green\",outcome=\"sent\"}",
    );
    let failed = metric(
        &text,
        "tug_router_mirror_requests_total{deployment=\"green\",outcome=\"failed\"}",
    );
    assert_eq!(sent, Some((mirrored + slow_copies) as f64), "{text}");
    assert_eq!(failed, Some(0.0), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let blue = TestUpstream::start("blue").await;
    let mut router = RouterProcess::start(&json!({
        "endpoint": "ep",
        "deployments": [deployment("blue", &[&blue])],
        "traffic": {"blue": 100},
    }));
    let client = client();
    let (url, slow_client) = (router.url("/score?sleep_ms=1000"), client.clone());
    let slow = tokio::spawn(async move { post(&slow_client, &url, &[]).await });
    while blue.hits() < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    router.signal(libc::SIGTERM);
    router.wait_for_log("stopped accepting", 1).await;

    let refused = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(router.url("/"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "new connections must be refused while draining"
    );

    let answer = slow.await.unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "\"blue\""));
    let status = router.wait_for_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    router.wait_for_log("drained; exiting", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_at_start_exits_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.json");
    std::fs::write(
        &path,
        json!({"endpoint": "ep", "deployments": [], "traffic": {"blue": 100}}).to_string(),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tug-infsrv"))
        .arg("router")
        .arg("--config")
        .arg(&path)
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("traffic names deployment 'blue'"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_router_starts_from_the_seed_and_follows_it_but_keeps_a_newer_config() {
    let blue = TestUpstream::start("blue").await;
    let green = TestUpstream::start("green").await;
    let seed_dir = tempfile::tempdir().unwrap();
    let seed = seed_dir.path().join("router.json");
    let config = |to: &str| {
        json!({
            "endpoint": "ep",
            "deployments": [deployment("blue", &[&blue]), deployment("green", &[&green])],
            "traffic": {to: 100},
        })
    };
    std::fs::write(&seed, config("blue").to_string()).unwrap();
    let router = RouterProcess::start_with(None, Some(&seed));
    let client = client();
    let answer = post(&client, &router.url("/score"), &[]).await;
    assert_eq!(answer.body, "\"blue\"", "started from the seed");
    assert_eq!(
        std::fs::read_to_string(&router.config_path).unwrap(),
        config("blue").to_string(),
        "the seed was copied to the config it reloads"
    );

    // A newer config given directly (as `apply-config` does) wins over the old seed...
    router.rewrite_config(&config("green"));
    router.signal(libc::SIGHUP);
    router.wait_for_log("SIGHUP: reloaded", 1).await;
    assert_eq!(
        post(&client, &router.url("/score"), &[]).await.body,
        "\"green\""
    );
    // ...until the seed itself changes (the kubelet updating the ConfigMap's file).
    std::fs::write(
        &seed,
        config("blue").to_string().replace("\"ep\"", "\"ep\" "),
    )
    .unwrap();
    router.wait_for_log("the seed changed: reloaded", 1).await;
    assert_eq!(
        post(&client, &router.url("/score"), &[]).await.body,
        "\"blue\""
    );
}

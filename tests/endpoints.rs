//! Online endpoints on the real Docker engine, through the real CLI: deploy and invoke,
//! the Azure front-door codes, key auth, a traffic split checked statistically, scaling,
//! a rolling update that drops nothing, a deployment whose init() fails, and deletes that
//! leave nothing running.

mod common;

use std::time::{Duration, Instant};

use common::{MINIMAL, Ws};
use serde_json::Value;

/// A scoring script with no dependencies: the "model" is a JSON file with an offset.
const SCORE: &str = include_str!("scoring/offset.py");

fn deployment(name: &str, extra: &str) -> String {
    format!(
        "name: {name}\n\
         endpoint_name: ep-test\n\
         model: azureml:offset@latest\n\
         code_configuration:\n  code: score\n  scoring_script: score.py\n\
         environment:\n  image: {MINIMAL}\n\
         instance_count: 1\n\
         {extra}"
    )
}

fn setup(ws: &Ws) -> (u16, String) {
    common::require_image(MINIMAL);
    ws.write("score/score.py", SCORE);
    ws.write("model/model.json", r#"{"offset": 10}"#);
    ws.ok(&[
        "model",
        "create",
        "--name",
        "offset",
        "--path",
        "model/model.json",
    ]);
    ws.write("endpoint.yml", "name: ep-test\nauth_mode: key\n");
    let ep = ws.json(&["online-endpoint", "create", "-f", "endpoint.yml"]);
    assert_eq!(ep["state"], "Succeeded", "{ep}");
    let port = ep["port"].as_u64().unwrap() as u16;
    let creds = ws.json(&["online-endpoint", "get-credentials", "-n", "ep-test"]);
    (port, creds["primaryKey"].as_str().unwrap().to_string())
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn score(port: u16, key: Option<&str>, body: &str) -> (u16, reqwest::header::HeaderMap, String) {
    score_to(port, key, None, body)
}

/// `deployment` set: sent with `azureml-model-deployment`, past the traffic split.
fn score_to(
    port: u16,
    key: Option<&str>,
    deployment: Option<&str>,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client()
        .post(format!("http://127.0.0.1:{port}/score"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(d) = deployment {
        req = req.header("azureml-model-deployment", d);
    }
    let resp = req.send().unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().unwrap())
}

/// Announces a 101 MiB body and reads the answer without sending it (a server refuses on
/// the length and closes, so a client still writing would only see a broken pipe).
fn oversized_status(port: u16, key: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"data\": ",
        101u64 << 20
    )
    .unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn instance_containers(ws: &Ws, deployment: &str) -> Vec<String> {
    let id = ws.workspace_id().unwrap();
    ws.containers(&id)
        .into_iter()
        .filter(|c| c.contains(&format!("-ep-test-{deployment}-g")))
        .collect()
}

#[test]
fn deploy_invoke_split_roll_and_delete() {
    let ws = Ws::new();
    let (port, key) = setup(&ws);
    ws.write(
        "blue.yml",
        &deployment("blue", "environment_variables:\n  WHO: blue\n"),
    );
    let out = ws.tug(&[
        "online-deployment",
        "create",
        "-f",
        "blue.yml",
        "--all-traffic",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Instances run as a non-root user.
    let blue = instance_containers(&ws, "blue");
    let uid = std::process::Command::new("docker")
        .args(["exec", &blue[0], "id", "-u"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "1000");

    // Invoke through the CLI and over plain HTTP with the key, as an Azure client would.
    ws.write("req.json", r#"{"data": [1, 2]}"#);
    let out = ws.ok(&[
        "online-endpoint",
        "invoke",
        "-n",
        "ep-test",
        "--request-file",
        "req.json",
    ]);
    assert!(out.contains("[11, 12]"), "{out}");
    let (code, headers, body) = score(port, Some(&key), r#"{"data": [5]}"#);
    assert_eq!(code, 200, "{body}");
    assert_eq!(headers["azureml-model-deployment"], "blue");
    assert!(headers.contains_key("x-ms-request-id"));

    // Auth and the front door's codes.
    assert_eq!(score(port, None, r#"{"data": [1]}"#).0, 401);
    assert_eq!(score(port, Some("wrong"), r#"{"data": [1]}"#).0, 401);
    let (code, headers, _) = score(port, Some(&key), r#"{"data": "raise"}"#);
    assert_eq!(code, 424, "run() raising reaches the client as Azure's 424");
    assert_eq!(headers["ms-azureml-model-error-statuscode"], "500");
    let (code, _, _) = score(port, Some(&key), r#"{"data": [1, 2"#);
    assert_eq!(code, 424, "bad JSON fails in run(), so 424 as well");
    assert_eq!(oversized_status(port, &key), 413);

    // A worker that dies mid-request fails that request only; its replacement serves on.
    let (code, headers, _) = score(port, Some(&key), r#"{"data": "crash"}"#);
    assert_eq!(code, 424, "the instance answered 500 for the lost request");
    assert_eq!(headers["ms-azureml-model-error-statuscode"], "500");
    let start = Instant::now();
    loop {
        let (code, _, body) = score(port, Some(&key), r#"{"data": [1]}"#);
        if code == 200 {
            assert!(body.contains("[11]"), "{body}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no recovery: {code} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A second deployment with two instances, sized by an instance type of the workspace
    // config, and a 70/30 split.
    ws.write(
        ".tug/config.yaml",
        "compute:\n  local:\n    type: docker\n    instance_types:\n      half: {cpu: 0.5, memory: 512Mi}\n",
    );
    ws.write(
        "green.yml",
        &deployment(
            "green",
            "environment_variables:\n  WHO: green\ninstance_type: half\n",
        )
        .replace("instance_count: 1", "instance_count: 2"),
    );
    ws.ok(&["online-deployment", "create", "-f", "green.yml"]);
    let green = instance_containers(&ws, "green");
    assert_eq!(green.len(), 2, "instance_count: 2 runs two containers");
    let sized = std::process::Command::new("docker")
        .args([
            "inspect",
            "-f",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
            &green[0],
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&sized.stdout).trim(),
        "500000000 536870912"
    );
    let (_, headers, _) = score_to(port, Some(&key), Some("green"), r#"{"data": [1]}"#);
    assert_eq!(
        headers["azureml-model-deployment"], "green",
        "the header reaches a 0% deployment"
    );
    ws.ok(&[
        "online-endpoint",
        "update",
        "-n",
        "ep-test",
        "--traffic",
        "blue=70 green=30",
    ]);
    let n = 400;
    let mut blue = 0;
    for _ in 0..n {
        let (code, headers, _) = score(port, Some(&key), r#"{"data": [1]}"#);
        assert_eq!(code, 200);
        if headers["azureml-model-deployment"] == "blue" {
            blue += 1;
        }
    }
    // Binomial(400, 0.7): mean 280, sd 9.2; 5 sd either side.
    assert!((234..=326).contains(&blue), "blue got {blue} of {n}");

    // A rolling update of blue under load: every request succeeds.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, key) = (stop.clone(), key.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (code, _, body) = score(port, Some(&key), r#"{"data": [1]}"#);
                sent += 1;
                if code != 200 {
                    failures.push(format!("{code} {body}"));
                }
            }
            (sent, failures)
        })
    };
    let before = instance_containers(&ws, "blue");
    ws.write(
        "blue.yml",
        &deployment("blue", "environment_variables:\n  WHO: blue-2\n"),
    );
    ws.ok(&["online-deployment", "update", "-f", "blue.yml"]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (sent, failures) = load.join().unwrap();
    assert!(
        sent > 10,
        "the load ran during the update ({sent} requests)"
    );
    assert!(failures.is_empty(), "failed during the roll: {failures:?}");
    let after = instance_containers(&ws, "blue");
    assert!(
        before.iter().all(|c| !after.contains(c)),
        "old generation gone: {before:?} {after:?}"
    );
    let (_, _, body) = score_to(port, Some(&key), Some("blue"), r#"{"data": [1]}"#);
    assert!(body.contains("blue-2"), "the new generation serves: {body}");

    // A regenerated key works at once, the old one stops, the other one never stops.
    let creds = ws.json(&["online-endpoint", "get-credentials", "-n", "ep-test"]);
    let secondary = creds["secondaryKey"].as_str().unwrap().to_string();
    ws.ok(&[
        "online-endpoint",
        "regenerate-keys",
        "-n",
        "ep-test",
        "--key-type",
        "primary",
    ]);
    let creds = ws.json(&["online-endpoint", "get-credentials", "-n", "ep-test"]);
    let new_key = creds["primaryKey"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(score(port, Some(&key), r#"{"data": [1]}"#).0, 401);
    assert_eq!(score(port, Some(&new_key), r#"{"data": [1]}"#).0, 200);
    assert_eq!(score(port, Some(&secondary), r#"{"data": [1]}"#).0, 200);

    // Deleting a deployment that has traffic is refused; after moving it, it goes.
    let out = ws.tug(&[
        "online-deployment",
        "delete",
        "-n",
        "green",
        "-e",
        "ep-test",
    ]);
    assert!(!out.status.success());
    ws.ok(&[
        "online-endpoint",
        "update",
        "-n",
        "ep-test",
        "--traffic",
        "blue=100",
    ]);
    ws.ok(&[
        "online-deployment",
        "delete",
        "-n",
        "green",
        "-e",
        "ep-test",
    ]);
    assert!(instance_containers(&ws, "green").is_empty());

    // Deleting the endpoint leaves no container and no network.
    ws.ok(&["online-endpoint", "delete", "-n", "ep-test", "--yes"]);
    let id = ws.workspace_id().unwrap();
    assert!(ws.containers(&id).is_empty(), "{:?}", ws.containers(&id));
    assert!(ws.networks(&id).is_empty(), "{:?}", ws.networks(&id));
}

#[test]
fn a_failing_init_fails_the_deployment_fast_with_the_traceback() {
    let ws = Ws::new();
    let (_port, _key) = setup(&ws);
    ws.write(
        "bad.yml",
        &deployment("bad", "environment_variables:\n  FAIL_INIT: \"1\"\n"),
    );
    let start = Instant::now();
    let out = ws.tug(&[
        "online-deployment",
        "create",
        "-f",
        "bad.yml",
        "--all-traffic",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(120), "never a hang");
    assert!(
        stderr.contains("init failed on purpose"),
        "the traceback is in the error: {stderr}"
    );
    let logs = ws.ok(&[
        "online-deployment",
        "get-logs",
        "-n",
        "bad",
        "-e",
        "ep-test",
    ]);
    assert!(
        logs.contains("RuntimeError: init failed on purpose"),
        "{logs}"
    );
    assert_failed_without_instances(&ws, "bad");
}

/// The deployment is Failed and none of its containers is left.
fn assert_failed_without_instances(ws: &Ws, name: &str) {
    assert!(
        instance_containers(ws, name).is_empty(),
        "no failed container of {name} left"
    );
    let d: Value = ws.json(&["online-deployment", "show", "-n", name, "-e", "ep-test"]);
    assert_eq!(d["state"], "Failed", "{d}");
}

/// Runs `docker args...` and asserts it succeeded.
fn docker(args: &[&str]) {
    let status = std::process::Command::new("docker")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "docker {args:?}");
}

/// The runtime this suite ships is the one plain `cargo build` gives: dynamically linked
/// (the Makefile does not link it statically), so every endpoint test above runs the
/// bundled-loader path that a `cargo install` user gets.
#[test]
fn the_suite_ships_the_dynamic_runtime_a_plain_cargo_build_gives() {
    let infsrv = std::path::Path::new(env!("CARGO_BIN_EXE_tug")).with_file_name("tug-infsrv");
    let bytes = std::fs::read(&infsrv).unwrap();
    let loader = tug::endpoint::runtime::elf_interpreter(&bytes).unwrap();
    assert!(
        loader.is_some(),
        "{} is static; the tests should exercise the dynamic build",
        infsrv.display()
    );
}

#[test]
fn a_router_that_cannot_start_fails_the_create_with_its_log_and_leaves_nothing() {
    let ws = Ws::new();
    // A runtime that cannot start in a `FROM scratch` image, as a dynamic binary without
    // its loader could not: the router container exits at once.
    let broken = ws.write("broken-infsrv", "#!/bin/sh\nexit 3\n");
    ws.write("endpoint.yml", "name: ep-test\nauth_mode: key\n");
    let out = ws
        .tug_cmd(&["online-endpoint", "create", "-f", "endpoint.yml"])
        .env("TUG_INFSRV", &broken)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("router did not start"), "{stderr}");
    assert!(
        stderr.contains("exec /tug-infsrv"),
        "the router's own log is in the error: {stderr}"
    );
    let ep: Value = ws.json(&["online-endpoint", "show", "-n", "ep-test"]);
    assert_eq!(ep["state"], "Failed", "{ep}");
    let id = ws.workspace_id().unwrap();
    assert!(ws.containers(&id).is_empty(), "{:?}", ws.containers(&id));
    assert!(ws.networks(&id).is_empty(), "{:?}", ws.networks(&id));
    ws.ok(&["online-endpoint", "delete", "-n", "ep-test"]);
}

#[test]
fn a_deployment_is_ready_only_when_the_endpoint_answers_for_it() {
    let ws = Ws::new();
    let (port, key) = setup(&ws);
    let id = ws.workspace_id().unwrap();
    let router = format!("tug-{id}-ep-ep-test-router");
    // The router runs but cannot reach anything: cut it off its endpoint network. The
    // instance answers on its own port; only a request through the endpoint shows the fault.
    let net = format!("tug-{id}-ep-ep-test");
    docker(&["network", "disconnect", &net, &router]);
    ws.write("blue.yml", &deployment("blue", ""));
    let out = ws.tug(&[
        "online-deployment",
        "create",
        "-f",
        "blue.yml",
        "--all-traffic",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("does not answer for it"),
        "says what is wrong: {stderr}"
    );
    assert_failed_without_instances(&ws, "blue");
    let ep: Value = ws.json(&["online-endpoint", "show", "-n", "ep-test"]);
    assert!(
        ep["traffic"].as_object().is_none_or(|t| t.is_empty()),
        "{ep}"
    );

    // Reconnected, the same file deploys and scores through the endpoint.
    docker(&["network", "connect", &net, &router]);
    ws.ok(&["online-deployment", "update", "-f", "blue.yml"]);
    ws.ok(&[
        "online-endpoint",
        "update",
        "-n",
        "ep-test",
        "--traffic",
        "blue=100",
    ]);
    let (code, _, body) = score(port, Some(&key), r#"{"data": [1]}"#);
    assert_eq!(code, 200, "{body}");

    // A router that is gone fails a deployment at once, with the router's state (a
    // stopped one the server starts again by itself).
    docker(&["rm", "-f", &router]);
    ws.write("green.yml", &deployment("green", ""));
    let out = ws.tug(&["online-deployment", "create", "-f", "green.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("is not running"), "{stderr}");
    ws.ok(&["online-endpoint", "delete", "-n", "ep-test"]);
    assert!(ws.containers(&id).is_empty(), "{:?}", ws.containers(&id));
}

#[test]
fn a_deployment_secret_reaches_the_scorer_and_nothing_else() {
    const VALUE: &str = "s3cr3t-Deploy-Value-77";
    let ws = Ws::new();
    let (port, key) = setup(&ws);
    ws.set_secret("WHO_SECRET", VALUE);
    ws.write(
        "sec.yml",
        &deployment(
            "sec",
            "environment_variables:\n  WHO: ${{secrets.WHO_SECRET}}\n",
        ),
    );
    ws.ok(&[
        "online-deployment",
        "create",
        "-f",
        "sec.yml",
        "--all-traffic",
    ]);
    let (status, _, body) = score(port, Some(&key), r#"{"data": [1]}"#);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["who"], VALUE, "the scoring process got the value");

    let logs = ws.ok(&[
        "online-deployment",
        "get-logs",
        "-n",
        "sec",
        "-e",
        "ep-test",
    ]);
    assert!(logs.contains("init who=***"), "masked in get-logs: {logs}");
    assert!(!logs.contains(VALUE), "{logs}");
    let shown = ws
        .json(&["online-deployment", "show", "-n", "sec", "-e", "ep-test"])
        .to_string();
    assert!(
        shown.contains("${{secrets.WHO_SECRET}}") && !shown.contains(VALUE),
        "the reference is kept, not the value: {shown}"
    );

    // The value is injected at container start, never built into the scoring image.
    let container = instance_containers(&ws, "sec").pop().expect("an instance");
    let image = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.Image}}", &container])
        .output()
        .unwrap();
    let image = String::from_utf8_lossy(&image.stdout).trim().to_string();
    let saved = std::process::Command::new("docker")
        .args(["save", &image])
        .output()
        .unwrap();
    assert!(saved.status.success() && saved.stdout.len() > 1 << 20);
    assert!(
        !saved
            .stdout
            .windows(VALUE.len())
            .any(|w| w == VALUE.as_bytes()),
        "the scoring image's layers hold the value"
    );
}

#[test]
fn endpoint_keys_are_sealed_at_rest() {
    let ws = Ws::new();
    let (_port, key) = setup(&ws);
    ws.ok(&["server", "stop"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut stack = vec![ws.path().join(".tug")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if let Ok(bytes) = std::fs::read(e.path()) {
                assert!(
                    !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                    "the endpoint key is in plain text in {}",
                    e.path().display()
                );
            }
        }
    }
    // And it still reads back (the server starts again on demand).
    let creds = ws.json(&["online-endpoint", "get-credentials", "-n", "ep-test"]);
    assert_eq!(creds["primaryKey"], key.as_str());
}

//! Entry points for the fuzz targets in `tests/fuzz/` (cargo fuzz, libFuzzer) and for the
//! test that replays their corpus and every crash they found (`tests/fuzz_regressions.rs`),
//! so a crash found by the fuzzer is a failing `cargo test` from then on.
//!
//! Each entry takes arbitrary bytes and must return without panicking, overflowing the stack
//! or allocating without bound; whatever it returns is thrown away.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

/// A fuzz entry: arbitrary bytes in, nothing out.
pub type Entry = fn(&[u8]);

/// Every fuzz target, by the name of its file in `tests/fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, Entry)] = &[
    ("job", job),
    ("environment", environment),
    ("conda", conda),
    ("model", model),
    ("endpoint", endpoint),
    ("deployment", deployment),
    ("config", config),
    ("expr", expr),
    ("http_front", http_front),
    ("worker_frames", worker_frames),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `--set` overrides from the first line when it starts with `#set `: `a=1;b=[x]`.
fn with_overrides(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("#set "))
        .map(|l| l.split(';').filter_map(|kv| kv.split_once('=')).collect())
        .unwrap_or_default()
}

/// Job files: the type sniffing, the command job and the sweep job readers.
pub fn job(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let p = Path::new("fuzz.job.yml");
    let set = with_overrides(t);
    let _ = crate::spec::job_file_kind(p, t);
    if let Ok(job) = crate::spec::parse_command_job(p, t, &set) {
        // A job that reads must render: its command with placeholder values.
        let inputs: BTreeMap<String, String> = job
            .inputs
            .keys()
            .map(|k| (k.clone(), format!("/in/{k}")))
            .collect();
        let outputs: BTreeMap<String, String> = job
            .outputs
            .keys()
            .map(|k| (k.clone(), format!("/out/{k}")))
            .collect();
        let _ = crate::spec::render_command(&job.command, &inputs, &outputs);
    }
    let _ = crate::spec::parse_sweep_job(p, t, &set);
}

pub fn environment(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = crate::spec::parse_environment(Path::new("fuzz.env.yml"), t, &with_overrides(t));
}

pub fn conda(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = crate::spec::conda_pip_plan(Path::new("fuzz.conda.yml"), t);
}

pub fn model(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = crate::spec::parse_model(Path::new("fuzz.model.yml"), t, &with_overrides(t));
}

pub fn endpoint(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ =
        crate::spec::parse_online_endpoint(Path::new("fuzz.endpoint.yml"), t, &with_overrides(t));
}

pub fn deployment(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = crate::spec::parse_online_deployment(
        Path::new("fuzz.deployment.yml"),
        t,
        &with_overrides(t),
    );
}

/// The workspace config (`.tug/config.yml`): compute targets and instance types.
pub fn config(data: &[u8]) {
    let Some(t) = text(data) else { return };
    if let Ok(cfg) = crate::compute::config::WorkspaceConfig::parse("config.yml", t) {
        for name in cfg.compute.keys() {
            let _ = cfg.target(name, "config.yml");
        }
    }
}

/// The `${{...}}` / `$[[...]]` engine: the first line is the command; the next lines name
/// inputs (`name=value`) that have values.
pub fn expr(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let (command, rest) = t.split_once('\n').unwrap_or((t, ""));
    let mut inputs = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    for line in rest.lines() {
        if let Some((k, v)) = line.split_once('=') {
            inputs.insert(k.to_string(), v.to_string());
        } else {
            outputs.insert(line.to_string(), format!("/out/{line}"));
        }
    }
    let _ = crate::spec::render_command(command, &inputs, &outputs);
    let names: Vec<&str> = inputs.keys().map(String::as_str).collect();
    let _ = crate::spec::expr::substitute_search_space(command, &names, &inputs);
}

/// Worker framing: a byte stream as a worker would send it, cut into frames and each
/// payload read by its kind.
pub fn worker_frames(data: &[u8]) {
    use crate::serving::protocol::{self, Kind};
    let mut buf = data;
    while let Ok(Some(head)) = protocol::frame_head(buf) {
        if buf.len() < head.total_len {
            break;
        }
        let payload = &buf[head.payload_range()];
        match head.kind {
            Kind::Ready => drop(protocol::parse_ready(payload)),
            Kind::InitFailed => drop(protocol::parse_init_failed(payload)),
            Kind::Response => drop(protocol::parse_response(payload)),
            Kind::Request => {}
        }
        buf = &buf[head.total_len..];
    }
}

struct Front {
    runtime: tokio::runtime::Runtime,
    app: std::sync::Arc<crate::serving::routes::App>,
    _dir: tempfile::TempDir,
}

/// The scoring front as a client reaches it: raw bytes on a connection, parsed by hyper and
/// answered by tug-infsrv's routes (auth, CORS, request ids, body limits, the worker queue).
/// The pool has no worker and no queue, so `/score` answers 503 without Python.
pub fn http_front(data: &[u8]) {
    static FRONT: OnceLock<Front> = OnceLock::new();
    let front = FRONT.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp folder");
        let script = dir.path().join("score.py");
        std::fs::write(&script, "def init(): pass\ndef run(raw): return raw\n").unwrap();
        let flags = <crate::serving::settings::Flags as clap::Parser>::try_parse_from([
            "tug-infsrv",
            "--entry_script",
            script.to_str().unwrap(),
            "--worker_count",
            "1",
        ])
        .expect("flags");
        let mut settings = crate::serving::settings::Settings::resolve(
            flags,
            &crate::serving::settings::ProcessHost,
        )
        .expect("settings");
        settings.auth_key_sha256 = vec![[7u8; 32]];
        settings.cors_origins = vec!["https://example.com".into()];
        settings.max_request_bytes = 4096;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let metrics = std::sync::Arc::new(crate::serving::metrics::Metrics::new(0));
        let app = runtime.block_on(async {
            let pool = crate::serving::pool::Pool::start(
                crate::serving::pool::PoolConfig {
                    python: "/nonexistent/python".into(),
                    shim_dir: dir.path().to_path_buf(),
                    env: Vec::new(),
                    worker_count: 0,
                    worker_timeout: Some(std::time::Duration::from_millis(1)),
                    max_queue: 0,
                    scoring_timeout_ms: 1,
                    pipeline: 0,
                },
                metrics.clone(),
            );
            std::sync::Arc::new(crate::serving::routes::App::new(&settings, pool, metrics))
        });
        Front {
            runtime,
            app,
            _dir: dir,
        }
    });
    let app = front.app.clone();
    let data = data.to_vec();
    front.runtime.block_on(async move {
        use tokio::io::AsyncWriteExt;
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, std::convert::Infallible>(app.handle(request, None).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(server), service);
        let feed = async move {
            let _ = client.write_all(&data).await;
            let _ = client.shutdown().await;
            // Drain the answers so the server is never blocked writing them.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink).await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            tokio::join!(conn, feed)
        })
        .await;
    });
}

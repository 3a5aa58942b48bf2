//! Fault: a scoring service under 64 connections while its workers are killed.
//!
//!     cargo run --release --example fault_worker_kill [-- SECONDS [KILL_EVERY_MS]]
//!
//! Starts this checkout's `tug-infsrv` on the host (4 workers, a score.py that takes ~5 ms),
//! drives it with 64 keep-alive connections for SECONDS (60), and SIGKILLs one worker every
//! KILL_EVERY_MS (3000). A killed worker may fail only the requests it was running (one, or
//! a few when requests were pipelined onto it); every other request must succeed. Prints
//! requests, failures, kills, the worst failures-per-kill, and the front's RSS at start and
//! end (memory must stay flat while workers come and go).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 64;
const WORKERS: usize = 4;

fn infsrv() -> PathBuf {
    if let Some(p) = std::env::var_os("TUG_INFSRV") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/examples/this → target/<profile>/tug-infsrv
    exe.parent().unwrap().parent().unwrap().join("tug-infsrv")
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The front's direct children: its Python workers.
fn workers(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // pid (comm) state ppid ...: comm may hold spaces, so split after the last `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(60);
    let kill_every =
        Duration::from_millis(args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3000));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("score.py");
    std::fs::write(
        &script,
        "import json, time\n\
         def init():\n    pass\n\
         def run(raw):\n    time.sleep(0.005)\n    return {'echo': json.loads(raw)['data']}\n",
    )
    .unwrap();
    let port = free_port();
    let bin = infsrv();
    let mut child = std::process::Command::new(&bin)
        .args(["--entry_script", script.to_str().unwrap()])
        .args([
            "--port",
            &port.to_string(),
            "--worker_count",
            &WORKERS.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {}: {e} (build it: cargo build --release)",
                bin.display()
            )
        });
    let pid = child.id();
    let url = format!("http://127.0.0.1:{port}/score");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    wait_ready(&client, &url).await;
    // Warm up, then take the starting RSS.
    for _ in 0..200 {
        let _ = client.post(&url).body(r#"{"data": [1]}"#).send().await;
    }
    let rss_start = rss_kib(pid);

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let (client, url, ok, failed) = (client.clone(), url.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let body = format!(r#"{{"data": [{c}, {i}]}}"#);
                match client.post(&url).body(body).send().await {
                    Ok(r) if r.status().is_success() => {
                        let text = r.text().await.unwrap_or_default();
                        if text.contains(&format!("[{c}, {i}]")) {
                            ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let mut kills = 0u64;
    let mut worst = 0u64;
    let mut last_failed = 0;
    let mut rss_samples = vec![rss_start];
    while Instant::now() + kill_every < deadline {
        tokio::time::sleep(kill_every).await;
        let now_failed = failed.load(Ordering::Relaxed);
        worst = worst.max(now_failed - last_failed);
        if let Some(victim) = workers(pid).first() {
            // SAFETY: sending a signal to a process id we just read.
            unsafe { libc::kill(*victim as i32, libc::SIGKILL) };
            kills += 1;
        }
        // Failures caused by this kill show up before the next one.
        last_failed = failed.load(Ordering::Relaxed);
        rss_samples.push(rss_kib(pid));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let now_failed = failed.load(Ordering::Relaxed);
    worst = worst.max(now_failed - last_failed);
    let rss_end = rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();

    let total = ok.load(Ordering::Relaxed) + now_failed;
    println!("| measure | value |");
    println!("| --- | --- |");
    println!("| duration | {seconds} s, {CONNECTIONS} connections, {WORKERS} workers |");
    println!(
        "| requests | {total} ({:.0}/s) |",
        total as f64 / seconds as f64
    );
    println!(
        "| workers killed | {kills} (one every {} ms) |",
        kill_every.as_millis()
    );
    println!("| failed requests | {now_failed} |");
    println!(
        "| failed per kill | {:.2} mean, {worst} worst in one kill interval |",
        now_failed as f64 / kills.max(1) as f64
    );
    println!("| front RSS start / end | {rss_start} KiB / {rss_end} KiB |");
    println!(
        "| front RSS min / max during | {} KiB / {} KiB |",
        rss_samples.iter().min().unwrap(),
        rss_samples.iter().max().unwrap()
    );
    // The trend, in quarters of the run: flat means the last quarters do not keep rising.
    let q = |f: f64| rss_samples[((rss_samples.len() - 1) as f64 * f) as usize];
    println!(
        "| front RSS at 0 / 25 / 50 / 75 / 100 % | {} / {} / {} / {} / {rss_end} KiB |",
        q(0.0),
        q(0.25),
        q(0.5),
        q(0.75)
    );
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let start = Instant::now();
    loop {
        if let Ok(r) = client.post(url).body(r#"{"data": [0]}"#).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "tug-infsrv never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

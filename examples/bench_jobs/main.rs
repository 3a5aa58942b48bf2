//! Job-throughput and resubmit-latency benchmark for tug.
//!
//! P1: many trivial command jobs (`echo hello`, a one-file `code:` folder, no conda
//! file) with a fixed number in flight, three ways:
//!   * through tug: a `tug server` started from the binary in a temporary workspace,
//!     driven over real HTTP (snapshot upload, `POST /api/jobs`, then
//!     `GET /api/jobs/{id}/stream` until its `end` event), as `tug job create --stream`
//!     does minus the YAML parsing;
//!   * directly through the engine API (bollard) with the environment image tug built:
//!     the same create request and the same tar (made by tug's own pure
//!     `run::plan::container_spec` and `compute::docker::create_body`), copy in,
//!     start, follow the log to its end, wait, copy `./outputs` and `./logs` out,
//!     remove;
//!   * a `docker run --rm` CLI loop, for context.
//!
//! P2: edit `train.py` only and resubmit; checks that no image is built and reports
//! the time from `POST /api/jobs` to the stream's `Running` status next to plain
//! `docker run --rm` of the cached image.
//!
//!   cargo run --release --example bench_jobs -- --jobs 50 --concurrency 4
//!
//! Sizes also come from BENCH_JOBS, BENCH_CONCURRENCY, BENCH_ROUNDS, BENCH_P2_REPEATS.
//! `cargo run --example` does not build the `tug` binary, so this program runs
//! `cargo build --bin tug` with its own profile first (a no-op when up to date);
//! TUG_BIN=<path> uses a given binary instead. Everything it makes (server,
//! containers, temporary folders, an environment image that was not there before) is
//! removed at the end, also on Ctrl-C.

mod cpu;
mod engine;
mod p2;
mod paths;
mod report;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, ensure};
use bollard::Docker;
use clap::Parser;

use tug::server::api::JobView;

use cpu::{CpuSnap, CpuUse, loadavg};
use engine::{image_ids, settle};
use paths::{DirectCtx, DirectJob, Server, TugJob, cli_job, start_server, submission, tug_job};
use report::ms;

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmark tug against the Docker engine API and the docker CLI")]
struct Args {
    /// Jobs per path per round (P1).
    #[arg(long, env = "BENCH_JOBS", default_value_t = 50)]
    jobs: usize,
    /// Jobs kept in flight (P1).
    #[arg(long, env = "BENCH_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,
    /// P1 rounds; the order of the tug and direct paths alternates between rounds.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 1)]
    rounds: usize,
    /// Resubmits measured in P2 (0 skips P2).
    #[arg(long, env = "BENCH_P2_REPEATS", default_value_t = 10)]
    p2_repeats: usize,
    /// Base image of the jobs.
    #[arg(long, default_value = "tug/python:3.11-minimal")]
    image: String,
    /// The tug binary to start the server from (default: built next to this example).
    #[arg(long, env = "TUG_BIN")]
    tug_bin: Option<PathBuf>,
    /// Leave out the `docker run` CLI loop of P1.
    #[arg(long)]
    skip_cli: bool,
    /// Keep the environment image even when this run built it.
    #[arg(long)]
    keep_image: bool,
    /// Target ratio tug / direct (wall time).
    #[arg(long, default_value_t = 1.15)]
    goal: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.jobs > 0 && args.concurrency > 0 && args.rounds > 0,
        "--jobs, --concurrency and --rounds must be at least 1"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async_main(args))
}

async fn async_main(args: Args) -> anyhow::Result<()> {
    let docker = Docker::connect_with_defaults()?
        .negotiate_version()
        .await
        .context("connecting to the Docker engine")?;
    docker.inspect_image(&args.image).await.with_context(|| {
        format!(
            "base image {} is not on the engine; build it with images/build-base.sh",
            args.image
        )
    })?;
    let bin = tug_binary(&args)?;
    let tmp = tempfile::Builder::new().prefix("tug-bench-").tempdir()?;
    let bench_id = format!("bench{}", tug::workspace::random_hex(4));
    let images_before = image_ids(&docker).await?;
    let mut bench = Bench {
        args: args.clone(),
        docker: docker.clone(),
        tmp: tmp.path().to_path_buf(),
        bench_id: bench_id.clone(),
        bin,
        server: None,
        env_tag: None,
    };
    let outcome = tokio::select! {
        r = bench.run() => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    let cleaned = bench.cleanup(&images_before).await;
    drop(tmp);
    outcome?;
    cleaned
}

/// The `tug` binary: TUG_BIN, else the one of this example's profile, built first
/// when this runs under cargo.
fn tug_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(p) = &args.tug_bin {
        ensure!(p.is_file(), "TUG_BIN {} is not a file", p.display());
        return Ok(p.clone());
    }
    let exe = std::env::current_exe()?;
    // target/<profile>/examples/bench_jobs
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target folder from this example's path")?;
    let bin = profile_dir.join("tug");
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("debug");
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "--quiet", "--bin", "tug"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        eprintln!("[bench] building the tug binary ({profile})");
        let status = cmd.status().context("running cargo build --bin tug")?;
        ensure!(status.success(), "cargo build --bin tug failed");
    }
    ensure!(
        bin.is_file(),
        "{} does not exist; build it with `cargo build --bin tug` or set TUG_BIN",
        bin.display()
    );
    Ok(bin)
}

struct Bench {
    args: Args,
    docker: Docker,
    tmp: PathBuf,
    bench_id: String,
    bin: PathBuf,
    server: Option<Server>,
    env_tag: Option<String>,
}

struct PathResult {
    name: String,
    jobs: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    cpu: CpuUse,
}

impl Bench {
    async fn run(&mut self) -> anyhow::Result<()> {
        let a = self.args.clone();
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let load_before = loadavg();
        let info = self.docker.info().await?;
        let version = self.docker.version().await?;

        // A tiny code folder and the submission every P1 job uses.
        let code_dir = self.tmp.join("code");
        std::fs::create_dir_all(&code_dir)?;
        std::fs::write(code_dir.join("train.py"), "print('hello')\n")?;
        let code_entries = tug::snapshot::read_folder(&code_dir)?;
        let code_tar = tug::snapshot::tar_bytes(&code_entries, "", 0, 0);
        let template = submission(&a.image, "echo hello", "bench-p1");

        let ws_root = self.tmp.join("ws");
        std::fs::create_dir_all(&ws_root)?;
        let t = Instant::now();
        self.server = Some(start_server(&self.bin, &ws_root, &self.tmp).await?);
        eprintln!("[bench] tug server up in {} ms", ms(t.elapsed()));
        let client = self.server.as_ref().unwrap().client.clone();

        // Warm-up: one job each way; the tug one builds (or finds) the env image.
        eprintln!("[bench] warm-up");
        let warm = tug_job(&client, &code_tar, &template).await?;
        let view: JobView = client.get(&format!("/api/jobs/{}", warm.id)).await?;
        let tag = view
            .run
            .image
            .clone()
            .context("the warm-up run has no image")?;
        self.env_tag = Some(tag.clone());
        let ws = self.server.as_ref().unwrap().ws.clone();
        let build_log = std::fs::read_to_string(ws.run_dir(&warm.id).join("system_logs/build.log"))
            .unwrap_or_default();
        eprintln!(
            "[bench] env image {tag} ({})",
            build_log.lines().last().unwrap_or("no build log")
        );
        let direct = DirectCtx {
            docker: self.docker.clone(),
            ws_id: self.bench_id.clone(),
            image: tag.clone(),
            template: template.clone(),
            code: code_entries.clone(),
            out_dir: self.tmp.join("direct-out"),
        };
        direct.job("warmup".into()).await?;
        if !a.skip_cli {
            cli_job(&self.bench_id, &tag).await?;
        }

        // P1.
        let mut tug_jobs: Vec<TugJob> = Vec::new();
        let mut direct_jobs: Vec<DirectJob> = Vec::new();
        let mut tug_wall = Duration::ZERO;
        let mut direct_wall = Duration::ZERO;
        let mut round_ratios = Vec::new();
        let (mut tug_cpu, mut direct_cpu) = (CpuUse::default(), CpuUse::default());
        let server_pid = self.server.as_ref().unwrap().child.id().unwrap_or(0);
        let server_ws_id = client.info.workspace_id.clone();
        for round in 0..a.rounds {
            let mut this_tug = Duration::ZERO;
            let mut this_direct = Duration::ZERO;
            for which in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
                if which == 0 {
                    eprintln!("[bench] P1 round {} tug: {} jobs", round + 1, a.jobs);
                    let (c, tar, tpl) =
                        (client.clone(), Arc::new(code_tar.clone()), template.clone());
                    let cpu = CpuSnap::take(server_pid);
                    let (wall, jobs) = pool(a.jobs, a.concurrency, move |_| {
                        let (c, tar, tpl) = (c.clone(), tar.clone(), tpl.clone());
                        async move { tug_job(&c, &tar, &tpl).await }
                    })
                    .await?;
                    tug_cpu.add(&cpu, &CpuSnap::take(server_pid));
                    // tug removes a container after its run completes; let the last
                    // removals finish before the next path is timed.
                    settle(&self.docker, &server_ws_id).await?;
                    this_tug = wall;
                    tug_jobs.extend(jobs);
                } else {
                    eprintln!("[bench] P1 round {} direct: {} jobs", round + 1, a.jobs);
                    let d = Arc::new(direct.clone());
                    let cpu = CpuSnap::take(server_pid);
                    let (wall, jobs) = pool(a.jobs, a.concurrency, move |i| {
                        let d = d.clone();
                        async move { d.job(format!("r{round}-{i}")).await }
                    })
                    .await?;
                    direct_cpu.add(&cpu, &CpuSnap::take(server_pid));
                    this_direct = wall;
                    direct_jobs.extend(jobs);
                }
            }
            tug_wall += this_tug;
            direct_wall += this_direct;
            round_ratios.push(this_tug.as_secs_f64() / this_direct.as_secs_f64());
        }
        let mut results = vec![
            PathResult {
                name: "tug (HTTP: upload+POST+stream)".into(),
                jobs: tug_jobs.len(),
                wall: tug_wall,
                latencies: tug_jobs.iter().map(|j| j.latency).collect(),
                cpu: tug_cpu,
            },
            PathResult {
                name: "direct engine API (bollard)".into(),
                jobs: direct_jobs.len(),
                wall: direct_wall,
                latencies: direct_jobs.iter().map(|j| j.latency).collect(),
                cpu: direct_cpu,
            },
        ];
        if !a.skip_cli {
            eprintln!("[bench] P1 docker run CLI: {} jobs", a.jobs * a.rounds);
            let (id, tag2) = (self.bench_id.clone(), tag.clone());
            let cpu = CpuSnap::take(server_pid);
            let (wall, lat) = pool(a.jobs * a.rounds, a.concurrency, move |_| {
                let (id, tag2) = (id.clone(), tag2.clone());
                async move { cli_job(&id, &tag2).await }
            })
            .await?;
            let mut cli_cpu = CpuUse::default();
            cli_cpu.add(&cpu, &CpuSnap::take(server_pid));
            results.push(PathResult {
                name: format!("docker run --rm CLI ({} workers)", a.concurrency),
                jobs: lat.len(),
                wall,
                latencies: lat,
                cpu: cli_cpu,
            });
        }

        // Where tug's time goes, from the run histories the server stored.
        let mut phases: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        for j in &tug_jobs {
            let view: JobView = client.get(&format!("/api/jobs/{}", j.id)).await?;
            let at = |s: &str| {
                view.history
                    .iter()
                    .find(|h| h.0 == s)
                    .and_then(|h| humantime::parse_rfc3339_weak(&h.1).ok())
            };
            let span = |a: Option<SystemTime>, b: Option<SystemTime>| {
                a.zip(b)
                    .and_then(|(a, b)| b.duration_since(a).ok())
                    .unwrap_or_default()
            };
            let (q, p, s, r, f, c) = (
                at("Queued"),
                at("Preparing"),
                at("Starting"),
                at("Running"),
                at("Finalizing"),
                at("Completed"),
            );
            phases.entry("a").or_default().push(j.submit);
            phases.entry("b").or_default().push(span(q, p));
            phases.entry("c").or_default().push(span(p, s));
            phases.entry("d").or_default().push(span(s, r));
            phases.entry("e").or_default().push(span(r, f));
            phases.entry("f").or_default().push(span(f, c));
            phases
                .entry("g")
                .or_default()
                .push(span(c, Some(j.end_seen)));
        }

        // P2.
        let p2 = if a.p2_repeats > 0 {
            Some(self.p2(&client, &ws, &tag).await?)
        } else {
            None
        };

        // The report.
        report::print_header(cores, version, info, &a.image, &tag, &load_before);
        report::print_p1(&a, &results, tug_wall, &round_ratios);
        report::print_cpu(&results);
        report::print_tug_phases(&phases);
        report::print_direct_steps(&direct_jobs);
        if let Some(p2) = p2 {
            report::print_p2(&a, &p2);
        }
        Ok(())
    }
}

/// Runs `n` jobs with `conc` in flight; returns the wall time and results in job order.
async fn pool<T, F, Fut>(n: usize, conc: usize, f: F) -> anyhow::Result<(Duration, Vec<T>)>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..conc.min(n) {
        let (next, f) = (next.clone(), f.clone());
        set.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return Ok::<_, anyhow::Error>(done);
                }
                done.push((i, f(i).await?));
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r??);
    }
    let wall = start.elapsed();
    all.sort_by_key(|(i, _)| *i);
    Ok((wall, all.into_iter().map(|(_, t)| t).collect()))
}

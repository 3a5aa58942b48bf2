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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, ListContainersOptions, ListImagesOptions,
    LogsOptions, RemoveContainerOptions, RemoveImageOptions, UploadToContainerOptions,
    WaitContainerOptions,
};
use clap::Parser;
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncBufReadExt;

use tug::client::Client;
use tug::run::model::{JobSubmission, ResolvedEnvironment, Resources};
use tug::run::plan::{SpecInputs, container_spec};
use tug::server::api::JobView;
use tug::server::stream::StreamEvent;
use tug::snapshot::Entry;
use tug::workspace::Workspace;

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

struct Server {
    child: tokio::process::Child,
    client: Client,
    ws: Workspace,
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

/// One job through tug, as the client saw it.
#[derive(Debug, Clone)]
struct TugJob {
    id: String,
    /// Upload + POST + stream to `end`.
    latency: Duration,
    /// Snapshot upload and POST /api/jobs.
    submit: Duration,
    /// From the start of POST /api/jobs.
    to_running: Option<Duration>,
    to_first_log: Option<Duration>,
    to_end: Duration,
    /// Wall clock when the `end` event arrived.
    end_seen: SystemTime,
}

/// A step of the direct path's breakdown: its label and where its time is.
type DirectStep = (&'static str, fn(&DirectJob) -> Duration);

/// One job driven directly through the engine, step by step.
#[derive(Debug, Clone, Default)]
struct DirectJob {
    latency: Duration,
    create: Duration,
    copy_in: Duration,
    start: Duration,
    run: Duration,
    collect: Duration,
    remove: Duration,
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
        println!();
        println!(
            "tug bench: {cores} cores, Docker {} (API {}), storage {}, base {}, env image {tag}",
            version.version.unwrap_or_default(),
            version.api_version.unwrap_or_default(),
            info.driver.unwrap_or_default(),
            a.image
        );
        println!(
            "load average (1/5/15 min) at start: {load_before}; at the end: {}",
            loadavg()
        );
        println!();
        println!(
            "P1: {} trivial jobs per path per round (`echo hello`, 1-file code folder, no conda file), {} in flight, {} round(s), after 1 warm-up job per path",
            a.jobs, a.concurrency, a.rounds
        );
        let direct_secs = results[1].wall.as_secs_f64();
        let mut rows = Vec::new();
        for r in &results {
            let mut lat = r.latencies.clone();
            lat.sort();
            rows.push(vec![
                r.name.clone(),
                r.jobs.to_string(),
                format!("{:.2}", r.wall.as_secs_f64()),
                format!("{:.2}", r.jobs as f64 / r.wall.as_secs_f64()),
                ms(pct(&lat, 50.0)).to_string(),
                ms(pct(&lat, 95.0)).to_string(),
                format!("{:.2}x", r.wall.as_secs_f64() / direct_secs),
            ]);
        }
        print_table(
            &[
                "path", "jobs", "wall s", "jobs/s", "p50 ms", "p95 ms", "/direct",
            ],
            &rows,
        );
        let ratio = tug_wall.as_secs_f64() / direct_secs;
        println!(
            "goal tug <= {:.2}x direct: {} (tug/direct = {ratio:.2}{})",
            a.goal,
            if ratio <= a.goal { "MET" } else { "NOT MET" },
            if round_ratios.len() > 1 {
                format!(
                    "; per round {}",
                    round_ratios
                        .iter()
                        .map(|r| format!("{r:.2}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            }
        );
        println!();
        println!(
            "P1 CPU time per job (ms, from /proc; the engine is shared with anything else running):"
        );
        let mut rows: Vec<Vec<String>> = CPU_CATEGORIES
            .iter()
            .map(|cat| {
                let mut row = vec![cat.to_string()];
                row.extend(
                    results
                        .iter()
                        .map(|r| format!("{:.0}", r.cpu.category(cat) * 1000.0 / r.jobs as f64)),
                );
                row
            })
            .collect();
        let mut row = vec!["kernel, irqs, processes that exited (runc, shims...)".to_string()];
        row.extend(results.iter().map(|r| {
            let counted: f64 = r.cpu.by_label.values().sum();
            format!(
                "{:.0}",
                (r.cpu.host_busy - counted) * 1000.0 / r.jobs as f64
            )
        }));
        rows.push(row);
        let mut row = vec!["all CPUs busy (host total)".to_string()];
        row.extend(
            results
                .iter()
                .map(|r| format!("{:.0}", r.cpu.host_busy * 1000.0 / r.jobs as f64)),
        );
        rows.push(row);
        let mut row = vec!["host CPU utilisation during the path".to_string()];
        row.extend(results.iter().map(|r| {
            format!(
                "{:.0}%",
                100.0 * r.cpu.host_busy / r.cpu.host_total.max(1e-9)
            )
        }));
        rows.push(row);
        let mut header = vec!["process"];
        header.extend(["tug", "direct", "docker run"].iter().take(results.len()));
        print_table(&header, &rows);
        for r in &results {
            let other = r.cpu.category(CPU_CATEGORIES[6]);
            if other > 0.1 * r.cpu.host_busy {
                println!(
                    "  WARNING: other processes used {:.0}% of the busy CPU during {}; its figures are noisy",
                    100.0 * other / r.cpu.host_busy.max(1e-9),
                    r.name
                );
            }
            let top = r.cpu.top_others();
            if !top.is_empty() {
                println!(
                    "  other processes during {}: {}",
                    r.name,
                    top.iter()
                        .map(|(l, v)| format!("{l} {:.1} s", v))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        println!();
        println!("P1 per-job breakdown, tug (server timestamps, ms resolution):");
        let labels = [
            ("a", "client: snapshot upload + POST /api/jobs"),
            ("b", "Queued -> Preparing"),
            ("c", "Preparing -> Starting (find env image)"),
            ("d", "Starting -> Running (create, copy code, start)"),
            ("e", "Running -> Finalizing (container runs, log, wait)"),
            ("f", "Finalizing -> Completed (copy outputs out, remove)"),
            ("g", "Completed -> client sees `end` (stream wake-up)"),
        ];
        let rows: Vec<Vec<String>> = labels
            .iter()
            .map(|(k, label)| {
                let mut v = phases.get(k).cloned().unwrap_or_default();
                v.sort();
                vec![
                    label.to_string(),
                    ms(pct(&v, 50.0)).to_string(),
                    ms(pct(&v, 95.0)).to_string(),
                    format!("{:.0}", mean_ms(&v)),
                ]
            })
            .collect();
        print_table(&["phase", "p50 ms", "p95 ms", "mean ms"], &rows);
        println!();
        println!("P1 per-job breakdown, direct engine API:");
        let steps: [DirectStep; 6] = [
            ("create", |j| j.create),
            ("copy code in (PUT archive)", |j| j.copy_in),
            ("start", |j| j.start),
            ("follow log + wait", |j| j.run),
            ("copy ./outputs ./logs out", |j| j.collect),
            ("remove", |j| j.remove),
        ];
        let rows: Vec<Vec<String>> = steps
            .iter()
            .map(|(label, f)| {
                let mut v: Vec<Duration> = direct_jobs.iter().map(f).collect();
                v.sort();
                vec![
                    label.to_string(),
                    ms(pct(&v, 50.0)).to_string(),
                    ms(pct(&v, 95.0)).to_string(),
                    format!("{:.0}", mean_ms(&v)),
                ]
            })
            .collect();
        print_table(&["step", "p50 ms", "p95 ms", "mean ms"], &rows);

        if let Some(p2) = p2 {
            println!();
            println!(
                "P2: edit train.py only and resubmit, {} times (`python3 train.py`, same environment)",
                a.p2_repeats
            );
            let rows: Vec<Vec<String>> = p2
                .rows
                .iter()
                .map(|(label, v)| {
                    let mut v = v.clone();
                    v.sort();
                    vec![
                        label.clone(),
                        ms(pct(&v, 50.0)).to_string(),
                        ms(v.first().copied().unwrap_or_default()).to_string(),
                        ms(v.last().copied().unwrap_or_default()).to_string(),
                    ]
                })
                .collect();
            print_table(&["measure", "median ms", "min ms", "max ms"], &rows);
            println!(
                "image builds during P2: {} (build.log says `reused` in {}/{} runs; engine images before {} after {}, new ids {})",
                if p2.reused == a.p2_repeats && p2.new_images == 0 {
                    "0"
                } else {
                    "SOME"
                },
                p2.reused,
                a.p2_repeats,
                p2.images_before,
                p2.images_after,
                p2.new_images
            );
        }
        Ok(())
    }

    async fn p2(&self, client: &Client, ws: &Workspace, tag: &str) -> anyhow::Result<P2> {
        let n = self.args.p2_repeats;
        eprintln!("[bench] P2: {n} resubmits after editing train.py");
        let dir = self.tmp.join("p2-code");
        std::fs::create_dir_all(&dir)?;
        let template = submission(&self.args.image, "python3 train.py", "bench-p2");
        let before = image_ids(&self.docker).await?;
        let mut running = Vec::new();
        let mut first_log = Vec::new();
        let mut end = Vec::new();
        let mut reused = 0;
        for i in 0..n {
            std::fs::write(
                dir.join("train.py"),
                format!("print('edit {i}: hello from train.py')\n"),
            )?;
            let entries = tug::snapshot::read_folder(&dir)?;
            let tar = tug::snapshot::tar_bytes(&entries, "", 0, 0);
            let j = tug_job(client, &tar, &template).await?;
            running.push(j.to_running.context("no Running event")?);
            first_log.push(j.to_first_log.context("no log line")?);
            end.push(j.to_end);
            let log = std::fs::read_to_string(ws.run_dir(&j.id).join("system_logs/build.log"))
                .unwrap_or_default();
            if log.lines().last().is_some_and(|l| l.starts_with("reused ")) {
                reused += 1;
            }
        }
        let after = image_ids(&self.docker).await?;
        let mut true_wall = Vec::new();
        let mut first_line = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let st = tokio::process::Command::new("docker")
                .args(["run", "--rm", "--label"])
                .arg(format!("tug.bench={}", self.bench_id))
                .args([tag, "true"])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .status()
                .await?;
            ensure!(st.success(), "docker run {tag} true failed");
            true_wall.push(t.elapsed());
            first_line.push(docker_run_first_line(&self.bench_id, tag).await?);
        }
        Ok(P2 {
            rows: vec![
                ("tug: POST /api/jobs -> status Running".into(), running),
                ("tug: POST /api/jobs -> first log line".into(), first_log),
                ("tug: POST /api/jobs -> end".into(), end),
                ("docker run --rm <env image> true (wall)".into(), true_wall),
                (
                    "docker run --rm <env image> python3 -c print -> first line".into(),
                    first_line,
                ),
            ],
            reused,
            images_before: before.len(),
            images_after: after.len(),
            new_images: after.difference(&before).count(),
        })
    }

    /// Stops the server, removes containers with this run's labels, the temporary
    /// workspace's containers, and the environment image if this run built it.
    async fn cleanup(&mut self, images_before: &HashSet<String>) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let mut ws_id = None;
        if let Some(mut s) = self.server.take() {
            ws_id = Some(s.client.info.workspace_id.clone());
            if let Err(e) = s.client.stop_server().await {
                problems.push(format!("stopping the server: {e}"));
            }
            match tokio::time::timeout(Duration::from_secs(20), s.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    problems.push("the server did not stop within 20 s; killed it".into());
                    let _ = s.child.kill().await;
                }
            }
        }
        let mut labels = vec![
            format!("tug.bench={}", self.bench_id),
            format!("{}={}", tug::compute::labels::WORKSPACE, self.bench_id),
        ];
        if let Some(id) = ws_id {
            labels.push(format!("{}={id}", tug::compute::labels::WORKSPACE));
        }
        for label in labels {
            let opts = ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("label".to_string(), vec![label])])),
                ..Default::default()
            };
            match self.docker.list_containers(Some(opts)).await {
                Ok(list) => {
                    for c in list {
                        let Some(id) = c.id else { continue };
                        let opts = RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        };
                        if let Err(e) = self.docker.remove_container(&id, Some(opts)).await
                            && !e.to_string().contains("already in progress")
                        {
                            problems.push(format!("removing container {id}: {e}"));
                        }
                    }
                }
                Err(e) => problems.push(format!("listing containers: {e}")),
            }
        }
        if let Some(tag) = &self.env_tag
            && !self.args.keep_image
            && let Ok(img) = self.docker.inspect_image(tag).await
            && !images_before.contains(img.id.as_deref().unwrap_or_default())
        {
            let opts = RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            };
            match self.docker.remove_image(tag, Some(opts), None).await {
                Ok(_) => eprintln!("[bench] removed {tag}, which this run built"),
                Err(e) => problems.push(format!("removing image {tag}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("cleanup: {}", problems.join("; "))
        }
    }
}

struct P2 {
    rows: Vec<(String, Vec<Duration>)>,
    reused: usize,
    images_before: usize,
    images_after: usize,
    new_images: usize,
}

fn submission(image: &str, command: &str, experiment: &str) -> JobSubmission {
    JobSubmission {
        name: None,
        display_name: None,
        experiment_name: experiment.into(),
        description: None,
        tags: BTreeMap::new(),
        command: command.into(),
        code_snapshot: None,
        environment: ResolvedEnvironment::Image {
            image: image.into(),
            conda_file: None,
            pip_requirements: vec![],
        },
        environment_variables: BTreeMap::new(),
        compute: "local".into(),
        inputs: BTreeMap::new(),
        outputs: BTreeMap::new(),
        resources: Resources {
            instance_count: Some(1),
            ..Default::default()
        },
        timeout_seconds: None,
        source: None,
    }
}

async fn start_server(bin: &Path, ws_root: &Path, tmp: &Path) -> anyhow::Result<Server> {
    let log_path = tmp.join("server.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(bin)
        .args(["server", "--idle-timeout", "3600"])
        .env(tug::workspace::WORKSPACE_ENV, ws_root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} server", bin.display()))?;
    let ws = Workspace::at(ws_root);
    let started = Instant::now();
    loop {
        if ws.server_file().exists()
            && let Ok(Some(client)) = Client::existing(&ws).await
            && client.info.pid == child.id().unwrap_or(0)
        {
            return Ok(Server { child, client, ws });
        }
        if let Some(st) = child.try_wait()? {
            bail!(
                "the tug server exited ({st}):\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill().await;
            bail!("the tug server did not answer within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Submits one job as `tug job create --stream` does and follows it to its end.
async fn tug_job(client: &Client, tar: &[u8], template: &JobSubmission) -> anyhow::Result<TugJob> {
    #[derive(serde::Deserialize)]
    struct Created {
        sha256: String,
    }
    let t0 = Instant::now();
    let created: Created = client.post_bytes("/api/snapshots", tar.to_vec()).await?;
    let mut sub = template.clone();
    sub.code_snapshot = Some(created.sha256);
    let t_post = Instant::now();
    let view: JobView = client.post("/api/jobs", &sub).await?;
    let submit = t0.elapsed();
    let id = view.run.id;
    let resp = client.get_raw(&format!("/api/jobs/{id}/stream")).await?;
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    let (mut to_running, mut to_first_log) = (None, None);
    let mut lines = Vec::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&chunk?);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            match serde_json::from_slice::<StreamEvent>(&line)? {
                StreamEvent::Status { status } if status == "Running" => {
                    to_running.get_or_insert(t_post.elapsed());
                }
                StreamEvent::Log { line } => {
                    to_first_log.get_or_insert(t_post.elapsed());
                    lines.push(line);
                }
                StreamEvent::End { status, error } => {
                    ensure!(
                        status == "Completed",
                        "job {id} ended {status}: {}\nlog:\n{}",
                        error.unwrap_or_default(),
                        lines.join("\n")
                    );
                    return Ok(TugJob {
                        id,
                        latency: t0.elapsed(),
                        submit,
                        to_running,
                        to_first_log,
                        to_end: t_post.elapsed(),
                        end_seen: SystemTime::now(),
                    });
                }
                _ => {}
            }
        }
    }
    bail!("the stream of job {id} closed before its end event")
}

/// What the direct path needs: the same container tug makes, built with tug's pure
/// planning functions, and an engine connection.
#[derive(Clone)]
struct DirectCtx {
    docker: Docker,
    ws_id: String,
    image: String,
    template: JobSubmission,
    code: Vec<Entry>,
    out_dir: PathBuf,
}

impl DirectCtx {
    async fn job(&self, run_id: String) -> anyhow::Result<DirectJob> {
        let t0 = Instant::now();
        let spec = container_spec(
            &self.template,
            SpecInputs {
                workspace_id: &self.ws_id,
                run_id: &run_id,
                experiment: &self.template.experiment_name,
                image: &self.image,
                log_nonce: "0123456789abcdef01234567",
                code: self.code.clone(),
                downloads: BTreeMap::new(),
                limits: Default::default(),
            },
        );
        let name = tug::compute::docker::container_name(&self.ws_id, &run_id);
        let d = &self.docker;
        let mut out = DirectJob::default();

        let t = Instant::now();
        d.create_container(
            Some(CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            tug::compute::docker::create_body(&spec),
        )
        .await
        .with_context(|| format!("creating {name}"))?;
        out.create = t.elapsed();

        let t = Instant::now();
        d.upload_to_container(
            &name,
            Some(UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            }),
            bollard::body_full(spec.files_tar.clone().into()),
        )
        .await
        .with_context(|| format!("copying into {name}"))?;
        out.copy_in = t.elapsed();

        let t = Instant::now();
        d.start_container(&name, None)
            .await
            .with_context(|| format!("starting {name}"))?;
        out.start = t.elapsed();

        let t = Instant::now();
        let logs = d
            .logs(
                &name,
                Some(LogsOptions {
                    follow: true,
                    stdout: true,
                    stderr: true,
                    timestamps: true,
                    ..Default::default()
                }),
            )
            .try_fold(0usize, |n, chunk| async move {
                Ok(n + chunk.into_bytes().iter().filter(|b| **b == b'\n').count())
            });
        let mut wait = d.wait_container(
            &name,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        let (lines, code) = tokio::join!(logs, wait.next());
        let lines = lines.with_context(|| format!("reading the log of {name}"))?;
        match code {
            Some(Ok(r)) if r.status_code == 0 => {}
            other => bail!("{name} did not exit 0: {other:?}"),
        }
        ensure!(lines > 0, "{name} printed nothing");
        out.run = t.elapsed();

        let t = Instant::now();
        let dest = self.out_dir.join(&run_id);
        for (from, _) in &spec.collect {
            let bytes = d
                .download_from_container(
                    &name,
                    Some(DownloadFromContainerOptions { path: from.clone() }),
                )
                .try_fold(Vec::new(), |mut acc, chunk| async move {
                    acc.extend_from_slice(&chunk);
                    Ok(acc)
                })
                .await
                .with_context(|| format!("copying {from} out of {name}"))?;
            std::fs::create_dir_all(&dest)?;
            tar::Archive::new(bytes.as_slice()).unpack(&dest)?;
        }
        out.collect = t.elapsed();

        let t = Instant::now();
        d.remove_container(
            &name,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
        .with_context(|| format!("removing {name}"))?;
        out.remove = t.elapsed();
        out.latency = t0.elapsed();
        Ok(out)
    }
}

/// One `docker run --rm` of a trivial job with tug's container settings.
async fn cli_job(bench_id: &str, image: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let out = tokio::process::Command::new("docker")
        .args(["run", "--rm", "--label"])
        .arg(format!("tug.bench={bench_id}"))
        .args([
            "--init",
            "--user",
            "1000:1000",
            "--security-opt",
            "no-new-privileges",
            image,
            "/bin/sh",
            "-c",
            "echo hello",
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await?;
    ensure!(
        out.status.success() && out.stdout == b"hello\n",
        "docker run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(t.elapsed())
}

/// Time from `docker run` to the container's first output line.
async fn docker_run_first_line(bench_id: &str, image: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let mut child = tokio::process::Command::new("docker")
        .args(["run", "--rm", "--label"])
        .arg(format!("tug.bench={bench_id}"))
        .args([image, "python3", "-c", "print('hello')"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = lines.next_line().await?;
    let took = t.elapsed();
    ensure!(
        first.as_deref() == Some("hello"),
        "unexpected output {first:?}"
    );
    ensure!(child.wait().await?.success(), "docker run failed");
    Ok(took)
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

async fn image_ids(docker: &Docker) -> anyhow::Result<HashSet<String>> {
    let list = docker
        .list_images(Some(ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await?;
    Ok(list.into_iter().map(|i| i.id).collect())
}

/// CPU seconds used during one path, by process category.
#[derive(Debug, Default, Clone)]
struct CpuUse {
    by_label: BTreeMap<String, f64>,
    host_busy: f64,
    host_total: f64,
}

/// Where the CPU table puts a process (by its label in `CpuSnap`).
const CPU_CATEGORIES: &[&str] = &[
    "tug server (ours)",
    "dockerd",
    "containerd",
    "containerd-shim, runc, container processes",
    "fuse-overlayfs",
    "bench process + docker CLI children",
    "other processes on the host",
];

fn cpu_category(label: &str) -> &'static str {
    let base = label.trim_end_matches(": reaped children");
    match base {
        "tug server (ours)" => CPU_CATEGORIES[0],
        "dockerd" => CPU_CATEGORIES[1],
        "containerd" => CPU_CATEGORIES[2],
        "docker-init" | "sh" | "echo" | "python3" | "runc" | "runc:[2:INIT]" => CPU_CATEGORIES[3],
        b if b.starts_with("containerd-shim") => CPU_CATEGORIES[3],
        "fuse-overlayfs" => CPU_CATEGORIES[4],
        "bench process" => CPU_CATEGORIES[5],
        _ => CPU_CATEGORIES[6],
    }
}

impl CpuUse {
    fn add(&mut self, a: &CpuSnap, b: &CpuSnap) {
        for (key, (label, own, reaped)) in &b.procs {
            let (own0, reaped0) = a
                .procs
                .get(key)
                .map(|(_, o, r)| (*o, *r))
                .unwrap_or((0.0, 0.0));
            *self.by_label.entry(label.clone()).or_default() += own - own0;
            // Only the docker CLI children this program waits for: other processes'
            // reaped children may include time from before the path (and double count).
            if label == "bench process" && reaped - reaped0 > 0.0 {
                *self
                    .by_label
                    .entry(format!("{label}: reaped children"))
                    .or_default() += reaped - reaped0;
            }
        }
        self.host_busy += b.host_busy - a.host_busy;
        self.host_total += b.host_total - a.host_total;
    }

    fn category(&self, cat: &str) -> f64 {
        self.by_label
            .iter()
            .filter(|(l, _)| cpu_category(l) == cat)
            .map(|(_, v)| v)
            .sum()
    }

    /// The biggest processes of the "other" category, for a footnote.
    fn top_others(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .by_label
            .iter()
            .filter(|(l, v)| cpu_category(l) == CPU_CATEGORIES[6] && **v >= 0.05)
            .map(|(l, v)| (l.clone(), *v))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.truncate(4);
        v
    }
}

/// Cumulative CPU seconds of every process (own, and of its reaped children) and of
/// the host. Processes are keyed by (pid, start time) so a reused pid is not confused.
struct CpuSnap {
    procs: HashMap<(u32, u64), (String, f64, f64)>,
    host_busy: f64,
    host_total: f64,
}

impl CpuSnap {
    fn take(server_pid: u32) -> CpuSnap {
        // SAFETY: sysconf only reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let me = std::process::id();
        let mut procs = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let Some((comm, start, own, reaped)) = proc_stat(&e.path().join("stat")) else {
                    continue;
                };
                let label = if pid == server_pid {
                    "tug server (ours)".to_string()
                } else if pid == me {
                    "bench process".to_string()
                } else {
                    comm
                };
                procs.insert((pid, start), (label, own / hz, reaped / hz));
            }
        }
        let (host_busy, host_total) = host_ticks();
        CpuSnap {
            procs,
            host_busy: host_busy / hz,
            host_total: host_total / hz,
        }
    }
}

/// (comm, start time, utime + stime, cutime + cstime) of a process, in clock ticks.
fn proc_stat(stat: &Path) -> Option<(String, u64, f64, f64)> {
    let text = std::fs::read_to_string(stat).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    let num = |i: usize| -> Option<f64> { fields.get(i)?.parse().ok() };
    // After `pid (comm)`, index 0 is field 3 (state): utime is field 14, stime 15,
    // cutime 16, cstime 17, starttime 22.
    let start = fields.get(19)?.parse().ok()?;
    Some((comm, start, num(11)? + num(12)?, num(13)? + num(14)?))
}

/// (busy, total) clock ticks of all CPUs since boot.
fn host_ticks() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).unwrap_or(&0.0) + v.get(4).unwrap_or(&0.0);
    (total - idle, total)
}

/// Waits until the workspace `ws_id` has no containers left.
async fn settle(docker: &Docker, ws_id: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{}={ws_id}", tug::compute::labels::WORKSPACE)],
            )])),
            ..Default::default()
        };
        if docker.list_containers(Some(opts)).await?.is_empty()
            || started.elapsed() > Duration::from_secs(30)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The host's load averages, to judge how quiet the machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Nearest-rank percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean_ms(v: &[Duration]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().map(|d| d.as_secs_f64() * 1000.0).sum::<f64>() / v.len() as f64
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        println!("  {}", s.join("  "));
    };
    line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(rule.iter().map(String::as_str).collect());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

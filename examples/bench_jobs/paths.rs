//! The job drivers: a tug server over HTTP, the engine API directly, and `docker run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, LogsOptions, RemoveContainerOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::AsyncBufReadExt;

use tug::client::Client;
use tug::run::model::{JobSubmission, ResolvedEnvironment, Resources};
use tug::run::plan::{SpecInputs, container_spec};
use tug::server::api::JobView;
use tug::server::stream::StreamEvent;
use tug::snapshot::Entry;
use tug::workspace::Workspace;

pub struct Server {
    pub child: tokio::process::Child,
    pub client: Client,
    pub ws: Workspace,
}

/// One job through tug, as the client saw it.
#[derive(Debug, Clone)]
pub struct TugJob {
    pub id: String,
    /// Upload + POST + stream to `end`.
    pub latency: Duration,
    /// Snapshot upload and POST /api/jobs.
    pub submit: Duration,
    /// From the start of POST /api/jobs.
    pub to_running: Option<Duration>,
    pub to_first_log: Option<Duration>,
    pub to_end: Duration,
    /// Wall clock when the `end` event arrived.
    pub end_seen: SystemTime,
}

/// One job driven directly through the engine, step by step.
#[derive(Debug, Clone, Default)]
pub struct DirectJob {
    pub latency: Duration,
    pub create: Duration,
    pub copy_in: Duration,
    pub start: Duration,
    pub run: Duration,
    pub collect: Duration,
    pub remove: Duration,
}

pub fn submission(image: &str, command: &str, experiment: &str) -> JobSubmission {
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

pub async fn start_server(bin: &Path, ws_root: &Path, tmp: &Path) -> anyhow::Result<Server> {
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
pub async fn tug_job(
    client: &Client,
    tar: &[u8],
    template: &JobSubmission,
) -> anyhow::Result<TugJob> {
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
pub struct DirectCtx {
    pub docker: Docker,
    pub ws_id: String,
    pub image: String,
    pub template: JobSubmission,
    pub code: Vec<Entry>,
    pub out_dir: PathBuf,
}

impl DirectCtx {
    pub async fn job(&self, run_id: String) -> anyhow::Result<DirectJob> {
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
                secret_env: Default::default(),
                tracking: None,
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
            bollard::body_full(spec.files_tar().into()),
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
pub async fn cli_job(bench_id: &str, image: &str) -> anyhow::Result<Duration> {
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
pub async fn docker_run_first_line(bench_id: &str, image: &str) -> anyhow::Result<Duration> {
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

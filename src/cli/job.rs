//! `tug job ...`: create, list, show, stream, cancel, download.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::Context_;
use super::output::{self, number};
use crate::client::{Client, urlencode};
use crate::server::api::JobView;
use crate::store::MetricPoint;

#[derive(Subcommand, Debug)]
pub(crate) enum JobCommand {
    /// Submit a job file (Azure ML CLI v2 command job YAML).
    Create {
        /// The job file.
        #[arg(short, long)]
        file: PathBuf,
        /// Run id (overrides `name:` in the file).
        #[arg(short, long)]
        name: Option<String>,
        /// Set a field, as `az ml`: `--set inputs.lr=0.1` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// Follow the job's output until it ends; exit non-zero if it fails.
        #[arg(short, long)]
        stream: bool,
    },
    /// Show what a pipeline job would do now, step by step: run or reuse, and why.
    /// Creates nothing; `-o json` for CI.
    Plan {
        /// The pipeline job file.
        #[arg(short, long)]
        file: PathBuf,
        /// Set a field, as `az ml`: `--set inputs.lr=0.1` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List jobs, newest first (a sweep's trials only with `--parent`).
    List {
        #[arg(long)]
        experiment: Option<String>,
        /// Only the trials of this sweep.
        #[arg(long)]
        parent: Option<String>,
        #[arg(short = 'r', long, default_value_t = 50)]
        max_results: usize,
    },
    /// Show one job; `--metric NAME` prints that metric's series.
    Show {
        #[arg(value_name = "ID", required_unless_present = "name")]
        id: Option<String>,
        #[arg(short, long, conflicts_with = "id")]
        name: Option<String>,
        #[arg(long)]
        metric: Option<String>,
    },
    /// Follow a job's output until it ends.
    Stream {
        #[arg(value_name = "ID", required_unless_present = "name")]
        id: Option<String>,
        #[arg(short, long, conflicts_with = "id")]
        name: Option<String>,
    },
    /// Cancel a job.
    Cancel {
        #[arg(value_name = "ID", required_unless_present = "name")]
        id: Option<String>,
        #[arg(short, long, conflicts_with = "id")]
        name: Option<String>,
    },
    /// Download a job's artifacts (`artifacts/`) and named outputs (`named-outputs/<name>/`).
    Download {
        #[arg(value_name = "ID", required_unless_present = "name")]
        id: Option<String>,
        #[arg(short, long, conflicts_with = "id")]
        name: Option<String>,
        /// Folder to download into (default: the current folder).
        #[arg(short = 'p', long, default_value = ".")]
        download_path: PathBuf,
        /// Only this named output (`default` = the artifacts).
        #[arg(long)]
        output_name: Option<String>,
        /// The artifacts and every named output.
        #[arg(long, conflicts_with = "output_name")]
        all: bool,
    },
}

fn pick(id: Option<String>, name: Option<String>) -> String {
    id.or(name).expect("clap requires one")
}

pub(crate) async fn run(ctx: &Context_, cmd: JobCommand) -> anyhow::Result<ExitCode> {
    let ws = ctx.workspace()?;
    match cmd {
        JobCommand::Create {
            file,
            name,
            set,
            stream,
        } => {
            let overrides = parse_sets(&set)?;
            // Parse and validate before any server or container is involved: a bad
            // file creates nothing (unless it names registered components, which only
            // the server has).
            let components = crate::submit::fetch_components(&ws, &ctx.cwd, &file).await?;
            let job = crate::submit::load_any_job_with(&ctx.cwd, &file, &overrides, &components)?;
            let client = Client::connect(&ws).await?;
            let job = match job {
                crate::submit::LoadedJob::Command(job) => job,
                crate::submit::LoadedJob::Pipeline(pipeline) => {
                    let mut sub =
                        crate::submit::pipeline_submission(&client, &ctx.cwd, *pipeline, &file)
                            .await?;
                    if name.is_some() {
                        sub.name = name;
                    }
                    let view: JobView = client.post("/api/pipelines", &sub).await?;
                    if stream {
                        if ctx.output == output::Format::Table {
                            println!(
                                "Submitted pipeline {} (experiment {}): {} steps",
                                view.run.id,
                                view.run.experiment,
                                sub.steps.len()
                            );
                        }
                        return super::pipeline::follow(&ws, client, &view.run.id, ctx.output)
                            .await;
                    }
                    if !output::structured(ctx.output, &view)? {
                        println!("{}", summary(&view));
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                crate::submit::LoadedJob::Sweep(sweep) => {
                    let mut sub =
                        crate::submit::sweep_submission(&client, &ctx.cwd, *sweep, &file).await?;
                    if name.is_some() {
                        sub.trial.name = name;
                    }
                    let view: JobView = client.post("/api/sweeps", &sub).await?;
                    if stream {
                        if ctx.output == output::Format::Table {
                            println!(
                                "Submitted sweep {} (experiment {}): up to {} trials, {} at a time",
                                view.run.id,
                                view.run.experiment,
                                sub.limits.max_total_trials,
                                sub.limits.max_concurrent_trials
                            );
                        }
                        return super::sweep::follow(&ws, client, &view.run.id, ctx.output).await;
                    }
                    if !output::structured(ctx.output, &view)? {
                        println!("{}", summary(&view));
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let mut sub = crate::submit::submission(&client, &ctx.cwd, *job, &file).await?;
            if name.is_some() {
                sub.name = name;
            }
            let view: JobView = client.post("/api/jobs", &sub).await?;
            if stream {
                if ctx.output == output::Format::Table {
                    println!(
                        "Submitted job {} (experiment {})",
                        view.run.id, view.run.experiment
                    );
                }
                return super::stream::follow(&ws, client, &view.run.id, ctx.output).await;
            }
            if !output::structured(ctx.output, &view)? {
                println!("{}", summary(&view));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Plan { file, set } => {
            let overrides = parse_sets(&set)?;
            let components = crate::submit::fetch_components(&ws, &ctx.cwd, &file).await?;
            let crate::submit::LoadedJob::Pipeline(pipeline) =
                crate::submit::load_any_job_with(&ctx.cwd, &file, &overrides, &components)?
            else {
                anyhow::bail!(
                    "{}: `tug job plan` plans pipeline jobs (`type: pipeline`); a command or sweep job always runs\n  help: `tug job create -f {}` runs it",
                    file.display(),
                    file.display()
                );
            };
            let client = Client::connect(&ws).await?;
            let sub =
                crate::submit::pipeline_submission(&client, &ctx.cwd, *pipeline, &file).await?;
            let plan: crate::server::pipeline_api::PlanView =
                client.post("/api/pipelines/plan", &sub).await?;
            if !output::structured(ctx.output, &plan)? {
                println!("{}", super::pipeline::plan_table(&plan));
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::List {
            experiment,
            parent,
            max_results,
        } => {
            let client = Client::connect(&ws).await?;
            let mut path = format!("/api/jobs?limit={max_results}");
            if let Some(e) = experiment {
                path.push_str(&format!("&experiment={}", urlencode(&e)));
            }
            if let Some(p) = parent {
                path.push_str(&format!("&parent={}", urlencode(&p)));
            }
            let jobs: Vec<JobView> = client.get(&path).await?;
            if !output::structured(ctx.output, &jobs)? {
                let rows: Vec<Vec<String>> = jobs
                    .iter()
                    .map(|j| {
                        vec![
                            j.run.id.clone(),
                            j.run.experiment.clone(),
                            j.run.status.to_string(),
                            j.run.compute.clone(),
                            j.run.created_at.clone(),
                            j.metrics
                                .iter()
                                .take(3)
                                .map(|(k, v)| format!("{k}={}", number(*v)))
                                .collect::<Vec<_>>()
                                .join(" "),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(
                        &[
                            "NAME",
                            "EXPERIMENT",
                            "STATUS",
                            "COMPUTE",
                            "CREATED",
                            "METRICS"
                        ],
                        &rows
                    )
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Show { id, name, metric } => {
            let id = pick(id, name);
            let client = Client::connect(&ws).await?;
            if let Some(metric) = metric {
                let points: Vec<MetricPoint> = client
                    .get(&format!(
                        "/api/jobs/{}/metrics?name={}",
                        urlencode(&id),
                        urlencode(&metric)
                    ))
                    .await?;
                if points.is_empty() {
                    anyhow::bail!(
                        "job `{id}` has logged no metric named `{metric}`; `tug job show {id}` lists its metrics"
                    );
                }
                if !output::structured(ctx.output, &points)? {
                    let rows: Vec<Vec<String>> = points
                        .iter()
                        .map(|p| vec![p.step.to_string(), number(p.value)])
                        .collect();
                    println!("{}", output::table(&["STEP", metric.as_str()], &rows));
                }
                return Ok(ExitCode::SUCCESS);
            }
            let view: JobView = client.get(&format!("/api/jobs/{}", urlencode(&id))).await?;
            if !output::structured(ctx.output, &view)? {
                println!("{}", detail(&view));
                if let Some(sweep) = &view.sweep {
                    println!("\n{}", super::sweep::detail(sweep));
                }
                if let Some(pipeline) = &view.pipeline {
                    println!("\n{}", super::pipeline::detail(pipeline));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Stream { id, name } => {
            let id = pick(id, name);
            let client = Client::connect(&ws).await?;
            let view: JobView = client.get(&format!("/api/jobs/{}", urlencode(&id))).await?;
            if view.run.kind == "sweep" {
                return super::sweep::follow(&ws, client, &id, ctx.output).await;
            }
            if view.run.kind == "pipeline" {
                return super::pipeline::follow(&ws, client, &id, ctx.output).await;
            }
            super::stream::follow(&ws, client, &id, ctx.output).await
        }
        JobCommand::Cancel { id, name } => {
            let id = pick(id, name);
            let client = Client::connect(&ws).await?;
            let view: JobView = client
                .post(
                    &format!("/api/jobs/{}/cancel", urlencode(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            if !output::structured(ctx.output, &view)? {
                if view.run.status.is_terminal() {
                    println!("Job {id} had already ended: {}", view.run.status);
                } else {
                    println!(
                        "Cancel requested for job {id}; `tug job stream {id}` follows it to the end"
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Download {
            id,
            name,
            download_path,
            output_name,
            all,
        } => {
            let id = pick(id, name);
            let client = Client::connect(&ws).await?;
            let mut path = format!("/api/jobs/{}/download?all={all}", urlencode(&id));
            if let Some(o) = &output_name {
                path.push_str(&format!("&output_name={}", urlencode(o)));
            }
            let mut resp = client.get_raw(&path).await?;
            std::fs::create_dir_all(&download_path)
                .with_context(|| format!("creating {}", download_path.display()))?;
            // Spooled to a temporary file: a large model never sits in memory.
            let mut spool = tempfile::tempfile_in(&download_path)
                .with_context(|| format!("writing into {}", download_path.display()))?;
            while let Some(chunk) = resp.chunk().await? {
                std::io::Write::write_all(&mut spool, &chunk)?;
            }
            std::io::Seek::rewind(&mut spool)?;
            let mut ar = tar::Archive::new(spool);
            ar.set_preserve_permissions(false);
            // `unpack` refuses entries that would land outside the folder.
            ar.unpack(&download_path)
                .with_context(|| format!("writing into {}", download_path.display()))?;
            println!("Downloaded job {id} into {}", download_path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn parse_sets(set: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    set.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| {
                    anyhow::anyhow!("--set {s}: expected KEY=VALUE, e.g. --set inputs.lr=0.1")
                })
        })
        .collect()
}

fn summary(v: &JobView) -> String {
    format!(
        "Submitted job {} (experiment {}, status {})\n  follow it:   tug job stream {}\n  inspect it:  tug job show {}",
        v.run.id, v.run.experiment, v.run.status, v.run.id, v.run.id
    )
}

fn detail(v: &JobView) -> String {
    let r = &v.run;
    let mut out = Vec::new();
    let mut kv = |k: &str, val: &str| out.push(format!("{k:<14}{val}"));
    kv("name", &r.id);
    if let Some(d) = &r.display_name {
        kv("display_name", d);
    }
    kv("experiment", &r.experiment);
    if let Some(parent) = &r.parent_id {
        kv("parent", parent);
    }
    kv("status", r.status.as_str());
    kv("compute", &r.compute);
    if let Some(i) = &r.image {
        kv("image", i);
    }
    kv("created", &r.created_at);
    if let Some(s) = &r.started_at {
        kv("started", s);
    }
    if let Some(e) = &r.ended_at {
        kv("ended", e);
    }
    if let Some(c) = r.exit_code {
        kv("exit_code", &c.to_string());
    }
    kv("artifacts", &v.artifacts);
    kv("command", &r.submission.command);
    let mut s = out.join("\n");
    if let Some(e) = &r.error {
        s.push_str(&format!("\nerror:\n  {}", e.replace('\n', "\n  ")));
    }
    if !r.params.is_empty() {
        s.push_str("\n\nparams:");
        for (k, val) in &r.params {
            s.push_str(&format!("\n  {k}: {val}"));
        }
    }
    if !r.tags.is_empty() {
        s.push_str("\n\ntags:");
        for (k, val) in &r.tags {
            s.push_str(&format!("\n  {k}: {val}"));
        }
    }
    if !v.metrics.is_empty() {
        let rows: Vec<Vec<String>> = v
            .metrics
            .iter()
            .map(|(k, val)| vec![k.clone(), number(*val)])
            .collect();
        s.push_str("\n\n");
        s.push_str(&output::table(&["METRIC", "LAST VALUE"], &rows));
    }
    s
}

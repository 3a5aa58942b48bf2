//! `tug environment ...`: register, list, show.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::Context_;
use super::output;
use crate::client::Client;
use crate::client::urlencode;
use crate::run::model::ResolvedEnvironment;
use crate::store::EnvironmentRecord;

#[derive(Subcommand, Debug)]
pub(crate) enum EnvironmentCommand {
    /// Register an environment file (Azure ML CLI v2 environment YAML).
    Create {
        #[arg(short, long)]
        file: PathBuf,
        #[arg(short, long)]
        name: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List registered environments, or with --curated the map from Azure's curated
    /// environment names to local stand-ins.
    List {
        #[arg(long)]
        curated: bool,
    },
    /// Build an environment file's image on the local engine without running anything
    /// (no server needed): the same content-hash tag a job with it would use. Exit code 1
    /// when the build fails, with the build's last lines.
    Build {
        #[arg(short, long)]
        file: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Show one environment (latest version unless --version).
    Show {
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
}

pub(crate) async fn run(ctx: &Context_, cmd: EnvironmentCommand) -> anyhow::Result<ExitCode> {
    // From the files alone: no server, and no workspace is created for it.
    let cmd = match cmd {
        EnvironmentCommand::Build { file, set } => return build(ctx, &file, &set).await,
        other => other,
    };
    let ws = ctx.workspace()?;
    match cmd {
        EnvironmentCommand::Build { .. } => unreachable!("built above"),
        EnvironmentCommand::Create {
            file,
            name,
            version,
            set,
        } => {
            let sets = super::job::parse_sets(&set)?;
            let env = crate::submit::load_environment(&ctx.cwd, &file, &sets)?;
            let client = Client::connect(&ws).await?;
            let rec =
                crate::submit::environment_record(&client, &ctx.cwd, &file, &env, name, version)
                    .await?;
            let stored: EnvironmentRecord = client.post("/api/environments", &rec).await?;
            if !output::structured(ctx.output, &stored)? {
                println!(
                    "Registered environment {}:{} — use it as `environment: azureml:{}:{}` or `azureml:{}@latest`",
                    stored.name, stored.version, stored.name, stored.version, stored.name
                );
            }
        }
        EnvironmentCommand::List { curated: true } => list_curated(ctx, &ws).await?,
        EnvironmentCommand::List { curated: false } => {
            let client = Client::connect(&ws).await?;
            let all: Vec<EnvironmentRecord> = client.get("/api/environments").await?;
            if !output::structured(ctx.output, &all)? {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            e.version.clone(),
                            describe(&e.environment),
                            e.created_at.clone(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["NAME", "VERSION", "SOURCE", "CREATED"], &rows)
                );
            }
        }
        EnvironmentCommand::Show { name, version } => {
            let client = Client::connect(&ws).await?;
            let mut path = format!("/api/environments/{}", urlencode(&name));
            if let Some(v) = version {
                path.push_str(&format!("?version={}", urlencode(&v)));
            }
            let e: EnvironmentRecord = client.get(&path).await?;
            if !output::structured(ctx.output, &e)? {
                print!("{}", serde_yaml::to_string(&e)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `environment build` reports of the image.
#[derive(serde::Serialize)]
struct Built {
    /// `repository:tag`, the tag being the environment's content hash.
    image: String,
    env_hash: String,
    /// The engine's image id (`sha256:...`).
    id: String,
    size: i64,
    /// False when an image with this content hash was already there.
    built: bool,
    seconds: f64,
    labels: std::collections::BTreeMap<String, String>,
}

async fn build(ctx: &Context_, file: &std::path::Path, set: &[String]) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    let sets = super::job::parse_sets(set)?;
    let spec = crate::submit::load_environment(&ctx.cwd, file, &sets)?;
    let (env, context) = crate::submit::environment_from_files(&ctx.cwd, file, &spec)?;
    let docker = bollard::Docker::connect_with_local_defaults()
        .context("connecting to the Docker engine")?;
    let builder = crate::build::docker::Builder::new(docker.clone());
    let started = std::time::Instant::now();
    // Build output on stderr, so stdout stays the result (`-o json`): the latest line on a
    // spinner at a terminal, every line in a CI log.
    let spinner = super::stream::interactive_progress()
        .then(|| super::stream::build_spinner(&format!("building {}", file.display())));
    let mut progress = |line: &str| match &spinner {
        Some(sp) => sp.set_message(line.to_string()),
        None => eprintln!("{line}"),
    };
    let source = file.display().to_string();
    let ensured = match builder
        .ensure(&env, context.as_deref(), &source, &mut progress)
        .await
    {
        Ok(e) => e,
        Err(e) => {
            if let Some(sp) = &spinner {
                sp.finish_and_clear();
            }
            eprintln!("error: {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(sp) = &spinner {
        sp.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let inspected = docker
        .inspect_image(&ensured.tag)
        .await
        .context("reading the built image")?;
    let built = Built {
        image: ensured.tag.clone(),
        env_hash: ensured.hash.clone(),
        id: inspected.id.unwrap_or_default(),
        size: inspected.size.unwrap_or_default(),
        built: ensured.built,
        seconds,
        labels: inspected
            .config
            .and_then(|c| c.labels)
            .unwrap_or_default()
            .into_iter()
            .collect(),
    };
    if !output::structured(ctx.output, &built)? {
        println!(
            "{} {} ({:.1} MB, {}, {:.1} s)",
            if built.built { "Built" } else { "Up to date:" },
            built.image,
            built.size as f64 / 1e6,
            built.id,
            built.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The curated map with, for each image stand-in, whether the local engine has it.
async fn list_curated(ctx: &Context_, ws: &crate::workspace::Workspace) -> anyhow::Result<()> {
    use crate::spec::curated;
    let config = ws.read_config()?;
    let entries = curated::entries(&config.curated)?;
    let docker = bollard::Docker::connect_with_local_defaults().ok();
    let mut rows = Vec::new();
    for e in &entries {
        let status = match (curated::stand_in(e), &docker) {
            (curated::StandIn::Image(image), Some(d)) => match d.inspect_image(&image).await {
                Ok(_) => "built".to_string(),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => match image.strip_prefix("tug/curated:") {
                    Some(v) => format!("not built: images/build-curated.sh {v}"),
                    None => "not on this engine".to_string(),
                },
                Err(_) => "engine unreachable".to_string(),
            },
            (curated::StandIn::Image(_), None) => "engine unreachable".to_string(),
            (curated::StandIn::Registered { .. }, _) => "registered".to_string(),
        };
        rows.push((e, status));
    }
    if output::structured(
        ctx.output,
        &rows
            .iter()
            .map(|(e, status)| serde_json::json!({"entry": e, "status": status}))
            .collect::<Vec<_>>(),
    )? {
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|(e, status)| {
            vec![
                e.key.clone(),
                e.stand_in.clone(),
                format!("{:?}", e.source).to_lowercase(),
                status.clone(),
                e.contents.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        output::table(&["NAME", "STANDS IN", "FROM", "STATUS", "CONTENTS"], &table)
    );
    println!(
        "Names match with or without `AzureML-` and in any case; `*` matches the rest of a name.\n\
         Add or override entries under `curated:` in {}.",
        ws.config_path().display()
    );
    Ok(())
}

fn describe(env: &ResolvedEnvironment) -> String {
    match env {
        ResolvedEnvironment::Image {
            image, conda_file, ..
        } => {
            if conda_file.is_some() {
                format!("{image} + conda file")
            } else {
                image.clone()
            }
        }
        ResolvedEnvironment::Build {
            dockerfile_path, ..
        } => format!("build context ({dockerfile_path})"),
    }
}

//! `tug model ...`: register, list, show, download, archive.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;

use super::Context_;
use super::output;
use crate::client::{Client, urlencode};
use crate::registry::ModelRequest;
use crate::store::ModelRecord;

#[derive(Subcommand, Debug)]
pub(crate) enum ModelCommand {
    /// Register a model version from a local file or folder, or from a run's outputs.
    Create {
        /// A model YAML file (Azure ML CLI v2).
        #[arg(short, long)]
        file: Option<PathBuf>,
        #[arg(short, long)]
        name: Option<String>,
        /// Local path, `runs:/<run-id>/<path>` or `azureml://jobs/<run-id>/outputs/...`.
        #[arg(short, long)]
        path: Option<String>,
        /// A positive whole number; the next free one when omitted.
        #[arg(long)]
        version: Option<String>,
        /// custom_model (default), mlflow_model or triton_model.
        #[arg(long = "type")]
        model_type: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List registered models (newest version first).
    List {
        #[arg(short, long)]
        name: Option<String>,
        /// Also list archived versions.
        #[arg(long)]
        include_archived: bool,
    },
    /// Show one version (the latest unless --version).
    Show {
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
    /// Download a version's files.
    Download {
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
        /// Folder to download into (default: the current folder).
        #[arg(long, default_value = ".")]
        download_path: PathBuf,
    },
    /// Archive a version: hidden from `list` and `@latest`, still usable by number.
    Archive {
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        version: String,
    },
    /// Undo `archive`.
    Restore {
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        version: String,
    },
}

pub(crate) async fn run(ctx: &Context_, cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Create {
            file,
            name,
            path,
            version,
            model_type,
            description,
            tags,
            set,
        } => {
            let sets = super::job::parse_sets(&set)?;
            let mut req = request(ctx, file.as_deref(), name, path, &sets)?;
            if version.is_some() {
                req.version = version;
            }
            if let Some(t) = model_type {
                req.model_type = t;
            }
            if description.is_some() {
                req.description = description;
            }
            for kv in &tags {
                let (k, v) = kv
                    .split_once('=')
                    .with_context(|| format!("--tag `{kv}`: write KEY=VALUE"))?;
                req.tags.insert(k.to_string(), v.to_string());
            }
            let ws = ctx.workspace()?;
            let client = Client::connect(&ws).await?;
            let rec = crate::deploy::register_model(&client, req).await?;
            if !output::structured(ctx.output, &rec)? {
                println!(
                    "Registered model {}:{} ({}, {}) — use it as `model: azureml:{}:{}` or `azureml:{}@latest`",
                    rec.name,
                    rec.version,
                    rec.artifact,
                    human_size(rec.size),
                    rec.name,
                    rec.version,
                    rec.name
                );
            }
        }
        ModelCommand::List {
            name,
            include_archived,
        } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let mut path = format!("/api/models?archived={include_archived}");
            if let Some(n) = name {
                path.push_str(&format!("&name={}", urlencode(&n)));
            }
            let all: Vec<ModelRecord> = client.get(&path).await?;
            if !output::structured(ctx.output, &all)? {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|m| {
                        vec![
                            m.name.clone(),
                            m.version.clone(),
                            m.model_type.clone(),
                            human_size(m.size),
                            m.job_id.clone().unwrap_or_else(|| "-".into()),
                            if m.archived { "archived" } else { "" }.into(),
                            m.created_at.clone(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(
                        &["NAME", "VERSION", "TYPE", "SIZE", "JOB", "STATE", "CREATED"],
                        &rows
                    )
                );
            }
        }
        ModelCommand::Show { name, version } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let m: ModelRecord = client.get(&version_path(&name, version.as_deref())).await?;
            if !output::structured(ctx.output, &m)? {
                print!("{}", serde_yaml::to_string(&m)?);
            }
        }
        ModelCommand::Download {
            name,
            version,
            download_path,
        } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let m: ModelRecord = client.get(&version_path(&name, version.as_deref())).await?;
            let resp = client
                .get_raw(&format!(
                    "{}/download",
                    version_path(&m.name, Some(&m.version))
                ))
                .await?;
            let bytes = resp.bytes().await.context("downloading the model")?;
            std::fs::create_dir_all(&download_path)
                .with_context(|| format!("creating {}", download_path.display()))?;
            tar::Archive::new(bytes.as_ref())
                .unpack(&download_path)
                .with_context(|| format!("unpacking into {}", download_path.display()))?;
            println!(
                "Downloaded model {}:{} to {}",
                m.name,
                m.version,
                download_path.join(&m.artifact).display()
            );
        }
        ModelCommand::Archive { name, version } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let path = format!("{}/archive", version_path(&name, Some(&version)));
            let m: ModelRecord = client.post(&path, &serde_json::json!({})).await?;
            if !output::structured(ctx.output, &m)? {
                println!("Archived model {}:{}", m.name, m.version);
            }
        }
        ModelCommand::Restore { name, version } => {
            let client = Client::connect(&ctx.workspace()?).await?;
            let path = format!("{}/restore", version_path(&name, Some(&version)));
            let m: ModelRecord = client.post(&path, &serde_json::json!({})).await?;
            if !output::structured(ctx.output, &m)? {
                println!("Restored model {}:{}", m.name, m.version);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn version_path(name: &str, version: Option<&str>) -> String {
    format!(
        "/api/models/{}/{}",
        urlencode(name),
        urlencode(version.unwrap_or("latest"))
    )
}

/// Builds the request from a file or from flags; everything local is checked here.
fn request(
    ctx: &Context_,
    file: Option<&Path>,
    name: Option<String>,
    path: Option<String>,
    sets: &[(String, String)],
) -> anyhow::Result<ModelRequest> {
    if let Some(file) = file {
        let mut sets = sets.to_vec();
        if let Some(n) = name {
            sets.push(("name".into(), n));
        }
        if let Some(p) = path {
            sets.push(("path".into(), p));
        }
        let spec = crate::deploy::load_model(&ctx.cwd, file, &sets)?;
        return crate::deploy::model_request(&ctx.cwd, &file.display().to_string(), spec);
    }
    let name = name.context("a model needs a name\n  help: pass --name NAME (or -f model.yml)")?;
    if !crate::spec::valid_model_name(&name) {
        bail!(
            "--name `{name}` is not a valid model name: letters, digits, `-` and `_`, starting with a letter or digit\n  help: for example --name {}",
            name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "-")
        );
    }
    let given = path.context(
        "a model needs a path\n  help: pass --path with a local file or folder, `runs:/<run-id>/outputs/<file>` or `azureml://jobs/<run-id>/outputs/...`",
    )?;
    let parsed = crate::spec::parse_model_path(&given, &ctx.cwd)
        .map_err(|e| anyhow::anyhow!("--path: {e}"))?;
    let origin = crate::deploy::model_origin(&ctx.cwd, "--path", &parsed)?;
    Ok(ModelRequest {
        name,
        version: None,
        model_type: "custom_model".into(),
        description: None,
        tags: BTreeMap::new(),
        properties: BTreeMap::new(),
        flavors: None,
        stage: None,
        source: given,
        origin,
    })
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

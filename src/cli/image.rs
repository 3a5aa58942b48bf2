//! `tug image ...`: the images tug builds, read from the local engine (no server).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::Context_;
use super::output;
use crate::build::labels;

#[derive(Subcommand, Debug)]
pub(crate) enum ImageCommand {
    /// Where an image came from: its content hash, the file it was built for, its base,
    /// and every label.
    Inspect {
        /// `repository:tag` or an image id.
        image: String,
    },
}

/// What `image inspect` reports.
#[derive(serde::Serialize)]
struct Inspected {
    image: String,
    id: String,
    size: i64,
    created: Option<String>,
    /// The environment's content hash (tug's images only).
    env_hash: Option<String>,
    /// The file it was first built for.
    source: Option<String>,
    base: Option<String>,
    labels: BTreeMap<String, String>,
}

pub(crate) async fn run(ctx: &Context_, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::Inspect { image } => {
            let docker = bollard::Docker::connect_with_local_defaults()
                .context("connecting to the Docker engine")?;
            let found = match docker.inspect_image(&image).await {
                Ok(found) => found,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => {
                    eprintln!(
                        "error: no image `{image}` on this engine\n  help: `tug environment build -f <env.yml>` builds an environment's image"
                    );
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(anyhow::Error::new(e).context("reading the image")),
            };
            let labels: BTreeMap<String, String> = found
                .config
                .and_then(|c| c.labels)
                .unwrap_or_default()
                .into_iter()
                .collect();
            let shown = Inspected {
                image,
                id: found.id.unwrap_or_default(),
                size: found.size.unwrap_or_default(),
                created: found.created.map(|c| c.to_string()),
                env_hash: labels.get(labels::ENV_HASH).cloned(),
                source: labels.get(labels::SOURCE).cloned(),
                base: labels.get(labels::BASE).cloned(),
                labels,
            };
            if !output::structured(ctx.output, &shown)? {
                let dash = || "-".to_string();
                println!("image     {}", shown.image);
                println!("id        {}", shown.id);
                println!("size      {:.1} MB", shown.size as f64 / 1e6);
                println!("env hash  {}", shown.env_hash.clone().unwrap_or_else(dash));
                println!("source    {}", shown.source.clone().unwrap_or_else(dash));
                println!("base      {}", shown.base.clone().unwrap_or_else(dash));
                for (k, v) in &shown.labels {
                    println!("label     {k}={v}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

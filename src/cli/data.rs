//! `tug data fetch|cache`: remote data as job inputs see it (see `crate::datastore`); and
//! `tug data create|list|show` (data assets, in `data_asset.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::{Context_, output};
use crate::datastore::{self, Kind};

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Fetch a remote URI into the workspace's data cache (what a job input does), and
    /// print its content hash.
    Fetch {
        /// https://, s3://, wasbs://, abfss:// or azureml://datastores/<name>/paths/<path>
        uri: String,
        /// `uri_folder` for a prefix of objects.
        #[arg(long = "type", value_enum, default_value_t = DataType::UriFile)]
        kind: DataType,
    },
    /// The data cache: what was fetched, and copies handed to it by hand.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Register a data asset version (Azure ML data YAML, or flags): local data is copied
    /// into the workspace datastore; job inputs then name it `azureml:<name>:<version>`.
    Create {
        #[arg(short, long)]
        file: Option<PathBuf>,
        #[arg(short, long)]
        name: Option<String>,
        #[arg(long)]
        version: Option<String>,
        #[arg(long = "type", value_enum)]
        data_type: Option<DataType>,
        /// A local file or folder, or a URI.
        #[arg(short, long)]
        path: Option<String>,
        #[arg(short, long)]
        description: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List data assets, every version.
    List,
    /// Show one data asset (the latest version unless --version).
    Show {
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// List the cached URIs with their content hash and when they were fetched.
    List,
    /// Remove what no cached URI refers to any more (older versions of changed data,
    /// leftovers of interrupted fetches).
    Prune {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Hand the cache a local copy of a URI (a file, or a folder for a `uri_folder`), for
    /// a machine that cannot reach the store: job files that name the URI then run
    /// unchanged. A connected machine still checks the store and fetches what changed.
    Add {
        uri: String,
        #[arg(long)]
        from: PathBuf,
    },
}

/// As job files spell it (`uri_file`), or as flags usually are (`uri-file`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum DataType {
    #[value(name = "uri_file", alias = "uri-file")]
    UriFile,
    #[value(name = "uri_folder", alias = "uri-folder")]
    UriFolder,
}

impl DataType {
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::UriFile => "uri_file",
            DataType::UriFolder => "uri_folder",
        }
    }
    pub fn input_type(self) -> crate::spec::InputType {
        match self {
            DataType::UriFile => crate::spec::InputType::UriFile,
            DataType::UriFolder => crate::spec::InputType::UriFolder,
        }
    }
}

fn parse(ws: &crate::workspace::Workspace, uri: &str) -> anyhow::Result<datastore::RemoteUri> {
    let config = ws.read_config()?;
    Ok(datastore::uri::parse(uri, &config.datastores)?)
}

fn row(rec: &datastore::SourceRecord) -> Vec<String> {
    let size: u64 = rec.objects.iter().map(|o| o.size).sum();
    vec![
        rec.uri.clone(),
        format!("{:?}", rec.kind).to_lowercase(),
        rec.objects.len().to_string(),
        size.to_string(),
        format!("sha256:{}", &rec.content_hash()[..12]),
        rec.fetched_at.clone(),
    ]
}

const HEADERS: &[&str] = &["URI", "KIND", "OBJECTS", "BYTES", "CONTENT", "FETCHED"];

pub async fn run(ctx: &Context_, cmd: DataCommand) -> anyhow::Result<ExitCode> {
    let ws = ctx.workspace()?;
    let cache = ws.data_cache();
    match cmd {
        DataCommand::Create {
            file,
            name,
            version,
            data_type,
            path,
            description,
            set,
        } => {
            super::data_asset::create(
                ctx,
                super::data_asset::CreateArgs {
                    file,
                    name,
                    version,
                    data_type,
                    path,
                    description,
                    set,
                },
            )
            .await?
        }
        DataCommand::List => super::data_asset::list(ctx).await?,
        DataCommand::Show { name, version } => {
            super::data_asset::show(ctx, &name, version.as_deref()).await?
        }
        DataCommand::Fetch { uri, kind } => {
            let remote = parse(&ws, &uri)?;
            let kind = match kind {
                DataType::UriFile => Kind::File,
                DataType::UriFolder => Kind::Folder,
            };
            let copy = datastore::fetch(&cache, &remote, &uri, kind, &announce).await?;
            if !output::structured(ctx.output, &copy.record)? {
                println!("{}", output::table(HEADERS, &[row(&copy.record)]));
                println!("{} at {}", describe(copy.outcome), copy.path.display());
            }
        }
        DataCommand::Cache(CacheCommand::List) => {
            let records = cache.records()?;
            if !output::structured(ctx.output, &records)? {
                let rows: Vec<Vec<String>> = records.iter().map(row).collect();
                println!("{}", output::table(HEADERS, &rows));
            }
        }
        DataCommand::Cache(CacheCommand::Prune { dry_run }) => {
            let pruned = cache.prune(dry_run)?;
            if !output::structured(ctx.output, &pruned)? {
                for path in &pruned.removed {
                    println!(
                        "{} {path}",
                        if dry_run { "would remove" } else { "removed" }
                    );
                }
                println!(
                    "{} {} entries, {} bytes",
                    if dry_run { "Would free" } else { "Freed" },
                    pruned.removed.len(),
                    pruned.bytes
                );
            }
        }
        DataCommand::Cache(CacheCommand::Add { uri, from }) => {
            let remote = parse(&ws, &uri)?;
            let from = ctx.cwd.join(&from);
            anyhow::ensure!(
                from.exists(),
                "--from {}: no such file or folder",
                from.display()
            );
            let kind = if from.is_dir() {
                Kind::Folder
            } else {
                Kind::File
            };
            let rec = cache
                .import(&remote.cache_key(kind), &from)
                .with_context(|| format!("copying {} into the data cache", from.display()))?;
            if !output::structured(ctx.output, &rec)? {
                println!(
                    "Cached {} {} as {} (sha256:{})",
                    format!("{:?}", rec.kind).to_lowercase(),
                    from.display(),
                    uri,
                    rec.content_hash()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One stderr line per object downloaded (data can be large; the command must not look hung).
pub fn announce(key: &str, size: u64) {
    eprintln!("{}", download_line(key, size));
}

pub fn download_line(key: &str, size: u64) -> String {
    format!("Downloading {key} ({})", human_bytes(size))
}

fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.1} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

pub fn describe(outcome: datastore::Outcome) -> String {
    match outcome {
        datastore::Outcome::Fetched { bytes } => format!("fetched {bytes} bytes"),
        datastore::Outcome::Current => "the cached copy is current".into(),
        datastore::Outcome::Stale => "the store is unreachable; using the cached copy".into(),
    }
}

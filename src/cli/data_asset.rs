//! `tug data create|list|show`: data assets, named and versioned (`azureml:<name>:<version>`
//! in job inputs).

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::Context_;
use super::data::DataType;
use super::output;
use crate::client::Client;
use crate::server::data_api::DataCreated;
use crate::store::DataRecord;
use crate::submit;

/// `tug data create`: from a file (`-f data.yml`) or from flags.
pub struct CreateArgs {
    pub file: Option<PathBuf>,
    pub name: Option<String>,
    pub version: Option<String>,
    pub data_type: Option<DataType>,
    pub path: Option<String>,
    pub description: Option<String>,
    pub set: Vec<String>,
}

pub async fn create(ctx: &Context_, args: CreateArgs) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let asset = match &args.file {
        Some(file) => {
            let sets = super::job::parse_sets(&args.set)?;
            let text = submit::read_spec_file(&ctx.cwd, file)?;
            crate::spec::parse_data_asset(file, &text, &submit::borrowed(&sets))
                .map_err(submit::spec_error)?
        }
        None => {
            let (Some(name), Some(path)) = (&args.name, &args.path) else {
                anyhow::bail!(
                    "`tug data create` needs `-f data.yml`, or `--name` and `--path`\n  help: e.g. `tug data create --name digits --type uri_folder --path ./data`"
                );
            };
            // Quoted by the YAML writer: a `#` or `: ` in a flag stays part of the value.
            let mut map = serde_yaml::Mapping::new();
            map.insert("name".into(), name.as_str().into());
            map.insert("path".into(), path.as_str().into());
            if let Some(t) = args.data_type {
                map.insert("type".into(), t.as_str().into());
            }
            let text = serde_yaml::to_string(&map)?;
            crate::spec::parse_data_asset(Path::new("--path"), &text, &[])
                .map_err(submit::spec_error)?
        }
    };
    let mut asset = asset;
    if args.file.is_some() {
        if let Some(n) = args.name {
            asset.name = n;
        }
        if let Some(t) = args.data_type {
            asset.data_type = t.input_type();
        }
    }
    let data_type = asset.data_type.as_str().to_string();
    let (path, uri, content) = match &asset.path.local {
        Some(local) => {
            let src = submit::absolute(&ctx.cwd, local);
            let meta = std::fs::metadata(&src).with_context(|| {
                format!(
                    "`path: {}`: {} does not exist",
                    asset.path.given,
                    src.display()
                )
            })?;
            if (data_type == "uri_file") != meta.is_file() {
                anyhow::bail!(
                    "`path: {}` is a {}, but the asset is `type: {data_type}`\n  help: use `type: {}`",
                    asset.path.given,
                    if meta.is_file() { "file" } else { "folder" },
                    if meta.is_file() {
                        "uri_file"
                    } else {
                        "uri_folder"
                    }
                );
            }
            let up = crate::datastore::upload::upload_local(&ws, &src).with_context(|| {
                format!("copying {} into the workspace datastore", src.display())
            })?;
            (up.path.display().to_string(), up.uri, Some(up.content))
        }
        None => {
            let given = &asset.path.given;
            if !crate::datastore::is_remote(given) {
                anyhow::bail!(
                    "`path: {given}`: not a local path or a URI tug fetches\n  help: use a local file or folder, https://, s3://, wasbs://, abfss:// or azureml://datastores/<name>/paths/<path>"
                );
            }
            let config = ws.read_config()?;
            let store = crate::datastore::upload::workspace_datastore(&ws);
            match crate::datastore::uri::local_datastore(given, &config.datastores, &store) {
                // A folder of this host: registered as the place it names.
                Some(Ok(p)) => (p.display().to_string(), given.clone(), None),
                Some(Err(e)) => anyhow::bail!("`path: {given}`: {e}"),
                // Checked as a job input would be: a secret in the URI is refused, not stored.
                None => {
                    crate::datastore::uri::parse(given, &config.datastores)?;
                    (given.clone(), given.clone(), None)
                }
            }
        }
    };
    let rec = DataRecord {
        name: asset.name.clone(),
        version: args.version.or(asset.version).unwrap_or_default(),
        data_type,
        path,
        uri,
        description: args.description.or(asset.description),
        tags: asset.tags,
        content,
        source: asset.path.given.clone(),
        created_at: String::new(),
    };
    let client = Client::connect(&ws).await?;
    let made: DataCreated = client.post("/api/data", &rec).await?;
    if !output::structured(ctx.output, &made)? {
        let d = &made.data;
        if made.created {
            println!(
                "Registered data {} version {} ({}) at {}; use it as `path: azureml:{}:{}`",
                d.name, d.version, d.data_type, d.uri, d.name, d.version
            );
        } else {
            println!(
                "Data {} version {} is already registered with this data",
                d.name, d.version
            );
        }
    }
    Ok(())
}

pub async fn list(ctx: &Context_) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let client = Client::connect(&ws).await?;
    let list: Vec<DataRecord> = client.get("/api/data").await?;
    if !output::structured(ctx.output, &list)? {
        if list.is_empty() {
            println!("No data assets; `tug data create --name n --path p` registers one");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|d| {
                vec![
                    d.name.clone(),
                    d.version.clone(),
                    d.data_type.clone(),
                    d.uri.clone(),
                    d.created_at.get(..19).unwrap_or(&d.created_at).to_string(),
                ]
            })
            .collect();
        println!(
            "{}",
            output::table(&["NAME", "VERSION", "TYPE", "PATH", "CREATED"], &rows)
        );
    }
    Ok(())
}

pub async fn show(ctx: &Context_, name: &str, version: Option<&str>) -> anyhow::Result<()> {
    let ws = ctx.workspace()?;
    let client = Client::connect(&ws).await?;
    let path = crate::client::asset_path("data", name, version);
    let d: DataRecord = client.get(&path).await?;
    if !output::structured(ctx.output, &d)? {
        println!("name         {}", d.name);
        println!("version      {}", d.version);
        println!("type         {}", d.data_type);
        println!("path         {}", d.uri);
        println!("on host      {}", d.path);
        println!("registered   {} (from {})", d.created_at, d.source);
        if let Some(c) = &d.content {
            println!("content      sha256:{c}");
        }
        if let Some(desc) = &d.description {
            println!("description  {desc}");
        }
    }
    Ok(())
}

//! `tug datastore list|show`: where `azureml://datastores/<name>/paths/...` points. The
//! workspace's own `workspaceblobstore` is a folder in `.tug/`; others come from
//! `.tug/config.yaml` (`datastores: {name: {url: ...}}` or `{path: /folder}`).

use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;

use super::Context_;
use super::output;
use crate::datastore::upload::{WORKSPACE_DATASTORE, workspace_datastore};

#[derive(Subcommand, Debug)]
pub(crate) enum DatastoreCommand {
    /// List the workspace's datastores.
    List,
    /// Show one datastore.
    Show {
        #[arg(short, long)]
        name: String,
    },
}

#[derive(Debug, Serialize)]
struct DatastoreView {
    name: String,
    /// `folder` (on this host, read in place) or `remote` (fetched into the data cache).
    kind: &'static str,
    location: String,
    default: bool,
}

fn views(ws: &crate::workspace::Workspace) -> anyhow::Result<Vec<DatastoreView>> {
    let config = ws.read_config()?;
    let mut out = Vec::new();
    if !config.datastores.contains_key(WORKSPACE_DATASTORE) {
        out.push(DatastoreView {
            name: WORKSPACE_DATASTORE.into(),
            kind: "folder",
            location: workspace_datastore(ws).display().to_string(),
            default: true,
        });
    }
    for (name, d) in &config.datastores {
        let (kind, location) = match (&d.path, &d.url) {
            (Some(p), _) => ("folder", p.display().to_string()),
            (None, Some(u)) => ("remote", crate::datastore::uri::redact(u)),
            (None, None) => ("remote", "(no url or path)".into()),
        };
        out.push(DatastoreView {
            name: name.clone(),
            kind,
            location,
            default: name == WORKSPACE_DATASTORE,
        });
    }
    Ok(out)
}

pub(crate) fn run(ctx: &Context_, cmd: DatastoreCommand) -> anyhow::Result<ExitCode> {
    let ws = ctx.workspace()?;
    let all = views(&ws)?;
    match cmd {
        DatastoreCommand::List => {
            if !output::structured(ctx.output, &all)? {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|d| {
                        vec![
                            d.name.clone(),
                            d.kind.into(),
                            d.location.clone(),
                            if d.default { "yes" } else { "" }.into(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    output::table(&["NAME", "KIND", "LOCATION", "DEFAULT"], &rows)
                );
            }
        }
        DatastoreCommand::Show { name } => {
            let Some(d) = all.into_iter().find(|d| d.name == name) else {
                anyhow::bail!(
                    "no datastore `{name}` in this workspace\n  help: `tug datastore list` shows them; add one to .tug/config.yaml under `datastores:`"
                );
            };
            if !output::structured(ctx.output, &d)? {
                println!("name      {}", d.name);
                println!("kind      {}", d.kind);
                println!("location  {}", d.location);
                println!("use as    azureml://datastores/{}/paths/<path>", d.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

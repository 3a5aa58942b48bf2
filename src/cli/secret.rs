//! `tug secret set|list|delete`: the workspace's encrypted secrets (see `crate::secrets`).
//! Values come from stdin or a file, never from the command line, where `ps` and shell
//! history would keep them.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::{Context_, output};
use crate::secrets::SecretStore;

#[derive(Subcommand, Debug)]
pub enum SecretCommand {
    /// Set (or replace) a secret; the value is read from stdin, or from --from-file.
    /// Jobs and deployments use it as `VAR: ${{secrets.NAME}}` in `environment_variables`.
    Set {
        name: String,
        /// Read the value from this file instead of stdin (a trailing newline is kept).
        #[arg(long)]
        from_file: Option<PathBuf>,
    },
    /// List secret names and when they were set (never their values).
    List,
    /// Delete a secret.
    Delete { name: String },
}

pub fn run(ctx: &Context_, cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    let ws = ctx.workspace()?;
    let store = SecretStore::new(&ws.dir);
    match cmd {
        SecretCommand::Set { name, from_file } => {
            let value = match from_file {
                Some(path) => std::fs::read_to_string(ctx.cwd.join(&path))
                    .with_context(|| format!("reading {}", path.display()))?,
                None => {
                    let stdin = std::io::stdin();
                    if stdin.is_terminal() {
                        eprintln!("value for {name} (input is shown; end with Ctrl-D):");
                    }
                    let mut value = String::new();
                    stdin
                        .lock()
                        .read_to_string(&mut value)
                        .context("reading stdin")?;
                    // `echo value | tug secret set` gives one newline that is not the value's.
                    if let Some(v) = value.strip_suffix('\n') {
                        value = v.strip_suffix('\r').unwrap_or(v).to_string();
                    }
                    value
                }
            };
            let existed = store.contains(&name)?;
            store.set(&name, &value)?;
            println!(
                "{} secret {name}; use it as `VAR: ${{{{secrets.{name}}}}}` under environment_variables",
                if existed { "Replaced" } else { "Set" }
            );
        }
        SecretCommand::List => {
            let list = store.list()?;
            if !output::structured(ctx.output, &list)? {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|s| vec![s.name.clone(), s.updated_at.clone()])
                    .collect();
                println!("{}", output::table(&["NAME", "UPDATED"], &rows));
            }
        }
        SecretCommand::Delete { name } => {
            if !store.delete(&name)? {
                anyhow::bail!("no secret `{name}`; `tug secret list` shows them");
            }
            println!("Deleted secret {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

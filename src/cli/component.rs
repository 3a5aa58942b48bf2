//! `tug component ...`: register a command component (its file and the files it names),
//! list, show.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::Context_;
use super::output;
use crate::client::Client;
use crate::server::component_api::ComponentCreated;
use crate::store::ComponentRecord;
use crate::submit;

#[derive(Subcommand, Debug)]
pub(crate) enum ComponentCommand {
    /// Register a command component file (Azure ML component YAML) with its code, so that
    /// pipelines anywhere in the workspace can name it `azureml:<name>:<version>`.
    Create {
        #[arg(short, long)]
        file: PathBuf,
        /// The version (overrides `version:`; default: the next whole number).
        #[arg(long)]
        version: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List registered components, every version.
    List,
    /// Show one component (the latest version unless --version).
    Show {
        #[arg(short, long)]
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
}

pub(crate) async fn run(ctx: &Context_, cmd: ComponentCommand) -> anyhow::Result<ExitCode> {
    let ws = ctx.workspace()?;
    match cmd {
        ComponentCommand::Create { file, version, set } => {
            let sets = super::job::parse_sets(&set)?;
            let text = submit::read_spec_file(&ctx.cwd, &file)?;
            let component = crate::spec::parse_component(&file, &text, &submit::borrowed(&sets))
                .map_err(submit::spec_error)?;
            let bundle = crate::components::bundle(&ctx.cwd, &file, &component)?;
            let files = bundle.entries.iter().filter(|e| e.data.is_some()).count();
            let tar = crate::snapshot::tar_bytes(&bundle.entries, "", 0, 0);
            if tar.len() as u64 > crate::snapshot::MAX_SNAPSHOT_BYTES {
                anyhow::bail!(
                    "{}: the component's files come to {} MB, over the 300 MB a snapshot may hold\n  help: list what to leave out in an `.amlignore` in its code folder",
                    file.display(),
                    tar.len() >> 20
                );
            }
            let client = Client::connect(&ws).await?;
            let snapshot = submit::upload(&client, tar).await?;
            let rec = ComponentRecord {
                name: component.name.clone(),
                version: version.or(component.version.clone()).unwrap_or_default(),
                display_name: component.display_name.clone(),
                description: component.description.clone(),
                tags: component.tags.clone(),
                is_deterministic: component.is_deterministic,
                text,
                file: bundle.file,
                snapshot,
                created_at: String::new(),
            };
            let made: ComponentCreated = client.post("/api/components", &rec).await?;
            if !output::structured(ctx.output, &made)? {
                let c = &made.component;
                if made.created {
                    println!(
                        "Registered component {} version {} ({files} files); use it as `component: azureml:{}:{}`",
                        c.name, c.version, c.name, c.version
                    );
                } else {
                    println!(
                        "Component {} version {} is already registered with this content",
                        c.name, c.version
                    );
                }
            }
        }
        ComponentCommand::List => {
            let client = Client::connect(&ws).await?;
            let list: Vec<ComponentRecord> = client.get("/api/components").await?;
            if !output::structured(ctx.output, &list)? {
                if list.is_empty() {
                    println!("No components; `tug component create -f FILE` registers one");
                } else {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|c| {
                            vec![
                                c.name.clone(),
                                c.version.clone(),
                                c.display_name.clone().unwrap_or_default(),
                                c.created_at.get(..19).unwrap_or(&c.created_at).to_string(),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        output::table(&["NAME", "VERSION", "DISPLAY NAME", "CREATED"], &rows)
                    );
                }
            }
        }
        ComponentCommand::Show { name, version } => {
            let client = Client::connect(&ws).await?;
            let path = crate::client::asset_path("components", &name, version.as_deref());
            let c: ComponentRecord = client.get(&path).await?;
            if !output::structured(ctx.output, &c)? {
                print_detail(&c);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_detail(c: &ComponentRecord) {
    println!("name           {}", c.name);
    println!("version        {}", c.version);
    if let Some(d) = &c.display_name {
        println!("display_name   {d}");
    }
    if let Some(d) = &c.description {
        println!("description    {d}");
    }
    println!("deterministic  {}", c.is_deterministic);
    println!("file           {}", c.file);
    println!("snapshot       {}", c.snapshot);
    println!("created        {}", c.created_at);
    // The text was read when it was registered; read again for its interface.
    let Ok(component) = crate::spec::parse_component(Path::new(&c.file), &c.text, &[]) else {
        return;
    };
    println!("command        {}", component.command.trim());
    if !component.inputs.is_empty() {
        println!("\ninputs:");
        for (name, i) in &component.inputs {
            let mut line = format!("  {name}: {}", i.input_type.as_str());
            if let Some(d) = &i.default {
                line.push_str(&format!(" = {}", d.render()));
            }
            if i.optional {
                line.push_str(" (optional)");
            }
            println!("{line}");
        }
    }
    if !component.outputs.is_empty() {
        println!("\noutputs:");
        for (name, o) in &component.outputs {
            println!("  {name}: {}", o.output_type.as_str());
        }
    }
}

//! `tug schedule ...`: create (or replace), list, show, enable, disable, trigger, delete.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::Context_;
use super::output;
use crate::client::{Client, urlencode};
use crate::schedule::{ScheduleSubmission, ScheduledJob};
use crate::server::schedule_api::{FireView, ScheduleCreated, ScheduleView};
use crate::submit::{self, LoadedJob};

#[derive(Subcommand, Debug)]
pub(crate) enum ScheduleCommand {
    /// Create a schedule from a file (Azure ML schedule YAML), or replace the one with its
    /// name. The job it names is captured now: code snapshot, environment, settings.
    Create {
        #[arg(short, long)]
        file: PathBuf,
        /// Set a field of the schedule file, as `az ml`: `--set trigger.interval=2`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// List schedules: trigger, next fire, last fire.
    List,
    /// Show one schedule and its recent fires.
    Show { name: String },
    /// Start firing again (from the next occurrence; none is made up for the pause).
    Enable { name: String },
    /// Stop firing (the schedule and its history stay).
    Disable { name: String },
    /// Fire now, whatever the trigger says.
    Trigger { name: String },
    /// Delete a disabled schedule (the runs it made stay).
    Delete { name: String },
}

pub(crate) async fn run(ctx: &Context_, cmd: ScheduleCommand) -> anyhow::Result<ExitCode> {
    let ws = ctx.workspace()?;
    match cmd {
        ScheduleCommand::Create { file, set } => {
            let overrides = super::job::parse_sets(&set)?;
            let text = submit::read_spec_file(&ctx.cwd, &file)?;
            let schedule = crate::spec::parse_schedule(
                &file,
                &text,
                &submit::borrowed(&overrides),
                jiff::Timestamp::now(),
            )
            .map_err(submit::spec_error)?;
            // The job file is read and checked before the server is asked for anything.
            let create = &schedule.create_job;
            let components = submit::fetch_components(&ws, &ctx.cwd, &create.file).await?;
            let loaded =
                submit::load_any_job_with(&ctx.cwd, &create.file, &create.overrides, &components)
                    .with_context(|| {
                    format!(
                        "{}: `create_job` names {}",
                        file.display(),
                        create.file.display()
                    )
                })?;
            check_kind(&file, create.kind.as_deref(), &loaded)?;
            let client = Client::connect(&ws).await?;
            let job = scheduled_job(&client, &ctx.cwd, loaded, &create.file).await?;
            let sub = ScheduleSubmission {
                name: schedule.name,
                display_name: schedule.display_name,
                description: schedule.description,
                tags: schedule.tags,
                trigger: schedule.trigger,
                job,
                source: Some(file.display().to_string()),
                job_source: Some(create.file.display().to_string()),
            };
            let made: ScheduleCreated = client.post("/api/schedules", &sub).await?;
            if !output::structured(ctx.output, &made)? {
                let v = &made.schedule;
                println!(
                    "{} schedule {}: {}; {} job from {}",
                    if made.created { "Created" } else { "Replaced" },
                    v.name,
                    v.trigger_text,
                    v.job_type,
                    v.job_source.as_deref().unwrap_or("?"),
                );
                println!("Next fire: {}", next_fire(v));
                println!(
                    "The tug server stays up while an enabled schedule waits (`tug server status`)."
                );
            }
        }
        ScheduleCommand::List => {
            let client = Client::connect(&ws).await?;
            let list: Vec<ScheduleView> = client.get("/api/schedules").await?;
            if !output::structured(ctx.output, &list)? {
                if list.is_empty() {
                    println!("No schedules; `tug schedule create -f FILE` makes one");
                } else {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|v| {
                            vec![
                                v.name.clone(),
                                if v.enabled { "enabled" } else { "disabled" }.into(),
                                v.trigger_text.clone(),
                                if v.enabled { next_fire(v) } else { "-".into() },
                                v.fires.first().map(last_fire).unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect();
                    println!(
                        "{}",
                        output::table(
                            &["NAME", "STATE", "TRIGGER", "NEXT FIRE", "LAST FIRE"],
                            &rows
                        )
                    );
                }
            }
        }
        ScheduleCommand::Show { name } => {
            let client = Client::connect(&ws).await?;
            let v: ScheduleView = client
                .get(&format!("/api/schedules/{}", urlencode(&name)))
                .await?;
            if !output::structured(ctx.output, &v)? {
                print_detail(&v);
            }
        }
        ScheduleCommand::Enable { name } => switch(ctx, &ws, &name, "enable").await?,
        ScheduleCommand::Disable { name } => switch(ctx, &ws, &name, "disable").await?,
        ScheduleCommand::Trigger { name } => {
            let client = Client::connect(&ws).await?;
            let fire: FireView = client
                .post(&format!("/api/schedules/{}/trigger", urlencode(&name)), &())
                .await?;
            if !output::structured(ctx.output, &fire)? {
                match &fire.fire.error {
                    None => println!(
                        "Fired schedule {name}: job {} (`tug job stream {}` follows it)",
                        fire.fire.run_id, fire.fire.run_id
                    ),
                    Some(e) => {
                        eprintln!("error: schedule {name} fired, but its job was not created: {e}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
        }
        ScheduleCommand::Delete { name } => {
            let client = Client::connect(&ws).await?;
            client
                .delete(&format!("/api/schedules/{}", urlencode(&name)))
                .await?;
            if ctx.output == output::Format::Table {
                println!("Deleted schedule {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn switch(
    ctx: &Context_,
    ws: &crate::workspace::Workspace,
    name: &str,
    verb: &str,
) -> anyhow::Result<()> {
    let client = Client::connect(ws).await?;
    let v: ScheduleView = client
        .post(&format!("/api/schedules/{}/{verb}", urlencode(name)), &())
        .await?;
    if !output::structured(ctx.output, &v)? {
        if v.enabled {
            println!("Enabled schedule {}: next fire {}", v.name, next_fire(&v));
        } else {
            println!("Disabled schedule {}", v.name);
        }
    }
    Ok(())
}

/// The job a fire submits, resolved now as `tug job create` would resolve it.
async fn scheduled_job(
    client: &Client,
    cwd: &Path,
    loaded: LoadedJob,
    file: &Path,
) -> anyhow::Result<ScheduledJob> {
    Ok(match loaded {
        LoadedJob::Command(job) => {
            ScheduledJob::Command(Box::new(submit::submission(client, cwd, *job, file).await?))
        }
        LoadedJob::Sweep(sweep) => ScheduledJob::Sweep(Box::new(
            submit::sweep_submission(client, cwd, *sweep, file).await?,
        )),
        LoadedJob::Pipeline(p) => ScheduledJob::Pipeline(Box::new(
            submit::pipeline_submission(client, cwd, *p, file).await?,
        )),
    })
}

fn check_kind(file: &Path, kind: Option<&str>, loaded: &LoadedJob) -> anyhow::Result<()> {
    let found = match loaded {
        LoadedJob::Command(_) => "command",
        LoadedJob::Sweep(_) => "sweep",
        LoadedJob::Pipeline(_) => "pipeline",
    };
    match kind {
        Some(k) if k != found => anyhow::bail!(
            "{}: `create_job.type: {k}`, but the job file is a {found} job\n  help: write `type: {found}`, or point `job:` at a {k} job file",
            file.display()
        ),
        _ => Ok(()),
    }
}

fn next_fire(v: &ScheduleView) -> String {
    match (&v.next_fire_local, &v.next_fire) {
        (Some(local), Some(utc)) if !local.ends_with(" UTC") => format!("{local} ({utc})"),
        (_, Some(utc)) => utc.clone(),
        _ => "none: the schedule's window has ended".into(),
    }
}

fn last_fire(f: &FireView) -> String {
    format!(
        "{} {} ({})",
        f.fire.fired_at.get(..19).unwrap_or(&f.fire.fired_at),
        f.fire.run_id,
        f.run_status
            .clone()
            .or_else(|| f.fire.error.as_ref().map(|_| "not submitted".into()))
            .unwrap_or_else(|| "?".into())
    )
}

fn print_detail(v: &ScheduleView) {
    println!("Schedule:  {}", v.name);
    if let Some(d) = &v.display_name {
        println!("Display:   {d}");
    }
    if let Some(d) = &v.description {
        println!("About:     {d}");
    }
    println!(
        "State:     {}",
        if v.enabled { "enabled" } else { "disabled" }
    );
    println!("Trigger:   {}", v.trigger_text);
    println!("Zone:      {}", v.time_zone);
    println!(
        "Job:       {} job from {}",
        v.job_type,
        v.job_source.as_deref().unwrap_or("?")
    );
    println!(
        "Next fire: {}",
        if v.enabled {
            next_fire(v)
        } else {
            "- (disabled)".into()
        }
    );
    if let Some(n) = &v.note {
        println!("Note:      {n}");
    }
    if v.fires.is_empty() {
        println!("\nNo fires yet.");
        return;
    }
    let rows: Vec<Vec<String>> = v
        .fires
        .iter()
        .map(|f| {
            vec![
                f.fire.occurrence.clone(),
                format!("{:?}", f.fire.cause).to_lowercase(),
                f.fire.run_id.clone(),
                f.run_status.clone().unwrap_or_else(|| "-".into()),
                match (f.fire.missed, &f.fire.error) {
                    (_, Some(e)) => format!("not submitted: {e}"),
                    (0, None) => String::new(),
                    (n, None) => format!("stood for {} occurrences", n + 1),
                },
            ]
        })
        .collect();
    println!(
        "\n{}",
        output::table(&["OCCURRENCE", "CAUSE", "RUN", "STATUS", "NOTE"], &rows)
    );
}

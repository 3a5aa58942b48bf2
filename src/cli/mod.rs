//! The `tug` command line: `az ml`-shaped nouns and verbs over the library. Parses
//! arguments, calls the library or the server, prints.

mod component;
mod compute;
pub(crate) mod data;
mod data_asset;
mod datastore;
mod endpoint;
mod environment;
mod image;
mod job;
mod model;
pub mod output;
mod pipeline;
mod schedule;
mod secret;
mod stream;
mod sweep;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::workspace::Workspace;
use output::Format;

#[derive(Parser, Debug)]
#[command(
    name = "tug",
    version,
    about = "Run Azure ML jobs, environments and endpoints on Docker and Kubernetes you own",
    long_about = None,
)]
pub struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a workspace (.tug/) in the current folder.
    Init,
    /// Submit, follow and manage jobs.
    #[command(subcommand)]
    Job(job::JobCommand),
    /// Register and inspect environments.
    #[command(subcommand, alias = "env")]
    Environment(environment::EnvironmentCommand),
    /// Inspect the images tug builds (from the local engine; no server).
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Create, invoke and manage online endpoints (the scoring front door).
    #[command(subcommand)]
    OnlineEndpoint(endpoint::EndpointCommand),
    /// Create, roll and inspect deployments behind an online endpoint.
    #[command(subcommand)]
    OnlineDeployment(endpoint::DeploymentCommand),
    /// Register, list and download models.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// List and show compute targets.
    #[command(subcommand)]
    Compute(compute::ComputeCommand),
    /// Data assets (create, list, show) and remote data for job inputs: fetch it, or hand
    /// the cache a copy (air-gapped).
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Register, list and show command components (what pipeline steps run).
    #[command(subcommand)]
    Component(component::ComponentCommand),
    /// Fire jobs on a cron or recurrence trigger (Azure ML schedule files).
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
    /// List and show datastores (`azureml://datastores/<name>/paths/...`).
    #[command(subcommand)]
    Datastore(datastore::DatastoreCommand),
    /// Set, list and delete the workspace's encrypted secrets.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Run the control plane in the foreground, or manage the running one.
    Server(ServerArgs),
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct ServerArgs {
    #[command(subcommand)]
    command: Option<ServerCommand>,
    /// Address to listen on. Loopback by default: the API is for this host.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: std::net::SocketAddr,
    /// Exit after this many seconds with no runs, requests or clients.
    #[arg(long)]
    idle_timeout: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum ServerCommand {
    /// Stop the workspace's server (runs keep going; the next server picks them up).
    Stop,
    /// Show whether a server runs for this workspace, and where.
    Status,
}

/// Shared by every command.
pub(crate) struct Context_ {
    pub output: Format,
    pub cwd: PathBuf,
}

impl Context_ {
    pub fn workspace(&self) -> anyhow::Result<Workspace> {
        Workspace::find_or_create(&self.cwd).context("opening the workspace")
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Entry point of the `tug` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_server = matches!(&cli.command, Command::Server(a) if a.command.is_none());
    if !is_server {
        // `tug model list | head` should end quietly, as other Unix tools do.
        // SAFETY: restoring the default disposition of one signal before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_tracing(if is_server {
        cli.verbose.max(1)
    } else {
        cli.verbose
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ctx = Context_ {
        output: cli.output,
        cwd: std::env::current_dir().context("reading the current directory")?,
    };
    match cli.command {
        Command::Init => {
            let ws = Workspace::find(&ctx.cwd)
                .filter(|w| w.dir.exists())
                .unwrap_or_else(|| Workspace::at(&ctx.cwd));
            let existed = ws.dir.exists();
            ws.create()?;
            println!(
                "{} workspace {}",
                if existed { "Using" } else { "Created" },
                ws.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Job(cmd) => job::run(&ctx, cmd).await,
        Command::Environment(cmd) => environment::run(&ctx, cmd).await,
        Command::Image(cmd) => image::run(&ctx, cmd).await,
        Command::Model(cmd) => model::run(&ctx, cmd).await,
        Command::OnlineEndpoint(cmd) => endpoint::run_endpoint(&ctx, cmd).await,
        Command::OnlineDeployment(cmd) => endpoint::run_deployment(&ctx, cmd).await,
        Command::Compute(cmd) => compute::run(&ctx, cmd).await,
        Command::Data(cmd) => data::run(&ctx, cmd).await,
        Command::Component(cmd) => component::run(&ctx, cmd).await,
        Command::Schedule(cmd) => schedule::run(&ctx, cmd).await,
        Command::Datastore(cmd) => datastore::run(&ctx, cmd),
        Command::Secret(cmd) => secret::run(&ctx, cmd),
        Command::Server(args) => server(&ctx, args).await,
    }
}

async fn server(ctx: &Context_, args: ServerArgs) -> anyhow::Result<ExitCode> {
    let ws = ctx.workspace()?;
    match args.command {
        None => {
            crate::server::serve(
                ws,
                crate::server::Options {
                    bind: args.bind,
                    idle_timeout: args.idle_timeout.map(std::time::Duration::from_secs),
                },
            )
            .await?;
        }
        Some(ServerCommand::Stop) => match crate::client::Client::existing(&ws).await? {
            Some(c) => {
                let pid = c.info.pid;
                c.stop_server().await?;
                // Wait for the process to exit, so the workspace is free when we return.
                let mut alive = true;
                for _ in 0..300 {
                    if !process_alive(pid) {
                        alive = false;
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                if alive {
                    anyhow::bail!(
                        "the tug server (pid {pid}) did not exit within 15 s; see {} or end it with `kill {pid}`",
                        ws.server_log().display()
                    );
                }
                println!("Stopped the tug server (pid {pid})");
            }
            None => println!("No tug server is running for {}", ws.dir.display()),
        },
        Some(ServerCommand::Status) => match crate::client::Client::existing(&ws).await? {
            Some(c) => {
                let schedules: Vec<crate::server::schedule_api::ScheduleView> =
                    c.get("/api/schedules").await.unwrap_or_default();
                let waiting: Vec<_> = schedules
                    .iter()
                    .filter(|s| s.enabled && s.next_fire.is_some())
                    .collect();
                if !output::structured(ctx.output, &c.info)? {
                    println!(
                        "tug server {} (pid {}) at {} for workspace {}",
                        c.info.version, c.info.pid, c.info.url, c.info.workspace_id
                    );
                    match waiting.iter().filter_map(|s| s.next_fire.as_deref()).min() {
                        Some(next) => println!(
                            "{} enabled schedule{} keep{} it up (no idle exit); the next fire is at {next}",
                            waiting.len(),
                            if waiting.len() == 1 { "" } else { "s" },
                            if waiting.len() == 1 { "s" } else { "" },
                        ),
                        None => println!("No enabled schedules: it exits by itself when idle"),
                    }
                }
            }
            None => {
                println!("No tug server is running for {}", ws.dir.display());
                return Ok(ExitCode::from(3));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether process `pid` runs (a zombie, exited but not yet reaped, does not).
fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid as i32, 0) } != 0 {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name: `pid (comm) S ...`.
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    state != Some('Z')
}

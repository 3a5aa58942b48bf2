//! The endpoint router: key auth and traffic split across an endpoint's deployments.
//!
//! One router container runs per online endpoint (`tug-infsrv router --config
//! /etc/tug/router.json --host 0.0.0.0 --port 5001`) in front of the deployments' scoring
//! containers, and behaves like Azure's managed endpoint front door:
//!
//! - `GET /` answers `Healthy` without auth; everything else needs `Authorization: Bearer
//!   <key>` when the config lists key hashes (401 otherwise).
//! - `azureml-model-deployment: <name>` picks a deployment (even at 0 %); otherwise a
//!   weighted draw over `traffic`; a copy goes to the `mirror_traffic` deployment in the
//!   background with its percent chance.
//! - Requests go round-robin to the deployment's instances over kept-alive connections;
//!   429 past `2 × max_concurrent_requests_per_instance × instances` in flight, 408 past
//!   `request_timeout_ms`, 424 for a non-2xx from `/score`, 502 when no instance answers.
//! - SIGHUP re-reads the config (a bad file is logged and ignored); SIGTERM/SIGINT drain.
//!
//! `config`, `auth`, `routing`, `admission`, `responses` and `metrics` are pure; `proxy`
//! and `server` do the I/O.

mod admission;
mod auth;
mod config;
mod metrics;
mod proxy;
mod responses;
mod routing;
mod server;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

pub use auth::sha256_hex;
pub use config::{
    ConfigError, DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE, DEFAULT_REQUEST_TIMEOUT_MS,
    RouteDeployment, RouterConfig,
};

/// Exit code when the router cannot start (bad config, port taken); clap uses 2 for usage
/// errors and a drained stop exits 0.
pub const EXIT_STARTUP_FAILED: u8 = 1;

/// `tug-infsrv router`: the endpoint router.
#[derive(Debug, Parser)]
#[command(
    name = "tug-infsrv router",
    about = "Endpoint router: key auth and traffic split across an online endpoint's deployments"
)]
struct RouterArgs {
    /// The router config (JSON) written by the tug server; re-read on SIGHUP.
    #[arg(long, default_value = "/etc/tug/router.json")]
    config: PathBuf,
    /// Address to listen on; loopback unless told otherwise (the container passes 0.0.0.0).
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0: any free port, announced in the log).
    #[arg(long, default_value_t = 5001)]
    port: u16,
}

/// Runs the router until SIGTERM/SIGINT. `args` is argv from the subcommand on: its first
/// element (`router`) stands where clap expects the program name.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let args = match RouterArgs::try_parse_from(args) {
        Ok(args) => args,
        Err(error) => {
            let code = error.exit_code();
            let _ = error.print();
            return ExitCode::from(u8::try_from(code).unwrap_or(2));
        }
    };
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!("cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_STARTUP_FAILED);
        }
    };
    let options = server::Options {
        config_path: args.config,
        address: SocketAddr::new(args.host, args.port),
    };
    match runtime.block_on(server::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("router cannot start: {error}");
            ExitCode::from(EXIT_STARTUP_FAILED)
        }
    }
}

/// Logs to stderr, `RUST_LOG` filtering (default `info`). Leaves an already installed
/// subscriber (the front's) alone.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

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
    /// Read at start when `--config` does not exist yet (on a cluster: the endpoint's
    /// ConfigMap, while `--config` sits in the pod's own writable volume, where
    /// `apply-config` replaces it at once — a mounted ConfigMap changes only after the
    /// kubelet's next sync, up to a minute later).
    #[arg(long)]
    seed: Option<PathBuf>,
}

/// Copies `seed` to `config` unless `config` exists (an `apply-config` may have written
/// it first: that one is newer).
fn copy_unless_present(seed: &std::path::Path, config: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = std::fs::read(seed)?;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(config)
    {
        Ok(mut f) => f.write_all(&bytes),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// `tug-infsrv router apply-config`: replaces the running router's config and tells it to
/// reload. Run inside the router's container (a `FROM scratch` image has no shell to write
/// a file or send a signal with).
#[derive(Debug, Parser)]
#[command(name = "tug-infsrv router apply-config")]
struct ApplyArgs {
    /// The file the router reads.
    #[arg(long, default_value = "/etc/tug/router.json")]
    config: PathBuf,
    /// The new config, as JSON.
    #[arg(long)]
    json: String,
    /// The router's process id (it is the container's first process).
    #[arg(long, default_value_t = 1)]
    pid: i32,
}

/// Checks `json` as a router config, writes it atomically to `path`, and sends `pid` a
/// SIGHUP. A config the router would refuse is refused here, so the old one stays.
fn apply_config(args: &ApplyArgs) -> Result<(), String> {
    let config: RouterConfig =
        serde_json::from_str(&args.json).map_err(|e| format!("not a router config: {e}"))?;
    config.validate().map_err(|e| e.to_string())?;
    server::write_atomically(&args.config, args.json.as_bytes())
        .map_err(|e| format!("writing {}: {e}", args.config.display()))?;
    // SAFETY: kill(2) with a plain pid and signal number has no memory effects.
    if unsafe { libc::kill(args.pid, libc::SIGHUP) } != 0 {
        return Err(format!(
            "signalling the router (pid {}): {}",
            args.pid,
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Runs the router until SIGTERM/SIGINT. `args` is argv from the subcommand on: its first
/// element (`router`) stands where clap expects the program name.
pub fn main(args: Vec<OsString>) -> ExitCode {
    if args.get(1).is_some_and(|a| a == "apply-config") {
        let args = match ApplyArgs::try_parse_from(args.into_iter().skip(1)) {
            Ok(args) => args,
            Err(error) => {
                let code = error.exit_code();
                let _ = error.print();
                return ExitCode::from(u8::try_from(code).unwrap_or(2));
            }
        };
        return match apply_config(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("apply-config: {why}");
                ExitCode::from(EXIT_STARTUP_FAILED)
            }
        };
    }
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
    if let Some(seed) = &args.seed
        && let Err(error) = copy_unless_present(seed, &args.config)
    {
        tracing::error!(
            "cannot copy the seed config {} to {}: {error}",
            seed.display(),
            args.config.display()
        );
        return ExitCode::from(EXIT_STARTUP_FAILED);
    }
    let options = server::Options {
        config_path: args.config,
        address: SocketAddr::new(args.host, args.port),
        seed: args.seed,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(dir: &std::path::Path, json: &str, pid: i32) -> ApplyArgs {
        ApplyArgs {
            config: dir.join("router.json"),
            json: json.to_string(),
            pid,
        }
    }

    #[test]
    fn apply_config_replaces_the_file_and_signals_the_router() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("router.json"), "old").unwrap();
        // A stand-in router: `sleep` dies of the SIGHUP it has no handler for.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let json = r#"{"endpoint": "digits", "deployments": []}"#;
        apply_config(&args(dir.path(), json, child.id() as i32)).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("router.json")).unwrap(),
            json
        );
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGHUP));
    }

    #[test]
    fn a_config_the_router_would_refuse_is_refused_and_the_old_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("router.json"), "old").unwrap();
        let bad = r#"{"endpoint": "d", "deployments": [], "traffic": {"red": 100}}"#;
        let err = apply_config(&args(dir.path(), bad, i32::MAX)).unwrap_err();
        assert!(err.contains("red"), "{err}");
        let err = apply_config(&args(dir.path(), "{", i32::MAX)).unwrap_err();
        assert!(err.contains("not a router config"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("router.json")).unwrap(),
            "old"
        );
    }
}

//! Command line of `tug-infsrv`: settings, logging, runtime, signals and exit codes.
//!
//! Exit codes: 0 after a graceful shutdown (SIGTERM/SIGINT), 2 for settings to fix, 3 when the
//! scoring script cannot start (as azmlinfsrv), 1 for anything else.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

use super::http;
use super::metrics::Metrics;
use super::pool::{Pool, PoolConfig};
use super::routes::App;
use super::settings::{Flags, ProcessHost, Settings};
use super::shim;

/// Entry point of the `tug-infsrv` binary.
pub fn main() -> ExitCode {
    // `tug-infsrv router ...` runs the endpoint router; its argv starts at `router`, which
    // stands where clap expects the program name.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|first| first == "router")
    {
        return super::router::main(std::env::args_os().skip(1).collect());
    }
    let flags = Flags::parse();
    init_tracing();
    let settings = match Settings::resolve(flags, &ProcessHost) {
        Ok(settings) => settings,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    let threads = settings
        .front_threads
        .unwrap_or_else(|| default_threads(settings.worker_count));
    let batch = settings.front_batch_scheduling;
    if batch {
        use_batch_scheduling();
    }
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    if batch {
        builder.on_thread_start(use_batch_scheduling);
    }
    let runtime = builder.enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(serve(settings)),
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Puts the calling thread under SCHED_BATCH, so its wake-ups do not preempt a running worker.
///
/// The front is woken for every request and every answer. Under load each of those wake-ups
/// used to interrupt a worker in the middle of `run()`, and the switches cost more than the
/// front's own work (about 2 per request, each also slowing the interrupted `run()`; see
/// `examples/bench_serving/wake_cost.py`). A batch thread waits for the running worker to
/// block or use up its slice, then handles everything that arrived meanwhile in one go; it
/// keeps its fair share of CPU, and while a core is idle it runs at once as before.
/// Threads started later inherit the policy; worker processes are set back to SCHED_OTHER
/// between fork and exec (`worker::spawn`).
fn use_batch_scheduling() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter struct.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if rc != 0 {
        tracing::debug!(
            "cannot use SCHED_BATCH for the front: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Runtime threads for the front. One thread relays ~40 000 requests/s (about 25 µs of CPU
/// each, mostly in the kernel), more than a few Python workers answer, and it avoids cross-thread
/// wake-ups on small machines where the workers need every core. Big pools get one thread per
/// four workers, up to half the cores.
fn default_threads(worker_count: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (worker_count / 4).clamp(1, (cores / 2).max(1))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TUG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The first SIGTERM or SIGINT; later ones are read by [`Signals::next`] again.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let shims = match shim::prepare(settings.shim_dir.as_deref()) {
        Ok(shims) => shims,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind((settings.host.as_str(), settings.port))
        .await
    {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(
                "cannot listen on {}:{}: {e}; pass another --port, or --host with an address of this machine",
                settings.host,
                settings.port
            );
            return ExitCode::from(2);
        }
    };

    let metrics = Arc::new(Metrics::new(settings.worker_count));
    let pool = Pool::start(
        PoolConfig {
            python: settings.python.clone(),
            shim_dir: shims.path().to_path_buf(),
            env: settings.worker_env(),
            worker_count: settings.worker_count,
            worker_timeout: settings.worker_timeout,
            max_queue: settings.max_queue,
            scoring_timeout_ms: settings.scoring_timeout_ms,
            pipeline: settings.pipeline,
        },
        metrics.clone(),
    );
    let app = Arc::new(App::new(&settings, pool.clone(), metrics));
    tracing::info!(
        "tug-infsrv {} serving {} on http://{}:{} with {} worker(s){}",
        env!("CARGO_PKG_VERSION"),
        settings.entry_script.display(),
        settings.host,
        settings.port,
        settings.worker_count,
        if settings.auth_key_sha256.is_empty() {
            ""
        } else {
            ", key auth on"
        },
    );

    // Serve until a signal, or until the pool cannot go on.
    let mut received = None;
    let draining = tokio::select! {
        draining = http::serve(listener, app, async { received = Some(signals.next().await) }) => draining,
        failure = pool.failed() => {
            tracing::error!("{failure}");
            pool.shutdown(false).await;
            return ExitCode::from(failure.exit_code());
        }
    };
    let grace = settings.shutdown_grace;
    tracing::info!(
        "{}: not accepting connections; finishing requests on {} open connection(s) (up to {} s)",
        received.unwrap_or("signal"),
        draining.open_connections(),
        grace.as_secs()
    );
    // Workers idle after a clean drain leave on EOF; otherwise they are signalled at once.
    let drained = tokio::select! {
        finished = tokio::time::timeout(grace, draining.finished()) => {
            if finished.is_err() {
                tracing::warn!(
                    "TUG_SHUTDOWN_GRACE_S ({} s) passed with requests unfinished; stopping anyway",
                    grace.as_secs()
                );
            }
            finished.is_ok()
        }
        second = signals.next() => {
            tracing::warn!("{second} again: stopping now");
            false
        }
        failure = pool.failed() => {
            tracing::error!("{failure}");
            false
        }
    };
    pool.shutdown(drained).await;
    tracing::info!("stopped");
    // Give the log a moment to reach a pipe before the process (maybe PID 1) goes.
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(shims);
    ExitCode::SUCCESS
}

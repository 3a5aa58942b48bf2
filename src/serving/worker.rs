//! One Python worker process: spawned with its end of a socket pair on fd 3, watched by a
//! reaper task that owns its `Child`, and read from frame by frame.
//!
//! The reaper is the only code that waits for or signals the process, so a pid is never
//! signalled after it was reaped (and possibly reused).

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::process::Child;
use tokio::sync::Notify;

use super::pool::PoolConfig;
use super::protocol::{self, FrameHead, Kind, ProtocolError, Ready};

/// The script the workers run, inside the shim folder.
pub const WORKER_SCRIPT: &str = "tug_worker.py";
/// Free space kept in a worker's read buffer before each read.
const READ_CHUNK: usize = 16 << 10;
/// How long an exited worker's last bytes (INIT_FAILED, a response) may take to be read.
pub const AFTER_EXIT_READ: Duration = Duration::from_secs(1);
/// How long a worker whose socket closed gets to exit before its status is reported anyway.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// Why a worker could not be started. Any of these stops the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create the socket pair for worker {slot}: {source}")]
    Socket { slot: usize, source: std::io::Error },
    #[error(
        "cannot start the Python worker with {python}: {source}; install Python 3 or pass \
         --python /path/to/python"
    )]
    Spawn {
        python: PathBuf,
        source: std::io::Error,
    },
    #[error("worker {slot}: the scoring script failed to initialize:\n{traceback}")]
    InitFailed { slot: usize, traceback: String },
    #[error("worker {slot} exited ({status}) before it was ready; its output above says why")]
    DiedBeforeReady { slot: usize, status: String },
    #[error("worker {slot} broke the worker protocol while starting: {source}")]
    Protocol { slot: usize, source: ProtocolError },
}

impl StartError {
    /// The process exit code: 3 for a scoring script that cannot start (azmlinfsrv's), 2 for
    /// a Python that cannot be run (a setting to fix).
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Spawn { .. } => 2,
            _ => 3,
        }
    }
}

/// One worker process as the pool sees it; shared with its reaper.
pub struct Life {
    pub slot: usize,
    pub pid: u32,
    /// Set once READY was counted (the pool then replaces the worker when it exits).
    pub ready: AtomicBool,
    exited: AtomicBool,
    /// How the process ended, set by the reaper just before `exited`.
    exit_status: OnceLock<String>,
    pub exit_notify: Notify,
    signal: AtomicI32,
    signal_notify: Notify,
}

impl Life {
    /// Asks the reaper to send `signal` to the worker's process group.
    pub fn signal(&self, signal: i32) {
        self.signal.store(signal, SeqCst);
        self.signal_notify.notify_one();
    }

    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    pub fn has_exited(&self) -> bool {
        self.exited.load(SeqCst)
    }

    pub async fn wait_exit(&self) {
        let notified = self.exit_notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.has_exited() {
            notified.await;
        }
    }

    fn exit_text(&self) -> String {
        match self.exit_status.get() {
            Some(status) => status.clone(),
            None => "its socket closed but it is still running".to_string(),
        }
    }
}

/// A ready worker and its channel.
pub struct Worker {
    pub life: Arc<Life>,
    pub stream: UnixStream,
    pub rbuf: BytesMut,
    pub wbuf: Vec<u8>,
    pub wants_headers: bool,
}

/// A started process, not yet ready.
pub struct Spawned {
    pub child: Child,
    pub life: Arc<Life>,
    pub stream: UnixStream,
}

pub enum ReadError {
    Eof,
    Io(std::io::Error),
    Protocol(ProtocolError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Eof => f.write_str("its socket closed"),
            ReadError::Io(e) => write!(f, "reading its socket failed: {e}"),
            ReadError::Protocol(e) => write!(f, "{e}"),
        }
    }
}

/// In the child between fork and exec: make `fd` the worker's fd 3 and keep it across exec,
/// and give the worker ordinary scheduling (the front's threads may run under SCHED_BATCH,
/// which a child inherits; the script, its threads and its subprocesses must not).
fn prepare_child(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: dup2, fcntl and sched_setscheduler are async-signal-safe syscalls that touch
    // only this process; `param` is a valid struct on the stack.
    let rc = unsafe {
        if fd == 3 {
            libc::fcntl(3, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, 3)
        }
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let param = libc::sched_param { sched_priority: 0 };
    // Failure only leaves the inherited policy; not worth refusing to start over.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    Ok(())
}

/// Starts `python -u SHIM_DIR/tug_worker.py` for `slot` with its socket on fd 3.
pub fn spawn(config: &PoolConfig, slot: usize) -> Result<Spawned, StartError> {
    let (parent_end, child_end) = std::os::unix::net::UnixStream::pair()
        .map_err(|source| StartError::Socket { slot, source })?;
    let mut command = tokio::process::Command::new(&config.python);
    command
        .arg("-u")
        .arg(config.shim_dir.join(WORKER_SCRIPT))
        .stdin(Stdio::null())
        .envs(config.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("TUG_WORKER_FD", "3")
        .env("TUG_WORKER_ID", slot.to_string())
        .env_remove("TUG_AUTH_KEY_SHA256")
        // Its own process group: a terminal's Ctrl-C reaches only the front, which then
        // finishes in-flight requests before stopping the workers.
        .process_group(0);
    let child_fd = child_end.as_raw_fd();
    // SAFETY: the closure only calls async-signal-safe functions (see prepare_child).
    unsafe {
        command.pre_exec(move || prepare_child(child_fd));
    }
    let child = command.spawn().map_err(|source| StartError::Spawn {
        python: config.python.clone(),
        source,
    })?;
    drop(child_end);
    let socket_error = |source| StartError::Socket { slot, source };
    parent_end.set_nonblocking(true).map_err(socket_error)?;
    let stream = UnixStream::from_std(parent_end).map_err(socket_error)?;
    let life = Arc::new(Life {
        slot,
        pid: child.id().unwrap_or(0),
        ready: AtomicBool::new(false),
        exited: AtomicBool::new(false),
        exit_status: OnceLock::new(),
        exit_notify: Notify::new(),
        signal: AtomicI32::new(0),
        signal_notify: Notify::new(),
    });
    Ok(Spawned {
        child,
        life,
        stream,
    })
}

/// Waits for the process, sending it the signals asked for meanwhile; marks `life` exited and
/// returns how it ended.
pub async fn reap(mut child: Child, life: Arc<Life>) -> String {
    let status: std::io::Result<ExitStatus> = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = life.signal_notify.notified() => {
                // Not reaped yet (we hold the Child), so the pid is still ours to signal.
                if child.id().is_some() {
                    // SAFETY: kill(2) with a negative pid signals the process group the worker
                    // leads (process_group(0)); it touches no memory.
                    unsafe { libc::kill(-(life.pid as i32), life.signal.load(SeqCst)) };
                }
            }
        }
    };
    let text = match &status {
        Ok(status) => status.to_string(),
        Err(e) => format!("status unknown: {e}"),
    };
    let _ = life.exit_status.set(text.clone());
    life.exited.store(true, SeqCst);
    life.exit_notify.notify_waiters();
    text
}

/// Reads until `rbuf` starts with one whole frame and returns its head.
pub async fn read_frame<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
) -> Result<FrameHead, ReadError> {
    loop {
        match protocol::frame_head(rbuf).map_err(ReadError::Protocol)? {
            Some(head) if rbuf.len() >= head.total_len => return Ok(head),
            Some(head) => rbuf.reserve(head.total_len - rbuf.len()),
            None => rbuf.reserve(READ_CHUNK),
        }
        match stream.read_buf(rbuf).await {
            Ok(0) => return Err(ReadError::Eof),
            Ok(_) => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
}

/// Waits for the worker's first frame: READY gives a [`Worker`], INIT_FAILED its traceback.
pub async fn handshake(
    mut stream: UnixStream,
    life: Arc<Life>,
) -> Result<(Worker, Ready), StartError> {
    let slot = life.slot;
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let first = tokio::select! {
        biased;
        read = read_frame(&mut stream, &mut rbuf) => read,
        _ = life.wait_exit() => {
            // Its last words (INIT_FAILED) may still be in the socket.
            tokio::time::timeout(AFTER_EXIT_READ, read_frame(&mut stream, &mut rbuf))
                .await
                .unwrap_or(Err(ReadError::Eof))
        }
    };
    let head = match first {
        Ok(head) => head,
        Err(ReadError::Protocol(source)) => {
            life.kill();
            return Err(StartError::Protocol { slot, source });
        }
        Err(_) => {
            let _ = tokio::time::timeout(EXIT_WAIT, life.wait_exit()).await;
            return Err(StartError::DiedBeforeReady {
                slot,
                status: life.exit_text(),
            });
        }
    };
    let frame = rbuf.split_to(head.total_len);
    let payload = &frame[head.payload_range()];
    let ready = match head.kind {
        Kind::Ready => protocol::parse_ready(payload),
        Kind::InitFailed => {
            return Err(StartError::InitFailed {
                slot,
                traceback: protocol::parse_init_failed(payload),
            });
        }
        other => Err(ProtocolError::UnexpectedKind {
            expected: "READY",
            got: other,
        }),
    };
    let ready = ready.map_err(|source| {
        life.kill();
        StartError::Protocol { slot, source }
    })?;
    let worker = Worker {
        life,
        stream,
        rbuf,
        wbuf: Vec::with_capacity(1024),
        wants_headers: ready.wants_headers,
    };
    Ok((worker, ready))
}

//! The worker pool: N Python processes running `tug_worker.py`, one request in flight each,
//! plus up to TUG_PIPELINE (default 8) pipelined behind it.
//!
//! Each worker talks over a Unix socket pair (its end is fd 3, `TUG_WORKER_FD=3`). A request
//! [`Pool::call`]s: it takes an idle worker, or waits in a bounded FIFO queue for one, writes the
//! REQUEST frame and reads the RESPONSE on its own task (no hop to a per-worker task).
//! With TUG_PIPELINE (on by default), while no worker is idle the holder of a busy worker also
//! writes the first queued requests to it, so the worker finds its next request waiting when it
//! answers (no sleep, no wake-up between requests); the first of them then gets the worker from
//! the holder, with the rest behind it, reads its RESPONSE and may pipeline more. Its
//! WORKER_TIMEOUT starts when it gets the worker; if the worker is lost first, it queues again:
//! it was never started, because a worker answers in order (a request can wait behind a slow
//! one although a worker became idle meanwhile; requests are only pipelined while none is).
//!
//! A worker that dies, breaks the protocol or exceeds WORKER_TIMEOUT mid-request costs that
//! request a [`CallError`] and is replaced; the replacement runs `init()` again. A worker whose `init()`
//! fails makes the pool report a fatal [`StartError`]: the front then exits 3, as azmlinfsrv does.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, oneshot, watch};

use super::exchange::{self, Lease, Phase};
use super::metrics::Metrics;
use super::protocol::{Api, ProtocolError, ResponseMeta};
use super::worker::{self, Life, StartError, Worker};

/// At shutdown: wait this long for workers to leave on EOF, then SIGTERM, then SIGKILL.
const STOP_STEP: Duration = Duration::from_secs(2);

/// What the pool needs to start workers.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    pub python: PathBuf,
    /// Folder holding `tug_worker.py`.
    pub shim_dir: PathBuf,
    /// Variables set for every worker on top of the front's environment.
    pub env: Vec<(String, String)>,
    pub worker_count: usize,
    /// WORKER_TIMEOUT; also bounds how long a request waits in the queue.
    pub worker_timeout: Option<Duration>,
    pub max_queue: usize,
    pub scoring_timeout_ms: u64,
    /// Pipelining: when no worker is idle, a busy worker is sent up to this many queued
    /// requests before it answers its current one (0 = off).
    pub pipeline: usize,
}

/// Why a request got no answer from a worker.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("all workers are busy and the queue is full")]
    QueueFull,
    #[error("no worker became free within {0:?}")]
    QueueTimeout(Duration),
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("the worker died while handling the request: {0}")]
    WorkerLost(String),
    #[error("the worker exceeded WORKER_TIMEOUT ({0:?}) and was killed")]
    WorkerTimeout(Duration),
    #[error("the request cannot be framed: {0}")]
    TooLarge(ProtocolError),
}

/// What the scoring script looks like, from the first READY.
#[derive(Debug)]
pub struct ScriptInfo {
    pub api: Api,
    /// Swagger documents by version key; `None` when generation failed.
    pub swagger: Option<BTreeMap<String, Bytes>>,
}

/// One request as the worker needs it, borrowed from the HTTP request.
pub struct CallRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a [u8]>,
    pub headers: &'a hyper::HeaderMap,
    /// The client's address, sent to workers that want headers (`request.remote_addr`).
    pub remote_addr: Option<std::net::IpAddr>,
    pub body: &'a [u8],
}

/// A worker's answer.
#[derive(Debug)]
pub struct Reply {
    pub meta: ResponseMeta,
    pub body: Bytes,
}

/// Handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) config: PoolConfig,
    pub(super) state: Mutex<State>,
    /// Mirror of `State::ready` for lock-free health checks.
    ready: AtomicUsize,
    pub(super) metrics: Arc<Metrics>,
    script: OnceLock<ScriptInfo>,
    fatal: watch::Sender<Option<Arc<StartError>>>,
    /// Request ids, unique across workers (a pipelined request is framed before its worker is
    /// known).
    next_id: AtomicU64,
    /// `wants_headers` from the first READY (the same script runs in every worker).
    wants_headers: OnceLock<bool>,
    /// Woken when a request starts waiting, so busy workers' holders can pipeline it.
    pub(super) queued: Notify,
}

/// What a waiting request receives.
pub(super) enum Grant {
    /// The worker (with this request's REQUEST already written when it was pipelined).
    Worker(Lease),
    /// It was pipelined onto a worker that was lost before it got to this request: queue again.
    Requeue,
    /// It was pipelined onto a worker that was lost after it may have started this request.
    Lost(CallError),
}

/// A queued request's side of its place in the queue: where its grant arrives, and whether it
/// has been pipelined (see [`Waiter::pipelined`]).
type Place = (oneshot::Receiver<Grant>, Arc<AtomicBool>);

/// A request waiting for a worker.
pub(super) struct Waiter {
    pub(super) tx: oneshot::Sender<Grant>,
    /// Set once its REQUEST is written to a busy worker: from then on it no longer waits in
    /// the queue (no QueueTimeout: the worker may already be about to run it).
    pub(super) pipelined: Arc<AtomicBool>,
    /// Its REQUEST frame, ready to be pipelined onto a busy worker (small bodies only).
    pub(super) frame: Option<PipeFrame>,
}

pub(super) struct PipeFrame {
    pub(super) id: u64,
    pub(super) wants_headers: bool,
    pub(super) bytes: Bytes,
}

pub(super) struct State {
    pub(super) idle: Vec<Worker>,
    pub(super) waiters: VecDeque<Waiter>,
    /// Requests written to a busy worker behind its current one: still waiting, so they count
    /// towards TUG_MAX_QUEUE and the queue depth.
    pub(super) pipelined: usize,
    ready: usize,
    shutting_down: bool,
    /// The current process of each slot.
    lives: Vec<Option<Arc<Life>>>,
}

impl State {
    pub(super) fn waiting(&self) -> usize {
        self.waiters.len() + self.pipelined
    }

    pub(super) fn ready_count(&self) -> usize {
        self.ready
    }
}

pub(super) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pool {
    /// Starts `worker_count` workers in the background and returns at once; the pool answers
    /// calls as soon as one worker is ready. Startup failures arrive through [`Pool::failed`].
    pub fn start(config: PoolConfig, metrics: Arc<Metrics>) -> Pool {
        let count = config.worker_count;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                idle: Vec::with_capacity(count),
                waiters: VecDeque::new(),
                pipelined: 0,
                ready: 0,
                shutting_down: false,
                lives: vec![None; count],
            }),
            config,
            ready: AtomicUsize::new(0),
            metrics,
            script: OnceLock::new(),
            fatal: watch::channel(None).0,
            next_id: AtomicU64::new(0),
            wants_headers: OnceLock::new(),
            queued: Notify::new(),
        });
        for slot in 0..count {
            tokio::spawn(start_worker(shared.clone(), slot));
        }
        Pool { shared }
    }

    /// Workers that finished `init()` and are alive.
    pub fn ready_count(&self) -> usize {
        self.shared.ready.load(SeqCst)
    }

    /// The scoring script's shape, once a worker has been ready.
    pub fn script(&self) -> Option<&ScriptInfo> {
        self.shared.script.get()
    }

    /// Resolves when a worker cannot start, which makes the server unusable.
    pub async fn failed(&self) -> Arc<StartError> {
        let mut rx = self.shared.fatal.subscribe();
        loop {
            if let Some(err) = rx.borrow_and_update().clone() {
                return err;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Sends one request to a worker and returns its answer.
    pub async fn call(&self, request: &CallRequest<'_>) -> Result<Reply, CallError> {
        let mut lease = self.acquire(request).await?;
        lease.exchange(request).await
    }

    /// Takes an idle worker or queues for one; a queued request may be pipelined onto a busy
    /// worker (the lease then comes back with its REQUEST already written).
    async fn acquire(&self, request: &CallRequest<'_>) -> Result<Lease, CallError> {
        let shared = &self.shared;
        let queue_deadline = shared
            .config
            .worker_timeout
            .map(|limit| (tokio::time::Instant::now() + limit, limit));
        let mut requeued = false;
        loop {
            let idle = lock(&shared.state).idle.pop();
            let waiting = match idle {
                Some(worker) => Ok(worker),
                // Framed outside the lock, only when it has to wait.
                None => self.enqueue(self.pipe_frame(request), requeued)?,
            };
            let mut lease = match waiting {
                Ok(worker) => Lease::new(worker, shared.clone(), Phase::Idle),
                Err((rx, pipelined)) => {
                    match wait_grant(shared, rx, &pipelined, queue_deadline).await? {
                        Grant::Worker(lease) => lease,
                        Grant::Requeue => {
                            requeued = true;
                            continue;
                        }
                        Grant::Lost(err) => return Err(err),
                    }
                }
            };
            // A worker that died while idle is the reaper's to replace; try another.
            if matches!(lease.phase, Phase::Idle)
                && lease.worker.as_ref().is_some_and(|w| w.life.has_exited())
            {
                lease.phase = Phase::Broken;
                continue;
            }
            return Ok(lease);
        }
    }

    /// The REQUEST frame of a request that may be pipelined, when pipelining is on and the
    /// request would have to wait.
    fn pipe_frame(&self, request: &CallRequest<'_>) -> Option<PipeFrame> {
        let shared = &self.shared;
        if shared.config.pipeline == 0 || request.body.len() > exchange::INLINE_BODY_MAX {
            return None;
        }
        let wants_headers = *shared.wants_headers.get()?;
        let id = shared.next_id();
        let mut buf = Vec::with_capacity(256 + request.body.len());
        exchange::encode(
            &mut buf,
            request,
            id,
            wants_headers,
            shared.config.scoring_timeout_ms,
        )
        .ok()?;
        Some(PipeFrame {
            id,
            wants_headers,
            bytes: Bytes::from(buf),
        })
    }

    /// A place in the queue (FIFO), unless no worker is idle any more. A request queued
    /// again after its worker was lost (`requeued`) was admitted already: it goes first and
    /// is not refused for a full queue.
    fn enqueue(
        &self,
        frame: Option<PipeFrame>,
        requeued: bool,
    ) -> Result<Result<Worker, Place>, CallError> {
        let shared = &self.shared;
        let mut st = lock(&shared.state);
        if st.shutting_down {
            return Err(CallError::ShuttingDown);
        }
        if let Some(worker) = st.idle.pop() {
            return Ok(Ok(worker));
        }
        if !requeued && st.waiting() >= shared.config.max_queue {
            st.waiters.retain(|w| !w.tx.is_closed());
            if st.waiting() >= shared.config.max_queue {
                return Err(CallError::QueueFull);
            }
        }
        let (tx, rx) = oneshot::channel();
        let pipelinable = frame.is_some();
        let pipelined = Arc::new(AtomicBool::new(false));
        let waiter = Waiter {
            tx,
            pipelined: pipelined.clone(),
            frame,
        };
        if requeued {
            st.waiters.push_front(waiter);
        } else {
            st.waiters.push_back(waiter);
        }
        shared.metrics.set_queue_depth(st.waiting());
        drop(st);
        if pipelinable {
            shared.queued.notify_waiters();
        }
        Ok(Err((rx, pipelined)))
    }

    /// Stops the workers: closes their sockets (they exit on EOF), then SIGTERM, then SIGKILL,
    /// [`STOP_STEP`] apart; `patient: false` skips the wait for EOF (the server is failing).
    /// Requests still waiting for a worker get [`CallError::ShuttingDown`].
    pub async fn shutdown(&self, patient: bool) {
        let (idle, lives) = {
            let mut st = lock(&self.shared.state);
            st.shutting_down = true;
            st.waiters.clear();
            let lives: Vec<Arc<Life>> = st.lives.iter().flatten().cloned().collect();
            (std::mem::take(&mut st.idle), lives)
        };
        drop(idle);
        let steps: &[Option<i32>] = if patient {
            &[None, Some(libc::SIGTERM), Some(libc::SIGKILL)]
        } else {
            &[Some(libc::SIGTERM), Some(libc::SIGKILL)]
        };
        for signal in steps {
            if let Some(signal) = *signal {
                for life in lives.iter().filter(|l| !l.has_exited()) {
                    tracing::debug!(
                        slot = life.slot,
                        pid = life.pid,
                        "signalling worker ({signal})"
                    );
                    life.signal(signal);
                }
            }
            let all_exited = async {
                for life in &lives {
                    life.wait_exit().await;
                }
            };
            if tokio::time::timeout(STOP_STEP, all_exited).await.is_ok() {
                return;
            }
        }
        tracing::warn!("some workers did not exit after SIGKILL");
    }
}

impl Shared {
    /// A pipelined request got its worker, or failed.
    pub(super) fn unpipelined(&self) {
        let mut st = lock(&self.state);
        st.pipelined -= 1;
        self.metrics.set_queue_depth(st.waiting());
    }

    pub(super) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, SeqCst) + 1
    }

    fn is_shutting_down(&self) -> bool {
        lock(&self.state).shutting_down
    }

    fn fail(&self, err: StartError) {
        self.fatal.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(Arc::new(err));
                true
            } else {
                false
            }
        });
    }

    /// Puts a worker back: to the longest-waiting request, else the idle list.
    /// Returns true when a waiting request got the worker.
    pub(super) fn release(self: &Arc<Self>, worker: Worker) -> bool {
        let mut st = lock(&self.state);
        if worker.life.has_exited() {
            return false; // dropped here; its reaper starts the replacement
        }
        let mut lease = Lease::new(worker, self.clone(), Phase::Idle);
        while let Some(waiter) = st.waiters.pop_front() {
            match waiter.tx.send(Grant::Worker(lease)) {
                Ok(()) => {
                    self.metrics.set_queue_depth(st.waiting());
                    return true;
                }
                Err(Grant::Worker(returned)) => lease = returned,
                Err(_) => unreachable!("a worker was sent"),
            }
        }
        self.metrics.set_queue_depth(st.waiting());
        if let Some(worker) = lease.worker.take() {
            st.idle.push(worker);
        }
        false
    }

    /// Counts a worker that sent READY and hands it out.
    fn register_ready(self: &Arc<Self>, worker: Worker) {
        {
            let mut st = lock(&self.state);
            if st.shutting_down {
                worker.life.kill();
                return;
            }
            if worker.life.has_exited() {
                drop(st);
                tracing::warn!(
                    slot = worker.life.slot,
                    "worker exited right after it was ready; replacing it"
                );
                self.metrics.worker_restarted();
                tokio::spawn(start_worker(self.clone(), worker.life.slot));
                return;
            }
            worker.life.ready.store(true, SeqCst);
            st.ready += 1;
            self.ready.store(st.ready, SeqCst);
            self.metrics.set_workers_ready(st.ready);
        }
        tracing::info!(
            slot = worker.life.slot,
            pid = worker.life.pid,
            "worker ready"
        );
        self.release(worker);
    }

    /// Called by a reaper once its process is gone: forget it, and replace it if it had been
    /// serving.
    fn on_exit(self: &Arc<Self>, life: &Arc<Life>, status: &str) {
        let was_ready = life.ready.load(SeqCst);
        let replace = {
            let mut st = lock(&self.state);
            st.idle.retain(|w| !Arc::ptr_eq(&w.life, life));
            if was_ready {
                st.ready -= 1;
                self.ready.store(st.ready, SeqCst);
                self.metrics.set_workers_ready(st.ready);
            }
            if st.lives[life.slot]
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(l, life))
            {
                st.lives[life.slot] = None;
            }
            was_ready && !st.shutting_down
        };
        if replace {
            tracing::warn!(
                slot = life.slot,
                pid = life.pid,
                "worker exited ({status}); starting a replacement (init() runs again)"
            );
            self.metrics.worker_restarted();
            tokio::spawn(start_worker(self.clone(), life.slot));
        } else {
            tracing::debug!(slot = life.slot, pid = life.pid, "worker exited ({status})");
        }
    }
}

/// Waits for a queued request's grant. The queue deadline (WORKER_TIMEOUT) stops counting
/// once the request is pipelined onto a worker: it is then the worker's to answer, and its
/// own WORKER_TIMEOUT starts when it gets the worker.
async fn wait_grant(
    shared: &Shared,
    mut rx: oneshot::Receiver<Grant>,
    pipelined: &AtomicBool,
    deadline: Option<(tokio::time::Instant, Duration)>,
) -> Result<Grant, CallError> {
    if let Some((at, limit)) = deadline {
        tokio::select! {
            received = &mut rx => return received.map_err(|_| CallError::ShuttingDown),
            _ = tokio::time::sleep_until(at) => {
                // Under the lock `pipeline()` holds while it writes a waiter's REQUEST and
                // sets the flag: either it has done both, or it sees this request gone.
                let st = lock(&shared.state);
                if !pipelined.load(SeqCst) {
                    drop(rx);
                    drop(st);
                    return Err(CallError::QueueTimeout(limit));
                }
            }
        }
    }
    rx.await.map_err(|_| CallError::ShuttingDown)
}

/// Spawns the worker for `slot`, waits for its READY and registers it.
async fn launch(shared: &Arc<Shared>, slot: usize) -> Result<Worker, StartError> {
    let spawned = worker::spawn(&shared.config, slot)?;
    {
        let mut st = lock(&shared.state);
        st.lives[slot] = Some(spawned.life.clone());
        if st.shutting_down {
            spawned.life.kill();
        }
    }
    let reaper_shared = shared.clone();
    let life = spawned.life.clone();
    tokio::spawn(async move {
        let status = worker::reap(spawned.child, life.clone()).await;
        reaper_shared.on_exit(&life, &status);
    });
    let (worker, ready) = worker::handshake(spawned.stream, spawned.life).await?;
    let _ = shared.wants_headers.set(worker.wants_headers);
    let _ = shared.script.set(ScriptInfo {
        api: ready.api,
        swagger: ready
            .swagger
            .map(|docs| docs.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect()),
    });
    Ok(worker)
}

async fn start_worker(shared: Arc<Shared>, slot: usize) {
    match launch(&shared, slot).await {
        Ok(worker) => shared.register_ready(worker),
        Err(err) if shared.is_shutting_down() => {
            tracing::debug!(slot, "worker did not start during shutdown: {err}");
        }
        Err(err) => shared.fail(err),
    }
}

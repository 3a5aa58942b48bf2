//! One request/response exchange with a leased worker, and what happens to the worker when it
//! goes wrong: put back after a clean answer, drained when the client gave up while `run()` was
//! working, killed (and so replaced) after a loss, a protocol error or WORKER_TIMEOUT.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::futures::Notified;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};

use super::pool::{CallError, CallRequest, Grant, Reply, Shared, lock};
use super::protocol::{self, Kind, ProtocolError, RequestMeta};
use super::worker::{AFTER_EXIT_READ, ReadError, Worker, read_frame};

/// Bodies up to this size are copied behind the meta so a request is one `write`.
pub(super) const INLINE_BODY_MAX: usize = 64 << 10;

/// Beyond the first, only REQUEST frames this small are pipelined, so that the socket takes
/// each whole (eight of them fit the default Unix socket buffer several times over).
const DEEP_PIPELINE_FRAME_MAX: usize = 16 << 10;

/// Frames a REQUEST whose body is at most [`INLINE_BODY_MAX`] (head and body) into `buf`,
/// or only its head for a larger body.
pub(super) fn encode(
    buf: &mut Vec<u8>,
    request: &CallRequest<'_>,
    id: u64,
    wants_headers: bool,
    timeout_ms: u64,
) -> Result<(), ProtocolError> {
    let headers = wants_headers.then(|| {
        request
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
    });
    let remote_addr = match (wants_headers, request.remote_addr) {
        (true, Some(ip)) => Some(ip.to_string()),
        _ => None,
    };
    let meta = RequestMeta {
        id,
        method: request.method,
        path: request.path,
        query: request.query,
        content_type: request.content_type,
        headers,
        remote_addr: remote_addr.as_deref(),
        timeout_ms,
    };
    protocol::encode_request_head(buf, meta, request.body.len())?;
    if request.body.len() <= INLINE_BODY_MAX {
        buf.extend_from_slice(request.body);
    }
    Ok(())
}

/// A queued request whose REQUEST was written to a busy worker behind the current one: it
/// gets the worker once the answers before it are read. Dropped without that (the worker was
/// lost), the request queues again, because a worker answers in order: one that never
/// answered the request ahead never started this one. The exception is a worker lost while
/// a later REQUEST was still being written (see [`Lease::unsent`]): it may have answered the
/// request ahead unread and moved on, so those behind fail rather than risk running twice.
pub(super) struct Next {
    tx: Option<oneshot::Sender<Grant>>,
    id: u64,
    shared: Arc<Shared>,
    requeue: bool,
}

impl Drop for Next {
    fn drop(&mut self) {
        self.shared.unpipelined();
        if let Some(tx) = self.tx.take() {
            let grant = if self.requeue {
                Grant::Requeue
            } else {
                Grant::Lost(CallError::WorkerLost(
                    "the worker was lost after it may have started this request".into(),
                ))
            };
            let _ = tx.send(grant);
        }
    }
}

/// Gives the worker to the first pipelined request, with the ones pipelined behind it; if
/// that request was abandoned meanwhile, its answer is drained (the returned lease, dropped,
/// does that).
fn hand_off(shared: &Arc<Shared>, mut behind: VecDeque<Next>, worker: Worker) {
    let Some(mut next) = behind.pop_front() else {
        let _ = shared.release(worker);
        return;
    };
    let tx = next.tx.take().expect("a Next is handed off once");
    let mut lease = Lease::new(worker, shared.clone(), Phase::Sent { id: next.id });
    lease.behind = behind;
    if let Err(Grant::Worker(lease)) = tx.send(Grant::Worker(lease)) {
        drop(lease);
    }
}

/// A worker taken from the pool. Dropping it puts the worker back, finishes reading a request
/// the caller gave up on, or kills a worker left mid-frame, depending on [`Phase`].
pub(super) struct Lease {
    pub(super) worker: Option<Worker>,
    pub(super) shared: Arc<Shared>,
    pub(super) phase: Phase,
    /// The requests pipelined behind this one on the same worker, in the order written.
    pub(super) behind: VecDeque<Next>,
    /// The rest of the last pipelined REQUEST, which the socket did not take at once. While
    /// it is pending the worker may answer this request and go on to the ones behind it
    /// before the answer is read.
    pub(super) unsent: Option<Bytes>,
}

#[derive(Clone, Copy)]
pub(super) enum Phase {
    Idle,
    /// The REQUEST was written by the previous holder (pipelined); nothing read yet.
    Sent {
        id: u64,
    },
    Writing,
    Reading {
        id: u64,
        deadline: Option<Instant>,
    },
    Broken,
}

/// Outcome of one guarded step of an exchange.
enum Step<T> {
    Done(T),
    Exited,
    TimedOut,
}

async fn guarded<T>(
    work: impl Future<Output = T>,
    exited: Pin<&mut Notified<'_>>,
    deadline: Pin<&mut Option<Sleep>>,
) -> Step<T> {
    let has_deadline = deadline.is_some();
    tokio::select! {
        biased;
        out = work => Step::Done(out),
        _ = exited => Step::Exited,
        _ = async { deadline.as_pin_mut().expect("checked").await }, if has_deadline => Step::TimedOut,
    }
}

enum Failure {
    TooLarge(ProtocolError),
    Lost(String),
    TimedOut,
}

impl Lease {
    pub(super) fn new(worker: Worker, shared: Arc<Shared>, phase: Phase) -> Lease {
        Lease {
            worker: Some(worker),
            shared,
            phase,
            behind: VecDeque::new(),
            unsent: None,
        }
    }

    /// Puts the worker back, or hands it to the request pipelined behind this one. Returns
    /// true when another request got the worker.
    fn finish(&mut self) -> bool {
        self.phase = Phase::Idle;
        let Some(worker) = self.worker.take() else {
            return false;
        };
        if self.behind.is_empty() {
            return self.shared.release(worker);
        }
        hand_off(&self.shared, std::mem::take(&mut self.behind), worker);
        true
    }

    pub(super) async fn exchange(&mut self, request: &CallRequest<'_>) -> Result<Reply, CallError> {
        let outcome = self.exchange_frames(request).await;
        match outcome {
            Ok((reply, None)) => {
                if self.finish() {
                    // A queued request got the worker: let it write its REQUEST before this
                    // task spends time on its own response, so the worker waits less.
                    tokio::task::yield_now().await;
                }
                Ok(reply)
            }
            // The answer stands; the worker does not.
            Ok((reply, Some(why))) => {
                let _ = self.lost(why);
                Ok(reply)
            }
            Err(Failure::TooLarge(e)) => Err(CallError::TooLarge(e)),
            Err(Failure::Lost(detail)) => Err(self.lost(detail)),
            Err(Failure::TimedOut) => Err(self.timed_out()),
        }
    }

    /// Writes the REQUEST (unless it was pipelined) and reads the RESPONSE. With the reply
    /// comes why the worker must be replaced after all, if it must (it sent more than the one
    /// frame, or the rest of a pipelined REQUEST could not be written).
    async fn exchange_frames(
        &mut self,
        request: &CallRequest<'_>,
    ) -> Result<(Reply, Option<String>), Failure> {
        let shared = self.shared.clone();
        let config = &shared.config;
        let worker = self
            .worker
            .as_mut()
            .expect("a lease holds its worker until released");
        let deadline_at = config.worker_timeout.map(|t| Instant::now() + t);
        let (id, written) = match self.phase {
            Phase::Sent { id } => (id, true),
            _ => {
                let id = shared.next_id();
                worker.wbuf.clear();
                // On error nothing was written and the worker stays healthy (the lease drops
                // Idle).
                encode(
                    &mut worker.wbuf,
                    request,
                    id,
                    worker.wants_headers,
                    config.scoring_timeout_ms,
                )
                .map_err(Failure::TooLarge)?;
                (id, false)
            }
        };
        let inline = request.body.len() <= INLINE_BODY_MAX;

        let Worker {
            life,
            stream,
            rbuf,
            wbuf,
            wants_headers,
            ..
        } = worker;
        let wants_headers = *wants_headers;
        let exited = life.exit_notify.notified();
        tokio::pin!(exited);
        exited.as_mut().enable();
        let deadline = deadline_at.map(tokio::time::sleep_until);
        tokio::pin!(deadline);

        if !written {
            self.phase = Phase::Writing;
            let write = async {
                stream.write_all(wbuf).await?;
                if !inline {
                    stream.write_all(request.body).await?;
                }
                Ok::<(), std::io::Error>(())
            };
            match guarded(write, exited.as_mut(), deadline.as_mut()).await {
                Step::Done(Ok(())) => {}
                Step::Done(Err(e)) => {
                    return Err(Failure::Lost(format!("writing to its socket failed: {e}")));
                }
                Step::Exited => return Err(Failure::Lost("the process exited".to_string())),
                Step::TimedOut => return Err(Failure::TimedOut),
            }
        }

        let reading = Phase::Reading {
            id,
            deadline: deadline_at,
        };
        self.phase = reading;
        let unsent = &mut self.unsent;
        let read = loop {
            let queued = shared.queued.notified();
            tokio::pin!(queued);
            // Room behind this request, and no pipelined frame half written.
            let room = |behind: &VecDeque<Next>, unsent: &Option<Bytes>| {
                unsent.is_none() && behind.len() < config.pipeline
            };
            let may_pipeline = room(&self.behind, unsent);
            if may_pipeline {
                queued.as_mut().enable();
                while room(&self.behind, unsent) {
                    let held = self.behind.len();
                    let Some((next, rest)) = pipeline(&shared, stream, wants_headers, held) else {
                        break;
                    };
                    self.behind.push_back(next);
                    if let Some(rest) = rest {
                        *unsent = Some(rest);
                        self.phase = Phase::Writing;
                    }
                }
            }
            let wait_queue = room(&self.behind, unsent);
            let step = {
                let (mut rd, mut wr) = stream.split();
                let read = read_frame(&mut rd, rbuf);
                let write_more = async {
                    match unsent.as_mut() {
                        Some(rest) => wr.write(rest).await,
                        None => std::future::pending().await,
                    }
                };
                let work = async {
                    tokio::select! {
                        biased;
                        read = read => Some(Ok(read)),
                        wrote = write_more => Some(Err(wrote)),
                        _ = queued, if wait_queue => None,
                    }
                };
                guarded(work, exited.as_mut(), deadline.as_mut()).await
            };
            match step {
                Step::Done(Some(Ok(read))) => break read,
                Step::Done(Some(Err(Ok(n)))) => {
                    let rest = unsent.as_mut().expect("writing");
                    let _ = rest.split_to(n);
                    if rest.is_empty() {
                        *unsent = None;
                        self.phase = reading;
                    }
                }
                Step::Done(Some(Err(Err(e)))) => {
                    return Err(Failure::Lost(format!("writing to its socket failed: {e}")));
                }
                Step::Done(None) => {}
                // It may have answered just before exiting: take what is in the socket.
                Step::Exited => {
                    break tokio::time::timeout(AFTER_EXIT_READ, read_frame(stream, rbuf))
                        .await
                        .unwrap_or(Err(ReadError::Eof));
                }
                Step::TimedOut => return Err(Failure::TimedOut),
            }
        };
        let head = read.map_err(|e| Failure::Lost(e.to_string()))?;
        let reply = take_response(rbuf, head, id).map_err(|e| Failure::Lost(e.to_string()))?;
        if let Some(rest) = unsent.clone() {
            // The worker answered before it read all of the pipelined REQUEST: finish it. If
            // that fails, this answer still stands; the requests behind may have started.
            let why = match guarded(stream.write_all(&rest), exited.as_mut(), deadline.as_mut())
                .await
            {
                Step::Done(Ok(())) => None,
                Step::Done(Err(e)) => Some(format!("writing to its socket failed: {e}")),
                Step::Exited => Some("the process exited".to_string()),
                Step::TimedOut => Some("it did not take a pipelined request in time".to_string()),
            };
            if why.is_some() {
                return Ok((reply, why));
            }
            *unsent = None;
            self.phase = reading;
        }
        // Bytes after the RESPONSE are the pipelined request's answer, if there is one.
        let clean = rbuf.is_empty() || !self.behind.is_empty();
        Ok((
            reply,
            (!clean).then(|| "it sent bytes after its RESPONSE".to_string()),
        ))
    }

    /// Marks the worker broken (it is killed when the lease drops) and describes the loss.
    fn lost(&mut self, detail: String) -> CallError {
        self.phase = Phase::Broken;
        if let Some(worker) = &self.worker {
            tracing::error!(
                slot = worker.life.slot,
                pid = worker.life.pid,
                "worker lost mid-request ({detail}); answering 500 and replacing it"
            );
        }
        CallError::WorkerLost(detail)
    }

    fn timed_out(&mut self) -> CallError {
        self.phase = Phase::Broken;
        let limit = self.shared.config.worker_timeout.unwrap_or_default();
        if let Some(worker) = &self.worker {
            tracing::error!(
                slot = worker.life.slot,
                pid = worker.life.pid,
                "worker exceeded WORKER_TIMEOUT ({limit:?}); killing and replacing it"
            );
        }
        CallError::WorkerTimeout(limit)
    }
}

/// Writes the first queued request to this busy worker (which holds `held` pipelined ones
/// already) when no worker is idle and this one holds no more than its share of the pipelined
/// requests, so that one worker does not collect a backlog while another runs dry. Returns it,
/// with the part of its frame the socket did not take yet.
fn pipeline(
    shared: &Arc<Shared>,
    stream: &mut tokio::net::UnixStream,
    wants_headers: bool,
    held: usize,
) -> Option<(Next, Option<Bytes>)> {
    let mut st = lock(&shared.state);
    if !st.idle.is_empty() || held * st.ready_count() > st.pipelined {
        return None;
    }
    while st.waiters.front().is_some_and(|w| w.tx.is_closed()) {
        st.waiters.pop_front();
    }
    let front = st.waiters.front()?;
    let frame = front.frame.as_ref()?;
    if frame.wants_headers != wants_headers
        || (held > 0 && frame.bytes.len() > DEEP_PIPELINE_FRAME_MAX)
    {
        return None;
    }
    let written = match stream.try_write(&frame.bytes) {
        Ok(n) if n > 0 => n,
        _ => return None, // full (or broken): it waits for a worker as usual
    };
    let waiter = st.waiters.pop_front().expect("checked");
    waiter.pipelined.store(true, SeqCst);
    st.pipelined += 1;
    shared.metrics.set_queue_depth(st.waiting());
    drop(st);
    let frame = waiter.frame.expect("checked");
    let rest = (written < frame.bytes.len()).then(|| frame.bytes.slice(written..));
    Some((
        Next {
            tx: Some(waiter.tx),
            id: frame.id,
            shared: shared.clone(),
            requeue: true,
        },
        rest,
    ))
}

/// Splits the RESPONSE frame at the start of `rbuf` into meta and body (no copy).
fn take_response(
    rbuf: &mut BytesMut,
    head: protocol::FrameHead,
    id: u64,
) -> Result<Reply, ProtocolError> {
    let frame = rbuf.split_to(head.total_len).freeze();
    if head.kind != Kind::Response {
        return Err(ProtocolError::UnexpectedKind {
            expected: "RESPONSE",
            got: head.kind,
        });
    }
    let payload = frame.slice(head.payload_range());
    let (meta, body_at) = protocol::parse_response(&payload)?;
    if meta.id != id {
        return Err(ProtocolError::BadMeta {
            what: "RESPONSE",
            detail: format!("id {} answers no request (expected {id})", meta.id),
        });
    }
    Ok(Reply {
        meta,
        body: payload.slice(body_at..),
    })
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.unsent.is_some() {
            // Lost while a pipelined REQUEST was half written (the last one behind): the worker
            // may have answered this request unread and started the complete ones.
            let complete = self.behind.len().saturating_sub(1);
            for next in self.behind.iter_mut().take(complete) {
                next.requeue = false;
            }
        }
        let Some(worker) = self.worker.take() else {
            return;
        };
        match self.phase {
            Phase::Idle => {
                let _ = self.shared.release(worker);
            }
            // The requests pipelined behind this one queue again (or fail, see above) as their
            // Nexts drop.
            Phase::Writing | Phase::Broken => worker.life.kill(),
            Phase::Reading { .. } | Phase::Sent { .. } => {
                let (id, deadline) = match self.phase {
                    Phase::Reading { id, deadline } => (id, deadline),
                    Phase::Sent { id } => (
                        id,
                        self.shared
                            .config
                            .worker_timeout
                            .map(|t| Instant::now() + t),
                    ),
                    _ => unreachable!(),
                };
                match tokio::runtime::Handle::try_current() {
                    // The client went away while run() was working: let the worker finish,
                    // then put it back, rather than kill a healthy worker and re-run init().
                    Ok(runtime) => {
                        let behind = std::mem::take(&mut self.behind);
                        runtime.spawn(drain(self.shared.clone(), worker, id, deadline, behind));
                    }
                    Err(_) => worker.life.kill(),
                }
            }
        }
    }
}

/// Reads and discards the answer to a request nobody waits for any more.
async fn drain(
    shared: Arc<Shared>,
    mut worker: Worker,
    id: u64,
    deadline: Option<Instant>,
    behind: VecDeque<Next>,
) {
    let finished = {
        let Worker {
            life, stream, rbuf, ..
        } = &mut worker;
        let exited = life.exit_notify.notified();
        tokio::pin!(exited);
        exited.as_mut().enable();
        let sleep = deadline.map(tokio::time::sleep_until);
        tokio::pin!(sleep);
        match guarded(read_frame(stream, rbuf), exited, sleep).await {
            Step::Done(Ok(head)) => {
                take_response(rbuf, head, id).is_ok() && (rbuf.is_empty() || !behind.is_empty())
            }
            _ => false,
        }
    };
    if finished {
        hand_off(&shared, behind, worker);
    } else {
        tracing::warn!(
            slot = worker.life.slot,
            "worker did not finish an abandoned request; replacing it"
        );
        worker.life.kill();
    }
}

//! One request/response exchange with a leased worker, and what happens to the worker when it
//! goes wrong: put back after a clean answer, drained when the client gave up while `run()` was
//! working, killed (and so replaced) after a loss, a protocol error or WORKER_TIMEOUT.

use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::sync::futures::Notified;
use tokio::time::{Instant, Sleep};

use super::pool::{CallError, CallRequest, Reply, Shared};
use super::protocol::{self, Kind, ProtocolError, RequestMeta};
use super::worker::{AFTER_EXIT_READ, ReadError, Worker, read_frame};

/// Bodies up to this size are copied behind the meta so a request is one `write`.
const INLINE_BODY_MAX: usize = 64 << 10;

/// A worker taken from the pool. Dropping it puts the worker back, finishes reading a request
/// the caller gave up on, or kills a worker left mid-frame, depending on [`Phase`].
pub(super) struct Lease {
    pub(super) worker: Option<Worker>,
    pub(super) shared: Arc<Shared>,
    pub(super) phase: Phase,
}

#[derive(Clone, Copy)]
pub(super) enum Phase {
    Idle,
    Writing,
    Reading { id: u64, deadline: Option<Instant> },
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
    pub(super) async fn exchange(&mut self, request: &CallRequest<'_>) -> Result<Reply, CallError> {
        let outcome = self.exchange_frames(request).await;
        match outcome {
            Ok((reply, clean)) => {
                if clean {
                    self.phase = Phase::Idle;
                    if let Some(worker) = self.worker.take()
                        && self.shared.release(worker)
                    {
                        // A queued request got the worker: let it write its REQUEST before
                        // this task spends time on its own response, so the worker waits less.
                        tokio::task::yield_now().await;
                    }
                } else {
                    let _ = self.lost("it sent bytes after its RESPONSE".into());
                }
                Ok(reply)
            }
            Err(Failure::TooLarge(e)) => Err(CallError::TooLarge(e)),
            Err(Failure::Lost(detail)) => Err(self.lost(detail)),
            Err(Failure::TimedOut) => Err(self.timed_out()),
        }
    }

    /// Writes the REQUEST and reads the RESPONSE; `clean` is false when the worker sent more
    /// than the one frame (it is then replaced).
    async fn exchange_frames(
        &mut self,
        request: &CallRequest<'_>,
    ) -> Result<(Reply, bool), Failure> {
        let config = &self.shared.config;
        let worker = self
            .worker
            .as_mut()
            .expect("a lease holds its worker until released");
        worker.next_id += 1;
        let id = worker.next_id;
        worker.wbuf.clear();
        let headers = worker.wants_headers.then(|| {
            request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
        });
        let remote_addr = match (worker.wants_headers, request.remote_addr) {
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
            timeout_ms: config.scoring_timeout_ms,
        };
        // On error nothing was written and the worker stays healthy (the lease drops Idle).
        protocol::encode_request_head(&mut worker.wbuf, meta, request.body.len())
            .map_err(Failure::TooLarge)?;
        let inline = request.body.len() <= INLINE_BODY_MAX;
        if inline {
            worker.wbuf.extend_from_slice(request.body);
        }

        let Worker {
            life,
            stream,
            rbuf,
            wbuf,
            ..
        } = worker;
        let exited = life.exit_notify.notified();
        tokio::pin!(exited);
        exited.as_mut().enable();
        let deadline_at = config.worker_timeout.map(|t| Instant::now() + t);
        let deadline = deadline_at.map(tokio::time::sleep_until);
        tokio::pin!(deadline);

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

        self.phase = Phase::Reading {
            id,
            deadline: deadline_at,
        };
        let read = match guarded(read_frame(stream, rbuf), exited.as_mut(), deadline.as_mut()).await
        {
            Step::Done(read) => read,
            // It may have answered just before exiting: take what is in the socket.
            Step::Exited => tokio::time::timeout(AFTER_EXIT_READ, read_frame(stream, rbuf))
                .await
                .unwrap_or(Err(ReadError::Eof)),
            Step::TimedOut => return Err(Failure::TimedOut),
        };
        let head = read.map_err(|e| Failure::Lost(e.to_string()))?;
        let reply = take_response(rbuf, head, id).map_err(|e| Failure::Lost(e.to_string()))?;
        Ok((reply, rbuf.is_empty()))
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
        let Some(worker) = self.worker.take() else {
            return;
        };
        match self.phase {
            Phase::Idle => {
                let _ = self.shared.release(worker);
            }
            Phase::Writing | Phase::Broken => worker.life.kill(),
            Phase::Reading { id, deadline } => match tokio::runtime::Handle::try_current() {
                // The client went away while run() was working: let the worker finish, then
                // put it back, rather than kill a healthy worker and re-run init().
                Ok(runtime) => {
                    runtime.spawn(drain(self.shared.clone(), worker, id, deadline));
                }
                Err(_) => worker.life.kill(),
            },
        }
    }
}

/// Reads and discards the answer to a request nobody waits for any more.
async fn drain(shared: Arc<Shared>, mut worker: Worker, id: u64, deadline: Option<Instant>) {
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
            Step::Done(Ok(head)) => take_response(rbuf, head, id).is_ok() && rbuf.is_empty(),
            _ => false,
        }
    };
    if finished {
        let _ = shared.release(worker);
    } else {
        tracing::warn!(
            slot = worker.life.slot,
            "worker did not finish an abandoned request; replacing it"
        );
        worker.life.kill();
    }
}

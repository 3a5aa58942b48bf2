//! The server's end of a run's tracking tunnel (compute `tracking: tunnel`), for clusters
//! whose pods cannot reach this machine. The pod's `collector` runs a relay (`relay.py`)
//! on the pod's loopback; its `main` gets `MLFLOW_TRACKING_URI=http://127.0.0.1:<job
//! port>`. The server keeps [`IDLE`] connections open to the relay's other port through
//! the API server's port-forward, the only way in that every cluster offers. The relay
//! pairs each of the client's connections with one of them and says so with one byte;
//! the server then carries that connection to its tracking listener (which checks the
//! run's token as for any container) and opens another idle one in its place.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::objects::RELAY_HOST_PORT;

/// Idle connections held open per run: one for the client's usual keep-alive
/// connection, one so that a second connection (a retry, an artifact upload beside a
/// metric) never waits for a port-forward to be set up.
const IDLE: usize = 2;
/// The first pause after a failed attempt (the relay not listening yet, the API server
/// refusing); it doubles with each failure in a row, up to [`MAX_RETRY`].
const RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// Failures in a row after which the server says so (the relay may never come up: no
/// python3 in the image, or one older than 3.7).
const WARN_AFTER: u32 = 10;
/// An idle connection is replaced after this long, so one dropped silently on the way
/// (a proxy, a NAT) does not keep its slot forever.
const IDLE_FOR: Duration = Duration::from_secs(600);

/// Open while held: dropping it closes every connection of the tunnel.
pub struct Tunnel {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Tunnels the relay in `pod` to the tracking listener at `local`.
pub fn open(pods: Api<Pod>, pod: String, local: SocketAddr) -> Tunnel {
    Tunnel {
        task: tokio::spawn(keep(pods, pod, local)),
    }
}

async fn keep(pods: Api<Pod>, pod: String, local: SocketAddr) {
    // Dropped (aborted) with this task, and with it every connection it holds.
    let mut held = JoinSet::new();
    let (taken, mut replace) = mpsc::channel::<()>(IDLE);
    let failures = Arc::new(AtomicU32::new(0));
    for _ in 0..IDLE {
        held.spawn(hold(
            pods.clone(),
            pod.clone(),
            local,
            taken.clone(),
            failures.clone(),
        ));
    }
    loop {
        tokio::select! {
            Some(()) = replace.recv() => {
                held.spawn(hold(pods.clone(), pod.clone(), local, taken.clone(), failures.clone()));
            }
            Some(_) = held.join_next() => {}
        }
    }
}

/// One idle connection to the relay: waits for it to be paired with a client's
/// connection, asks for a replacement, and carries the client's bytes. Asks for a
/// replacement too when the connection fails, after a pause.
async fn hold(
    pods: Api<Pod>,
    pod: String,
    local: SocketAddr,
    taken: mpsc::Sender<()>,
    failures: Arc<AtomicU32>,
) {
    match pair(&pods, &pod).await {
        Ok(None) => {
            // Idle for IDLE_FOR: replaced by a fresh one.
            let _ = taken.send(()).await;
        }
        Ok(Some((mut from_pod, forward))) => {
            failures.store(0, Ordering::Relaxed);
            let _ = taken.send(()).await;
            match TcpStream::connect(local).await {
                Ok(mut upstream) => {
                    let _ = tokio::io::copy_bidirectional(&mut from_pod, &mut upstream).await;
                }
                Err(e) => {
                    tracing::warn!(%pod, error = %e, "the tracking tunnel cannot reach the tracking listener");
                }
            }
            drop(from_pod);
            let _ = forward.join().await;
        }
        Err(why) => {
            let n = failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n == WARN_AFTER {
                tracing::warn!(%pod, "the run's MLflow tracking relay does not answer ({why}); the pod's image needs python3 (3.7 or newer) for `tracking: tunnel`");
            } else {
                tracing::debug!(%pod, "tracking tunnel: {why}");
            }
            let pause = RETRY.saturating_mul(1 << n.min(5)).min(MAX_RETRY);
            tokio::time::sleep(pause).await;
            let _ = taken.send(()).await;
        }
    }
}

/// A port-forwarded connection to the relay, once the relay has paired it, or `None`
/// when it stayed idle for [`IDLE_FOR`].
async fn pair(
    pods: &Api<Pod>,
    pod: &str,
) -> Result<
    Option<(
        impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        kube::api::Portforwarder,
    )>,
    String,
> {
    let mut forward = pods
        .portforward(pod, &[RELAY_HOST_PORT])
        .await
        .map_err(|e| format!("port-forward to {pod}: {e}"))?;
    let mut stream = forward
        .take_stream(RELAY_HOST_PORT)
        .ok_or("the port-forward gave no stream")?;
    let mut paired = [0u8; 1];
    match tokio::time::timeout(IDLE_FOR, stream.read_exact(&mut paired)).await {
        Err(_) => Ok(None),
        Ok(Err(e)) => Err(format!("the relay closed an idle connection: {e}")),
        Ok(Ok(_)) => Ok(Some((stream, forward))),
    }
}

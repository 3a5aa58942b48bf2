//! The HTTP server of `tug-infsrv`: hyper 1, HTTP/1.1 with keep-alive, one task per
//! connection, TCP_NODELAY, and a graceful stop (no new connections; requests in flight and
//! queued ones still answered). What each request gets is decided in [`super::routes`].

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use super::routes::App;

/// Counts open connections so shutdown can wait for them.
#[derive(Default)]
struct OpenConnections {
    count: AtomicUsize,
    all_closed: Notify,
}

struct ConnectionGuard(Arc<OpenConnections>);

impl OpenConnections {
    fn open(self: &Arc<Self>) -> ConnectionGuard {
        self.count.fetch_add(1, SeqCst);
        ConnectionGuard(self.clone())
    }

    async fn closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, SeqCst) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

/// Connections still finishing after the listener closed.
pub struct Draining {
    open: Arc<OpenConnections>,
    _stop: watch::Sender<bool>,
}

impl Draining {
    pub fn open_connections(&self) -> usize {
        self.open.count.load(SeqCst)
    }

    /// Resolves once every connection has sent its last response and closed.
    pub async fn finished(&self) {
        self.open.closed().await;
    }
}

/// Accepts connections until `stop` resolves, then closes the listener and asks every
/// connection to finish its current request and close. In-flight and queued requests still
/// get answers; wait for them with [`Draining::finished`].
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    stop: impl Future<Output = ()>,
) -> Draining {
    let (stop_tx, stop_rx) = watch::channel(false);
    let open = Arc::new(OpenConnections::default());
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    spawn_connection(tcp, peer.ip(), app.clone(), stop_rx.clone(), open.open());
                }
                Err(e) => {
                    // Out of file descriptors, usually: back off instead of spinning.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    Draining {
        open,
        _stop: stop_tx,
    }
}

fn spawn_connection(
    tcp: TcpStream,
    peer: IpAddr,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
    guard: ConnectionGuard,
) {
    // Responses are single writes; never let Nagle hold one back for the client's ACK.
    let _ = tcp.set_nodelay(true);
    tokio::spawn(async move {
        let _guard = guard;
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(request, Some(peer)).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(tcp), service);
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended with an error: {e}");
                }
            }
            // A send (shutdown) or a dropped sender (the server is gone): finish and close.
            _ = stop.changed() => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
    });
}

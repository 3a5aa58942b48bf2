//! What the sweep and pipeline controllers share: one task per live parent run, which
//! each controller can nudge (a cancel), counted while it runs (the server's idle exit
//! waits for none), and woken between passes by a store change, a nudge, or a tick.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;

/// The live tasks of one controller, by run id.
#[derive(Default)]
pub struct Tasks {
    wakers: Arc<Mutex<HashMap<String, watch::Sender<()>>>>,
    active: Arc<AtomicUsize>,
}

struct ActiveGuard(Arc<AtomicUsize>);
impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Tasks {
    /// Tasks running now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Wakes `id`'s task for a pass now (it may be between passes, or not exist).
    pub fn wake(&self, id: &str) {
        if let Some(tx) = self.wakers.lock().unwrap().get(id) {
            tx.send_replace(());
        }
    }

    /// Runs `task` for `id` in the background, given the receiver [`Tasks::wake`] sends to.
    pub fn spawn<Fut>(&self, id: String, task: impl FnOnce(watch::Receiver<()>) -> Fut)
    where
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = watch::channel(());
        self.wakers.lock().unwrap().insert(id.clone(), tx);
        self.active.fetch_add(1, Ordering::SeqCst);
        let guard = ActiveGuard(self.active.clone());
        let wakers = self.wakers.clone();
        let work = task(rx);
        tokio::spawn(async move {
            let _guard = guard;
            work.await;
            wakers.lock().unwrap().remove(&id);
        });
    }
}

/// Waits between two passes of a task: for a store change, a nudge or `tick`, then at
/// least `settle` more, so a burst of writes (a step's end, a trial's metrics) is one pass.
pub struct Pacer {
    changes: watch::Receiver<u64>,
    wake: watch::Receiver<()>,
    tick: Duration,
    settle: Duration,
}

impl Pacer {
    pub fn new(
        store: &Store,
        wake: watch::Receiver<()>,
        tick: Duration,
        settle: Duration,
    ) -> Pacer {
        Pacer {
            changes: store.subscribe(),
            wake,
            tick,
            settle,
        }
    }

    pub async fn wait(&mut self) {
        tokio::select! {
            _ = self.changes.changed() => {}
            _ = self.wake.changed() => {}
            _ = tokio::time::sleep(self.tick) => {}
        }
        tokio::time::sleep(self.settle).await;
        self.changes.borrow_and_update();
    }
}

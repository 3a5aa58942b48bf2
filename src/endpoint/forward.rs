//! A cluster endpoint's loopback address: tug's server listens on the endpoint's port and
//! carries each connection to a ready router pod through the API server's port-forward,
//! so `scoring_uri` is the same `http://127.0.0.1:<port>/score` as on Docker and needs no
//! NodePort, LoadBalancer or kube-proxy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::net::{TcpListener, TcpStream};

use super::plan::CONTAINER_PORT;

/// Listening until dropped.
pub struct Forward {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `127.0.0.1:port` and forwards to the pods `selector` picks.
pub async fn listen(port: u16, pods: Api<Pod>, selector: String) -> std::io::Result<Forward> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let chosen: Arc<Mutex<Option<(String, Instant)>>> = Arc::default();
    let task = tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            let (pods, selector, chosen) = (pods.clone(), selector.clone(), chosen.clone());
            tokio::spawn(async move {
                if let Err(why) = carry(conn, &pods, &selector, &chosen).await {
                    tracing::warn!(%selector, "forwarding a connection to the router: {why}");
                }
            });
        }
    });
    Ok(Forward { task })
}

/// How long a picked router pod is used before the pick is made again (a pod that is
/// being replaced still accepts port-forwards while it drains).
const PICK_FOR: Duration = Duration::from_secs(5);

/// A ready router pod that is not being deleted.
async fn pick(pods: &Api<Pod>, selector: &str) -> Result<String, String> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| format!("listing router pods: {e}"))?;
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .find_map(|p| p.metadata.name)
        .ok_or_else(|| "no router pod is ready".to_string())
}

async fn carry(
    mut conn: TcpStream,
    pods: &Api<Pod>,
    selector: &str,
    chosen: &Mutex<Option<(String, Instant)>>,
) -> Result<(), String> {
    let port = CONTAINER_PORT;
    let mut last = String::new();
    // Twice: the remembered pod may be gone; the second try picks a ready one afresh.
    for _ in 0..2 {
        let known = chosen
            .lock()
            .unwrap()
            .clone()
            .filter(|(_, at)| at.elapsed() < PICK_FOR);
        let (pod, at) = match known {
            Some(p) => p,
            None => (pick(pods, selector).await?, Instant::now()),
        };
        match pods.portforward(&pod, &[port]).await {
            Ok(mut pf) => {
                *chosen.lock().unwrap() = Some((pod, at));
                let Some(mut upstream) = pf.take_stream(port) else {
                    return Err("the port-forward gave no stream".into());
                };
                let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                drop(upstream);
                let _ = pf.join().await;
                return Ok(());
            }
            Err(e) => {
                last = format!("port-forward to pod {pod}: {e}");
                *chosen.lock().unwrap() = None;
            }
        }
    }
    Err(last)
}

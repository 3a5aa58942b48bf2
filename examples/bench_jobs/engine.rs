//! Engine housekeeping: the image inventory, waiting for tug's removals, and cleanup.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::bail;
use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListImagesOptions, RemoveContainerOptions, RemoveImageOptions,
};

use crate::Bench;

impl Bench {
    /// Stops the server, removes containers with this run's labels, the temporary
    /// workspace's containers, and the environment image if this run built it.
    pub async fn cleanup(&mut self, images_before: &HashSet<String>) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let mut ws_id = None;
        if let Some(mut s) = self.server.take() {
            ws_id = Some(s.client.info.workspace_id.clone());
            if let Err(e) = s.client.stop_server().await {
                problems.push(format!("stopping the server: {e}"));
            }
            match tokio::time::timeout(Duration::from_secs(20), s.child.wait()).await {
                Ok(_) => {}
                Err(_) => {
                    problems.push("the server did not stop within 20 s; killed it".into());
                    let _ = s.child.kill().await;
                }
            }
        }
        let mut labels = vec![
            format!("tug.bench={}", self.bench_id),
            format!("{}={}", tug::compute::labels::WORKSPACE, self.bench_id),
        ];
        if let Some(id) = ws_id {
            labels.push(format!("{}={id}", tug::compute::labels::WORKSPACE));
        }
        for label in labels {
            let opts = ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("label".to_string(), vec![label])])),
                ..Default::default()
            };
            match self.docker.list_containers(Some(opts)).await {
                Ok(list) => {
                    for c in list {
                        let Some(id) = c.id else { continue };
                        let opts = RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        };
                        if let Err(e) = self.docker.remove_container(&id, Some(opts)).await
                            && !e.to_string().contains("already in progress")
                        {
                            problems.push(format!("removing container {id}: {e}"));
                        }
                    }
                }
                Err(e) => problems.push(format!("listing containers: {e}")),
            }
        }
        if let Some(tag) = &self.env_tag
            && !self.args.keep_image
            && let Ok(img) = self.docker.inspect_image(tag).await
            && !images_before.contains(img.id.as_deref().unwrap_or_default())
        {
            let opts = RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            };
            match self.docker.remove_image(tag, Some(opts), None).await {
                Ok(_) => eprintln!("[bench] removed {tag}, which this run built"),
                Err(e) => problems.push(format!("removing image {tag}: {e}")),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("cleanup: {}", problems.join("; "))
        }
    }
}

pub async fn image_ids(docker: &Docker) -> anyhow::Result<HashSet<String>> {
    let list = docker
        .list_images(Some(ListImagesOptions {
            all: true,
            ..Default::default()
        }))
        .await?;
    Ok(list.into_iter().map(|i| i.id).collect())
}

/// Waits until the workspace `ws_id` has no containers left.
pub async fn settle(docker: &Docker, ws_id: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let opts = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{}={ws_id}", tug::compute::labels::WORKSPACE)],
            )])),
            ..Default::default()
        };
        if docker.list_containers(Some(opts)).await?.is_empty()
            || started.elapsed() > Duration::from_secs(30)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

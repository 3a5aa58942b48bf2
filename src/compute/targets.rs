//! The compute targets of one workspace, resolved by name per run: `local` (and any
//! `type: docker` entry) is the Docker engine; a `type: kubernetes` entry is a cluster,
//! connected on first use and again when its config entry changes.

use std::collections::HashMap;

use super::config::TargetConfig;
use super::docker::DockerTarget;
use super::kubernetes::KubeTarget;
use super::{Error, Target};

pub struct Targets {
    workspace_id: String,
    docker: DockerTarget,
    /// Connected clusters by compute name, with the config they were connected with.
    clusters: tokio::sync::Mutex<HashMap<String, (String, KubeTarget)>>,
    /// The server's MLflow tracking listener, for clusters that reach it by tunnel.
    tracking: std::sync::OnceLock<std::net::SocketAddr>,
}

impl Targets {
    pub fn new(workspace_id: &str, docker: DockerTarget) -> Targets {
        Targets {
            workspace_id: workspace_id.to_string(),
            docker,
            clusters: Default::default(),
            tracking: Default::default(),
        }
    }

    /// Where the MLflow tracking listener for runs is (set once, before runs start).
    pub fn set_tracking(&self, listener: std::net::SocketAddr) {
        let _ = self.tracking.set(listener);
    }

    pub fn docker(&self) -> &DockerTarget {
        &self.docker
    }

    /// The target named `name`, configured as `config`.
    pub async fn get(&self, name: &str, config: &TargetConfig) -> Result<Target, Error> {
        if !config.is_kubernetes() {
            return Ok(Target::Docker(self.docker.clone()));
        }
        let key = serde_json::to_string(config).expect("config serializes");
        let mut clusters = self.clusters.lock().await;
        if let Some((k, t)) = clusters.get(name)
            && *k == key
        {
            return Ok(Target::Kubernetes(t.clone()));
        }
        let t = KubeTarget::connect(
            name,
            config,
            &self.workspace_id,
            self.docker.docker().clone(),
            self.tracking.get().copied(),
        )
        .await?;
        clusters.insert(name.to_string(), (key, t.clone()));
        Ok(Target::Kubernetes(t))
    }
}

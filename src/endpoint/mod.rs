//! Online endpoints and deployments on the local Docker engine.
//!
//! An endpoint is a router container (`tug-infsrv` in `router` mode, in a
//! `FROM scratch` image) published on a fixed loopback port, on a Docker network of its
//! own. Each deployment is `instance_count` containers of a scoring image (environment
//! image + model + code + `tug-infsrv`) on that network. The router holds only hashes of
//! the endpoint's keys; the keys themselves live in a 0600 file in the workspace.
//!
//! This module holds the records and the pure planning (names, image contexts, router
//! configuration); `docker.rs` talks to the engine and `controller.rs` runs operations.

mod backend;
pub mod controller;
pub mod docker;
pub mod forward;
pub mod kube_objects;
pub mod kubernetes;
pub mod plan;
mod rollout;
pub mod runtime;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::run::model::ResolvedEnvironment;

/// Where an endpoint or deployment is in its life, as Azure names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProvisioningState {
    Creating,
    Updating,
    Succeeded,
    Failed,
    Deleting,
}

impl ProvisioningState {
    pub fn is_busy(self) -> bool {
        matches!(self, Self::Creating | Self::Updating | Self::Deleting)
    }
}

/// What `online-endpoint create` sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// `key` or `aml_token` (both are bearer keys on tug).
    #[serde(default = "key_mode")]
    pub auth_mode: String,
    #[serde(default)]
    pub traffic: BTreeMap<String, u32>,
    #[serde(default)]
    pub mirror_traffic: BTreeMap<String, u32>,
    /// The compute target (`compute:` without `azureml:`); none: the local Docker engine.
    #[serde(default)]
    pub compute: Option<String>,
}

fn key_mode() -> String {
    "key".into()
}

/// An endpoint as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub auth_mode: String,
    pub traffic: BTreeMap<String, u32>,
    pub mirror_traffic: BTreeMap<String, u32>,
    pub state: ProvisioningState,
    /// Progress while busy, the reason when failed.
    #[serde(default)]
    pub message: Option<String>,
    /// The compute target it runs on; none: the local Docker engine.
    #[serde(default)]
    pub compute: Option<String>,
    /// Loopback port the router is published on (on a cluster: where tug's server
    /// forwards to the router through the API server); fixed for the endpoint's life.
    pub port: u16,
    /// Hex sha256 of the primary and secondary keys.
    pub key_sha256: Vec<String>,
    /// `http://host:port` of a NodePort or LoadBalancer router Service, when the compute
    /// target exposes endpoints so: then `scoring_uri` is there.
    #[serde(default)]
    pub external_base: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl EndpointRecord {
    /// Where clients call: the exposed Service when there is one, else the loopback port.
    pub fn scoring_uri(&self) -> String {
        format!("{}/score", self.base())
    }
    pub fn openapi_uri(&self) -> String {
        format!("{}/swagger.json", self.base())
    }
    /// The loopback address (the router on Docker; tug's port-forward on a cluster).
    pub fn loopback_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn base(&self) -> String {
        self.external_base
            .clone()
            .unwrap_or_else(|| self.loopback_base())
    }
}

/// The model a deployment serves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelBinding {
    /// A registered version (resolved from `azureml:name:version|@latest` at submit).
    Registered { name: String, version: String },
}

/// Readiness probe settings (Azure's names and defaults).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    pub initial_delay: u64,
    pub period: u64,
    pub timeout: u64,
    pub failure_threshold: u64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            initial_delay: 10,
            period: 10,
            timeout: 2,
            failure_threshold: 30,
        }
    }
}

impl Probe {
    /// How long an instance may take to become ready before the deployment fails.
    pub fn deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.initial_delay + self.period * self.failure_threshold)
    }
}

/// A deployment as the CLI resolved it: every local file uploaded, every reference pinned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentSubmission {
    pub name: String,
    pub endpoint_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub model: Option<ModelBinding>,
    /// Snapshot of `code_configuration.code`, and the folder name it keeps in the image.
    #[serde(default)]
    pub code_snapshot: Option<String>,
    #[serde(default)]
    pub code_dir: Option<String>,
    /// Relative to the code folder.
    #[serde(default)]
    pub scoring_script: Option<String>,
    pub environment: ResolvedEnvironment,
    #[serde(default)]
    pub environment_variables: BTreeMap<String, String>,
    #[serde(default)]
    pub instance_type: Option<String>,
    pub instance_count: u32,
    pub request_timeout_ms: u64,
    pub max_concurrent_requests_per_instance: u32,
    #[serde(default)]
    pub readiness_probe: Probe,
    #[serde(default)]
    pub liveness_probe: Probe,
    /// `scale_settings: target_utilization` (Kubernetes only); none: `instance_count`.
    #[serde(default)]
    pub autoscale: Option<Autoscale>,
    /// `resources` of a Kubernetes deployment (over the instance type's).
    #[serde(default)]
    pub resources: Option<crate::spec::ResourceRequirements>,
    #[serde(default)]
    pub source: Option<String>,
}

/// Azure's `target_utilization` scale settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoscale {
    pub min_instances: u32,
    pub max_instances: u32,
    pub target_utilization_percentage: u32,
    pub polling_interval: u32,
}

/// One running container of a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Instance {
    pub container: String,
    /// `ip:port` on the endpoint's network (what the router forwards to).
    pub address: String,
    /// Loopback port on the host, for debugging one instance directly.
    pub host_port: u16,
}

/// A deployment as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentRecord {
    pub endpoint: String,
    pub name: String,
    pub spec: DeploymentSubmission,
    pub state: ProvisioningState,
    #[serde(default)]
    pub message: Option<String>,
    /// Bumped by every update: instance names carry it, so old and new can overlap.
    pub generation: u32,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub instances: Vec<Instance>,
    pub created_at: String,
    pub updated_at: String,
}

/// Keys of an endpoint, as `get-credentials` shows them (Azure's field names).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    pub primary_key: String,
    pub secondary_key: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{0}` is not a valid endpoint name: 3 to 32 characters, letters, digits and `-`, starting with a letter and not ending with `-`"
    )]
    BadName(String),
    #[error("no endpoint `{0}`; `tug online-endpoint list` shows them")]
    NoEndpoint(String),
    #[error("endpoint `{0}` already exists; use `tug online-endpoint update` to change it")]
    EndpointExists(String),
    #[error(
        "no deployment `{deployment}` in endpoint `{endpoint}`; `tug online-deployment list -e {endpoint}` shows them"
    )]
    NoDeployment {
        endpoint: String,
        deployment: String,
    },
    #[error(
        "deployment `{deployment}` already exists in endpoint `{endpoint}`; use `tug online-deployment update`"
    )]
    DeploymentExists {
        endpoint: String,
        deployment: String,
    },
    #[error("endpoint `{0}` has an operation in progress ({1}); wait for it to finish")]
    Busy(String, String),
    #[error("{0}")]
    Invalid(String),
    #[error("auth_mode `{0}` is not supported on tug; use `key` (or `aml_token`)")]
    AuthMode(String),
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    #[error("{doing}: {source}")]
    Engine {
        doing: String,
        source: bollard::errors::Error,
    },
    #[error(transparent)]
    Build(#[from] crate::build::docker::Error),
    #[error("the scoring runtime: {0}")]
    Runtime(#[from] runtime::Error),
    #[error(transparent)]
    Secret(#[from] crate::secrets::Error),
    #[error(transparent)]
    Compute(#[from] crate::compute::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Azure's endpoint-name rule.
pub fn valid_endpoint_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=32).contains(&bytes.len())
        && bytes[0].is_ascii_alphabetic()
        && bytes.last().is_some_and(|c| c.is_ascii_alphanumeric())
        && bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-')
}

/// Checks traffic and mirror settings against the deployments that exist.
pub fn check_traffic(
    traffic: &BTreeMap<String, u32>,
    mirror: &BTreeMap<String, u32>,
    deployments: &[&str],
) -> Result<()> {
    let unknown = |map: &BTreeMap<String, u32>, what: &str| -> Result<()> {
        for name in map.keys() {
            if !deployments.contains(&name.as_str()) {
                return Err(Error::Invalid(format!(
                    "{what} names deployment `{name}`, which does not exist (deployments: {})",
                    if deployments.is_empty() {
                        "none yet; create one with `tug online-deployment create`".to_string()
                    } else {
                        deployments.join(", ")
                    }
                )));
            }
        }
        Ok(())
    };
    unknown(traffic, "traffic")?;
    unknown(mirror, "mirror_traffic")?;
    let sum: u32 = traffic.values().sum();
    if sum != 0 && sum != 100 {
        return Err(Error::Invalid(format!(
            "traffic adds up to {sum}%; it must add up to 100 (or 0 to send nothing)"
        )));
    }
    if mirror.len() > 1 {
        return Err(Error::Invalid(
            "mirror_traffic may name one deployment only".into(),
        ));
    }
    for (name, pct) in mirror {
        if *pct > 50 {
            return Err(Error::Invalid(format!(
                "mirror_traffic for `{name}` is {pct}%; at most 50% can be mirrored"
            )));
        }
        if traffic.get(name).copied().unwrap_or(0) > 0 {
            return Err(Error::Invalid(format!(
                "`{name}` gets live traffic, so it cannot also receive mirrored traffic"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_follow_azure() {
        assert!(valid_endpoint_name("digits"));
        assert!(valid_endpoint_name("my-endpoint-1"));
        assert!(!valid_endpoint_name("ab"));
        assert!(!valid_endpoint_name("1digits"));
        assert!(!valid_endpoint_name("digits-"));
        assert!(!valid_endpoint_name("dig_its"));
        assert!(!valid_endpoint_name(&"a".repeat(33)));
    }

    #[test]
    fn traffic_must_name_existing_deployments_and_add_up() {
        let t = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        let deps = ["blue", "green"];
        assert!(check_traffic(&t(&[("blue", 70), ("green", 30)]), &t(&[]), &deps).is_ok());
        assert!(check_traffic(&t(&[]), &t(&[]), &deps).is_ok());
        assert!(check_traffic(&t(&[("blue", 70)]), &t(&[]), &deps).is_err());
        assert!(check_traffic(&t(&[("red", 100)]), &t(&[]), &deps).is_err());
        assert!(check_traffic(&t(&[("blue", 100)]), &t(&[("green", 10)]), &deps).is_ok());
        assert!(check_traffic(&t(&[("blue", 100)]), &t(&[("green", 60)]), &deps).is_err());
        assert!(check_traffic(&t(&[("blue", 100)]), &t(&[("blue", 10)]), &deps).is_err());
    }

    #[test]
    fn probe_deadline_is_azures_default_window() {
        assert_eq!(Probe::default().deadline().as_secs(), 310);
    }
}

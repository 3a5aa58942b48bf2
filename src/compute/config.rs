//! Compute targets as configured in the workspace's `config.yaml`, and turning a job's
//! `resources` into container limits. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Limits;
use crate::run::model::Resources;

/// The `compute:` section of `.tug/config.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    #[serde(default)]
    pub compute: BTreeMap<String, TargetConfig>,
    /// Azure's curated environment names mapped to local environments (before the
    /// built-in stand-ins; see `spec::curated`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub curated: BTreeMap<String, crate::spec::curated::CuratedTarget>,
    /// Local images standing in for public ones this machine cannot pull
    /// (see `spec::image_map`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// What `azureml://datastores/<name>/...` URIs stand for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub datastores: BTreeMap<String, crate::datastore::DatastoreConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    #[serde(rename = "type", default = "docker_kind")]
    pub kind: String,
    /// Docker engine address (`unix:///...`, `tcp://...`); the local engine when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_types: BTreeMap<String, InstanceType>,
    /// Kubernetes: the kubeconfig file (`KUBECONFIG` or `~/.kube/config` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<String>,
    /// Kubernetes: the kubeconfig context (its current context when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Kubernetes: the namespace runs and endpoints go to (`default` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes: how images built on this machine reach the cluster's nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImageDelivery>,
    /// Kubernetes: the kind cluster or minikube profile name (for `images: kind|minikube`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Kubernetes: the registry prefix images are pushed to (for `images: registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Kubernetes: an `imagePullSecrets` entry for pods (for `images: registry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// Kubernetes: how an endpoint's router Service is exposed. `ClusterIP` (the default)
    /// is reached through tug's loopback port-forward; `NodePort` or `LoadBalancer`
    /// give `scoring_uri` the node's or the load balancer's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_service: Option<EndpointService>,
    /// Kubernetes: how a run's MLflow client reaches tug's tracking API. When absent,
    /// `direct` for a cluster whose API server is on loopback (its nodes are this
    /// machine or containers on its engine), else `tunnel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking: Option<TrackingRoute>,
}

/// How a run's pods reach the MLflow tracking API on the machine running tug's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackingRoute {
    /// Pods connect to the listener on Docker's bridge gateway themselves (a kind,
    /// minikube or local cluster on this machine).
    Direct,
    /// Pods connect to a relay in their own pod, which tug's server holds open through
    /// the API server's port-forward: for clusters that cannot reach this machine.
    Tunnel,
}

/// The type of an endpoint's router Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum EndpointService {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl EndpointService {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointService::ClusterIP => "ClusterIP",
            EndpointService::NodePort => "NodePort",
            EndpointService::LoadBalancer => "LoadBalancer",
        }
    }
}

impl TrackingRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackingRoute::Direct => "direct",
            TrackingRoute::Tunnel => "tunnel",
        }
    }

    /// The route for a cluster whose API server is `cluster_url`, as configured or, when
    /// not, `direct` only where the API server is on loopback: its nodes are then this
    /// machine or containers on its engine, which reach Docker's bridge gateway.
    pub fn resolve(configured: Option<TrackingRoute>, cluster_url: &str) -> TrackingRoute {
        configured.unwrap_or_else(|| {
            let host = cluster_url
                .split_once("://")
                .map_or(cluster_url, |(_, rest)| rest);
            let host = host.split(['/', '?']).next().unwrap_or_default();
            let host = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => host.rsplit_once(':').map_or(host, |(h, _)| h),
            };
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                TrackingRoute::Direct
            } else {
                TrackingRoute::Tunnel
            }
        })
    }
}

/// How images built on this machine reach a cluster's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageDelivery {
    /// The nodes use this machine's Docker engine (a local kubelet, minikube `--driver=none`).
    Local,
    /// Streamed into each kind node's containerd, as `kind load docker-image` does.
    Kind,
    /// Loaded into the minikube node's Docker engine.
    Minikube,
    /// Pushed to `registry`, pulled by the nodes.
    Registry,
}

impl ImageDelivery {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageDelivery::Local => "local",
            ImageDelivery::Kind => "kind",
            ImageDelivery::Minikube => "minikube",
            ImageDelivery::Registry => "registry",
        }
    }
}

impl TargetConfig {
    pub fn is_kubernetes(&self) -> bool {
        self.kind == "kubernetes"
    }
}

fn docker_kind() -> String {
    "docker".into()
}

/// A named size, as Azure's Kubernetes instance types: cpu, memory and GPU limits,
/// optional requests (Kubernetes only; the limits when absent), and where pods may go.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<Requests>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<serde_yaml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

/// A Kubernetes toleration, as in a pod spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// Azure's `defaultinstancetype`, which every Kubernetes compute has unless the config
/// defines one of that name: limits of 2 CPUs and 2 GiB, requests of 0.1 CPU and 1.5 GiB.
pub const DEFAULT_INSTANCE_TYPE: &str = "defaultinstancetype";

fn default_instance_type() -> InstanceType {
    InstanceType {
        cpu: Some(serde_yaml::Value::String("2".into())),
        memory: Some("2Gi".into()),
        requests: Some(Requests {
            cpu: Some(serde_yaml::Value::String("100m".into())),
            memory: Some("1.5Gi".into()),
        }),
        ..Default::default()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    /// Over the bounds every YAML file tug reads is held to (already located).
    #[error("{0}")]
    Limit(Box<crate::spec::SpecError>),
    #[error(
        "compute target `{name}` is not configured; known targets: {known}. Add it under `compute:` in {file}"
    )]
    UnknownTarget {
        name: String,
        known: String,
        file: String,
    },
    #[error(
        "instance type `{name}` is not defined for compute `{target}`; defined: {known}. Define it under `compute.{target}.instance_types` in the workspace config.yaml"
    )]
    UnknownInstanceType {
        name: String,
        target: String,
        known: String,
    },
    #[error("`{field}`: cannot read `{value}` as {what}")]
    BadQuantity {
        field: String,
        value: String,
        what: &'static str,
    },
    #[error(
        "`resources.instance_count: {0}`: the local Docker engine runs one instance; use 1 (multi-node jobs need a Kubernetes compute)"
    )]
    InstanceCount(u32),
}

impl WorkspaceConfig {
    pub fn parse(file: &str, text: &str) -> Result<WorkspaceConfig, Error> {
        // The same bounds as every spec file (size, depth, alias expansion).
        crate::spec::limits::check(std::path::Path::new(file), text)
            .map_err(|e| Error::Limit(Box::new(e)))?;
        serde_yaml::from_str::<Option<WorkspaceConfig>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| Error::Parse {
                file: file.to_string(),
                message: e.to_string(),
            })
    }

    /// The target named `name`; `local` always exists.
    pub fn target(&self, name: &str, file: &str) -> Result<TargetConfig, Error> {
        match self.compute.get(name) {
            Some(t) => Ok(t.clone()),
            None if name == "local" => Ok(TargetConfig {
                kind: docker_kind(),
                ..Default::default()
            }),
            None => Err(Error::UnknownTarget {
                name: name.to_string(),
                known: std::iter::once("local")
                    .chain(
                        self.compute
                            .keys()
                            .map(String::as_str)
                            .filter(|k| *k != "local"),
                    )
                    .collect::<Vec<_>>()
                    .join(", "),
                file: file.to_string(),
            }),
        }
    }
}

/// Container limits for a job's `resources` on `target` (named `target_name`).
pub fn limits(target_name: &str, target: &TargetConfig, res: &Resources) -> Result<Limits, Error> {
    if let Some(n) = res.instance_count.filter(|n| *n != 1) {
        return Err(Error::InstanceCount(n));
    }
    let mut limits = Limits::default();
    if let Some(shm) = &res.shm_size {
        limits.shm_bytes = Some(parse_bytes(shm).ok_or_else(|| Error::BadQuantity {
            field: "resources.shm_size".into(),
            value: shm.clone(),
            what: "a size like 2g or 512m",
        })?);
    }
    let named = res.instance_type.clone().or_else(|| {
        target
            .is_kubernetes()
            .then(|| DEFAULT_INSTANCE_TYPE.to_string())
    });
    if let Some(name) = &named {
        let builtin = default_instance_type();
        let it = match target.instance_types.get(name) {
            Some(it) => it,
            None if target.is_kubernetes() && name == DEFAULT_INSTANCE_TYPE => &builtin,
            None => {
                return Err(Error::UnknownInstanceType {
                    name: name.clone(),
                    target: target_name.to_string(),
                    known: if target.instance_types.is_empty() {
                        "none".into()
                    } else {
                        target
                            .instance_types
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                });
            }
        };
        let field = format!("compute.{target_name}.instance_types.{name}");
        limits.nano_cpus = cpu_field(&it.cpu, &format!("{field}.cpu"))?;
        limits.memory_bytes = memory_field(&it.memory, &format!("{field}.memory"))?;
        limits.gpus = it.gpu.filter(|g| *g > 0).map(i64::from);
        if let Some(req) = &it.requests {
            limits.cpu_request_nanos = cpu_field(&req.cpu, &format!("{field}.requests.cpu"))?;
            limits.memory_request_bytes =
                memory_field(&req.memory, &format!("{field}.requests.memory"))?;
        }
        limits.node_selector = it.node_selector.clone();
        limits.tolerations = it.tolerations.clone();
    }
    Ok(limits)
}

fn cpu_field(value: &Option<serde_yaml::Value>, field: &str) -> Result<Option<i64>, Error> {
    let Some(cpu) = value else { return Ok(None) };
    let text = match cpu {
        serde_yaml::Value::String(s) => s.clone(),
        v => serde_yaml::to_string(v)
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    parse_cpu(&text).map(Some).ok_or(Error::BadQuantity {
        field: field.to_string(),
        value: text.clone(),
        what: "a CPU count like 2, 0.5 or 500m",
    })
}

fn memory_field(value: &Option<String>, field: &str) -> Result<Option<i64>, Error> {
    let Some(mem) = value else { return Ok(None) };
    parse_bytes(mem)
        .map(Some)
        .ok_or_else(|| Error::BadQuantity {
            field: field.to_string(),
            value: mem.clone(),
            what: "a size like 4Gi or 512m",
        })
}

/// CPU count (`2`, `0.5`, `500m`) in nano-CPUs.
pub fn parse_cpu(s: &str) -> Option<i64> {
    let s = s.trim();
    let cpus: f64 = match s.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => s.parse().ok()?,
    };
    (cpus > 0.0 && cpus.is_finite()).then(|| (cpus * 1e9).round() as i64)
}

/// Sizes as Docker (`2g`, `512m`, `100k`, bytes) and Kubernetes (`4Gi`, `512Mi`, `1G`) write them.
pub fn parse_bytes(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "ki" => 1024.0,
        "m" | "mb" | "mi" => 1024.0 * 1024.0,
        "g" | "gb" | "gi" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    // Kubernetes' decimal suffixes (`1G` = 10^9) only matter in upper case without `i`.
    let mult = match unit {
        "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => mult,
    };
    (n >= 0.0).then_some((n * mult) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "compute:\n  local:\n    instance_types:\n      small: {cpu: 1, memory: 2Gi}\n      half: {cpu: 500m}\n  gpu-box:\n    type: docker\n    host: tcp://10.0.0.5:2375\n";

    #[test]
    fn quantities() {
        assert_eq!(parse_bytes("2g"), Some(2 << 30));
        assert_eq!(parse_bytes("512Mi"), Some(512 << 20));
        assert_eq!(parse_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("2x"), None);
        assert_eq!(parse_cpu("500m"), Some(500_000_000));
        assert_eq!(parse_cpu("2"), Some(2_000_000_000));
        assert_eq!(parse_cpu("-1"), None);
    }

    #[test]
    fn tracking_goes_direct_only_to_clusters_on_loopback() {
        use TrackingRoute::*;
        for url in [
            "https://127.0.0.1:6443",
            "https://localhost:40123/",
            "https://[::1]:6443",
            "https://127.0.0.2",
        ] {
            assert_eq!(TrackingRoute::resolve(None, url), Direct, "{url}");
        }
        for url in [
            "https://10.0.0.5:6443",
            "https://aks-1234.hcp.westeurope.azmk8s.io:443",
            "https://[2001:db8::1]:6443",
            "https://localhost.example.com",
            "https://192.168.49.2:8443",
        ] {
            assert_eq!(TrackingRoute::resolve(None, url), Tunnel, "{url}");
        }
        assert_eq!(
            TrackingRoute::resolve(Some(Tunnel), "https://127.0.0.1"),
            Tunnel
        );
        assert_eq!(
            TrackingRoute::resolve(Some(Direct), "https://10.1.1.1"),
            Direct
        );
        let c = WorkspaceConfig::parse(
            "config.yaml",
            "compute:\n  k:\n    type: kubernetes\n    tracking: tunnel\n",
        )
        .unwrap();
        assert_eq!(c.compute["k"].tracking, Some(Tunnel));
        let bad = WorkspaceConfig::parse(
            "config.yaml",
            "compute:\n  k:\n    type: kubernetes\n    tracking: relay\n",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("direct") && bad.contains("tunnel"), "{bad}");
    }

    #[test]
    fn instance_types_become_limits() {
        let c = WorkspaceConfig::parse("config.yaml", CONFIG).unwrap();
        let local = c.target("local", "config.yaml").unwrap();
        let res = Resources {
            instance_type: Some("small".into()),
            shm_size: Some("1g".into()),
            ..Default::default()
        };
        let l = limits("local", &local, &res).unwrap();
        assert_eq!(l.nano_cpus, Some(1_000_000_000));
        assert_eq!(l.memory_bytes, Some(2 << 30));
        assert_eq!(l.shm_bytes, Some(1 << 30));
        let bad = Resources {
            instance_type: Some("smal".into()),
            ..Default::default()
        };
        let err = limits("local", &local, &bad).unwrap_err().to_string();
        assert!(err.contains("half, small"), "{err}");
        let many = Resources {
            instance_count: Some(2),
            ..Default::default()
        };
        assert_eq!(limits("local", &local, &many), Err(Error::InstanceCount(2)));
    }

    #[test]
    fn unknown_target_lists_known_ones() {
        let c = WorkspaceConfig::parse("config.yaml", CONFIG).unwrap();
        let e = c
            .target("cpu-cluster", "config.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("local, gpu-box"), "{e}");
        assert!(WorkspaceConfig::parse("c", "").unwrap().compute.is_empty());
        assert!(WorkspaceConfig::parse("c", "compte: {}").is_err());
    }
}

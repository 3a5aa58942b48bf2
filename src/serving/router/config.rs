//! The router's configuration file (`router.json`): what the control plane writes, and the
//! Azure rules it must follow before the router will serve it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Azure's default `request_settings.request_timeout_ms`.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5000;
/// Azure's default `request_settings.max_concurrent_requests_per_instance`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE: u32 = 1;
/// Azure caps mirrored traffic at 50 percent.
pub const MAX_MIRROR_PERCENT: u32 = 50;

/// One online endpoint as the router serves it. Written by the control plane as JSON;
/// re-read on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    pub endpoint: String,
    /// Hex sha256 of each accepted key (primary, secondary); empty = no auth.
    #[serde(default)]
    pub key_sha256: Vec<String>,
    #[serde(default)]
    pub deployments: Vec<RouteDeployment>,
    /// Percent of live traffic per deployment name (0..=100 each, sum 0 or 100).
    #[serde(default)]
    pub traffic: BTreeMap<String, u32>,
    /// At most one deployment, 0..=50 percent; copies of live requests, responses discarded.
    #[serde(default)]
    pub mirror_traffic: BTreeMap<String, u32>,
}

/// One deployment of the endpoint: where its ready instances listen and its request settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDeployment {
    pub name: String,
    /// "ip:port" of each ready instance.
    #[serde(default)]
    pub instances: Vec<String>,
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_max_concurrent_requests_per_instance")]
    pub max_concurrent_requests_per_instance: u32,
}

fn default_request_timeout_ms() -> u64 {
    DEFAULT_REQUEST_TIMEOUT_MS
}

fn default_max_concurrent_requests_per_instance() -> u32 {
    DEFAULT_MAX_CONCURRENT_REQUESTS_PER_INSTANCE
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read router config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("router config {path} is not valid JSON for a router config: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("router config {path}: {source}")]
    Invalid {
        path: PathBuf,
        source: Box<ConfigError>,
    },
    #[error("the endpoint name is empty")]
    EmptyEndpoint,
    #[error("key_sha256[{index}] is not a hex sha256 (64 hex digits): {reason}")]
    BadKeyHash { index: usize, reason: &'static str },
    #[error("deployments[{index}] has an empty name")]
    EmptyDeploymentName { index: usize },
    #[error("deployment '{name}' is listed twice (names are compared case-insensitively)")]
    DuplicateDeployment { name: String },
    #[error("deployment '{deployment}': instance '{instance}' is not an \"ip:port\" address")]
    BadInstance {
        deployment: String,
        instance: String,
    },
    #[error("deployment '{deployment}': request_timeout_ms must be at least 1")]
    ZeroTimeout { deployment: String },
    #[error("deployment '{deployment}': max_concurrent_requests_per_instance must be at least 1")]
    ZeroConcurrency { deployment: String },
    #[error(
        "{field} names deployment '{name}', which endpoint '{endpoint}' does not have (deployments: {known})"
    )]
    UnknownDeployment {
        field: &'static str,
        name: String,
        endpoint: String,
        known: String,
    },
    #[error("traffic for deployment '{name}' is {percent}%; each value must be 0..=100")]
    TrafficOver100 { name: String, percent: u32 },
    #[error(
        "live traffic adds up to {sum}% ({detail}); it must be 0 (no live traffic) or 100 — set it with `tug online-endpoint update --traffic`"
    )]
    TrafficSum { sum: u64, detail: String },
    #[error(
        "mirror_traffic for deployment '{name}' is {percent}%; Azure mirrors at most {MAX_MIRROR_PERCENT}%"
    )]
    MirrorOver50 { name: String, percent: u32 },
    #[error("mirror_traffic names {names}; Azure mirrors to at most one deployment")]
    MirrorMoreThanOne { names: String },
    #[error(
        "deployment '{name}' has {live}% live traffic and {mirror}% mirrored traffic; Azure lets a deployment receive one or the other, not both"
    )]
    MirrorAlsoLive {
        name: String,
        live: u32,
        mirror: u32,
    },
}

impl RouterConfig {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: RouterConfig =
            serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        config.validate().map_err(|source| ConfigError::Invalid {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        Ok(config)
    }

    /// Checks the Azure rules (names, addresses, traffic sums, mirror limits); the first
    /// broken rule is the error. Pure.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.endpoint.trim().is_empty() {
            return Err(ConfigError::EmptyEndpoint);
        }
        for (index, hash) in self.key_sha256.iter().enumerate() {
            decode_sha256_hex(hash).map_err(|reason| ConfigError::BadKeyHash { index, reason })?;
        }
        self.validate_deployments()?;
        self.validate_traffic()?;
        self.validate_mirror()
    }

    fn validate_deployments(&self) -> Result<(), ConfigError> {
        for (index, deployment) in self.deployments.iter().enumerate() {
            if deployment.name.trim().is_empty() {
                return Err(ConfigError::EmptyDeploymentName { index });
            }
            let duplicate = self.deployments[..index]
                .iter()
                .any(|earlier| earlier.name.eq_ignore_ascii_case(&deployment.name));
            if duplicate {
                return Err(ConfigError::DuplicateDeployment {
                    name: deployment.name.clone(),
                });
            }
            deployment.instance_addrs()?;
            if deployment.request_timeout_ms == 0 {
                return Err(ConfigError::ZeroTimeout {
                    deployment: deployment.name.clone(),
                });
            }
            if deployment.max_concurrent_requests_per_instance == 0 {
                return Err(ConfigError::ZeroConcurrency {
                    deployment: deployment.name.clone(),
                });
            }
        }
        Ok(())
    }

    fn validate_traffic(&self) -> Result<(), ConfigError> {
        for (name, &percent) in &self.traffic {
            self.require_known("traffic", name)?;
            if percent > 100 {
                return Err(ConfigError::TrafficOver100 {
                    name: name.clone(),
                    percent,
                });
            }
        }
        let sum: u64 = self.traffic.values().map(|&p| u64::from(p)).sum();
        if sum != 0 && sum != 100 {
            let detail = self
                .traffic
                .iter()
                .map(|(name, percent)| format!("{name}={percent}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ConfigError::TrafficSum { sum, detail });
        }
        Ok(())
    }

    fn validate_mirror(&self) -> Result<(), ConfigError> {
        for (name, &percent) in &self.mirror_traffic {
            self.require_known("mirror_traffic", name)?;
            if percent > MAX_MIRROR_PERCENT {
                return Err(ConfigError::MirrorOver50 {
                    name: name.clone(),
                    percent,
                });
            }
        }
        // A 0 % entry is how mirroring is switched off, so only non-zero entries count.
        let mirrored: Vec<(&String, u32)> = self
            .mirror_traffic
            .iter()
            .filter(|&(_, &percent)| percent > 0)
            .map(|(name, &percent)| (name, percent))
            .collect();
        if mirrored.len() > 1 {
            let names = mirrored
                .iter()
                .map(|(name, percent)| format!("{name}={percent}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ConfigError::MirrorMoreThanOne { names });
        }
        if let Some(&(name, mirror)) = mirrored.first() {
            let live = self.traffic.get(name).copied().unwrap_or(0);
            if live > 0 {
                return Err(ConfigError::MirrorAlsoLive {
                    name: name.clone(),
                    live,
                    mirror,
                });
            }
        }
        Ok(())
    }

    fn require_known(&self, field: &'static str, name: &str) -> Result<(), ConfigError> {
        if self.deployments.iter().any(|d| d.name == name) {
            return Ok(());
        }
        let known = if self.deployments.is_empty() {
            "none".to_string()
        } else {
            self.deployments
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(ConfigError::UnknownDeployment {
            field,
            name: name.to_string(),
            endpoint: self.endpoint.clone(),
            known,
        })
    }
}

impl RouteDeployment {
    /// The parsed instance addresses, in configured order.
    pub fn instance_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        self.instances
            .iter()
            .map(|instance| {
                instance
                    .trim()
                    .parse::<SocketAddr>()
                    .map_err(|_| ConfigError::BadInstance {
                        deployment: self.name.clone(),
                        instance: instance.clone(),
                    })
            })
            .collect()
    }
}

/// Decodes 64 hex digits (either case) into the 32 bytes of a sha256.
pub fn decode_sha256_hex(hex: &str) -> Result<[u8; 32], &'static str> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return Err("wrong length");
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
        let high = hex_value(pair[0]).ok_or("not a hex digit")?;
        let low = hex_value(pair[1]).ok_or("not a hex digit")?;
        *byte = (high << 4) | low;
    }
    Ok(bytes)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn deployment(name: &str) -> RouteDeployment {
        RouteDeployment {
            name: name.into(),
            instances: vec!["127.0.0.1:5001".into()],
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            max_concurrent_requests_per_instance: 1,
        }
    }

    fn config(traffic: &[(&str, u32)], mirror: &[(&str, u32)]) -> RouterConfig {
        RouterConfig {
            endpoint: "my-endpoint".into(),
            key_sha256: vec![HASH.into()],
            deployments: vec![deployment("blue"), deployment("green")],
            traffic: traffic.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            mirror_traffic: mirror.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
        }
    }

    fn message(config: &RouterConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_fill_in_optional_fields() {
        let config: RouterConfig = serde_json::from_str(
            r#"{"endpoint": "e", "deployments": [{"name": "blue", "instances": ["10.0.0.2:5001"]}]}"#,
        )
        .unwrap();
        assert!(config.key_sha256.is_empty());
        assert!(config.traffic.is_empty() && config.mirror_traffic.is_empty());
        assert_eq!(config.deployments[0].request_timeout_ms, 5000);
        assert_eq!(
            config.deployments[0].max_concurrent_requests_per_instance,
            1
        );
        config.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err =
            serde_json::from_str::<RouterConfig>(r#"{"endpoint": "e", "trafic": {}}"#).unwrap_err();
        assert!(err.to_string().contains("trafic"), "{err}");
    }

    #[test]
    fn valid_splits_pass() {
        config(&[("blue", 100)], &[]).validate().unwrap();
        config(&[("blue", 70), ("green", 30)], &[])
            .validate()
            .unwrap();
        config(&[], &[]).validate().unwrap();
        config(&[("blue", 0), ("green", 0)], &[])
            .validate()
            .unwrap();
        config(&[("blue", 100)], &[("green", 50)])
            .validate()
            .unwrap();
        config(&[("blue", 100), ("green", 0)], &[("green", 10)])
            .validate()
            .unwrap();
    }

    #[test]
    fn traffic_naming_an_unknown_deployment_is_rejected() {
        let msg = message(&config(&[("red", 100)], &[]));
        assert!(msg.contains("traffic names deployment 'red'"), "{msg}");
        assert!(msg.contains("blue, green"), "{msg}");
    }

    #[test]
    fn traffic_must_sum_to_0_or_100() {
        let msg = message(&config(&[("blue", 70), ("green", 20)], &[]));
        assert!(
            msg.contains("90%") && msg.contains("blue=70, green=20"),
            "{msg}"
        );
        assert!(
            msg.contains("tug online-endpoint update --traffic"),
            "{msg}"
        );
        let msg = message(&config(&[("blue", 101)], &[]));
        assert!(msg.contains("101%"), "{msg}");
    }

    #[test]
    fn mirror_rules_follow_azure() {
        let msg = message(&config(&[("blue", 100)], &[("green", 51)]));
        assert!(msg.contains("at most 50%"), "{msg}");
        let msg = message(&config(&[("blue", 100)], &[("blue", 10), ("green", 10)]));
        assert!(msg.contains("at most one deployment"), "{msg}");
        let msg = message(&config(&[("blue", 100)], &[("blue", 10)]));
        assert!(msg.contains("not both"), "{msg}");
        let msg = message(&config(&[("blue", 100)], &[("grey", 10)]));
        assert!(
            msg.contains("mirror_traffic names deployment 'grey'"),
            "{msg}"
        );
        // Zero entries switch mirroring off and do not count against the one-deployment rule.
        config(&[("blue", 100)], &[("blue", 0), ("green", 20)])
            .validate()
            .unwrap();
    }

    #[test]
    fn deployments_and_keys_are_checked() {
        let mut bad = config(&[], &[]);
        bad.deployments[1].instances = vec!["localhost:5001".into()];
        assert!(message(&bad).contains("'localhost:5001' is not an \"ip:port\""));

        let mut bad = config(&[], &[]);
        bad.deployments[1].name = "BLUE".into();
        assert!(message(&bad).contains("listed twice"));

        let mut bad = config(&[], &[]);
        bad.deployments[0].max_concurrent_requests_per_instance = 0;
        assert!(message(&bad).contains("max_concurrent_requests_per_instance"));

        let mut bad = config(&[], &[]);
        bad.deployments[0].request_timeout_ms = 0;
        assert!(message(&bad).contains("request_timeout_ms"));

        let mut bad = config(&[], &[]);
        bad.key_sha256 = vec![HASH.into(), "abc".into()];
        assert!(message(&bad).contains("key_sha256[1]"));

        let mut bad = config(&[], &[]);
        bad.endpoint = " ".into();
        assert!(message(&bad).contains("endpoint name is empty"));
    }

    #[test]
    fn a_deployment_may_have_no_ready_instance_yet() {
        let mut cfg = config(&[("blue", 100)], &[]);
        cfg.deployments[0].instances.clear();
        cfg.validate().unwrap();
    }

    #[test]
    fn sha256_hex_decodes_either_case() {
        let lower = decode_sha256_hex(HASH).unwrap();
        let upper = decode_sha256_hex(&HASH.to_uppercase()).unwrap();
        assert_eq!(lower, upper);
        assert_eq!(lower[0], 0x9f);
        assert_eq!(decode_sha256_hex(&HASH[..63]), Err("wrong length"));
        assert_eq!(
            decode_sha256_hex(&HASH.replace('9', "g")),
            Err("not a hex digit")
        );
    }
}

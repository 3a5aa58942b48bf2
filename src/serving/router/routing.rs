//! Which deployment answers a request: the `azureml-model-deployment` header, else a
//! weighted draw over live traffic; whether to mirror a copy; which instance to try. Pure:
//! the random numbers come in as arguments.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::admission::in_flight_limit;
use super::auth::KeyHashes;
use super::config::{ConfigError, RouterConfig, decode_sha256_hex};
use super::metrics::{DeploymentStats, Metrics};

/// A validated config in the form requests are served from. One is current at a time;
/// a request keeps the table it started with, so a reload never changes its instance set.
#[derive(Debug)]
pub struct RouteTable {
    pub endpoint: String,
    pub keys: KeyHashes,
    pub deployments: Vec<DeploymentRoute>,
    /// (index into `deployments`, percent) for each deployment with live traffic.
    live: Vec<(usize, u32)>,
    /// (index into `deployments`, percent) of the mirror deployment, if mirroring is on.
    mirror: Option<(usize, u32)>,
}

#[derive(Debug)]
pub struct DeploymentRoute {
    pub name: String,
    pub instances: Vec<SocketAddr>,
    pub request_timeout: Duration,
    pub max_concurrent_requests_per_instance: u32,
    pub stats: Arc<DeploymentStats>,
    /// Round-robin cursor over `instances`.
    next_instance: AtomicUsize,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Drawn by the traffic split; may be mirrored.
    Live(usize),
    /// Named by the `azureml-model-deployment` header; never mirrored.
    Named(usize),
    /// The header named a deployment the endpoint does not have.
    UnknownName,
    /// No header, and no deployment has live traffic.
    NoLiveTraffic,
}

impl RouteTable {
    /// Validates `config` and builds the table, taking each deployment's counters from
    /// `metrics` by name.
    pub fn build(config: &RouterConfig, metrics: &Metrics) -> Result<Self, ConfigError> {
        config.validate()?;
        let keys = config
            .key_sha256
            .iter()
            .map(|hash| decode_sha256_hex(hash).expect("validated"))
            .collect();
        let deployments = config
            .deployments
            .iter()
            .map(|deployment| DeploymentRoute {
                name: deployment.name.clone(),
                instances: deployment.instance_addrs().expect("validated"),
                request_timeout: Duration::from_millis(deployment.request_timeout_ms),
                max_concurrent_requests_per_instance: deployment
                    .max_concurrent_requests_per_instance,
                stats: metrics.deployment(&deployment.name),
                next_instance: AtomicUsize::new(0),
            })
            .collect::<Vec<_>>();
        let index_of = |name: &str| {
            deployments
                .iter()
                .position(|d| d.name == name)
                .expect("validated")
        };
        let live = config
            .traffic
            .iter()
            .filter(|&(_, &percent)| percent > 0)
            .map(|(name, &percent)| (index_of(name), percent))
            .collect();
        let mirror = config
            .mirror_traffic
            .iter()
            .find(|&(_, &percent)| percent > 0)
            .map(|(name, &percent)| (index_of(name), percent));
        Ok(RouteTable {
            endpoint: config.endpoint.clone(),
            keys: KeyHashes::new(keys),
            deployments,
            live,
            mirror,
        })
    }

    /// Picks the deployment for a request. `header` is the `azureml-model-deployment` value;
    /// `live_roll` is uniform in `0..100`.
    pub fn choose(&self, header: Option<&str>, live_roll: u32) -> Choice {
        match header.map(str::trim).filter(|name| !name.is_empty()) {
            Some(name) => self
                .deployments
                .iter()
                .position(|d| d.name.eq_ignore_ascii_case(name))
                .map_or(Choice::UnknownName, Choice::Named),
            None => {
                pick_weighted(&self.live, live_roll).map_or(Choice::NoLiveTraffic, Choice::Live)
            }
        }
    }

    /// The deployment (index) to send a copy of this request to, if any. Only requests drawn by the
    /// split are mirrored (Azure skips requests that name a deployment). `mirror_roll` is
    /// uniform in `0..100`.
    pub fn mirror_target(&self, choice: Choice, mirror_roll: u32) -> Option<usize> {
        let Choice::Live(_) = choice else {
            return None;
        };
        let (index, percent) = self.mirror?;
        (mirror_roll < percent).then_some(index)
    }

    /// One line for the log: the split, the mirror and the instance counts.
    pub fn summary(&self) -> String {
        let live = if self.live.is_empty() {
            "no live traffic".to_string()
        } else {
            self.live
                .iter()
                .map(|&(index, percent)| format!("{}={percent}%", self.deployments[index].name))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mirror = self.mirror.map_or(String::new(), |(index, percent)| {
            format!(", mirror {}={percent}%", self.deployments[index].name)
        });
        let instances = self
            .deployments
            .iter()
            .map(|d| format!("{}: {}", d.name, d.instances.len()))
            .collect::<Vec<_>>()
            .join(", ");
        let auth = if self.keys.is_open() {
            "no auth"
        } else {
            "key auth"
        };
        format!(
            "endpoint '{}': {live}{mirror}; instances {{{instances}}}; {auth}",
            self.endpoint
        )
    }
}

impl DeploymentRoute {
    pub fn in_flight_limit(&self) -> usize {
        in_flight_limit(
            self.max_concurrent_requests_per_instance,
            self.instances.len(),
        )
    }

    /// The instances to try for one request: the next one round-robin, then (after a
    /// connection failure) the one after it, once.
    pub fn instance_attempts(&self) -> Vec<SocketAddr> {
        let count = self.instances.len();
        if count == 0 {
            return Vec::new();
        }
        let first = self.next_instance.fetch_add(1, Ordering::Relaxed) % count;
        let attempts = count.min(2);
        (0..attempts)
            .map(|offset| self.instances[(first + offset) % count])
            .collect()
    }
}

/// The entry whose cumulative weight first exceeds `roll`; `None` when `roll` is past the
/// total (no traffic). With weights summing to 100 and `roll` uniform in `0..100`, each
/// entry is chosen with probability weight/100.
pub fn pick_weighted(weights: &[(usize, u32)], roll: u32) -> Option<usize> {
    let mut cumulative = 0u32;
    for &(index, weight) in weights {
        cumulative += weight;
        if roll < cumulative {
            return Some(index);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serving::router::config::RouteDeployment;

    fn table(traffic: &[(&str, u32)], mirror: &[(&str, u32)]) -> RouteTable {
        let deployment = |name: &str, instances: &[&str]| RouteDeployment {
            name: name.into(),
            instances: instances.iter().map(|s| s.to_string()).collect(),
            request_timeout_ms: 5000,
            max_concurrent_requests_per_instance: 3,
        };
        let config = RouterConfig {
            endpoint: "ep".into(),
            key_sha256: vec![],
            deployments: vec![
                deployment("blue", &["10.0.0.1:5001", "10.0.0.2:5001", "10.0.0.3:5001"]),
                deployment("green", &["10.0.1.1:5001"]),
                deployment("grey", &[]),
            ],
            traffic: traffic.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
            mirror_traffic: mirror.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
        };
        RouteTable::build(&config, &Metrics::default()).unwrap()
    }

    #[test]
    fn weighted_choice_is_exact_at_the_boundaries() {
        let weights = [(0, 70), (1, 30)];
        assert_eq!(pick_weighted(&weights, 0), Some(0));
        assert_eq!(pick_weighted(&weights, 69), Some(0));
        assert_eq!(pick_weighted(&weights, 70), Some(1));
        assert_eq!(pick_weighted(&weights, 99), Some(1));
        assert_eq!(pick_weighted(&weights, 100), None);
        assert_eq!(pick_weighted(&[], 0), None);
        assert_eq!(pick_weighted(&[(4, 100)], 99), Some(4));
        // Every roll 0..100 lands exactly weight times on each entry.
        let weights = [(0, 15), (1, 0), (2, 85)];
        let hits = (0..100).filter_map(|roll| pick_weighted(&weights, roll));
        let counts = hits.fold([0; 3], |mut counts, index| {
            counts[index] += 1;
            counts
        });
        assert_eq!(counts, [15, 0, 85]);
    }

    #[test]
    fn weighted_choice_follows_the_split_statistically() {
        // xorshift64: a fixed, dependency-free stream of rolls.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut roll = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 100) as u32
        };
        let draws = 100_000;
        let blue = (0..draws)
            .filter(|_| pick_weighted(&[(0, 70), (1, 30)], roll()) == Some(0))
            .count() as f64;
        let expected = draws as f64 * 0.7;
        let sigma = (draws as f64 * 0.7 * 0.3).sqrt();
        assert!(
            (blue - expected).abs() < 5.0 * sigma,
            "blue {blue} of {draws}"
        );
    }

    #[test]
    fn header_overrides_the_split_even_at_zero_percent() {
        let table = table(&[("blue", 100)], &[]);
        assert_eq!(table.choose(Some("green"), 0), Choice::Named(1));
        assert_eq!(table.choose(Some(" GREEN "), 0), Choice::Named(1));
        assert_eq!(table.choose(Some("red"), 0), Choice::UnknownName);
        assert_eq!(table.choose(Some(""), 5), Choice::Live(0));
        assert_eq!(table.choose(None, 99), Choice::Live(0));
    }

    #[test]
    fn no_live_traffic_without_a_header() {
        let table = table(&[], &[]);
        assert_eq!(table.choose(None, 0), Choice::NoLiveTraffic);
        assert_eq!(table.choose(Some("grey"), 0), Choice::Named(2));
        let zeros = super::tests::table(&[("blue", 0), ("green", 0)], &[]);
        assert_eq!(zeros.choose(None, 0), Choice::NoLiveTraffic);
    }

    #[test]
    fn split_uses_the_configured_weights() {
        let table = table(&[("blue", 70), ("green", 30)], &[]);
        assert_eq!(table.choose(None, 69), Choice::Live(0));
        assert_eq!(table.choose(None, 70), Choice::Live(1));
    }

    #[test]
    fn mirror_only_for_split_requests_and_within_its_percent() {
        let table = table(&[("blue", 100)], &[("green", 20)]);
        let live = table.choose(None, 0);
        let mirror = table.mirror_target(live, 19);
        assert_eq!(
            mirror.map(|i| table.deployments[i].name.as_str()),
            Some("green")
        );
        assert!(table.mirror_target(live, 20).is_none());
        assert!(table.mirror_target(Choice::Named(0), 0).is_none());
        let off = super::tests::table(&[("blue", 100)], &[("green", 0)]);
        assert!(off.mirror_target(Choice::Live(0), 0).is_none());
    }

    #[test]
    fn instances_are_tried_round_robin_then_the_next_once() {
        let table = table(&[], &[]);
        let blue = &table.deployments[0];
        let ip = |attempts: Vec<SocketAddr>| {
            attempts
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ip(blue.instance_attempts()), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ip(blue.instance_attempts()), ["10.0.0.2", "10.0.0.3"]);
        assert_eq!(ip(blue.instance_attempts()), ["10.0.0.3", "10.0.0.1"]);
        assert_eq!(ip(blue.instance_attempts()), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ip(table.deployments[1].instance_attempts()), ["10.0.1.1"]);
        assert!(table.deployments[2].instance_attempts().is_empty());
    }

    #[test]
    fn limits_and_summary() {
        let table = table(&[("blue", 100)], &[("green", 10)]);
        assert_eq!(table.deployments[0].in_flight_limit(), 18);
        assert_eq!(table.deployments[2].in_flight_limit(), 0);
        assert_eq!(
            table.summary(),
            "endpoint 'ep': blue=100%, mirror green=10%; instances {blue: 3, green: 1, grey: 0}; no auth"
        );
    }
}

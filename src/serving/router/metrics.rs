//! The router's counters and their Prometheus text form (`GET /metrics`): requests by
//! deployment and code, latency per deployment, in-flight per deployment, mirror copies.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::admission::InFlight;

/// Upper bounds (seconds) of the latency buckets; the last covers Azure's 180 s maximum
/// request timeout.
const LATENCY_BUCKETS_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 180.0,
];

/// Every deployment's counters, by name. Entries outlive config reloads so counters only
/// grow (as Prometheus expects) and in-flight requests stay counted.
#[derive(Debug, Default)]
pub struct Metrics {
    deployments: Mutex<BTreeMap<String, Arc<DeploymentStats>>>,
    /// Answers given before a deployment was chosen (401, 404, 413), by code.
    unrouted: Mutex<BTreeMap<u16, u64>>,
}

/// One deployment's counters.
#[derive(Debug, Default)]
pub struct DeploymentStats {
    pub in_flight: Arc<InFlight>,
    responses_by_code: Mutex<BTreeMap<u16, u64>>,
    latency: Histogram,
    mirror_sent: AtomicU64,
    mirror_failed: AtomicU64,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Not cumulative: `buckets[i]` counts observations in (bound[i-1], bound[i]]; the extra
    /// last slot is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS_SECONDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Metrics {
    /// The counters of deployment `name`, created on first use.
    pub fn deployment(&self, name: &str) -> Arc<DeploymentStats> {
        let mut deployments = self
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(deployments.entry(name.to_string()).or_default())
    }

    pub fn record_unrouted(&self, code: u16) {
        *self
            .unrouted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(code)
            .or_default() += 1;
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let deployments: Vec<(String, Arc<DeploymentStats>)> = self
            .deployments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(name, stats)| (name.clone(), Arc::clone(stats)))
            .collect();
        let unrouted = self
            .unrouted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out = String::new();

        header(
            &mut out,
            "tug_router_requests_total",
            "counter",
            "Requests answered, by deployment (empty: answered before one was chosen) and HTTP status code.",
        );
        for (code, count) in &unrouted {
            let _ = writeln!(
                out,
                "tug_router_requests_total{{deployment=\"\",code=\"{code}\"}} {count}"
            );
        }
        for (name, stats) in &deployments {
            let name = escape_label(name);
            let by_code = stats
                .responses_by_code
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            for (code, count) in by_code {
                let _ = writeln!(
                    out,
                    "tug_router_requests_total{{deployment=\"{name}\",code=\"{code}\"}} {count}"
                );
            }
        }

        header(
            &mut out,
            "tug_router_request_duration_seconds",
            "histogram",
            "Time from choosing a deployment to having its whole response, by deployment.",
        );
        for (name, stats) in &deployments {
            stats.latency.render(&mut out, &escape_label(name));
        }

        header(
            &mut out,
            "tug_router_in_flight_requests",
            "gauge",
            "Requests (live and mirrored) in flight to each deployment.",
        );
        for (name, stats) in &deployments {
            let _ = writeln!(
                out,
                "tug_router_in_flight_requests{{deployment=\"{}\"}} {}",
                escape_label(name),
                stats.in_flight.current()
            );
        }

        header(
            &mut out,
            "tug_router_mirror_requests_total",
            "counter",
            "Mirrored copies sent to a deployment, and those that failed (refused, unreachable, timed out or non-2xx).",
        );
        for (name, stats) in &deployments {
            let name = escape_label(name);
            for (outcome, counter) in [
                ("sent", &stats.mirror_sent),
                ("failed", &stats.mirror_failed),
            ] {
                let _ = writeln!(
                    out,
                    "tug_router_mirror_requests_total{{deployment=\"{name}\",outcome=\"{outcome}\"}} {}",
                    counter.load(Ordering::Relaxed)
                );
            }
        }
        out
    }
}

impl DeploymentStats {
    /// Counts one answer from this deployment and how long it took.
    pub fn record(&self, code: u16, elapsed: Duration) {
        *self
            .responses_by_code
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(code)
            .or_default() += 1;
        self.latency.observe(elapsed);
    }

    pub fn record_mirror_sent(&self) {
        self.mirror_sent.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_mirror_failed(&self) {
        self.mirror_failed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BUCKETS_SECONDS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, deployment: &str) {
        let name = "tug_router_request_duration_seconds";
        let mut cumulative = 0u64;
        for (slot, bound) in LATENCY_BUCKETS_SECONDS.iter().enumerate() {
            cumulative += self.buckets[slot].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{deployment=\"{deployment}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[LATENCY_BUCKETS_SECONDS.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{deployment=\"{deployment}\",le=\"+Inf\"}} {cumulative}"
        );
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{deployment=\"{deployment}\"}} {sum}");
        let _ = writeln!(
            out,
            "{name}_count{{deployment=\"{deployment}\"}} {cumulative}"
        );
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value as the text format requires (backslash, quote, newline).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let metrics = Metrics::default();
        let blue = metrics.deployment("blue");
        blue.record(200, Duration::from_millis(3));
        blue.record(200, Duration::from_millis(300));
        blue.record(424, Duration::from_secs(1000));
        metrics.deployment("green").record_mirror_sent();
        metrics.deployment("green").record_mirror_failed();
        metrics.record_unrouted(401);
        let held = blue.in_flight.try_admit(10).unwrap();
        let text = metrics.render();
        drop(held);

        for line in [
            "tug_router_requests_total{deployment=\"\",code=\"401\"} 1",
            "tug_router_requests_total{deployment=\"blue\",code=\"200\"} 2",
            "tug_router_requests_total{deployment=\"blue\",code=\"424\"} 1",
            "tug_router_request_duration_seconds_bucket{deployment=\"blue\",le=\"0.005\"} 1",
            "tug_router_request_duration_seconds_bucket{deployment=\"blue\",le=\"0.25\"} 1",
            "tug_router_request_duration_seconds_bucket{deployment=\"blue\",le=\"0.5\"} 2",
            "tug_router_request_duration_seconds_bucket{deployment=\"blue\",le=\"180\"} 2",
            "tug_router_request_duration_seconds_bucket{deployment=\"blue\",le=\"+Inf\"} 3",
            "tug_router_request_duration_seconds_count{deployment=\"blue\"} 3",
            "tug_router_request_duration_seconds_sum{deployment=\"blue\"} 1000.303",
            "tug_router_in_flight_requests{deployment=\"blue\"} 1",
            "tug_router_mirror_requests_total{deployment=\"green\",outcome=\"sent\"} 1",
            "tug_router_mirror_requests_total{deployment=\"green\",outcome=\"failed\"} 1",
            "# TYPE tug_router_request_duration_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn the_same_name_gets_the_same_counters() {
        let metrics = Metrics::default();
        assert!(Arc::ptr_eq(
            &metrics.deployment("blue"),
            &metrics.deployment("blue")
        ));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}

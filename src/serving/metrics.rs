//! Counters the front keeps for `GET /metrics`, rendered in the Prometheus text format.
//!
//! Everything is a relaxed atomic so the hot path pays a few uncontended increments per request
//! and no lock; rendering reads them on demand.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The routes requests are counted under (a closed set, so labels stay bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Health = 0,
    Score = 1,
    Swagger = 2,
    Metrics = 3,
    Other = 4,
}

const ROUTES: [(Route, &str); 5] = [
    (Route::Health, "/"),
    (Route::Score, "/score"),
    (Route::Swagger, "/swagger.json"),
    (Route::Metrics, "/metrics"),
    (Route::Other, "other"),
];

/// Status codes 100..=599 get their own counter; anything else counts as 599.
const FIRST_CODE: u16 = 100;
const CODES: usize = 500;

/// Latency bucket upper bounds in seconds (Prometheus `le`), scoring-oriented: sub-millisecond
/// for the front's own answers up to a minute for slow models.
const BUCKETS_S: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [AtomicU64; BUCKETS_S.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let slot = BUCKETS_S
            .iter()
            .position(|&le| secs <= le)
            .unwrap_or(BUCKETS_S.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(elapsed.as_nanos() as u64, Relaxed);
    }
}

/// The front's counters and gauges.
pub struct Metrics {
    /// `requests[route][code - 100]`.
    requests: Vec<[AtomicU64; CODES]>,
    latency: Vec<Histogram>,
    run_failures: AtomicU64,
    queue_depth: AtomicI64,
    workers_ready: AtomicI64,
    worker_restarts: AtomicU64,
    workers_configured: usize,
}

impl Metrics {
    pub fn new(workers_configured: usize) -> Metrics {
        Metrics {
            requests: ROUTES
                .iter()
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            latency: ROUTES.iter().map(|_| Histogram::new()).collect(),
            run_failures: AtomicU64::new(0),
            queue_depth: AtomicI64::new(0),
            workers_ready: AtomicI64::new(0),
            worker_restarts: AtomicU64::new(0),
            workers_configured,
        }
    }

    /// Counts one answered request and its latency.
    pub fn record(&self, route: Route, status: u16, elapsed: Duration, run_failed: bool) {
        let code = status.clamp(FIRST_CODE, FIRST_CODE + CODES as u16 - 1);
        self.requests[route as usize][(code - FIRST_CODE) as usize].fetch_add(1, Relaxed);
        self.latency[route as usize].observe(elapsed);
        if run_failed {
            self.run_failures.fetch_add(1, Relaxed);
        }
    }

    pub fn set_queue_depth(&self, depth: usize) {
        self.queue_depth.store(depth as i64, Relaxed);
    }

    pub fn set_workers_ready(&self, ready: usize) {
        self.workers_ready.store(ready as i64, Relaxed);
    }

    pub fn worker_restarted(&self) {
        self.worker_restarts.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition (format 0.0.4) of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP tug_infsrv_requests_total HTTP requests answered, by route and status code.\n\
             # TYPE tug_infsrv_requests_total counter\n",
        );
        for (route, label) in ROUTES {
            for (i, count) in self.requests[route as usize].iter().enumerate() {
                let n = count.load(Relaxed);
                if n > 0 {
                    let code = FIRST_CODE as usize + i;
                    let _ = writeln!(
                        out,
                        "tug_infsrv_requests_total{{route=\"{label}\",code=\"{code}\"}} {n}"
                    );
                }
            }
        }
        out.push_str(
            "# HELP tug_infsrv_request_duration_seconds Time from request head to response, by route.\n\
             # TYPE tug_infsrv_request_duration_seconds histogram\n",
        );
        for (route, label) in ROUTES {
            let hist = &self.latency[route as usize];
            let mut cumulative = 0;
            for (i, bucket) in hist.buckets.iter().enumerate() {
                cumulative += bucket.load(Relaxed);
                let le = BUCKETS_S
                    .get(i)
                    .map_or("+Inf".to_string(), |b| b.to_string());
                let _ = writeln!(
                    out,
                    "tug_infsrv_request_duration_seconds_bucket{{route=\"{label}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = hist.sum_ns.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "tug_infsrv_request_duration_seconds_sum{{route=\"{label}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "tug_infsrv_request_duration_seconds_count{{route=\"{label}\"}} {cumulative}"
            );
        }
        let scalars: [(&str, &str, &str, i64); 5] = [
            (
                "tug_infsrv_run_function_failures_total",
                "counter",
                "Responses sent with x-ms-run-function-failed: True.",
                self.run_failures.load(Relaxed) as i64,
            ),
            (
                "tug_infsrv_queue_depth",
                "gauge",
                "Requests waiting for a free worker.",
                self.queue_depth.load(Relaxed),
            ),
            (
                "tug_infsrv_workers_ready",
                "gauge",
                "Workers that finished init() and are alive.",
                self.workers_ready.load(Relaxed),
            ),
            (
                "tug_infsrv_workers_configured",
                "gauge",
                "Workers the front keeps running (WORKER_COUNT).",
                self.workers_configured as i64,
            ),
            (
                "tug_infsrv_worker_restarts_total",
                "counter",
                "Workers replaced after they died or exceeded WORKER_TIMEOUT.",
                self.worker_restarts.load(Relaxed) as i64,
            ),
        ];
        for (name, kind, help, value) in scalars {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_counts_by_route_and_code_and_cumulative_buckets() {
        let metrics = Metrics::new(2);
        metrics.record(Route::Score, 200, Duration::from_micros(300), false);
        metrics.record(Route::Score, 200, Duration::from_millis(3), false);
        metrics.record(Route::Score, 500, Duration::from_secs(120), true);
        metrics.record(Route::Other, 1000, Duration::ZERO, false);
        metrics.set_queue_depth(3);
        metrics.set_workers_ready(2);
        metrics.worker_restarted();
        let text = metrics.render();
        for line in [
            "tug_infsrv_requests_total{route=\"/score\",code=\"200\"} 2",
            "tug_infsrv_requests_total{route=\"/score\",code=\"500\"} 1",
            "tug_infsrv_requests_total{route=\"other\",code=\"599\"} 1",
            "tug_infsrv_request_duration_seconds_bucket{route=\"/score\",le=\"0.0005\"} 1",
            "tug_infsrv_request_duration_seconds_bucket{route=\"/score\",le=\"0.005\"} 2",
            "tug_infsrv_request_duration_seconds_bucket{route=\"/score\",le=\"60\"} 2",
            "tug_infsrv_request_duration_seconds_bucket{route=\"/score\",le=\"+Inf\"} 3",
            "tug_infsrv_request_duration_seconds_count{route=\"/score\"} 3",
            "tug_infsrv_run_function_failures_total 1",
            "tug_infsrv_queue_depth 3",
            "tug_infsrv_workers_ready 2",
            "tug_infsrv_workers_configured 2",
            "tug_infsrv_worker_restarts_total 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("route=\"/\",code="),
            "unused counters are not listed"
        );
    }
}

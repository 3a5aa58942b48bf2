//! CPU accounting from /proc: per-process and host CPU seconds, and the load average.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// CPU seconds used during one path, by process category.
#[derive(Debug, Default, Clone)]
pub struct CpuUse {
    pub by_label: BTreeMap<String, f64>,
    pub host_busy: f64,
    pub host_total: f64,
}

/// Where the CPU table puts a process (by its label in `CpuSnap`).
pub const CPU_CATEGORIES: &[&str] = &[
    "tug server (ours)",
    "dockerd",
    "containerd",
    "containerd-shim, runc, container processes",
    "fuse-overlayfs",
    "bench process + docker CLI children",
    "other processes on the host",
];

fn cpu_category(label: &str) -> &'static str {
    let base = label.trim_end_matches(": reaped children");
    match base {
        "tug server (ours)" => CPU_CATEGORIES[0],
        "dockerd" => CPU_CATEGORIES[1],
        "containerd" => CPU_CATEGORIES[2],
        "docker-init" | "sh" | "echo" | "python3" | "runc" | "runc:[2:INIT]" => CPU_CATEGORIES[3],
        b if b.starts_with("containerd-shim") => CPU_CATEGORIES[3],
        "fuse-overlayfs" => CPU_CATEGORIES[4],
        "bench process" => CPU_CATEGORIES[5],
        _ => CPU_CATEGORIES[6],
    }
}

impl CpuUse {
    pub fn add(&mut self, a: &CpuSnap, b: &CpuSnap) {
        for (key, (label, own, reaped)) in &b.procs {
            let (own0, reaped0) = a
                .procs
                .get(key)
                .map(|(_, o, r)| (*o, *r))
                .unwrap_or((0.0, 0.0));
            *self.by_label.entry(label.clone()).or_default() += own - own0;
            // Only the docker CLI children this program waits for: other processes'
            // reaped children may include time from before the path (and double count).
            if label == "bench process" && reaped - reaped0 > 0.0 {
                *self
                    .by_label
                    .entry(format!("{label}: reaped children"))
                    .or_default() += reaped - reaped0;
            }
        }
        self.host_busy += b.host_busy - a.host_busy;
        self.host_total += b.host_total - a.host_total;
    }

    pub fn category(&self, cat: &str) -> f64 {
        self.by_label
            .iter()
            .filter(|(l, _)| cpu_category(l) == cat)
            .map(|(_, v)| v)
            .sum()
    }

    /// The biggest processes of the "other" category, for a footnote.
    pub fn top_others(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> = self
            .by_label
            .iter()
            .filter(|(l, v)| cpu_category(l) == CPU_CATEGORIES[6] && **v >= 0.05)
            .map(|(l, v)| (l.clone(), *v))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.truncate(4);
        v
    }
}

/// Cumulative CPU seconds of every process (own, and of its reaped children) and of
/// the host. Processes are keyed by (pid, start time) so a reused pid is not confused.
pub struct CpuSnap {
    procs: HashMap<(u32, u64), (String, f64, f64)>,
    host_busy: f64,
    host_total: f64,
}

impl CpuSnap {
    pub fn take(server_pid: u32) -> CpuSnap {
        // SAFETY: sysconf only reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let me = std::process::id();
        let mut procs = HashMap::new();
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                    continue;
                };
                let Some((comm, start, own, reaped)) = proc_stat(&e.path().join("stat")) else {
                    continue;
                };
                let label = if pid == server_pid {
                    "tug server (ours)".to_string()
                } else if pid == me {
                    "bench process".to_string()
                } else {
                    comm
                };
                procs.insert((pid, start), (label, own / hz, reaped / hz));
            }
        }
        let (host_busy, host_total) = host_ticks();
        CpuSnap {
            procs,
            host_busy: host_busy / hz,
            host_total: host_total / hz,
        }
    }
}

/// (comm, start time, utime + stime, cutime + cstime) of a process, in clock ticks.
fn proc_stat(stat: &Path) -> Option<(String, u64, f64, f64)> {
    let text = std::fs::read_to_string(stat).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    let num = |i: usize| -> Option<f64> { fields.get(i)?.parse().ok() };
    // After `pid (comm)`, index 0 is field 3 (state): utime is field 14, stime 15,
    // cutime 16, cstime 17, starttime 22.
    let start = fields.get(19)?.parse().ok()?;
    Some((comm, start, num(11)? + num(12)?, num(13)? + num(14)?))
}

/// (busy, total) clock ticks of all CPUs since boot.
fn host_ticks() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0.0))
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).unwrap_or(&0.0) + v.get(4).unwrap_or(&0.0);
    (total - idle, total)
}

/// The host's load averages, to judge how quiet the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

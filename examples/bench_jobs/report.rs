//! The printed report: the P1, CPU, per-phase and P2 tables, and their percentiles.

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::{SystemInfo, SystemVersion};

use crate::cpu::{CPU_CATEGORIES, loadavg};
use crate::p2::P2;
use crate::paths::DirectJob;
use crate::{Args, PathResult};

/// A step of the direct path's breakdown: its label and where its time is.
type DirectStep = (&'static str, fn(&DirectJob) -> Duration);

/// The first lines: the host, the engine and the images.
pub fn print_header(
    cores: usize,
    version: SystemVersion,
    info: SystemInfo,
    image: &str,
    tag: &str,
    load_before: &str,
) {
    println!();
    println!(
        "tug bench: {cores} cores, Docker {} (API {}), storage {}, base {}, env image {tag}",
        version.version.unwrap_or_default(),
        version.api_version.unwrap_or_default(),
        info.driver.unwrap_or_default(),
        image
    );
    println!(
        "load average (1/5/15 min) at start: {load_before}; at the end: {}",
        loadavg()
    );
}

/// P1: throughput and latency of each path, and the goal.
pub fn print_p1(a: &Args, results: &[PathResult], tug_wall: Duration, round_ratios: &[f64]) {
    println!();
    println!(
        "P1: {} trivial jobs per path per round (`echo hello`, 1-file code folder, no conda file), {} in flight, {} round(s), after 1 warm-up job per path",
        a.jobs, a.concurrency, a.rounds
    );
    let direct_secs = results[1].wall.as_secs_f64();
    let mut rows = Vec::new();
    for r in results {
        let mut lat = r.latencies.clone();
        lat.sort();
        rows.push(vec![
            r.name.clone(),
            r.jobs.to_string(),
            format!("{:.2}", r.wall.as_secs_f64()),
            format!("{:.2}", r.jobs as f64 / r.wall.as_secs_f64()),
            ms(pct(&lat, 50.0)).to_string(),
            ms(pct(&lat, 95.0)).to_string(),
            format!("{:.2}x", r.wall.as_secs_f64() / direct_secs),
        ]);
    }
    print_table(
        &[
            "path", "jobs", "wall s", "jobs/s", "p50 ms", "p95 ms", "/direct",
        ],
        &rows,
    );
    let ratio = tug_wall.as_secs_f64() / direct_secs;
    println!(
        "goal tug <= {:.2}x direct: {} (tug/direct = {ratio:.2}{})",
        a.goal,
        if ratio <= a.goal { "MET" } else { "NOT MET" },
        if round_ratios.len() > 1 {
            format!(
                "; per round {}",
                round_ratios
                    .iter()
                    .map(|r| format!("{r:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        }
    );
}

/// P1: CPU time per job, by process category.
pub fn print_cpu(results: &[PathResult]) {
    println!();
    println!(
        "P1 CPU time per job (ms, from /proc; the engine is shared with anything else running):"
    );
    let mut rows: Vec<Vec<String>> = CPU_CATEGORIES
        .iter()
        .map(|cat| {
            let mut row = vec![cat.to_string()];
            row.extend(
                results
                    .iter()
                    .map(|r| format!("{:.0}", r.cpu.category(cat) * 1000.0 / r.jobs as f64)),
            );
            row
        })
        .collect();
    let mut row = vec!["kernel, irqs, processes that exited (runc, shims...)".to_string()];
    row.extend(results.iter().map(|r| {
        let counted: f64 = r.cpu.by_label.values().sum();
        format!(
            "{:.0}",
            (r.cpu.host_busy - counted) * 1000.0 / r.jobs as f64
        )
    }));
    rows.push(row);
    let mut row = vec!["all CPUs busy (host total)".to_string()];
    row.extend(
        results
            .iter()
            .map(|r| format!("{:.0}", r.cpu.host_busy * 1000.0 / r.jobs as f64)),
    );
    rows.push(row);
    let mut row = vec!["host CPU utilisation during the path".to_string()];
    row.extend(results.iter().map(|r| {
        format!(
            "{:.0}%",
            100.0 * r.cpu.host_busy / r.cpu.host_total.max(1e-9)
        )
    }));
    rows.push(row);
    let mut header = vec!["process"];
    header.extend(["tug", "direct", "docker run"].iter().take(results.len()));
    print_table(&header, &rows);
    for r in results {
        let other = r.cpu.category(CPU_CATEGORIES[6]);
        if other > 0.1 * r.cpu.host_busy {
            println!(
                "  WARNING: other processes used {:.0}% of the busy CPU during {}; its figures are noisy",
                100.0 * other / r.cpu.host_busy.max(1e-9),
                r.name
            );
        }
        let top = r.cpu.top_others();
        if !top.is_empty() {
            println!(
                "  other processes during {}: {}",
                r.name,
                top.iter()
                    .map(|(l, v)| format!("{l} {:.1} s", v))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

/// P1: where tug's time goes, from the server's run histories.
pub fn print_tug_phases(phases: &BTreeMap<&str, Vec<Duration>>) {
    println!();
    println!("P1 per-job breakdown, tug (server timestamps, ms resolution):");
    let labels = [
        ("a", "client: snapshot upload + POST /api/jobs"),
        ("b", "Queued -> Preparing"),
        ("c", "Preparing -> Starting (find env image)"),
        ("d", "Starting -> Running (create, copy code, start)"),
        ("e", "Running -> Finalizing (container runs, log, wait)"),
        ("f", "Finalizing -> Completed (copy outputs out, remove)"),
        ("g", "Completed -> client sees `end` (stream wake-up)"),
    ];
    let rows: Vec<Vec<String>> = labels
        .iter()
        .map(|(k, label)| timing_row(label, phases.get(k).cloned().unwrap_or_default()))
        .collect();
    print_table(&["phase", "p50 ms", "p95 ms", "mean ms"], &rows);
}

/// A table row: label, p50, p95 and mean of `v` in milliseconds.
fn timing_row(label: &str, mut v: Vec<Duration>) -> Vec<String> {
    v.sort();
    vec![
        label.to_string(),
        ms(pct(&v, 50.0)).to_string(),
        ms(pct(&v, 95.0)).to_string(),
        format!("{:.0}", mean_ms(&v)),
    ]
}

/// P1: where the direct path's time goes, step by step.
pub fn print_direct_steps(direct_jobs: &[DirectJob]) {
    println!();
    println!("P1 per-job breakdown, direct engine API:");
    let steps: [DirectStep; 6] = [
        ("create", |j| j.create),
        ("copy code in (PUT archive)", |j| j.copy_in),
        ("start", |j| j.start),
        ("follow log + wait", |j| j.run),
        ("copy ./outputs ./logs out", |j| j.collect),
        ("remove", |j| j.remove),
    ];
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|(label, f)| timing_row(label, direct_jobs.iter().map(f).collect()))
        .collect();
    print_table(&["step", "p50 ms", "p95 ms", "mean ms"], &rows);
}

/// P2: resubmit latency next to plain `docker run`, and whether anything was built.
pub fn print_p2(a: &Args, p2: &P2) {
    println!();
    println!(
        "P2: edit train.py only and resubmit, {} times (`python3 train.py`, same environment)",
        a.p2_repeats
    );
    let rows: Vec<Vec<String>> = p2
        .rows
        .iter()
        .map(|(label, v)| {
            let mut v = v.clone();
            v.sort();
            vec![
                label.clone(),
                ms(pct(&v, 50.0)).to_string(),
                ms(v.first().copied().unwrap_or_default()).to_string(),
                ms(v.last().copied().unwrap_or_default()).to_string(),
            ]
        })
        .collect();
    print_table(&["measure", "median ms", "min ms", "max ms"], &rows);
    println!(
        "image builds during P2: {} (build.log says `reused` in {}/{} runs; engine images before {} after {}, new ids {})",
        if p2.reused == a.p2_repeats && p2.new_images == 0 {
            "0"
        } else {
            "SOME"
        },
        p2.reused,
        a.p2_repeats,
        p2.images_before,
        p2.images_after,
        p2.new_images
    );
}

/// Nearest-rank percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean_ms(v: &[Duration]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().map(|d| d.as_secs_f64() * 1000.0).sum::<f64>() / v.len() as f64
}

pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        println!("  {}", s.join("  "));
    };
    line(header.to_vec());
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(rule.iter().map(String::as_str).collect());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

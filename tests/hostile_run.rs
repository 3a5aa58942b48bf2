//! A run's container is untrusted code. What it leaves in `./outputs` and `./logs` (links to
//! host paths, hard links, FIFOs, a 100 GB sparse file, many small files) must not write
//! or read outside the run's artifact folder on the host, nor fill the workspace without a
//! clear error; and the container must not reach the control plane's API. Real engine, real
//! server, real CLI. (The many-files run uses 50 000 files with a 10 000-file budget:
//! this engine's fuse-overlayfs creates about 150 files a second, so a million would take
//! two hours. The million is fed to the collector directly, as the archive the engine
//! would send, in `a_million_files_stop_at_the_default_budget`.)

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Ws, job_yaml};
use serde_json::Value;

/// Starts the workspace's server with `env` (the first command spawns it).
fn start_server(ws: &Ws, env: &[(&str, &str)]) {
    let mut cmd = ws.tug_cmd(&["job", "list"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(ws: &Ws, script: &str, limit: Duration) -> (String, Value) {
    ws.write("src/hostile.py", script);
    let id = ws.submit("job.yml", &job_yaml("python3 hostile.py", ""));
    let v = ws.wait(&id, limit);
    (id, v)
}

/// Every symlink, and every non-file, non-folder, under `dir`.
fn odd_entries(dir: &Path) -> Vec<String> {
    let mut odd = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let ft = std::fs::symlink_metadata(e.path()).unwrap().file_type();
            if ft.is_dir() {
                stack.push(e.path());
            } else if !ft.is_file() {
                odd.push(e.path().display().to_string());
            }
        }
    }
    odd
}

#[test]
fn links_and_special_files_never_leave_or_enter_the_run_folder() {
    let ws = Ws::new();
    start_server(&ws, &[]);
    let canary = ws.path().join("canary");
    std::fs::create_dir_all(&canary).unwrap();
    let script = format!(
        r#"
import os
os.makedirs("outputs/sub", exist_ok=True)
os.makedirs("logs", exist_ok=True)
open("outputs/real.txt", "w").write("kept")
os.symlink("/etc/passwd", "outputs/passwd")
os.symlink("/", "outputs/root")
os.symlink("../../../../../../{canary}", "outputs/sub/up")
os.symlink("/proc/self/environ", "logs/environ")
try:
    os.link("outputs/real.txt", "outputs/hard.txt")
except OSError as e:
    print("hard link:", e)
try:
    os.link("/etc/hostname", "outputs/hard-etc")
except OSError as e:
    print("hard link to /etc:", e)
os.mkfifo("outputs/fifo")
try:
    os.mknod("outputs/dev", 0o600 | 0o020000, os.makedev(1, 3))
except OSError as e:
    print("mknod:", e)
open("outputs/..dots..", "w").write("a legal name")
print("done")
"#,
        canary = canary.display().to_string().trim_start_matches('/'),
    );
    let (id, v) = run(&ws, &script, Duration::from_secs(120));
    assert_eq!(v["status"], "Completed", "{v:#}");
    let dir = ws.run_dir(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("outputs/real.txt")).unwrap(),
        "kept"
    );
    // A second name for a file inside outputs comes home as a copy.
    assert_eq!(
        std::fs::read_to_string(dir.join("outputs/hard.txt")).unwrap(),
        "kept"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("outputs/..dots..")).unwrap(),
        "a legal name"
    );
    let odd = odd_entries(&dir);
    assert!(odd.is_empty(), "links or special files came home: {odd:?}");
    for gone in [
        "outputs/passwd",
        "outputs/root",
        "outputs/sub/up",
        "logs/environ",
        "outputs/fifo",
    ] {
        assert!(!dir.join(gone).exists(), "{gone} was collected");
    }
    assert!(
        std::fs::read_dir(&canary).unwrap().next().is_none(),
        "wrote outside"
    );
}

#[test]
fn a_100_gb_sparse_file_fails_the_run_clearly_and_leaves_nothing_half_copied() {
    let ws = Ws::new();
    start_server(&ws, &[("TUG_MAX_OUTPUT_BYTES", "64M")]);
    let script = r#"
import os
os.makedirs("outputs", exist_ok=True)
open("outputs/small.txt", "w").write("x")
with open("outputs/huge.bin", "wb") as f:
    f.truncate(100 << 30)
print("sparse file written")
"#;
    let (id, v) = run(&ws, script, Duration::from_secs(300));
    assert_eq!(v["status"], "Failed", "{v:#}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("hold more than 67108864 bytes"), "{error}");
    assert!(
        error.contains("TUG_MAX_OUTPUT_BYTES"),
        "says how to change it: {error}"
    );
    let dir = ws.run_dir(&id);
    assert!(!dir.join("outputs").exists(), "no half-copied outputs");
    let log = std::fs::read_to_string(dir.join("user_logs/std_log.txt")).unwrap();
    assert!(
        log.contains("sparse file written"),
        "the log is kept: {log}"
    );
}

#[test]
fn many_small_files_fail_the_run_clearly() {
    let ws = Ws::new();
    start_server(&ws, &[("TUG_MAX_OUTPUT_FILES", "10000")]);
    let script = r#"
import os
os.makedirs("logs/many", exist_ok=True)
for i in range(50000):
    open("logs/many/%d" % i, "w").close()
print("50000 files")
"#;
    let (id, v) = run(&ws, script, Duration::from_secs(600));
    assert_eq!(v["status"], "Failed", "{v:#}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("more than 10000 files") || error.contains("hold more than"),
        "{error}"
    );
    assert!(
        !ws.run_dir(&id).join("logs").exists(),
        "no half-unpacked logs"
    );
}

/// A tar of `n` empty files `many/<i>`, made as it is read (a million headers are 512 MB).
struct ManyFiles {
    next: u64,
    n: u64,
    pending: Vec<u8>,
}

impl std::io::Read for ManyFiles {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pending.is_empty() {
            if self.next < self.n {
                let mut h = tar::Header::new_gnu();
                h.set_path(format!("many/{}", self.next)).unwrap();
                h.set_size(0);
                h.set_mode(0o644);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                self.pending = h.as_bytes().to_vec();
                self.next += 1;
            } else if self.next == self.n {
                self.pending = vec![0; 1024];
                self.next += 1;
            } else {
                return Ok(0);
            }
        }
        let k = buf.len().min(self.pending.len());
        buf[..k].copy_from_slice(&self.pending[..k]);
        self.pending.drain(..k);
        Ok(k)
    }
}

#[test]
fn a_million_files_stop_at_the_default_budget() {
    use tug::compute::collect::{Budget, CollectLimits, unpack_renamed};
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("outputs");
    let limits = CollectLimits::default();
    let mut budget = Budget::new(limits);
    let archive = ManyFiles {
        next: 0,
        n: 1_000_000,
        pending: vec![],
    };
    let started = std::time::Instant::now();
    let err = unpack_renamed(archive, &target, &mut budget, "outputs").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("more than {} files", limits.max_files)),
        "{message}"
    );
    let written = std::fs::read_dir(&target).unwrap().count() as u64;
    assert!(
        written <= limits.max_files,
        "stopped at the budget, not at the end: {written}"
    );
    eprintln!(
        "a million-file archive stopped after {written} files in {:.1?}: {message}",
        started.elapsed()
    );
}

#[test]
fn the_container_cannot_reach_the_control_plane() {
    let ws = Ws::new();
    start_server(&ws, &[]);
    let info: Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path().join(".tug/server.json")).unwrap())
            .unwrap();
    let url = info["url"].as_str().unwrap();
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let script = format!(
        r#"
import socket
hosts = ["127.0.0.1", "host.docker.internal", "172.17.0.1"]
try:
    gw = open("/proc/net/route").read().split("\n")[1].split()[2]
    hosts.append(socket.inet_ntoa(bytes.fromhex(gw)[::-1]))
except Exception as e:
    print("no route table:", e)
for h in hosts:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((h, {port}))
        print("REACHED", h)
    except Exception as e:
        print("refused", h, type(e).__name__)
    finally:
        s.close()
"#
    );
    let (id, v) = run(&ws, &script, Duration::from_secs(120));
    assert_eq!(v["status"], "Completed", "{v:#}");
    let log = std::fs::read_to_string(ws.run_dir(&id).join("user_logs/std_log.txt")).unwrap();
    assert!(log.contains("refused 127.0.0.1"), "{log}");
    assert!(
        !log.contains("REACHED"),
        "the API was reachable from the container: {log}"
    );
}

#[test]
fn a_full_workspace_disk_fails_the_run_and_the_store_stays_usable() {
    // The workspace on a 48 MiB tmpfs; the run writes 100 MiB of outputs.
    let ws = Ws::new();
    let mnt = ws.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=48m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let small = |args: &[&str]| {
        let mut c = ws.tug_cmd(args);
        c.env("TUG_WORKSPACE", &mnt).env("TUG_MIN_FREE_BYTES", "0");
        c
    };
    let out = small(&["job", "list"]).output().unwrap();
    assert!(out.status.success());
    ws.write(
        "src/fill.py",
        "import os\nos.makedirs('outputs', exist_ok=True)\n\
         open('outputs/big.bin','wb').write(os.urandom(100 << 20))\nprint('wrote 100 MiB')\n",
    );
    ws.write("job.yml", &job_yaml("python3 fill.py", ""));
    let out = small(&["job", "create", "-f", "job.yml", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = std::time::Instant::now();
    let v = loop {
        let out = small(&["job", "show", &id, "-o", "json"]).output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if matches!(
            v["status"].as_str(),
            Some("Completed" | "Failed" | "Canceled")
        ) {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(180), "{v:#}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(v["status"], "Failed", "{v:#}");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("the workspace disk is full"), "{error}");
    assert!(
        !mnt.join(".tug/artifacts/runs")
            .join(&id)
            .join("outputs")
            .exists()
    );
    // The store still takes writes: a small run completes on the same disk.
    ws.write("src/ok.py", "print('fine')\n");
    ws.write("ok.yml", &job_yaml("python3 ok.py", ""));
    let out = small(&["job", "create", "-f", "ok.yml", "--stream"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let _ = small(&["server", "stop"]).output();
}

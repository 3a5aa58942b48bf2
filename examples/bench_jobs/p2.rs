//! P2: edit `train.py` only, resubmit, and time it next to plain `docker run`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};

use tug::client::Client;
use tug::workspace::Workspace;

use crate::Bench;
use crate::engine::image_ids;
use crate::paths::{docker_run_first_line, submission, tug_job};

impl Bench {
    pub async fn p2(&self, client: &Client, ws: &Workspace, tag: &str) -> anyhow::Result<P2> {
        let n = self.args.p2_repeats;
        eprintln!("[bench] P2: {n} resubmits after editing train.py");
        let dir = self.tmp.join("p2-code");
        std::fs::create_dir_all(&dir)?;
        let template = submission(&self.args.image, "python3 train.py", "bench-p2");
        let before = image_ids(&self.docker).await?;
        let mut running = Vec::new();
        let mut first_log = Vec::new();
        let mut end = Vec::new();
        let mut reused = 0;
        for i in 0..n {
            std::fs::write(
                dir.join("train.py"),
                format!("print('edit {i}: hello from train.py')\n"),
            )?;
            let entries = tug::snapshot::read_folder(&dir)?;
            let tar = tug::snapshot::tar_bytes(&entries, "", 0, 0);
            let j = tug_job(client, &tar, &template).await?;
            running.push(j.to_running.context("no Running event")?);
            first_log.push(j.to_first_log.context("no log line")?);
            end.push(j.to_end);
            let log = std::fs::read_to_string(ws.run_dir(&j.id).join("system_logs/build.log"))
                .unwrap_or_default();
            if log.lines().last().is_some_and(|l| l.starts_with("reused ")) {
                reused += 1;
            }
        }
        let after = image_ids(&self.docker).await?;
        let mut true_wall = Vec::new();
        let mut first_line = Vec::new();
        for _ in 0..n {
            let t = Instant::now();
            let st = tokio::process::Command::new("docker")
                .args(["run", "--rm", "--label"])
                .arg(format!("tug.bench={}", self.bench_id))
                .args([tag, "true"])
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .status()
                .await?;
            ensure!(st.success(), "docker run {tag} true failed");
            true_wall.push(t.elapsed());
            first_line.push(docker_run_first_line(&self.bench_id, tag).await?);
        }
        Ok(P2 {
            rows: vec![
                ("tug: POST /api/jobs -> status Running".into(), running),
                ("tug: POST /api/jobs -> first log line".into(), first_log),
                ("tug: POST /api/jobs -> end".into(), end),
                ("docker run --rm <env image> true (wall)".into(), true_wall),
                (
                    "docker run --rm <env image> python3 -c print -> first line".into(),
                    first_line,
                ),
            ],
            reused,
            images_before: before.len(),
            images_after: after.len(),
            new_images: after.difference(&before).count(),
        })
    }
}

pub struct P2 {
    pub rows: Vec<(String, Vec<Duration>)>,
    pub reused: usize,
    pub images_before: usize,
    pub images_after: usize,
    pub new_images: usize,
}

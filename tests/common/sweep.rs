//! Sweep files and a trial script shared by the Docker and Kubernetes sweep tests.

use serde_json::Value;

use super::MINIMAL;

/// A trial: logs `score` = a*10 + (b == "y") every step, `steps` times, sleeping `pause`
/// seconds (times `slow` when given) before each report.
pub const TRIAL: &str = r#"
import argparse, time, tug
p = argparse.ArgumentParser()
p.add_argument("--a", type=float, default=0)
p.add_argument("--b", default="x")
p.add_argument("--steps", type=int, default=1)
p.add_argument("--pause", type=float, default=0.0)
p.add_argument("--slow", type=float, default=-1)
p.add_argument("--fail", action="store_true")
args = p.parse_args()
if args.fail:
    raise SystemExit("broken on purpose")
score = args.a * 10 + (1 if args.b == "y" else 0)
pause = args.pause * (3 if args.a == args.slow else 1)
for step in range(args.steps):
    time.sleep(pause)
    tug.log("score", score)
import os
os.makedirs("outputs", exist_ok=True)
open("outputs/score.txt", "w").write(str(score))
print("done", score, flush=True)
"#;

pub fn sweep_yaml(command_tail: &str, rest: &str) -> String {
    format!(
        "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n\
         type: sweep\n\
         experiment_name: sweeps\n\
         trial:\n  code: src\n  command: python trial.py --a ${{{{search_space.a}}}} {command_tail}\n  environment:\n    image: {MINIMAL}\n\
         objective:\n  goal: maximize\n  primary_metric: score\n\
         {rest}"
    )
}

pub fn trials(v: &Value) -> Vec<Value> {
    v["sweep"]["trials"].as_array().cloned().unwrap_or_default()
}

/// Three trials, grid over a in [1, 0.1, 0.95], with a bandit policy: a=0.1 scores 1 at
/// every step and reports 3x slower, so by its second report the best (a=1: 10) is there
/// and 1 * 1.1 < 10 stops it; a=0.95 (9.5, within 10 % of 10) runs to the end.
pub fn bandit_sweep() -> String {
    sweep_yaml(
        "--steps 8 --pause 0.5 --slow 0.1",
        "sampling_algorithm: grid\n\
         search_space:\n  a:\n    type: choice\n    values: [1, 0.1, 0.95]\n\
         limits:\n  max_total_trials: 3\n  max_concurrent_trials: 3\n\
         early_termination:\n  type: bandit\n  slack_factor: 0.1\n  evaluation_interval: 1\n  delay_evaluation: 2\n",
    )
}

/// The sweep id from `job create --stream` output.
pub fn sweep_id(streamed: &str) -> String {
    streamed
        .lines()
        .find_map(|l| l.strip_prefix("Submitted sweep "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the sweep id is printed")
        .to_string()
}

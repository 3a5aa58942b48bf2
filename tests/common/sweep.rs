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

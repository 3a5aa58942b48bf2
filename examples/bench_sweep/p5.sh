#!/usr/bin/env bash
# P5: what early termination saves. Runs examples/digits/sweep-logreg.yml twice on the
# local Docker engine in a scratch workspace, with its bandit policy and with
# `--set early_termination=null`, and prints trial-seconds (the sum over trials of the
# time from container start to run end), wall time and the best trial of each.
# Both sweeps use the file's seed, so they propose the same trials.
#
#   examples/bench_sweep/p5.sh [passes]        # default 1 pass (two sweeps)
#
# Env: WS (scratch workspace, default /tmp/tug-p5), TUG (the tug binary; default: a
# release build of this checkout).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PASSES=${1:-1}
WS=${WS:-/tmp/tug-p5}
cd "$ROOT"
if [[ -z "${TUG:-}" ]]; then
  # The same static build as the Makefile's, so its cache is reused.
  TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
  export CARGO_BUILD_TARGET=$TRIPLE
  export "CARGO_TARGET_$(echo "$TRIPLE" | tr a-z- A-Z_)_RUSTFLAGS=-C target-feature=+crt-static"
  cargo build --release --locked --quiet --bin tug
  TUG="$ROOT/target/$TRIPLE/release/tug"
fi
images/build-base.sh sklearn >/dev/null
rm -rf "$WS"
mkdir -p "$WS"
export TUG_WORKSPACE="$WS"
OUT="$WS/results.jsonl"
for pass in $(seq 1 "$PASSES"); do
  # Alternate the order (ABBA) so a machine that speeds up or slows down over the run
  # does not favour one mode.
  order="unstopped bandit"
  (( pass % 2 == 0 )) && order="bandit unstopped"
  for mode in $order; do
    extra=()
    [[ $mode == unstopped ]] && extra=(--set early_termination=null)
    name="p5-$mode-$pass-$(date +%s)"
    start=$(date +%s.%N)
    "$TUG" job create -f examples/digits/sweep-logreg.yml --name "$name" "${extra[@]}" --stream >"$WS/$name.log" 2>&1 || true
    end=$(date +%s.%N)
    "$TUG" job show "$name" -o json >"$WS/$name.json"
    python3 - "$WS/$name.json" "$mode" "$pass" "$start" "$end" >>"$OUT" <<'PY'
import json, sys
view = json.load(open(sys.argv[1]))
sweep = view["sweep"]
trials = sweep["trials"]
best = next((t for t in trials if t["id"] == sweep.get("best_trial")), None)
print(json.dumps({
    "mode": sys.argv[2], "pass": int(sys.argv[3]), "sweep": view["id"], "status": view["status"],
    "wall_s": float(sys.argv[5]) - float(sys.argv[4]),
    "trial_seconds": sum(t.get("seconds") or 0 for t in trials),
    "trials": len(trials),
    "steps": sum(t.get("reports") or 0 for t in trials),
    "stopped": sum(1 for t in trials if t.get("stopped_by")),
    "best_value": best and best["value"], "best_params": best and best["params"],
    "best_trial_index": best and best["index"],
}))
PY
    tail -1 "$OUT"
  done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print()
print("| pass | sweep | status | trials (stopped) | training steps | trial-seconds | wall s | best accuracy | best trial (params) |")
print("|--:|---|---|--:|--:|--:|--:|--:|---|")
for r in rows:
    p = r["best_params"] or {}
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in p.items())
    print(f"| {r['pass']} | {r['mode']} | {r['status']} | {r['trials']} ({r['stopped']}) | {r['steps']} | {r['trial_seconds']:.1f} | {r['wall_s']:.1f} | {r['best_value']} | #{r['best_trial_index']} ({params}) |")
for p in sorted({r["pass"] for r in rows}):
    by = {r["mode"]: r for r in rows if r["pass"] == p}
    if {"bandit", "unstopped"} <= by.keys():
        u, b = by["unstopped"], by["bandit"]
        saved = 1 - b["trial_seconds"] / u["trial_seconds"]
        same = b["best_value"] == u["best_value"] and b["best_params"] == u["best_params"]
        steps = 1 - b["steps"] / u["steps"]
        print(f"\npass {p}: the bandit policy saved {saved:.0%} of trial-seconds "
              f"({u['trial_seconds']:.1f} -> {b['trial_seconds']:.1f}) and {steps:.0%} of training steps; "
              f"same best trial and accuracy: {same}")
PY
"$TUG" server stop >/dev/null 2>&1 || true

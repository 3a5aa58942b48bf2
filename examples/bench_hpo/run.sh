#!/usr/bin/env bash
# P4: tug's Bayesian (and random) sampler against Optuna's TPE and GP on the shared HPO
# harness, same objectives, same seeds, one sitting.
#
#   examples/bench_hpo/run.sh
#
# Copies the harness (read-only in the shared folder) to $WORK/harness, builds the static
# release example `hpo_sampler`, sets up the harness's venv the way its own run.sh does
# (optuna 5.0.0, numpy, scipy, scikit-learn, torch + greenlet for GPSampler; PyPI needed),
# then: optimum checks -> knn table (cached in $WORK) -> protocol tests against our binary
# -> benchmark (tpe, gp, random + tug-bayesian, tug-random; SEEDS seeds, WORKERS workers)
# -> sequential timing pass (1 worker) -> the harness's report.py -> p4_report.py's table.
#
# Env: WORK (/tmp/tug-hpobench), SHARED (the harness folder), SEEDS (20), BUDGET (50),
#      WORKERS (2), TIMING_SEEDS (5), OPTUNA (tpe,gp,random: built-ins to compare with),
#      OBJECTIVES (all five), HPOBENCH_VENV ($WORK/venv), REUSE_VENV=1 (keep an existing venv),
#      NO_TORCH=1 (skip torch: GPSampler is then skipped).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
if [[ -z "${SHARED:-}" ]]; then
  for candidate in "$REPO/../shared/bench/hpo" "$REPO/../../shared/bench/hpo" /work/shared/bench/hpo; do
    if [[ -f "$candidate/harness.py" ]]; then SHARED=$candidate; break; fi
  done
fi
[[ -f "${SHARED:-}/harness.py" ]] || { echo "harness not found; set SHARED=" >&2; exit 1; }
WORK=${WORK:-/tmp/tug-hpobench}
SEEDS=${SEEDS:-20}
BUDGET=${BUDGET:-50}
WORKERS=${WORKERS:-2}
TIMING_SEEDS=${TIMING_SEEDS:-5}
OPTUNA=${OPTUNA:-tpe,gp,random}
OBJECTIVES=${OBJECTIVES:-branin,hartmann6,rosenbrock4,ackley5,knn_digits}
VENV=${HPOBENCH_VENV:-$WORK/venv}
T0=$(date +%s)
say() { echo "[bench_hpo +$(( $(date +%s) - T0 ))s] $*" >&2; }

mkdir -p "$WORK"
rm -rf "$WORK/harness"
cp -r "$SHARED" "$WORK/harness"
chmod -R u+w "$WORK/harness"
H=$WORK/harness

say "building hpo_sampler (release, static)"
(
  cd "$REPO"
  export CARGO_BUILD_TARGET=x86_64-unknown-linux-gnu
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static"
  cargo build --release --example hpo_sampler
)
BIN=$REPO/target/x86_64-unknown-linux-gnu/release/examples/hpo_sampler
cp "$BIN" "$WORK/hpo_sampler"   # the harness runs it with cwd = the harness copy
BIN=$WORK/hpo_sampler

if [[ "${REUSE_VENV:-0}" != 1 || ! -x "$VENV/bin/python" ]]; then
  say "creating venv $VENV (as the harness's run.sh does)"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q optuna==5.0.0 numpy==2.4.6 scipy==1.17.1 scikit-learn==1.9.1
  if [[ "${NO_TORCH:-0}" != 1 ]]; then
    say "installing torch + greenlet (for GPSampler)"
    timeout 900 "$VENV/bin/pip" install -q torch==2.15.0 greenlet==3.5.6 \
      || say "WARNING: torch install failed; GPSampler will be skipped"
  fi
fi
PY=$VENV/bin/python
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONHASHSEED=0

cd "$H"
mkdir -p results
say "checking known optima"
"$PY" objectives.py check-optima
if [[ -f "$WORK/knn_digits_table.json" ]]; then
  cp "$WORK/knn_digits_table.json" results/knn_digits_table.json
else
  say "building knn_digits table (200 combinations, 3-fold CV)"
  "$PY" objectives.py build-knn-table --workers "$WORKERS"
  cp results/knn_digits_table.json "$WORK/knn_digits_table.json"
fi
say "protocol tests (reference sampler)"
"$PY" test_protocol.py

externals=(--external "$BIN --sampler bayesian" --external-name tug-bayesian
           --external "$BIN --sampler random" --external-name tug-random)
say "benchmark: optuna=$OPTUNA + tug, seeds=$SEEDS budget=$BUDGET workers=$WORKERS"
"$PY" harness.py --samplers "$OPTUNA" "${externals[@]}" \
  --objectives "$OBJECTIVES" --seeds "$SEEDS" --budget "$BUDGET" --workers "$WORKERS" \
  --out results/raw.jsonl

say "timing pass: sequential (1 worker), seeds 0..$(( TIMING_SEEDS - 1 ))"
"$PY" harness.py --samplers "$OPTUNA" "${externals[@]}" \
  --objectives "$OBJECTIVES" --seeds "$TIMING_SEEDS" --budget "$BUDGET" --workers 1 \
  --out results/timing.jsonl

"$PY" report.py --raw results/raw.jsonl --timing results/timing.jsonl --out RESULTS.md \
  --extra-note "examples/bench_hpo/run.sh in tug $(git -C "$REPO" rev-parse --short HEAD); tug-* are the hpo_sampler example (release build) over the JSON-lines protocol." \
  > /dev/null
"$PY" "$HERE/p4_report.py" results/summary.json | tee "$WORK/P4.md"
say "done in $(( $(date +%s) - T0 ))s -> $WORK/P4.md, $H/RESULTS.md"

#!/usr/bin/env bash
# P3: tug-infsrv against azmlinfsrv on the shared serving harness, interleaved in one sitting.
#
#   examples/bench_serving/run.sh [PASSES]      (default 3 passes; ~11 min per pass)
#
# Copies ../shared/bench/serving (read-only there) to $WORK/harness, makes a venv with
# azureml-inference-server-http + scikit-learn from PyPI (the host needs PyPI; containers
# are not used), trains the harness's digits model, builds the static release tug-infsrv,
# then per pass: azmlinfsrv and tug-infsrv, both 2 workers, on echo.py and digits.py at
# 1/8/64 connections, plus tug with one connection per request (CONN_CLOSE=1).
# After tug's digits cells, `ceiling_probe.py` measures what digits.py allows by itself
# (2 processes calling run() in a loop), and `paired_ceiling.py` measures tug, and the
# no-front bound (`no_front_bound.py`), against that ceiling in alternating half-second
# slices, which the VM's speed swings cannot skew; once with the harness's body and once with
# one sized to the goal's ~0.4 ms per call (`heavy_body.py`) (~200 s per pass). Finally
# `p3_report.py` prints the table with the ratios and the digits ceiling.
# Env: WORK (/tmp/tug-servebench), SHARED (the harness), DURATION (10), REUSE_VENV=1,
# TUG_INFSRV (a tug-infsrv binary to measure instead of building this checkout's).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SHARED=${SHARED:-$REPO/../shared/bench/serving}
WORK=${WORK:-/tmp/tug-servebench}
PASSES=${1:-3}
export DURATION=${DURATION:-10} RETRIES=${RETRIES:-1}
H=$WORK/harness
V=$WORK/venv/bin
mkdir -p "$WORK"
rm -rf "$H" && cp -r "$SHARED" "$H" && rm -rf "$H/results"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
if [ "${REUSE_VENV:-0}" != 1 ] || [ ! -x "$V/azmlinfsrv" ]; then
  rm -rf "$WORK/venv"
  python3 -m venv "$WORK/venv"
  "$V/pip" install -q azureml-inference-server-http scikit-learn numpy
fi
"$V/python" "$H/scoring/train_digits.py" "$WORK/model" "$H/bodies" >/dev/null

TUG=${TUG_INFSRV:-}
if [ -z "$TUG" ]; then
  TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
  (cd "$REPO" && env "CARGO_TARGET_$(echo "$TRIPLE" | tr a-z- A-Z_)_RUSTFLAGS=-C target-feature=+crt-static" \
    cargo build --release --locked --target "$TRIPLE" --bin tug-infsrv)
  TUG=$REPO/target/$TRIPLE/release/tug-infsrv
fi

# The goal's premise: a digits body whose run() costs ~0.4 ms here (heavy_body.py).
"$V/python" "$HERE/heavy_body.py" "$H/scoring/digits.py" "$WORK/model" "$H/bodies/digits.json" \
  "$H/bodies/digits-heavy.json" | tee "$WORK/heavy-body.json"

# One server on 127.0.0.1:$3 against its ceiling with body $2, in alternating slices
# (paired_ceiling.py); tug's runs also sample run()'s own time inside the server.
paired() {
  local name=$1 body=$2 port=$3 conns=$4; shift 4
  local sample=0
  [ "$name" = paired-tug ] && sample=50
  setsid "$@" >"$WORK/paired-server.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
  BODY_FILE=$H/bodies/$body.json wrk -t1 -c8 -d3s -s "$H/post.lua" "http://127.0.0.1:$port/score" >/dev/null
  "$V/python" "$HERE/paired_ceiling.py" --url "http://127.0.0.1:$port/score" --body "$H/bodies/$body.json" \
    --lua "$H/post.lua" --script "$H/scoring/digits.py" --model-dir "$WORK/model" --conns "$conns" \
    --seconds "${PAIRED_SECONDS:-20}" --sample-exec "$sample" --name "$name" --pass "$pass" >> "$OUT" || true
  kill -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

B=$H/bench_one.sh
for pass in $(seq 1 "$PASSES"); do
  export OUT=$WORK/results/pass$pass/results.jsonl
  rm -rf "$(dirname "$OUT")"; mkdir -p "$(dirname "$OUT")"
  for payload in echo digits; do
    script=$H/scoring/$payload.py
    LABELS="server=azmlinfsrv workers=2" "$B" "azml-$payload-w2" 5301 "$payload" -- \
      "$V/azmlinfsrv" --entry_script "$script" --model_dir "$WORK/model" --port 5301 --worker_count 2
    LABELS="server=tug-infsrv workers=2" "$B" "tug-$payload-w2" 5302 "$payload" -- \
      "$TUG" --entry_script "$script" --model_dir "$WORK/model" --port 5302 --worker_count 2 --python "$V/python"
    if [ "$payload" = digits ]; then
      # The script's own ceiling, measured now: the VM's speed moves within minutes.
      "$V/python" "$HERE/ceiling_probe.py" "$script" "$WORK/model" "$H/bodies/digits.json" \
        --procs 2 --seconds 5 --name ceiling-digits --pass "$pass" >> "$OUT"
      for body in digits digits-heavy; do
        for conns in 8 64; do
          paired paired-tug "$body" 5304 "$conns" "$TUG" --entry_script "$script" --model_dir "$WORK/model" \
            --port 5304 --worker_count 2 --python "$V/python"
          paired paired-bound "$body" 5305 "$conns" "$V/python" "$HERE/no_front_bound.py" "$script" "$WORK/model" 5305 2
        done
      done
    fi
    CONN_CLOSE=1 PROBE=0 LABELS="server=tug-infsrv workers=2" "$B" "tug-$payload-w2-close" 5303 "$payload" -- \
      "$TUG" --entry_script "$script" --model_dir "$WORK/model" --port 5303 --worker_count 2 --python "$V/python"
  done
done
"$V/python" "$HERE/p3_report.py" --model-dir "$WORK/model" --harness "$H" "$WORK"/results/pass*/results.jsonl

#!/usr/bin/env bash
# Logging throughput, tug's server against `mlflow server` (SQLite backend), same client,
# same sitting. Needs: a built tug (`cargo build --release`), a venv with the MLflow client
# (tests/mlflow/clients.sh makes one) and a venv with the full `mlflow` package for its server.
#   python3 -m venv /tmp/mlfull && /tmp/mlfull/bin/pip install mlflow==3.17.2
#   CLIENT=/var/cache/tug-mlflow/3.18.0/venv/bin/python MLFLOW=/tmp/mlfull/bin/mlflow examples/bench_mlflow/run.sh
# `mlflow server` takes about 20 ms per `log_metric`: its half of the run lasts minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENT=${CLIENT:-/var/cache/tug-mlflow/3.18.0/venv/bin/python}
MLFLOW=${MLFLOW:-mlflow}
TUG=$(realpath "${TUG:-target/release/tug}")
work=$(mktemp -d)
groups=()
cleanup() {
  for g in "${groups[@]}"; do kill -- "-$g" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

tick=$(getconf CLK_TCK)
# user+system clock ticks of every live process in process group $1 (a server and its workers)
cpu() {
  local total=0 p
  for p in $(pgrep -g "$1"); do
    total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# tug
mkdir -p "$work/tug"
(cd "$work/tug" && TUG_WORKSPACE="$work/tug" exec setsid "$TUG" server > server.log 2>&1) &
for _ in $(seq 50); do [ -f "$work/tug/.tug/server.json" ] && break; sleep 0.2; done
url=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['url'])" "$work/tug/.tug/server.json")
pid=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['pid'])" "$work/tug/.tug/server.json")
groups+=("$pid")
c0=$(cpu "$pid")
tug=$(MLFLOW_TRACKING_URI=$url MLFLOW_TRACKING_TOKEN=$(cat "$work/tug/.tug/token") "$CLIENT" examples/bench_mlflow/throughput.py)
tug_cpu=$(( $(cpu "$pid") - c0 ))
kill -- "-$pid"

# mlflow server, SQLite backend, its default workers
port=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
(cd "$work" && exec setsid "$MLFLOW" server --host 127.0.0.1 --port "$port" \
   --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/mlartifacts" > mlflow.log 2>&1) &
mlpid=$!
groups+=("$mlpid")
for _ in $(seq 300); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.2; done
m0=$(cpu "$mlpid")
mlf=$(MLFLOW_TRACKING_URI=http://127.0.0.1:$port "$CLIENT" examples/bench_mlflow/throughput.py)
ml_cpu=$(( $(cpu "$mlpid") - m0 ))

python3 - "$tug" "$mlf" "$tug_cpu" "$ml_cpu" "$tick" <<'PY'
import json, sys
t, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
tick = int(sys.argv[5])
cpu_t, cpu_m = int(sys.argv[3]) / tick, int(sys.argv[4]) / tick
n = t["points"]
print(f"{n} points, one run{'':<6}{'tug':>12}{'mlflow server':>16}{'ratio':>8}")
for k, name in [("one_by_one_s", "log_metric one by one"), ("batch_s", "log_batch of 1000")]:
    print(f"{name:<26}{n / t[k]:>9.0f}/s{n / m[k]:>13.0f}/s{m[k] / t[k]:>7.1f}x")
per = lambda c: c / (2 * n) * 1e6
print(f"{'server CPU per point':<26}{per(cpu_t):>9.0f}µs{per(cpu_m):>13.0f}µs{cpu_m / max(cpu_t, 1e-9):>7.1f}x")
PY

#!/usr/bin/env bash
# Logging throughput, tug's server against `mlflow server` (SQLite backend), same client,
# same sitting. Needs: a built tug (`cargo build --release`), a venv with the MLflow client
# (tests/mlflow/clients.sh makes one) and a venv with the full `mlflow` package for its server.
#   CLIENT=/var/cache/tug-mlflow/3.18.0/venv/bin/python MLFLOW=/tmp/mlfull/bin/mlflow examples/bench_mlflow/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENT=${CLIENT:-/var/cache/tug-mlflow/3.18.0/venv/bin/python}
MLFLOW=${MLFLOW:-mlflow}
TUG=$(realpath "${TUG:-target/release/tug}")
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }  # user+system clock ticks
tick=$(getconf CLK_TCK)

# tug
mkdir -p "$work/tug"
(cd "$work/tug" && TUG_WORKSPACE="$work/tug" "$TUG" server > server.log 2>&1 &)
for _ in $(seq 50); do [ -f "$work/tug/.tug/server.json" ] && break; sleep 0.2; done
url=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['url'])" "$work/tug/.tug/server.json")
pid=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['pid'])" "$work/tug/.tug/server.json")
c0=$(cpu "$pid")
tug=$(MLFLOW_TRACKING_URI=$url MLFLOW_TRACKING_TOKEN=$(cat "$work/tug/.tug/token") "$CLIENT" examples/bench_mlflow/throughput.py)
tug_cpu=$(( $(cpu "$pid") - c0 ))
kill "$pid"

# mlflow server, SQLite backend, its default workers
port=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
(cd "$work" && "$MLFLOW" server --host 127.0.0.1 --port "$port" \
   --backend-store-uri "sqlite:///$work/mlflow.db" --artifacts-destination "$work/mlartifacts" > mlflow.log 2>&1 &)
for _ in $(seq 150); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.2; done
mlf=$(MLFLOW_TRACKING_URI=http://127.0.0.1:$port "$CLIENT" examples/bench_mlflow/throughput.py)

python3 - "$tug" "$mlf" "$tug_cpu" "$tick" <<'PY'
import json, sys
t, m = json.loads(sys.argv[1]), json.loads(sys.argv[2])
cpu = int(sys.argv[3]) / int(sys.argv[4])
n = t["points"]
print(f"{'10 000 points':<26}{'tug':>12}{'mlflow server':>16}{'ratio':>8}")
for k, name in [("one_by_one_s", "log_metric one by one"), ("batch_s", "log_batch of 1000")]:
    print(f"{name:<26}{n / t[k]:>9.0f}/s{n / m[k]:>13.0f}/s{m[k] / t[k]:>7.1f}x")
print(f"tug server CPU: {cpu:.2f} s for {2 * n} points = {cpu / (2 * n) * 1e6:.0f} µs/point")
PY

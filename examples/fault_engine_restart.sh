#!/usr/bin/env bash
# Fault: the Docker engine restarts while a run and an endpoint are live.
#
#   examples/fault_engine_restart.sh          (root; restarts the machine's dockerd!)
#
# Not a test: it stops the engine every other test and container on the machine uses.
# Starts, in a fresh workspace, an endpoint with one deployment (tug/python:3.11-minimal, a
# stdlib score.py) and a 120 s run that prints a line a second and writes ./outputs, then
# restarts dockerd (systemctl when there is systemd, else TERM and the same command line
# again) and reports: how the run ended and why (never Running forever), whether its outputs
# and log were collected, and how long until the endpoint answered again.
# Needs the release build (cargo build --release) and the minimal base image.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
TUG=${TUG:-$REPO/target/release/tug}
WS=$(mktemp -d /tmp/tug-fault-XXXXXX)
export TUG_WORKSPACE=$WS TUG_IDLE_TIMEOUT=600
cd "$WS"
mkdir -p score model src
cat > score/score.py <<'EOF'
import json
def init():
    pass
def run(raw):
    return {"echo": json.loads(raw)["data"]}
EOF
echo '{}' > model/model.json
printf 'name: fault-ep\nauth_mode: key\n' > endpoint.yml
cat > blue.yml <<'EOF'
name: blue
endpoint_name: fault-ep
model:
  path: model/model.json
code_configuration:
  code: score
  scoring_script: score.py
environment:
  image: tug/python:3.11-minimal
instance_count: 1
EOF
cat > src/long.py <<'EOF'
import os, time
os.makedirs("outputs", exist_ok=True)
for i in range(120):
    print("tick", i, flush=True)
    open("outputs/progress.txt", "w").write(str(i))
    time.sleep(1)
EOF
cat > long.yml <<'EOF'
code: src
command: python3 long.py
environment:
  image: tug/python:3.11-minimal
EOF
echo '{"data": [1, 2]}' > req.json

"$TUG" online-endpoint create -f endpoint.yml >/dev/null
"$TUG" online-deployment create -f blue.yml --all-traffic >/dev/null
"$TUG" online-endpoint invoke -n fault-ep --request-file req.json >/dev/null
RUN=$("$TUG" job create -f long.yml -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
until "$TUG" job show "$RUN" -o json | grep -q '"status": "Running"'; do sleep 1; done
sleep 5

echo "restarting dockerd ($(date +%T))"
T0=$(date +%s)
if command -v systemctl >/dev/null && systemctl is-active -q docker 2>/dev/null; then
  systemctl restart docker
else
  PID=$(pgrep -xo dockerd)
  CMD=$(tr '\0' ' ' < /proc/$PID/cmdline)
  kill -TERM "$PID"
  while kill -0 "$PID" 2>/dev/null; do sleep 0.5; done
  setsid $CMD >/var/log/dockerd-fault.log 2>&1 < /dev/null &
fi
until docker info >/dev/null 2>&1; do sleep 0.5; done
T_ENGINE=$(( $(date +%s) - T0 ))

# The endpoint: until it answers through the router.
until "$TUG" online-endpoint invoke -n fault-ep --request-file req.json >/dev/null 2>&1; do
  sleep 1
  [ $(( $(date +%s) - T0 )) -lt 180 ] || break
done
T_ENDPOINT=$(( $(date +%s) - T0 ))
ANSWER=$("$TUG" online-endpoint invoke -n fault-ep --request-file req.json 2>&1 || true)

# The run: until it ends.
for _ in $(seq 1 240); do
  STATUS=$("$TUG" job show "$RUN" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  case $STATUS in Completed|Failed|Canceled) break;; esac
  sleep 1
done
ERROR=$("$TUG" job show "$RUN" -o json | python3 -c 'import json,sys; e=json.load(sys.stdin).get("error") or ""; print(e.splitlines()[0] if e else "")')
OUT=$WS/.tug/artifacts/runs/$RUN
echo
echo "| measure | result |"
echo "| --- | --- |"
echo "| engine back after | ${T_ENGINE} s |"
echo "| endpoint answering again after | ${T_ENDPOINT} s: $ANSWER |"
echo "| run $RUN | $STATUS: $ERROR |"
echo "| run outputs collected | $( [ -f "$OUT/outputs/progress.txt" ] && echo "yes (progress $(cat "$OUT/outputs/progress.txt"))" || echo no) |"
echo "| run log lines kept | $(wc -l < "$OUT/user_logs/std_log.txt" 2>/dev/null || echo 0) |"
WSID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workspace_id"])' "$WS/.tug/server.json")
"$TUG" online-endpoint delete -n fault-ep >/dev/null
echo "| containers left after delete | $(docker ps -aq --filter "label=tug.workspace=$WSID" | wc -l) |"
"$TUG" server stop >/dev/null 2>&1 || true

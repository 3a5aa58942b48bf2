#!/usr/bin/env bash
# Pipeline orchestration figures, printed as a table:
#  1. a 10-step linear pipeline of trivial steps against the same 10 command jobs
#     submitted one after another, each waited for (goal: pipeline ≤ 1.1× the jobs);
#  2. `tug job plan` of a 50-step linear pipeline whose every step is reusable
#     (goal ≤ 200 ms).
# Needs a built tug (`cargo build --release`) and the minimal base image
# (`images/build-base.sh minimal`). Usage: examples/bench_pipeline/run.sh [repeats]
set -euo pipefail
cd "$(dirname "$0")/../.."
TUG=$(realpath "${TUG:-target/release/tug}")
IMAGE=${IMAGE:-tug/python:3.11-minimal}
REPEATS=${1:-3}
work=$(mktemp -d)
trap '(cd "$work" && TUG_WORKSPACE="$work" "$TUG" server stop >/dev/null 2>&1); rm -rf "$work"' EXIT
export TUG_WORKSPACE="$work"
cd "$work"
mkdir -p src && echo 'print("step")' > src/step.py

# A linear pipeline of $1 steps, each reading the previous one's output; `$2` goes into
# every command so that each repeat's steps are new (not reused); the step index makes
# each step unlike the others (identical steps over identical inputs would be reused).
pipeline() {
  local n=$1 salt=$2 i
  echo "type: pipeline"
  echo "experiment_name: bench"
  echo "jobs:"
  for i in $(seq 1 "$n"); do
    echo "  s$i:"
    echo "    code: src"
    if [ "$i" -eq 1 ]; then
      echo "    command: python step.py $salt s$i > \${{outputs.out}}/log"
    else
      echo "    command: python step.py $salt s$i \${{inputs.x}} > \${{outputs.out}}/log"
      echo "    inputs:"
      echo "      x: \${{parent.jobs.s$((i - 1)).outputs.out}}"
    fi
    echo "    environment: {image: $IMAGE}"
    echo "    outputs:"
    echo "      out: {type: uri_folder}"
  done
}

# The same step as a command job: same script, same named output to collect.
job() {
  echo "type: command"
  echo "experiment_name: bench"
  echo "code: src"
  echo "command: python step.py $1 > \${{outputs.out}}/log"
  echo "environment: {image: $IMAGE}"
  echo "outputs:"
  echo "  out: {type: uri_folder}"
}

now() { date +%s.%N; }
"$TUG" job list >/dev/null # starts the server
# Warm-up: the environment image is built once, outside the timings.
job warm > warm.yml && "$TUG" job create -f warm.yml --stream >/dev/null 2>&1

pipe_total=0
jobs_total=0
for r in $(seq 1 "$REPEATS"); do
  pipeline 10 "p$r" > p.yml
  t0=$(now)
  "$TUG" job create -f p.yml --stream >/dev/null
  t1=$(now)
  for i in $(seq 1 10); do
    job "j$r-$i" > j.yml
    "$TUG" job create -f j.yml --stream >/dev/null 2>&1
  done
  t2=$(now)
  pipe_total=$(echo "$pipe_total + $t1 - $t0" | bc -l)
  jobs_total=$(echo "$jobs_total + $t2 - $t1" | bc -l)
done
pipe=$(echo "$pipe_total / $REPEATS" | bc -l)
jobs=$(echo "$jobs_total / $REPEATS" | bc -l)

pipeline 50 plan > p50.yml
"$TUG" job create -f p50.yml --stream >/dev/null
"$TUG" job plan -f p50.yml -o json > plan.json
reused=$(python3 -c "import json;print(json.load(open('plan.json'))['reuse'])")
best=999
for _ in $(seq 1 5); do
  t0=$(now)
  "$TUG" job plan -f p50.yml -o json >/dev/null
  t1=$(now)
  ms=$(echo "($t1 - $t0) * 1000" | bc -l)
  best=$(echo "if ($ms < $best) $ms else $best" | bc -l)
done

printf '%-52s %10s %10s %8s\n' "measure" "tug" "anchor" "ratio"
printf '%-52s %9.2fs %9.2fs %7.2fx\n' "10-step pipeline vs 10 jobs one after another" "$pipe" "$jobs" "$(echo "$pipe / $jobs" | bc -l)"
printf '%-52s %9.0fms %10s %8s\n' "plan of 50 steps, $reused reusable (best of 5)" "$best" "200ms" "goal"

#!/usr/bin/env bash
# Real MLflow clients for the tracking tests, from PyPI, cached in /var/cache/tug-mlflow:
# for each version a host virtualenv (`<v>/venv`) and a wheelhouse (`<v>/wheels`) that
# offline image builds install from with `pip install --no-index --find-links`.
# The versions: the newest 3.x, what azureml-mlflow pins (3.15), and the last 2.x.
set -euo pipefail
CACHE=${TUG_MLFLOW_CACHE:-/var/cache/tug-mlflow}
VERSIONS=${TUG_MLFLOW_VERSIONS:-"3.18.0 3.15.2 2.22.5"}
mkdir -p "$CACHE"
for v in $VERSIONS; do
  dir="$CACHE/$v"
  if [ -f "$dir/ready" ]; then continue; fi
  echo "== mlflow-skinny $v: wheelhouse and host client"
  rm -rf "$dir/venv" "$dir/wheels"
  mkdir -p "$dir"
  python3 -m venv "$dir/venv"
  "$dir/venv/bin/pip" install --quiet --disable-pip-version-check "mlflow-skinny==$v"
  "$dir/venv/bin/pip" download --quiet --disable-pip-version-check -d "$dir/wheels" "mlflow-skinny==$v"
  touch "$dir/ready"
done

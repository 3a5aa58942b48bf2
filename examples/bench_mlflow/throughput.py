"""Logging throughput through the real MLflow client: 10 000 metric points from one run,
one `log_metric` call each and then in `log_batch` calls of 1000, against whatever
MLFLOW_TRACKING_URI names (tug's server, or `mlflow server` with its SQLite backend).
Prints one JSON line; run.sh runs both servers in one sitting and prints the table."""
import json, os, sys, time

import mlflow
from mlflow.entities import Metric
from mlflow import MlflowClient

N = int(os.environ.get("POINTS", "10000"))
client = MlflowClient()
exp = client.get_experiment_by_name("bench") or None
exp_id = exp.experiment_id if exp else client.create_experiment("bench")

run = client.create_run(exp_id)
t0 = time.perf_counter()
for i in range(N):
    client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1), step=i)
one = time.perf_counter() - t0

run2 = client.create_run(exp_id)
now = int(time.time() * 1000)
t0 = time.perf_counter()
for start in range(0, N, 1000):
    client.log_batch(run2.info.run_id, metrics=[
        Metric("loss", 1.0 / (i + 1), now, i) for i in range(start, min(N, start + 1000))])
batch = time.perf_counter() - t0

got = len(client.get_metric_history(run.info.run_id, "loss"))
got2 = len(client.get_metric_history(run2.info.run_id, "loss"))
assert got == N and got2 == N, (got, got2)
print(json.dumps({"points": N, "one_by_one_s": one, "batch_s": batch}))

#!/usr/bin/env python3
"""P6 (endpoints): deploy -> ready on a Kubernetes compute target, next to kubectl.

One endpoint on the cluster; then N deployments of the same scoring image (built once, in
a warm-up):
  - tug: `tug online-deployment create` timed from the call to its exit, which is when the
    deployment's pods are ready *and* the endpoint answers for it through the router;
  - kubectl (the cluster's own version): `kubectl apply` of the very objects tug would
    create (`tug online-deployment create --dry-run -o yaml`, renamed), then
    `kubectl rollout status` until the pods are ready.
kubectl's column is the floor of "apply and wait"; tug's adds switching the router and a
request through it.

usage: p6_deploy.py TUG_BIN KUBECONFIG KUBECTL [N]
"""

import json, os, subprocess, sys, tempfile, time

tug, kubeconfig, kubectl = sys.argv[1:4]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 5
image = "tug/python:3.11-minimal"
score = """
import json
def init():
    pass
def run(raw):
    return json.loads(raw)
"""

ws = tempfile.mkdtemp(prefix="tug-p6d-")
os.makedirs(f"{ws}/.tug", exist_ok=True)
os.makedirs(f"{ws}/score", exist_ok=True)
open(f"{ws}/.tug/config.yaml", "w").write(
    f"compute:\n  k8s:\n    type: kubernetes\n    kubeconfig: {kubeconfig}\n    images: local\n")
open(f"{ws}/score/score.py", "w").write(score)
open(f"{ws}/endpoint.yml", "w").write("name: p6-deploy\ncompute: azureml:k8s\nauth_mode: key\n")
env = dict(os.environ, TUG_WORKSPACE=ws)


def deployment(name):
    path = f"{ws}/{name}.yml"
    open(path, "w").write(
        f"name: {name}\ntype: kubernetes\nendpoint_name: p6-deploy\n"
        f"code_configuration:\n  code: score\n  scoring_script: score.py\n"
        f"environment:\n  image: {image}\ninstance_count: 1\n"
        f"readiness_probe:\n  initial_delay: 1\n  period: 1\n  failure_threshold: 120\n")
    return path


def t(cmd, **kw):
    t0 = time.monotonic()
    subprocess.check_output(cmd, cwd=ws, env=env, **kw)
    return time.monotonic() - t0


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


subprocess.check_output([tug, "online-endpoint", "create", "-f", "endpoint.yml"], cwd=ws, env=env)
t([tug, "online-deployment", "create", "-f", deployment("warm")])  # builds the scoring image
k = [kubectl, "--kubeconfig", kubeconfig]
tug_times, kubectl_times = [], []
for i in range(n):
    name = f"dep{i}"
    tug_times.append(t([tug, "online-deployment", "create", "-f", deployment(name)]))
    objects = subprocess.check_output(
        [tug, "online-deployment", "create", "-f", deployment(f"kub{i}"), "--dry-run", "-o", "json"],
        cwd=ws, env=env)
    items = json.loads(objects)["items"]
    for o in items:
        o["metadata"]["name"] = f"p6-kubectl-{os.getpid()}-{i}"
        o["metadata"]["labels"]["tug.workspace"] = "p6-kubectl"
    dep = next(o for o in items if o["kind"] == "Deployment")
    for where in (dep["spec"]["selector"]["matchLabels"], dep["spec"]["template"]["metadata"]["labels"]):
        where["tug.workspace"] = "p6-kubectl"
    path = f"{ws}/k{i}.json"
    open(path, "w").write(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    t0 = time.monotonic()
    subprocess.check_output(k + ["apply", "-f", path])
    subprocess.check_output(k + ["rollout", "status", f"deployment/{dep['metadata']['name']}", "--timeout=120s"])
    kubectl_times.append(time.monotonic() - t0)
    subprocess.check_output(k + ["delete", "-f", path, "--wait=false"])

print(f"P6 (endpoints): {n} deployments of one instance each on the local cluster ({image})")
print(f"{'':10} {'deploy->ready':>14}")
print(f"{'tug':10} {median(tug_times):>12.2f} s  (min {min(tug_times):.2f}, max {max(tug_times):.2f})")
print(f"{'kubectl':10} {median(kubectl_times):>12.2f} s  (min {min(kubectl_times):.2f}, max {max(kubectl_times):.2f})")
subprocess.run([tug, "online-endpoint", "delete", "-n", "p6-deploy", "--yes"], cwd=ws, env=env)
subprocess.run([tug, "server", "stop"], cwd=ws, env=env)

#!/usr/bin/env python3
"""P6: command jobs on a Kubernetes compute target, next to kubectl, in one sitting.

For N runs of a small job (print, sleep 2 s) on the minimal image:
  - tug: `tug job create --stream`, timed from the call to the `Running` and `Completed`
    lines; API requests per run counted in the API server's audit log (every request tug
    made that names the run's Job, pod or labels, excluding the log stream);
  - kubectl (Debian's kubernetes-client, the cluster's own version): `kubectl apply` of a
    Job with the same image and command, timed to its pod Ready (running) and to the Job
    complete (`kubectl wait`), requests counted the same way.
tug does more per run (code delivered into the pod, outputs collected back, metrics
parsed, the Job deleted); kubectl's column is the floor of "apply and wait".

usage: p6.py TUG_BIN KUBECONFIG AUDIT_LOG KUBECTL [N]
"""

import json, os, subprocess, sys, tempfile, time, urllib.parse

tug, kubeconfig, audit, kubectl = sys.argv[1:5]
n = int(sys.argv[5]) if len(sys.argv) > 5 else 5
image = "tug/python:3.11-minimal"
script = "import time\nprint('hello', flush=True)\ntime.sleep(2)\n"


def audit_lines():
    with open(audit) as f:
        return f.readlines()


def count_requests(lines, needles):
    count = 0
    for line in lines:
        e = json.loads(line)
        agent = e.get("userAgent", "")
        if agent.startswith(("kubelet", "kube-controller-manager", "kube-scheduler")):
            continue
        uri = urllib.parse.unquote(e.get("requestURI", ""))
        if "/log?" in uri or uri.endswith("/log"):
            continue
        if any(nd in uri for nd in needles):
            count += 1
    return count


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


ws = tempfile.mkdtemp(prefix="tug-p6-")
os.makedirs(f"{ws}/.tug", exist_ok=True)
os.makedirs(f"{ws}/src", exist_ok=True)
open(f"{ws}/.tug/config.yaml", "w").write(
    f"compute:\n  k8s:\n    type: kubernetes\n    kubeconfig: {kubeconfig}\n    images: local\n")
open(f"{ws}/src/hello.py", "w").write(script)
open(f"{ws}/job.yml", "w").write(
    f"experiment_name: p6\ncode: src\ncommand: python3 hello.py\nenvironment:\n  image: {image}\ncompute: azureml:k8s\n")
env = dict(os.environ, TUG_WORKSPACE=ws)


def tug_run():
    before = len(audit_lines())
    t0 = time.monotonic()
    p = subprocess.Popen([tug, "job", "create", "-f", "job.yml", "--stream"], cwd=ws, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_id, t_run, t_end = None, None, None
    for line in p.stdout:
        if line.startswith("Submitted job "):
            run_id = line.split()[2]
        if ": Running" in line and t_run is None:
            t_run = time.monotonic() - t0
        if ": Completed" in line:
            t_end = time.monotonic() - t0
    p.wait()
    assert p.returncode == 0 and t_end, "tug run failed"
    time.sleep(2)  # let the last watch and exec connections be logged as complete
    shown = json.loads(subprocess.check_output([tug, "job", "show", run_id, "-o", "json"], cwd=ws, env=env))
    job = shown["container"].split("/")[-1]
    reqs = count_requests(audit_lines()[before:], [job, run_id])
    return t_run, t_end, reqs


def kubectl_run(i):
    name = f"p6-kubectl-{os.getpid()}-{i}"
    manifest = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                            "command": ["python3", "-c", script]}]}}}}
    path = f"{ws}/{name}.json"
    open(path, "w").write(json.dumps(manifest))
    k = [kubectl, "--kubeconfig", kubeconfig]
    before = len(audit_lines())
    t0 = time.monotonic()
    subprocess.check_output(k + ["apply", "-f", path])
    pod = ""
    while not pod:
        pod = subprocess.check_output(k + ["get", "pods", "-l", f"job-name={name}", "-o", "name"], text=True).strip()
    subprocess.check_output(k + ["wait", "--for=condition=Ready", pod, "--timeout=120s"])
    t_run = time.monotonic() - t0
    subprocess.check_output(k + ["wait", "--for=condition=complete", f"job/{name}", "--timeout=120s"])
    t_end = time.monotonic() - t0
    time.sleep(2)
    reqs = count_requests(audit_lines()[before:], [name])
    subprocess.check_output(k + ["delete", "job", name, "--cascade=background"])
    return t_run, t_end, reqs


tug_run()  # warm-up: the environment image, the server
rows = {"tug": [tug_run() for _ in range(n)], "kubectl": [kubectl_run(i) for i in range(n)]}
print(f"P6: {n} runs each of a 2 s job on the local cluster ({image})")
print(f"{'':10} {'submit->Running':>16} {'submit->Completed':>18} {'API requests/run':>17}")
for who, rs in rows.items():
    print(f"{who:10} {median([r[0] for r in rs]):>14.2f} s {median([r[1] for r in rs]):>16.2f} s "
          f"{median([r[2] for r in rs]):>17} (min {min(r[2] for r in rs)}, max {max(r[2] for r in rs)})")
subprocess.run([tug, "server", "stop"], cwd=ws, env=env)

# A scoring script with no dependencies: the "model" is a JSON file with an offset.
# Used by the endpoint suites (tests/endpoints.rs, tests/k8s_endpoints.rs).
import json, os, time

offset = None

def init():
    global offset
    if os.environ.get("FAIL_INIT"):
        raise RuntimeError("init failed on purpose: FAIL_INIT is set")
    print("init who=" + os.environ.get("WHO", ""), flush=True)
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")) as f:
        offset = json.load(f)["offset"]

def run(raw):
    data = json.loads(raw)["data"]
    if data == "raise":
        raise ValueError("run failed on purpose")
    if data == "sleep":
        time.sleep(3)
    if data == "crash":
        os._exit(1)
    return {"result": [x + offset for x in data], "who": os.environ.get("WHO", "")}

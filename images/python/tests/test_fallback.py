"""Tests for the stdlib MLflow fallback and the sitecustomize that places it (stdlib only).

Run from the repository root:

    python3 -m unittest discover -s images/python/tests -v

A real client, when tests/mlflow/clients.sh has cached one, checks that an installed mlflow
wins over the fallback and that the real client reads the fallback's model folder.
"""

import glob
import http.server
import json
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest

from test_helper import FRAME_RE, PYDIR, records, run_script

REAL_CLIENTS = sorted(glob.glob("/var/cache/tug-mlflow/*/venv/bin/python"))


class Placement(unittest.TestCase):
    def test_fallback_answers_when_mlflow_is_absent(self):
        out, _, _ = run_script("import mlflow, sys; sys.stdout.write(str(mlflow.IS_TUG_FALLBACK))")
        self.assertTrue(out.endswith(b"True"))

    def test_an_installed_mlflow_wins(self):
        with tempfile.TemporaryDirectory() as site:
            os.makedirs(os.path.join(site, "mlflow"))
            with open(os.path.join(site, "mlflow", "__init__.py"), "w") as f:
                f.write("REAL = True\n")
            # A later PYTHONPATH entry stands for site-packages: both come before the fallback.
            out, _, _ = run_script(
                "import mlflow, sys; sys.stdout.write(str(getattr(mlflow, 'REAL', False)))",
                env={"PYTHONPATH": PYDIR + os.pathsep + site})
        self.assertTrue(out.endswith(b"True"))

    @unittest.skipUnless(REAL_CLIENTS, "no cached MLflow client (tests/mlflow/clients.sh)")
    def test_a_real_client_in_site_packages_wins(self):
        for python in REAL_CLIENTS:
            proc = subprocess.run(
                [python, "-c", "import mlflow; print(mlflow.__version__, "
                 "hasattr(mlflow, 'IS_TUG_FALLBACK'))"],
                env={"PYTHONPATH": PYDIR, "PATH": os.environ["PATH"]},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
            version = python.split("/")[-4]
            self.assertEqual(proc.stdout.decode().split(), [version, "False"], python)

    def test_the_shadowed_sitecustomize_still_runs(self):
        with tempfile.TemporaryDirectory() as other:
            with open(os.path.join(other, "sitecustomize.py"), "w") as f:
                f.write("import sys; sys.stdout.write('chained ')\n")
            out, _, _ = run_script("import sys; sys.stdout.write('script')",
                                   env={"PYTHONPATH": PYDIR + os.pathsep + other})
        self.assertEqual(out, b"chained script")


class Records(unittest.TestCase):
    def test_metrics_params_tags_reach_tug_as_mlflow_logs_them(self):
        out, _, _ = run_script("""
            import mlflow
            mlflow.log_param("hello_param", "world")
            mlflow.log_metric("hello_metric", 0.5)
            mlflow.log_metric("loss", 2, step=3)
            mlflow.log_metrics({"a": 1, "b": 2.5})
            mlflow.set_tags({"t": 1})
            mlflow.log_params({"lr": 0.1})
        """)
        recs = [{k: v for k, v in r.items() if k != "ts"} for r in records(out)]
        self.assertEqual(recs, [
            {"k": "params", "values": {"hello_param": "world"}},
            # MLflow logs a metric without a step at step 0.
            {"k": "metric", "name": "hello_metric", "value": 0.5, "step": 0},
            {"k": "metric", "name": "loss", "value": 2, "step": 3},
            {"k": "metric", "name": "a", "value": 1, "step": 0},
            {"k": "metric", "name": "b", "value": 2.5, "step": 0},
            {"k": "tags", "values": {"t": "1"}},
            {"k": "params", "values": {"lr": "0.1"}},
        ])

    def test_a_bad_batch_sends_nothing(self):
        out, err, rc = run_script(
            "import mlflow; mlflow.log_metrics({'ok': 1, 'bad': 'text'})", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("mlflow.log_metrics", err)
        self.assertEqual(records(out), [])

    def test_runs_are_the_jobs_own(self):
        out, err, _ = run_script("""
            import mlflow, sys
            assert mlflow.active_run() is None
            with mlflow.start_run(run_name="first") as run:
                assert mlflow.active_run() is run
                sys.stdout.write(run.info.run_id + " ")
                try:
                    mlflow.start_run()
                except mlflow.MlflowException as e:
                    sys.stdout.write("refused ")
                nested = mlflow.start_run(nested=True)
                assert nested is run
            assert mlflow.active_run() is None
            try:
                mlflow.start_run(run_id="someone-else")
            except mlflow.MlflowException as e:
                sys.stdout.write("other ")
            mlflow.log_metric("x", 1)   # starts a run again, as the real client does
            sys.stdout.write(str(mlflow.active_run() is not None))
        """, env={"MLFLOW_RUN_ID": "run-1"})
        self.assertIn(b"run-1 refused other True", FRAME_RE.sub(b"", out))
        self.assertIn("nested runs are not separate runs", err)
        self.assertIn({"k": "tags", "values": {"mlflow.runName": "first"}},
                      [{k: v for k, v in r.items() if k != "ts"} for r in records(out)])

    def test_autolog_is_a_noop_that_says_so_once(self):
        _, err, _ = run_script("import mlflow; mlflow.autolog(); mlflow.sklearn.autolog()")
        self.assertEqual(err.count("autolog() records nothing"), 1, err)

    def test_what_is_missing_names_the_fix(self):
        _, err, rc = run_script("import mlflow; mlflow.MlflowClient()", check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("mlflow.MlflowClient is not part of tug's stdlib MLflow fallback", err)
        self.assertIn("mlflow-skinny", err)


class _Capture(http.server.BaseHTTPRequestHandler):
    got = []
    status = 200

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Capture.got.append((self.path, self.headers.get("Authorization"), body))
        self.send_response(_Capture.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error_code": "PERMISSION_DENIED", "message": "not yours"}'
                         if _Capture.status != 200 else b"{}")

    def log_message(self, *args):
        pass


class Artifacts(unittest.TestCase):
    def setUp(self):
        _Capture.got, _Capture.status = [], 200
        self.server = http.server.HTTPServer(("127.0.0.1", 0), _Capture)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.env = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:%d" % self.server.server_port,
                    "MLFLOW_TRACKING_TOKEN": "tug-run.r1.secret", "MLFLOW_RUN_ID": "r1",
                    "MLFLOW_EXPERIMENT_ID": "7"}

    def tearDown(self):
        self.server.shutdown()
        self.server.server_close()

    def test_artifacts_go_to_the_runs_artifact_api(self):
        with tempfile.TemporaryDirectory() as cwd:
            os.makedirs(os.path.join(cwd, "d", "sub"))
            for name, text in [("hello.txt", "hi"), ("d/a.txt", "A"), ("d/sub/b.txt", "B")]:
                with open(os.path.join(cwd, name), "w") as f:
                    f.write(text)
            run_script("""
                import mlflow
                mlflow.log_artifact("hello.txt")
                mlflow.log_artifact("hello.txt", "nested dir")
                mlflow.log_artifacts("d", "folder")
                mlflow.log_dict({"k": [1, 2]}, "cfg/params.json")
                mlflow.log_text("text", "note.txt")
                print(mlflow.get_artifact_uri("x"))
            """, env=self.env, cwd=cwd)
        prefix = "/api/2.0/mlflow-artifacts/artifacts/7/r1/artifacts/"
        got = [(p[len(prefix):] if p.startswith(prefix) else p, a, b) for p, a, b in _Capture.got]
        auth = "Bearer tug-run.r1.secret"
        self.assertEqual(got, [
            ("hello.txt", auth, b"hi"),
            ("nested%20dir/hello.txt", auth, b"hi"),
            ("folder/a.txt", auth, b"A"),
            ("folder/sub/b.txt", auth, b"B"),
            ("cfg/params.json", auth, json.dumps({"k": [1, 2]}, indent=2).encode()),
            ("note.txt", auth, b"text"),
        ])

    def test_a_refused_upload_raises_with_the_servers_message(self):
        _Capture.status = 403
        with tempfile.TemporaryDirectory() as cwd:
            _, err, rc = run_script("import mlflow; mlflow.log_text('x', 'a.txt')",
                                    env=self.env, cwd=cwd, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("HTTP 403: not yours", err)
        self.assertEqual(len(_Capture.got), 1, "a 4xx is not retried")

    def test_paths_cannot_leave_the_run(self):
        _, err, rc = run_script("import mlflow; mlflow.log_text('x', '../escape.txt')",
                                env=self.env, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("must be a relative path below the run", err)
        self.assertEqual(_Capture.got, [])

    def test_without_a_tracking_uri_artifacts_land_in_outputs(self):
        with tempfile.TemporaryDirectory() as cwd:
            run_script("import mlflow; mlflow.log_text('x', 'a/b.txt')", cwd=cwd,
                       env={"MLFLOW_TRACKING_URI": ""})
            with open(os.path.join(cwd, "outputs", "a", "b.txt")) as f:
                self.assertEqual(f.read(), "x")


class ModelFolder(unittest.TestCase):
    def test_save_model_writes_mlflows_layout_and_loads_back(self):
        with tempfile.TemporaryDirectory() as cwd:
            run_script("""
                import mlflow.sklearn
                mlflow.sklearn.save_model({"weights": [1, 2, 3]}, "model")
                print(mlflow.sklearn.load_model("model"))
            """, cwd=cwd)
            folder = os.path.join(cwd, "model")
            self.assertEqual(sorted(os.listdir(folder)), [
                "MLmodel", "conda.yaml", "model.pkl", "python_env.yaml", "requirements.txt"])
            with open(os.path.join(folder, "model.pkl"), "rb") as f:
                self.assertEqual(pickle.load(f), {"weights": [1, 2, 3]})
            with open(os.path.join(folder, "MLmodel")) as f:
                mlmodel = f.read()
            self.assertIn("loader_module: mlflow.sklearn", mlmodel)
            self.assertIn("serialization_format: pickle", mlmodel)
            _, err, rc = run_script(
                "import mlflow.sklearn; mlflow.sklearn.save_model(1, 'model')", cwd=cwd,
                check=False)
            self.assertIn("already exists and is not empty", err)
            if REAL_CLIENTS:  # the real client's YAML reader takes it (its Model needs numpy)
                proc = subprocess.run(
                    [REAL_CLIENTS[-1], "-c", textwrap.dedent("""
                        import yaml
                        m = yaml.safe_load(open("model/MLmodel"))
                        print(sorted(m["flavors"]), m["flavors"]["sklearn"]["serialization_format"])
                    """)], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env={"PATH": os.environ["PATH"]})
                self.assertEqual(proc.returncode, 0, proc.stderr.decode())
                self.assertEqual(proc.stdout.decode().strip(),
                                 "['python_function', 'sklearn'] pickle")

    def test_log_model_uploads_the_folder_under_its_name(self):
        with tempfile.TemporaryDirectory() as cwd:
            out, _, _ = run_script("""
                import mlflow, mlflow.sklearn
                info = mlflow.sklearn.log_model([1], name="clf")
                print(info.model_uri)
            """, cwd=cwd, env={"MLFLOW_TRACKING_URI": "", "MLFLOW_RUN_ID": "r9"})
            self.assertIn(b"runs:/r9/clf", out)
            self.assertTrue(os.path.isfile(os.path.join(cwd, "outputs", "clf", "MLmodel")))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    unittest.main()

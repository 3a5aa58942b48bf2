"""Tests for the tug Python helper and the azureml.core shim (stdlib unittest only).

Each test runs a small script in a subprocess with PYTHONPATH=images/python and
TUG_LOG_NONCE=abc123, captures its stdout bytes and checks the exact frames the Rust side
parses. Run from the repository root:

    python3 -m unittest discover -s images/python/tests -v
"""

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.dirname(HERE)
NONCE = "abc123"
PREFIX = b"\x1etug:" + NONCE.encode() + b" "
FRAME_RE = re.compile(rb"\x1etug:abc123 ([^\n]*)\n")
# Pin the timestamp so frames can be compared byte for byte.
FIXED_TIME = "import time as _t; _t.time = lambda: 1700000000.5\n"
TS = b'"ts":1700000000.5'


def run_script(source, nonce=NONCE, env=None, cwd=None, check=True):
    """Run `source` with the helper on PYTHONPATH; return (stdout bytes, stderr text, rc)."""
    full_env = dict(
        (k, v) for k, v in os.environ.items()
        if not (k.startswith("TUG_") or k.startswith("AZUREML_") or k == "PYTHONPATH")
    )
    full_env["PYTHONPATH"] = PYDIR
    if nonce is not None:
        full_env["TUG_LOG_NONCE"] = nonce
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", FIXED_TIME + textwrap.dedent(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=cwd,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    if check and proc.returncode != 0:
        raise AssertionError("script failed (rc %d):\n%s" % (proc.returncode, stderr))
    return proc.stdout, stderr, proc.returncode


def frame(obj_json):
    """The exact bytes of one record whose compact JSON is `obj_json` (str)."""
    return PREFIX + obj_json.encode("ascii") + b"\n"


def metric(name, value, step="null"):
    return frame(
        '{"k":"metric","name":%s,"value":%s,"step":%s,"ts":1700000000.5}'
        % (json.dumps(name), value, step)
    )


def records(stdout):
    return [json.loads(m.group(1)) for m in FRAME_RE.finditer(stdout)]


class WireFormat(unittest.TestCase):
    def test_metric_frame_is_exact(self):
        out, _, _ = run_script('import tug; tug.log("accuracy", 0.97, step=3)')
        self.assertEqual(
            out,
            b'\x1etug:abc123 {"k":"metric","name":"accuracy","value":0.97,"step":3,'
            b'"ts":1700000000.5}\n',
        )

    def test_step_none_is_null_not_invented(self):
        out, _, _ = run_script('import tug; tug.log("loss", 1.5); tug.log("loss", 2)')
        self.assertEqual(out, metric("loss", "1.5") + metric("loss", "2"))

    def test_user_text_without_newline_then_metric(self):
        out, _, _ = run_script(
            'import sys, tug\nprint("epoch 1 ...", end="")\ntug.log("acc", 0.5)\n'
            'sys.stdout.write("after")\n'
        )
        self.assertEqual(out, b"epoch 1 ..." + metric("acc", "0.5") + b"after")
        self.assertEqual(out[len(b"epoch 1 ..."):][:1], b"\x1e")

    def test_ordering_with_buffered_output(self):
        # stdout is a pipe, so Python block-buffers it; the helper flushes before writing.
        out, _, _ = run_script(
            'import tug\nprint("x" * 100000)\ntug.log("m", 1, step=0)\nprint("done")\n'
        )
        self.assertEqual(out, b"x" * 100000 + b"\n" + metric("m", "1", "0") + b"done\n")

    def test_bool_is_one_or_zero(self):
        out, _, _ = run_script('import tug; tug.log("ok", True); tug.log("bad", False, step=7)')
        self.assertEqual(out, metric("ok", "1") + metric("bad", "0", "7"))

    def test_nan_and_infinities_are_strings(self):
        out, _, _ = run_script(
            'import tug\ntug.log("a", float("nan"))\ntug.log("b", float("inf"))\n'
            'tug.log("c", float("-inf"))\n'
        )
        self.assertEqual(
            out, metric("a", '"NaN"') + metric("b", '"Infinity"') + metric("c", '"-Infinity"')
        )

    def test_numeric_kinds(self):
        out, _, _ = run_script(
            'import tug, fractions, decimal\n'
            'tug.log("i", 10**20)\ntug.log("f", fractions.Fraction(1, 4))\n'
            'tug.log("d", decimal.Decimal("2.5"))\ntug.log("neg", -3, step=-1)\n'
        )
        self.assertEqual(
            out,
            metric("i", "100000000000000000000") + metric("f", "0.25") + metric("d", "2.5")
            + metric("neg", "-3", "-1"),
        )

    def test_non_ascii_name_is_escaped(self):
        out, _, _ = run_script('import tug; tug.log("genauigkeit-\\u00e4", 1)')
        self.assertEqual(out, metric("genauigkeit-\u00e4", "1"))
        self.assertIn(b"\\u00e4", out)

    def test_log_metrics(self):
        out, _, _ = run_script('import tug; tug.log_metrics({"a": 1, "b": 0.5}, step=2)')
        self.assertEqual(out, metric("a", "1", "2") + metric("b", "0.5", "2"))

    def test_log_metrics_checks_all_before_sending(self):
        out, err, rc = run_script(
            'import tug; tug.log_metrics({"a": 1, "b": "oops"})', check=False
        )
        self.assertNotEqual(rc, 0)
        self.assertEqual(out, b"")
        self.assertIn("TypeError", err)

    def test_params_and_tags(self):
        out, _, _ = run_script(
            'import tug\ntug.log_param("lr", 0.01)\n'
            'tug.log_params({"layers": [64, 32], "name": "resnet", "none": None})\n'
            'tug.set_tag("owner", "me")\ntug.set_tags({"n": 3})\n'
            'tug.log_params({})\n'
        )
        self.assertEqual(
            out,
            frame('{"k":"params","values":{"lr":"0.01"}}')
            + frame('{"k":"params","values":{"layers":"[64, 32]","name":"resnet","none":"None"}}')
            + frame('{"k":"tags","values":{"owner":"me"}}')
            + frame('{"k":"tags","values":{"n":"3"}}'),
        )

    def test_large_params_are_split(self):
        out, _, _ = run_script(
            'import tug\n'
            'tug.log_params(dict(("p%03d" % i, "v" * 100) for i in range(100)))\n'
        )
        lines = out.split(b"\n")[:-1]
        self.assertGreater(len(lines), 2)
        merged = {}
        for line in lines:
            self.assertTrue(line.startswith(PREFIX), line[:20])
            self.assertLessEqual(len(line) + 1, 3800)
            rec = json.loads(line[len(PREFIX):])
            self.assertEqual(rec["k"], "params")
            merged.update(rec["values"])
        self.assertEqual(list(merged), ["p%03d" % i for i in range(100)])
        self.assertEqual(set(merged.values()), {"v" * 100})
        self.assertEqual(FRAME_RE.sub(b"", out), b"")

    def test_record_limit_is_inclusive(self):
        # Empty tags record: 12 bytes of prefix + 24 of JSON + newline = 37; 3800 - 37 = 3763
        # bytes for '"t":"<value>"', so a 3757-character value fills a record exactly.
        out, _, _ = run_script('import tug; tug.set_tag("t", "x" * 3757)')
        self.assertEqual(len(out), 3800)
        self.assertEqual(out, frame('{"k":"tags","values":{"t":"%s"}}' % ("x" * 3757)))
        _, err, rc = run_script('import tug; tug.set_tag("t", "x" * 3758)', check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("ValueError", err)

    def test_split_fills_records(self):
        # Greedy split: as many items per record as fit, in order.
        out, _, _ = run_script(
            'import tug\n'
            'tug.set_tags(dict(("t%d" % i, "x" * 1000) for i in range(7)))\n'
        )
        lines = out.split(b"\n")[:-1]
        self.assertEqual([len(json.loads(l[len(PREFIX):])["values"]) for l in lines], [3, 3, 1])
        for line in lines:
            self.assertLessEqual(len(line) + 1, 3800)

    def test_too_long_metric_name(self):
        out, err, rc = run_script('import tug; tug.log("m" * 4000, 1)', check=False)
        self.assertNotEqual(rc, 0)
        self.assertEqual(out, b"")
        self.assertIn("ValueError", err)
        self.assertIn("too long", err)

    def test_too_long_single_param(self):
        _, err, rc = run_script('import tug; tug.log_param("p", "x" * 5000)', check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("ValueError", err)

    def test_non_numeric_metric_values(self):
        for value in ('"0.5"', "[1, 2]", "None", "{}", "1j", 'b"1"'):
            out, err, rc = run_script("import tug; tug.log('m', %s)" % value, check=False)
            self.assertNotEqual(rc, 0, value)
            self.assertEqual(out, b"", value)
            self.assertIn("TypeError: tug.log: metric 'm' must be a number", err, value)

    def test_bad_step_and_name(self):
        for call in ("tug.log('m', 1, step=1.5)", "tug.log('m', 1, step=True)",
                     "tug.log(3, 1)", "tug.log('', 1)"):
            out, err, rc = run_script("import tug; " + call, check=False)
            self.assertNotEqual(rc, 0, call)
            self.assertEqual(out, b"", call)

    def test_threads_never_interleave(self):
        out, _, _ = run_script(
            'import threading, tug\n'
            'def work(t):\n'
            '    for i in range(200):\n'
            '        tug.log("thread%d" % t, i, step=i)\n'
            'ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]\n'
            '[t.start() for t in ts]; [t.join() for t in ts]\n'
        )
        recs = records(out)
        self.assertEqual(len(recs), 800)
        self.assertEqual(FRAME_RE.sub(b"", out), b"")

    def test_child_process_logs_with_same_nonce(self):
        out, _, _ = run_script(
            'import subprocess, sys\n'
            'subprocess.run([sys.executable, "-c", "import tug; tug.log(\'child\', 1)"], check=True)\n'
        )
        self.assertEqual([r["name"] for r in records(out)], ["child"])

    def test_invalid_nonce_falls_back_to_offline(self):
        out, err, _ = run_script('import tug; tug.log("m", 1)', nonce="not a nonce\n")
        self.assertEqual(out, b"tug (offline): metric m = 1\n")
        self.assertIn("TUG_LOG_NONCE", err)

    def test_numpy_scalars(self):
        try:
            import numpy  # noqa: F401
        except ImportError:
            self.skipTest("numpy is not installed")
        out, _, _ = run_script(
            'import numpy as np, tug\n'
            'tug.log("a", np.float32(0.5)); tug.log("b", np.int64(3), step=np.int64(1))\n'
            'tug.log("c", np.bool_(True)); tug.log("d", np.array(2.0))\n'
        )
        self.assertEqual(
            out, metric("a", "0.5") + metric("b", "3", "1") + metric("c", "1") + metric("d", "2.0")
        )


class Offline(unittest.TestCase):
    def test_offline_lines(self):
        out, _, _ = run_script(
            'import tug\ntug.log("accuracy", 0.97, step=3)\ntug.log("loss", float("nan"))\n'
            'tug.log_params({"lr": 0.1})\ntug.set_tag("k", "v")\n',
            nonce=None,
        )
        self.assertEqual(
            out,
            b"tug (offline): metric accuracy = 0.97 (step 3)\n"
            b"tug (offline): metric loss = nan\n"
            b"tug (offline): param lr = 0.1\n"
            b"tug (offline): tag k = v\n",
        )
        self.assertNotIn(b"\x1e", out)

    def test_offline_still_checks_values(self):
        _, err, rc = run_script('import tug; tug.log("m", "x")', nonce=None, check=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("TypeError", err)

    def test_is_tracking(self):
        out, _, _ = run_script("import tug; print(tug.is_tracking())", nonce=None)
        self.assertEqual(out, b"False\n")
        out, _, _ = run_script("import tug; print(tug.is_tracking())")
        self.assertEqual(out, b"True\n")


class AzuremlV1(unittest.TestCase):
    def test_v1_script_runs_unchanged(self):
        out, _, _ = run_script(
            'from azureml.core import Run\n'
            'run = Run.get_context()\n'
            'run.log("accuracy", 0.9)\n'
            'run.log("accuracy", 0.95, description="better", step=4)\n'
        )
        self.assertEqual(out, metric("accuracy", "0.9") + metric("accuracy", "0.95", "4"))

    def test_run_module_path(self):
        out, _, _ = run_script(
            'from azureml.core.run import Run\nimport azureml.core\n'
            'assert azureml.core.Run is Run\n'
            'Run.get_context().log("x", True)\n'
        )
        self.assertEqual(out, metric("x", "1"))

    def test_log_list_row_table(self):
        out, _, _ = run_script(
            'from azureml.core import Run\n'
            'run = Run.get_context()\n'
            'run.log_list("losses", [0.5, 0.25])\n'
            'run.log_row("roc", fpr=0.0, tpr=0.1)\n'
            'run.log_row("roc", description="d", fpr=0.5, tpr=0.9)\n'
            'run.log_table("roc", {"fpr": [1.0], "tpr": [1.0]})\n'
            'print(sorted(run.get_metrics().items()))\n'
            'print(run.get_metrics("losses"))\n'
        )
        frames = (
            metric("losses", "0.5", "0") + metric("losses", "0.25", "1")
            + metric("roc.fpr", "0.0", "0") + metric("roc.tpr", "0.1", "0")
            + metric("roc.fpr", "0.5", "1") + metric("roc.tpr", "0.9", "1")
            + metric("roc.fpr", "1.0", "2") + metric("roc.tpr", "1.0", "2")
        )
        self.assertTrue(out.startswith(frames), out)
        self.assertEqual(
            out[len(frames):],
            b"[('losses', [0.5, 0.25]), ('roc.fpr', [0.0, 0.5, 1.0]), "
            b"('roc.tpr', [0.1, 0.9, 1.0])]\n{'losses': [0.5, 0.25]}\n",
        )

    def test_log_rejects_list_and_maps_text_to_tag(self):
        out, _, _ = run_script(
            'from azureml.core import Run\n'
            'run = Run.get_context()\n'
            'try:\n'
            '    run.log("m", [1, 2])\n'
            'except TypeError as e:\n'
            '    print("TypeError", "log_list" in str(e))\n'
            'run.log("model", "forest")\n'
        )
        self.assertEqual(
            out, b"TypeError True\n" + frame('{"k":"tags","values":{"model":"forest"}}')
        )

    def test_tags_properties(self):
        out, _, _ = run_script(
            'from azureml.core import Run\n'
            'run = Run.get_context()\n'
            'run.tag("quick")\n'
            'run.tag("owner", "me")\n'
            'run.set_tags({"a": 1})\n'
            'run.set_tags(["b"])\n'
            'run.add_properties({"p": 2})\n'
            'print(sorted(Run.get_context().get_tags().items()))\n'
            'print(run.get_properties())\n'
        )
        self.assertEqual(
            out,
            frame('{"k":"tags","values":{"quick":""}}')
            + frame('{"k":"tags","values":{"owner":"me"}}')
            + frame('{"k":"tags","values":{"a":"1"}}')
            + frame('{"k":"tags","values":{"b":""}}')
            + frame('{"k":"tags","values":{"p":"2"}}')
            + b"[('a', '1'), ('b', ''), ('owner', 'me'), ('p', '2'), ('quick', '')]\n"
            + b"{'p': '2'}\n",
        )

    def test_id_and_experiment(self):
        out, _, _ = run_script(
            'from azureml.core import Run\n'
            'run = Run.get_context()\n'
            'print(run.id, run.experiment.name)\n'
            'run.complete(); run.fail(); run.flush()\n',
            env={"AZUREML_RUN_ID": "run-42", "AZUREML_ARM_PROJECT_NAME": "exp1"},
        )
        self.assertEqual(out, b"run-42 exp1\n")
        out, _, _ = run_script(
            'from azureml.core import Run\nprint(Run.get_context().id)\n',
            env={"TUG_RUN_ID": "tug-7"},
        )
        self.assertEqual(out, b"tug-7\n")

    def test_upload_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "model.pkl"), "wb") as f:
                f.write(b"weights")
            out, _, _ = run_script(
                'from azureml.core import Run\n'
                'run = Run.get_context()\n'
                'print(run.upload_file("model.pkl", "model.pkl"))\n'
                'print(run.upload_file("outputs/sub/m.pkl", "model.pkl"))\n'
                'import io; print(run.upload_file("notes.txt", io.BytesIO(b"hi")))\n',
                cwd=tmp,
            )
            self.assertEqual(
                out, b"outputs/model.pkl\noutputs/sub/m.pkl\noutputs/notes.txt\n"
            )
            for rel, data in (("outputs/model.pkl", b"weights"),
                              ("outputs/sub/m.pkl", b"weights"), ("outputs/notes.txt", b"hi")):
                with open(os.path.join(tmp, rel), "rb") as f:
                    self.assertEqual(f.read(), data)

    def test_unsupported_names_the_method(self):
        out, _, _ = run_script(
            'from azureml.core import Run, Workspace\n'
            'run = Run.get_context()\n'
            'for call in (lambda: run.log_image("x", "p.png"), lambda: run.register_model("m"),\n'
            '             lambda: run.parent, lambda: run.no_such_method(),\n'
            '             lambda: Workspace.from_config(), lambda: Run(None, "id")):\n'
            '    try:\n'
            '        call()\n'
            '    except NotImplementedError as e:\n'
            '        print(str(e).split(" is not")[0])\n'
            'print(hasattr(run, "parent"))\n'
        )
        self.assertEqual(
            out,
            b"Run.log_image\nRun.register_model\nRun.parent\nRun.no_such_method\n"
            b"azureml.core.Workspace.from_config\n"
            b"Run(experiment, run_id) (constructing a Run for another run)\nFalse\n",
        )

    def test_offline_run(self):
        out, _, _ = run_script(
            'from azureml.core import Run\n'
            'run = Run.get_context()\n'
            'print(run.id.startswith("OfflineRun_"), run.experiment.name)\n'
            'run.log("accuracy", 0.5)\n'
            'try:\n'
            '    Run.get_context(allow_offline=False)\n'
            'except RuntimeError:\n'
            '    print("no context")\n',
            nonce=None,
        )
        self.assertEqual(
            out, b"True offline\ntug (offline): metric accuracy = 0.5\nno context\n"
        )


class Compatibility(unittest.TestCase):
    def test_sources_parse_as_python_38(self):
        for root, _, files in os.walk(PYDIR):
            for name in files:
                if name.endswith(".py") and "tests" not in root:
                    path = os.path.join(root, name)
                    with open(path) as f:
                        ast.parse(f.read(), path, feature_version=(3, 8))


if __name__ == "__main__":
    unittest.main()

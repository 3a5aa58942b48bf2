"""Test-side stand-in for tug-infsrv's front: starts tug_worker.py and talks PROTOCOL.md to it.

The worker is started the way the front starts it: `PYTHON -u tug_worker.py`, stdin
/dev/null, one end of a socketpair as fd 3 (`TUG_WORKER_FD=3`), the entry script and app
root in the environment. Used by test_worker.py and bench_worker.py (stdlib only).
"""

import json
import os
import socket
import struct
import subprocess
import sys

SERVING_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(SERVING_DIR, "tug_worker.py")
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")

READY, INIT_FAILED, REQUEST, RESPONSE = 1, 2, 3, 4


class Worker:
    """One worker process and the front's end of its socket."""

    def __init__(self, script, env=None, python=None, python_args=(), capture=True, cwd=None):
        script = script if os.path.isabs(script) else os.path.join(SCRIPTS, script)
        ours, theirs = socket.socketpair()
        full_env = dict(os.environ)
        for key in ("AML_APP_ROOT", "AZUREML_SOURCE_DIRECTORY", "SCORING_TIMEOUT_MS", "SERVICE_NAME",
                    "SERVICE_VERSION", "SERVICE_PATH_PREFIX", "AZUREML_MODEL_DIR"):
            full_env.pop(key, None)
        full_env.update({"TUG_WORKER_FD": "3", "TUG_WORKER_ID": "0", "AZUREML_ENTRY_SCRIPT": script,
                         "AML_APP_ROOT": os.path.dirname(script), "PYTHONIOENCODING": "utf-8",
                         # No __pycache__ next to the worker: the front embeds that folder.
                         "PYTHONDONTWRITEBYTECODE": "1"})
        full_env.update(env or {})
        fd = theirs.fileno()
        out = subprocess.PIPE if capture else None
        # As the front does: dup the socket to fd 3 in the child (dup2 clears close-on-exec).
        self.proc = subprocess.Popen(
            [python or sys.executable] + list(python_args) + ["-u", WORKER],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=full_env, cwd=cwd,
            close_fds=False, preexec_fn=lambda: os.dup2(fd, 3))
        theirs.close()
        self.sock = ours
        self.sock.settimeout(60)
        self.next_id = 0
        self.kind, payload = self.recv_frame()
        self.hello = json.loads(payload)

    def _recv_exact(self, n):
        chunks, got = [], 0
        while got < n:
            chunk = self.sock.recv(n - got)
            if not chunk:
                raise EOFError("worker closed the socket")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def recv_frame(self):
        size, kind = struct.unpack("<IB", self._recv_exact(5))
        return kind, self._recv_exact(size - 1)

    def send_request(self, meta, body=b""):
        raw = json.dumps(meta).encode()
        self.sock.sendall(struct.pack("<IBI", 5 + len(raw) + len(body), REQUEST, len(raw)) + raw + body)

    def request(self, method="POST", body=b"", query="", content_type=None, headers=None, **extra):
        """Send one REQUEST, return (meta, body) of the RESPONSE."""
        if isinstance(body, str):
            body = body.encode()
        self.next_id += 1
        meta = {"id": self.next_id, "method": method, "path": "/score", "query": query,
                "content_type": content_type}
        if self.hello.get("wants_headers"):
            meta["headers"] = headers if headers is not None else (
                [["host", "localhost:5001"]] + ([["content-type", content_type]] if content_type else []))
        meta.update(extra)
        self.send_request(meta, body)
        kind, payload = self.recv_frame()
        assert kind == RESPONSE, kind
        meta_len, = struct.unpack_from("<I", payload)
        out = json.loads(payload[4:4 + meta_len])
        assert out["id"] == self.next_id, (out, self.next_id)
        return out, payload[4 + meta_len:]

    def close(self, timeout=10):
        """Close the socket (the worker then exits 0); return (exit code, stdout, stderr)."""
        self.sock.close()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")

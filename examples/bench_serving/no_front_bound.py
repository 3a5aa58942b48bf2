#!/usr/bin/env python3
"""An upper bound for any multi-process server of a scoring script: no front at all.

usage: no_front_bound.py SCRIPT MODEL_DIR PORT [PROCS]   (PROCS: 2)

PROCS processes each import SCRIPT, run init(), and serve HTTP/1.1 keep-alive themselves on
one SO_REUSEPORT socket on 127.0.0.1:PORT (epoll, ~30 lines): read a request, call run(body),
write the response. Nothing else: no key check, no limits, no queue, no metrics, no request
ids, no error mapping, no worker replacement. It is not a server anyone should run; it is what
is left when everything the issue's shape adds (a front process and a hop to the worker) is
taken away, so `paired_ceiling.py` against it shows how close to the script's own ceiling
a server can come on this machine at all.
"""
import importlib.util
import json
import os
import selectors
import socket
import sys


def load(script, model_dir):
    os.environ["AZUREML_MODEL_DIR"] = model_dir
    spec = importlib.util.spec_from_file_location("scoring", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.init()
    return mod.run


def responses(buf, run):
    """The responses to the complete requests at the front of buf, and what is left of it."""
    out = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return out, buf
        head = buf[:end].lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15:].split(b"\r\n", 1)[0]) if at >= 0 else 0
        if len(buf) < end + 4 + length:
            return out, buf
        body, buf = buf[end + 4:end + 4 + length], buf[end + 4 + length:]
        reply = b"Healthy" if head.startswith(b"get") else json.dumps(run(body.decode())).encode()
        out.append(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                   % (len(reply), reply))


def serve(run, port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    sel = selectors.EpollSelector()
    sel.register(listener, selectors.EVENT_READ)
    pending = {}
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending[conn] = b""
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(sock)
                sock.close()
                del pending[sock]
                continue
            out, pending[sock] = responses(pending[sock] + data, run)
            if out:
                try:
                    sock.sendall(b"".join(out))
                except OSError:
                    pass


def main():
    script, model_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    procs = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    for _ in range(procs - 1):
        if os.fork() == 0:
            break
    serve(load(script, model_dir), port)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What one cross-CPU wake-up costs a scoring script on this machine.

usage: wake_cost.py SCRIPT MODEL_DIR BODY [--calls 20000]

A server that hands requests between processes must wake a process now and then: a worker's
answer wakes the front, the front's reply wakes the client. This measures what that does to
the CPU cost of `run()` itself, with nothing else involved. One process, pinned to CPU 0,
calls run(body) in a loop:

  quiet:  run() only (what ceiling_probe.py measures);
  wake:   before each call, send 400 bytes to a child process pinned to CPU 1 that sleeps
          in recv() (one wake-up of a sleeping process on the other CPU, as a worker's
          answer is for a front that waits in epoll).

Printed per mode: CPU µs of run() per call, and CPU µs of the send. Rounds alternate, so
drift in the VM's speed hits both alike. On the 2-vCPU Firecracker VM this project is built
on, the send costs ~14 µs and makes the next run() of digits.py ~12-18 µs slower (~120 ->
~135 µs). No server can remove that from its workers' run() calls while its front, its
workers and the load generator share two CPUs.
"""
import argparse
import os
import socket
import time

from ceiling_probe import load  # this folder is on sys.path when run as a script


def measure(mod, body, sock, wake, calls):
    run_cpu = send_cpu = 0.0
    clock = time.process_time
    payload = b"x" * 400
    for _ in range(calls):
        if wake:
            t = clock()
            sock.send(payload)
            send_cpu += clock() - t
        t = clock()
        mod.run(body)
        run_cpu += clock() - t
    return run_cpu / calls * 1e6, send_cpu / calls * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("script")
    ap.add_argument("model_dir")
    ap.add_argument("body")
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("wake_cost.py needs two CPUs")
    cpu0, cpu1 = sorted(os.sched_getaffinity(0))[:2]
    body = open(a.body).read()
    mod = load(a.script, a.model_dir, body)
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:
        os.sched_setaffinity(0, {cpu1})
        ours.close()
        while theirs.recv(65536):
            pass
        os._exit(0)
    theirs.close()
    os.sched_setaffinity(0, {cpu0})
    print("| round | mode | run() CPU µs/call | send CPU µs/call |")
    print("|--:|---|--:|--:|")
    for r in range(1, a.rounds + 1):
        for wake in (False, True):
            run_us, send_us = measure(mod, body, ours, wake, a.calls)
            mode = "wake a sleeper on the other CPU" if wake else "quiet"
            print(f"| {r} | {mode} | {run_us:.1f} | {send_us:.1f} |")
    ours.close()
    os.waitpid(child, 0)


if __name__ == "__main__":
    main()

"""Cost of the pipeline's checks: the offline policy run and the smoke command.

    venv/bin/python benchmarks/policy.py [--repeat 200]

- policy: resources per stack, and the time to evaluate every rule on the recorded plan (median
  of --repeat runs, in-process, after one plan per stack), against the plan itself;
- plan --policy as CI runs it: wall time and peak RSS of the subprocess, per stack;
- smoke: time for one healthy round of the three checks against a local HTTP server.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from components.commands import policy_offline, smoke  # noqa: E402
from components.commands.plan import run_plan  # noqa: E402

REVISION = "0123456789abcdef0123456789abcdef01234567"


def policy_figures(repeat: int) -> None:
    os.environ["SOURCE_REVISION"] = REVISION  # the program reads it from the environment
    for stack in ("staging", "production"):
        started = time.perf_counter()
        plan, _ = run_plan(PROJECT_DIR, stack)
        plan_seconds = time.perf_counter() - started
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            violations = policy_offline.check(plan.resources, PROJECT_DIR)
            timings.append(time.perf_counter() - started)
        print(
            f"policy {stack:<10} {len(plan.resources):3d} resources  rules {statistics.median(timings) * 1000:6.2f} ms"
            f"  (plan in-process {plan_seconds:5.2f} s)  violations {len(violations)}"
        )


def cli_figures() -> None:
    for stack in ("staging", "production"):
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "components", "plan", "--stack", stack, "--policy"],
            cwd=PROJECT_DIR, env={**os.environ, "SOURCE_REVISION": REVISION},
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)  # reap it ourselves to get its own peak RSS
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        rss = usage.ru_maxrss / 1024
        last = out.strip().splitlines()[-1] if out.strip() else ""
        print(f"plan --policy {stack:<10} wall {wall:5.2f} s RSS {rss:4.0f} MiB exit {process.returncode} [{last}]")


class _Healthy(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = (
            json.dumps({"service": "hello", "version": "1.0.0", "revision": REVISION}).encode()
            if self.path == "/"
            else b"ok"
        )
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def smoke_figures(repeat: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        results = smoke.run_checks(url, {}, 5.0, "1.0.0", REVISION)
        timings.append(time.perf_counter() - started)
        assert all(r.ok for r in results)
    server.shutdown()
    print(f"smoke one healthy round (3 requests, loopback): {statistics.median(timings) * 1000:.2f} ms median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    policy_figures(args.repeat)
    cli_figures()
    smoke_figures(args.repeat)


if __name__ == "__main__":
    main()

"""How long deploy verification takes over a 5-minute window, and how many samples it needs to decide.

Runs two releases of the sample app from source (``app/server.py``: the previous one, and a new one
with the fault you pick), scraped by Debian's ``prometheus`` every ``--scrape`` seconds, sends each
``--rate`` requests a second over loopback for one window before the "rollout" (the previous release)
and one window after it (the new one), then times ``verify-deploy``'s judgement (the same functions,
in process) and prints:

- the wall time of the verification and the number of Prometheus ``query_range`` requests;
- the requests each window held, and the verdict;
- the smallest number of requests per window at which each test against the previous release
  decides, for a 20 % error release (two-proportion z-test) and a 3x slower one (Mann-Whitney U on
  the histogram buckets), at the default significance, beside the ``verifyMinRequests`` floor.

Figures only, no assertion. ``venv/bin/python benchmarks/verify.py`` takes two windows plus about
10 s (default window 300 s: about 10 minutes); ``--window 60`` for a quick look.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from components.commands import verify  # noqa: E402
from components.config.settings import VerifySettings  # noqa: E402

SERVER = PROJECT / "app" / "server.py"
PREVIOUS, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64
FAULTS = {"none": {}, "errors": {"FAULT_ERROR_RATIO": "0.2"}, "slow": {"FAULT_DELAY_SECONDS": "0.015"}}
BASE_DELAY = {"none": "0", "errors": "0", "slow": "0.005"}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _app(digest: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    full = {"HOST": "127.0.0.1", "PORT": "0", "SERVICE_NAME": "hello", "IMAGE_REF": f"local/hello@{digest}", **env}
    proc = subprocess.Popen([sys.executable, str(SERVER)], env=full, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    listening = json.loads(proc.stdout.readline())
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep draining the request log
    return proc, f"127.0.0.1:{listening['port']}"


def _traffic(target: str, seconds: float, rate: float) -> int:
    sent, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        if sent > elapsed * rate:
            time.sleep(min(0.01, 1 / rate))
            continue
        try:
            with urllib.request.urlopen(f"http://{target}/", timeout=5) as response:
                response.read()
        except urllib.error.HTTPError as error:
            error.read()
        sent += 1
    return sent


def samples_to_decide(settings: VerifySettings) -> dict[str, int | None]:
    """Smallest equal window size at which each comparison breaches (p below the level)."""
    found: dict[str, int | None] = {"errors 20% vs 0.1%": None, "latency 3x (buckets)": None}
    for n in range(2, 100_000):
        if found["errors 20% vs 0.1%"] is None:
            _, p = verify.two_proportion_z(round(0.2 * n), n, round(0.001 * n), n)
            if p < settings.significance:
                found["errors 20% vs 0.1%"] = n
        if found["latency 3x (buckets)"] is None:
            # The app's buckets: the previous release in (0.005, 0.01], the new one in (0.01, 0.025].
            before, after = [0, n, 0, 0], [0, 0, n, 0]
            if verify.mann_whitney_binned(after, before)[2] < settings.significance:
                found["latency 3x (buckets)"] = n
        if all(v is not None for v in found.values()):
            break
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=300, help="seconds (default 300)")
    parser.add_argument("--interval", type=int, default=60, help="query_range step (default 60)")
    parser.add_argument("--scrape", type=int, default=5, help="scrape interval in seconds (default 5)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests a second per release (default 10)")
    parser.add_argument("--fault", choices=sorted(FAULTS), default="errors", help="what the new release does")
    args = parser.parse_args()
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("prometheus is missing: apt-get install prometheus (scripts/install-system-deps.sh)")
        return 1
    settings = VerifySettings(window_seconds=args.window, interval_seconds=args.interval)
    previous, previous_target = _app(PREVIOUS, {"FAULT_DELAY_SECONDS": BASE_DELAY[args.fault]})
    new, new_target = _app(NEW, FAULTS[args.fault])
    work = Path(tempfile.mkdtemp(prefix="verify-bench-"))
    port = _port()
    config = (
        f"global: {{scrape_interval: {args.scrape}s}}\n"
        "scrape_configs:\n  - job_name: hello\n    static_configs:\n"
        f"      - targets: ['{previous_target}', '{new_target}']\n        labels: {{namespace: hello-staging}}\n"
    )
    (work / "prometheus.yml").write_text(config)
    server = subprocess.Popen(
        [prometheus, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(2 * args.scrape + 2)
        start = time.time()
        print(f"window {args.window} s, step {args.interval} s, scrape {args.scrape} s, {args.rate:g} req/s, "
              f"new release: {args.fault}", flush=True)  # fmt: skip
        before = _traffic(previous_target, args.window - 1, args.rate)
        since = start + args.window
        time.sleep(max(0.0, since - time.time()))
        after = _traffic(new_target, args.window - 1, args.rate)
        time.sleep(max(0.0, since + args.window - time.time()) + 2 * args.scrape)
        prom = verify.Prometheus(f"http://127.0.0.1:{port}")
        target = verify.Target(namespace="hello-staging", job="hello")
        began = time.perf_counter()
        verdict = verify.verify_release(
            prom, target, digest=NEW, baseline_digest=PREVIOUS, since=since, slo_availability=99.5,
            latency_p95_seconds=0.5, verify=settings,
        )  # fmt: skip
        took = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=30)
        for proc in (previous, new):
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"sent: {before} requests before the rollout, {after} after")
    counted = (
        verdict.candidate.requests if verdict.candidate else 0,
        verdict.baseline.requests if verdict.baseline else 0,
    )
    print(f"Prometheus counted: {counted[1]} before, {counted[0]} after")
    print(f"verification: {took * 1000:.0f} ms, {verdict.queries} query_range requests, verdict {verdict.status}")
    for reason in verdict.reasons:
        print(f"  {reason}")
    print(f"requests per window each test needs to decide (p < {settings.significance:g}, one-sided):")
    for name, n in samples_to_decide(settings).items():
        print(f"  {name}: {n}")
    print(f"  floor (verifyMinRequests): {settings.min_requests}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

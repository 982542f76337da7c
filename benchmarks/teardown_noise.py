"""Run the offline plan N times and count the runs whose stderr has teardown noise.

``python benchmarks/teardown_noise.py [--runs 100] [--jobs 2] [--project-dir .] [--stack staging]``

Noise is anything on stderr past the plan's own lines, typically "Exception ignored in
BaseEventLoop.__del__ … ValueError: Invalid file descriptor: -1" from an event loop collected at
interpreter shutdown. Prints the count and one example; figures, not a test (it takes minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NOISE = ("Exception ignored", "Traceback", "Invalid file descriptor")


def one_run(project_dir: Path, stack: str) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(project_dir), "SOURCE_REVISION": "0" * 40}
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", stack, "--project-dir", str(project_dir)],
        check=False, cwd=project_dir, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    return result.returncode, result.stderr


PROBE = """
import asyncio, atexit, gc, sys
from components.commands import plan
def count():
    gc.collect()
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and not o.is_closed()]
    sys.__stderr__.write(f"UNCLOSED {len(loops)}\\n")
atexit.register(count)
sys.exit(plan.main(sys.argv[1:]))
"""


def unclosed_loops(project_dir: Path, stack: str) -> str:
    """Event loops still open when the interpreter starts to exit: each may print the noise when collected."""
    env = {**os.environ, "PYTHONPATH": str(project_dir), "SOURCE_REVISION": "0" * 40}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--stack", stack, "--project-dir", str(project_dir)],
        check=False, cwd=project_dir, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    found = [line.split()[1] for line in result.stderr.splitlines() if line.startswith("UNCLOSED ")]
    return found[0] if found else f"unknown (exit {result.returncode})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--stack", default="staging")
    parser.add_argument("--project-dir", type=Path, default=Path(__file__).resolve().parent.parent)
    args = parser.parse_args()
    started = time.monotonic()
    results: list[tuple[int, str]] = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for result in pool.map(lambda _: one_run(args.project_dir, args.stack), range(args.runs)):
            results.append(result)
            if len(results) % 10 == 0:  # partial figures, for runs cut short
                noisy_so_far = sum(any(marker in stderr for marker in NOISE) for _, stderr in results)
                print(f"  {len(results)} runs: {noisy_so_far} noisy", flush=True)
    print(f"unclosed event loops at exit of one plan: {unclosed_loops(args.project_dir, args.stack)}")
    noisy = [stderr for code, stderr in results if any(marker in stderr for marker in NOISE)]
    failed = sum(1 for code, _ in results if code != 0)
    print(f"{args.runs} plans of {args.stack} in {time.monotonic() - started:.0f} s: "
          f"{len(noisy)} with teardown noise on stderr, {failed} exited non-zero")  # fmt: skip
    if noisy:
        print("example:\n" + noisy[0][-1500:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

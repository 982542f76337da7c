"""Figures for the hostile stack-file corpus: each case through the real command line.

``python benchmarks/hostile_stack_files.py [--jobs 2] [--all | --only NAME ...]``

Runs ``python -m components plan`` once per case of tests/unit/hostile_corpus.py in its own
process and prints, per class and overall: cases, accepted/rejected, tracebacks, accepted that
must be rejected, rejections not naming the key or file, and the slowest and largest case
(wall time; peak resident memory of the process from wait4). Targets: each case under 10 s and
300 MiB. By default a sample: every case that stresses the reader (size, depth, aliases) or runs
the whole program (accepted), and the first of each other class; ``--all`` runs all of them.
Figures, not a test: the test (tests/unit/test_hostile_stack_files.py) runs every case in-process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from hostile_corpus import Case, Outcome, corpus, materialise, verdict  # noqa: E402


@dataclass
class Figure:
    case: Case
    outcome: Outcome
    seconds: float
    cpu_seconds: float
    """User + system CPU time of the process: the wall time on a busy machine says more about the machine."""
    peak_mib: float
    problem: str | None


def run_case(case: Case, root: Path) -> Figure:
    project = materialise(case, root)
    env = {k: v for k, v in os.environ.items() if k not in ("SOURCE_REVISION", "GITHUB_SHA")}
    env.update(case.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryFile() as output:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "components", "plan", "--stack", case.stack, "--project-dir", str(project)],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    code = process.returncode if process.returncode in (0, 2) else -1
    outcome = Outcome(code, text)
    cpu = usage.ru_utime + usage.ru_stime
    return Figure(case, outcome, seconds, cpu, usage.ru_maxrss / 1024, verdict(case, outcome))


HEAVY = ("alias", "deep", "oversized", "10mb", "binary", "5000")


def sample(cases: list[Case]) -> list[Case]:
    """The cases most likely to cost time or memory, and one of every other class."""
    chosen = [c for c in cases if c.expect == "accept" or any(h in c.name for h in HEAVY)]
    for kind in dict.fromkeys(c.kind for c in cases):
        first = next(c for c in cases if c.kind == kind and c.expect == "reject")
        if first not in chosen:
            chosen.append(first)
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="case names")
    parser.add_argument("--all", action="store_true", help="every case, not the sample")
    args = parser.parse_args()
    cases = [c for c in corpus() if c.name in args.only] if args.only else corpus()
    if not args.all and not args.only:
        cases = sample(cases)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.jobs) as pool:
        figures = list(pool.map(lambda case: run_case(case, Path(tmp)), cases))
    by_kind: dict[str, list[Figure]] = defaultdict(list)
    for figure in figures:
        by_kind[figure.case.kind].append(figure)
    print(f"{'class':<12} {'cases':>5} {'rejected':>8} {'accepted':>8} {'findings':>8} {'max s':>6} {'max cpu s':>9} "
          f"{'max MiB':>8}")  # fmt: skip
    for kind, group in [*by_kind.items(), ("all", figures)]:
        print(f"{kind:<12} {len(group):>5} {sum(f.outcome.code == 2 for f in group):>8} "
              f"{sum(f.outcome.code == 0 for f in group):>8} {sum(f.problem is not None for f in group):>8} "
              f"{max(f.seconds for f in group):>6.1f} {max(f.cpu_seconds for f in group):>9.1f} "
              f"{max(f.peak_mib for f in group):>8.0f}")  # fmt: skip
    tracebacks = sum(f.outcome.code == -1 or "Traceback" in f.outcome.output for f in figures)
    wrongly_accepted = sum(f.case.expect == "reject" and f.outcome.code == 0 for f in figures)
    unnamed = sum(f.problem is not None and f.problem.startswith("the output does not name") for f in figures)
    noisy = sum("Exception ignored" in f.outcome.output for f in figures)
    slowest = max(figures, key=lambda f: f.cpu_seconds)
    largest = max(figures, key=lambda f: f.peak_mib)
    print(f"tracebacks: {tracebacks}; accepted that must be rejected: {wrongly_accepted}; "
          f"rejections not naming the key or file: {unnamed}; teardown noise: {noisy}")  # fmt: skip
    print(f"slowest: {slowest.case.name} {slowest.cpu_seconds:.1f} s of CPU ({slowest.seconds:.1f} s wall); "
          f"largest: {largest.case.name} {largest.peak_mib:.0f} MiB")  # fmt: skip
    over = [f.case.name for f in figures if f.cpu_seconds >= 10 or f.peak_mib >= 300]
    load = os.getloadavg()[0]
    print(f"over 10 s of CPU or 300 MiB: {over or 'none'}; load average {load:.1f} on {os.cpu_count()} CPUs")
    for figure in figures:
        if figure.problem:
            print(f"FINDING {figure.case.name}: {figure.problem}")
    return 1 if any(f.problem for f in figures) else 0


if __name__ == "__main__":
    raise SystemExit(main())

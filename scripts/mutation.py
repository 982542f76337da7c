"""Mutation testing (mutmut 3) of chosen modules against their unit tests; prints the score per module.

``python scripts/mutation.py [--max-children N] [--sample N] [--survivors] [MODULE ...]``  (``make mutation``)

Each module in :data:`MODULES` is mutated in a scratch copy of the project (mutmut writes its
``mutants/`` tree and cache there, never in the work tree) with only the tests listed for it, so
the score says how well *those* tests pin the module. Not part of ``make test``: it takes minutes
(tens of minutes for settings.py on two busy cores: ``--sample N`` tests a seeded random sample
of N mutants and prints the estimate with its 95% interval).
mutmut's configuration keys (``source_paths``, ``only_mutate``, ``pytest_add_cli_args_test_selection``)
are those of mutmut 3's ``[tool.mutmut]`` table (https://mutmut.readthedocs.io/, mutmut/configuration.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MODULES: dict[str, list[str]] = {
    "components/settings.py": ["tests/unit/test_settings.py"],
    # Add a module and the unit tests that should pin it, e.g.:
    # "components/registry.py": ["tests/unit/test_registry.py"],
    # "components/rules.py": ["tests/unit/test_monitoring.py"],
}
"""Module → the unit tests it is mutated against. The one place to add a module."""

COPIED = ("components", "tests", "policy", "app", "docs", "__main__.py", "Pulumi.yaml", "Pulumi.staging.yaml",
          "Pulumi.production.yaml", "pyproject.toml")  # fmt: skip
KILLED = ("killed", "timeout", "segfault", "suspicious")
"""mutmut statuses that count as a kill (a timeout or crash is a test noticing the mutant)."""


def scratch_project(module: str, tests: list[str]) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="mutation-"))
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, scratch / name, ignore=shutil.ignore_patterns("__pycache__", "mutants"))
        elif source.exists():
            shutil.copy(source, scratch / name)
    quoted = ", ".join(f'"{t}"' for t in tests)
    with (scratch / "pyproject.toml").open("a") as pyproject:
        pyproject.write(
            f'\n[tool.mutmut]\nsource_paths = ["components"]\nonly_mutate = ["{module}"]\n'
            f"pytest_add_cli_args_test_selection = [{quoted}]\n"
            'pytest_add_cli_args = ["-p", "no:cacheprovider"]\n'
            # The tests read the stack files and the program from the project directory (mutants/ in a run).
            f"also_copy = [{', '.join(repr(n).replace(chr(39), chr(34)) for n in COPIED if n != 'pyproject.toml')}]\n"
        )
    return scratch


def statuses(scratch: Path, mutmut: str) -> dict[str, str]:
    listed = subprocess.run([mutmut, "results", "--all", "true"], cwd=scratch, capture_output=True, text=True,
                            check=False)  # fmt: skip
    found: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        match = re.match(r"\s*(\S+__mutmut_\d+): (\w[\w ]*)", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def all_mutants(scratch: Path, module: str) -> list[str]:
    """Every mutant name of ``module``, from the meta file mutmut writes when it generates them."""
    meta = scratch / "mutants" / f"{module}.meta"
    return sorted(json.loads(meta.read_text())["exit_code_by_key"])


def run_mutmut(scratch: Path, mutmut: str, max_children: int, names: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([mutmut, "run", "--max-children", str(max_children), *names], cwd=scratch,
                          capture_output=True, text=True, check=False)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"default: {', '.join(MODULES)}")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    parser.add_argument("--sample", type=int, default=0, help="test only N mutants drawn at random (seeded)")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    mutmut = str(Path(sys.executable).parent / "mutmut")
    for module in args.modules or list(MODULES):
        scratch = scratch_project(module, MODULES[module])
        started = time.monotonic()
        if args.sample:
            # One mutant first: mutmut generates them all and collects its stats; then the sample.
            stem = module.removesuffix(".py").replace("/", ".")
            run = run_mutmut(scratch, mutmut, args.max_children, [f"{stem}.*__mutmut_1"])
            names = all_mutants(scratch, module)
            draw = random.Random(args.seed)  # noqa: S311 - a reproducible sample, not a secret
            chosen = sorted(draw.sample(names, min(args.sample, len(names))))
            run = run_mutmut(scratch, mutmut, args.max_children, chosen)
            print(f"{module}: a sample of {len(chosen)} of {len(names)} mutants (seed {args.seed})")
        else:
            run = run_mutmut(scratch, mutmut, args.max_children, [])
        seconds = time.monotonic() - started
        found = {k: v for k, v in statuses(scratch, mutmut).items() if v != "not checked"}
        counts = Counter(found.values())
        killed = sum(counts[s] for s in KILLED)
        score = 100 * killed / len(found) if found else 0.0
        print(f"{module}: {score:.1f}% ({killed} of {len(found)} mutants killed; {dict(counts)}) in {seconds:.0f} s")
        if args.sample and found:
            margin = 196 * math.sqrt(score / 100 * (1 - score / 100) / len(found))
            high = min(100.0, score + margin)
            print(f"  95% interval of the whole module's score: {score - margin:.1f}% to {high:.1f}%")
        if not found:
            print(run.stdout[-3000:], run.stderr[-3000:])
        for name, status in sorted(found.items()):
            if status not in KILLED:
                print(f"  {status}: {name}")
                if args.survivors:
                    diff = subprocess.run([mutmut, "show", name], cwd=scratch, capture_output=True, text=True,
                                          check=False)  # fmt: skip
                    print("    " + diff.stdout.strip().replace("\n", "\n    "))
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Stack files as hostile input: a generated corpus through ``plan`` (tests/unit/hostile_corpus.py).

A fork's pull request reaches the offline plan in CI. Every case must end in exit 2 naming the key
(or the file, for file-level problems) or, for the valid variants, in a plan; none may crash, print
a secret value, or report a stand-in as an error. Time and memory per case are figures printed by
benchmarks/hostile_stack_files.py, not asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hostile_corpus import PROJECT_DIR, Case, corpus, materialise, run_in_process, verdict

CASES = corpus()


def test_the_corpus_is_large_and_covers_every_class() -> None:
    kinds = Counter(case.kind for case in CASES)
    assert len(CASES) >= 100, len(CASES)
    assert set(kinds) == {"file", "number", "quantity", "kubeContext", "namespace", "secret", "stand-in",
                          "hostname", "type"}  # fmt: skip
    assert sum(1 for c in CASES if c.expect == "accept") >= 10, "valid variants pin the accepting side too"
    assert all(c.name.replace("_", "").isalnum() for c in CASES), "plain ids: mutmut selects tests by node id"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_plan_handles_the_case(case: Case, tmp_path: Path) -> None:
    outcome = run_in_process(case, materialise(case, tmp_path))
    problem = verdict(case, outcome)
    assert problem is None, f"{case.name} ({case.kind}): {problem}\n{outcome.output[-3000:]}"


SUBPROCESS_SAMPLE = ("binary_file", "alias_bomb_in_hostnames", "deep_brackets", "slo_22_nines",
                     "misspelt_namespace_access", "top_level_list")  # fmt: skip


@pytest.mark.parametrize("name", SUBPROCESS_SAMPLE)
def test_the_command_exits_2_without_a_traceback(name: str, tmp_path: Path) -> None:
    """The real command line, for exit codes and stderr: one line per problem, no traceback."""
    case = next(c for c in CASES if c.name == name)
    project = materialise(case, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", case.stack, "--project-dir", str(project)],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR), **case.environ},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.startswith(f"error: stack {case.stack}: 1 invalid setting(s):\n"), result.stderr[-2000:]
    assert all(n in result.stderr for n in case.names), result.stderr

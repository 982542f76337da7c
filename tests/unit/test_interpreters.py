"""Tests start only this run's interpreter: the guard in tests/conftest.py and the venv stand-in.

A fresh clone whose base ``python3`` lacks pulumi once failed two workflow tests: their
``venv/bin/python`` was a symlink to ``sys.executable``, and CPython looks for ``pyvenv.cfg``
beside the link without resolving it (cpython ``Modules/getpath.py``: "pyvenv.cfg ... in the
directory of the executable or its parent", checked before ``realpath``), so the link ran the
base interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Check = Callable[..., "str | None"]
IN_VENV = Path(sys.prefix).resolve() != Path(sys.base_prefix).resolve()


def _old_stand_in(directory: Path) -> Path:
    """What the workflow tests used to build: a link to the interpreter binary, not to its venv."""
    (directory / "venv" / "bin").mkdir(parents=True)
    python = directory / "venv" / "bin" / "python"
    python.symlink_to(sys.executable)
    return python


def test_the_stand_in_runs_this_interpreter_with_its_packages(
    tmp_path: Path, venv_stand_in: Callable[[Path], Path]
) -> None:
    python = venv_stand_in(tmp_path)
    probe = "import sys, pulumi, yaml; print(sys.prefix)"
    out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert Path(out.stdout.strip()).resolve() == Path(sys.prefix).resolve()


@pytest.mark.skipif(not IN_VENV, reason="outside a venv a link to the binary is this interpreter")
def test_a_link_to_the_binary_runs_the_base_interpreter(tmp_path: Path) -> None:
    """The premise of the guard, checked against the real interpreter (not only our emulation)."""
    python = _old_stand_in(tmp_path)
    probe = "import sys; print(sys.prefix)"
    out = subprocess.run(
        ["env", str(python), "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )  # via env: the guard would (rightly) refuse to start it directly
    assert Path(out.stdout.strip()).resolve() == Path(sys.base_prefix).resolve()


@pytest.mark.skipif(not IN_VENV, reason="outside a venv a link to the binary is this interpreter")
def test_guard_fails_a_test_that_starts_a_linked_binary(tmp_path: Path) -> None:
    python = _old_stand_in(tmp_path)
    with pytest.raises(AssertionError, match="not this test run's"):
        subprocess.run([str(python), "-c", "pass"], check=False)


@pytest.mark.skipif(not IN_VENV, reason="outside a venv a link to the binary is this interpreter")
def test_guard_fails_a_workflow_step_that_runs_a_linked_binary(tmp_path: Path) -> None:
    _old_stand_in(tmp_path)
    script = "set -e\nstage=$(venv/bin/python -c 'print(1)')\n"
    with pytest.raises(AssertionError, match=r"venv/bin/python"):
        subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=tmp_path, check=False)


def test_guard_fails_a_bare_python3_that_is_not_this_interpreter(tmp_path: Path, interpreter_check: Check) -> None:
    """``python3`` from PATH (the machine's base interpreter) is refused in argv and in scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Another python3 first on PATH, as a wrapper script (a pyenv shim is one) running the base python.
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{os.path.realpath(sys.executable)}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    if not IN_VENV:
        pytest.skip("outside a venv the base interpreter is this run's")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    assert interpreter_check(["python3", "-c", "pass"], tmp_path, env)
    assert interpreter_check(["bash", "-c", "echo hi | python3 -m json.tool"], tmp_path, env)
    with pytest.raises(AssertionError, match="python3"):
        subprocess.run(["python3", "-c", "pass"], env=env, check=False)


def test_guard_lets_this_interpreter_and_other_programs_run(tmp_path: Path, interpreter_check: Check) -> None:
    assert interpreter_check([sys.executable, "-c", "pass"]) is None
    assert interpreter_check(["git", "status"]) is None
    assert interpreter_check(["bash", "-c", "echo python3 is not started here; ls"], tmp_path) is None
    assert interpreter_check(["bash", "-c", "venv/bin/python -c pass"], tmp_path) is None  # absent: skipped
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$@"\n')  # a test's fake python: answers no prefix
    fake.chmod(0o755)
    assert interpreter_check([str(fake), "-c", "pass"], tmp_path) is None


def test_guard_reads_commands_in_every_shell_position(tmp_path: Path, interpreter_check: Check) -> None:
    python = _old_stand_in(tmp_path) if IN_VENV else None
    if python is None:
        pytest.skip("outside a venv a link to the binary is this interpreter")
    for script in (
        "venv/bin/python -c pass",
        "x=$(venv/bin/python -c 'print(1)')",
        "true && venv/bin/python -m components plan",
        "if true; then PYTHONPATH=. venv/bin/python -c pass; fi",
        "cat f | venv/bin/python -c pass",
    ):
        assert interpreter_check(["bash", "-c", script], tmp_path), script

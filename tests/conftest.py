"""Fixtures shared by every test: the project's stack files, settings, mocks and offline plans.

- ``stack_values(stack)``: the stack's configuration as the CLI would hand it (defaults merged).
- ``make_settings(stack, **overrides)``: validated Settings from a stack file with overrides
  (short key → value; None removes the key; lists are JSON-encoded for you):
  :func:`components.testing.make_settings` with this project's test secrets and revision.
- ``run_components(fn, stack=…, stack_outputs=…)``: :func:`components.testing.run_components`
  (also a fixture of the package's pytest plugin, components/testing/pytest_plugin.py).
- ``offline_plan(stack)``: session-cached result of ``python -m components plan --stack S --out DIR``
  run as a subprocess: ``(plan_json, out_dir)``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from components.config.settings import Settings, key
from components.config.stack_config import StackConfig, load_stack_config
from components.testing import RecordingMocks
from components.testing import make_settings as package_make_settings
from components.testing import run_components as package_run_components

PROJECT_DIR = Path(__file__).resolve().parent.parent
REVISION = "0123456789abcdef0123456789abcdef01234567"
"""A fixed git revision for tests (the program reads it from SOURCE_REVISION)."""


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT_DIR


@functools.cache
def _committed(stack: str) -> StackConfig:
    """The committed stack file, read once per session (the reader is pure Python: limits before speed)."""
    return load_stack_config(PROJECT_DIR, stack)


def _values(stack: str, overrides: dict[str, Any] | None = None) -> tuple[dict[str, str], set[str]]:
    config = _committed(stack)
    values = dict(config.values)
    secrets = set(config.secret_keys)
    for short, value in (overrides or {}).items():
        if value is None:
            values.pop(key(short), None)
        elif isinstance(value, (list, dict)):
            values[key(short)] = json.dumps(value)
        elif isinstance(value, bool):
            values[key(short)] = "true" if value else "false"
        else:
            values[key(short)] = str(value)
    return values, secrets


@pytest.fixture
def stack_values() -> Callable[..., dict[str, str]]:
    def make(stack: str, **overrides: Any) -> dict[str, str]:
        return _values(stack, overrides)[0]

    return make


TEST_SECRETS: dict[str, str] = {
    "registryPassword": "test-registry-password-0f9e",
    "registryPullPassword": "test-pull-token-3a7c",
}
"""Secrets the stack files leave to `pulumi config set --secret`; tests supply known values."""


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(stack: str, **overrides: Any) -> Settings:
        return package_make_settings(
            PROJECT_DIR, stack, secrets=TEST_SECRETS, environ={"SOURCE_REVISION": REVISION}, **overrides
        )

    return make


@pytest.fixture
def run_components() -> Callable[..., RecordingMocks]:
    def run(fn: Callable[[], None], *, stack: str = "test", **options: Any) -> RecordingMocks:
        return package_run_components(fn, stack=stack, **options)

    return run


_PLAN_CACHE: dict[str, tuple[dict[str, Any], Path]] = {}


@pytest.fixture(scope="session")
def offline_plan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple[dict[str, Any], Path]]]:
    def plan(stack: str) -> tuple[dict[str, Any], Path]:
        if stack not in _PLAN_CACHE:
            out = tmp_path_factory.mktemp(f"plan-{stack}")
            env = {**os.environ, "SOURCE_REVISION": REVISION}
            result = subprocess.run(
                [sys.executable, "-m", "components", "plan", "--stack", stack, "--out", str(out)],
                cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert result.returncode == 0, f"plan {stack} failed:\n{result.stdout}\n{result.stderr}"
            _PLAN_CACHE[stack] = (json.loads((out / "plan.json").read_text()), out)
        return _PLAN_CACHE[stack]

    yield plan


# ---------------------------------------------------------------------------------------------
# Interpreters that tests start: only this run's own (it has the project's requirements)

_PYTHON = re.compile(r"python[0-9.]*")
# A python command where a shell starts a command: line start, after ; & | ( ` $( or "then"/"do",
# behind optional VAR=value assignments. "echo python3" starts nothing.
_SCRIPT_PYTHON = re.compile(
    r"(?:^|[;&|(`]|\bthen\b|\bdo\b)\s*(?:\w+=\S*\s+)*((?:[\w.~-]*/)*python[0-9.]*)(?=[\s;&|)`]|$)", re.MULTILINE
)


def _effective_prefix(executable: Path) -> Path:
    """The sys.prefix ``executable`` would run with, found the way CPython's getpath does it:
    a ``pyvenv.cfg`` beside the executable or one directory up, looked for WITHOUT resolving the
    executable's own symlink (a link to a venv's python elsewhere is not in that venv); without
    one, the base installation the resolved executable belongs to."""
    for candidate in (executable.parent, executable.parent.parent):
        if (candidate / "pyvenv.cfg").is_file():
            return candidate.resolve()
    return Path(os.path.realpath(executable)).parent.parent


def _script_prefix(script: Path, env: Mapping[str, str] | None) -> Path | None:
    """The prefix of the Python a wrapper script (a pyenv shim, a test's fake) runs, by asking it."""
    probe = "import sys; print(sys.prefix)"
    try:  # through sh: the guard sees no python command in 'exec "$0" ...' and does not recurse
        out = subprocess.run(
            ["/bin/sh", "-c", 'exec "$0" -c "$1"', str(script), probe],
            env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    answer = out.stdout.strip()
    return Path(answer).resolve() if out.returncode == 0 and answer.startswith("/") and Path(answer).is_dir() else None


def _own_prefix() -> Path:
    return Path(sys.prefix).resolve()


def foreign_interpreter(argv: Any, cwd: Any = None, env: Mapping[str, str] | None = None) -> str | None:
    """Why a subprocess with this argv would run a Python other than this test run's, or None.

    Looks at argv[0] and, for ``bash``/``sh -c SCRIPT``, at every ``python*`` command in SCRIPT
    (workflow steps run that way), resolved against ``cwd`` and the child's PATH.
    """
    if isinstance(argv, (str, bytes, os.PathLike)):
        return None  # a shell string: no test here starts one
    args = [os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in argv]
    if not args:
        return None
    programs: list[str] = []
    if _PYTHON.fullmatch(Path(args[0]).name):
        programs.append(args[0])
    elif Path(args[0]).name in ("bash", "sh") and "-c" in args[1:-1]:
        programs += _SCRIPT_PYTHON.findall(args[args.index("-c", 1) + 1])
    directory = Path(os.fsdecode(cwd)) if cwd is not None else Path.cwd()
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    for program in programs:
        if "/" in program:
            executable = directory / program
        else:
            found = shutil.which(program, path=path)
            executable = Path(found) if found else None  # type: ignore[assignment]
        if executable is None or not executable.is_file():
            continue  # not there (the script creates it, or that line never runs)
        with executable.open("rb") as head:
            script = head.read(2) == b"#!"
        prefix = _script_prefix(executable, env) if script else _effective_prefix(Path(os.path.abspath(executable)))
        if prefix is None:
            continue  # a test's fake python (it does not answer like an interpreter)
        if prefix != _own_prefix():
            return (
                f"a test starts {program} ({executable}), which runs the Python of {prefix}, not this test run's "
                f"({_own_prefix()}, which has the project's requirements): use sys.executable, or link the whole "
                f"venv directory (the venv_stand_in fixture)"
            )
    return None


@pytest.fixture(autouse=True)
def _only_this_interpreter(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Every subprocess a test starts is checked: a Python without the project's requirements fails
    the test here instead of failing (or passing) by what the machine's base python3 happens to have.
    A test that builds a venv of its own and installs the package there says so with the marker
    ``own_venv`` (tests/integration/test_library_install.py)."""
    if request.node.get_closest_marker("own_venv") is not None:
        return
    original = subprocess.Popen.__init__

    def guarded(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        problem = foreign_interpreter(args, kwargs.get("cwd"), kwargs.get("env"))
        if problem:
            raise AssertionError(problem)
        original(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


def make_venv_stand_in(directory: Path) -> Path:
    """``directory/venv`` whose ``bin/python`` runs this test run's interpreter with its packages.

    A venv's identity is its directory (pyvenv.cfg), not its python binary: link the directory.
    Outside a venv the base interpreter itself is the one with the packages: link the binary.
    """
    venv = directory / "venv"
    if _own_prefix() != Path(sys.base_prefix).resolve():
        venv.symlink_to(sys.prefix, target_is_directory=True)
    else:
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
    return venv / "bin" / "python"


@pytest.fixture
def venv_stand_in() -> Callable[[Path], Path]:
    """``venv_stand_in(dir)`` makes ``dir/venv/bin/python`` for scripts that run ``venv/bin/python``."""
    return make_venv_stand_in


@pytest.fixture
def interpreter_check() -> Callable[..., str | None]:
    """The guard's check itself (:func:`foreign_interpreter`), for the tests that show it firing."""
    return foreign_interpreter

"""Fixtures shared by every test: the project's stack files, settings, mocks and offline plans.

- ``stack_values(stack)``: the stack's configuration as the CLI would hand it (defaults merged).
- ``make_settings(stack, **overrides)``: validated Settings from a stack file with overrides
  (short key → value; None removes the key; lists are JSON-encoded for you).
- ``run_components(fn, stack=…, stack_outputs=…)``: runs ``fn`` as a Pulumi program under fresh
  recording mocks and returns the :class:`RecordingMocks`.
- ``offline_plan(stack)``: session-cached result of ``python -m components plan --stack S --out DIR``
  run as a subprocess: ``(plan_json, out_dir)``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.plan import DictConfig, StackConfig, load_stack_config
from components.settings import Settings, key, load_settings
from components.testing import RecordingMocks, install_mocks, run_program

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
}
"""Secrets the stack files leave to `pulumi config set --secret`; tests supply known values."""


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(stack: str, **overrides: Any) -> Settings:
        merged: dict[str, Any] = {k: v for k, v in TEST_SECRETS.items()}
        merged.update(overrides)
        values, secrets = _values(stack, merged)
        return load_settings(DictConfig(values, secrets), environ={"SOURCE_REVISION": REVISION})

    return make


@pytest.fixture
def run_components() -> Callable[..., RecordingMocks]:
    def run(
        fn: Callable[[], None],
        *,
        stack: str = "test",
        stack_outputs: dict[str, dict[str, Any]] | None = None,
        mocks: RecordingMocks | None = None,
    ) -> RecordingMocks:
        recording = mocks or RecordingMocks(stack_outputs=stack_outputs)
        pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
        install_mocks(recording, stack=stack)
        run_program(fn)
        return recording

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

"""Pytest fixtures for programs that use the library (registered as the ``service_lifecycle`` plugin).

Installing the package registers this module through the ``pytest11`` entry point, so a platform
team's tests get the fixtures with no conftest. What they give:

- ``pulumi_project_dir``: the directory of the program's ``Pulumi.yaml`` (default: pytest's
  rootdir); override it in a conftest when the program lives elsewhere.
- ``run_components(fn, config=…, project=…, stack=…, stack_outputs=…)``: runs ``fn`` as a Pulumi
  program under fresh recording mocks and returns the :class:`components.testing.RecordingMocks`.
- ``plan_stack(stack)``: the offline plan of ``Pulumi.<stack>.yaml`` in ``pulumi_project_dir``
  (the program's ``__main__.py`` run under the mocks, as ``python -m components plan`` does):
  ``(plan, mocks)``.
- ``make_settings(stack, **overrides)``: validated settings of a stack file, with overrides.

It also hides the DeprecationWarnings the provider SDKs raise at import and on every resource
(pulumi_cloudflare's deprecated fields, pulumi_kubernetes' and pulumi's own): a library user's
test run shows their warnings, not ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components import testing

SDK_WARNING_FILTERS = (
    "ignore::DeprecationWarning:pulumi_cloudflare.*",
    "ignore::DeprecationWarning:pulumi_kubernetes.*",
    "ignore::DeprecationWarning:pulumi.*",
)
"""The SDK warnings filtered (module regexes, as pytest's ``filterwarnings`` option takes them)."""


def pytest_configure(config: pytest.Config) -> None:
    for line in SDK_WARNING_FILTERS:
        config.addinivalue_line("filterwarnings", line)


@pytest.fixture
def pulumi_project_dir(request: pytest.FixtureRequest) -> Path:
    """Directory of the program's Pulumi.yaml: pytest's rootdir unless a conftest overrides it."""
    return Path(request.config.rootpath)


@pytest.fixture
def run_components() -> Callable[..., testing.RecordingMocks]:
    """:func:`components.testing.run_components`."""
    return testing.run_components


@pytest.fixture
def plan_stack(pulumi_project_dir: Path) -> Iterator[Callable[..., tuple[Any, testing.RecordingMocks]]]:
    """``plan_stack(stack, environ=None)``: the offline plan of a stack of ``pulumi_project_dir``."""
    from components.testing.offline import run_plan  # on demand: it imports the whole library

    def plan(stack: str, *, environ: dict[str, str] | None = None) -> tuple[Any, testing.RecordingMocks]:
        return run_plan(pulumi_project_dir, stack, environ=environ)

    yield plan
    pulumi.runtime.set_all_config({}, [])  # the plan's stack configuration must not reach the next test


@pytest.fixture
def make_settings(pulumi_project_dir: Path) -> Callable[..., Any]:
    """``make_settings(stack, **overrides)``: :func:`components.testing.make_settings` in ``pulumi_project_dir``."""

    def make(stack: str, **overrides: Any) -> Any:
        return testing.make_settings(pulumi_project_dir, stack, **overrides)

    return make

"""Pytest fixtures for programs that use the library (registered as the ``service_lifecycle`` plugin).

Installing the package registers this module through the ``pytest11`` entry point, so a platform
team's tests get the fixtures with no conftest. What they give:

- ``pulumi_project_dir``: the directory of the program's ``Pulumi.yaml``: the nearest one at or above
  the test file's own directory, wherever pytest was started; override it in a conftest when the
  program lives elsewhere.
- ``run_components(fn, config=…, project=…, stack=…, stack_outputs=…)``: runs ``fn`` as a Pulumi
  program under fresh recording mocks and returns the :class:`components.testing.RecordingMocks`.
- ``plan_stack(stack)``: the offline plan of ``Pulumi.<stack>.yaml`` in ``pulumi_project_dir``
  (the program's ``__main__.py`` run under the mocks, as ``python -m components plan`` does):
  ``(plan, mocks)``.
- ``make_settings(stack, service=None, **overrides)``: validated settings of a stack file, with
  overrides; ``service`` picks one of a stack's several services.

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
    """Directory of the program's Pulumi.yaml: the nearest at or above the test file's directory.

    Found from the test file, never from where pytest was started (``pytest examples/x`` and ``cd
    examples/x && pytest`` give the same project). Without one the test fails saying how to give it.
    """
    start = Path(request.path).resolve().parent
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory
    pytest.fail(
        f"no Pulumi.yaml in {start} or above it: put the test beside the program's Pulumi.yaml, or override "
        "the fixture in a conftest.py: @pytest.fixture\ndef pulumi_project_dir() -> Path: return Path(...)",
        pytrace=False,
    )


@pytest.fixture
def run_components() -> Callable[..., testing.RecordingMocks]:
    """:func:`components.testing.run_components`."""
    return testing.run_components


@pytest.fixture
def plan_stack(pulumi_project_dir: Path) -> Iterator[Callable[..., tuple[Any, testing.RecordingMocks]]]:
    """``plan_stack(stack, environ=None)``: the offline plan of a stack of ``pulumi_project_dir``."""
    from components.testing.offline import run_plan  # on demand: it imports the whole library

    def plan(stack: str, *, environ: dict[str, str] | None = None) -> tuple[Any, testing.RecordingMocks]:
        _require_stack_file(pulumi_project_dir, stack)
        return run_plan(pulumi_project_dir, stack, environ=environ)

    yield plan
    pulumi.runtime.set_all_config({}, [])  # the plan's stack configuration must not reach the next test


@pytest.fixture
def make_settings(pulumi_project_dir: Path) -> Callable[..., Any]:
    """``make_settings(stack, service=None, **overrides)``: :func:`components.testing.make_settings` in
    ``pulumi_project_dir`` (``service``: one of a stack's several services)."""

    def make(stack: str, *, service: str | None = None, **overrides: Any) -> Any:
        _require_stack_file(pulumi_project_dir, stack)
        return testing.make_settings(pulumi_project_dir, stack, service=service, **overrides)

    return make


def _require_stack_file(project_dir: Path, stack: str) -> None:
    """Fail the test, with a test's advice (not the command line's), when the stack file is not there."""
    if not (project_dir / f"Pulumi.{stack}.yaml").is_file():
        stacks = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))
        pytest.fail(
            f"no Pulumi.{stack}.yaml in {project_dir} (the pulumi_project_dir fixture; stacks there: {stacks}): "
            "name one of those, or override pulumi_project_dir in a conftest.py",
            pytrace=False,
        )

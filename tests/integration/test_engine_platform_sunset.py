"""The platform example (examples/platform) by the real Pulumi CLI, and the sunset of one service.

engine/platform_run.py runs it once per test session on the local control plane, with the Cloudflare
fake and the local registry: staging up, production promoted from staging, then ``python -m
components sunset --service api`` of production and of staging, each step checked in the real
systems' state. Here each step is a test of its own, so a report names the step that broke; the
artefacts are under out/platform-sunset/. Without the engine's tools (``make engine``) the tests
skip, except under CI, where they fail.
"""

from __future__ import annotations

from typing import Any

import pytest
from engine_runs import REPO, run_module, secrets_in, step_record

from engine import platform_run

OUT = REPO / "out" / "platform-sunset"


@pytest.fixture(scope="session")
def platform_report() -> dict[str, Any]:
    (report,) = run_module("engine.platform_run", OUT, timeout=1800)
    return dict(report)


@pytest.mark.parametrize("step", [step[0] for step in platform_run.STEPS])
def test_platform_step(platform_report: dict[str, Any], step: str) -> None:
    record = step_record(platform_report, step)
    if record.get("gap"):
        pytest.xfail(f"known gap (docs/engine.md): {record['gap']}: {record['problems']}")
    assert record["ok"], f"{step}: {record['error']}"
    for artefact in ("objects.json", "cloudflare.json", "registry.json"):
        assert (OUT / step / artefact).is_file()


def test_the_platform_run_passed(platform_report: dict[str, Any]) -> None:
    assert platform_report["status"] == "passed"
    assert not platform_report["skipped_commands"]


def test_no_secret_in_the_platform_artefacts(platform_report: dict[str, Any]) -> None:
    assert not secrets_in(OUT)

"""What the real engine's test modules share: run one of engine/'s runs once, as a subprocess, and read
its report (test_real_engine.py: engine/e2e.py; test_engine_platform_sunset.py: engine/platform_run.py;
test_engine_rollback.py: engine/rollback_run.py).

Without the engine's tools (``make engine``) a run is skipped, except under CI, where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import dockerenv
import pytest

from engine import workspace

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("pulumi", "kube-apiserver", "etcd", "kwok")
SECRET_MARKERS = ("BEGIN RSA PRIVATE KEY", "local-registry-has-no-auth", '"token": "ey', "PULUMI_CONFIG_PASSPHRASE")
"""Text no artefact of a run may hold: a private key, the local registry's stand-in password, a tunnel token."""


def missing(reason: str) -> NoReturn:
    """A tool the run needs is not here: a skip on a developer's machine, a failure under CI."""
    if dockerenv.on_ci():
        pytest.fail(f"CI must run the real engine, but {reason}", pytrace=False)
    pytest.skip(reason)


def run_module(module: str, out: Path, *, timeout: int, reports: tuple[str, ...] = ("report.json",)) -> list[Any]:
    """``python -m <module> --out <out>`` with the engine's tools; the JSON files ``reports`` it wrote in ``out``."""
    dockerenv.require_real_tools()
    try:
        env = workspace.engine_env()
    except workspace.EngineMissing as error:
        missing(str(error))
    absent = [tool for tool in TOOLS if shutil.which(tool, path=env["PATH"]) is None]
    if absent:
        pytest.fail(f"make engine ran but these tools are not on its PATH: {absent}", pytrace=False)
    done = subprocess.run(
        [sys.executable, "-m", module, "--out", str(out)], cwd=REPO, capture_output=True, text=True,
        timeout=timeout, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    sys.stdout.write(done.stdout[-20000:])
    sys.stderr.write(done.stderr[-20000:])
    if not all((out / name).is_file() for name in reports):
        pytest.fail(f"{module} wrote no report (exit {done.returncode}):\n{done.stderr[-4000:]}", pytrace=False)
    return [json.loads((out / name).read_text()) for name in reports]


def step_record(report: dict[str, Any], step: str) -> dict[str, Any]:
    """The report's record of ``step``; a failure naming the steps that ran when the run stopped before it."""
    records = {record["name"]: record for record in report["steps"]}
    assert step in records, f"the run stopped before {step}: {[r['name'] for r in report['steps']]}"
    return dict(records[step])


def secrets_in(out: Path) -> list[str]:
    """The markers of :data:`SECRET_MARKERS` found in the run's JSON artefacts."""
    text = "\n".join(p.read_text() for p in out.rglob("*.json"))
    return [marker for marker in SECRET_MARKERS if marker in text]

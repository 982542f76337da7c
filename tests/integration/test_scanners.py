"""checkov on the rendered manifests and zizmor on the workflows: 0 findings, or each one justified
where it stands (.checkov.yaml skip list with reasons; ``# zizmor: ignore[...]`` comments)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest

from tests.integration.dockerenv import cache_dir

pytestmark = pytest.mark.integration

PROJECT_DIR = Path(__file__).resolve().parents[2]
WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
SCAN_REQUIREMENTS = PROJECT_DIR / "requirements-scan.txt"
ZIZMOR = Path(sys.executable).parent / "zizmor"


@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov in its own virtualenv (it cannot share the Pulumi SDK's), cached by requirements hash."""
    digest = hashlib.sha256(SCAN_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    home = cache_dir() / f"checkov-venv-{digest}"
    binary = home / "bin" / "checkov"
    if not (home / ".installed").exists():
        shutil.rmtree(home, ignore_errors=True)
        venv.create(home, with_pip=True)
        subprocess.run(
            [str(home / "bin" / "pip"), "install", "--quiet", "-r", str(SCAN_REQUIREMENTS)], check=True, timeout=900
        )
        (home / ".installed").touch()
    return binary


def _run_checkov(binary: Path, directory: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(binary), "--config-file", str(PROJECT_DIR / ".checkov.yaml"), "-d", str(directory), "-o", "json"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed: list[dict[str, Any]] = []
    for report in reports:
        failed += report.get("results", {}).get("failed_checks", [])
    return failed


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for stack in ("staging", "production"):
        target = tmp_path_factory.mktemp(f"scan-{stack}")
        subprocess.run(
            [sys.executable, "-m", "components", "plan", "--stack", stack, "--out", str(target)],
            cwd=PROJECT_DIR, check=True, capture_output=True, timeout=300, env={"SOURCE_REVISION": "0" * 40,
            "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        out[stack] = target / "manifests"
    return out


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_checkov_finds_nothing_in_the_rendered_manifests(checkov: Path, rendered: dict[str, Path], stack: str) -> None:
    failed = _run_checkov(checkov, rendered[stack])
    assert [(f["check_id"], f["resource"]) for f in failed] == []


def test_checkov_fires_on_a_manifest_that_breaks_a_check(checkov: Path, tmp_path: Path) -> None:
    """The scan can fail: a host-network, privileged pod is reported."""
    (tmp_path / "pod.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: x}\nspec:\n  hostNetwork: true\n"
        "  containers:\n  - name: c\n    image: busybox:latest\n    securityContext: {privileged: true}\n"
    )
    ids = {f["check_id"] for f in _run_checkov(checkov, tmp_path)}
    assert {"CKV_K8S_16", "CKV_K8S_19"} <= ids, ids  # privileged; hostNetwork


def _zizmor(path: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(ZIZMOR), "--offline", "--format", "json", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode in (0, 10, 11, 12, 13, 14), result.stderr[-2000:]
    findings: list[dict[str, Any]] = json.loads(result.stdout or "[]")
    return findings


def test_zizmor_finds_nothing_in_the_workflows() -> None:
    findings = _zizmor(WORKFLOWS)
    assert [(f.get("ident"), f.get("desc")) for f in findings] == []


def test_zizmor_fires_on_a_workflow_that_breaks_an_audit(tmp_path: Path) -> None:
    """The scan can fail: sunset.yml without its justified ignore comment is reported (artipacked)."""
    text = (WORKFLOWS / "sunset.yml").read_text()
    stripped = "\n".join(line.split(" # zizmor:")[0] for line in text.splitlines()) + "\n"
    (tmp_path / "sunset.yml").write_text(stripped)
    assert "artipacked" in {f["ident"] for f in _zizmor(tmp_path / "sunset.yml")}

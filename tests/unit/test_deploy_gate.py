"""deploy.yml's production gate (no approval asked for a preview without changes), its chart-render job,
and the lock file that CI and the deploy install from."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / ".github" / "workflows" / "deploy.yml"


def _load() -> dict[str, Any]:
    wf: dict[str, Any] = yaml.safe_load(DEPLOY.read_text())
    return wf


def gate_problems(wf: dict[str, Any]) -> list[str]:
    jobs = wf["jobs"]
    problems: list[str] = []
    preview = jobs.get("production-preview")
    if preview is None:
        return ["no production-preview job"]
    env = preview.get("environment")
    if (env.get("name") if isinstance(env, dict) else env) == "production":
        problems.append("the preview must not wait for the production reviewers")
    steps = [s for s in preview["steps"] if str(s.get("uses", "")).startswith("pulumi/actions@")]
    if not steps or (steps[0].get("with") or {}).get("command") != "preview":
        return [*problems, "production-preview runs no pulumi preview"]
    step = steps[0]
    with_ = step.get("with") or {}
    if with_.get("stack-name") != "production" or with_.get("expect-no-changes") is not True:
        problems.append("the preview must be of production with expect-no-changes")
    if step.get("continue-on-error") is not True:
        problems.append("a preview with changes must not fail the run: continue-on-error")
    # Anything but a clean preview (changes, or a preview that could not run) asks the reviewers.
    if preview.get("outputs", {}).get("changes") != f"${{{{ steps.{step.get('id')}.outcome != 'success' }}}}":
        problems.append("changes must be true unless the preview succeeded")
    production = jobs["production"]
    if "production-preview" not in production.get("needs", []):
        problems.append("production does not wait for its preview")
    if "needs.production-preview.outputs.changes == 'true'" not in str(production.get("if", "")):
        problems.append("production runs (and asks the reviewers) even when its preview has no changes")
    env = production.get("environment")
    if (env.get("name") if isinstance(env, dict) else env) != "production":
        problems.append("production lost its approval")
    return problems


def test_the_reviewers_are_asked_only_when_production_changes() -> None:
    assert gate_problems(_load()) == []


def _ungated(wf: dict[str, Any]) -> None:
    wf["jobs"]["production"]["if"] = "needs.stages.outputs.production != 'sunset'"


def _errors_skip_approval(wf: dict[str, Any]) -> None:
    wf["jobs"]["production-preview"]["outputs"]["changes"] = "${{ steps.preview.outcome == 'failure' }}"


def _preview_behind_reviewers(wf: dict[str, Any]) -> None:
    wf["jobs"]["production-preview"]["environment"] = "production"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_ungated, "even when its preview has no changes"),
        (_errors_skip_approval, "unless the preview succeeded"),
        (_preview_behind_reviewers, "must not wait for the production reviewers"),
    ],
    ids=["ungated", "errors_skip_approval", "preview_behind_reviewers"],
)
def test_gate_check_fires_on_a_broken_copy(mutate: Any, expected: str) -> None:
    wf = copy.deepcopy(_load())
    mutate(wf)
    assert any(expected in p for p in gate_problems(wf)), gate_problems(wf)


def test_chart_render_job_templates_every_pinned_chart_before_staging() -> None:
    jobs = _load()["jobs"]
    charts = jobs["charts"]
    text = "\n".join(str(step.get("run", "")) for step in charts["steps"])
    assert "write_chart_values" in text and "charts-render/charts.tsv" in text
    assert re.search(r'helm template "\$release" "\$chart" --repo "\$repo" --version "\$version"', text)
    assert "--require-hashes" in text  # the helm that ran here, not whatever a download serves
    assert "ClusterRole" in text  # Alloy must render namespaced Roles only
    assert "charts" in jobs["staging"]["needs"]


def test_ci_and_deploy_install_the_hash_checked_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --require-hashes -r requirements.lock" in makefile
    assert "pip install --quiet -r requirements-dev.txt" not in makefile
    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9._-]+)==(\S+) \\$", lock, flags=re.MULTILINE))
    major, minor = (int(x) for x in pins["pulumi"].split(".")[:2])
    assert (major, minor) >= (3, 180)  # Stack.preview_destroy, which the sunset uses
    for name in ("pulumi-docker", "pulumi-kubernetes", "pulumi-cloudflare", "pytest", "kubernetes-validate"):
        assert name in pins, name
    # every pinned distribution carries at least one hash (pip --require-hashes refuses otherwise)
    entries = re.split(r"\n(?=[a-z0-9._-]+==)", lock.split("\n\n", 1)[-1])
    assert all("--hash=sha256:" in entry for entry in entries if "==" in entry)
    deploy = DEPLOY.read_text()
    assert deploy.count("make venv/.installed") >= 3  # staging, production-preview, production (and charts)
    requirements = (ROOT / "requirements.txt").read_text()
    assert "pulumi>=3.261," in requirements

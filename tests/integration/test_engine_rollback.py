"""A production breach and its rollback by the real engine (issue 24's last part): engine/rollback_run.py.

On the local control plane and with the real Pulumi CLI, staging and production come up as in the
e2e; production's release is verified by ``verify-deploy`` on a real Prometheus and recorded in the
ledger; a patch gives production a new digest, served with ``FAULT_ERROR_RATIO=0.2``, which
verify-deploy judges breached; the workflow's rollback (``rollback-target`` from the ledger, then
``pulumi up`` with ``pinnedDigest``) puts the last good digest back, checked in the kube-apiserver
and the state, and verified again. kwok runs the pods, so each release is served by the real Docker
engine from the Deployment's image and the pod's environment (docs/engine.md).

The run is a subprocess (it starts and stops its own systems); each step is a test of its own here,
and the run's facts (rollback.json) are asserted again. Without the engine's tools or Prometheus the
tests skip, except under CI, where they fail.
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

from engine import rollback_run, workspace

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "out" / "rollback"


def _missing(reason: str) -> NoReturn:
    if dockerenv.on_ci():
        pytest.fail(f"CI must run the real engine's rollback, but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    dockerenv.require_real_tools()
    try:
        env = workspace.engine_env()
    except workspace.EngineMissing as error:
        _missing(str(error))
    if rollback_run.prometheus_binary() is None:
        _missing("prometheus is missing (apt-get install prometheus; scripts/install-system-deps.sh installs it)")
    missing = [
        tool for tool in ("pulumi", "kube-apiserver", "etcd", "kwok") if shutil.which(tool, path=env["PATH"]) is None
    ]
    if missing:
        pytest.fail(f"make engine ran but these tools are not on its PATH: {missing}", pytrace=False)
    done = subprocess.run(
        [sys.executable, "-m", "engine.rollback_run", "--out", str(OUT)], cwd=REPO, capture_output=True, text=True,
        timeout=1800, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    sys.stdout.write(done.stdout[-20000:])
    sys.stderr.write(done.stderr[-20000:])
    if not (OUT / "report.json").is_file() or not (OUT / "rollback.json").is_file():
        pytest.fail(f"engine/rollback_run.py wrote no report (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return {
        "report": json.loads((OUT / "report.json").read_text()),
        "facts": json.loads((OUT / "rollback.json").read_text()),
    }


def _digest(ref: object) -> str:
    return str(ref).rsplit("@", 1)[-1]


@pytest.mark.parametrize("step", [name for name, _, _ in rollback_run.STEPS])
def test_step(run: dict[str, Any], step: str) -> None:
    records = {record["name"]: record for record in run["report"]["steps"]}
    assert step in records, f"the run stopped before {step}: {[r['name'] for r in run['report']['steps']]}"
    assert records[step]["ok"], f"{step}: {records[step]['error']}"
    assert (OUT / step / "objects.json").is_file()


def test_the_run_passed(run: dict[str, Any]) -> None:
    assert run["report"]["status"] == "passed"
    assert not run["report"]["skipped_commands"]


def test_the_good_release_passed_and_is_in_the_ledger(run: dict[str, Any]) -> None:
    facts = run["facts"]
    good = facts["good"]
    assert good["exit"] == 0 and good["status"] == "healthy", good["tail"]
    assert good["image_ref"] == facts["first_release"] == good["env_image_ref"]
    assert facts["ledger"][_digest(good["image_ref"])] == "passed"


def test_the_faulty_release_breached_naming_the_error_ratio(run: dict[str, Any]) -> None:
    facts = run["facts"]
    breach = facts["breach"]
    assert _digest(breach["image_ref"]) != _digest(facts["first_release"])
    assert breach["fault"] == {"FAULT_ERROR_RATIO": "0.2"}
    assert breach["exit"] == 1 and breach["status"] == "breached"
    assert breach["candidate_error_ratio"] == pytest.approx(0.2, abs=0.03)
    assert any(r.startswith("error ratio: 0.2") or r.startswith("error ratio: 0.19") for r in breach["reasons"])
    assert _digest(breach["baseline_ref"]) == _digest(facts["first_release"])
    assert facts["ledger"][_digest(breach["image_ref"])] == "breached"


def test_the_rollback_pinned_the_last_good_digest_in_the_cluster_and_the_state(run: dict[str, Any]) -> None:
    facts = run["facts"]
    good = _digest(facts["first_release"])
    assert facts["rollback_target"]["exit"] == 0 and facts["rollback_target"]["digest"] == good
    assert _digest(facts["deployment_image_after_rollback"]) == good
    assert {_digest(image) for image in facts["pod_images_after_rollback"].values()} == {good}
    assert [_digest(image) for image in facts["state_images_after_rollback"]] == [good]
    assert _digest(facts["stack_image_ref_after_rollback"]) == good


def test_the_rollback_verified_again(run: dict[str, Any]) -> None:
    reverify = run["facts"]["reverify"]
    assert reverify["exit"] == 0 and reverify["status"] == "healthy", reverify["tail"]
    assert _digest(reverify["image_ref"]) == _digest(run["facts"]["first_release"])
    assert reverify["fault"] == {}


def test_traffic_was_bounded_and_counted(run: dict[str, Any]) -> None:
    facts = run["facts"]
    limit = facts["settings"]["max_requests"]
    for phase in ("good", "breach", "reverify"):
        sent, counted = facts[phase]["sent_in_window"], facts[phase]["candidate_requests"]
        assert facts["settings"]["min_requests"] <= sent <= facts[phase]["sent"] <= limit
        assert counted == pytest.approx(sent, rel=0.1)


def test_no_secret_in_artefacts(run: dict[str, Any]) -> None:
    text = "\n".join(p.read_text() for p in OUT.rglob("*.json"))
    for marker in ("BEGIN RSA PRIVATE KEY", "local-registry-has-no-auth", '"token": "ey', "PULUMI_CONFIG_PASSPHRASE"):
        assert marker not in text

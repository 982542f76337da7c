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

from typing import Any

import pytest
from engine_runs import REPO, missing, run_module, secrets_in, step_record

from engine import rollback_run

OUT = REPO / "out" / "rollback"


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    if rollback_run.prometheus_binary() is None:
        missing("prometheus is missing (apt-get install prometheus; scripts/install-system-deps.sh installs it)")
    report, facts = run_module("engine.rollback_run", OUT, timeout=1800, reports=("report.json", "rollback.json"))
    return {"report": report, "facts": facts}


def _digest(ref: object) -> str:
    return str(ref).rsplit("@", 1)[-1]


@pytest.mark.parametrize("step", [name for name, _, _ in rollback_run.STEPS])
def test_step(run: dict[str, Any], step: str) -> None:
    record = step_record(run["report"], step)
    assert record["ok"], f"{step}: {record['error']}"
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
    assert rollback_run.names_measured_error_ratio(breach["reasons"], breach["candidate_error_ratio"])
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
    assert not secrets_in(OUT)

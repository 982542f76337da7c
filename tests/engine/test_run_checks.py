"""The real-engine runs' own checks, each shown firing: ``lifecycle_checks.wait_available`` counts a
Deployment as settled only once nothing will change it on its own (so the runs' before/after snapshots
compare what the step did and nothing else); ``rollback_run.names_measured_error_ratio`` holds a
breach to naming the figure Prometheus measured."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from engine import lifecycle_checks, rollback_run


def deployment(*, replicas: int | None = 2, ready: int = 2, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    spec = {} if replicas is None else {"replicas": replicas}
    count = 1 if replicas is None else replicas
    return {
        "metadata": {"name": "web", "generation": generation},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "replicas": count,
            "updatedReplicas": count,
            "readyReplicas": ready,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }


def autoscaler(*, low: int = 2, seen: int | None = 2, name: str = "web") -> dict[str, Any]:
    status = {} if seen is None else {"currentReplicas": seen}
    return {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": name}, "minReplicas": low}, "status": status}


def test_a_rolled_out_deployment_its_autoscaler_has_scaled_is_settled() -> None:
    assert lifecycle_checks._unsettled("ns/web", deployment(), [autoscaler()]) == []
    assert lifecycle_checks._unsettled("ns/web", deployment(), [autoscaler(name="api", seen=None)]) == []
    assert lifecycle_checks._unsettled("ns/web", deployment(replicas=None, ready=1), []) == []


@pytest.mark.parametrize(
    ("item", "autoscalers", "says"),
    [
        # created without spec.replicas: one pod, before the HPA controller's first sync
        (deployment(replicas=None, ready=1), [autoscaler(seen=None)], "1 replicas, its autoscaler's minimum 2"),
        # scaled to the minimum, the autoscaler's status not yet written
        (deployment(), [autoscaler(seen=None)], "it saw None"),
        (deployment(ready=1), [autoscaler()], "1 of 2 replicas ready"),
        (deployment(generation=2, observed=1), [autoscaler()], "generation 2 not yet observed"),
    ],
)
def test_a_deployment_that_will_still_change_on_its_own_is_not_settled(
    item: dict[str, Any], autoscalers: list[dict[str, Any]], says: str
) -> None:
    (problem,) = lifecycle_checks._unsettled("ns/web", item, autoscalers)
    assert says in problem


def test_wait_available_waits_for_the_autoscaler_s_first_scale() -> None:
    """The API server's answers over time: the first poll sees one replica, the second the scaled two."""
    answers = iter(
        [
            {"items": [deployment(replicas=None, ready=1)]},
            {"items": [autoscaler(seen=None)]},
            {"items": [deployment()]},
            {"items": [autoscaler()]},
        ]
    )
    plane = SimpleNamespace(get=lambda path: next(answers))
    systems: Any = SimpleNamespace(plane=plane)
    assert lifecycle_checks.wait_available(systems, "ns", timeout=30) == []
    assert next(answers, None) is None  # it polled twice


def test_wait_available_gives_the_reason_when_it_never_settles() -> None:
    plane = SimpleNamespace(
        get=lambda path: {"items": [autoscaler(seen=None)]} if "autoscalers" in path else {"items": [deployment()]}
    )
    systems: Any = SimpleNamespace(plane=plane)
    (problem,) = lifecycle_checks.wait_available(systems, "ns", timeout=0.5)
    assert problem == "Deployment ns/web: 2 replicas, its autoscaler's minimum 2, it saw None"


def test_a_breach_must_name_the_error_ratio_measured() -> None:
    reasons = ["restarts: 0", "error ratio: 0.1849 breaches <= 0.072 (14.4x the 99.5% budget) (previous release: 0)"]
    assert rollback_run.names_measured_error_ratio(reasons, 0.18493)
    assert not rollback_run.names_measured_error_ratio(reasons, 0.2)  # another figure than the one measured
    assert not rollback_run.names_measured_error_ratio(reasons, None)
    assert not rollback_run.names_measured_error_ratio(["error ratio vs previous: 0.1849 breaches rise < 0.01"], 0.1849)

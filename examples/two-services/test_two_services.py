"""The two-services example plans offline and wires what it says, tested with the package's fixtures.

``pulumi_project_dir`` and ``plan_stack`` come from the library's pytest plugin
(components/testing/pytest_plugin.py), registered when the package is installed: no conftest needed.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.testing import RecordingMocks

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.fixture
def pulumi_project_dir() -> Path:
    return Path(__file__).resolve().parent


@pytest.fixture
def staging(plan_stack: Callable[..., tuple[Any, RecordingMocks]]) -> tuple[Any, RecordingMocks]:
    return plan_stack("staging")


def test_both_services_run_in_their_own_namespaces_with_their_own_images(
    staging: tuple[Any, RecordingMocks],
) -> None:
    plan, mocks = staging
    assert plan.project == "shop"
    assert {r.name for r in mocks.by_type("service-lifecycle:index:ServiceStack")} == {"web", "api"}
    namespaces = {r.plain_inputs["metadata"]["name"] for r in mocks.by_type("kubernetes:core/v1:Namespace")}
    assert {"web-staging", "api-staging"} <= namespaces
    images = sorted(r.plain_inputs["imageName"] for r in mocks.by_type("docker:index/image:Image"))
    assert [i.split(":")[0] for i in images] == ["ghcr.io/example-org/shop-api", "ghcr.io/example-org/shop-web"]
    assert plan.outputs["api_urls"] == ["https://shop-api-staging.example.com"]


def test_one_cluster_monitoring_stack_watches_both(staging: tuple[Any, RecordingMocks]) -> None:
    _, mocks = staging
    releases = [r.name for r in mocks.by_type(HELM_RELEASE)]
    assert len(releases) == len(set(releases)) == 3  # kube-prometheus-stack, Loki and Alloy, each once
    assert len(mocks.by_type("kubernetes:core/v1:Namespace")) == 3  # monitoring + web-staging + api-staging
    alloy = next(r for r in mocks.by_type(HELM_RELEASE) if r.plain_inputs["chart"] == "alloy")
    assert sorted(alloy.plain_inputs["values"]["rbac"]["namespaces"]) == ["api-staging", "web-staging"]
    monitored = {
        r.plain_inputs["metadata"]["namespace"]
        for r in mocks.by_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    }
    assert monitored == {"web-staging", "api-staging"}


def test_per_service_values_win_over_shared_ones(staging: tuple[Any, RecordingMocks]) -> None:
    _, mocks = staging
    api = mocks.one("kubernetes:apps/v1:Deployment", "api-workload-deployment").plain_inputs
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 9000
    assert container["resources"]["limits"]["memory"] == "384Mi"
    web = mocks.one("kubernetes:apps/v1:Deployment", "web-workload-deployment").plain_inputs
    assert web["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "256Mi"

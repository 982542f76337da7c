"""Environment: namespace, Pod Security, quota, limits, default-deny; and the stack's provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pulumi.runtime.sync_await import _sync_await

from components import labels
from components.config.settings import Resources, Settings
from components.environment import Environment, EnvironmentArgs, namespace_quota
from components.service import CLOUDFLARED_RESOURCES, ServiceStack, ServiceStackArgs
from components.testing import RecordingMocks, is_secret

SOURCE = "example-org/service-lifecycle/staging"
STACK_OUTPUTS = {SOURCE: {"image_ref": "ghcr.io/example-org/hello@sha256:" + "c" * 64}}
RESOURCES = Resources(cpu_request="100m", cpu_limit="500m", memory_request="128Mi", memory_limit="256Mi")
NAMESPACE = "kubernetes:core/v1:Namespace"
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMIT_RANGE = "kubernetes:core/v1:LimitRange"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PROVIDER = "pulumi:providers:kubernetes"
ENVIRONMENT = "service-lifecycle:index:Environment"

StageRun = Callable[..., tuple[Settings, RecordingMocks]]


@pytest.fixture
def stage_run(make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]) -> StageRun:
    def run(stack: str, **overrides: Any) -> tuple[Settings, RecordingMocks]:
        settings = make_settings(stack, **overrides)
        mocks = run_components(
            lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)) and None,
            stack=stack,
            stack_outputs=STACK_OUTPUTS,
        )
        return settings, mocks

    return run


def policy(mocks: RecordingMocks, name: str) -> dict[str, Any]:
    for resource in mocks.by_type(NETWORK_POLICY):
        if resource.plain_inputs["metadata"]["name"] == name:
            spec: dict[str, Any] = resource.plain_inputs["spec"]
            return spec
    raise AssertionError(f"no NetworkPolicy {name}")


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_namespace_enforces_restricted_pod_security_and_carries_the_stage(stage_run: StageRun, stage: str) -> None:
    settings, mocks = stage_run(stage)
    metadata = mocks.one(NAMESPACE).plain_inputs["metadata"]
    assert metadata["name"] == f"hello-{stage}" == settings.namespace
    found = metadata["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert found[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert found[f"pod-security.kubernetes.io/{mode}-version"] == f"v{settings.kubernetes.version}"
    expected = labels.standard("hello", team=settings.team, stage=stage)
    assert expected.items() <= found.items()
    assert found[labels.STAGE_LABEL] == stage


def test_production_namespace_is_protected_and_staging_is_not(stage_run: StageRun) -> None:
    _, production = stage_run("production")
    _, staging = stage_run("staging")
    assert production.one(NAMESPACE).protect is True
    assert staging.one(NAMESPACE).protect is False
    # only the namespace: its contents go with it, and protecting them would block a sunset
    mine = [r for r in production.resources if ":Environment" in r.urn or ":Workload" in r.urn]
    assert [r.name for r in mine if r.protect] == ["hello-env-namespace"]


def test_protection_is_an_argument_not_a_stage_name(run_components: Callable[..., RecordingMocks]) -> None:
    def make(protect: bool) -> None:
        Environment(
            "hello-env",
            EnvironmentArgs(
                namespace="hello-qa", service_name="hello", team="platform", stage="qa",
                quota=namespace_quota(pods=4, per_pod=RESOURCES), container_defaults=RESOURCES, protect=protect,
            ),
        )  # fmt: skip

    assert run_components(lambda: make(True)).one(NAMESPACE).protect is True
    assert run_components(lambda: make(False)).one(NAMESPACE).protect is False


def test_default_deny_blocks_everything_but_dns(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    spec = policy(mocks, "hello-default-deny")
    assert spec["podSelector"] == {}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec.get("ingress", []) == []
    assert spec["egress"] == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }
    ]


def test_quota_caps_the_namespace_and_forbids_public_services(stage_run: StageRun) -> None:
    settings, mocks = stage_run("production")
    hard = mocks.one(QUOTA).plain_inputs["spec"]["hard"]
    assert hard["services.loadbalancers"] == "0"
    assert hard["services.nodeports"] == "0"
    # room for the app at its autoscaling ceiling and cloudflared, each with one surge pod at its own size
    app_pods = 2 * settings.replicas + 1
    tunnel_pods = settings.cloudflare.cloudflared_replicas + 1
    assert int(hard["pods"]) == app_pods + tunnel_pods
    assert hard == namespace_quota(
        pods=app_pods, per_pod=settings.resources, more=[(tunnel_pods, CLOUDFLARED_RESOURCES)]
    )


def test_namespace_quota_arithmetic() -> None:
    assert namespace_quota(pods=3, per_pod=RESOURCES) == {
        "pods": "3",
        "requests.cpu": "300m",
        "limits.cpu": "1500m",
        "requests.memory": "384Mi",
        "limits.memory": "768Mi",
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }
    odd = Resources(cpu_request="0.25", cpu_limit="1", memory_request="1G", memory_limit="1Gi")
    quota = namespace_quota(pods=2, per_pod=odd)
    assert (quota["requests.cpu"], quota["limits.cpu"]) == ("500m", "2000m")
    assert quota["requests.memory"] == "1908Mi"  # 2 GB rounded up to whole MiB, never down
    assert quota["limits.memory"] == "2048Mi"
    with pytest.raises(ValueError, match="pods is 0"):
        namespace_quota(pods=0, per_pod=RESOURCES)
    small = Resources(cpu_request="50m", cpu_limit="100m", memory_request="32Mi", memory_limit="64Mi")
    mixed = namespace_quota(pods=3, per_pod=small, more=[(2, RESOURCES)])
    assert (mixed["pods"], mixed["requests.cpu"], mixed["limits.cpu"]) == ("5", "350m", "1300m")
    assert (mixed["requests.memory"], mixed["limits.memory"]) == ("352Mi", "704Mi")


def test_limit_range_defaults_are_the_service_resources(stage_run: StageRun) -> None:
    settings, mocks = stage_run("staging")
    limits = mocks.one(LIMIT_RANGE).plain_inputs["spec"]["limits"]
    r = settings.resources
    assert limits == [
        {
            "type": "Container",
            "defaultRequest": {"cpu": r.cpu_request, "memory": r.memory_request},
            "default": {"cpu": r.cpu_limit, "memory": r.memory_limit},
        }
    ]


def test_environment_objects_are_named_namespaced_and_parented(stage_run: StageRun) -> None:
    _, mocks = stage_run("staging")
    environment = mocks.one(ENVIRONMENT, "hello-env")
    assert environment.urn.endswith("ServiceStack$service-lifecycle:index:Environment::hello-env")
    children = mocks.children_of(environment.urn)
    assert sorted(c.type for c in children) == sorted([NAMESPACE, QUOTA, LIMIT_RANGE, NETWORK_POLICY])
    for child in children:
        assert child.name.startswith("hello-env-")
        metadata = child.plain_inputs["metadata"]
        assert metadata["name"]
        if child.type != NAMESPACE:
            assert metadata["namespace"] == "hello-staging"
            # created once the namespace exists
            assert mocks.one(NAMESPACE).urn in child.dependencies


def test_the_guard_rails_take_back_hand_edited_fields(stage_run: StageRun) -> None:
    """Found by the real engine: a Pod Security label relaxed by hand made the repairing ``up`` fail on
    the server-side apply field conflict. The namespace and its guard rails are force-applied; the
    workload is not (a hand edit there stops the next ``up`` for a person to look at)."""
    _, mocks = stage_run("staging")
    environment = mocks.one(ENVIRONMENT, "hello-env")
    for child in mocks.children_of(environment.urn):
        assert child.plain_inputs["metadata"]["annotations"] == {"pulumi.com/patchForce": "true"}, child.type
    deployment = mocks.one("kubernetes:apps/v1:Deployment", "hello-workload-deployment")
    assert "pulumi.com/patchForce" not in (deployment.plain_inputs["metadata"].get("annotations") or {})


def test_environment_outputs(run_components: Callable[..., RecordingMocks]) -> None:
    made: list[Environment] = []
    run_components(
        lambda: made.append(
            Environment(
                "hello-env",
                EnvironmentArgs(
                    namespace="hello-qa", service_name="hello", team="platform", stage="qa",
                    quota=namespace_quota(pods=4, per_pod=RESOURCES), container_defaults=RESOURCES,
                ),
            )
        )
    )  # fmt: skip
    assert _sync_await(made[0].namespace.future()) == "hello-qa"
    assert made[0].labels[labels.STAGE_LABEL] == "qa"


# ---------------------------------------------------------------------------------------------
# The explicit provider


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_every_kubernetes_object_uses_the_stack_provider(stage_run: StageRun, stage: str) -> None:
    _, mocks = stage_run(stage)
    provider = mocks.one(PROVIDER)
    assert provider.name == "hello-k8s"
    assert provider.parent == mocks.one("service-lifecycle:index:ServiceStack").urn
    objects = mocks.kubernetes_objects()
    assert len(objects) >= 11
    for resource in objects:
        assert resource.provider is not None and resource.provider.startswith(provider.urn + "::"), resource.name


def test_provider_uses_server_side_apply_and_the_configured_context(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    inputs = mocks.one(PROVIDER).plain_inputs
    assert inputs["enableServerSideApply"] == "true"
    assert inputs["context"] == "production"
    assert "kubeconfig" not in inputs  # none in the stack file: the ambient kubeconfig


def test_provider_kubeconfig_stays_secret(stage_run: StageRun) -> None:
    _, mocks = stage_run("staging", kubeconfig="apiVersion: v1\nkind: Config\n", kubeContext=None)
    inputs = mocks.one(PROVIDER).inputs
    assert is_secret(inputs["kubeconfig"])
    assert mocks.one(PROVIDER).plain_inputs["kubeconfig"].startswith("apiVersion: v1")
    assert "context" not in inputs


def test_sunset_has_no_provider_and_no_environment(stage_run: StageRun) -> None:
    _, mocks = stage_run("production", stage="sunset", replicas=1)
    assert mocks.by_type(PROVIDER) == []
    assert mocks.kubernetes_objects() == []

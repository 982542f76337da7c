"""Every Kubernetes object the offline plan writes, for both stacks, checked by the real schema tool.

The plans come from ``python -m components plan --stack S --out DIR`` run once per stack in a
subprocess (the ``offline_plan`` session fixture); the objects are read back from the YAML files
the plan wrote, i.e. what a reviewer or ``kubectl`` would see.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from components import labels
from components.config.settings import cpu_millicores, key, memory_bytes
from components.config.stack_config import load_stack_config

STACKS = ("staging", "production")
CUSTOM_RESOURCE_GROUPS = frozenset({"monitoring.coreos.com"})
"""API groups of custom resources: kubernetes-validate has no schema for them (Monitoring checks them)."""

Plan = Callable[[str], tuple[dict[str, Any], Path]]


def manifests(offline_plan: Plan, stack: str) -> list[dict[str, Any]]:
    _, out = offline_plan(stack)
    files = sorted((out / "manifests").glob("*.yaml"))
    assert files, f"the {stack} plan wrote no manifests"
    return [yaml.safe_load(path.read_text()) for path in files]


def kubernetes_version(project_dir: Path, stack: str) -> str:
    return load_stack_config(project_dir, stack).values[key("kubernetesVersion")]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def public_services(objects: list[dict[str, Any]]) -> list[str]:
    """Services reachable from outside the cluster without Cloudflare."""
    return [
        f"{o['metadata'].get('namespace')}/{o['metadata']['name']}"
        for o in of_kind(objects, "Service")
        if (o.get("spec") or {}).get("type") in ("LoadBalancer", "NodePort") or (o.get("spec") or {}).get("externalIPs")
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_validates_strictly_for_the_targeted_version(
    offline_plan: Plan, project_dir: Path, stack: str
) -> None:
    version = kubernetes_version(project_dir, stack)
    objects = manifests(offline_plan, stack)
    validated: Counter[str] = Counter()
    for obj in objects:
        group = str(obj.get("apiVersion", "")).rpartition("/")[0]
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert group in CUSTOM_RESOURCE_GROUPS, f"no schema for {obj.get('apiVersion')} {obj.get('kind')}"
            continue
        validated[obj["kind"]] += 1
    for kind in ("Namespace", "ResourceQuota", "LimitRange", "NetworkPolicy", "ServiceAccount", "ConfigMap"):
        assert validated[kind] >= 1, kind
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert validated[kind] >= 1, kind


def test_strict_validation_catches_what_loose_validation_lets_through(offline_plan: Plan, project_dir: Path) -> None:
    version = kubernetes_version(project_dir, "production")
    deployment = named(manifests(offline_plan, "production"), "Deployment", "hello")
    deployment["spec"]["template"]["spec"]["containers"][0]["read_only_root_filesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_of_the_plan_is_written(offline_plan: Plan, stack: str) -> None:
    plan, _ = offline_plan(stack)
    recorded = [
        r
        for r in plan["resources"]
        if r["type"].startswith("kubernetes:") and r["custom"] and not r["type"].startswith("kubernetes:helm.sh")
    ]
    assert len(manifests(offline_plan, stack)) == len(recorded)


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_has_an_explicit_unique_name(offline_plan: Plan, stack: str) -> None:
    objects = manifests(offline_plan, stack)
    identities = Counter((o["kind"], o["metadata"].get("namespace"), o["metadata"].get("name")) for o in objects)
    assert all(name for _, _, name in identities)
    assert [i for i, n in identities.items() if n > 1] == []


def test_no_loadbalancer_or_nodeport_service_in_either_plan(offline_plan: Plan) -> None:
    for stack in STACKS:
        objects = manifests(offline_plan, stack)
        assert of_kind(objects, "Service"), stack
        assert public_services(objects) == [], stack


def test_public_service_check_catches_each_way_out() -> None:
    def service(**spec: Any) -> dict[str, Any]:
        return {"kind": "Service", "metadata": {"name": "x", "namespace": "n"}, "spec": spec}

    assert public_services([service(type="LoadBalancer")]) == ["n/x"]
    assert public_services([service(type="NodePort")]) == ["n/x"]
    assert public_services([service(type="ClusterIP", externalIPs=["203.0.113.7"])]) == ["n/x"]
    assert public_services([service(type="ClusterIP")]) == []


def test_namespace_is_protected_in_production_only(offline_plan: Plan) -> None:
    for stack, protected in (("staging", False), ("production", True)):
        plan, _ = offline_plan(stack)
        namespaces = [r for r in plan["resources"] if r["type"] == "kubernetes:core/v1:Namespace"]
        assert [r["inputs"]["metadata"]["name"] for r in namespaces] == [f"hello-{stack}"]
        assert namespaces[0]["protect"] is protected, stack


@pytest.mark.parametrize("stack", STACKS)
def test_app_and_its_guard_rails_are_in_the_plan(offline_plan: Plan, stack: str) -> None:
    objects = manifests(offline_plan, stack)
    namespace = named(objects, "Namespace", f"hello-{stack}")
    assert namespace["metadata"]["labels"][labels.STAGE_LABEL] == stack
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = named(objects, "Deployment", "hello")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = named(objects, "PodDisruptionBudget", "hello")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    policy = named(objects, "NetworkPolicy", "hello-ingress")
    assert policy["spec"]["ingress"][0]["from"][0] == {
        "podSelector": {"matchLabels": labels.selector("hello", labels.COMPONENT_TUNNEL)}
    }
    hpa = named(objects, "HorizontalPodAutoscaler", "hello")
    assert hpa["spec"]["minReplicas"] >= (2 if stack == "production" else 1)


@pytest.mark.parametrize("stack", STACKS)
def test_quota_admits_every_pod_the_plan_runs_during_a_rollout(offline_plan: Plan, stack: str) -> None:
    """The app at its autoscaling ceiling and cloudflared, each with a surge pod, fit the quota."""
    assert_rollout_fits_quota(manifests(offline_plan, stack), f"hello-{stack}")


def test_quota_fits_cloudflared_when_the_app_is_smaller_than_it(
    make_settings: Callable[..., Any], run_components: Callable[..., Any]
) -> None:
    """cloudflared's own requests and limits count, not the app's per-pod size (it can be bigger)."""
    from components.service import ServiceStack, ServiceStackArgs

    settings = make_settings("staging", cpuRequest="50m", cpuLimit="100m", memoryRequest="32Mi", memoryLimit="64Mi")
    mocks = run_components(lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)) and None, stack="staging")
    objects = [r.plain_inputs for r in mocks.kubernetes_objects()]
    assert_rollout_fits_quota(objects, "hello-staging")


def assert_rollout_fits_quota(objects: list[dict[str, Any]], namespace: str) -> None:
    hard = named(objects, "ResourceQuota", "hello-quota")["spec"]["hard"]
    ceilings = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]["maxReplicas"]
        for h in of_kind(objects, "HorizontalPodAutoscaler")
        if h["metadata"]["namespace"] == namespace
    }
    pods = 0
    totals = {"requests.cpu": 0, "limits.cpu": 0, "requests.memory": 0, "limits.memory": 0}
    deployments = [d for d in of_kind(objects, "Deployment") if d["metadata"]["namespace"] == namespace]
    assert len(deployments) >= 1
    for deployment in deployments:
        count = int(ceilings.get(deployment["metadata"]["name"], deployment["spec"].get("replicas", 1))) + 1
        pods += count
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            r = c["resources"]
            totals["requests.cpu"] += count * cpu_millicores(str(r["requests"]["cpu"]))
            totals["limits.cpu"] += count * cpu_millicores(str(r["limits"]["cpu"]))
            totals["requests.memory"] += count * memory_bytes(str(r["requests"]["memory"]))
            totals["limits.memory"] += count * memory_bytes(str(r["limits"]["memory"]))
    assert pods <= int(hard["pods"])
    for name in ("requests.cpu", "limits.cpu"):
        assert totals[name] <= cpu_millicores(hard[name]), name
    for name in ("requests.memory", "limits.memory"):
        assert totals[name] <= memory_bytes(hard[name]), name


@pytest.mark.parametrize("version", ["1.25", "1.29", "1.30", "1.37"])
def test_environment_and_workload_validate_for_every_supported_version_they_may_target(
    make_settings: Callable[..., Any], run_components: Callable[..., Any], version: str
) -> None:
    from components.service import ServiceStack, ServiceStackArgs

    settings = make_settings("staging", kubernetesVersion=version)
    mocks = run_components(lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)) and None, stack="staging")
    mine = [r for r in mocks.kubernetes_objects() if ":Environment$" in r.urn or ":Workload$" in r.urn]
    assert len(mine) == 12  # with the pull Secret of the sample stacks' private ghcr.io images
    for resource in mine:
        kubernetes_validate.validate(resource.plain_inputs, version, strict=True)

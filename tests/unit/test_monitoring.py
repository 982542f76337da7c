"""Monitoring and its rules under the recording mocks: per-service objects, the rules as data, and which
stages are monitored (the cluster stack is in test_cluster_monitoring.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pulumi
import pytest

from components import labels
from components.config.settings import Settings, SettingsError
from components.monitoring import release, rule_files, rules
from components.monitoring.component import (
    TUNNEL_METRICS_PORT,
    Monitoring,
    MonitoringArgs,
    app_monitor,
    dashboard,
    dashboard_config_map,
    dashboard_exprs,
    dashboard_map_name,
    prometheus_rule,
    tunnel_monitor,
)
from components.service import ServiceStack, ServiceStackArgs
from components.testing import RecordingMocks

MONITORING = "service-lifecycle:index:Monitoring"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
WEBHOOK = "https://alerts.example.net/hooks/t0k3n-9d2f7c1e"
PASSWORD = "grafana-pw-5b1e0c77"
RUNBOOK = "https://runbooks.example.com/hello.md"
SOURCE = "example-org/service-lifecycle/staging"
STACK_OUTPUTS = {SOURCE: {"image_ref": "ghcr.io/example-org/hello@sha256:" + "c" * 64}}


def _args(**overrides: Any) -> MonitoringArgs:
    values: dict[str, Any] = {
        "service_name": "hello",
        "team": "platform",
        "stage": "staging",
        "namespace": "hello-staging",
        "app_selector": labels.selector("hello", labels.COMPONENT_SERVER),
        "app_port_name": "http",
        "slo_availability": 99.5,
        "latency_p95_seconds": 0.5,
        "runbook_url": RUNBOOK,
    }
    values.update(overrides)
    return MonitoringArgs(**values)


def _run(run_components: Callable[..., RecordingMocks], args: MonitoringArgs) -> RecordingMocks:
    def program() -> None:
        Monitoring("hello-monitoring", args)

    return run_components(program, stack="staging")


def _params(**overrides: Any) -> rules.RuleParams:
    values: dict[str, Any] = {
        "service": "hello",
        "namespace": "hello-staging",
        "team": "platform",
        "slo_availability": 99.9,
        "latency_p95_seconds": 0.3,
        "app_job": "hello",
        "tunnel_job": "hello-cloudflared",
        "runbook_url": RUNBOOK,
    }
    values.update(overrides)
    return rules.RuleParams(**values)


# ---------------------------------------------------------------------------------------------
# The rules as data


def test_every_alert_routes_and_explains_itself() -> None:
    groups = rules.rule_groups(_params())
    alerts = [r for g in groups["groups"] for r in g["rules"] if "alert" in r]
    assert sorted(a["alert"] for a in alerts) == sorted(
        [
            "ErrorBudgetBurnFast", "ErrorBudgetBurnSlow", "HighErrorRatio", "HighLatencyP95", "ServiceDown",
            "PodRestarting", "PodCrashLooping", "DeploymentReplicasUnavailable", "TunnelDown", "TunnelDegraded",
            "TunnelOriginErrors",
        ]
    )  # fmt: skip
    for alert in alerts:
        assert alert["labels"]["team"] == "platform"
        assert alert["labels"]["service"] == "hello"
        assert alert["labels"]["severity"] in ("critical", "warning")
        # The release it fires under, read from the recorded series of this service only.
        assert 'query `service:release:info{namespace="hello-staging",job="hello"}`' in alert["labels"]["release"]
        assert set(alert["annotations"]) == {"summary", "description", "runbook_url"}
        assert alert["annotations"]["runbook_url"] == f"{RUNBOOK}#{alert['alert'].lower()}"
        # every selector is scoped to the service's namespace: no alert about someone else's pods
        assert 'namespace="hello-staging"' in alert["expr"] or "service:" in alert["expr"]
    pages = {a["alert"] for a in alerts if a["labels"]["severity"] == "critical"}
    assert pages == {"ErrorBudgetBurnFast", "ServiceDown", "PodCrashLooping", "TunnelDown"}


def test_burn_rate_thresholds_follow_the_objective() -> None:
    fast = next(
        r for g in rules.rule_groups(_params())["groups"] for r in g["rules"] if r.get("alert") == "ErrorBudgetBurnFast"
    )
    assert "ratio_rate1h" in fast["expr"] and "ratio_rate5m" in fast["expr"]
    assert fast["expr"].count("> (14.4 * 0.001)") == 2
    assert fast["expr"].count("> (6 * 0.001)") == 2
    slow = next(
        r
        for r in rules.rule_groups(_params(slo_availability=99.5))["groups"][0]["rules"]
        if r.get("alert") == "ErrorBudgetBurnSlow"
    )
    assert slow["alert"] == "ErrorBudgetBurnSlow"
    assert slow["expr"].count("> (3 * 0.005)") == 2 and slow["expr"].count("> (1 * 0.005)") == 2
    latency = next(r for r in rules.rule_groups(_params())["groups"][0]["rules"] if r.get("alert") == "HighLatencyP95")
    assert latency["expr"].endswith("> 0.3")


def test_every_window_an_alert_reads_is_recorded() -> None:
    groups = rules.rule_groups(_params())
    recorded = rule_files.recorded_names(groups)
    read = set().union(*(rule_files.metric_names(e) for e in rule_files.exprs(groups)))
    assert {n for n in read if n.startswith("service:")} <= recorded
    for window in ("5m", "30m", "1h", "2h", "6h", "1d", "3d"):
        assert f"service:http_request_errors:ratio_rate{window}" in recorded


def test_probe_and_scrape_routes_are_not_user_requests() -> None:
    for expr in rule_files.exprs(rules.rule_groups(_params())):
        if "http_request" in expr and "service:" not in expr:
            assert 'route!~"/healthz|/readyz|/metrics"' in expr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slo_availability": 90.0}, "slo_availability is 90.0"),
        ({"slo_availability": 100.0}, "slo_availability is 100.0"),
        ({"latency_p95_seconds": 0.0}, "latency_p95_seconds is 0.0"),
        ({"namespace": 'x"} or vector(1) #'}, "namespace is"),
        ({"team": ""}, "team is ''"),
        ({"error_ratio_threshold": 1.5}, "error_ratio_threshold is 1.5"),
    ],
)
def test_rule_parameters_that_make_no_sense_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(rules.RulesError, match=re.escape(message)):
        rules.rule_groups(_params(**overrides))


def test_metric_names_finds_metrics_not_labels_or_functions() -> None:
    expr = 'sum by (namespace, job, le) (rate(http_request_duration_seconds_bucket{route!~"/a|/b",le="+Inf"}[5m]))'
    assert rule_files.metric_names(expr) == {"http_request_duration_seconds_bucket"}
    assert rule_files.metric_names('absent(up{job="x"} == 1)') == {"up"}


def test_rule_file_yaml_round_trips() -> None:
    import yaml

    groups = rules.rule_groups(_params())
    text = rules.to_yaml(groups)
    assert yaml.safe_load(text) == groups
    assert "&id" not in text  # no anchors: the file is read and diffed by people


# ---------------------------------------------------------------------------------------------
# Per-service objects


def test_per_service_monitors_rules_and_dashboard(run_components: Callable[..., RecordingMocks]) -> None:
    mocks = _run(run_components, _args())
    component = mocks.one(MONITORING)
    objects = [mocks.one(t) for t in (SERVICE_MONITOR, POD_MONITOR, PROMETHEUS_RULE, CONFIG_MAP)]
    for obj in objects:
        assert obj.parent == component.urn
        assert obj.name.startswith("hello-monitoring-")
    assert mocks.by_type(RELEASE) == []

    app = mocks.one(SERVICE_MONITOR).plain_inputs
    assert app["apiVersion"] == "monitoring.coreos.com/v1"
    assert app["metadata"]["namespace"] == "hello-staging"
    assert app["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert app["metadata"]["labels"][labels.TEAM_LABEL] == "platform"
    assert app["spec"]["selector"] == {"matchLabels": labels.selector("hello", labels.COMPONENT_SERVER)}
    assert app["spec"]["namespaceSelector"] == {"matchNames": ["hello-staging"]}
    (endpoint,) = app["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert endpoint["relabelings"] == [{"action": "replace", "targetLabel": "job", "replacement": "hello"}]

    tunnel = mocks.one(POD_MONITOR).plain_inputs
    assert tunnel["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert tunnel["spec"]["selector"] == {"matchLabels": labels.selector("hello", labels.COMPONENT_TUNNEL)}
    (pod_endpoint,) = tunnel["spec"]["podMetricsEndpoints"]
    assert pod_endpoint["port"] == TUNNEL_METRICS_PORT
    assert pod_endpoint["relabelings"][0]["replacement"] == "hello-cloudflared"

    rule = mocks.one(PROMETHEUS_RULE).plain_inputs
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    expected = rules.rule_groups(_args().rule_params("hello-staging"))
    assert rule["spec"] == json.loads(json.dumps(expected))


def test_dashboard_configmap_is_found_by_grafana_and_valid(run_components: Callable[..., RecordingMocks]) -> None:
    mocks = _run(run_components, _args(monitoring_namespace="observability"))
    config_map = mocks.one(CONFIG_MAP).plain_inputs
    assert config_map["metadata"]["namespace"] == "observability"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    kubernetes_validate.validate(config_map, "1.31", strict=True)
    (board_json,) = config_map["data"].values()
    board = json.loads(board_json)
    assert board["title"] == "hello (staging)"
    used = set().union(*(rule_files.metric_names(e) for e in dashboard_exprs(board)))
    assert used and used <= set(rules.APP_METRICS), used - set(rules.APP_METRICS)
    assert all('namespace="hello-staging"' in e for e in dashboard_exprs(board))


def test_the_tunnel_is_not_scraped_when_the_stage_has_no_exposure(
    run_components: Callable[..., RecordingMocks],
) -> None:
    mocks = _run(run_components, _args(monitor_tunnel=False))
    assert mocks.by_type(POD_MONITOR) == []
    assert len(mocks.by_type(SERVICE_MONITOR)) == 1
    # Nothing scrapes cloudflared, so TunnelDown's absent() would page forever: no tunnel alerts either.
    spec = mocks.one(PROMETHEUS_RULE).plain_inputs["spec"]
    names = rule_files.alert_names(spec)
    assert names and not [n for n in names if n.startswith("Tunnel")], names
    assert not any("cloudflared" in e for e in rule_files.exprs(spec))
    assert "TunnelDown" in rule_files.alert_names(rules.rule_groups(_args().rule_params("hello-staging")))


def test_the_tunnel_port_name_is_the_one_exposure_gives_cloudflared() -> None:
    from components.exposure import METRICS_PORT_NAME

    assert TUNNEL_METRICS_PORT == METRICS_PORT_NAME


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"app_selector": {}}, "app_selector: empty"),
        ({"slo_availability": 80.0}, "slo_availability is 80.0"),
    ],
)
def test_bad_arguments_fail_before_anything_is_registered(
    run_components: Callable[..., RecordingMocks], overrides: dict[str, Any], message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(Exception, match=re.escape(message)):
        _run(lambda fn, **kw: run_components(fn, mocks=mocks, **kw), _args(**overrides))
    assert [r for r in mocks.resources if r.type != "pulumi:pulumi:Stack"] == []


def test_monitors_wait_for_what_they_are_told_to(run_components: Callable[..., RecordingMocks]) -> None:
    """``after`` (the cluster stack's CRD-bearing release, when the same program installs it)."""

    def program() -> None:
        crds = pulumi.CustomResource("test:index:Crds", "crds", {})
        Monitoring("hello-monitoring", _args(after=[crds]))

    mocks = run_components(program, stack="staging")
    crds = mocks.one("test:index:Crds")
    for kind in (SERVICE_MONITOR, POD_MONITOR, PROMETHEUS_RULE, CONFIG_MAP):
        resource = mocks.one(kind)
        assert crds.urn in resource.dependencies
        assert not resource.retain_on_delete


# ---------------------------------------------------------------------------------------------
# Stages


def test_staging_and_production_are_monitored_and_sunset_is_not(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]
) -> None:
    for stage in ("staging", "production"):
        settings = make_settings(stage)
        mocks = run_components(
            lambda s=settings: ServiceStack("hello", ServiceStackArgs(settings=s)) and None,
            stack=stage,
            stack_outputs=STACK_OUTPUTS,
        )
        component = mocks.one(MONITORING, "hello-monitoring")
        assert component.parent == mocks.one("service-lifecycle:index:ServiceStack").urn
        rule = mocks.one(PROMETHEUS_RULE).plain_inputs
        assert rule["metadata"]["namespace"] == f"hello-{stage}"
        fast = next(r for r in rule["spec"]["groups"][0]["rules"] if r.get("alert") == "ErrorBudgetBurnFast")
        budget = rules._num(rules.error_budget(settings.monitoring.slo_availability))
        assert f"(14.4 * {budget})" in fast["expr"]
        workload = mocks.one("service-lifecycle:index:Workload")
        assert workload.urn not in component.dependencies  # nothing depends on Monitoring, it on them
        monitors = [mocks.one(SERVICE_MONITOR), mocks.one(POD_MONITOR), mocks.one(PROMETHEUS_RULE)]
        assert all(m.provider and "-k8s::" in m.provider for m in monitors)
    sunset = make_settings("production", stage="sunset", promoteFromStack=None, replicas=1)
    mocks = run_components(lambda: ServiceStack("hello", ServiceStackArgs(settings=sunset)) and None, stack="sunset")
    assert mocks.by_type(MONITORING) == []
    assert [r for r in mocks.resources if r.type.startswith("kubernetes:monitoring.coreos.com")] == []
    assert mocks.by_type(CONFIG_MAP) == []


def test_slo_too_low_for_the_fast_burn_page_is_a_settings_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError, match=r"service-lifecycle:sloAvailabilityTarget: got '90\.0'"):
        make_settings("staging", sloAvailabilityTarget="90")
    with pytest.raises(SettingsError, match="service-lifecycle:monitoringRunbookUrl"):
        make_settings("staging", monitoringRunbookUrl="http://insecure.example.com/rb")


def test_the_plan_writes_the_rule_file_the_cluster_gets(
    offline_plan: Callable[[str], tuple[dict[str, Any], Path]],
) -> None:
    import yaml

    plan_json, out = offline_plan("staging")
    (rule,) = [r for r in plan_json["resources"] if r["type"] == PROMETHEUS_RULE]
    written = out / "rules" / "hello.rules.yml"
    assert yaml.safe_load(written.read_text()) == rule["inputs"]["spec"]


def test_dashboard_builder_reads_only_app_metrics() -> None:
    board = dashboard(service="hello", stage="production", namespace="hello-production", slo_availability=99.9,
                      latency_p95_seconds=0.3)  # fmt: skip
    names = set().union(*(rule_files.metric_names(e) for e in dashboard_exprs(board)))
    assert names == {
        "http_requests_total", "http_request_duration_seconds_bucket", "http_request_duration_seconds_sum",
        "http_request_duration_seconds_count", "app_ready", "app_build_info",
    }  # fmt: skip


def test_every_alert_has_a_runbook_section() -> None:
    runbook = (Path(__file__).resolve().parents[2] / "docs" / "runbooks" / "monitoring.md").read_text()
    headings = {line[3:].strip().lower() for line in runbook.splitlines() if line.startswith("## ")}
    assert set(map(str.lower, rule_files.alert_names(rules.rule_groups(_params())))) <= headings


def test_alerts_come_after_the_series_they_read_in_one_group() -> None:
    (group,) = rules.rule_groups(_params())["groups"]
    seen: set[str] = set()
    for rule in group["rules"]:
        if "record" in rule:
            seen.add(rule["record"])
        else:
            assert {n for n in rule_files.metric_names(rule["expr"]) if n.startswith("service:")} <= seen, rule["alert"]


def test_the_rule_group_is_the_recorded_series_then_each_alert_family_in_order() -> None:
    """rule_groups is assembled from one function per family; the order and the membership are pinned here,
    and the tunnel family is left out where cloudflared is not scraped."""
    params = _params()
    families = [rules.error_budget_alerts(params), rules.service_alerts(params), rules.workload_alerts(params)]
    assert [[a["alert"] for a in family] for family in [*families, rules.tunnel_alerts(params)]] == [
        ["ErrorBudgetBurnFast", "ErrorBudgetBurnSlow"],
        ["HighErrorRatio", "HighLatencyP95", "ServiceDown"],
        ["PodRestarting", "PodCrashLooping", "DeploymentReplicasUnavailable"],
        ["TunnelDown", "TunnelDegraded", "TunnelOriginErrors"],
    ]
    recorded = [*rules.recording_rules(params), *rules.release_rules(params)]
    assert [r["record"] for r in recorded][:2] == [rules.REQUESTS_RATE, rules.LATENCY_P95]
    assert [r["record"] for r in recorded][-2:] == [release.RELEASE_IN_VERIFICATION, release.RELEASE]
    (group,) = rules.rule_groups(params)["groups"]
    assert group["rules"] == [*recorded, *(a for family in families for a in family), *rules.tunnel_alerts(params)]
    (without_tunnel,) = rules.rule_groups(_params(tunnel=False))["groups"]
    assert without_tunnel["rules"] == [*recorded, *(a for family in families for a in family)]


def test_each_object_monitoring_registers_has_its_own_step(run_components: Callable[..., RecordingMocks]) -> None:
    """The step functions register exactly one object each, named ``<name>-<role>``, with what the component
    gives them; the dashboard's name is the component's ``dashboard_name`` output."""
    args = _args()
    assert dashboard_map_name(args) == "hello-staging-dashboard"

    def program() -> None:
        namespace = pulumi.Output.from_input("hello-staging")
        opts = pulumi.ResourceOptions()
        marked = {"release": "r"}
        app_monitor("m", args, namespace=namespace, monitor_labels=marked, opts=opts)
        tunnel_monitor("m", args, namespace=namespace, monitor_labels=marked, opts=opts)
        prometheus_rule("m", args, namespace=namespace, monitor_labels=marked, opts=opts)
        dashboard_config_map("m", args, namespace=namespace, common_labels={"team": "t"}, opts=opts)

    mocks = run_components(program, stack="staging")
    assert sorted((r.type, r.name) for r in mocks.resources) == sorted(
        [(SERVICE_MONITOR, "m-app-monitor"), (POD_MONITOR, "m-tunnel-monitor"), (PROMETHEUS_RULE, "m-rules"),
         (CONFIG_MAP, "m-dashboard")]
    )  # fmt: skip
    assert mocks.one(POD_MONITOR).plain_inputs["metadata"]["name"] == "hello-cloudflared"
    assert mocks.one(PROMETHEUS_RULE).plain_inputs["spec"] == rules.rule_groups(args.rule_params("hello-staging"))
    board = mocks.one(CONFIG_MAP).plain_inputs["metadata"]
    assert board["name"] == "hello-staging-dashboard"
    assert board["labels"] == {"team": "t", "grafana_dashboard": "1"}


def test_the_release_window_is_the_verification_window_and_must_be_positive() -> None:
    (in_window, _) = rules.release_rules(_params(release_window_seconds=120))
    assert in_window["expr"].endswith("offset 120s)")
    assert "release_window_seconds is 0; expected at least 1" in _params(release_window_seconds=0).problems()


def test_a_worker_gets_only_the_pod_alerts_and_no_recorded_request_series() -> None:
    groups = rules.rule_groups(_params(serves_requests=False, tunnel=False))
    names = [r.get("alert") or r.get("record") for g in groups["groups"] for r in g["rules"]]
    assert names == ["PodRestarting", "PodCrashLooping", "DeploymentReplicasUnavailable"]
    assert not [e for e in rule_files.exprs(groups) if "http_request" in e]

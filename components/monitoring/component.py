"""Monitoring: what watches one service in one stage.

Per service (docs/design.md steps 5 and 10), all Prometheus Operator custom resources labelled
``release: <prometheus_release>`` so kube-prometheus-stack's default selectors
(``serviceMonitorSelectorNilUsesHelmValues``, ``podMonitorSelectorNilUsesHelmValues``,
``ruleSelectorNilUsesHelmValues``: true) pick them up in any namespace:

- a ServiceMonitor for the app's Service (named port, ``/metrics``), ``job=<service>``;
- a PodMonitor for the cloudflared connectors (named ``metrics`` port), ``job=<service>-cloudflared``.
  cloudflared only dials out and has no Service; a PodMonitor scrapes its pods directly instead
  of adding a Service whose only purpose would be discovery;
- a PrometheusRule whose spec is :func:`components.monitoring.rules.rule_groups` (the same document the
  offline plan writes for promtool);
- a Grafana dashboard ConfigMap in the monitoring namespace, found by Grafana's sidecar through
  the ``grafana_dashboard: "1"`` label. Its panels read only the app's own metrics.

Nothing cluster-wide: the monitoring stack these objects need (kube-prometheus-stack, Loki, Alloy)
belongs to the cluster and is registered once, by :mod:`components.monitoring.cluster`; when the
same program registers it, pass its ``ready`` release as ``after`` so the objects wait for their CRDs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.labels import DEFAULT_SCHEME, LabelScheme
from components.monitoring.rule_files import alert_names
from components.monitoring.rules import RuleParams, rule_groups

TYPE: Final = "service-lifecycle:index:Monitoring"

API_VERSION: Final = "monitoring.coreos.com/v1"
TUNNEL_METRICS_PORT: Final = "metrics"
"""Name of cloudflared's metrics port on its pods (``components.exposure.METRICS_PORT_NAME``)."""
DASHBOARD_LABEL: Final = "grafana_dashboard"
DASHBOARD_LABEL_VALUE: Final = "1"


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    """Arguments of :class:`Monitoring`. Kubernetes inputs are the Workload's outputs."""

    service_name: str
    """DNS-1123 name of the service: the ``service`` label of its alerts. Required."""
    team: str
    """Owning team: the ``team`` label Alertmanager routes on. Required."""
    stage: str
    """Stage name, for labels and the dashboard's name. Required."""
    namespace: pulumi.Input[str]
    """Namespace of the service (the Workload's output). Required."""
    app_selector: Mapping[str, str]
    """Labels of the app's Service (the Workload's ``selector``). Required."""
    app_port_name: str
    """Name of the app's Service port that serves ``/metrics`` (the Workload's ``port_name``). Required."""
    slo_availability: float
    """Availability objective in percent, e.g. 99.9. Required."""
    latency_p95_seconds: float
    """p95 latency above which the latency alert fires. Required."""
    runbook_url: str | None = None
    """Runbook the alerts link to (``#<alert name>`` is appended). Default None: no runbook link."""
    release_window_seconds: int = 300
    """How long a new release alone is named by the alerts' ``release`` label (``verifyWindowSeconds``). Default 300."""
    serves_requests: bool = True
    """The app serves HTTP: scraped by a ServiceMonitor, with request SLO, error and latency alerts. False (a
    worker with no Service): not scraped; alerts on its pods only (restarts, crash loops, missing replicas).
    Default True."""
    monitor_tunnel: bool = True
    """Scrape cloudflared and alert on tunnel health (stages with Exposure). Default True."""
    tunnel_selector: Mapping[str, str] | None = None
    """Labels of the cloudflared pods. Default None: ``labels.selector(service, COMPONENT_TUNNEL)``."""
    tunnel_metrics_port: str = TUNNEL_METRICS_PORT
    """Name of cloudflared's metrics port. Default ``metrics`` (what Exposure names it)."""
    monitoring_namespace: str = "monitoring"
    """Namespace of the monitoring stack: the dashboard goes there. Default ``monitoring``."""
    prometheus_release: str = "kube-prometheus-stack"
    """Helm release name of kube-prometheus-stack, put on every monitor and rule as ``release``.
    Default ``kube-prometheus-stack``."""
    scrape_interval: str = "30s"
    """How often Prometheus scrapes the app and cloudflared. Default ``30s``."""
    after: Sequence[pulumi.Resource] = ()
    """Resources the monitors, rules and dashboard wait for: the cluster stack's kube-prometheus-stack
    release when this program installs it (it brings the CRDs). Default empty."""
    kubernetes_provider: pulumi.ProviderResource | None = None
    """Kubernetes provider for every object. Default None: the inherited/ambient one."""
    label_scheme: LabelScheme = DEFAULT_SCHEME
    """Label keys and managed-by value (settings ``labelPrefix``, ``managedBy``). Default: the library's."""
    instance_name: str | None = None
    """Names the dashboard (its ConfigMap in the shared monitoring namespace, its uid). Default None:
    ``<service_name>-<stage>``; two stacks at one stage on one cluster need distinct ones (the
    ``nameSuffix`` setting gives ``<service>-<stage>-<suffix>``)."""

    @property
    def instance(self) -> str:
        """:attr:`instance_name`, or ``<service_name>-<stage>``."""
        return self.instance_name or f"{self.service_name}-{self.stage}"

    def rule_params(self, namespace: str) -> RuleParams:
        """The alert rules' parameters for ``namespace``."""
        return RuleParams(
            service=self.service_name,
            namespace=namespace,
            team=self.team,
            slo_availability=self.slo_availability,
            latency_p95_seconds=self.latency_p95_seconds,
            app_job=self.service_name,
            tunnel_job=tunnel_job(self.service_name),
            runbook_url=self.runbook_url,
            tunnel=self.monitor_tunnel,
            release_window_seconds=self.release_window_seconds,
            serves_requests=self.serves_requests,
        )

    def problems(self) -> list[str]:
        """What is wrong with these arguments (empty when valid)."""
        found = self.rule_params("namespace-checked-later").problems()
        if not self.app_selector:
            found.append("app_selector: empty; it would select every Service in the namespace")
        return found


def tunnel_job(service: str) -> str:
    """``job`` label of a service's cloudflared scrape target."""
    return f"{service}-cloudflared"


# ---------------------------------------------------------------------------------------------
# Plain-data builders (tested on their own)


def _relabel_job(job: str) -> list[dict[str, str]]:
    # A fixed job name, whatever the Service or pods are called: the rules select on it.
    return [{"action": "replace", "targetLabel": "job", "replacement": job}]


def _scrape_endpoint(*, port: str, job: str, interval: str) -> dict[str, Any]:
    return {
        "port": port,
        "path": "/metrics",
        "scheme": "http",
        "interval": interval,
        "scrapeTimeout": "10s",
        "relabelings": _relabel_job(job),
    }


def service_monitor_spec(
    *, namespace: str | pulumi.Output[str], selector: Mapping[str, str], port: str, job: str, interval: str
) -> dict[str, Any]:
    """ServiceMonitor spec scraping ``/metrics`` on the named port of the selected Service."""
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [_scrape_endpoint(port=port, job=job, interval=interval)],
    }


def pod_monitor_spec(
    *, namespace: str | pulumi.Output[str], selector: Mapping[str, str], port: str, job: str, interval: str
) -> dict[str, Any]:
    """PodMonitor spec scraping ``/metrics`` on the named port of the selected pods."""
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        "podMetricsEndpoints": [_scrape_endpoint(port=port, job=job, interval=interval)],
    }


def _panel(
    panel_id: int, title: str, targets: Sequence[tuple[str, str]], *, x: int, y: int, kind: str = "timeseries",
    unit: str = "short", width: int = 12, height: int = 8, thresholds: Sequence[tuple[float, str]] = (),
) -> dict[str, Any]:  # fmt: skip
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in thresholds]
    return {
        "id": panel_id,
        "type": kind,
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": width, "h": height},
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "targets": [
            {"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(
    *,
    service: str,
    stage: str,
    namespace: str,
    slo_availability: float,
    latency_p95_seconds: float,
    instance: str | None = None,
) -> dict[str, Any]:
    """The service's Grafana dashboard. Every query reads only metrics the app exports."""
    app = f'namespace="{namespace}",job="{service}"'
    users = app + ',route!~"/healthz|/readyz|/metrics"'
    rate = "[$__rate_interval]"
    total = f"sum(rate(http_requests_total{{{users}}}{rate}))"
    errors = f'sum(rate(http_requests_total{{{users},code=~"5.."}}{rate}))'
    ok = f'sum(rate(http_requests_total{{{users},code!~"5.."}}{rate}))'

    def quantile(q: str) -> str:
        return f"histogram_quantile({q}, sum by (le) (rate(http_request_duration_seconds_bucket{{{users}}}{rate})))"

    by_code = f"sum by (code) (rate(http_requests_total{{{app}}}{rate}))"
    by_route = f"sum by (route) (rate(http_requests_total{{{app}}}{rate}))"
    mean_latency = (
        f"sum by (route) (rate(http_request_duration_seconds_sum{{{app}}}{rate}))"
        f" / sum by (route) (rate(http_request_duration_seconds_count{{{app}}}{rate}))"
    )
    versions = f"count by (version, revision) (app_build_info{{{app}}})"
    budget = round(1 - slo_availability / 100, 12)
    panels = [
        _panel(1, "Availability (non-5xx share of user requests)", [(f"{ok} / {total}", "availability")],
               x=0, y=0, width=6, kind="stat", unit="percentunit"),
        _panel(2, "Requests per second", [(total, "requests/s")], x=6, y=0, width=6, kind="stat", unit="reqps"),
        _panel(3, "Ready pods", [(f"sum(app_ready{{{app}}})", "ready")], x=12, y=0, width=6, kind="stat"),
        _panel(4, "Running versions", [(versions, "{{version}} {{revision}}")], x=18, y=0, width=6, kind="stat"),
        _panel(5, "Requests by status code", [(by_code, "{{code}}")], x=0, y=8, unit="reqps"),
        _panel(6, f"5xx ratio (error budget {budget:.3%})", [(f"{errors} / {total}", "5xx ratio")],
               x=12, y=8, unit="percentunit", thresholds=[(budget, "red")]),
        _panel(7, f"Latency (p95 objective {latency_p95_seconds}s)",
               [(quantile("0.5"), "p50"), (quantile("0.95"), "p95"), (quantile("0.99"), "p99")],
               x=0, y=16, unit="s", thresholds=[(latency_p95_seconds, "red")]),
        _panel(8, "Mean latency by route", [(mean_latency, "{{route}}")], x=12, y=16, unit="s"),
        _panel(9, "Requests by route", [(by_route, "{{route}}")], x=0, y=24, width=24, unit="reqps"),
    ]  # fmt: skip
    return {
        "uid": f"sl-{instance or f'{service}-{stage}'}"[:40],
        "title": f"{service} ({stage})" if instance in (None, f"{service}-{stage}") else f"{service} ({instance})",
        "tags": ["service-lifecycle", service, stage],
        "timezone": "utc",
        "schemaVersion": 39,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {"text": "Prometheus", "value": "prometheus"},
                }
            ]
        },
        "panels": panels,
    }


def dashboard_exprs(board: Mapping[str, Any]) -> list[str]:
    """Every query of a dashboard."""
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


# ---------------------------------------------------------------------------------------------
# One function per object the component registers, in registration order.


def app_monitor(
    name: str,
    args: MonitoringArgs,
    *,
    namespace: pulumi.Output[str],
    monitor_labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """The app's ServiceMonitor (``<name>-app-monitor``), ``job=<service>``."""
    service = args.service_name
    return k8s.apiextensions.CustomResource(
        f"{name}-app-monitor",
        api_version=API_VERSION,
        kind="ServiceMonitor",
        metadata={"name": service, "namespace": namespace, "labels": monitor_labels},
        spec=service_monitor_spec(
            namespace=namespace, selector=args.app_selector, port=args.app_port_name, job=service,
            interval=args.scrape_interval,
        ),
        opts=opts,
    )  # fmt: skip


def tunnel_monitor(
    name: str,
    args: MonitoringArgs,
    *,
    namespace: pulumi.Output[str],
    monitor_labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """cloudflared's PodMonitor (``<name>-tunnel-monitor``), ``job=<service>-cloudflared``."""
    service = args.service_name
    tunnel_pods = args.tunnel_selector or labels.selector(service, labels.COMPONENT_TUNNEL)
    return k8s.apiextensions.CustomResource(
        f"{name}-tunnel-monitor",
        api_version=API_VERSION,
        kind="PodMonitor",
        metadata={"name": tunnel_job(service), "namespace": namespace, "labels": monitor_labels},
        spec=pod_monitor_spec(
            namespace=namespace, selector=tunnel_pods, port=args.tunnel_metrics_port,
            job=tunnel_job(service), interval=args.scrape_interval,
        ),
        opts=opts,
    )  # fmt: skip


def prometheus_rule(
    name: str,
    args: MonitoringArgs,
    *,
    namespace: pulumi.Output[str],
    monitor_labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.apiextensions.CustomResource:
    """The PrometheusRule (``<name>-rules``) whose spec is :func:`components.monitoring.rules.rule_groups`."""
    groups = namespace.apply(lambda ns: rule_groups(args.rule_params(ns)))
    return k8s.apiextensions.CustomResource(
        f"{name}-rules",
        api_version=API_VERSION,
        kind="PrometheusRule",
        metadata={"name": args.service_name, "namespace": namespace, "labels": monitor_labels},
        spec=groups,
        opts=opts,
    )


def dashboard_map_name(args: MonitoringArgs) -> str:
    """Name of the dashboard ConfigMap: ``<instance>-dashboard`` (``<service>-<stage>-dashboard``)."""
    return f"{args.instance}-dashboard"


def dashboard_config_map(
    name: str,
    args: MonitoringArgs,
    *,
    namespace: pulumi.Output[str],
    common_labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.ConfigMap:
    """The Grafana dashboard ConfigMap (``<name>-dashboard``) in the monitoring namespace."""
    service = args.service_name
    board = namespace.apply(
        lambda ns: json.dumps(
            dashboard(
                service=service, stage=args.stage, namespace=ns, slo_availability=args.slo_availability,
                latency_p95_seconds=args.latency_p95_seconds, instance=args.instance,
            ),
            indent=1, sort_keys=True,
        )
    )  # fmt: skip
    return k8s.core.v1.ConfigMap(
        f"{name}-dashboard",
        metadata={
            "name": dashboard_map_name(args),
            "namespace": args.monitoring_namespace,
            "labels": {**common_labels, DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE},
        },
        data={f"{args.instance}.json": board},
        opts=opts,
    )


# ---------------------------------------------------------------------------------------------
# The component


class Monitoring(pulumi.ComponentResource):
    """Scrape targets, alert rules and dashboard of one service."""

    service_monitor_name: str | None
    """Name of the app's ServiceMonitor; None for a worker (nothing to scrape)."""
    pod_monitor_name: str | None
    """Name of cloudflared's PodMonitor; None when the tunnel is not monitored."""
    rule_name: str
    """Name of the PrometheusRule."""
    dashboard_name: str
    """Name of the dashboard ConfigMap (in the monitoring namespace)."""
    alerts: list[str]
    """Names of the alerts the rules define."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = args.problems()
        if problems:
            raise ValueError(f"Monitoring {name}: " + "; ".join(problems))
        super().__init__(TYPE, name, None, opts)
        service = args.service_name
        namespace = pulumi.Output.from_input(args.namespace)
        kube = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider)
        common = labels.standard(service, team=args.team, stage=args.stage, scheme=args.label_scheme)
        selected = {**common, "release": args.prometheus_release}

        needs_crds = pulumi.ResourceOptions(depends_on=list(args.after))
        per_service = pulumi.ResourceOptions.merge(kube, needs_crds)

        self.service_monitor_name = None
        if args.serves_requests:
            self.service_monitor_name = service
            app_monitor(name, args, namespace=namespace, monitor_labels=selected, opts=per_service)

        self.pod_monitor_name = None
        if args.monitor_tunnel:
            self.pod_monitor_name = tunnel_job(service)
            tunnel_monitor(name, args, namespace=namespace, monitor_labels=selected, opts=per_service)

        self.rule_name = service
        self.alerts = alert_names(rule_groups(args.rule_params("x")))
        prometheus_rule(name, args, namespace=namespace, monitor_labels=selected, opts=per_service)

        self.dashboard_name = dashboard_map_name(args)
        dashboard_config_map(name, args, namespace=namespace, common_labels=common, opts=per_service)

        self.register_outputs(
            {
                "service_monitor_name": self.service_monitor_name,
                "pod_monitor_name": self.pod_monitor_name,
                "rule_name": self.rule_name,
                "dashboard_name": self.dashboard_name,
                "alerts": self.alerts,
            }
        )

"""Monitoring: what watches one service in one stage, and optionally the cluster's monitoring stack.

Per service (docs/design.md steps 5 and 10), all Prometheus Operator custom resources labelled
``release: <prometheus_release>`` so kube-prometheus-stack's default selectors
(``serviceMonitorSelectorNilUsesHelmValues``, ``podMonitorSelectorNilUsesHelmValues``,
``ruleSelectorNilUsesHelmValues``: true) pick them up in any namespace:

- a ServiceMonitor for the app's Service (named port, ``/metrics``), ``job=<service>``;
- a PodMonitor for the cloudflared connectors (named ``metrics`` port), ``job=<service>-cloudflared``.
  cloudflared only dials out and has no Service; a PodMonitor scrapes its pods directly instead
  of adding a Service whose only purpose would be discovery;
- a PrometheusRule whose spec is :func:`components.rules.rule_groups` (the same document the
  offline plan writes for promtool);
- a Grafana dashboard ConfigMap in the monitoring namespace, found by Grafana's sidecar through
  the ``grafana_dashboard: "1"`` label. Its panels read only the app's own metrics.

Optionally (``install_cluster_stack``), the shared cluster stack: kube-prometheus-stack (Prometheus,
Alertmanager routing the team's alerts to its webhook, Grafana, kube-state-metrics), Loki and
Grafana Alloy shipping the service namespace's pod logs, all from pinned chart versions. Those
objects are ``retain_on_delete``: a sunset removes this service's monitors, rules and dashboard
but leaves the shared stack running for the other services of the cluster.

Secrets (the webhook URL, the Grafana admin password) stay Pulumi secrets end to end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.rules import RuleParams, alert_names, rule_groups

TYPE: Final = "service-lifecycle:index:Monitoring"

API_VERSION: Final = "monitoring.coreos.com/v1"
TUNNEL_METRICS_PORT: Final = "metrics"
"""Name of cloudflared's metrics port on its pods (``components.exposure.METRICS_PORT_NAME``)."""
DASHBOARD_LABEL: Final = "grafana_dashboard"
DASHBOARD_LABEL_VALUE: Final = "1"
GRAFANA_ADMIN_SECRET: Final = "grafana-admin"
GRAFANA_USER_KEY: Final = "admin-user"
GRAFANA_PASSWORD_KEY: Final = "admin-password"
LOKI_PORT: Final = 3100


@dataclass(frozen=True)
class HelmChart:
    """A chart pinned to one version in one repository."""

    repo: str
    chart: str
    version: str


KUBE_PROMETHEUS_STACK: Final = HelmChart(
    "https://prometheus-community.github.io/helm-charts", "kube-prometheus-stack", "88.5.3"
)
"""Prometheus Operator, Prometheus, Alertmanager, Grafana, kube-state-metrics (operator v0.93)."""
LOKI: Final = HelmChart("https://grafana-community.github.io/helm-charts", "loki", "18.11.0")
"""Loki 3.7. The OSS chart moved from grafana/helm-charts to grafana-community in March 2026."""
ALLOY: Final = HelmChart("https://grafana.github.io/helm-charts", "alloy", "1.11.1")
"""Grafana Alloy 1.18, the log collector (Promtail's chart is deprecated)."""


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
    runbook_url: str
    """Runbook the alerts link to (``#<alert name>`` is appended). Required."""
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
    install_cluster_stack: bool = False
    """Also install kube-prometheus-stack, Loki and Alloy (once per cluster). Default False."""
    alert_webhook_url: pulumi.Input[str] | None = None
    """Alertmanager receiver URL, a secret: Slack incoming webhook or generic webhook. Required with
    ``install_cluster_stack``. Default None."""
    grafana_admin_password: pulumi.Input[str] | None = None
    """Grafana admin password, a secret. Required with ``install_cluster_stack``. Default None."""
    prometheus_retention: str = "15d"
    """How long Prometheus keeps samples. Default ``15d`` (the SLO's 3d window fits easily)."""
    prometheus_retention_size: str = "40GB"
    """Size cap of Prometheus' TSDB, below its volume. Default ``40GB``."""
    prometheus_storage: str = "50Gi"
    """Prometheus volume size. Default ``50Gi``."""
    log_retention: str = "168h"
    """How long Loki keeps logs. Default ``168h`` (7 days)."""
    loki_storage: str = "20Gi"
    """Loki volume size. Default ``20Gi``."""
    kubernetes_provider: pulumi.ProviderResource | None = None
    """Kubernetes provider for every object. Default None: the inherited/ambient one."""

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
        )

    def problems(self) -> list[str]:
        """What is wrong with these arguments (empty when valid)."""
        found = self.rule_params("namespace-checked-later").problems()
        if not self.app_selector:
            found.append("app_selector: empty; it would select every Service in the namespace")
        if self.install_cluster_stack:
            if self.alert_webhook_url is None:
                found.append("alert_webhook_url: required when install_cluster_stack is true")
            if self.grafana_admin_password is None:
                found.append("grafana_admin_password: required when install_cluster_stack is true")
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
    *, service: str, stage: str, namespace: str, slo_availability: float, latency_p95_seconds: float
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
        "uid": f"sl-{service}-{stage}"[:40],
        "title": f"{service} ({stage})",
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


def alertmanager_config(*, team: str, webhook_url: str) -> dict[str, Any]:
    """Alertmanager configuration: alerts labelled ``team=<team>`` go to the team's receiver.

    A Slack incoming-webhook URL becomes a ``slack_configs`` receiver, anything else a generic
    ``webhook_configs`` one. Alerts without a team (the chart's cluster alerts) go to the same
    receiver: the team that installs the cluster stack owns it. ``Watchdog`` (always firing, the
    dead man's switch) and ``InfoInhibitor`` go nowhere.
    """
    receiver = f"team-{team}"
    host = urlsplit(webhook_url).hostname or ""
    if host == "hooks.slack.com":
        target: dict[str, Any] = {
            "slack_configs": [
                {
                    "api_url": webhook_url,
                    "send_resolved": True,
                    "title": "[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.service }})",
                    "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.runbook_url }}\n{{ end }}",
                }
            ]
        }
    else:
        target = {"webhook_configs": [{"url": webhook_url, "send_resolved": True}]}
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {
            "receiver": receiver,
            "group_by": ["alertname", "namespace", "service"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": [
                {"receiver": "null", "matchers": ['alertname =~ "Watchdog|InfoInhibitor"']},
                {"receiver": receiver, "matchers": [f'team = "{team}"']},
            ],
        },
        "inhibit_rules": [
            # The chart's own rule: a critical alert silences the warning of the same name.
            {
                "source_matchers": ['severity = "critical"'],
                "target_matchers": ['severity = "warning"'],
                "equal": ["namespace", "alertname"],
            },
            # While the page is on, its symptoms need no tickets of their own.
            {
                "source_matchers": ['alertname = "ErrorBudgetBurnFast"'],
                "target_matchers": ['alertname =~ "ErrorBudgetBurnSlow|HighErrorRatio"'],
                "equal": ["namespace", "service"],
            },
            {
                "source_matchers": ['alertname = "TunnelDown"'],
                "target_matchers": ['alertname =~ "TunnelDegraded|TunnelOriginErrors"'],
                "equal": ["namespace", "service"],
            },
        ],
        "receivers": [{"name": "null"}, {"name": receiver, **target}],
    }


def alloy_config(*, namespaces: Sequence[str], loki_push_url: str) -> str:
    """Alloy configuration: tail the pods of ``namespaces`` through the Kubernetes API into Loki.

    ``loki.source.kubernetes`` reads logs from the API server, so the collector needs no host
    mounts, no privileges and no network path into the service's namespace.
    """
    names = ", ".join(json.dumps(n) for n in namespaces)
    return f"""discovery.kubernetes "pods" {{
  role = "pod"
  namespaces {{
    names = [{names}]
  }}
}}

discovery.relabel "pods" {{
  targets = discovery.kubernetes.pods.targets
  rule {{
    source_labels = ["__meta_kubernetes_namespace"]
    target_label  = "namespace"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_name"]
    target_label  = "pod"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_container_name"]
    target_label  = "container"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_part_of"]
    target_label  = "service"
  }}
  rule {{
    source_labels = ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
    target_label  = "component"
  }}
}}

loki.source.kubernetes "pods" {{
  targets    = discovery.relabel.pods.output
  forward_to = [loki.process.json.receiver]
}}

// The app logs one JSON object per line: its level becomes a label.
loki.process "json" {{
  stage.json {{
    expressions = {{ level = "level" }}
  }}
  stage.labels {{
    values = {{ level = "" }}
  }}
  forward_to = [loki.write.default.receiver]
}}

loki.write "default" {{
  endpoint {{
    url = {json.dumps(loki_push_url)}
  }}
}}
"""


def _resources(cpu: str, memory: str, memory_limit: str) -> dict[str, Any]:
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}


def kube_prometheus_stack_values(args: MonitoringArgs, alertmanager: pulumi.Output[dict[str, Any]]) -> dict[str, Any]:
    """Values of the kube-prometheus-stack release (``alertmanager`` is the secret config)."""
    loki_url = f"http://loki.{args.monitoring_namespace}.svc.cluster.local:{LOKI_PORT}"
    return {
        "crds": {"enabled": True},
        "prometheus": {
            "prometheusSpec": {
                "retention": args.prometheus_retention,
                "retentionSize": args.prometheus_retention_size,
                "resources": _resources("250m", "1Gi", "2Gi"),
                # The chart's defaults, stated: only objects labelled release=<this release> count.
                "serviceMonitorSelectorNilUsesHelmValues": True,
                "podMonitorSelectorNilUsesHelmValues": True,
                "ruleSelectorNilUsesHelmValues": True,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": args.prometheus_storage}},
                        }
                    }
                },
            }
        },
        "alertmanager": {
            "config": alertmanager,
            "alertmanagerSpec": {"retention": "120h", "resources": _resources("50m", "64Mi", "256Mi")},
        },
        "grafana": {
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": GRAFANA_USER_KEY,
                "passwordKey": GRAFANA_PASSWORD_KEY,
            },
            "resources": _resources("100m", "256Mi", "512Mi"),
            "sidecar": {
                "dashboards": {
                    "enabled": True,
                    "label": DASHBOARD_LABEL,
                    "labelValue": DASHBOARD_LABEL_VALUE,
                    "searchNamespace": "ALL",
                }
            },
            "additionalDataSources": [
                {"name": "Loki", "uid": "loki", "type": "loki", "access": "proxy", "url": loki_url}
            ],
        },
        "kube-state-metrics": {"resources": _resources("50m", "128Mi", "256Mi")},
    }


def loki_values(args: MonitoringArgs) -> dict[str, Any]:
    """Values of the Loki release: one monolithic Loki on a filesystem volume, no auth inside the cluster."""
    return {
        "deploymentMode": "Monolithic",
        "loki": {
            "auth_enabled": False,
            "commonConfig": {"replication_factor": 1},
            "storage": {"type": "filesystem"},
            "schemaConfig": {
                "configs": [
                    {
                        "from": "2024-04-01",
                        "store": "tsdb",
                        "object_store": "filesystem",
                        "schema": "v13",
                        "index": {"prefix": "loki_index_", "period": "24h"},
                    }
                ]
            },
            "limits_config": {"retention_period": args.log_retention},
            "compactor": {"retention_enabled": True, "delete_request_store": "filesystem"},
        },
        "singleBinary": {
            "replicas": 1,
            "resources": _resources("200m", "512Mi", "1Gi"),
            "persistence": {"enabled": True, "size": args.loki_storage},
        },
        # Nothing of the scalable modes, no memcached caches, no canary: one small Loki.
        "read": {"replicas": 0},
        "write": {"replicas": 0},
        "backend": {"replicas": 0},
        "gateway": {"enabled": False},
        "chunksCache": {"enabled": False},
        "resultsCache": {"enabled": False},
        "lokiCanary": {"enabled": False},
        "test": {"enabled": False},
    }


def alloy_values(config: pulumi.Output[str]) -> dict[str, Any]:
    """Values of the Alloy release: one collector reading pod logs through the Kubernetes API."""
    return {
        "alloy": {
            "configMap": {"create": True, "content": config},
            "resources": _resources("100m", "128Mi", "512Mi"),
            "enableReporting": False,
        },
        "controller": {"type": "deployment", "replicas": 1},
        # Least privilege: discovering pods and reading their logs is all this config does.
        "rbac": {
            "create": True,
            "rules": [
                {"apiGroups": [""], "resources": ["pods", "pods/log", "namespaces"], "verbs": ["get", "list", "watch"]}
            ],
            "clusterRules": [],
        },
    }


# ---------------------------------------------------------------------------------------------
# The component


class Monitoring(pulumi.ComponentResource):
    """Scrape targets, alert rules and dashboard of one service (and, optionally, the cluster stack)."""

    service_monitor_name: str
    """Name of the app's ServiceMonitor."""
    pod_monitor_name: str | None
    """Name of cloudflared's PodMonitor; None when the tunnel is not monitored."""
    rule_name: str
    """Name of the PrometheusRule."""
    dashboard_name: str
    """Name of the dashboard ConfigMap (in the monitoring namespace)."""
    alerts: list[str]
    """Names of the alerts the rules define."""
    cluster_stack: list[str]
    """Helm releases installed with this stack (empty without ``install_cluster_stack``)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = args.problems()
        if problems:
            raise ValueError(f"Monitoring {name}: " + "; ".join(problems))
        super().__init__(TYPE, name, None, opts)
        service = args.service_name
        namespace = pulumi.Output.from_input(args.namespace)
        kube = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider)
        common = labels.standard(service, team=args.team, stage=args.stage)
        selected = {**common, "release": args.prometheus_release}

        self.cluster_stack = []
        crds: list[pulumi.Resource] = []
        if args.install_cluster_stack:
            crds = self._cluster_stack(name, args, namespace, common)

        needs_crds = pulumi.ResourceOptions(depends_on=crds)
        per_service = pulumi.ResourceOptions.merge(kube, needs_crds)

        self.service_monitor_name = service
        k8s.apiextensions.CustomResource(
            f"{name}-app-monitor",
            api_version=API_VERSION,
            kind="ServiceMonitor",
            metadata={"name": service, "namespace": namespace, "labels": selected},
            spec=service_monitor_spec(
                namespace=namespace, selector=args.app_selector, port=args.app_port_name, job=service,
                interval=args.scrape_interval,
            ),
            opts=per_service,
        )  # fmt: skip

        self.pod_monitor_name = None
        if args.monitor_tunnel:
            self.pod_monitor_name = tunnel_job(service)
            tunnel_pods = args.tunnel_selector or labels.selector(service, labels.COMPONENT_TUNNEL)
            k8s.apiextensions.CustomResource(
                f"{name}-tunnel-monitor",
                api_version=API_VERSION,
                kind="PodMonitor",
                metadata={"name": self.pod_monitor_name, "namespace": namespace, "labels": selected},
                spec=pod_monitor_spec(
                    namespace=namespace, selector=tunnel_pods, port=args.tunnel_metrics_port,
                    job=tunnel_job(service), interval=args.scrape_interval,
                ),
                opts=per_service,
            )  # fmt: skip

        self.rule_name = service
        groups = namespace.apply(lambda ns: rule_groups(args.rule_params(ns)))
        self.alerts = alert_names(rule_groups(args.rule_params("x")))
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version=API_VERSION,
            kind="PrometheusRule",
            metadata={"name": service, "namespace": namespace, "labels": selected},
            spec=groups,
            opts=per_service,
        )

        self.dashboard_name = f"{service}-{args.stage}-dashboard"
        board = namespace.apply(
            lambda ns: json.dumps(
                dashboard(
                    service=service, stage=args.stage, namespace=ns, slo_availability=args.slo_availability,
                    latency_p95_seconds=args.latency_p95_seconds,
                ),
                indent=1, sort_keys=True,
            )
        )  # fmt: skip
        k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata={
                "name": self.dashboard_name,
                "namespace": args.monitoring_namespace,
                "labels": {**common, DASHBOARD_LABEL: DASHBOARD_LABEL_VALUE},
            },
            data={f"{service}-{args.stage}.json": board},
            opts=per_service,
        )

        self.register_outputs(
            {
                "service_monitor_name": self.service_monitor_name,
                "pod_monitor_name": self.pod_monitor_name,
                "rule_name": self.rule_name,
                "dashboard_name": self.dashboard_name,
                "alerts": self.alerts,
                "cluster_stack": self.cluster_stack,
            }
        )

    def _cluster_stack(
        self, name: str, args: MonitoringArgs, namespace: pulumi.Output[str], common: dict[str, str]
    ) -> list[pulumi.Resource]:
        """Namespace, Grafana admin Secret, kube-prometheus-stack, Loki, Alloy; returns what CRs wait for."""
        assert args.alert_webhook_url is not None and args.grafana_admin_password is not None
        # Shared by every service of the cluster: a sunset of this one must not take it away.
        shared = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider, retain_on_delete=True)
        mon = args.monitoring_namespace
        stack_labels = {"app.kubernetes.io/managed-by": labels.MANAGED_BY, labels.TEAM_LABEL: args.team}
        ns = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": mon,
                # node-exporter reads the host (hostNetwork, hostPID, hostPath): privileged, in this namespace only.
                "labels": {**stack_labels, "pod-security.kubernetes.io/enforce": "privileged"},
            },
            opts=shared,
        )
        in_ns = pulumi.ResourceOptions.merge(shared, pulumi.ResourceOptions(depends_on=[ns]))
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": mon, "labels": stack_labels},
            type="Opaque",
            string_data={
                GRAFANA_USER_KEY: "admin",
                GRAFANA_PASSWORD_KEY: pulumi.Output.secret(args.grafana_admin_password),
            },
            opts=in_ns,
        )
        alertmanager: pulumi.Output[dict[str, Any]] = pulumi.Output.secret(
            pulumi.Output.all(url=args.alert_webhook_url).apply(
                lambda v: alertmanager_config(team=args.team, webhook_url=str(v["url"]))
            )
        )

        def release(
            release_name: str, chart: HelmChart, values: dict[str, Any], after: Sequence[pulumi.Resource]
        ) -> k8s.helm.v3.Release:
            self.cluster_stack.append(release_name)
            return k8s.helm.v3.Release(
                f"{name}-{chart.chart}",
                name=release_name,  # fixed: the monitors' ``release`` label and the service URLs depend on it
                namespace=mon,
                chart=chart.chart,
                version=chart.version,
                repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
                values=values,
                create_namespace=False,
                atomic=True,
                cleanup_on_fail=True,
                max_history=5,
                timeout=900,
                opts=pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=list(after))),
            )  # fmt: skip

        prometheus = release(
            args.prometheus_release, KUBE_PROMETHEUS_STACK, kube_prometheus_stack_values(args, alertmanager), [admin]
        )
        loki = release("loki", LOKI, loki_values(args), [])
        push_url = f"http://loki.{mon}.svc.cluster.local:{LOKI_PORT}/loki/api/v1/push"
        collector = namespace.apply(lambda service_ns: alloy_config(namespaces=[service_ns], loki_push_url=push_url))
        release("alloy", ALLOY, alloy_values(collector), [loki])
        return [prometheus]

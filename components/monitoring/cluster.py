"""ClusterMonitoring and LogCollector: the monitoring stack a cluster runs once, for all its services.

:class:`ClusterMonitoring` is the shared stack: the ``monitoring`` namespace, the Grafana admin
Secret, kube-prometheus-stack (Prometheus Operator and its CRDs, Prometheus, Alertmanager routing
to the owning team's webhook, Grafana, kube-state-metrics) and Loki, all from pinned chart
versions. :class:`LogCollector` is Grafana Alloy shipping the pod logs of the given service
namespaces to that Loki; it comes after the services because its chart makes a Role inside each
of their namespaces.

Register each once per cluster (a platform program, or the one service program that owns the
cluster, ``monitoringInstallClusterStack``); every service's :class:`components.monitoring.Monitoring`
adds only its monitors, rules and dashboard and waits for :attr:`ClusterMonitoring.ready`. The shared
objects are ``retain_on_delete``: a program that stops registering them (a sunset) leaves them
running for the other services of the cluster.

Secrets (the webhook URL, the Grafana admin password) stay Pulumi secrets end to end.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s
import yaml

from components.labels import DEFAULT_SCHEME, LabelScheme
from components.monitoring.component import DASHBOARD_LABEL, DASHBOARD_LABEL_VALUE

TYPE: Final = "service-lifecycle:index:ClusterMonitoring"
LOG_COLLECTOR_TYPE: Final = "service-lifecycle:index:LogCollector"

GRAFANA_ADMIN_SECRET: Final = "grafana-admin"
GRAFANA_USER_KEY: Final = "admin-user"
GRAFANA_PASSWORD_KEY: Final = "admin-password"
LOKI_PORT: Final = 3100


PROMETHEUS_RELEASE: Final = "kube-prometheus-stack"
"""Release name of kube-prometheus-stack: the ``release`` label every service's monitors carry."""
ALLOY_RULES: Final[tuple[Mapping[str, Any], ...]] = (
    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
)
"""What Alloy may do in a service namespace: discover pods and read their logs."""


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
class ClusterMonitoringArgs:
    """Arguments of :class:`ClusterMonitoring`."""

    team: str
    """Team that owns the cluster stack: its receiver also gets the chart's cluster alerts. Required."""
    alert_webhook_url: pulumi.Input[str]
    """Alertmanager receiver URL, a secret: Slack incoming webhook or generic webhook. Required."""
    grafana_admin_password: pulumi.Input[str]
    """Grafana admin password, a secret. Required."""
    monitoring_namespace: str = "monitoring"
    """Namespace of the stack. Default ``monitoring``."""
    prometheus_release: str = PROMETHEUS_RELEASE
    """Release name of kube-prometheus-stack (the monitors' ``release`` label). Default ``kube-prometheus-stack``."""
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
    label_scheme: LabelScheme = DEFAULT_SCHEME
    """Label keys and managed-by value (settings ``labelPrefix``, ``managedBy``). Default: the library's."""


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


def kube_prometheus_stack_values(
    args: ClusterMonitoringArgs, alertmanager: pulumi.Input[dict[str, Any]]
) -> dict[str, Any]:
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


def loki_values(args: ClusterMonitoringArgs) -> dict[str, Any]:
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


def alloy_values(config: pulumi.Input[str], namespaces: Sequence[pulumi.Input[str]]) -> dict[str, Any]:
    """Values of the Alloy release: one collector reading the pod logs of ``namespaces`` through the API.

    Least privilege, as the pinned chart renders it (grafana/alloy ``operations/helm/charts/alloy``
    at ``helm-chart/1.11.1``, ``templates/rbac.yaml``): with ``rbac.namespaces`` set it makes one
    Role and RoleBinding per namespace from ``rbac.rules`` and no ClusterRole at all
    (``rbac.clusterRules`` is then unused; left out, because with it the chart's ClusterRole
    branch is the one that renders). ``namespaces`` is a cluster-scoped resource, so it is not in a
    Role; the config names its namespaces and never lists them.
    """
    return {
        "alloy": {
            "configMap": {"create": True, "content": config},
            "resources": _resources("100m", "128Mi", "512Mi"),
            "enableReporting": False,
        },
        "controller": {"type": "deployment", "replicas": 1},
        "rbac": {"create": True, "namespaces": list(namespaces), "rules": [dict(rule) for rule in ALLOY_RULES]},
    }


def _release(  # noqa: PLR0917 - a private helper called three times, each line reads left to right
    name: str,
    release_name: str,
    chart: HelmChart,
    namespace: str,
    values: Mapping[str, Any],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    return k8s.helm.v3.Release(
        name,
        name=release_name,  # fixed: the monitors' ``release`` label and the service URLs depend on it
        namespace=namespace,
        chart=chart.chart,
        version=chart.version,
        repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
        values=dict(values),
        create_namespace=False,
        atomic=True,
        cleanup_on_fail=True,
        max_history=5,
        timeout=900,
        opts=opts,
    )


class ClusterMonitoring(pulumi.ComponentResource):
    """Namespace, Grafana admin Secret, kube-prometheus-stack and Loki: once per cluster."""

    namespace: str
    """The monitoring namespace."""
    releases: list[str]
    """Helm releases this component installs."""
    ready: pulumi.Resource
    """The kube-prometheus-stack release: ServiceMonitor, PodMonitor and PrometheusRule objects wait for
    it, because it brings their CRDs."""
    loki: pulumi.Resource
    """The Loki release (the log collector waits for it)."""
    loki_push_url: str
    """In-cluster push URL of Loki."""

    def __init__(self, name: str, args: ClusterMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        # Shared by every service of the cluster: a program that drops it must not take it away.
        shared = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider, retain_on_delete=True)
        mon = args.monitoring_namespace
        scheme = args.label_scheme
        stack_labels = {"app.kubernetes.io/managed-by": scheme.managed_by, scheme.team: args.team}
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
        self.ready = _release(
            f"{name}-{KUBE_PROMETHEUS_STACK.chart}", args.prometheus_release, KUBE_PROMETHEUS_STACK, mon,
            kube_prometheus_stack_values(args, alertmanager),
            pulumi.ResourceOptions.merge(in_ns, pulumi.ResourceOptions(depends_on=[admin])),
        )  # fmt: skip
        self.loki = _release(f"{name}-{LOKI.chart}", "loki", LOKI, mon, loki_values(args), in_ns)
        self.namespace = mon
        self.releases = [args.prometheus_release, "loki"]
        self.loki_push_url = f"http://loki.{mon}.svc.cluster.local:{LOKI_PORT}/loki/api/v1/push"
        self.register_outputs({"namespace": self.namespace, "releases": self.releases})


@dataclass(frozen=True, kw_only=True)
class LogCollectorArgs:
    """Arguments of :class:`LogCollector`."""

    cluster: ClusterMonitoring
    """The cluster stack whose Loki receives the logs. Required."""
    namespaces: Sequence[pulumi.Input[str]]
    """Service namespaces whose pod logs are collected (and where Alloy gets a Role); at least one. Required."""
    kubernetes_provider: pulumi.ProviderResource | None = None
    """Kubernetes provider. Default None: the inherited/ambient one."""


class LogCollector(pulumi.ComponentResource):
    """Grafana Alloy shipping the pod logs of the service namespaces to the cluster's Loki: once per cluster."""

    release: str
    """The Helm release name."""

    def __init__(self, name: str, args: LogCollectorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if not args.namespaces:
            raise ValueError(f"LogCollector {name}: namespaces is empty; expected the service namespaces to read")
        super().__init__(LOG_COLLECTOR_TYPE, name, None, opts)
        cluster = args.cluster
        names = pulumi.Output.all(*args.namespaces)
        config = names.apply(
            lambda ns: alloy_config(namespaces=[str(n) for n in ns], loki_push_url=cluster.loki_push_url)
        )
        _release(
            f"{name}-{ALLOY.chart}", "alloy", ALLOY, cluster.namespace, alloy_values(config, list(args.namespaces)),
            pulumi.ResourceOptions(
                parent=self, provider=args.kubernetes_provider, retain_on_delete=True, depends_on=[cluster.loki]
            ),
        )  # fmt: skip
        self.release = "alloy"
        self.register_outputs({"release": self.release})


# ---------------------------------------------------------------------------------------------
# What `helm template` checks (the deploy workflow's chart-render job)

RENDER_PLACEHOLDER_WEBHOOK: Final = "https://alerts.invalid/hook"
"""Stands in for the secret webhook URL when values are written for a render: never a real secret."""


def chart_values(*, namespaces: Sequence[str], team: str, monitoring_namespace: str = "monitoring") -> dict[str, Any]:
    """Release name → (chart, values) exactly as the components build them, secrets replaced by placeholders."""
    args = ClusterMonitoringArgs(
        # The Grafana password lives in a Secret the chart only names: it is not part of any render.
        team=team, alert_webhook_url=RENDER_PLACEHOLDER_WEBHOOK, grafana_admin_password="",
        monitoring_namespace=monitoring_namespace,
    )  # fmt: skip
    alertmanager = alertmanager_config(team=team, webhook_url=RENDER_PLACEHOLDER_WEBHOOK)
    push_url = f"http://loki.{monitoring_namespace}.svc.cluster.local:{LOKI_PORT}/loki/api/v1/push"
    config = alloy_config(namespaces=namespaces, loki_push_url=push_url)
    return {
        args.prometheus_release: (KUBE_PROMETHEUS_STACK, kube_prometheus_stack_values(args, alertmanager)),
        "loki": (LOKI, loki_values(args)),
        "alloy": (ALLOY, alloy_values(config, list(namespaces))),
    }


def write_chart_values(
    out: Path, *, namespaces: Sequence[str], team: str, monitoring_namespace: str = "monitoring"
) -> Path:
    """Write ``<release>.values.yaml`` per release and ``charts.tsv`` (release, repo, chart, version, namespace)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for release, (chart, values) in chart_values(
        namespaces=namespaces, team=team, monitoring_namespace=monitoring_namespace
    ).items():
        (out / f"{release}.values.yaml").write_text(yaml.safe_dump(values, sort_keys=True))
        rows.append("\t".join((release, chart.repo, chart.chart, chart.version, monitoring_namespace)))
    listing = out / "charts.tsv"
    listing.write_text("\n".join(rows) + "\n")
    return listing

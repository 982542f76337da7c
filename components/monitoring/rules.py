"""The service's Prometheus recording and alerting rules, built in one place as plain data.

:func:`rule_groups` returns the ``{"groups": [...]}`` document that both the PrometheusRule object
(``spec``) and the offline plan's rule file (``rules/<service>.rules.yml``) carry, so the file
``promtool`` checks and tests is exactly what the cluster gets.

Availability is the share of the service's own requests not answered with a 5xx. Probe and scrape
routes (``/healthz``, ``/readyz``, ``/metrics``) are left out: the kubelet and Prometheus would
otherwise dilute the errors users see, and ``/readyz`` answers 503 by design while a pod drains.

Error-budget burn alerts follow the multi-window, multi-burn-rate scheme of the Google SRE
workbook ("Alerting on SLOs", table 5-8), for a 30-day budget. A long window proves the budget is
really burning; a short window (1/12 of it) stops the alert soon after the burn stops:

==========  ===========  =========  ====================  ========
long        short        burn rate  budget spent          severity
==========  ===========  =========  ====================  ========
1h          5m           14.4       2% in an hour         critical (page)
6h          30m          6          5% in six hours       critical (page)
1d          2h           3          10% in a day          warning (ticket)
3d          6h           1          10% in three days     warning (ticket)
==========  ===========  =========  ====================  ========

Everything else (5xx ratio, p95 latency, scrape target down, restarts, crash loops, unavailable
replicas, tunnel health) is a symptom alert with its own threshold. Every alert carries
``severity``, ``team`` (Alertmanager routes on it), ``service`` and ``release`` (the digest it fires
under, :mod:`components.monitoring.release`), and the annotations ``summary``, ``description`` and
``runbook_url``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from components.monitoring.release import RELEASE_LABEL, release_label
from components.monitoring.release import release_rules as _release_rules
from components.monitoring.rule_files import alert_names, exprs, metric_names, recorded_names, to_yaml

__all__ = [  # the rules as data; to_yaml is re-exported (before 0.3.0 it lived here)
    "APP_METRICS", "CLOUDFLARED_HA_CONNECTIONS", "CLOUDFLARED_METRICS", "ERROR_RATIO", "FAST_BURN",
    "KUBE_STATE_METRICS", "LATENCY_P95", "NON_USER_ROUTES", "REQUESTS_RATE", "SEVERITY_PAGE", "SEVERITY_TICKET",
    "SLOW_BURN", "SLO_WINDOWS", "BurnRateWindow", "RuleParams", "RulesError", "alert_names", "error_budget",
    "error_budget_alerts", "exprs", "metric_names", "recorded_names", "recording_rules", "release_rules", "rule_groups",
    "service_alerts", "to_yaml", "tunnel_alerts", "workload_alerts",
]  # fmt: skip

SEVERITY_PAGE: Final = "critical"
SEVERITY_TICKET: Final = "warning"

NON_USER_ROUTES: Final = ("/healthz", "/readyz", "/metrics")
"""Routes left out of the availability and latency SLIs (probes and scrapes, not users)."""

SLO_WINDOWS: Final = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
"""Windows the error ratio is recorded over (every window a burn-rate alert reads)."""


@dataclass(frozen=True)
class BurnRateWindow:
    """One long/short window pair of a burn-rate alert."""

    long: str
    short: str
    factor: float
    """Burn rate: how many times faster than "exactly spend the budget in 30 days"."""


FAST_BURN: Final = (BurnRateWindow("1h", "5m", 14.4), BurnRateWindow("6h", "30m", 6.0))
"""Page: 2% of the 30-day budget gone in an hour, or 5% in six hours."""
SLOW_BURN: Final = (BurnRateWindow("1d", "2h", 3.0), BurnRateWindow("3d", "6h", 1.0))
"""Ticket: 10% of the budget gone in a day, or in three days."""

# Recorded series (level:metric:operations, Prometheus naming conventions).
REQUESTS_RATE: Final = "service:http_requests:rate5m"
ERROR_RATIO: Final = "service:http_request_errors:ratio_rate{window}"
LATENCY_P95: Final = "service:http_request_duration_seconds:p95_5m"

APP_METRICS: Final = (
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_count",
    "http_request_duration_seconds_sum",
    "app_build_info",
    "app_ready",
)
"""Metric names of the app's contract (app/server.py) that rules or the dashboard may read."""

CLOUDFLARED_METRICS: Final = (
    "cloudflared_tunnel_ha_connections",
    "cloudflared_tunnel_total_requests",
    "cloudflared_tunnel_request_errors",
)
"""cloudflared's own metrics the tunnel alerts read (Cloudflare's "Tunnel metrics" reference)."""
CLOUDFLARED_HA_CONNECTIONS: Final = 4
"""Edge connections one cloudflared keeps open (``--ha-connections``, default 4)."""

KUBE_STATE_METRICS: Final = (
    "kube_pod_container_status_restarts_total",
    "kube_pod_container_status_waiting_reason",
    "kube_deployment_status_replicas_unavailable",
)
"""kube-state-metrics series (installed by kube-prometheus-stack) the workload alerts read."""

_DURATION = re.compile(r"^\d+[smhd]$")


class RulesError(ValueError):
    """Rule parameters that cannot make meaningful alerts."""


@dataclass(frozen=True, kw_only=True)
class RuleParams:
    """Everything the rules depend on; plain values (the Monitoring component resolves Outputs)."""

    service: str
    """Service name: the ``service`` label on every alert and the rule file's name."""
    namespace: str
    """Namespace the service (and its cloudflared) runs in; every selector is scoped to it."""
    team: str
    """Owning team: the ``team`` label Alertmanager routes on."""
    slo_availability: float
    """Availability objective in percent, e.g. 99.9."""
    latency_p95_seconds: float
    """p95 latency above which the latency alert fires."""
    app_job: str
    """``job`` label of the app's scrape target (set by the app's ServiceMonitor)."""
    tunnel_job: str
    """``job`` label of cloudflared's scrape target (set by its PodMonitor)."""
    runbook_url: str | None = None
    """Runbook document; each alert links to ``<runbook_url>#<alert name in lower case>``. Default None:
    no ``runbook_url`` annotation (the library has no runbook of its own to point at)."""
    error_ratio_threshold: float = 0.05
    """5xx share of requests that fires the error-ratio alert. Default 0.05."""
    restarts_threshold: int = 3
    """Container restarts within an hour that fire the restart alert. Default 3."""
    tunnel: bool = True
    """Alert on tunnel health; only where cloudflared is scraped, or ``absent()`` pages forever. Default True."""
    release_window_seconds: int = 300
    """How long a new release is the one the ``release`` label names alone (the verification window). Default 300."""
    serves_requests: bool = True
    """False: a worker, never scraped: pod alerts only (no request SLO, error, latency, release rules). Default True."""

    def problems(self) -> list[str]:
        """What is wrong with these parameters (empty when they make sense)."""
        found: list[str] = []
        if not 0 < self.slo_availability < 100:
            found.append(f"slo_availability is {self.slo_availability}; expected a percentage above 0, below 100")
        else:
            worst = max(w.factor for w in FAST_BURN)
            if worst * error_budget(self.slo_availability) >= 1:
                lowest = 100 * (1 - 1 / worst)
                found.append(
                    f"slo_availability is {self.slo_availability}; a {worst}x burn of its error budget would need "
                    f"more than 100% errors, so the page could never fire: expected more than {lowest:.2f}"
                )
        if not (math.isfinite(self.latency_p95_seconds) and self.latency_p95_seconds > 0):
            found.append(f"latency_p95_seconds is {self.latency_p95_seconds}; expected a positive number")
        if not 0 < self.error_ratio_threshold < 1:
            found.append(f"error_ratio_threshold is {self.error_ratio_threshold}; expected between 0 and 1")
        if self.release_window_seconds < 1:
            found.append(f"release_window_seconds is {self.release_window_seconds}; expected at least 1")
        if self.restarts_threshold < 1:
            found.append(f"restarts_threshold is {self.restarts_threshold}; expected at least 1")
        for field_name in ("service", "namespace", "team", "app_job", "tunnel_job", "runbook_url"):
            value = getattr(self, field_name)
            if field_name == "runbook_url" and value is None:
                continue
            if not value or '"' in value or "\\" in value:
                found.append(f"{field_name} is {value!r}; expected a non-empty value without quotes or backslashes")
        return found


def error_budget(slo_availability: float) -> float:
    """The error budget as a ratio: 99.9 → 0.001 (rounded so it prints the way it reads)."""
    return round(1 - slo_availability / 100, 12)


def _num(value: float) -> str:
    """A float as PromQL reads it, without binary noise: 0.005, 14.4, 6."""
    text = repr(round(value, 12))
    return text[:-2] if text.endswith(".0") else text


def _selector(**labels: str) -> str:
    return ",".join(f'{name}="{value}"' for name, value in labels.items())


def _alert(
    name: str,
    expr: str,
    *,
    for_: str,
    severity: str,
    params: RuleParams,
    summary: str,
    description: str,
    extra_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    assert _DURATION.match(for_), for_
    labels = {"severity": severity, "team": params.team, "service": params.service, **(extra_labels or {})}
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {**labels, RELEASE_LABEL: release_label(_app_selector(params))},
        "annotations": {
            "summary": summary,
            "description": description,
            **({"runbook_url": f"{params.runbook_url}#{name.lower()}"} if params.runbook_url else {}),
        },
    }


def release_rules(params: RuleParams) -> list[dict[str, Any]]:
    """The release in its verification window, and the release the alerts name (:mod:`.release`)."""
    return _release_rules(params.service, _app_selector(params), params.release_window_seconds)


def _app_selector(params: RuleParams) -> str:
    """Matchers of the app's own series: its namespace and scrape job."""
    return _selector(namespace=params.namespace, job=params.app_job)


def _user_selector(params: RuleParams) -> str:
    """Matchers of the requests users made: the app's series without probe and scrape routes."""
    return _app_selector(params) + ',route!~"' + "|".join(NON_USER_ROUTES) + '"'


def _ratio(params: RuleParams, window: str) -> str:
    """The recorded error ratio over ``window``, selected for this service."""
    return ERROR_RATIO.format(window=window) + "{" + _app_selector(params) + "}"


def recording_rules(params: RuleParams) -> list[dict[str, Any]]:
    """Request rate, p95 latency and the error ratio over every SLO window, from user requests only."""
    users = _user_selector(params)
    extra = {"service": params.service}
    recording: list[dict[str, Any]] = [
        {
            "record": REQUESTS_RATE,
            "expr": f"sum by (namespace, job) (rate(http_requests_total{{{users}}}[5m]))",
            "labels": extra,
        },
        {
            "record": LATENCY_P95,
            "expr": (
                "histogram_quantile(0.95, sum by (namespace, job, le) "
                f"(rate(http_request_duration_seconds_bucket{{{users}}}[5m])))"
            ),
            "labels": extra,
        },
    ]
    for window in SLO_WINDOWS:
        total = f"sum by (namespace, job) (rate(http_requests_total{{{users}}}[{window}]))"
        errors = f'sum by (namespace, job) (rate(http_requests_total{{{users},code=~"5.."}}[{window}]))'
        # With no 5xx series yet the error sum is empty, not 0: "or 0 * total" keeps the ratio at 0.
        recording.append(
            {
                "record": ERROR_RATIO.format(window=window),
                "expr": f"(\n  {errors}\n  or\n  0 * {total}\n)\n/\n{total}",
                "labels": extra,
            }
        )
    return recording


def _burn(params: RuleParams, windows: Sequence[BurnRateWindow]) -> str:
    """Either long/short window pair burning faster than its factor allows."""
    budget = error_budget(params.slo_availability)
    pairs = [
        f"(\n  {_ratio(params, w.long)} > ({_num(w.factor)} * {_num(budget)})\n"
        f"  and\n  {_ratio(params, w.short)} > ({_num(w.factor)} * {_num(budget)})\n)"
        for w in windows
    ]
    return "\nor\n".join(pairs)


def error_budget_alerts(params: RuleParams) -> list[dict[str, Any]]:
    """The multi-window, multi-burn-rate pair: page on a fast burn, ticket on a slow one."""
    svc, ns = params.service, params.namespace
    slo_text = f"{_num(params.slo_availability)}%"
    return [
        _alert(
            "ErrorBudgetBurnFast",
            _burn(params, FAST_BURN),
            for_="2m",
            severity=SEVERITY_PAGE,
            params=params,
            summary=f"{svc} is burning its {slo_text} availability error budget fast",
            description=(
                f"{svc} in {ns}: {{{{ $value | humanizePercentage }}}} of requests failed over the last 1h (or 6h); "
                "at this rate the 30-day error budget is gone within 5 days (14.4x burn over 1h and 5m, "
                "or 6x over 6h and 30m)."
            ),
            extra_labels={"slo": "availability"},
        ),
        _alert(
            "ErrorBudgetBurnSlow",
            _burn(params, SLOW_BURN),
            for_="15m",
            severity=SEVERITY_TICKET,
            params=params,
            summary=f"{svc} is steadily burning its {slo_text} availability error budget",
            description=(
                f"{svc} in {ns}: {{{{ $value | humanizePercentage }}}} of requests failed over the last 1d (or 3d); "
                "the error budget is spent at least as fast as it accrues (3x over 1d and 2h, or 1x over 3d and "
                "6h) and will not last the 30 days."
            ),
            extra_labels={"slo": "availability"},
        ),
    ]


def service_alerts(params: RuleParams) -> list[dict[str, Any]]:
    """Symptoms users or Prometheus see: 5xx ratio, p95 latency, no scrape target."""
    svc, ns = params.service, params.namespace
    return [
        _alert(
            "HighErrorRatio",
            f"{_ratio(params, '5m')} > {_num(params.error_ratio_threshold)}",
            for_="10m",
            severity=SEVERITY_TICKET,
            params=params,
            summary=f"{svc} answers more than {_num(params.error_ratio_threshold * 100)}% of requests with 5xx",
            description=f"{svc} in {ns}: {{{{ $value | humanizePercentage }}}} of requests failed with 5xx over 5m.",
        ),
        _alert(
            "HighLatencyP95",
            f"{LATENCY_P95}{{{_app_selector(params)}}} > {_num(params.latency_p95_seconds)}",
            for_="10m",
            severity=SEVERITY_TICKET,
            params=params,
            summary=f"{svc} p95 latency is above {_num(params.latency_p95_seconds)}s",
            description=f"{svc} in {ns}: 95% of requests took up to {{{{ $value | humanizeDuration }}}} over 5m.",
        ),
        _alert(
            "ServiceDown",
            f"absent(up{{{_app_selector(params)}}} == 1)",
            for_="5m",
            severity=SEVERITY_PAGE,
            params=params,
            summary=f"No {svc} pod can be scraped",
            description=(
                f"{svc} in {ns}: Prometheus has no healthy scrape target for job {params.app_job}; "
                "every pod is down, not ready for scraping, or the ServiceMonitor no longer matches."
            ),
        ),
    ]


def workload_alerts(params: RuleParams) -> list[dict[str, Any]]:
    """What kube-state-metrics shows of the pods: restarts, crash loops, missing replicas."""
    svc, ns = params.service, params.namespace
    in_namespace = _selector(namespace=ns)
    return [
        _alert(
            "PodRestarting",
            (
                "sum by (namespace, pod, container) "
                f"(increase(kube_pod_container_status_restarts_total{{{in_namespace}}}[1h]))"
                f" >= {params.restarts_threshold}"
            ),
            for_="5m",
            severity=SEVERITY_TICKET,
            params=params,
            summary=f"A {svc} container keeps restarting",
            description=(
                f"{{{{ $labels.container }}}} in pod {{{{ $labels.pod }}}} ({ns}) restarted "
                '{{ $value | printf "%.0f" }} times in the last hour.'
            ),
        ),
        _alert(
            "PodCrashLooping",
            (
                "max by (namespace, pod, container) (kube_pod_container_status_waiting_reason"
                f'{{{in_namespace},reason="CrashLoopBackOff"}}) == 1'
            ),
            for_="5m",
            severity=SEVERITY_PAGE,
            params=params,
            summary=f"A {svc} container is in CrashLoopBackOff",
            description=(
                f"{{{{ $labels.container }}}} in pod {{{{ $labels.pod }}}} ({ns}) has been waiting in "
                "CrashLoopBackOff for 5 minutes."
            ),
        ),
        _alert(
            "DeploymentReplicasUnavailable",
            f"max by (namespace, deployment) (kube_deployment_status_replicas_unavailable{{{in_namespace}}}) > 0",
            for_="10m",
            severity=SEVERITY_TICKET,
            params=params,
            summary=f"A {svc} deployment is missing replicas",
            description=(
                f"Deployment {{{{ $labels.deployment }}}} in {ns} has {{{{ $value }}}} unavailable replica(s) "
                "for 10 minutes (failed rollout, unschedulable or crashing pods)."
            ),
        ),
    ]


def tunnel_alerts(params: RuleParams) -> list[dict[str, Any]]:
    """cloudflared's health: no edge connection, lost connections, origin errors."""
    svc, ns = params.service, params.namespace
    tunnel = _selector(namespace=ns, job=params.tunnel_job)
    return [
        _alert(
            "TunnelDown",
            (
                f"sum by (namespace) (cloudflared_tunnel_ha_connections{{{tunnel}}}) < 1\n"
                f"or\nabsent(cloudflared_tunnel_ha_connections{{{tunnel}}})"
            ),
            for_="5m",
            severity=SEVERITY_PAGE,
            params=params,
            summary=f"{svc} has no Cloudflare Tunnel connection: users cannot reach it",
            description=(
                f"No cloudflared connector in {ns} holds a connection to the Cloudflare edge (or none can be "
                "scraped); the service's hostnames answer with errors."
            ),
        ),
        _alert(
            "TunnelDegraded",
            f"min by (namespace, pod) (cloudflared_tunnel_ha_connections{{{tunnel}}}) < {CLOUDFLARED_HA_CONNECTIONS}",
            for_="15m",
            severity=SEVERITY_TICKET,
            params=params,
            summary=f"A {svc} cloudflared connector has lost edge connections",
            description=(
                f"cloudflared pod {{{{ $labels.pod }}}} in {ns} holds {{{{ $value }}}} of its "
                f"{CLOUDFLARED_HA_CONNECTIONS} connections to the Cloudflare edge."
            ),
        ),
        _alert(
            "TunnelOriginErrors",
            (
                f"sum by (namespace) (rate(cloudflared_tunnel_request_errors{{{tunnel}}}[5m]))\n/\n"
                f"sum by (namespace) (rate(cloudflared_tunnel_total_requests{{{tunnel}}}[5m]))\n"
                f"> {_num(params.error_ratio_threshold)}"
            ),
            for_="10m",
            severity=SEVERITY_TICKET,
            params=params,
            summary=f"cloudflared cannot reach {svc} for many requests",
            description=(
                f"{{{{ $value | humanizePercentage }}}} of the requests cloudflared proxied to {svc} in {ns} "
                "failed to reach the origin over 5m."
            ),
        ),
    ]


def rule_groups(params: RuleParams) -> dict[str, Any]:
    """The Prometheus rule file (``{"groups": [...]}``) of one service in one namespace; RulesError if senseless."""
    problems = params.problems()
    if problems:
        raise RulesError("alert rules: " + "; ".join(problems))
    alerts = [*error_budget_alerts(params), *service_alerts(params)] if params.serves_requests else []
    alerts += workload_alerts(params)
    if params.tunnel:
        alerts += tunnel_alerts(params)
    # One group: rules of a group run in order, so every alert reads the series recorded in the same
    # evaluation. In separate groups (evaluated concurrently) an alert could read last minute's value.
    group_name = f"{params.service}.{params.namespace}"
    recorded = [*recording_rules(params), *release_rules(params)] if params.serves_requests else []
    return {"groups": [{"name": group_name, "interval": "1m", "rules": [*recorded, *alerts]}]}

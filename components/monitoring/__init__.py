"""Monitoring: a service's monitors, rules and dashboard, and the cluster's monitoring stack.

:mod:`~components.monitoring.component` is a service's :class:`Monitoring` (ServiceMonitor, PodMonitor,
PrometheusRule, dashboard); :mod:`~components.monitoring.rules` builds its recording and alert rules as
data; :mod:`~components.monitoring.cluster` is :class:`ClusterMonitoring` and :class:`LogCollector`,
registered once per cluster and handed to each service. The components are importable from here;
their helpers from their modules.
"""

from __future__ import annotations

from components.monitoring.cluster import ClusterMonitoring, ClusterMonitoringArgs, LogCollector, LogCollectorArgs
from components.monitoring.component import TYPE, Monitoring, MonitoringArgs

__all__ = [
    "TYPE",
    "ClusterMonitoring",
    "ClusterMonitoringArgs",
    "LogCollector",
    "LogCollectorArgs",
    "Monitoring",
    "MonitoringArgs",
]

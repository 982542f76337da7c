"""Workload: the service's pods, their Service, autoscaler, disruption budget and network policy.

:mod:`~components.workload.component` is the component; :mod:`~components.workload.pod` builds its pod
template (container, probes, security contexts, spread); :mod:`~components.workload.args` holds its
arguments, which the pod builders import without the component.
"""

from __future__ import annotations

from components.workload.args import PullCredentials, WorkloadArgs
from components.workload.component import (
    CONFIG_CHECKSUM_ANNOTATION,
    CONTAINER_NAME,
    PORT_NAME,
    PULL_SECRET_KEY,
    PULL_SECRET_TYPE,
    SLEEP_ACTION_MINOR,
    TERMINATION_MARGIN_SECONDS,
    TMP_VOLUME,
    TYPE,
    Workload,
    WorkloadError,
    config_checksum,
    config_data,
    docker_config_json,
    pre_stop_handler,
    require_pinned,
    sleep_action_supported,
    termination_grace_seconds,
)

__all__ = [
    "CONFIG_CHECKSUM_ANNOTATION",
    "CONTAINER_NAME",
    "PORT_NAME",
    "PULL_SECRET_KEY",
    "PULL_SECRET_TYPE",
    "SLEEP_ACTION_MINOR",
    "TERMINATION_MARGIN_SECONDS",
    "TMP_VOLUME",
    "TYPE",
    "PullCredentials",
    "Workload",
    "WorkloadArgs",
    "WorkloadError",
    "config_checksum",
    "config_data",
    "docker_config_json",
    "pre_stop_handler",
    "require_pinned",
    "sleep_action_supported",
    "termination_grace_seconds",
]

"""The arguments of a :class:`~components.workload.component.Workload`, apart from the component so its
pod builders (:mod:`components.workload.pod`) import them without it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.config.settings import Resources
from components.labels import DEFAULT_SCHEME, LabelScheme


@dataclass(frozen=True, kw_only=True)
class PullCredentials:
    """How the pods log in to a private registry; ``password`` is made a Pulumi secret."""

    server: str
    """Registry host, e.g. ``ghcr.io``."""
    username: pulumi.Input[str]
    password: pulumi.Input[str]


@dataclass(frozen=True, kw_only=True)
class WorkloadArgs:
    """Arguments of :class:`Workload`."""

    namespace: pulumi.Input[str]
    """Namespace to run in (the Environment's output, so objects wait for it). Required."""
    service_name: str
    """Service name: names the Deployment, Service and friends; selector labels. Required."""
    team: str
    """Owning team (label). Required."""
    stage: str
    """Lifecycle stage (label). Required."""
    app_version: str
    """Release version: ``APP_VERSION`` env and the ``app.kubernetes.io/version`` label. Required."""
    image: pulumi.Input[str]
    """Image pinned by digest, ``repo@sha256:…``; anything else is refused. Required."""
    replicas: int
    """Minimum pods: the autoscaler's floor. Required, at least 1."""
    container_port: int
    """Port the app listens on (``PORT``); the Service exposes the same port. Required."""
    resources: Resources
    """Container requests and limits. Required."""
    monitoring_namespace: str
    """Namespace whose pods (Prometheus) may reach the app port. Required."""
    kubernetes_version: str
    """Targeted Kubernetes minor version, e.g. ``1.31`` (chooses the preStop handler). Required."""
    serves_http: bool = True
    """The pods serve HTTP on :attr:`container_port`: a Service, HTTP probes, ingress from cloudflared and
    Prometheus. False (a worker that serves nothing): no Service, no probes, no port, all ingress denied.
    Default True."""
    max_replicas: int | None = None
    """The autoscaler's ceiling. Default None: twice :attr:`replicas`."""
    pull_credentials: PullCredentials | None = None
    """Registry login for a private image: a dockerconfigjson Secret the ServiceAccount hands to every pod.
    Default None: the nodes pull on their own (public image, or ECR with the node's IAM role)."""
    drain_seconds: int = 5
    """``DRAIN_SECONDS``: after SIGTERM, serve with readiness 503 this long. Default 5."""
    shutdown_grace_seconds: int = 20
    """``SHUTDOWN_GRACE_SECONDS``: then wait this long for in-flight requests. Default 20."""
    prestop_seconds: int = 5
    """Pause before SIGTERM while endpoints are withdrawn everywhere. Default 5."""
    progress_deadline_seconds: int = 300
    """A rollout that makes no progress this long is reported failed. Default 300."""
    target_cpu_utilization: int = 70
    """Average CPU, in percent of the request, the autoscaler aims at. Default 70."""
    run_as_user: int = 10001
    """Numeric UID and GID the container runs as (the app image's user). Default 10001."""
    tmp_size_limit: str = "64Mi"
    """Size limit of the ``/tmp`` emptyDir. Default ``64Mi``."""
    label_scheme: LabelScheme = DEFAULT_SCHEME
    """Label keys and managed-by value (settings ``labelPrefix``, ``managedBy``). Default: the library's."""


__all__ = ["PullCredentials", "WorkloadArgs"]

"""Workload: the service's pods, their Service, autoscaler, disruption budget and network policy.

The image is pinned by digest. Pods run as the app image's numeric UID with a read-only root
filesystem (``/tmp`` is an emptyDir), every capability dropped and the runtime's seccomp profile,
so they pass Pod Security ``restricted``. Rolling updates never take a ready pod away before its
replacement is ready (``maxUnavailable: 0``).

Shutdown, in order (the app's contract, see app/server.py):

1. The pod is deleted: its endpoints are marked not ready at once, and the ``preStop`` pause
   (``prestop_seconds``) holds SIGTERM back while kube-proxy and cloudflared catch up.
2. SIGTERM: the app answers ``/readyz`` with 503 and keeps serving for ``DRAIN_SECONDS``.
3. It stops accepting and waits up to ``SHUTDOWN_GRACE_SECONDS`` for in-flight requests.

``terminationGracePeriodSeconds`` (which counts from step 1) is the sum of the three plus
:data:`TERMINATION_MARGIN_SECONDS`, so the kubelet never kills a pod that is still draining.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.refs import DIGEST_REF
from components.workload.args import PullCredentials, WorkloadArgs
from components.workload.pod import (
    CONFIG_CHECKSUM_ANNOTATION,
    CONTAINER_NAME,
    PORT_NAME,
    TMP_VOLUME,
    app_container,
    pod_template,
)

TYPE: Final = "service-lifecycle:index:Workload"

TERMINATION_MARGIN_SECONDS: Final = 5
"""Slack between the end of the app's worst-case shutdown and the kubelet's SIGKILL."""
SLEEP_ACTION_MINOR: Final = 30
"""First Kubernetes minor version where the ``sleep`` lifecycle handler is on by default (beta)."""
PULL_SECRET_TYPE: Final = "kubernetes.io/dockerconfigjson"
PULL_SECRET_KEY: Final = ".dockerconfigjson"
_VERSION = re.compile(r"^1\.(\d+)$")


class WorkloadError(ValueError):
    """Workload arguments that cannot make a correct deployment."""


def require_pinned(image: str) -> str:
    """``image`` if it is pinned by digest (``repo[:tag]@sha256:<64 hex>``); WorkloadError otherwise."""
    if not DIGEST_REF.match(image):
        raise WorkloadError(f"image {image!r} is not pinned by digest; expected repo@sha256:<64 hex> (tags can move)")
    return image


def sleep_action_supported(kubernetes_version: str) -> bool:
    """True when ``kubernetes_version`` (``1.<minor>``) enables ``lifecycle.preStop.sleep`` by default."""
    match = _VERSION.match(kubernetes_version)
    if not match:
        raise WorkloadError(f"kubernetes_version {kubernetes_version!r}; expected 1.<minor>, e.g. 1.31")
    return int(match.group(1)) >= SLEEP_ACTION_MINOR


def pre_stop_handler(seconds: int, kubernetes_version: str) -> k8s.core.v1.LifecycleHandlerArgsDict:
    """The ``preStop`` handler that pauses ``seconds`` before SIGTERM.

    The kubelet's own ``sleep`` action where the version has it: it needs nothing in the image.
    Before 1.30 it was alpha (off by default), so older clusters run ``python3`` from the image
    instead: the app image is a Python image (its command is ``python3``) and need not have
    ``sleep``.
    """
    if sleep_action_supported(kubernetes_version):
        return {"sleep": {"seconds": seconds}}
    return {"exec_": {"command": ["python3", "-c", f"import time; time.sleep({seconds})"]}}


def docker_config_json(server: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` document of a ``kubernetes.io/dockerconfigjson`` Secret.

    The shape the kubelet reads (kubernetes ``pkg/credentialprovider/config.go``, ``DockerConfigJSON``:
    ``auths`` → server → ``username``, ``password``, ``auth`` = base64 of ``user:password``), the same as
    ``kubectl create secret docker-registry`` writes.
    """
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}}, sort_keys=True)


def _check(args: WorkloadArgs) -> None:
    problems: list[str] = []
    if args.replicas < 1:
        problems.append(f"replicas is {args.replicas}; expected at least 1")
    if args.max_replicas is not None and args.max_replicas < args.replicas:
        problems.append(f"max_replicas is {args.max_replicas}; expected at least replicas ({args.replicas})")
    if not 1 <= args.container_port <= 65535:
        problems.append(f"container_port is {args.container_port}; expected 1 to 65535")
    for field_name in ("drain_seconds", "shutdown_grace_seconds", "prestop_seconds"):
        if getattr(args, field_name) < 0:
            problems.append(f"{field_name} is {getattr(args, field_name)}; expected 0 or more")
    if args.progress_deadline_seconds < 1:
        problems.append(f"progress_deadline_seconds is {args.progress_deadline_seconds}; expected at least 1")
    if not 1 <= args.target_cpu_utilization <= 100:
        problems.append(f"target_cpu_utilization is {args.target_cpu_utilization}; expected 1 to 100")
    if args.run_as_user < 1:
        problems.append(f"run_as_user is {args.run_as_user}; expected a non-root UID (1 or more)")
    if isinstance(args.image, str) and not DIGEST_REF.match(args.image):
        problems.append(f"image {args.image!r} is not pinned by digest; expected repo@sha256:<64 hex>")
    try:
        sleep_action_supported(args.kubernetes_version)
    except WorkloadError as error:
        problems.append(str(error))
    if problems:
        raise WorkloadError(f"invalid Workload arguments for {args.service_name}: " + "; ".join(problems))


class Workload(pulumi.ComponentResource):
    """The service's pods and everything that keeps them available and reachable, nothing more."""

    namespace: pulumi.Output[str]
    """Namespace the workload runs in."""
    service_name: pulumi.Output[str] | None
    """Name of the ClusterIP Service; None for a worker that serves nothing (``serves_http`` false)."""
    service_port: int
    """Port of the Service (the same as the container port)."""
    container_port: int
    """Port the app listens on in the pod (what NetworkPolicies must admit)."""
    port_name: str
    """Name of the Service and container port (``http``), for ServiceMonitor endpoints."""
    selector: dict[str, str]
    """Labels that select the app pods."""
    url: pulumi.Output[str] | None
    """In-cluster URL, ``http://<service>.<namespace>.svc.cluster.local:<port>``; None without a Service."""
    serves_http: bool
    """Whether the pods serve HTTP (a Service, probes, scraping); False for a worker."""
    deployment_name: pulumi.Output[str]
    """Name of the Deployment."""
    container_name: str
    """Name of the app container (restart alerts select on it)."""
    image: pulumi.Output[str]
    """The image deployed, pinned by digest."""

    def __init__(self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        _check(args)  # before anything is registered
        super().__init__(TYPE, name, None, opts)
        service = args.service_name
        at = _Objects(
            name=name,
            args=args,
            namespace=pulumi.Output.from_input(args.namespace),
            labels=labels.standard(
                service, team=args.team, stage=args.stage, component=labels.COMPONENT_SERVER, scheme=args.label_scheme
            ),
            selector=labels.selector(service, labels.COMPONENT_SERVER),
            child=pulumi.ResourceOptions(parent=self),
        )
        image = pulumi.Output.from_input(args.image).apply(require_pinned)

        account = _service_account(at)
        config = _config_map(at)
        deployment_name = _deployment(at, image, account, config)
        svc = _service(at) if args.serves_http else None
        _autoscaler(at, deployment_name)
        _disruption_budget(at)
        _network_policy(at)

        self.namespace = at.namespace
        self.service_name = svc.metadata.apply(lambda m: m.name or service) if svc is not None else None
        self.serves_http = args.serves_http
        self.service_port = args.container_port
        self.container_port = args.container_port
        self.port_name = PORT_NAME
        self.selector = at.selector
        self.url = (
            pulumi.Output.concat(
                "http://", self.service_name, ".", at.namespace, ".svc.cluster.local:", str(args.container_port)
            )
            if self.service_name is not None
            else None
        )
        self.deployment_name = deployment_name
        self.container_name = CONTAINER_NAME
        self.image = image
        self.register_outputs(
            {
                "namespace": self.namespace,
                "service_name": self.service_name,
                "service_port": self.service_port,
                "selector": self.selector,
                "url": self.url,
                "image": self.image,
            }
        )


# -- the objects, one step each, in registration order -----------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Objects:
    """What the Kubernetes objects of one Workload share: names, namespace, labels and parent."""

    name: str
    """The Workload's name: prefix of every Pulumi resource name."""
    args: WorkloadArgs
    namespace: pulumi.Output[str]
    labels: dict[str, str]
    """Labels of every object."""
    selector: dict[str, str]
    """Labels that select the app pods."""
    child: pulumi.ResourceOptions
    """Options of every object: the Workload is its parent."""

    def metadata(self, object_name: str) -> k8s.meta.v1.ObjectMetaArgsDict:
        return {"name": object_name, "namespace": self.namespace, "labels": self.labels}


def _service_account(at: _Objects) -> k8s.core.v1.ServiceAccount:
    """The pods' ServiceAccount (no API token), carrying the pull Secret when there is a registry login."""
    service = at.args.service_name
    pull_secrets: list[k8s.core.v1.LocalObjectReferenceArgsDict] = []
    if at.args.pull_credentials is not None:
        pull_secrets.append({"name": _pull_secret(at, at.args.pull_credentials)})
    return k8s.core.v1.ServiceAccount(
        f"{at.name}-service-account",
        metadata=at.metadata(service),
        automount_service_account_token=False,
        # The ServiceAccount admission plugin copies these into every pod that runs as this account.
        image_pull_secrets=pull_secrets or None,
        opts=at.child,
    )


def _pull_secret(at: _Objects, login: PullCredentials) -> pulumi.Output[str]:
    """The ``kubernetes.io/dockerconfigjson`` Secret for ``login``; returns its name."""
    metadata = at.metadata(f"{at.args.service_name}-pull")
    document: pulumi.Output[str] = pulumi.Output.all(username=login.username, password=login.password).apply(
        lambda v: docker_config_json(login.server, str(v["username"]), str(v["password"]))
    )
    sealed: pulumi.Output[str] = pulumi.Output.secret(document)
    secret = k8s.core.v1.Secret(
        f"{at.name}-pull-secret",
        metadata=metadata,
        type=PULL_SECRET_TYPE,
        string_data={PULL_SECRET_KEY: sealed},
        opts=at.child,
    )
    fallback = str(metadata["name"])
    return secret.metadata.apply(lambda m: m.name or fallback)


def config_data(args: WorkloadArgs) -> dict[str, str]:
    """The app's environment from its ConfigMap (the app's contract, see app/server.py)."""
    return {
        "SERVICE_NAME": args.service_name,
        "PORT": str(args.container_port),
        "DRAIN_SECONDS": str(args.drain_seconds),
        "SHUTDOWN_GRACE_SECONDS": str(args.shutdown_grace_seconds),
    }


def config_checksum(data: dict[str, str]) -> str:
    """SHA-256 of ``data`` as canonical JSON: the pod annotation that rolls the pods on a config change."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def termination_grace_seconds(args: WorkloadArgs) -> int:
    """preStop pause + drain + shutdown grace + :data:`TERMINATION_MARGIN_SECONDS` (see the module docstring)."""
    return args.prestop_seconds + args.drain_seconds + args.shutdown_grace_seconds + TERMINATION_MARGIN_SECONDS


def _config_map(at: _Objects) -> k8s.core.v1.ConfigMap:
    return k8s.core.v1.ConfigMap(
        f"{at.name}-config",
        metadata=at.metadata(f"{at.args.service_name}-config"),
        data=config_data(at.args),
        opts=at.child,
    )


def _deployment(
    at: _Objects, image: pulumi.Output[str], account: k8s.core.v1.ServiceAccount, config: k8s.core.v1.ConfigMap
) -> pulumi.Output[str]:
    """The Deployment (its pods: :mod:`components.workload.pod`); returns its name."""
    args = at.args
    pre_stop = pre_stop_handler(args.prestop_seconds, args.kubernetes_version) if args.prestop_seconds > 0 else None
    container = app_container(args, image=image, config=config, pre_stop=pre_stop)
    deployment = k8s.apps.v1.Deployment(
        f"{at.name}-deployment",
        metadata=at.metadata(args.service_name),
        spec={
            # No spec.replicas: the autoscaler owns it (server-side apply would fight it);
            # it raises a new Deployment to minReplicas within its first sync.
            "selector": {"match_labels": at.selector},
            "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}},
            "progress_deadline_seconds": args.progress_deadline_seconds,
            "revision_history_limit": 5,
            "template": pod_template(
                args,
                labels={**at.labels, "app.kubernetes.io/version": args.app_version},
                selector=at.selector,
                config_checksum=config_checksum(config_data(args)),
                account=account,
                container=container,
                termination_grace_seconds=termination_grace_seconds(args),
            ),
        },
        opts=at.child,
    )
    service = args.service_name
    return deployment.metadata.apply(lambda m: m.name or service)


def _service(at: _Objects) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        f"{at.name}-service",
        metadata=at.metadata(at.args.service_name),
        spec={
            "type": "ClusterIP",
            "selector": at.selector,
            "ports": [{"name": PORT_NAME, "port": at.args.container_port, "target_port": PORT_NAME}],
        },
        opts=at.child,
    )


def _autoscaler(at: _Objects, deployment_name: pulumi.Output[str]) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
    args = at.args
    max_replicas = args.max_replicas if args.max_replicas is not None else 2 * args.replicas
    return k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{at.name}-autoscaler",
        metadata=at.metadata(args.service_name),
        spec={
            "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": deployment_name},
            "min_replicas": args.replicas,
            "max_replicas": max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "average_utilization": args.target_cpu_utilization},
                    },
                }
            ],
            "behavior": {"scale_down": {"stabilization_window_seconds": 300}},
        },
        opts=at.child,
    )


def _disruption_budget(at: _Objects) -> k8s.policy.v1.PodDisruptionBudget:
    return k8s.policy.v1.PodDisruptionBudget(
        f"{at.name}-disruption-budget",
        metadata=at.metadata(at.args.service_name),
        # maxUnavailable, not minAvailable: a one-pod stage can still be drained.
        spec={"max_unavailable": 1, "selector": {"match_labels": at.selector}},
        opts=at.child,
    )


def _network_policy(at: _Objects) -> k8s.networking.v1.NetworkPolicy:
    """Only cloudflared's pods and Prometheus's namespace reach the app port; nothing reaches a worker."""
    service = at.args.service_name
    if not at.args.serves_http:
        return k8s.networking.v1.NetworkPolicy(
            f"{at.name}-ingress",
            metadata=at.metadata(f"{service}-ingress"),
            spec={"pod_selector": {"match_labels": at.selector}, "policy_types": ["Ingress"], "ingress": []},
            opts=at.child,
        )
    return k8s.networking.v1.NetworkPolicy(
        f"{at.name}-ingress",
        metadata=at.metadata(f"{service}-ingress"),
        spec={
            "pod_selector": {"match_labels": at.selector},
            "policy_types": ["Ingress"],
            "ingress": [
                {
                    "from_": [
                        {"pod_selector": {"match_labels": labels.selector(service, labels.COMPONENT_TUNNEL)}},
                        {
                            "namespace_selector": {
                                "match_labels": {"kubernetes.io/metadata.name": at.args.monitoring_namespace}
                            }
                        },
                    ],
                    "ports": [{"protocol": "TCP", "port": at.args.container_port}],
                }
            ],
        },
        opts=at.child,
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

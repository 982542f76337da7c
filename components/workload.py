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
from components.settings import Resources

TYPE: Final = "service-lifecycle:index:Workload"

CONTAINER_NAME: Final = "app"
PORT_NAME: Final = "http"
TMP_VOLUME: Final = "tmp"
TERMINATION_MARGIN_SECONDS: Final = 5
"""Slack between the end of the app's worst-case shutdown and the kubelet's SIGKILL."""
SLEEP_ACTION_MINOR: Final = 30
"""First Kubernetes minor version where the ``sleep`` lifecycle handler is on by default (beta)."""
CONFIG_CHECKSUM_ANNOTATION: Final = "service-lifecycle/config-checksum"
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


@dataclass(frozen=True, kw_only=True)
class PullCredentials:
    """How the pods log in to a private registry; ``password`` is made a Pulumi secret."""

    server: str
    """Registry host, e.g. ``ghcr.io``."""
    username: pulumi.Input[str]
    password: pulumi.Input[str]


def docker_config_json(server: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` document of a ``kubernetes.io/dockerconfigjson`` Secret.

    The shape the kubelet reads (kubernetes ``pkg/credentialprovider/config.go``, ``DockerConfigJSON``:
    ``auths`` → server → ``username``, ``password``, ``auth`` = base64 of ``user:password``), the same as
    ``kubectl create secret docker-registry`` writes.
    """
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}}, sort_keys=True)


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
    service_name: pulumi.Output[str]
    """Name of the ClusterIP Service."""
    service_port: int
    """Port of the Service (the same as the container port)."""
    container_port: int
    """Port the app listens on in the pod (what NetworkPolicies must admit)."""
    port_name: str
    """Name of the Service and container port (``http``), for ServiceMonitor endpoints."""
    selector: dict[str, str]
    """Labels that select the app pods."""
    url: pulumi.Output[str]
    """In-cluster URL, ``http://<service>.<namespace>.svc.cluster.local:<port>``."""
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
        child = pulumi.ResourceOptions(parent=self)
        common = labels.standard(service, team=args.team, stage=args.stage, component=labels.COMPONENT_SERVER)
        selector = labels.selector(service, labels.COMPONENT_SERVER)
        pod_labels = {**common, "app.kubernetes.io/version": args.app_version}
        namespace = pulumi.Output.from_input(args.namespace)
        image = pulumi.Output.from_input(args.image).apply(require_pinned)
        max_replicas = args.max_replicas if args.max_replicas is not None else 2 * args.replicas
        termination_grace = (
            args.prestop_seconds + args.drain_seconds + args.shutdown_grace_seconds + TERMINATION_MARGIN_SECONDS
        )

        def metadata(object_name: str) -> k8s.meta.v1.ObjectMetaArgsDict:
            return {"name": object_name, "namespace": namespace, "labels": common}

        pull_secrets: list[k8s.core.v1.LocalObjectReferenceArgsDict] = []
        if args.pull_credentials is not None:
            pull_secrets.append({"name": self._pull_secret(name, args.pull_credentials, metadata(f"{service}-pull"))})
        account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata=metadata(service),
            automount_service_account_token=False,
            # The ServiceAccount admission plugin copies these into every pod that runs as this account.
            image_pull_secrets=pull_secrets or None,
            opts=child,
        )

        config_data = {
            "SERVICE_NAME": service,
            "PORT": str(args.container_port),
            "DRAIN_SECONDS": str(args.drain_seconds),
            "SHUTDOWN_GRACE_SECONDS": str(args.shutdown_grace_seconds),
        }
        checksum = hashlib.sha256(json.dumps(config_data, sort_keys=True).encode()).hexdigest()
        config = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=metadata(f"{service}-config"), data=config_data, opts=child
        )

        env: list[k8s.core.v1.EnvVarArgsDict] = [
            {"name": "APP_VERSION", "value": args.app_version},
            {"name": "IMAGE_REF", "value": image},
        ]
        container: k8s.core.v1.ContainerArgsDict = {
            "name": CONTAINER_NAME,
            "image": image,
            "image_pull_policy": "IfNotPresent",
            "ports": [{"name": PORT_NAME, "container_port": args.container_port, "protocol": "TCP"}],
            "env_from": [{"config_map_ref": {"name": config.metadata.apply(lambda m: m.name)}}],
            "env": env,
            "resources": {
                "requests": {"cpu": args.resources.cpu_request, "memory": args.resources.memory_request},
                "limits": {"cpu": args.resources.cpu_limit, "memory": args.resources.memory_limit},
            },
            "startup_probe": {
                "http_get": {"path": "/healthz", "port": PORT_NAME},
                "period_seconds": 2,
                "timeout_seconds": 2,
                "failure_threshold": 30,
            },
            "liveness_probe": {
                "http_get": {"path": "/healthz", "port": PORT_NAME},
                "period_seconds": 10,
                "timeout_seconds": 2,
                "failure_threshold": 3,
            },
            "readiness_probe": {
                "http_get": {"path": "/readyz", "port": PORT_NAME},
                "period_seconds": 5,
                "timeout_seconds": 2,
                "failure_threshold": 2,
            },
            "security_context": {
                "run_as_non_root": True,
                "run_as_user": args.run_as_user,
                "run_as_group": args.run_as_user,
                "allow_privilege_escalation": False,
                "privileged": False,
                "read_only_root_filesystem": True,
                "capabilities": {"drop": ["ALL"]},
                "seccomp_profile": {"type": "RuntimeDefault"},
            },
            "volume_mounts": [{"name": TMP_VOLUME, "mount_path": "/tmp"}],  # noqa: S108 - the app's only writable path
        }
        if args.prestop_seconds > 0:
            container["lifecycle"] = {"pre_stop": pre_stop_handler(args.prestop_seconds, args.kubernetes_version)}

        spread: list[k8s.core.v1.TopologySpreadConstraintArgsDict] = [
            {
                "max_skew": 1,
                "topology_key": "kubernetes.io/hostname",
                "when_unsatisfiable": "DoNotSchedule",
                "label_selector": {"match_labels": selector},
                # Nodes the pods cannot run on (tainted: control plane, GPU pools) count as empty
                # domains by default, and DoNotSchedule then leaves pods Pending.
                "node_taints_policy": "Honor",
            },
            {  # clusters in one zone (or without zone labels) still schedule
                "max_skew": 1,
                "topology_key": "topology.kubernetes.io/zone",
                "when_unsatisfiable": "ScheduleAnyway",
                "label_selector": {"match_labels": selector},
            },
        ]
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata(service),
            spec={
                # No spec.replicas: the autoscaler owns it (server-side apply would fight it);
                # it raises a new Deployment to minReplicas within its first sync.
                "selector": {"match_labels": selector},
                "strategy": {"type": "RollingUpdate", "rolling_update": {"max_unavailable": 0, "max_surge": 1}},
                "progress_deadline_seconds": args.progress_deadline_seconds,
                "revision_history_limit": 5,
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {
                            CONFIG_CHECKSUM_ANNOTATION: checksum,
                            "kubectl.kubernetes.io/default-container": CONTAINER_NAME,
                        },
                    },
                    "spec": {
                        "service_account_name": account.metadata.apply(lambda m: m.name),
                        "automount_service_account_token": False,
                        "enable_service_links": False,
                        "termination_grace_period_seconds": termination_grace,
                        "security_context": {
                            "run_as_non_root": True,
                            "run_as_user": args.run_as_user,
                            "run_as_group": args.run_as_user,
                            "fs_group": args.run_as_user,
                            "seccomp_profile": {"type": "RuntimeDefault"},
                        },
                        "topology_spread_constraints": spread,
                        "containers": [container],
                        "volumes": [{"name": TMP_VOLUME, "empty_dir": {"size_limit": args.tmp_size_limit}}],
                    },
                },
            },
            opts=child,
        )
        deployment_name: pulumi.Output[str] = deployment.metadata.apply(lambda m: m.name or service)

        svc = k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata(service),
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": PORT_NAME, "port": args.container_port, "target_port": PORT_NAME}],
            },
            opts=child,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-autoscaler",
            metadata=metadata(service),
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
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-disruption-budget",
            metadata=metadata(service),
            # maxUnavailable, not minAvailable: a one-pod stage can still be drained.
            spec={"max_unavailable": 1, "selector": {"match_labels": selector}},
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress",
            metadata=metadata(f"{service}-ingress"),
            spec={
                "pod_selector": {"match_labels": selector},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from_": [
                            {"pod_selector": {"match_labels": labels.selector(service, labels.COMPONENT_TUNNEL)}},
                            {
                                "namespace_selector": {
                                    "match_labels": {"kubernetes.io/metadata.name": args.monitoring_namespace}
                                }
                            },
                        ],
                        "ports": [{"protocol": "TCP", "port": args.container_port}],
                    }
                ],
            },
            opts=child,
        )

        self.namespace = namespace
        self.service_name = svc.metadata.apply(lambda m: m.name or service)
        self.service_port = args.container_port
        self.container_port = args.container_port
        self.port_name = PORT_NAME
        self.selector = selector
        self.url = pulumi.Output.concat(
            "http://", self.service_name, ".", namespace, ".svc.cluster.local:", str(args.container_port)
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

    def _pull_secret(
        self, name: str, login: PullCredentials, metadata: k8s.meta.v1.ObjectMetaArgsDict
    ) -> pulumi.Output[str]:
        """The ``kubernetes.io/dockerconfigjson`` Secret for ``login``; returns its name."""
        document: pulumi.Output[str] = pulumi.Output.all(username=login.username, password=login.password).apply(
            lambda v: docker_config_json(login.server, str(v["username"]), str(v["password"]))
        )
        sealed: pulumi.Output[str] = pulumi.Output.secret(document)
        secret = k8s.core.v1.Secret(
            f"{name}-pull-secret",
            metadata=metadata,
            type=PULL_SECRET_TYPE,
            string_data={PULL_SECRET_KEY: sealed},
            opts=pulumi.ResourceOptions(parent=self),
        )
        fallback = str(metadata["name"])
        return secret.metadata.apply(lambda m: m.name or fallback)

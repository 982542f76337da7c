"""The app pods of a :class:`~components.workload.Workload`: container, pod security and spread.

Plain builders of the Deployment's pod template, no resources: :func:`app_container` (ports, config,
probes, resources, the locked-down security context, the ``preStop`` pause), :func:`spread_constraints`
and :func:`pod_template`, which puts them together with the pod-level settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pulumi
import pulumi_kubernetes as k8s

if TYPE_CHECKING:
    from components.workload.args import WorkloadArgs

CONTAINER_NAME: Final = "app"
PORT_NAME: Final = "http"
TMP_VOLUME: Final = "tmp"
CONFIG_CHECKSUM_KEY: Final = "config-checksum"
"""The pod annotation ``<labelPrefix>/config-checksum`` (``args.label_scheme.key(CONFIG_CHECKSUM_KEY)``)."""
CONFIG_CHECKSUM_ANNOTATION: Final = f"service-lifecycle/{CONFIG_CHECKSUM_KEY}"
"""That annotation with the library's default prefix."""


def app_container(
    args: WorkloadArgs,
    *,
    image: pulumi.Output[str],
    config: k8s.core.v1.ConfigMap,
    pre_stop: k8s.core.v1.LifecycleHandlerArgsDict | None,
) -> k8s.core.v1.ContainerArgsDict:
    """The app container: its environment from ``config``, probes on ``/healthz`` and ``/readyz``."""
    env: list[k8s.core.v1.EnvVarArgsDict] = [
        {"name": "APP_VERSION", "value": args.app_version},
        {"name": "IMAGE_REF", "value": image},
    ]
    http: dict[str, Any] = {
        "ports": [{"name": PORT_NAME, "container_port": args.container_port, "protocol": "TCP"}],
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
    }
    container: k8s.core.v1.ContainerArgsDict = {
        "name": CONTAINER_NAME,
        "image": image,
        "image_pull_policy": "IfNotPresent",
        "ports": http["ports"],
        "env_from": [{"config_map_ref": {"name": config.metadata.apply(lambda m: m.name)}}],
        "env": env,
        "resources": {
            "requests": {"cpu": args.resources.cpu_request, "memory": args.resources.memory_request},
            "limits": {"cpu": args.resources.cpu_limit, "memory": args.resources.memory_limit},
        },
        "startup_probe": http["startup_probe"],
        "liveness_probe": http["liveness_probe"],
        "readiness_probe": http["readiness_probe"],
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
    if not args.serves_http:
        # A worker serves nothing: no port to probe (Kubernetes restarts it when its process exits), no
        # endpoints to withdraw before SIGTERM.
        for field_name in ("ports", "startup_probe", "liveness_probe", "readiness_probe"):
            del container[field_name]  # type: ignore[misc,attr-defined,unused-ignore]
        return container
    if pre_stop is not None:
        container["lifecycle"] = {"pre_stop": pre_stop}  # type: ignore[index,unused-ignore]
    return container


def spread_constraints(selector: dict[str, str]) -> list[k8s.core.v1.TopologySpreadConstraintArgsDict]:
    """One pod per node where it can be (a hard rule), spread over zones where there are several."""
    return [
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


def pod_template(
    args: WorkloadArgs,
    *,
    labels: dict[str, str],
    selector: dict[str, str],
    config_checksum: str,
    account: k8s.core.v1.ServiceAccount,
    container: k8s.core.v1.ContainerArgsDict,
    termination_grace_seconds: int,
) -> k8s.core.v1.PodTemplateSpecArgsDict:
    """The pods, running as ``account``; ``config_checksum`` in an annotation rolls them when their config changes."""
    return {
        "metadata": {
            "labels": labels,
            "annotations": {
                args.label_scheme.key(CONFIG_CHECKSUM_KEY): config_checksum,
                "kubectl.kubernetes.io/default-container": CONTAINER_NAME,
            },
        },
        "spec": {
            "service_account_name": account.metadata.apply(lambda m: m.name),
            "automount_service_account_token": False,
            "enable_service_links": False,
            "termination_grace_period_seconds": termination_grace_seconds,
            "security_context": {
                "run_as_non_root": True,
                "run_as_user": args.run_as_user,
                "run_as_group": args.run_as_user,
                "fs_group": args.run_as_user,
                "seccomp_profile": {"type": "RuntimeDefault"},
            },
            "topology_spread_constraints": spread_constraints(selector),
            "containers": [container],
            "volumes": [{"name": TMP_VOLUME, "empty_dir": {"size_limit": args.tmp_size_limit}}],
        },
    }

"""Environment: the service's namespace in one stage, with its guard rails.

A Namespace enforcing Pod Security ``restricted`` (enforce, audit, warn), labelled with the
service, team and stage (the policy pack reads the stage from it); a ResourceQuota (which also
forbids LoadBalancer and NodePort Services); a LimitRange giving containers default requests and
limits; and a default-deny NetworkPolicy for ingress and egress that still lets pods resolve
names through the cluster DNS. Whatever a part needs beyond that it allows itself, next to the
pods that need it (the Workload admits traffic to the app; Exposure lets cloudflared out).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from components import labels
from components.config.settings import Resources, cpu_millicores, memory_bytes
from components.labels import DEFAULT_SCHEME, LabelScheme

TYPE: Final = "service-lifecycle:index:Environment"

POD_SECURITY_LEVEL: Final = "restricted"
POD_SECURITY_MODES: Final = ("enforce", "audit", "warn")
DNS_NAMESPACE: Final = "kube-system"
DNS_POD_LABELS: Final = {"k8s-app": "kube-dns"}
"""Labels of the cluster DNS pods (kube-dns and CoreDNS both carry ``k8s-app: kube-dns``)."""
DNS_PORT: Final = 53
NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
"""Label the API server sets on every namespace to its name (immutable, so safe to select on)."""


def pod_security_labels(version: str) -> dict[str, str]:
    """``pod-security.kubernetes.io/<mode>=restricted`` and ``<mode>-version`` for every mode."""
    result: dict[str, str] = {}
    for mode in POD_SECURITY_MODES:
        result[f"pod-security.kubernetes.io/{mode}"] = POD_SECURITY_LEVEL
        result[f"pod-security.kubernetes.io/{mode}-version"] = version
    return result


def _cpu(millicores: float) -> str:
    return f"{math.ceil(millicores)}m"


def _memory(amount: float) -> str:
    mib = amount / 2**20
    return f"{math.ceil(mib)}Mi"


def namespace_quota(*, pods: int, per_pod: Resources, more: Sequence[tuple[int, Resources]] = ()) -> dict[str, str]:
    """ResourceQuota ``hard`` for at most ``pods`` pods of one container sized ``per_pod``, plus
    ``n`` pods sized ``size`` for every ``(n, size)`` in ``more`` (other deployments, e.g. cloudflared).

    Memory is rounded up to whole MiB and CPU to whole millicores. LoadBalancer and NodePort
    Services are capped at 0: the cluster itself refuses them, not only the policy pack.
    """
    groups = [(pods, per_pod), *more]
    if any(count < 1 for count, _ in groups):
        raise ValueError(f"pods is {min(count for count, _ in groups)}; expected at least 1")

    def total(size: Callable[[Resources], Decimal]) -> float:
        return float(sum((size(r) * count for count, r in groups), Decimal(0)))

    return {
        "pods": str(sum(count for count, _ in groups)),
        "requests.cpu": _cpu(total(lambda r: cpu_millicores(r.cpu_request))),
        "limits.cpu": _cpu(total(lambda r: cpu_millicores(r.cpu_limit))),
        "requests.memory": _memory(total(lambda r: memory_bytes(r.memory_request))),
        "limits.memory": _memory(total(lambda r: memory_bytes(r.memory_limit))),
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }


@dataclass(frozen=True, kw_only=True)
class EnvironmentArgs:
    """Arguments of :class:`Environment`."""

    namespace: str
    """Namespace name, e.g. ``hello-staging``. Required."""
    service_name: str
    """Service the namespace belongs to (labels, object names). Required."""
    team: str
    """Owning team (label). Required."""
    stage: str
    """Lifecycle stage (the ``service-lifecycle/stage`` label the policy pack reads). Required."""
    quota: Mapping[str, str]
    """ResourceQuota ``spec.hard`` (see :func:`namespace_quota`). Required."""
    container_defaults: Resources
    """LimitRange default requests and limits for containers that set none. Required."""
    protect: bool = False
    """``protect`` the Namespace, so deleting it takes an explicit unprotect. Default False."""
    pod_security_version: str = "latest"
    """Pod Security Standards version the labels pin, e.g. ``v1.31``. Default ``latest``."""
    label_scheme: LabelScheme = DEFAULT_SCHEME
    """Label keys and managed-by value (settings ``labelPrefix``, ``managedBy``). Default: the library's."""


GUARD_RAIL_ANNOTATIONS: Final = MappingProxyType({"pulumi.com/patchForce": "true"})
"""On the namespace and its guard rails (quota, limits, default-deny): the stack owns every field it sets
there, so the next ``up`` takes back a field someone changed by hand (server-side apply with force)
instead of failing on the field conflict. The real engine showed the conflict: a Pod Security label
relaxed with ``kubectl label`` made the repairing ``up`` fail (docs/engine.md)."""


class Environment(pulumi.ComponentResource):
    """One namespace per service and stage, with Pod Security, quota, limits and default-deny."""

    namespace: pulumi.Output[str]
    """Name of the namespace (resolves once the Namespace exists, so it orders dependants)."""
    labels: dict[str, str]
    """Labels every object of this service and stage carries."""

    def __init__(self, name: str, args: EnvironmentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        service = args.service_name
        common = labels.standard(service, team=args.team, stage=args.stage, scheme=args.label_scheme)
        self.labels = common
        child = pulumi.ResourceOptions(parent=self)

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                "labels": {**common, **pod_security_labels(args.pod_security_version)},
                "annotations": dict(GUARD_RAIL_ANNOTATIONS),
            },
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        ns: pulumi.Output[str] = namespace.metadata.apply(lambda m: m.name or args.namespace)
        on_namespace = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[namespace]))

        def metadata(object_name: str) -> k8s.meta.v1.ObjectMetaArgsDict:
            return {"name": object_name, "namespace": ns, "labels": common, "annotations": dict(GUARD_RAIL_ANNOTATIONS)}

        k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=metadata(f"{service}-quota"),
            spec={"hard": dict(args.quota)},
            opts=on_namespace,
        )
        defaults = args.container_defaults
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=metadata(f"{service}-limits"),
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default_request": {"cpu": defaults.cpu_request, "memory": defaults.memory_request},
                        "default": {"cpu": defaults.cpu_limit, "memory": defaults.memory_limit},
                    }
                ]
            },
            opts=on_namespace,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata=metadata(f"{service}-default-deny"),
            spec={
                "pod_selector": {},
                # Both types and no ingress rule: nothing may come in; only DNS may go out.
                "policy_types": ["Ingress", "Egress"],
                "egress": [
                    {
                        "to": [
                            {
                                "namespace_selector": {"match_labels": {NAMESPACE_NAME_LABEL: DNS_NAMESPACE}},
                                "pod_selector": {"match_labels": dict(DNS_POD_LABELS)},
                            }
                        ],
                        "ports": [
                            {"protocol": "UDP", "port": DNS_PORT},
                            {"protocol": "TCP", "port": DNS_PORT},
                        ],
                    }
                ],
            },
            opts=on_namespace,
        )

        self.namespace = ns
        self.register_outputs({"namespace": self.namespace, "labels": self.labels})

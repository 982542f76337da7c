"""The cloudflared connectors of an :class:`~components.exposure.Exposure`, in the service's namespace.

One step per object, registered in this order by :func:`register_connectors`: the tunnel token
Secret, the cloudflared Deployment, its disruption budget and its network policy. The pod's parts
(:func:`container`, :func:`pod_template`) and the policy's rules (:func:`network_policy_spec`) are
plain builders, so each reads on its own.

The token reaches cloudflared as a read-only file (``tunnel run --token-file``, in
cloudflare/cloudflared since 2025.4.0: ``cmd/cloudflared/tunnel/subcommands.go``,
``tunnelTokenFileFlag`` in ``buildRunCommand``), not as an environment variable: environment
variables leak into crash dumps, ``/proc/<pid>/environ`` and ``kubectl describe`` habits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import pulumi
import pulumi_kubernetes as k8s

from components.labels import COMPONENT_SERVER, COMPONENT_TUNNEL, selector, standard

if TYPE_CHECKING:
    from components.exposure.args import ExposureArgs

TOKEN_KEY: Final = "token"
"""Key of the tunnel token in the Kubernetes Secret."""
TOKEN_DIR: Final = "/etc/cloudflared/tunnel"
"""Where the token Secret is mounted read-only in the cloudflared pods."""
TOKEN_VOLUME: Final = "tunnel-token"
TOKEN_FILE_MODE: Final = 0o440
"""Owner and group (the pod's fsGroup) may read the token; nobody may write it."""
METRICS_PORT_NAME: Final = "metrics"
"""Name of cloudflared's metrics port (``/metrics``, ``/ready``) on its pods."""
CLOUDFLARED_UID: Final = 65532
"""The nonroot user of the distroless cloudflared image."""

# The edge is anywhere on the public internet (Cloudflare anycast); private ranges are excluded so
# the only in-cluster destination cloudflared can reach is the app (plus DNS).
_PUBLIC_IPV4: Final = (
    "0.0.0.0/0",
    ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"),
)
_PUBLIC_IPV6: Final = ("::/0", ("fc00::/7", "fe80::/10"))
EDGE_PORTS: Final = ((7844, "TCP"), (7844, "UDP"), (443, "TCP"))
"""Tunnel connections (QUIC on UDP, HTTP/2 on TCP) and the Cloudflare API."""


@dataclass(frozen=True)
class _Connectors:
    """What the cloudflared objects of one Exposure share: names, labels, namespace and options."""

    name: str
    """The Exposure's name: prefix of every Pulumi resource name."""
    args: ExposureArgs
    kube: pulumi.ResourceOptions
    """Parent (the Exposure) and Kubernetes provider."""
    labels: dict[str, str]
    pods: dict[str, str]
    """Selector of the cloudflared pods."""

    @property
    def deployment_name(self) -> str:
        return f"{self.args.service_name}-cloudflared"

    def meta(
        self, object_name: str, annotations: Mapping[str, pulumi.Input[str]] | None = None
    ) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=object_name, namespace=self.args.namespace, labels=self.labels, annotations=annotations
        )


def register_connectors(
    parent: pulumi.Resource,
    name: str,
    args: ExposureArgs,
    *,
    tunnel_token: pulumi.Output[str],
    tunnel_id: pulumi.Output[str],
    after_config: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """Token Secret, cloudflared Deployment, disruption budget and network policy; the Deployment's name."""
    service = args.service_name
    at = _Connectors(
        name=name,
        args=args,
        kube=pulumi.ResourceOptions(parent=parent, provider=args.kubernetes_provider),
        labels=standard(
            service, team=args.team, stage=args.stage, component=COMPONENT_TUNNEL, scheme=args.label_scheme
        ),
        pods=selector(service, COMPONENT_TUNNEL),
    )
    secret = _token_secret(at, tunnel_token, tunnel_id)
    deployment = _deployment(at, secret, tunnel_id, after_config)
    _disruption_budget(at)
    _network_policy(at)
    return deployment.metadata.name


def _token_secret(
    at: _Connectors, tunnel_token: pulumi.Output[str], tunnel_id: pulumi.Output[str]
) -> k8s.core.v1.Secret:
    """The token is a function of the tunnel: the Secret is made anew when the tunnel is (its
    annotation names the tunnel), and its content is not compared otherwise. A preview cannot read
    the token (the data source needs Tunnel Write, a preview holds read-only credentials), so
    compared it would be unknown in every preview: the real engine showed every preview of an
    unchanged stack replacing this Secret and rolling cloudflared."""
    return k8s.core.v1.Secret(
        f"{at.name}-tunnel-token",
        metadata=at.meta(f"{at.args.service_name}-tunnel-token", {at.args.label_scheme.key("tunnel-id"): tunnel_id}),
        type="Opaque",
        string_data={TOKEN_KEY: tunnel_token},
        opts=pulumi.ResourceOptions.merge(
            at.kube,
            pulumi.ResourceOptions(ignore_changes=["stringData", "data"], replace_on_changes=["metadata.annotations"]),
        ),
    )


def _deployment(
    at: _Connectors, secret: k8s.core.v1.Secret, tunnel_id: pulumi.Output[str], after_config: pulumi.ResourceOptions
) -> k8s.apps.v1.Deployment:
    return k8s.apps.v1.Deployment(
        f"{at.name}-cloudflared",
        metadata=at.meta(at.deployment_name),
        spec=k8s.apps.v1.DeploymentSpecArgs(
            replicas=at.args.cloudflared_replicas,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=at.pods),
            # Surge first: a rollout never takes a connector away before its replacement is ready.
            strategy=k8s.apps.v1.DeploymentStrategyArgs(
                type="RollingUpdate",
                rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
            ),
            template=pod_template(at.args, at.labels, at.pods, secret.metadata.name, tunnel_id),
        ),
        opts=pulumi.ResourceOptions.merge(at.kube, after_config),
    )


def _disruption_budget(at: _Connectors) -> k8s.policy.v1.PodDisruptionBudget:
    return k8s.policy.v1.PodDisruptionBudget(
        f"{at.name}-cloudflared-pdb",
        metadata=at.meta(at.deployment_name),
        spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
            max_unavailable=1,
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels=at.pods),
        ),
        opts=at.kube,
    )


def _network_policy(at: _Connectors) -> k8s.networking.v1.NetworkPolicy:
    return k8s.networking.v1.NetworkPolicy(
        f"{at.name}-cloudflared-netpol",
        metadata=at.meta(at.deployment_name),
        spec=network_policy_spec(at.args, at.pods),
        opts=at.kube,
    )


# -- the pod ------------------------------------------------------------------------------------


def container(args: ExposureArgs) -> k8s.core.v1.ContainerArgs:
    """The cloudflared container: ``tunnel run --token-file``, probes on ``/ready``, locked down."""
    port = args.metrics_port
    probe_action = k8s.core.v1.HTTPGetActionArgs(path="/ready", port=METRICS_PORT_NAME)
    return k8s.core.v1.ContainerArgs(
        name="cloudflared",
        image=args.cloudflared_image,
        image_pull_policy="IfNotPresent",
        command=["cloudflared"],
        args=[
            "tunnel",
            "--no-autoupdate",
            "--metrics",
            f"0.0.0.0:{port}",
            "run",
            "--token-file",
            f"{TOKEN_DIR}/{TOKEN_KEY}",
        ],
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name=TOKEN_VOLUME, mount_path=TOKEN_DIR, read_only=True)],
        ports=[k8s.core.v1.ContainerPortArgs(name=METRICS_PORT_NAME, container_port=port, protocol="TCP")],
        readiness_probe=k8s.core.v1.ProbeArgs(
            http_get=probe_action, initial_delay_seconds=5, period_seconds=10, failure_threshold=3
        ),
        # /ready turns false when no edge connection is up; a restart is cloudflared's own remedy.
        liveness_probe=k8s.core.v1.ProbeArgs(
            http_get=probe_action, initial_delay_seconds=20, period_seconds=10, failure_threshold=6
        ),
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": args.cpu_request, "memory": args.memory_request},
            limits={"cpu": args.cpu_limit, "memory": args.memory_limit},
        ),
        security_context=k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            run_as_non_root=True,
            run_as_user=CLOUDFLARED_UID,
            run_as_group=CLOUDFLARED_UID,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
    )


def pod_template(
    args: ExposureArgs,
    labels: dict[str, str],
    pods: dict[str, str],
    secret_name: pulumi.Input[str],
    tunnel_id: pulumi.Input[str],
) -> k8s.core.v1.PodTemplateSpecArgs:
    """The connector pods: spread over nodes, the token Secret ``secret_name`` mounted as a file."""
    return k8s.core.v1.PodTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(
            labels=labels,
            # A replaced tunnel means a new token: roll the pods so they pick it up.
            annotations={args.label_scheme.key("tunnel-id"): tunnel_id},
        ),
        spec=k8s.core.v1.PodSpecArgs(
            automount_service_account_token=False,
            enable_service_links=False,
            termination_grace_period_seconds=40,  # cloudflared drains for 30 s by default
            security_context=k8s.core.v1.PodSecurityContextArgs(
                run_as_non_root=True,
                run_as_user=CLOUDFLARED_UID,
                run_as_group=CLOUDFLARED_UID,
                fs_group=CLOUDFLARED_UID,  # group owner of the token file
                seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
            ),
            topology_spread_constraints=[
                k8s.core.v1.TopologySpreadConstraintArgs(
                    max_skew=1,
                    topology_key="kubernetes.io/hostname",
                    when_unsatisfiable="ScheduleAnyway",
                    label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods),
                )
            ],
            containers=[container(args)],
            volumes=[
                k8s.core.v1.VolumeArgs(
                    name=TOKEN_VOLUME,
                    secret=k8s.core.v1.SecretVolumeSourceArgs(
                        secret_name=secret_name,
                        default_mode=TOKEN_FILE_MODE,
                        items=[k8s.core.v1.KeyToPathArgs(key=TOKEN_KEY, path=TOKEN_KEY)],
                    ),
                )
            ],
        ),
    )


# -- the network policy -------------------------------------------------------------------------


def _peer_block(cidr: str, excluded: Sequence[str]) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr, except_=list(excluded))
    )


def _namespace_peer(namespace: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        namespace_selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"kubernetes.io/metadata.name": namespace})
    )


def network_policy_spec(args: ExposureArgs, pods: dict[str, str]) -> k8s.networking.v1.NetworkPolicySpecArgs:
    """In: Prometheus on the metrics port. Out: the edge, the app's pods and cluster DNS, nothing else."""
    return k8s.networking.v1.NetworkPolicySpecArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods),
        policy_types=["Ingress", "Egress"],
        ingress=[
            k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                from_=[_namespace_peer(args.monitoring_namespace)],
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=args.metrics_port, protocol="TCP")],
            )
        ],
        egress=[
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[_peer_block(*_PUBLIC_IPV4), _peer_block(*_PUBLIC_IPV6)],
                ports=[
                    k8s.networking.v1.NetworkPolicyPortArgs(port=edge_port, protocol=protocol)
                    for edge_port, protocol in EDGE_PORTS
                ],
            ),
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[
                    k8s.networking.v1.NetworkPolicyPeerArgs(
                        pod_selector=k8s.meta.v1.LabelSelectorArgs(
                            match_labels=selector(args.service_name, COMPONENT_SERVER)
                        )
                    )
                ],
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=args.app_port, protocol="TCP")],
            ),
            # Name resolution of the edge and of the in-cluster Service.
            k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=[_namespace_peer("kube-system")],
                ports=[
                    k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol="UDP"),
                    k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol="TCP"),
                ],
            ),
        ],
    )

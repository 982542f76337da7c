"""Exposure: the only home of what makes the service reachable (docs/design.md steps 8, 9 and 12).

A remotely managed Cloudflare Tunnel with an ingress rule per hostname to the in-cluster Service
and a final ``http_status:404``; a proxied CNAME per hostname to ``<tunnel id>.cfargotunnel.com``;
optionally Cloudflare Access in front; and the cloudflared connectors that run the tunnel inside
the service's namespace (token Secret, Deployment, disruption budget, network policy).

Everything here is a child of the component, and nothing outside depends on it: the sunset's
``pulumi destroy --target <Exposure URN> --target-dependents`` removes exactly the access points.
The Cloudflare provider is a child too, so it goes with the resources it manages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_kubernetes as k8s

from components.labels import COMPONENT_SERVER, COMPONENT_TUNNEL, selector, standard
from components.refs import DIGEST_REF

TYPE: Final = "service-lifecycle:index:Exposure"

TUNNEL_CNAME_SUFFIX: Final = "cfargotunnel.com"
CATCH_ALL_SERVICE: Final = "http_status:404"
"""The last ingress rule: anything not matching a hostname gets a 404 from the edge."""
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


@dataclass(frozen=True, kw_only=True)
class ExposureArgs:
    """Arguments of :class:`Exposure`. Kubernetes inputs are the Workload's outputs."""

    service_name: str
    """DNS-1123 name of the service; prefixes every Kubernetes and Cloudflare name. Required."""
    team: str
    """Owning team, for labels. Required."""
    stage: str
    """Stage name, used only as a label value and in the tunnel's name. Required."""
    namespace: pulumi.Input[str]
    """Namespace of the service (the Workload's output); cloudflared runs there. Required."""
    origin_url: pulumi.Input[str]
    """In-cluster URL of the app's Service, e.g. ``http://hello.hello-production.svc.cluster.local:80``
    (the Workload's output). Required."""
    app_port: pulumi.Input[int]
    """Container port of the app pods: network policies apply after the Service's DNAT. Required."""
    account_id: str
    """Cloudflare account ID (32 hex characters). Required."""
    zone_id: str
    """Cloudflare zone ID of the hostnames (32 hex characters). Required."""
    hostnames: Sequence[str]
    """Public hostnames, inside the zone; at least one. Required."""
    cloudflared_image: str
    """cloudflared image pinned by digest (``…@sha256:…``). Required."""
    cloudflared_replicas: int = 2
    """Connector pods; at least 2 so a drain or a rollout never drops the tunnel. Default 2."""
    access_enabled: bool = False
    """Put every hostname behind Cloudflare Access. Default False (public)."""
    access_allow_emails: Sequence[str] = ()
    """Emails Access admits. Default empty; with Access on, emails or domains must be non-empty."""
    access_allow_email_domains: Sequence[str] = ()
    """Email domains Access admits. Default empty."""
    access_session_duration: str = "24h"
    """How long an Access login lasts. Default ``24h``."""
    access_service_token: bool = True
    """With Access on, also create a service token and a non-identity policy admitting it, so that
    automation (the staging smoke test) can pass Access. Default True."""
    metrics_port: int = 2000
    """cloudflared's metrics and readiness port. Default 2000."""
    monitoring_namespace: str = "monitoring"
    """Namespace whose Prometheus may scrape cloudflared's metrics port. Default ``monitoring``."""
    cpu_request: str = "50m"
    """cloudflared CPU request. Default ``50m``."""
    cpu_limit: str = "500m"
    """cloudflared CPU limit. Default ``500m``."""
    memory_request: str = "64Mi"
    """cloudflared memory request. Default ``64Mi``."""
    memory_limit: str = "256Mi"
    """cloudflared memory limit. Default ``256Mi``."""
    api_token: pulumi.Input[str] | None = None
    """Cloudflare API token (a Pulumi secret). Default None: the provider reads ``CLOUDFLARE_API_TOKEN``."""
    kubernetes_provider: pulumi.ProviderResource | None = None
    """Kubernetes provider for the cloudflared objects. Default None: the inherited/ambient one."""

    def problems(self) -> list[str]:
        """What is wrong with these arguments (empty when valid)."""
        found: list[str] = []
        if not self.hostnames:
            found.append("hostnames: at least one hostname is needed")
        if len(set(self.hostnames)) != len(self.hostnames):
            found.append(f"hostnames: duplicates in {list(self.hostnames)}")
        if self.cloudflared_replicas < 2:
            found.append(f"cloudflared_replicas: got {self.cloudflared_replicas}; expected at least 2")
        if not DIGEST_REF.match(self.cloudflared_image):
            found.append(f"cloudflared_image: got {self.cloudflared_image!r}; expected an image pinned by digest")
        if self.access_enabled and not (self.access_allow_emails or self.access_allow_email_domains):
            found.append("access_allow_emails: Access is on and the allow list is empty (would admit nobody)")
        return found


def _unknown_secret() -> pulumi.Output[str]:
    """A secret whose value is unknown until apply, as the engine shows values it cannot know in a preview."""

    async def value() -> str:
        return ""

    async def flag(result: bool) -> bool:
        return result

    return pulumi.Output(set(), value(), flag(False), flag(True))


class Exposure(pulumi.ComponentResource):
    """Publishes the service through a Cloudflare Tunnel with proxied DNS (and Access when asked)."""

    tunnel_id: pulumi.Output[str]
    """ID (UUID) of the Cloudflare Tunnel."""
    tunnel_cname: pulumi.Output[str]
    """``<tunnel id>.cfargotunnel.com``: what every hostname's CNAME points at."""
    urls: list[str]
    """``https://<hostname>`` for every hostname."""
    cloudflared_name: pulumi.Output[str]
    """Name of the cloudflared Deployment."""
    metrics_port: int
    """cloudflared's metrics port (named ``metrics`` on the pods)."""
    tunnel_token: pulumi.Output[str]
    """The connector token (a Pulumi secret), for running cloudflared elsewhere; never exported here."""
    access_application_aud: pulumi.Output[str] | None
    """Audience tag of the Access application; None when Access is off."""
    access_client_id: pulumi.Output[str] | None
    """Client ID of the automation service token; None without one."""
    access_client_secret: pulumi.Output[str] | None
    """Client secret of the automation service token (a secret); None without one."""

    def __init__(self, name: str, args: ExposureArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = args.problems()
        if problems:
            raise ValueError(f"Exposure {name}: " + "; ".join(problems))
        super().__init__(TYPE, name, None, opts)
        service = args.service_name

        provider = cloudflare.Provider(
            f"{name}-cloudflare",
            api_token=pulumi.Output.secret(args.api_token) if args.api_token is not None else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        cf = pulumi.ResourceOptions(parent=self, provider=provider)

        # Remotely managed ("cloudflare"): the ingress rules live in the config resource below and
        # Cloudflare generates the tunnel secret, which only ever reaches us inside the token.
        tunnel = cloudflare.ZeroTrustTunnelCloudflared(
            f"{name}-tunnel",
            account_id=args.account_id,
            name=f"{service}-{args.stage}",
            config_src="cloudflare",
            opts=cf,
        )
        self.tunnel_id = tunnel.id
        self.tunnel_cname = pulumi.Output.concat(tunnel.id, f".{TUNNEL_CNAME_SUFFIX}")

        ingresses: list[cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs] = [
            cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(hostname=host, service=args.origin_url)
            for host in args.hostnames
        ]
        ingresses.append(cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(service=CATCH_ALL_SERVICE))
        tunnel_config = cloudflare.ZeroTrustTunnelCloudflaredConfig(
            f"{name}-tunnel-config",
            account_id=args.account_id,
            tunnel_id=tunnel.id,
            source="cloudflare",
            config=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs(ingresses=ingresses),
            opts=cf,
        )

        # The edge routes a hostname as soon as its CNAME exists, and connectors serve whatever ingress
        # rules the tunnel has: both wait for the rules, or first requests get 503s from a tunnel without them.
        after_config = pulumi.ResourceOptions(depends_on=[tunnel_config])
        for host in args.hostnames:
            cloudflare.DnsRecord(
                f"{name}-dns-{host}",
                zone_id=args.zone_id,
                name=host,
                type="CNAME",
                content=self.tunnel_cname,
                proxied=True,
                ttl=1,  # automatic: required for proxied records
                comment=f"{service} ({args.stage}) through Cloudflare Tunnel; managed by service-lifecycle",
                opts=pulumi.ResourceOptions.merge(cf, after_config),
            )

        self.access_application_aud = None
        self.access_client_id = None
        self.access_client_secret = None
        if args.access_enabled:
            self._access(name, args, cf)

        # The token data source needs Tunnel Write; a preview runs with read-only credentials, so it
        # never calls it and the token stays unknown there (the Secret shows as "known after apply").
        tunnel_token: pulumi.Output[str] = (
            _unknown_secret()
            if pulumi.runtime.is_dry_run()
            else pulumi.Output.secret(
                cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
                    account_id=args.account_id,
                    tunnel_id=tunnel.id,
                    opts=pulumi.InvokeOutputOptions(parent=self, provider=provider),
                ).apply(lambda result: result.token)
            )
        )
        self.tunnel_token = tunnel_token

        self.metrics_port = args.metrics_port
        self.urls = [f"https://{host}" for host in args.hostnames]
        self.cloudflared_name = self._connectors(name, args, tunnel_token, tunnel.id, after_config)

        self.register_outputs(
            {
                "tunnel_id": self.tunnel_id,
                "tunnel_cname": self.tunnel_cname,
                "urls": self.urls,
                "cloudflared_name": self.cloudflared_name,
                "access_application_aud": self.access_application_aud,
                "access_client_id": self.access_client_id,
            }
        )

    # -- Cloudflare Access ------------------------------------------------------------------

    def _access(self, name: str, args: ExposureArgs, cf: pulumi.ResourceOptions) -> None:
        """An Access application over every hostname, with reusable policies attached by ID (v6)."""
        includes: list[cloudflare.ZeroTrustAccessPolicyIncludeArgs] = [
            cloudflare.ZeroTrustAccessPolicyIncludeArgs(email=cloudflare.ZeroTrustAccessPolicyIncludeEmailArgs(email=e))
            for e in args.access_allow_emails
        ]
        includes += [
            cloudflare.ZeroTrustAccessPolicyIncludeArgs(
                email_domain=cloudflare.ZeroTrustAccessPolicyIncludeEmailDomainArgs(domain=d)
            )
            for d in args.access_allow_email_domains
        ]
        people = cloudflare.ZeroTrustAccessPolicy(
            f"{name}-access-people",
            account_id=args.account_id,
            name=f"{args.service_name}-{args.stage} allowed people",
            decision="allow",
            includes=includes,
            session_duration=args.access_session_duration,
            opts=cf,
        )
        policies = [cloudflare.ZeroTrustAccessApplicationPolicyArgs(id=people.id, precedence=1)]
        if args.access_service_token:
            token = cloudflare.ZeroTrustAccessServiceToken(
                f"{name}-access-token",
                account_id=args.account_id,
                name=f"{args.service_name}-{args.stage} automation",
                duration="8760h",
                opts=cf,
            )
            machines = cloudflare.ZeroTrustAccessPolicy(
                f"{name}-access-automation",
                account_id=args.account_id,
                name=f"{args.service_name}-{args.stage} automation token",
                decision="non_identity",
                includes=[
                    cloudflare.ZeroTrustAccessPolicyIncludeArgs(
                        service_token=cloudflare.ZeroTrustAccessPolicyIncludeServiceTokenArgs(token_id=token.id)
                    )
                ],
                opts=cf,
            )
            policies.append(cloudflare.ZeroTrustAccessApplicationPolicyArgs(id=machines.id, precedence=2))
            self.access_client_id = token.client_id
            self.access_client_secret = pulumi.Output.secret(token.client_secret)
        app = cloudflare.ZeroTrustAccessApplication(
            f"{name}-access-app",
            account_id=args.account_id,
            name=f"{args.service_name} ({args.stage})",
            type="self_hosted",
            domain=args.hostnames[0],
            destinations=[
                cloudflare.ZeroTrustAccessApplicationDestinationArgs(type="public", uri=host) for host in args.hostnames
            ],
            session_duration=args.access_session_duration,
            app_launcher_visible=False,
            policies=policies,
            opts=cf,
        )
        self.access_application_aud = app.aud

    # -- cloudflared in the cluster ---------------------------------------------------------

    def _connectors(
        self,
        name: str,
        args: ExposureArgs,
        tunnel_token: pulumi.Output[str],
        tunnel_id: pulumi.Output[str],
        after_config: pulumi.ResourceOptions,
    ) -> pulumi.Output[str]:
        """Token Secret, cloudflared Deployment, disruption budget and network policy.

        The token reaches cloudflared as a read-only file (``tunnel run --token-file``, in
        cloudflare/cloudflared since 2025.4.0: ``cmd/cloudflared/tunnel/subcommands.go``,
        ``tunnelTokenFileFlag`` in ``buildRunCommand``), not as an environment variable: environment
        variables leak into crash dumps, ``/proc/<pid>/environ`` and ``kubectl describe`` habits.
        """
        service = args.service_name
        kube = pulumi.ResourceOptions(parent=self, provider=args.kubernetes_provider)
        labels = standard(service, team=args.team, stage=args.stage, component=COMPONENT_TUNNEL)
        pods = selector(service, COMPONENT_TUNNEL)
        deployment_name = f"{service}-cloudflared"

        def meta(object_name: str) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=args.namespace, labels=labels)

        secret = k8s.core.v1.Secret(
            f"{name}-tunnel-token",
            metadata=meta(f"{service}-tunnel-token"),
            type="Opaque",
            string_data={TOKEN_KEY: tunnel_token},
            opts=kube,
        )

        port = args.metrics_port
        probe_action = k8s.core.v1.HTTPGetActionArgs(path="/ready", port=METRICS_PORT_NAME)
        container = k8s.core.v1.ContainerArgs(
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
        deployment = k8s.apps.v1.Deployment(
            f"{name}-cloudflared",
            metadata=meta(deployment_name),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.cloudflared_replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods),
                # Surge first: a rollout never takes a connector away before its replacement is ready.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_surge=1, max_unavailable=0),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=labels,
                        # A replaced tunnel means a new token: roll the pods so they pick it up.
                        annotations={"service-lifecycle/tunnel-id": tunnel_id},
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
                        containers=[container],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name=TOKEN_VOLUME,
                                secret=k8s.core.v1.SecretVolumeSourceArgs(
                                    secret_name=secret.metadata.name,
                                    default_mode=TOKEN_FILE_MODE,
                                    items=[k8s.core.v1.KeyToPathArgs(key=TOKEN_KEY, path=TOKEN_KEY)],
                                ),
                            )
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions.merge(kube, after_config),
        )

        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-cloudflared-pdb",
            metadata=meta(deployment_name),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods),
            ),
            opts=kube,
        )

        def peer_block(cidr: str, excluded: Sequence[str]) -> k8s.networking.v1.NetworkPolicyPeerArgs:
            return k8s.networking.v1.NetworkPolicyPeerArgs(
                ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr, except_=list(excluded))
            )

        def namespace_peer(namespace: str) -> k8s.networking.v1.NetworkPolicyPeerArgs:
            return k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": namespace}
                )
            )

        k8s.networking.v1.NetworkPolicy(
            f"{name}-cloudflared-netpol",
            metadata=meta(deployment_name),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=pods),
                policy_types=["Ingress", "Egress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[namespace_peer(args.monitoring_namespace)],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=port, protocol="TCP")],
                    )
                ],
                egress=[
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[peer_block(*_PUBLIC_IPV4), peer_block(*_PUBLIC_IPV6)],
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(port=edge_port, protocol=protocol)
                            for edge_port, protocol in EDGE_PORTS
                        ],
                    ),
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels=selector(service, COMPONENT_SERVER)
                                )
                            )
                        ],
                        ports=[k8s.networking.v1.NetworkPolicyPortArgs(port=args.app_port, protocol="TCP")],
                    ),
                    # Name resolution of the edge and of the in-cluster Service.
                    k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                        to=[namespace_peer("kube-system")],
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol="UDP"),
                            k8s.networking.v1.NetworkPolicyPortArgs(port=53, protocol="TCP"),
                        ],
                    ),
                ],
            ),
            opts=kube,
        )
        return deployment.metadata.name

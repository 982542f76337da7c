"""Exposure: the only home of what makes the service reachable (docs/design.md steps 8, 9 and 12).

A remotely managed Cloudflare Tunnel with an ingress rule per hostname to the in-cluster Service
and a final ``http_status:404``; a proxied CNAME per hostname to ``<tunnel id>.cfargotunnel.com``;
optionally Cloudflare Access in front; and the cloudflared connectors that run the tunnel inside
the service's namespace (token Secret, Deployment, disruption budget, network policy).

The component reads as its steps, in registration order: the provider, the tunnel and its rules,
the DNS records (here); Access (:mod:`components.exposure.access`); the token, then the connectors
(:mod:`components.exposure.connectors`).

Everything here is a child of the component, and nothing outside depends on it: the sunset's
``pulumi destroy --target <Exposure URN> --target-dependents`` removes exactly the access points.
The Cloudflare provider is a child too, so it goes with the resources it manages.
"""

from __future__ import annotations

from typing import Final

import pulumi
import pulumi_cloudflare as cloudflare

from components.exposure.access import register_access
from components.exposure.args import ExposureArgs
from components.exposure.connectors import (
    CLOUDFLARED_UID,
    EDGE_PORTS,
    METRICS_PORT_NAME,
    TOKEN_DIR,
    TOKEN_FILE_MODE,
    TOKEN_KEY,
    TOKEN_VOLUME,
    register_connectors,
)

TYPE: Final = "service-lifecycle:index:Exposure"

TUNNEL_CNAME_SUFFIX: Final = "cfargotunnel.com"
CATCH_ALL_SERVICE: Final = "http_status:404"
"""The last ingress rule: anything not matching a hostname gets a 404 from the edge."""


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

        provider = cloudflare.Provider(
            f"{name}-cloudflare",
            api_token=pulumi.Output.secret(args.api_token) if args.api_token is not None else None,
            opts=pulumi.ResourceOptions(parent=self),
        )
        cf = pulumi.ResourceOptions(parent=self, provider=provider)

        tunnel = _tunnel(name, args, cf)
        self.tunnel_id = tunnel.id
        self.tunnel_cname = pulumi.Output.concat(tunnel.id, f".{TUNNEL_CNAME_SUFFIX}")
        # The edge routes a hostname as soon as its CNAME exists, and connectors serve whatever ingress
        # rules the tunnel has: both wait for the rules, or first requests get 503s from a tunnel without them.
        after_config = pulumi.ResourceOptions(depends_on=[_tunnel_config(name, args, tunnel, cf)])
        _dns_records(name, args, self.tunnel_cname, cf, after_config)

        self.access_application_aud = None
        self.access_client_id = None
        self.access_client_secret = None
        if args.access_enabled:
            access = register_access(name, args, cf)
            self.access_application_aud = access.application_aud
            self.access_client_id = access.client_id
            self.access_client_secret = access.client_secret

        self.tunnel_token = _tunnel_token(self, args, tunnel, provider)
        self.metrics_port = args.metrics_port
        self.urls = [f"https://{host}" for host in args.hostnames]
        self.cloudflared_name = register_connectors(
            self, name, args, tunnel_token=self.tunnel_token, tunnel_id=tunnel.id, after_config=after_config
        )

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


# -- the tunnel, its rules, DNS and token (Cloudflare's side) ------------------------------------


def _tunnel(name: str, args: ExposureArgs, cf: pulumi.ResourceOptions) -> cloudflare.ZeroTrustTunnelCloudflared:
    # Remotely managed ("cloudflare"): the ingress rules live in the config resource and Cloudflare
    # generates the tunnel secret, which only ever reaches us inside the token.
    return cloudflare.ZeroTrustTunnelCloudflared(
        f"{name}-tunnel",
        account_id=args.account_id,
        name=args.instance,
        config_src="cloudflare",
        opts=cf,
    )


def ingress_rules(args: ExposureArgs) -> list[cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs]:
    """One rule per hostname to the in-cluster origin, then the catch-all :data:`CATCH_ALL_SERVICE`."""
    ingresses: list[cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs] = [
        cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(hostname=host, service=args.origin_url)
        for host in args.hostnames
    ]
    ingresses.append(cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(service=CATCH_ALL_SERVICE))
    return ingresses


def _tunnel_config(
    name: str, args: ExposureArgs, tunnel: cloudflare.ZeroTrustTunnelCloudflared, cf: pulumi.ResourceOptions
) -> cloudflare.ZeroTrustTunnelCloudflaredConfig:
    return cloudflare.ZeroTrustTunnelCloudflaredConfig(
        f"{name}-tunnel-config",
        account_id=args.account_id,
        tunnel_id=tunnel.id,
        source="cloudflare",
        config=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs(ingresses=ingress_rules(args)),
        opts=cf,
    )


def _dns_records(
    name: str,
    args: ExposureArgs,
    tunnel_cname: pulumi.Output[str],
    cf: pulumi.ResourceOptions,
    after_config: pulumi.ResourceOptions,
) -> None:
    """A proxied CNAME to the tunnel per hostname."""
    for host in args.hostnames:
        cloudflare.DnsRecord(
            f"{name}-dns-{host}",
            zone_id=args.zone_id,
            name=host,
            type="CNAME",
            content=tunnel_cname,
            proxied=True,
            ttl=1,  # automatic: required for proxied records
            comment=f"{args.service_name} ({args.stage}) through Cloudflare Tunnel; managed by service-lifecycle",
            opts=pulumi.ResourceOptions.merge(cf, after_config),
        )


def _tunnel_token(
    parent: Exposure,
    args: ExposureArgs,
    tunnel: cloudflare.ZeroTrustTunnelCloudflared,
    provider: cloudflare.Provider,
) -> pulumi.Output[str]:
    """The connector token, a Pulumi secret from the token data source."""
    # The data source needs Tunnel Write; a preview runs with read-only credentials, so it never
    # calls it and the token stays unknown there (the Secret shows as "known after apply").
    if pulumi.runtime.is_dry_run():
        return _unknown_secret()
    return pulumi.Output.secret(
        cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
            account_id=args.account_id,
            tunnel_id=tunnel.id,
            opts=pulumi.InvokeOutputOptions(parent=parent, provider=provider),
        ).apply(lambda result: result.token)
    )


__all__ = [
    "CATCH_ALL_SERVICE",
    "CLOUDFLARED_UID",
    "EDGE_PORTS",
    "METRICS_PORT_NAME",
    "TOKEN_DIR",
    "TOKEN_FILE_MODE",
    "TOKEN_KEY",
    "TOKEN_VOLUME",
    "TUNNEL_CNAME_SUFFIX",
    "TYPE",
    "Exposure",
    "ExposureArgs",
    "ingress_rules",
]

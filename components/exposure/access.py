"""Cloudflare Access in front of an :class:`~components.exposure.Exposure`'s hostnames.

One Access application over every hostname, with reusable policies attached by ID (provider v6),
registered in this order by :func:`register_access`: the policy admitting people, then (when asked)
the automation service token and the non-identity policy admitting it, then the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_cloudflare as cloudflare

if TYPE_CHECKING:
    from components.exposure.args import ExposureArgs


@dataclass(frozen=True, kw_only=True)
class AccessOutputs:
    """What the Exposure publishes of its Access application."""

    application_aud: pulumi.Output[str]
    """Audience tag of the Access application."""
    client_id: pulumi.Output[str] | None
    """Client ID of the automation service token; None without one."""
    client_secret: pulumi.Output[str] | None
    """Client secret of the automation service token (a Pulumi secret); None without one."""


def register_access(name: str, args: ExposureArgs, cf: pulumi.ResourceOptions) -> AccessOutputs:
    """The Access application and its policies; ``cf`` carries the parent and the Cloudflare provider."""
    people = _people_policy(name, args, cf)
    policies = [cloudflare.ZeroTrustAccessApplicationPolicyArgs(id=people.id, precedence=1)]
    client_id: pulumi.Output[str] | None = None
    client_secret: pulumi.Output[str] | None = None
    if args.access_service_token:
        token, machines = _automation(name, args, cf)
        policies.append(cloudflare.ZeroTrustAccessApplicationPolicyArgs(id=machines.id, precedence=2))
        client_id = token.client_id
        client_secret = pulumi.Output.secret(token.client_secret)
    app = _application(name, args, policies, cf)
    return AccessOutputs(application_aud=app.aud, client_id=client_id, client_secret=client_secret)


def people_includes(args: ExposureArgs) -> list[cloudflare.ZeroTrustAccessPolicyIncludeArgs]:
    """One include rule per allowed email, then one per allowed email domain."""
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
    return includes


def _people_policy(name: str, args: ExposureArgs, cf: pulumi.ResourceOptions) -> cloudflare.ZeroTrustAccessPolicy:
    return cloudflare.ZeroTrustAccessPolicy(
        f"{name}-access-people",
        account_id=args.account_id,
        name=f"{args.instance} allowed people",
        decision="allow",
        includes=people_includes(args),
        session_duration=args.access_session_duration,
        opts=cf,
    )


def _automation(
    name: str, args: ExposureArgs, cf: pulumi.ResourceOptions
) -> tuple[cloudflare.ZeroTrustAccessServiceToken, cloudflare.ZeroTrustAccessPolicy]:
    """The automation service token and the non-identity policy that admits it."""
    token = cloudflare.ZeroTrustAccessServiceToken(
        f"{name}-access-token",
        account_id=args.account_id,
        name=f"{args.instance} automation",
        duration="8760h",
        opts=cf,
    )
    machines = cloudflare.ZeroTrustAccessPolicy(
        f"{name}-access-automation",
        account_id=args.account_id,
        name=f"{args.instance} automation token",
        decision="non_identity",
        includes=[
            cloudflare.ZeroTrustAccessPolicyIncludeArgs(
                service_token=cloudflare.ZeroTrustAccessPolicyIncludeServiceTokenArgs(token_id=token.id)
            )
        ],
        opts=cf,
    )
    return token, machines


def _application(
    name: str,
    args: ExposureArgs,
    policies: list[cloudflare.ZeroTrustAccessApplicationPolicyArgs],
    cf: pulumi.ResourceOptions,
) -> cloudflare.ZeroTrustAccessApplication:
    return cloudflare.ZeroTrustAccessApplication(
        f"{name}-access-app",
        account_id=args.account_id,
        name=args.title,
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

"""Kubernetes labels shared by every part, so selectors in one part match pods of another.

App pods carry ``selector(service, COMPONENT_SERVER)``; cloudflared pods carry
``selector(service, COMPONENT_TUNNEL)``. NetworkPolicies, Services, ServiceMonitors and
disruption budgets select on exactly these.
"""

from __future__ import annotations

from typing import Final

COMPONENT_SERVER: Final = "server"
"""The service's own pods."""
COMPONENT_TUNNEL: Final = "tunnel"
"""cloudflared pods publishing the service through Cloudflare."""

STAGE_LABEL: Final = "service-lifecycle/stage"
TEAM_LABEL: Final = "service-lifecycle/team"
SERVICE_LABEL: Final = "service-lifecycle/service"
MANAGED_BY: Final = "service-lifecycle"


def selector(service: str, component: str) -> dict[str, str]:
    """Labels that select one component's pods; stable for the life of the service."""
    return {"app.kubernetes.io/part-of": service, "app.kubernetes.io/component": component}


def standard(
    service: str, *, team: str, stage: str, component: str | None = None, version: str | None = None
) -> dict[str, str]:
    """Labels every object of the service carries (selector labels included when ``component`` is given)."""
    labels = {
        "app.kubernetes.io/part-of": service,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        SERVICE_LABEL: service,
        STAGE_LABEL: stage,
        TEAM_LABEL: team,
    }
    if component is not None:
        labels["app.kubernetes.io/component"] = component
        labels["app.kubernetes.io/name"] = f"{service}-{component}"
    if version is not None:
        labels["app.kubernetes.io/version"] = version
    return labels

"""Kubernetes labels shared by every part, so selectors in one part match pods of another.

App pods carry ``selector(service, COMPONENT_SERVER)``; cloudflared pods carry
``selector(service, COMPONENT_TUNNEL)``. NetworkPolicies, Services, ServiceMonitors and
disruption budgets select on exactly these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

COMPONENT_SERVER: Final = "server"
"""The service's own pods."""
COMPONENT_TUNNEL: Final = "tunnel"
"""cloudflared pods publishing the service through Cloudflare."""


@dataclass(frozen=True)
class LabelScheme:
    """The label keys and the ``app.kubernetes.io/managed-by`` value every object carries: a platform sets
    them (settings ``labelPrefix`` and ``managedBy``); the defaults are this library's name.

    Keys: ``<prefix>/service``, ``<prefix>/stage``, ``<prefix>/team``, and the annotations
    ``<prefix>/config-checksum`` and ``<prefix>/tunnel-id``. The policy pack finds a service namespace
    by its three labels ``<prefix>/service``, ``/team`` and ``/stage``, whatever the prefix.
    """

    prefix: str = "service-lifecycle"
    """DNS subdomain before the ``/`` of each key. Default ``service-lifecycle``."""
    managed_by: str = "service-lifecycle"
    """Value of ``app.kubernetes.io/managed-by``. Default ``service-lifecycle``."""

    def key(self, name: str) -> str:
        """``<prefix>/<name>``."""
        return f"{self.prefix}/{name}"

    @property
    def stage(self) -> str:
        return self.key("stage")

    @property
    def team(self) -> str:
        return self.key("team")

    @property
    def service(self) -> str:
        return self.key("service")


DEFAULT_SCHEME: Final = LabelScheme()
"""The library's own keys and managed-by value."""
STAGE_LABEL: Final = DEFAULT_SCHEME.stage
TEAM_LABEL: Final = DEFAULT_SCHEME.team
SERVICE_LABEL: Final = DEFAULT_SCHEME.service
MANAGED_BY: Final = DEFAULT_SCHEME.managed_by


def selector(service: str, component: str) -> dict[str, str]:
    """Labels that select one component's pods; stable for the life of the service."""
    return {"app.kubernetes.io/part-of": service, "app.kubernetes.io/component": component}


def standard(
    service: str,
    *,
    team: str,
    stage: str,
    component: str | None = None,
    version: str | None = None,
    scheme: LabelScheme = DEFAULT_SCHEME,
) -> dict[str, str]:
    """Labels every object of the service carries (selector labels included when ``component`` is given),
    with the keys of ``scheme``."""
    labels = {
        "app.kubernetes.io/part-of": service,
        "app.kubernetes.io/managed-by": scheme.managed_by,
        scheme.service: service,
        scheme.stage: stage,
        scheme.team: team,
    }
    if component is not None:
        labels["app.kubernetes.io/component"] = component
        labels["app.kubernetes.io/name"] = f"{service}-{component}"
    if version is not None:
        labels["app.kubernetes.io/version"] = version
    return labels

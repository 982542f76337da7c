"""The arguments of an :class:`~components.exposure.component.Exposure`, apart from the component so its
helpers (:mod:`components.exposure.access`, :mod:`components.exposure.connectors`) import them without it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.labels import DEFAULT_SCHEME, LabelScheme
from components.refs import DIGEST_REF


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
    label_scheme: LabelScheme = DEFAULT_SCHEME
    """Label keys and managed-by value (settings ``labelPrefix``, ``managedBy``). Default: the library's."""
    instance_name: str | None = None
    """Name of the tunnel and prefix of the Access names, unique per Cloudflare account. Default None:
    ``<service_name>-<stage>``; two stacks at one stage in one account need distinct ones (the
    ``nameSuffix`` setting gives ``<service>-<stage>-<suffix>``)."""

    @property
    def instance(self) -> str:
        """The tunnel's name: :attr:`instance_name`, or ``<service_name>-<stage>``."""
        return self.instance_name or f"{self.service_name}-{self.stage}"

    @property
    def title(self) -> str:
        """The Access application's name: ``<service> (<stage>)``, or ``<service> (<instance>)`` when the
        instance is named otherwise than ``<service>-<stage>``."""
        default = f"{self.service_name}-{self.stage}"
        return f"{self.service_name} ({self.stage if self.instance == default else self.instance})"

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


__all__ = ["ExposureArgs"]

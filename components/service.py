"""ServiceStack: one service in one stage, wiring the parts the stage table asks for.

Data flows one way: settings → image → environment → workload → (monitoring, exposure).
Exposure and Monitoring take the Workload's outputs; nothing depends on them, so removing them
(sunset) touches nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi

from components.image import ContainerImage, ContainerImageArgs
from components.settings import Settings

TYPE: Final = "service-lifecycle:index:ServiceStack"

ROLE_IMAGE: Final = "image"
ROLE_ENVIRONMENT: Final = "env"
ROLE_WORKLOAD: Final = "workload"
ROLE_MONITORING: Final = "monitoring"
ROLE_EXPOSURE: Final = "exposure"


def child_name(service: str, role: str) -> str:
    """Name of a ServiceStack child: ``<service>-<role>``."""
    return f"{service}-{role}"


def component_urn(*, project: str, stack: str, service: str, child_type: str, role: str) -> str:
    """URN of a direct child component of the ServiceStack named ``service``.

    The same naming the program uses, so commands (sunset) never type a URN by hand.
    """
    return f"urn:pulumi:{stack}::{project}::{TYPE}${child_type}::{child_name(service, role)}"


@dataclass(frozen=True, kw_only=True)
class ServiceStackArgs:
    """Arguments of :class:`ServiceStack`."""

    settings: Settings
    """Validated settings (components.settings.load_settings). Required."""


class ServiceStack(pulumi.ComponentResource):
    """One service in one lifecycle stage."""

    parts: list[str]
    """Names of the parts that exist in this stage, in creation order."""
    namespace: str | None
    """The service's Kubernetes namespace; None when the stage runs nothing."""
    image_ref: pulumi.Output[str] | None
    """Immutable ``repo@sha256:…`` deployed in this stage; None when nothing runs."""
    urls: list[str]
    """Public URLs of the service; empty when it is not exposed."""

    def __init__(self, name: str, args: ServiceStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        settings = args.settings
        parts = settings.parts
        self.parts = []
        self.namespace = settings.namespace if parts.environment else None
        self.image_ref = None
        self.urls = [f"https://{host}" for host in settings.cloudflare.hostnames] if parts.exposure else []
        child = pulumi.ResourceOptions(parent=self)

        # --- image: ContainerImage when the stage builds (issue 3) ---
        if parts.builds_image and settings.build is not None:
            image = ContainerImage(
                child_name(settings.service_name, ROLE_IMAGE),
                ContainerImageArgs(
                    repository=settings.registry.repository,
                    revision=settings.build.revision,
                    context=settings.build.context,
                    platform=settings.build.platform,
                    version=settings.app_version,
                    base_image=settings.build.base_image,
                    source=settings.build.source_url,
                    registry_username=settings.registry.username,
                    registry_password=settings.registry.password,
                ),
                child,
            )
            self.image_ref = image.image_ref
            self.parts.append(ROLE_IMAGE)

        # --- Kubernetes provider, image promotion, Environment, Workload (issue 4) ---

        # --- Monitoring (issue 6): takes the Workload's outputs ---

        # --- Exposure (issue 5): takes the Workload's outputs ---


        self.register_outputs(
            {"parts": self.parts, "namespace": self.namespace, "image_ref": self.image_ref, "urls": self.urls}
        )

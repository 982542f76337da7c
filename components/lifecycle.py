"""Lifecycle stages and the stage → parts table.

This module is the only place that knows which parts of a service exist in which stage
(docs/design.md, "Stages are stack configuration"). Everything else asks :func:`parts_for`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Stage(StrEnum):
    """A lifecycle stage, as written in ``service-lifecycle:stage``."""

    STAGING = "staging"
    PRODUCTION = "production"
    SUNSET = "sunset"


class ImageSource(StrEnum):
    """Where a stage's container image comes from."""

    BUILD = "build"
    """Built from ``app/`` and pushed by this stack."""
    PROMOTE = "promote"
    """The digest another stage validated (StackReference), or a pinned digest for rollback."""
    NONE = "none"
    """No image: nothing runs."""


@dataclass(frozen=True, kw_only=True)
class StageParts:
    """What exists in one stage."""

    image_source: ImageSource
    """How the image is obtained (build, promote, none)."""
    environment: bool
    """Namespace with its guard rails."""
    workload: bool
    """Deployment, Service, autoscaler, disruption budget, network policy."""
    monitoring: bool
    """ServiceMonitors, alert rules, dashboard."""
    exposure: bool
    """Cloudflare tunnel, DNS, cloudflared; the service's only access points."""
    access_required: bool
    """Exposure must sit behind Cloudflare Access; settings cannot switch it off."""
    protect_environment: bool
    """The namespace is ``protect``-ed: deleting it needs an explicit unprotect."""
    min_replicas: int
    """Lowest acceptable ``service-lifecycle:replicas``."""

    @property
    def builds_image(self) -> bool:
        return self.image_source is ImageSource.BUILD

    @property
    def promotes_image(self) -> bool:
        return self.image_source is ImageSource.PROMOTE

    @property
    def runs_anything(self) -> bool:
        return self.environment or self.workload or self.monitoring or self.exposure


STAGE_PARTS: Final = MappingProxyType(
    {
        Stage.STAGING: StageParts(
            image_source=ImageSource.BUILD,
            environment=True,
            workload=True,
            monitoring=True,
            exposure=True,
            access_required=True,
            protect_environment=False,
            min_replicas=1,
        ),
        Stage.PRODUCTION: StageParts(
            image_source=ImageSource.PROMOTE,
            environment=True,
            workload=True,
            monitoring=True,
            exposure=True,
            access_required=False,
            protect_environment=True,
            min_replicas=2,
        ),
        Stage.SUNSET: StageParts(
            image_source=ImageSource.NONE,
            environment=False,
            workload=False,
            monitoring=False,
            exposure=False,
            access_required=False,
            protect_environment=False,
            min_replicas=0,
        ),
    }
)
"""The stage → parts table of docs/design.md, as data."""


def parts_for(stage: Stage) -> StageParts:
    """The parts that exist in ``stage``."""
    return STAGE_PARTS[stage]

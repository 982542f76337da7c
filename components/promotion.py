"""Where a promoting stage (production) takes its image from: it never builds.

Either a digest pinned in settings (rollback: ``service-lifecycle:pinnedDigest``, which wins),
or the ``image_ref`` output of the stack that validated the image
(``service-lifecycle:promoteFromStack``), read through a StackReference; a service of several reads
its own output, ``<service>_image_ref`` (:attr:`PromotionSettings.output`). Settings refuse a stage
that promotes with neither. The promoted value is checked when it arrives, at deploy time: it
must be pinned by digest, or the deployment stops with an error naming the source stack.
"""

from __future__ import annotations

from typing import Final

import pulumi

from components.config.settings import PromotionSettings
from components.refs import DIGEST_REF

IMAGE_REF_OUTPUT: Final = "image_ref"
"""The stack output a building stage exports and a promoting stage reads."""


def key(name: str) -> str:
    """A setting's key in the running project's namespace (a library user's project is not ours)."""
    return f"{pulumi.get_project()}:{name}"


class PromotionError(pulumi.RunError):
    """The source stack's ``image_ref`` cannot be deployed. A RunError: shown without a traceback."""


def pinned_image_ref(repository: str, digest: str) -> str:
    """The reference a pinned digest deploys: ``<repository>@<digest>``."""
    return f"{repository}@{digest}"


def check_image_ref(
    value: object, *, source_stack: str, output: str = IMAGE_REF_OUTPUT, service: str | None = None
) -> str:
    """``value`` if it is ``<repo>[:tag]@sha256:<64 hex>``; PromotionError naming the service, the source
    stack and its output otherwise."""
    whose = f"service {service}: " if service else ""
    where = f"{whose}stack {source_stack} output {output!r} ({key('promoteFromStack')})"
    if value is None:
        raise PromotionError(
            f"{where} does not exist: has that stack built and deployed an image? "
            f"To deploy a known digest without it, set {key('pinnedDigest')}"
        )
    if not isinstance(value, str) or not DIGEST_REF.match(value):
        raise PromotionError(f"{where} is {value!r}; expected an image pinned by digest, <repo>@sha256:<64 hex>")
    return value


def promoted_image_ref(
    name: str, *, repository: str, promotion: PromotionSettings, opts: pulumi.ResourceOptions | None = None
) -> pulumi.Output[str]:
    """The image a promoting stage deploys.

    A pinned digest needs no resource. Otherwise a StackReference named
    ``f"{name}-promotion-source"`` reads the source stack's ``promotion.output`` (``image_ref``, or
    ``<service>_image_ref`` for a service of several); ``get_output`` (not
    ``require_output``, whose bare KeyError names neither stack nor setting) with an explicit
    check gives a clear error instead.
    """
    if promotion.pinned_digest is not None:
        return pulumi.Output.from_input(pinned_image_ref(repository, promotion.pinned_digest))
    source = promotion.from_stack
    if source is None:  # settings refuse this; kept for callers building PromotionSettings themselves
        raise PromotionError(f"set {key('promoteFromStack')} or {key('pinnedDigest')}: a promoting stage never builds")
    output, service = promotion.output, promotion.service
    reference = pulumi.StackReference(f"{name}-promotion-source", stack_name=source, opts=opts)
    return reference.get_output(output).apply(
        lambda value: check_image_ref(value, source_stack=source, output=output, service=service)
    )

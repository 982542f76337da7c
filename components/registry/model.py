"""What every registry client lists and reports: manifests, failures, digest and repository identity."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from components.refs import DIGEST
from components.registry.http import RegistryError

if TYPE_CHECKING:
    import requests

RegistryKind = Literal["oci", "ecr", "ghcr", "dockerhub"]

MANIFEST_MEDIA_TYPES: Final = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
"""Accept header for manifest requests: without it registries answer (and hash) a legacy schema."""
INDEX_MEDIA_TYPES: Final = MANIFEST_MEDIA_TYPES[0], MANIFEST_MEDIA_TYPES[2]
"""An OCI image index and a Docker manifest list: manifests whose ``manifests`` are per-platform images."""

DOCKER_HUB: Final = "docker.io"
_DOCKER_HUB_ALIASES: Final = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
_NAME: Final = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
"""The Distribution spec's repository name grammar (distribution/reference, ``path-component``)."""


@dataclass(frozen=True)
class Manifest:
    """One manifest in the repository, with every tag that points at it."""

    digest: str
    tags: tuple[str, ...] = ()
    created: datetime | None = None
    """When it was pushed (ECR, GHCR) or built (OCI image config); None when unknown."""
    children: tuple[str, ...] = ()
    """For an image index: the digests of its per-platform manifests (kept and deleted with it)."""
    ref: str = ""
    """The backend's own handle (GHCR: the package version id); empty for OCI and ECR."""


@dataclass(frozen=True)
class Failure:
    """A digest that could not be deleted, and why."""

    digest: str
    tags: tuple[str, ...]
    error: str


class RegistryClient(Protocol):
    kind: RegistryKind
    delete_refusal: str | None
    """Why this registry cannot delete at all (Docker Hub), said before anything is listed; None otherwise."""

    def list_manifests(self, *, need_dates: bool) -> list[Manifest]: ...

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]: ...


def delete_each(
    manifests: Sequence[Manifest],
    send: Callable[[Manifest], requests.Response],
    done: Collection[int],
    reason: Callable[[requests.Response], str],
) -> list[Failure]:
    """One DELETE per manifest (the HTTP clients): an answer in ``done`` is a success, any other answer a
    failure said by ``reason``, a request that failed (RegistryError) a failure with its message; a
    failure never stops the others."""
    failures: list[Failure] = []
    for m in manifests:
        try:
            response = send(m)
        except RegistryError as exc:
            failures.append(Failure(m.digest, m.tags, str(exc)))
            continue
        if response.status_code not in done:
            failures.append(Failure(m.digest, m.tags, reason(response)))
    return failures


def normalize_digest(ref: str) -> str:
    """``sha256:…`` or ``repo@sha256:…`` → ``sha256:…``; ValueError for anything else (a tag)."""
    digest = ref.rsplit("@", 1)[-1]
    if not DIGEST.match(digest):
        raise ValueError(f"{ref!r} is not a digest (sha256:<64 hex>) or a repo@sha256:… reference")
    return digest


def index_children(
    body: dict[str, Any], repository: str, digest: str, media_type: str | None = None
) -> tuple[str, ...]:
    """The digests an image index lists; () for an image manifest.

    A manifest is an index when its ``mediaType`` (or the ``media_type`` the registry reported for it,
    which a manifest without the field needs) is an index type, or when it has ``manifests``.
    RegistryError when an index's ``manifests`` is not a list of descriptors with digests.
    """
    is_index = body.get("mediaType") in INDEX_MEDIA_TYPES or media_type in INDEX_MEDIA_TYPES or "manifests" in body
    if not is_index:
        return ()
    entries = body.get("manifests")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise RegistryError(f"{repository}: index {digest}: 'manifests' is not a list of descriptors")
    return tuple(normalize_digest(str(e.get("digest"))) for e in entries)


def normalize_repository(repository: str) -> str:
    """One spelling per repository: ``<host>/<name>``, host in lower case, Docker Hub as ``docker.io``.

    ``GHCR.io/Acme/hello/``, ``https://ghcr.io/acme/hello`` → ``ghcr.io/acme/hello``;
    ``nginx``, ``index.docker.io/nginx``, ``docker.io/library/nginx`` → ``docker.io/library/nginx``
    (Docker's own rules: a first part without ``.`` or ``:`` and not ``localhost`` is not a host,
    distribution/reference ``normalize.go``). Names are lower-cased: the Distribution spec allows
    only lower case, and GHCR lower-cases owners. ValueError for a tag, a digest or an empty name.
    """
    text = repository.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    parts = [p for p in text.split("/") if p]
    if not parts:
        raise ValueError(f"repository {repository!r} is empty")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0].lower() == "localhost"):
        host, names = parts[0].lower(), parts[1:]
    else:
        host, names = DOCKER_HUB, parts
    if host in _DOCKER_HUB_ALIASES:
        host = DOCKER_HUB
        if len(names) == 1:
            names = ["library", *names]
    name = "/".join(names).lower()
    if "@" in name or ":" in name or not _NAME.match(name):
        raise ValueError(
            f"repository {repository!r} must be <registry host>/<name> without a tag or digest "
            "(lower-case letters, digits and . _ - separators)"
        )
    return f"{host}/{name}"


def same_repository(ref: str, normalized: str) -> bool:
    """Whether image reference ``ref`` (``repo[:tag]@sha256:…``, what :data:`components.refs.DIGEST_REF`
    allows) is an image of the repository ``normalized`` (as :func:`normalize_repository` spells it).

    The tag is a ``:`` in the last path part (a ``:`` in the first part of several is a registry port:
    ``localhost:5000/hello:1.0@sha256:…``); a name that is no repository name is no image of it.
    """
    name = ref.rsplit("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name[: name.rindex(":")]
    try:
        return normalize_repository(name) == normalized
    except ValueError:
        return False

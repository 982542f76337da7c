"""Decommission a service's images at sunset: keep what retention selects, delete the rest, then check.

Entry point for the sunset command::

    from components.registry import decommission

    report = decommission(
        "ghcr.io/acme/hello",          # repository, no tag or digest; the host selects the backend
        keep=["sha256:…"],             # digests to keep (see components.commands.retention), or an int N:
                                       #   keep the N most recently created/pushed images
        dry_run=True,                  # list what would go, delete nothing
        username="acme-ci",            # registry credentials (GHCR: a token with read:packages and
        password=token,                #   delete:packages; ECR uses boto3's credentials instead)
    )
    print(report.to_json_text())      # {"deleted": [...], "kept": [...], "failures": [...], ...}
    sys.exit(0 if report.ok else 1)

Backends, chosen by the repository's host (after :func:`normalize_repository`):

- an ECR URL: the ECR API (:mod:`components.registry.ecr`);
- ``ghcr.io``: the GitHub Packages REST API (:mod:`components.registry.ghcr`): GHCR answers the
  Distribution API's DELETE with 405;
- Docker Hub: refused with a message saying what to do (its delete API has no published spec here);
- anything else: the OCI Distribution API (:class:`OciRegistryClient`).

Deletion is by manifest digest: every tag on a deleted digest goes with it. An image index and
its per-platform manifests count as one image: keeping the index keeps its children. After the
deletions a final listing decides what really went (a lost DELETE answer, a 404 = already gone).

Errors: :class:`RegistryAuthError`, :class:`RepositoryNotFoundError`, :class:`RegistryUnsupportedError`
and :class:`RegistryError` are raised before anything is deleted. A failure to delete one digest does
not stop the others: it is listed in ``report.failures`` and ``report.ok`` is False.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import requests

from components.registry.ecr import ECR_HOST, EcrRegistryClient
from components.registry.http import (
    RegistryAuthError,
    RegistryError,
    RegistryUnsupportedError,
    RepositoryNotFoundError,
)
from components.registry.model import (
    DOCKER_HUB,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    Failure,
    Manifest,
    RegistryClient,
    RegistryKind,
    normalize_digest,
    normalize_repository,
)
from components.registry.oci import DockerHubClient, OciRegistryClient

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

GHCR_HOST: Final = "ghcr.io"


# ---- report ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecommissionReport:
    """What the decommission did (or, in a dry run, would do)."""

    repository: str
    registry: RegistryKind
    dry_run: bool
    retention: str
    """The rule applied, e.g. ``keep 1 newest`` or ``keep 2 listed digest(s)``."""
    deleted: tuple[Manifest, ...]
    """Deleted manifests (confirmed gone by the final listing); in a dry run, the ones that would go."""
    kept: tuple[Manifest, ...]
    failures: tuple[Failure, ...] = ()
    keep_not_found: tuple[str, ...] = ()
    """Digests asked to be kept that the repository does not hold (nothing to keep)."""

    @property
    def ok(self) -> bool:
        """True when every deletion that was attempted succeeded."""
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        def manifest(m: Manifest) -> dict[str, Any]:
            return {
                "digest": m.digest,
                "tags": list(m.tags),
                "created": m.created.isoformat() if m.created else None,
                "children": list(m.children),
            }

        return {
            "repository": self.repository,
            "registry": self.registry,
            "dry_run": self.dry_run,
            "retention": self.retention,
            "ok": self.ok,
            "deleted": [manifest(m) for m in self.deleted],
            "kept": [manifest(m) for m in self.kept],
            "failures": [{**asdict(f), "tags": list(f.tags)} for f in self.failures],
            "keep_not_found": list(self.keep_not_found),
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2)


# ---- retention -----------------------------------------------------------------------------------------


def keep_last(history: Iterable[str], n: int = 1) -> list[str]:
    """The last ``n`` distinct digests of ``history`` (oldest first, as production ran them), newest first."""
    if n < 0:
        raise ValueError(f"keep count must be 0 or more, got {n}")
    newest_first: list[str] = []
    for digest in reversed([normalize_digest(ref) for ref in history]):
        if digest not in newest_first:
            newest_first.append(digest)
    return newest_first[:n]


def partition(
    manifests: Sequence[Manifest], keep: Sequence[str] | int
) -> tuple[list[Manifest], list[Manifest], list[str], str]:
    """Split into (delete, keep, keep_not_found, rule description).

    Only images count: a manifest that is a child of a listed index goes with its index (kept when
    any kept index holds it), so ``keep=N`` keeps N indexes, not an index and one of its platforms.
    """
    if isinstance(keep, bool) or not isinstance(keep, (int, list, tuple)):
        raise TypeError(f"keep must be a list of digests or a count, got {keep!r}")
    children = {c for m in manifests for c in m.children}
    images = [m for m in manifests if m.digest not in children]
    if isinstance(keep, int):
        if keep < 0:
            raise ValueError(f"keep count must be 0 or more, got {keep}")
        # Newest first; images without a date sort as oldest (deleted first) but stay in order.
        floor = datetime.min.replace(tzinfo=UTC)
        ordered = sorted(images, key=lambda m: m.created or floor, reverse=True)
        keep_set = {m.digest for m in ordered[:keep]}
        missing: list[str] = []
        rule = f"keep {keep} newest"
    else:
        wanted = list(dict.fromkeys(normalize_digest(ref) for ref in keep))
        present = {m.digest for m in manifests}
        keep_set = {d for d in wanted if d in present}
        missing = [d for d in wanted if d not in present]
        rule = f"keep {len(wanted)} listed digest(s)"
    by_digest = {m.digest: m for m in manifests}
    pending = list(keep_set)
    while pending:  # an index keeps its children (and an index of indexes, theirs)
        for child in by_digest[pending.pop()].children:
            if child in by_digest and child not in keep_set:
                keep_set.add(child)
                pending.append(child)
    kept = [m for m in manifests if m.digest in keep_set]
    # Indexes before their children: an interrupted run never leaves an index pointing at deleted platforms.
    deleted = sorted((m for m in manifests if m.digest not in keep_set), key=lambda m: m.digest in children)
    return deleted, kept, missing, rule


# ---- choosing a backend, and the decommission ---------------------------------------------------------------


def client_for(
    repository: str,
    *,
    username: str | None = None,
    password: str | None = None,
    ecr_client: ECRClient | None = None,
    session: requests.Session | None = None,
    scheme: str | None = None,
    github_api: str | None = None,
) -> RegistryClient:
    """The backend for ``repository`` (normalised first): ECR, GHCR, Docker Hub or the OCI API."""
    repository = normalize_repository(repository)
    host = repository.partition("/")[0]
    if ECR_HOST.match(host):
        return EcrRegistryClient(repository, client=ecr_client)
    if host == GHCR_HOST:
        from components.registry.ghcr import GhcrRegistryClient

        return GhcrRegistryClient(repository, username=username, token=password, session=session, api=github_api)
    if host == DOCKER_HUB:
        return DockerHubClient(repository, username=username, password=password, scheme=scheme, session=session)
    return OciRegistryClient(repository, username=username, password=password, scheme=scheme, session=session)


def decommission(
    repository: str,
    keep: Sequence[str] | int,
    dry_run: bool,
    *,
    username: str | None = None,
    password: str | None = None,
    client: RegistryClient | None = None,
    ecr_client: ECRClient | None = None,
    session: requests.Session | None = None,
    scheme: str | None = None,
    github_api: str | None = None,
) -> DecommissionReport:
    """Delete every image of ``repository`` except those ``keep`` selects; see the module docstring.

    ``keep``: digests (``sha256:…`` or ``repo@sha256:…``) to retain, or a count N to retain the N
    newest. ``dry_run``: report only. ``client`` overrides the registry client (tests, other
    registries). Raises :class:`RegistryError` (and its subclasses) before deleting anything;
    per-digest failures go into the report.
    """
    if isinstance(keep, str):
        raise TypeError("keep must be a list of digests or a count, not a single string")
    repository = normalize_repository(repository)
    registry = client or client_for(
        repository, username=username, password=password, ecr_client=ecr_client, session=session, scheme=scheme,
        github_api=github_api,
    )  # fmt: skip
    if not dry_run and registry.delete_refusal:
        raise RegistryUnsupportedError(f"{repository}: {registry.delete_refusal}")
    manifests = registry.list_manifests(need_dates=isinstance(keep, int))
    to_delete, to_keep, missing, rule = partition(manifests, list(keep) if not isinstance(keep, int) else keep)
    failures: list[Failure] = []
    if not dry_run and to_delete:
        failures = _reconcile(registry, to_delete, registry.delete(to_delete))
    failed = {f.digest for f in failures}
    return DecommissionReport(
        repository=repository,
        registry=registry.kind,
        dry_run=dry_run,
        retention=rule,
        deleted=tuple(m for m in to_delete if m.digest not in failed),
        kept=tuple(to_keep),
        failures=tuple(failures),
        keep_not_found=tuple(missing),
    )


def _reconcile(registry: RegistryClient, attempted: Sequence[Manifest], failures: list[Failure]) -> list[Failure]:
    """What the final listing says: a failed DELETE whose digest is gone succeeded (its answer was lost);
    an accepted one whose digest is still listed did not. Without a listing the failures stand."""
    try:
        remaining = {m.digest for m in registry.list_manifests(need_dates=False)}
    except RepositoryNotFoundError:
        remaining = set()  # the last tag went with the last manifest
    except RegistryError as exc:
        return failures + [Failure(m.digest, m.tags, f"not confirmed: the final listing failed: {exc}")
                           for m in attempted if m.digest not in {f.digest for f in failures}]  # fmt: skip
    failed = {f.digest for f in failures}
    still = [Failure(m.digest, m.tags, "still listed after the registry accepted its DELETE")
             for m in attempted if m.digest in remaining and m.digest not in failed]  # fmt: skip
    return [f for f in failures if f.digest in remaining] + still


__all__ = [
    "ECR_HOST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "DecommissionReport",
    "DockerHubClient",
    "EcrRegistryClient",
    "Failure",
    "Manifest",
    "OciRegistryClient",
    "RegistryAuthError",
    "RegistryError",
    "RegistryUnsupportedError",
    "RepositoryNotFoundError",
    "client_for",
    "decommission",
    "keep_last",
    "normalize_digest",
    "normalize_repository",
    "partition",
]

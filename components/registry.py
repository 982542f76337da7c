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

- an ECR URL: the ECR API (:mod:`components.registry_ecr`);
- ``ghcr.io``: the GitHub Packages REST API (:mod:`components.registry_ghcr`): GHCR answers the
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

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import requests

from components.registry_ecr import ECR_HOST, EcrRegistryClient
from components.registry_http import (
    Http,
    RegistryAuthError,
    RegistryError,
    RegistryUnsupportedError,
    RepositoryNotFoundError,
    body_json,
    json_body,
    parse_time,
)
from components.registry_model import (
    DOCKER_HUB,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    Failure,
    Manifest,
    RegistryClient,
    RegistryKind,
    delete_each,
    index_children,
    normalize_digest,
    normalize_repository,
)

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

GHCR_HOST: Final = "ghcr.io"
DOCKER_HUB_REFUSAL: Final = (
    "Docker Hub deletes images only through its own Hub API (the registry API answers DELETE with 405), "
    "and that API has no published specification this project could check its client against: nothing was "
    "deleted. Delete the old tags in Docker Hub's web interface (Repository > Tags) or with Docker's "
    "hub-tool, or move the service's images to GHCR, ECR or a registry that allows deletes."
)
_AUTH_PARAM: Final = re.compile(r'(\w+)="([^"]*)"')
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})


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


# ---- OCI Distribution API --------------------------------------------------------------------------------


class OciTransport:
    """The HTTP side of one repository's Distribution API: URLs, basic auth, and bearer tokens."""

    def __init__(
        self,
        repository: str,
        *,
        username: str | None = None,
        password: str | None = None,
        scheme: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
        http: Http | None = None,
        host: str | None = None,
    ) -> None:
        repo_host, _, name = repository.partition("/")
        if not name:
            raise ValueError(f"repository {repository!r} must be <registry host>/<name>")
        host = host or repo_host
        if scheme is None:
            # Loopback registries (tests, local mirrors) speak plain HTTP; everything else HTTPS.
            scheme = "http" if host.rsplit(":", 1)[0] in _LOOPBACK else "https"
        self.repository = repository
        self.name = name
        self.base = f"{scheme}://{host}"
        self._basic = (username, password) if username is not None and password is not None else None
        self._http = http or Http(label=repository, session=session or requests.Session(), timeout=timeout)
        self._token: str | None = None

    def _request(self, method: str, path: str, *, accept: str | None = None) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else f"{self.base}{path}"
        headers = {"Accept": accept} if accept else {}
        response = self._send(method, url, headers)
        # A bearer challenge (first call, or an expired token): fetch a token and try once more.
        if response.status_code == 401 and self._fetch_token(response):
            response = self._send(method, url, headers)
        if response.status_code in (401, 403):
            who = "without credentials" if self._basic is None else "with the given credentials"
            where = url.split("?", maxsplit=1)[0].removeprefix(self.base)
            raise RegistryAuthError(
                f"{self.repository}: {method} {where} was refused ({response.status_code}) {who}"
                f"{_error_detail(response)}"
            )
        return response

    def _send(self, method: str, url: str, headers: dict[str, str]) -> requests.Response:
        # Basic credentials go with every request until a token exists; requests drops them on a
        # redirect to another host.
        if self._token is not None:
            return self._http.send(method, url, headers={**headers, "Authorization": f"Bearer {self._token}"})
        return self._http.send(method, url, headers=headers, auth=self._basic)

    def _fetch_token(self, challenge: requests.Response) -> bool:
        """Answer a ``Bearer`` challenge with a token for pull+delete; False for any other scheme.

        The token request follows the Docker token authentication spec (distribution
        ``docs/spec/auth/token.md``): GET realm with ``service`` and ``scope`` query parameters.
        """
        header = challenge.headers.get("WWW-Authenticate", "")
        if header.split(" ", 1)[0].lower() != "bearer":
            return False
        params = dict(_AUTH_PARAM.findall(header))
        realm = params.get("realm")
        if not realm:
            raise RegistryAuthError(f"{self.repository}: bearer challenge without a realm: {header!r}")
        query = {"service": params.get("service", ""), "scope": f"repository:{self.name}:pull,delete"}
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}"
        response = self._http.send("GET", url, auth=self._basic)
        if response.status_code in (401, 403):
            who = "a token without credentials" if self._basic is None else "the given credentials"
            raise RegistryAuthError(f"{self.repository}: token service {realm} refused {who} ({response.status_code})")
        if response.status_code != 200:
            raise RegistryError(f"{self.repository}: token service {realm} answered {response.status_code}")
        body = self._json(response, f"token service {realm}")
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.repository}: token service {realm} returned no token")
        self._token = token
        return True

    def _expect(self, response: requests.Response, action: str) -> None:
        if response.status_code != 200:
            raise RegistryError(
                f"{self.repository}: {action} answered HTTP {response.status_code}{_error_detail(response)}"
            )

    def _json(self, response: requests.Response, action: str) -> dict[str, Any]:
        body: dict[str, Any] = json_body(response, dict, self.repository, action)
        return body


class OciRegistryClient(OciTransport):
    """OCI Distribution API client for one repository, with basic and bearer-token auth."""

    kind: RegistryKind = "oci"
    delete_refusal: str | None = None

    def tags(self) -> list[str]:
        found: list[str] = []
        first = f"{self.base}/v2/{self.name}/tags/list?n=1000"
        for response in self._http.pages(first, lambda url: self._request("GET", url)):
            if response.status_code == 404:
                raise RepositoryNotFoundError(
                    f"{self.repository}: repository not found in {self.base}{_error_detail(response)}"
                )
            self._expect(response, "list tags")
            tags = self._json(response, "list tags").get("tags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise RegistryError(f"{self.repository}: list tags: 'tags' is not a list of names")
            found.extend(tags)
        return found

    def resolve(self, reference: str) -> str:
        """Digest of a tag (HEAD with manifest Accept types; GET and hash when no digest header)."""
        accept = ", ".join(MANIFEST_MEDIA_TYPES)
        path = f"/v2/{self.name}/manifests/{reference}"
        response = self._request("HEAD", path, accept=accept)
        digest = response.headers.get("Docker-Content-Digest")
        if response.status_code == 200 and digest:
            return normalize_digest(digest)
        response = self._request("GET", path, accept=accept)
        self._expect(response, f"resolve {reference}")
        digest = (
            response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(response.content).hexdigest()
        )
        return normalize_digest(digest)

    def manifest(self, digest: str) -> dict[str, Any]:
        accept = ", ".join(MANIFEST_MEDIA_TYPES)
        response = self._request("GET", f"/v2/{self.name}/manifests/{digest}", accept=accept)
        self._expect(response, f"read manifest {digest}")
        return self._json(response, f"read manifest {digest}")

    def children(self, digest: str) -> tuple[str, ...]:
        """The per-platform manifests of an index; () for an image manifest."""
        return index_children(self.manifest(digest), self.repository, digest)

    def created(self, digest: str, body: dict[str, Any] | None = None) -> datetime | None:
        """Build time from the image config (first platform of an index); None when absent."""
        body = body if body is not None else self.manifest(digest)
        children = index_children(body, self.repository, digest)
        if children:
            return self.created(children[0])
        config = body.get("config")
        config_digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(config_digest, str):
            return None
        blob = self._request("GET", f"/v2/{self.name}/blobs/{config_digest}")
        self._expect(blob, f"read config {config_digest}")
        stamp = self._json(blob, f"read config {config_digest}").get("created")
        return parse_time(stamp) if isinstance(stamp, str) else None

    def list_manifests(self, *, need_dates: bool) -> list[Manifest]:
        by_digest: dict[str, list[str]] = {}
        for tag in self.tags():
            by_digest.setdefault(self.resolve(tag), []).append(tag)
        found = []
        for digest, tags in by_digest.items():
            body = self.manifest(digest)
            found.append(
                Manifest(
                    digest=digest,
                    tags=tuple(sorted(tags)),
                    created=self.created(digest, body) if need_dates else None,
                    children=index_children(body, self.repository, digest),
                )
            )
        return found

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]:
        # 404: already gone (an earlier run, or a DELETE whose answer was lost): the end state holds.
        return delete_each(
            manifests,
            lambda m: self._request("DELETE", f"/v2/{self.name}/manifests/{m.digest}"),
            (200, 202, 404),
            self._delete_failure,
        )

    def _delete_failure(self, response: requests.Response) -> str:
        if response.status_code == 405:
            reason = (
                f"{self.base} refuses deletes through the Distribution API (405): on a distribution "
                "registry set storage.delete.enabled: true; a hosted registry deletes through its own API"
            )
        else:
            reason = f"HTTP {response.status_code}"
        return f"{reason}{_error_detail(response)}"


class DockerHubClient(OciRegistryClient):
    """Docker Hub: listing through the registry API works; deleting is refused with what to do instead."""

    kind: RegistryKind = "dockerhub"
    delete_refusal: str | None = DOCKER_HUB_REFUSAL

    def __init__(self, repository: str, **kwargs: Any) -> None:
        super().__init__(repository, host="registry-1.docker.io", **kwargs)

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]:
        raise RegistryUnsupportedError(f"{self.repository}: {DOCKER_HUB_REFUSAL}")


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
        from components.registry_ghcr import GhcrRegistryClient

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


# ---- helpers ---------------------------------------------------------------------------------------------


def _error_detail(response: requests.Response) -> str:
    """The registry's own error codes (``MANIFEST_UNKNOWN``, ``DENIED``…), when it sent any."""
    body = body_json(response)
    # Not every server (or proxy in front of one) sends the spec's object: never crash mid-deletion.
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    codes = [f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    return f" ({'; '.join(codes)})" if codes else ""


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

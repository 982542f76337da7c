"""Registry clients that decommission a service's images at sunset (OCI Distribution API and ECR).

Entry point for the sunset command::

    from components.registry import decommission

    report = decommission(
        "ghcr.io/acme/hello",          # repository, no tag or digest (an ECR URL selects ECR)
        keep=["sha256:…"],             # digests to keep (the last N production ran), or an int N:
                                       #   keep the N most recently created/pushed manifests
        dry_run=True,                  # list what would go, delete nothing
        username="acme-ci",            # OCI registries: basic credentials, also used for token auth
        password=token,                # (ECR uses boto3's credentials instead)
    )
    print(report.to_json_text())      # {"deleted": [...], "kept": [...], "failures": [...], ...}
    sys.exit(0 if report.ok else 1)

``keep_last(history, n)`` turns the digests production ran (oldest first) into the ``keep`` list.

Deletion is by manifest digest: every tag on a deleted digest goes with it, and a digest listed in
``keep`` keeps all of its tags. Only manifests reachable through a tag are seen (the OCI API
cannot list untagged manifests); the registry's garbage collector frees the blobs afterwards.

Errors: :class:`RegistryAuthError` (401/403, missing or refused credentials) and
:class:`RepositoryNotFoundError` are raised before anything is deleted. A failure to delete one
digest does not stop the others: it is listed in ``report.failures`` and ``report.ok`` is False.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol
from urllib.parse import urljoin

import requests

from components.refs import DIGEST

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

MANIFEST_MEDIA_TYPES: Final = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
"""Accept header for manifest requests: without it registries answer (and hash) a legacy schema."""
_INDEX_TYPES: Final = MANIFEST_MEDIA_TYPES[0], MANIFEST_MEDIA_TYPES[2]
ECR_HOST: Final = re.compile(  # the host part of an Amazon ECR repository URL
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)
_AUTH_PARAM: Final = re.compile(r'(\w+)="([^"]*)"')
_ECR_AUTH_CODES: Final = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
_ECR_BATCH: Final = 100


class RegistryError(RuntimeError):
    """The registry could not be used (anything other than a single failed deletion)."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (HTTP 401/403, or AWS access denied)."""


class RepositoryNotFoundError(RegistryError):
    """The repository does not exist in the registry."""


# ---- report ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    """One manifest in the repository, with every tag that points at it."""

    digest: str
    tags: tuple[str, ...] = ()
    created: datetime | None = None
    """When it was pushed (ECR) or built (OCI image config); None when unknown."""


@dataclass(frozen=True)
class Failure:
    """A digest that could not be deleted, and why."""

    digest: str
    tags: tuple[str, ...]
    error: str


@dataclass(frozen=True)
class DecommissionReport:
    """What the decommission did (or, in a dry run, would do)."""

    repository: str
    registry: Literal["oci", "ecr"]
    dry_run: bool
    retention: str
    """The rule applied, e.g. ``keep 1 newest`` or ``keep 2 listed digests``."""
    deleted: tuple[Manifest, ...]
    """Deleted manifests; in a dry run, the ones that would be deleted."""
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


def normalize_digest(ref: str) -> str:
    """``sha256:…`` or ``repo@sha256:…`` → ``sha256:…``; ValueError for anything else (a tag)."""
    digest = ref.rsplit("@", 1)[-1]
    if not DIGEST.match(digest):
        raise ValueError(f"{ref!r} is not a digest (sha256:<64 hex>) or a repo@sha256:… reference")
    return digest


def keep_last(history: Iterable[str], n: int = 1) -> list[str]:
    """The last ``n`` distinct digests of ``history`` (oldest first, as production ran them), newest first."""
    if n < 0:
        raise ValueError(f"keep count must be 0 or more, got {n}")
    newest_first: list[str] = []
    for digest in reversed([normalize_digest(ref) for ref in history]):
        if digest not in newest_first:
            newest_first.append(digest)
    return newest_first[:n]


def _partition(
    manifests: Sequence[Manifest], keep: Sequence[str] | int
) -> tuple[list[Manifest], list[Manifest], list[str], str]:
    """Split into (delete, keep, keep_not_found, rule description)."""
    if isinstance(keep, bool) or not isinstance(keep, (int, list, tuple)):
        raise TypeError(f"keep must be a list of digests or a count, got {keep!r}")
    if isinstance(keep, int):
        if keep < 0:
            raise ValueError(f"keep count must be 0 or more, got {keep}")
        # Newest first; manifests without a date sort as oldest (deleted first) but stay in order.
        floor = datetime.min.replace(tzinfo=UTC)
        ordered = sorted(manifests, key=lambda m: m.created or floor, reverse=True)
        return ordered[keep:], ordered[:keep], [], f"keep {keep} newest"
    wanted = [normalize_digest(ref) for ref in keep]
    present = {m.digest for m in manifests}
    kept = [m for m in manifests if m.digest in wanted]
    deleted = [m for m in manifests if m.digest not in wanted]
    missing = [d for d in dict.fromkeys(wanted) if d not in present]
    return deleted, kept, missing, f"keep {len(set(wanted))} listed digest(s)"


# ---- clients ---------------------------------------------------------------------------------------------


class RegistryClient(Protocol):
    kind: Literal["oci", "ecr"]

    def list_manifests(self, *, need_dates: bool) -> list[Manifest]: ...

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]: ...


class OciRegistryClient:
    """OCI Distribution API client for one repository, with basic and bearer-token auth."""

    kind: Literal["oci", "ecr"] = "oci"

    def __init__(
        self,
        repository: str,
        *,
        username: str | None = None,
        password: str | None = None,
        scheme: str | None = None,
        session: requests.Session | None = None,
        timeout: float = 30.0,
    ) -> None:
        host, _, name = repository.partition("/")
        if not name:
            raise ValueError(f"repository {repository!r} must be <registry host>/<name>")
        if scheme is None:
            # Loopback registries (tests, local mirrors) speak plain HTTP; everything else HTTPS.
            bare = host.rsplit(":", 1)[0]
            scheme = "http" if bare in ("localhost", "127.0.0.1", "[::1]") else "https"
        self.repository = repository
        self.name = name
        self.base = f"{scheme}://{host}"
        self._basic = (username, password) if username is not None and password is not None else None
        self._session = session or requests.Session()
        self._timeout = timeout
        self._token: str | None = None

    # -- HTTP with auth ------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, accept: str | None = None) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base}{path}"
        headers = {"Accept": accept} if accept else {}
        response = self._send(method, url, headers)
        # A bearer challenge (first call, or an expired token): fetch a token and try once more.
        if response.status_code == 401 and self._fetch_token(response):
            response = self._send(method, url, headers)
        if response.status_code in (401, 403):
            who = "without credentials" if self._basic is None else "with the given credentials"
            where = path.split("?", maxsplit=1)[0]
            raise RegistryAuthError(
                f"{self.repository}: {method} {where} was refused ({response.status_code}) {who}"
                f"{_error_detail(response)}"
            )
        return response

    def _send(self, method: str, url: str, headers: dict[str, str]) -> requests.Response:
        # Basic credentials go with every request until a token exists; requests drops them on a
        # redirect to another host.
        auth = None if self._token else self._basic
        if self._token:
            headers = {**headers, "Authorization": f"Bearer {self._token}"}
        try:
            return self._session.request(method, url, headers=headers, auth=auth, timeout=self._timeout)
        except requests.RequestException as exc:
            raise RegistryError(f"{self.repository}: cannot reach {self.base}: {exc}") from None

    def _fetch_token(self, challenge: requests.Response) -> bool:
        """Answer a ``Bearer`` challenge with a token for pull+delete; False for any other scheme."""
        header = challenge.headers.get("WWW-Authenticate", "")
        if header.split(" ", 1)[0].lower() != "bearer":
            return False
        params = dict(_AUTH_PARAM.findall(header))
        realm = params.get("realm")
        if not realm:
            raise RegistryAuthError(f"{self.repository}: bearer challenge without a realm: {header!r}")
        query = {"service": params.get("service", ""), "scope": f"repository:{self.name}:pull,delete"}
        try:
            response = self._session.get(realm, params=query, auth=self._basic, timeout=self._timeout)
        except requests.RequestException as exc:
            raise RegistryError(f"{self.repository}: cannot reach token service {realm}: {exc}") from None
        if response.status_code in (401, 403):
            who = "a token without credentials" if self._basic is None else "the given credentials"
            raise RegistryAuthError(f"{self.repository}: token service {realm} refused {who} ({response.status_code})")
        if response.status_code != 200:
            raise RegistryError(f"{self.repository}: token service {realm} answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.repository}: token service {realm} returned no token")
        self._token = token
        return True

    # -- API -----------------------------------------------------------------------------------

    def tags(self) -> list[str]:
        found: list[str] = []
        path: str | None = f"/v2/{self.name}/tags/list?n=1000"
        while path:
            response = self._request("GET", path)
            if response.status_code == 404:
                raise RepositoryNotFoundError(
                    f"{self.repository}: repository not found in {self.base}{_error_detail(response)}"
                )
            _expect(response, 200, self.repository, "list tags")
            found.extend(response.json().get("tags") or [])
            path = _next_link(response)
            if path and not path.startswith("http"):
                path = urljoin(self.base, path)
        return found

    def resolve(self, reference: str) -> str:
        """Digest of a tag (HEAD with manifest Accept types; GET and hash when no digest header)."""
        accept = ", ".join(MANIFEST_MEDIA_TYPES)
        path = f"/v2/{self.name}/manifests/{reference}"
        response = self._request("HEAD", path, accept=accept)
        digest = response.headers.get("Docker-Content-Digest")
        if response.status_code == 200 and digest:
            return digest
        response = self._request("GET", path, accept=accept)
        _expect(response, 200, self.repository, f"resolve {reference}")
        return response.headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(response.content).hexdigest()

    def created(self, digest: str) -> datetime | None:
        """Build time from the image config (first platform of an index); None when absent."""
        accept = ", ".join(MANIFEST_MEDIA_TYPES)
        manifest = self._request("GET", f"/v2/{self.name}/manifests/{digest}", accept=accept)
        _expect(manifest, 200, self.repository, f"read manifest {digest}")
        body = manifest.json()
        if body.get("mediaType") in _INDEX_TYPES or "manifests" in body:
            children = body.get("manifests") or []
            return self.created(children[0]["digest"]) if children else None
        config_digest = (body.get("config") or {}).get("digest")
        if not config_digest:
            return None
        blob = self._request("GET", f"/v2/{self.name}/blobs/{config_digest}")
        _expect(blob, 200, self.repository, f"read config {config_digest}")
        stamp = blob.json().get("created")
        return _parse_time(stamp) if isinstance(stamp, str) else None

    def list_manifests(self, *, need_dates: bool) -> list[Manifest]:
        by_digest: dict[str, list[str]] = {}
        for tag in self.tags():
            by_digest.setdefault(self.resolve(tag), []).append(tag)
        return [
            Manifest(digest=d, tags=tuple(sorted(t)), created=self.created(d) if need_dates else None)
            for d, t in by_digest.items()
        ]

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]:
        failures: list[Failure] = []
        for m in manifests:
            try:
                response = self._request("DELETE", f"/v2/{self.name}/manifests/{m.digest}")
            except RegistryError as exc:
                failures.append(Failure(m.digest, m.tags, str(exc)))
                continue
            if response.status_code in (200, 202):
                continue
            if response.status_code == 405:
                reason = "the registry does not allow deletes (distribution: storage.delete.enabled)"
            elif response.status_code == 404:
                reason = "manifest not found (deleted meanwhile?)"
            else:
                reason = f"HTTP {response.status_code}"
            failures.append(Failure(m.digest, m.tags, f"{reason}{_error_detail(response)}"))
        return failures


class EcrRegistryClient:
    """Amazon ECR client for one repository (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``)."""

    kind: Literal["oci", "ecr"] = "ecr"

    def __init__(self, repository: str, *, client: ECRClient | None = None) -> None:
        host, _, name = repository.partition("/")
        match = ECR_HOST.match(host)
        if match is None or not name:
            raise ValueError(f"{repository!r} is not an Amazon ECR repository URL")
        self.repository = repository
        self.name = name
        self.account = match.group("account")
        if client is None:
            import boto3

            client = boto3.client("ecr", region_name=match.group("region"))
        self._client = client

    def _raise(self, exc: Exception, action: str) -> None:
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            raise RegistryAuthError(f"{self.repository}: no AWS credentials to {action}") from None
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "RepositoryNotFoundException":
                raise RepositoryNotFoundError(
                    f"{self.repository}: repository {self.name} not found in ECR account {self.account}"
                ) from None
            if code in _ECR_AUTH_CODES:
                raise RegistryAuthError(f"{self.repository}: AWS refused to {action}: {code}") from None
        raise RegistryError(f"{self.repository}: could not {action}: {exc}") from None

    def list_manifests(self, *, need_dates: bool) -> list[Manifest]:
        from botocore.exceptions import BotoCoreError, ClientError

        tags: dict[str, set[str]] = {}
        pushed: dict[str, datetime | None] = {}
        try:
            pages = self._client.get_paginator("describe_images").paginate(
                registryId=self.account, repositoryName=self.name
            )
            for page in pages:
                # One entry per digest in AWS; moto lists one per tag: merge by digest either way.
                for detail in page.get("imageDetails", []):
                    digest = detail["imageDigest"]
                    tags.setdefault(digest, set()).update(detail.get("imageTags", []))
                    pushed[digest] = detail.get("imagePushedAt")
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "list images")
        return [Manifest(digest=d, tags=tuple(sorted(t)), created=pushed.get(d)) for d, t in tags.items()]

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]:
        from botocore.exceptions import BotoCoreError, ClientError

        failures: list[Failure] = []
        for start in range(0, len(manifests), _ECR_BATCH):
            batch = manifests[start : start + _ECR_BATCH]
            try:
                response = self._client.batch_delete_image(
                    registryId=self.account,
                    repositoryName=self.name,
                    imageIds=[{"imageDigest": m.digest} for m in batch],
                )
            except (ClientError, BotoCoreError) as exc:
                try:
                    self._raise(exc, "delete images")
                except RegistryError as err:
                    failures.extend(Failure(m.digest, m.tags, str(err)) for m in batch)
                continue
            by_digest = {m.digest: m for m in batch}
            for failure in response.get("failures", []):
                digest = failure.get("imageId", {}).get("imageDigest", "")
                m = by_digest.get(digest, Manifest(digest=digest))
                failures.append(
                    Failure(m.digest, m.tags, f"{failure.get('failureCode')}: {failure.get('failureReason')}")
                )
        return failures


def client_for(
    repository: str,
    *,
    username: str | None = None,
    password: str | None = None,
    ecr_client: ECRClient | None = None,
    session: requests.Session | None = None,
    scheme: str | None = None,
) -> RegistryClient:
    """The right client for ``repository``: ECR for an ECR URL, the OCI API otherwise."""
    if ECR_HOST.match(repository.partition("/")[0]):
        return EcrRegistryClient(repository, client=ecr_client)
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
) -> DecommissionReport:
    """Delete every manifest of ``repository`` except those ``keep`` selects; see the module docstring.

    ``keep``: digests (``sha256:…`` or ``repo@sha256:…``) to retain, or a count N to retain the N
    newest. ``dry_run``: report only. ``client`` overrides the registry client (tests, other
    registries). Raises :class:`RegistryAuthError`, :class:`RepositoryNotFoundError`,
    :class:`RegistryError` before deleting anything; per-digest failures go into the report.
    """
    if isinstance(keep, str):
        raise TypeError("keep must be a list of digests or a count, not a single string")
    registry = client or client_for(
        repository,
        username=username,
        password=password,
        ecr_client=ecr_client,
        session=session,
        scheme=scheme,
    )
    manifests = registry.list_manifests(need_dates=isinstance(keep, int))
    to_delete, to_keep, missing, rule = _partition(manifests, list(keep) if not isinstance(keep, int) else keep)
    failures = [] if dry_run or not to_delete else registry.delete(to_delete)
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


# ---- helpers ---------------------------------------------------------------------------------------------


def _expect(response: requests.Response, status: int, repository: str, action: str) -> None:
    if response.status_code != status:
        raise RegistryError(f"{repository}: {action} answered HTTP {response.status_code}{_error_detail(response)}")


def _error_detail(response: requests.Response) -> str:
    """The registry's own error codes (``MANIFEST_UNKNOWN``, ``DENIED``…), when it sent any."""
    try:
        body = response.json()
    except ValueError:
        return ""
    # Not every server (or proxy in front of one) sends the spec's object: never crash mid-deletion.
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    codes = [f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict)]
    return f" ({'; '.join(codes)})" if codes else ""


def _next_link(response: requests.Response) -> str | None:
    link = response.headers.get("Link", "")
    match = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', link)
    return match.group(1) if match else None


def _parse_time(stamp: str) -> datetime | None:
    # Go timestamps carry nanoseconds; Python takes microseconds.
    cleaned = re.sub(r"(\.\d{6})\d+", r"\1", stamp.replace("Z", "+00:00"))
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


__all__ = [
    "ECR_HOST",
    "DecommissionReport",
    "EcrRegistryClient",
    "Failure",
    "Manifest",
    "OciRegistryClient",
    "RegistryAuthError",
    "RegistryError",
    "RepositoryNotFoundError",
    "client_for",
    "decommission",
    "keep_last",
    "normalize_digest",
]

"""The OCI Distribution API of one repository: the transport (URLs, basic auth, bearer tokens), the
client that lists and deletes manifests by digest, and Docker Hub (listing only; deleting refused).

Chosen by :func:`components.registry.decommissioning.client_for`; GHCR reads manifests through it
(:mod:`components.registry.ghcr`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import requests

from components.registry.http import (
    Http,
    RegistryAuthError,
    RegistryError,
    RegistryUnsupportedError,
    RepositoryNotFoundError,
    body_json,
    json_body,
    parse_time,
)
from components.registry.model import (
    MANIFEST_MEDIA_TYPES,
    Failure,
    Manifest,
    RegistryKind,
    delete_each,
    index_children,
    normalize_digest,
)

if TYPE_CHECKING:
    pass

DOCKER_HUB_REFUSAL: Final = (
    "Docker Hub deletes images only through its own Hub API (the registry API answers DELETE with 405), "
    "and that API has no published specification this project could check its client against: nothing was "
    "deleted. Delete the old tags in Docker Hub's web interface (Repository > Tags) or with Docker's "
    "hub-tool, or move the service's images to GHCR, ECR or a registry that allows deletes."
)
_AUTH_PARAM: Final = re.compile(r'(\w+)="([^"]*)"')
_LOOPBACK: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})


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


__all__ = ["DOCKER_HUB_REFUSAL", "DockerHubClient", "OciRegistryClient", "OciTransport"]

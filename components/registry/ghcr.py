"""GHCR (``ghcr.io/<owner>/<package>``) through the GitHub Packages REST API.

GHCR answers the Distribution API's ``DELETE /v2/<name>/manifests/<digest>`` with 405: images are
package versions of a ``container`` package, listed and deleted through api.github.com
(github/rest-api-description, ``descriptions/api.github.com/api.github.com.yaml``; the operations used
are copied in ``tests/fixtures/github-packages-api.excerpt.yaml``):

- ``GET /orgs/{org}/packages/container/{package_name}/versions?per_page=100`` (organisation owner), or
  ``GET /users/{username}/packages/container/{package_name}/versions`` (user owner, tried when the
  organisation path answers 404); pages follow the ``Link`` header. Each version: ``id``, ``name``
  (the manifest digest), ``created_at``, ``metadata.container.tags``.
- ``DELETE /orgs/{org}/packages/container/{package_name}/versions/{package_version_id}`` (or
  ``/users/{username}/…``): 204.

``package_name`` is the repository path below the owner, URL-encoded (``a/b`` → ``a%2Fb``). The
token needs ``read:packages`` and ``delete:packages`` (and admin rights on the package). Which
versions are the children of an index is read from the registry itself (``ghcr.io/v2``, GET only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal, Protocol
from urllib.parse import quote

import requests

from components.registry.http import (
    Http,
    RegistryAuthError,
    RegistryError,
    RepositoryNotFoundError,
    body_json,
    json_body,
    parse_time,
)
from components.registry.model import Failure, Manifest, RegistryKind, delete_each, normalize_digest
from components.registry.oci import OciRegistryClient

API: Final = "https://api.github.com"
API_VERSION: Final = "2022-11-28"
SCOPES: Final = "read:packages and delete:packages"
OwnerKind = Literal["orgs", "users"]


class ManifestReader(Protocol):
    def children(self, digest: str) -> tuple[str, ...]: ...


class GitHubPackages:
    """The package-version operations of one ``container`` package (listing by owner kind, URLs, auth)."""

    def __init__(
        self,
        repository: str,
        *,
        token: str | None,
        api: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        host, _, path = repository.partition("/")
        owner, _, package = path.partition("/")
        if host != "ghcr.io" or not owner or not package:
            raise ValueError(f"{repository!r} is not a GHCR repository (ghcr.io/<owner>/<package>)")
        if not token:
            raise RegistryAuthError(
                f"{repository}: GHCR deletes through the GitHub API, which needs a token ({SCOPES}): "
                "set registryPassword to it"
            )
        self.repository = repository
        self.owner = owner
        self.package = package
        self.api = (api or API).rstrip("/")
        self._token = token
        self._http = Http(label=repository, session=session or requests.Session(), sleep=sleep)
        self._owner_kind: OwnerKind | None = None

    def _versions_url(self, kind: OwnerKind) -> str:
        return (
            f"{self.api}/{kind}/{quote(self.owner, safe='')}/packages/container/{quote(self.package, safe='')}/versions"
        )

    def _get(self, url: str) -> requests.Response:
        response = self._http.send("GET", url, headers=self._headers())
        if response.status_code in (401, 403):
            raise RegistryAuthError(
                f"{self.repository}: GitHub refused to list the package's versions ({response.status_code}"
                f"{_message(response)}): the token needs {SCOPES}"
            )
        return response

    def _headers(self) -> dict[str, str]:
        return {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {self._token}",
            "X-GitHub-Api-Version": API_VERSION,
        }

    def versions(self) -> list[dict[str, Any]]:
        """Every version of the package, organisation owner first, then user owner."""
        kinds: tuple[OwnerKind, ...] = (self._owner_kind,) if self._owner_kind else ("orgs", "users")
        for kind in kinds:
            found = self._versions_of(kind)
            if found is not None:
                self._owner_kind = kind
                return found
        raise RepositoryNotFoundError(
            f"{self.repository}: no container package {self.package!r} owned by organisation or user "
            f"{self.owner!r} (or the token cannot see it: it needs {SCOPES})"
        )

    def _versions_of(self, kind: OwnerKind) -> list[dict[str, Any]] | None:
        """The versions listed under ``kind`` (``orgs`` or ``users``); None when GitHub answers 404."""
        # The user operation declares no query parameters; the organisation one takes per_page.
        first = self._versions_url(kind) + ("?per_page=100" if kind == "orgs" else "")
        found: list[dict[str, Any]] = []
        for response in self._http.pages(first, self._get):
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise RegistryError(
                    f"{self.repository}: listing package versions answered HTTP {response.status_code}"
                    f"{_message(response)}"
                )
            page = json_body(response, list, self.repository, "list package versions")
            if not all(isinstance(v, dict) for v in page):
                raise RegistryError(f"{self.repository}: list package versions: not a list of objects")
            found.extend(page)
        return found


class GhcrRegistryClient(GitHubPackages):
    """One ``ghcr.io`` repository as a GitHub ``container`` package."""

    kind: RegistryKind = "ghcr"
    delete_refusal: str | None = None

    def __init__(
        self,
        repository: str,
        *,
        token: str | None,
        username: str | None = None,
        api: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        reader: ManifestReader | None = None,
    ) -> None:
        super().__init__(repository, token=token, api=api, session=session, sleep=sleep)
        if reader is None:
            reader = OciRegistryClient(repository, username=username or self.owner, password=token, session=session)
        self._reader = reader

    def list_manifests(self, *, need_dates: bool) -> list[Manifest]:
        return [self._manifest(version) for version in self.versions()]

    def _manifest(self, version: dict[str, Any]) -> Manifest:
        vid, name = version.get("id"), version.get("name")
        if not isinstance(vid, int) or not isinstance(name, str):
            raise RegistryError(f"{self.repository}: a package version without an integer id and a name")
        try:
            digest = normalize_digest(name)
        except ValueError:
            raise RegistryError(f"{self.repository}: package version {vid} is named {name!r}, not a digest") from None
        metadata = version.get("metadata")
        container = metadata.get("container") if isinstance(metadata, dict) else None
        tags = container.get("tags") if isinstance(container, dict) else None
        tags = tags if isinstance(tags, list) and all(isinstance(t, str) for t in tags) else []
        stamp = version.get("created_at")
        return Manifest(
            digest=digest,
            tags=tuple(sorted(tags)),
            created=parse_time(stamp) if isinstance(stamp, str) else None,
            # Untagged versions are the platforms of an index (or orphans): only tagged ones are read.
            children=self._reader.children(digest) if tags else (),
            ref=str(vid),
        )

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]:
        if self._owner_kind is None:
            self.versions()
        assert self._owner_kind is not None
        url = self._versions_url(self._owner_kind)
        return delete_each(
            manifests,
            lambda m: self._http.send("DELETE", f"{url}/{quote(m.ref, safe='')}", headers=self._headers()),
            (204, 404),  # 404: already deleted
            _delete_failure,
        )


def _delete_failure(response: requests.Response) -> str:
    if response.status_code in (401, 403):
        return (
            f"GitHub refused ({response.status_code}{_message(response)}): the token needs {SCOPES} and admin "
            "rights on the package; a public version with more than 5,000 downloads cannot be deleted"
        )
    return f"HTTP {response.status_code}{_message(response)}"


def _message(response: requests.Response) -> str:
    """GitHub's ``basic-error`` message, when the body is one."""
    body = body_json(response)
    message = body.get("message") if isinstance(body, dict) else None
    return f": {message}" if isinstance(message, str) and message else ""

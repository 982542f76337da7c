"""Local stand-ins for the registry clients' servers, on one piece of HTTP plumbing (real HTTP on a free
loopback port, a thread per server, one route per fake):

- :class:`FakeRegistry`: the OCI Distribution API (tags paged by ``Link``, manifests, config blobs, DELETE,
  basic and bearer-token auth; distribution ``docs/spec/api.md`` and ``docs/spec/auth/token.md``), used by
  ``tests/unit/test_registry.py`` and as the ``ghcr.io/v2`` side in ``tests/unit/test_registry_ghcr.py``;
- :class:`FakeGitHub`: the package-version operations of the GitHub Packages REST API
  (``tests/fixtures/github-packages-api.excerpt.yaml``), used by ``tests/unit/test_registry_ghcr.py``.

The fixtures ``fake_registry`` and ``github`` (``tests/unit/conftest.py``) start them with :func:`serving`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
NAME = "acme/hello"
GITHUB_TOKEN = "ghp_test-token-1"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeHandler(BaseHTTPRequestHandler):
    """Every method goes to :meth:`route`; :meth:`reply` sends a whole answer (no body for HEAD)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def route(self) -> None:
        raise NotImplementedError

    def reply(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self.route()

    def do_HEAD(self) -> None:
        self.route()

    def do_DELETE(self) -> None:
        self.route()


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], on_port: Callable[[int], None]) -> Iterator[None]:
    """Serve ``handler`` on 127.0.0.1 (a free port, given to ``on_port`` first) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    on_port(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


# ---- OCI Distribution API ------------------------------------------------------------------------------


@dataclass
class FakeRegistry:
    """Just enough of the Distribution API: tags (paged), manifests, config blobs, delete, auth."""

    auth: str = "none"  # none | basic | bearer
    username: str = "ci"
    password: str = "pw-123"
    delete_enabled: bool = True
    fail_delete: set[str] = field(default_factory=set)
    fail_body: bytes | None = None
    """Body of the failed deletes' answer instead of the spec's error object."""
    page_size: int = 2
    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    token_scopes: list[str] = field(default_factory=list)
    token_queries: list[dict[str, list[str]]] = field(default_factory=list)
    faults: list[tuple[str, str, int, dict[str, str], bytes]] = field(default_factory=list)
    """Injected answers (method, path substring, status, headers, body), each used once, first match first."""
    lose_delete_answer: set[str] = field(default_factory=set)
    """Digests whose DELETE is applied but whose answer is lost (connection closed)."""
    keep_after_delete: set[str] = field(default_factory=set)
    """Digests whose DELETE answers 202 but changes nothing (a registry that lies, or a replica lag)."""
    head_digest: bool = True
    """False: no Docker-Content-Digest header (clients must hash the manifest they GET)."""
    link_loop: bool = False
    token_status: int = 200
    challenge: str = ""
    port: int = 0

    def push(self, created: str, *tags: str) -> str:
        config = json.dumps({"created": created, "architecture": "amd64", "os": "linux"}).encode()
        self.blobs[sha(config)] = config
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": sha(config)}, "layers": []}
        ).encode()
        return self.store(manifest, *tags)

    def push_index(self, *tags: str, children: tuple[str, ...], media_type: str = OCI_INDEX) -> str:
        index = json.dumps(
            {"schemaVersion": 2, "mediaType": media_type, "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": c, "size": len(self.manifests[c])} for c in children
            ]}
        ).encode()  # fmt: skip
        return self.store(index, *tags)

    def store(self, manifest: bytes, *tags: str) -> str:
        """Hold ``manifest`` under its digest, with ``tags`` pointing at it; the digest."""
        digest = sha(manifest)
        self.manifests[digest] = manifest
        for tag in tags:
            self.tags[tag] = digest
        return digest

    @property
    def repository(self) -> str:
        return f"127.0.0.1:{self.port}/{NAME}"

    def set_port(self, port: int) -> None:
        self.port = port


def registry_handler(reg: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def _error(self, code: int, err: str) -> None:
            self.reply(code, json.dumps({"errors": [{"code": err, "message": err.lower()}]}).encode())

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            basic = "Basic " + base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
            if reg.auth == "none":
                return True
            if reg.auth == "basic":
                if header == basic:
                    return True
                self.reply(401, b"{}", {"WWW-Authenticate": reg.challenge or 'Basic realm="fake"'})
                return False
            if header == "Bearer good-token":
                return True
            realm = f"http://127.0.0.1:{reg.port}/token"
            challenge = f'Bearer realm="{realm}",service="fake",scope="repository:{NAME}:pull"'
            self.reply(401, b"{}", {"WWW-Authenticate": challenge})
            return False

        def _token(self, query: str) -> None:
            basic = "Basic " + base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
            if self.headers.get("Authorization") != basic:
                return self.reply(401)
            reg.token_queries.append(parse_qs(query))
            reg.token_scopes.append(parse_qs(query)["scope"][0])
            if reg.token_status != 200:
                return self.reply(reg.token_status, b"{}")
            return self.reply(200, json.dumps({"token": "good-token"}).encode())

        def _tags(self, query: str) -> None:
            names = sorted(reg.tags)
            last = parse_qs(query).get("last", [""])[0]
            after = [t for t in names if t > last]
            page, more = after[: reg.page_size], after[reg.page_size :]
            headers = {"Content-Type": "application/json"}
            if reg.link_loop:  # a broken server: "next" is the page just served
                headers["Link"] = f'<{self.path}>; rel="next"'
            elif more:
                headers["Link"] = f'</v2/{NAME}/tags/list?n={reg.page_size}&last={page[-1]}>; rel="next"'
            return self.reply(200, json.dumps({"name": NAME, "tags": page or None}).encode(), headers)

        def _delete(self, digest: str) -> None:
            if not reg.delete_enabled:
                return self._error(405, "UNSUPPORTED")
            if digest in reg.fail_delete:
                if reg.fail_body is not None:
                    return self.reply(502, reg.fail_body, {"Content-Type": "application/json"})
                return self._error(500, "UNKNOWN")
            if digest in reg.keep_after_delete:
                return self.reply(202)
            del reg.manifests[digest]
            for tag in [t for t, d in reg.tags.items() if d == digest]:
                del reg.tags[tag]
            if digest in reg.lose_delete_answer:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            return self.reply(202)

        def _manifest(self, ref: str) -> None:
            digest = reg.tags.get(ref, ref)
            if digest not in reg.manifests:
                return self._error(404, "MANIFEST_UNKNOWN")
            if self.command == "DELETE":
                return self._delete(digest)
            # Like distribution: without the right Accept type, no OCI digest.
            if OCI_MANIFEST not in self.headers.get("Accept", ""):
                return self._error(404, "MANIFEST_UNKNOWN")
            body = reg.manifests[digest]
            headers = {"Content-Type": json.loads(body)["mediaType"]}
            if reg.head_digest:
                headers["Docker-Content-Digest"] = digest
            return self.reply(200, body, headers)

        def route(self) -> None:
            url = urlsplit(self.path)
            reg.requests.append((self.command, url.path, dict(self.headers)))
            for fault in reg.faults:
                method, where, status, headers, body = fault
                if method == self.command and where in self.path:
                    reg.faults.remove(fault)
                    return self.reply(status, body, headers)
            if url.path == "/token":
                return self._token(url.query)
            if not self._authorized():
                return None
            prefix = f"/v2/{NAME}/"
            if not url.path.startswith(prefix):
                return self._error(404, "NAME_UNKNOWN")
            rest = url.path[len(prefix) :]
            if rest == "tags/list":
                return self._tags(url.query)
            kind, _, ref = rest.partition("/")
            if kind == "manifests":
                return self._manifest(ref)
            if kind == "blobs" and ref in reg.blobs:
                return self.reply(200, reg.blobs[ref])
            return self._error(404, "BLOB_UNKNOWN")

    return Handler


# ---- GitHub Packages REST API --------------------------------------------------------------------------


def version_digest(n: int) -> str:
    return "sha256:" + f"{n:064x}"


@dataclass
class FakeGitHub:
    """The package-version operations of the excerpt. Versions are ``package-version`` objects
    (``id``, ``name`` = the manifest digest, ``created_at``, ``metadata.container.tags``)."""

    owner_kind: str = "orgs"  # orgs | users
    owner: str = "acme"
    package: str = "hello"
    versions: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    link_loop: bool = False
    delete_status: int = 204
    body_override: bytes | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def add(self, n: int, created: str, *tags: str, digest: str | None = None) -> str:
        """Version ``1000 + n`` of the manifest ``digest`` (a made-up one from ``n`` by default)."""
        self.versions.append(
            {
                "id": 1000 + n,
                "name": digest or version_digest(n),
                "url": f"https://api.github.com/orgs/{self.owner}/packages/container/{self.package}/versions/{n}",
                "package_html_url": f"https://github.com/orgs/{self.owner}/packages/container/package/{self.package}",
                "created_at": created,
                "updated_at": created,
                "html_url": f"https://github.com/orgs/{self.owner}/packages/container/{self.package}/{1000 + n}",
                "metadata": {"package_type": "container", "container": {"tags": list(tags)}},
            }
        )
        return digest or version_digest(n)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def remaining(self) -> set[str]:
        return {v["name"] for v in self.versions}

    def set_port(self, port: int) -> None:
        self.port = port


def github_handler(gh: FakeGitHub) -> type[BaseHTTPRequestHandler]:
    class Handler(FakeHandler):
        def _json(self, code: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else (b"" if body is None else json.dumps(body).encode())
            self.reply(code, data, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

        def _list(self, path: str, query: str) -> None:
            if gh.body_override is not None:
                return self._json(200, gh.body_override)
            page = int(parse_qs(query).get("page", ["1"])[0])
            size = int(parse_qs(query).get("per_page", ["30"])[0])
            size = min(size, gh.page_size)
            chunk = gh.versions[(page - 1) * size : page * size]
            headers = {}
            if gh.link_loop:
                headers["Link"] = f'<{gh.api}{self.path}>; rel="next"'
            elif page * size < len(gh.versions):
                headers["Link"] = (
                    f'<{gh.api}{path}?per_page={size}&page={page + 1}>; rel="next", '
                    f'<{gh.api}{path}?per_page={size}&page={-(-len(gh.versions) // size)}>; rel="last"'
                )
            return self._json(200, chunk, headers)

        def _delete(self, vid: int, not_found: dict[str, str]) -> None:
            match = [v for v in gh.versions if v["id"] == vid]
            if not match:
                return self._json(404, not_found)
            if gh.delete_status != 204:
                return self._json(gh.delete_status, {"message": "Must have admin rights to Repository."})
            gh.versions.remove(match[0])
            return self._json(204)

        def route(self) -> None:
            gh.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {GITHUB_TOKEN}":
                return self._json(
                    401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}
                )
            url = urlsplit(self.path)
            base = f"/{gh.owner_kind}/{gh.owner}/packages/container/{gh.package.replace('/', '%2F')}/versions"
            not_found = {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}
            if self.command == "GET" and url.path == base:
                return self._list(url.path, url.query)
            if self.command == "DELETE" and url.path.startswith(base + "/"):
                return self._delete(int(url.path.rsplit("/", 1)[1]), not_found)
            return self._json(404, not_found)

    return Handler

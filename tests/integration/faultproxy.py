"""A fault-injecting HTTP proxy in front of a real registry, and a way to push images without Docker.

``FaultProxy(upstream_url)`` forwards every request to the registry unchanged, except those a rule
matches; each rule fires ``times`` times:

- ``status``: answer with a status (and headers/body) instead of forwarding (404, 429 + Retry-After, 500);
- ``after``: forward, then replace the answer's status (a DELETE applied upstream that answers 404);
- ``reset``: close the connection without an answer, before forwarding;
- ``lose``: forward (the registry applies it), then close the connection without an answer;
- ``stall``: wait ``seconds`` before answering (a client timeout), then forward;
- ``body``: forward, then replace the body (HTML from a captive proxy, a JSON list);
- ``loop``: forward, then set ``Link`` to the page just served (self-referencing pagination).

``push_image`` / ``push_index`` upload a config blob, a layer and a manifest (or an index of manifests)
through the Distribution API (distribution ``docs/spec/api.md``: monolithic upload ``POST
/v2/<name>/blobs/uploads/`` then ``PUT <location>&digest=``; ``PUT /v2/<name>/manifests/<tag>``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class Rule:
    method: str
    path: str
    """Substring of the request path (query included)."""
    action: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    times: int = 1


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.rules: list[Rule] = []
        self.log: list[tuple[str, str, str]] = []
        """(method, path, what happened)."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add(self, *rules: Rule) -> None:
        with self._lock:
            self.rules.extend(rules)

    def count(self, method: str, fragment: str) -> int:
        return len([1 for m, p, _ in self.log if m == method and fragment in p])

    def _take(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.method == method and rule.path in path and rule.times > 0:
                    rule.times -= 1
                    return rule
        return None

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                rule = proxy._take(self.command, self.path)
                action = rule.action if rule else "forward"
                proxy.log.append((self.command, self.path, action))
                if rule and rule.action == "status":
                    return self._answer(rule.status, list(rule.headers.items()), rule.body)
                if rule and rule.action == "reset":
                    return self._drop()
                if rule and rule.action == "stall":
                    time.sleep(rule.seconds)
                status, up_headers, data = proxy._forward(self.command, self.path, headers, body)
                if rule and rule.action == "lose":
                    return self._drop()
                if rule and rule.action == "after":
                    status = rule.status
                if rule and rule.action == "body":
                    data = rule.body
                    up_headers = [(k, v) for k, v in up_headers if k.lower() != "content-type"]
                    up_headers += list(rule.headers.items())
                if rule and rule.action == "loop":
                    up_headers = [(k, v) for k, v in up_headers if k.lower() != "link"]
                    up_headers.append(("Link", f'<{self.path}>; rel="next"'))
                return self._answer(status, up_headers, data)

            def do_GET(self) -> None:
                self._handle()

            def do_HEAD(self) -> None:
                self._handle()

            def do_DELETE(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def do_PATCH(self) -> None:
                self._handle()

        return Handler


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _upload(registry: str, name: str, data: bytes) -> str:
    digest = _sha(data)
    start = requests.post(f"{registry}/v2/{name}/blobs/uploads/", timeout=30)
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    location = location if location.startswith("http") else registry + location
    sep = "&" if "?" in location else "?"
    put = requests.put(f"{location}{sep}digest={digest}", data=data,
                       headers={"Content-Type": "application/octet-stream"}, timeout=30)  # fmt: skip
    assert put.status_code == 201, put.text
    return digest


def push_image(registry: str, name: str, created: str, *tags: str, platform: str = "amd64") -> str:
    """One single-layer OCI image; distinct ``created`` values give distinct digests. Returns the digest."""
    config = json.dumps({"created": created, "architecture": platform, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()  # fmt: skip
    layer = f"layer {created} {platform}".encode()
    config_digest, layer_digest = _upload(registry, name, config), _upload(registry, name, layer)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
    }).encode()  # fmt: skip
    return _put_manifest(registry, name, manifest, OCI_MANIFEST, tags)


def push_index(registry: str, name: str, children: list[str], *tags: str) -> str:
    """An OCI index of manifests already in the repository."""
    entries = []
    for child in children:
        got = requests.get(f"{registry}/v2/{name}/manifests/{child}", headers={"Accept": OCI_MANIFEST}, timeout=30)
        assert got.status_code == 200, got.text
        arch = f"arch{len(entries)}"
        entries.append({"mediaType": OCI_MANIFEST, "digest": child, "size": len(got.content),
                        "platform": {"architecture": arch, "os": "linux"}})  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return _put_manifest(registry, name, index, OCI_INDEX, tags)


def _put_manifest(registry: str, name: str, body: bytes, media_type: str, tags: tuple[str, ...]) -> str:
    digest = _sha(body)
    for reference in tags or (digest,):
        put = requests.put(f"{registry}/v2/{name}/manifests/{reference}", data=body,
                           headers={"Content-Type": media_type}, timeout=30)  # fmt: skip
        assert put.status_code == 201, put.text
    return digest


def manifest_status(registry: str, name: str, reference: str) -> int:
    accept = ", ".join((OCI_INDEX, OCI_MANIFEST))
    return requests.head(
        f"{registry}/v2/{name}/manifests/{reference}", headers={"Accept": accept}, timeout=30
    ).status_code

"""Registry decommission: the OCI Distribution client against an in-process fake registry (real HTTP),
the ECR client against moto, retention, dry run, auth and partial failures."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from moto import mock_aws

from components.registry import (
    MANIFEST_MEDIA_TYPES,
    DecommissionReport,
    EcrRegistryClient,
    Manifest,
    RegistryAuthError,
    RepositoryNotFoundError,
    decommission,
    keep_last,
    normalize_digest,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
NAME = "acme/hello"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


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
    port: int = 0

    def push(self, created: str, *tags: str) -> str:
        config = json.dumps({"created": created, "architecture": "amd64", "os": "linux"}).encode()
        self.blobs[_sha(config)] = config
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": _sha(config)}, "layers": []}
        ).encode()
        digest = _sha(manifest)
        self.manifests[digest] = manifest
        for tag in tags:
            self.tags[tag] = digest
        return digest

    @property
    def repository(self) -> str:
        return f"127.0.0.1:{self.port}/{NAME}"


def _handler(reg: FakeRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _error(self, code: int, err: str) -> None:
            self._send(code, json.dumps({"errors": [{"code": err, "message": err.lower()}]}).encode())

        def _authorized(self) -> bool:
            header = self.headers.get("Authorization", "")
            basic = "Basic " + base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
            if reg.auth == "none":
                return True
            if reg.auth == "basic":
                if header == basic:
                    return True
                self._send(401, b"{}", {"WWW-Authenticate": 'Basic realm="fake"'})
                return False
            if header == "Bearer good-token":
                return True
            realm = f"http://127.0.0.1:{reg.port}/token"
            challenge = f'Bearer realm="{realm}",service="fake",scope="repository:{NAME}:pull"'
            self._send(401, b"{}", {"WWW-Authenticate": challenge})
            return False

        def _route(self) -> None:
            url = urlsplit(self.path)
            reg.requests.append((self.command, url.path, dict(self.headers)))
            if url.path == "/token":
                basic = "Basic " + base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
                if self.headers.get("Authorization") != basic:
                    return self._send(401)
                reg.token_scopes.append(parse_qs(url.query)["scope"][0])
                return self._send(200, json.dumps({"token": "good-token"}).encode())
            if not self._authorized():
                return None
            prefix = f"/v2/{NAME}/"
            if not url.path.startswith(prefix):
                return self._error(404, "NAME_UNKNOWN")
            rest = url.path[len(prefix) :]
            if rest == "tags/list":
                names = sorted(reg.tags)
                last = parse_qs(url.query).get("last", [""])[0]
                after = [t for t in names if t > last]
                page, more = after[: reg.page_size], after[reg.page_size :]
                headers = {"Content-Type": "application/json"}
                if more:
                    headers["Link"] = f'</v2/{NAME}/tags/list?n={reg.page_size}&last={page[-1]}>; rel="next"'
                return self._send(200, json.dumps({"name": NAME, "tags": page or None}).encode(), headers)
            kind, _, ref = rest.partition("/")
            if kind == "manifests":
                digest = reg.tags.get(ref, ref)
                if digest not in reg.manifests:
                    return self._error(404, "MANIFEST_UNKNOWN")
                if self.command == "DELETE":
                    if not reg.delete_enabled:
                        return self._error(405, "UNSUPPORTED")
                    if digest in reg.fail_delete:
                        if reg.fail_body is not None:
                            return self._send(502, reg.fail_body, {"Content-Type": "application/json"})
                        return self._error(500, "UNKNOWN")
                    del reg.manifests[digest]
                    for tag in [t for t, d in reg.tags.items() if d == digest]:
                        del reg.tags[tag]
                    return self._send(202)
                # Like distribution: without the right Accept type, no OCI digest.
                if OCI_MANIFEST not in self.headers.get("Accept", ""):
                    return self._error(404, "MANIFEST_UNKNOWN")
                headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest}
                return self._send(200, reg.manifests[digest], headers)
            if kind == "blobs" and ref in reg.blobs:
                return self._send(200, reg.blobs[ref])
            return self._error(404, "BLOB_UNKNOWN")

        def do_GET(self) -> None:
            self._route()

        def do_HEAD(self) -> None:
            self._route()

        def do_DELETE(self) -> None:
            self._route()

    return Handler


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    reg = FakeRegistry()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(reg))
    reg.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield reg
    server.shutdown()
    server.server_close()


def _three(reg: FakeRegistry) -> tuple[str, str, str]:
    old = reg.push("2026-01-01T00:00:00.123456789Z", "aaaaaaa", "1.0.0")
    mid = reg.push("2026-02-01T00:00:00Z", "bbbbbbb")
    new = reg.push("2026-03-01T00:00:00Z", "ccccccc", "1.1.0", "latest")
    return old, mid, new


# ---- retention rules ---------------------------------------------------------------------------------


def test_keep_last_takes_the_newest_distinct_digests() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    history = [a, b, f"ghcr.io/acme/hello@{c}", b, c]
    assert keep_last(history, 1) == [c]
    assert keep_last(history, 2) == [c, b]
    assert keep_last(history, 5) == [c, b, a]
    assert keep_last(history, 0) == []
    with pytest.raises(ValueError, match="0 or more"):
        keep_last(history, -1)


@pytest.mark.parametrize("bad", ["ghcr.io/acme/hello:1.0", "sha256:abc", "latest"])
def test_only_digests_select_what_is_kept(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a digest"):
        normalize_digest(bad)


def test_bad_keep_values_are_rejected_before_anything_is_deleted(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    with pytest.raises(ValueError, match="is not a digest"):
        decommission(fake_registry.repository, keep=["1.1.0"], dry_run=False)
    with pytest.raises(TypeError, match="not a single string"):
        decommission(fake_registry.repository, keep="sha256:" + "a" * 64, dry_run=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="0 or more"):
        decommission(fake_registry.repository, keep=-1, dry_run=False)
    assert len(fake_registry.manifests) == 3
    assert not any(method == "DELETE" for method, _, _ in fake_registry.requests)


# ---- OCI Distribution API -------------------------------------------------------------------------------


def test_keeps_listed_digest_deletes_the_rest(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    report = decommission(fake_registry.repository, keep=[f"{fake_registry.repository}@{mid}"], dry_run=False)
    assert report.ok and report.registry == "oci" and not report.dry_run
    assert [m.digest for m in report.kept] == [mid]
    assert {m.digest: m.tags for m in report.deleted} == {
        old: ("1.0.0", "aaaaaaa"),
        new: ("1.1.0", "ccccccc", "latest"),
    }
    assert set(fake_registry.manifests) == {mid}
    assert fake_registry.tags == {"bbbbbbb": mid}
    # Manifests were resolved with the manifest media types, as real registries require.
    heads = [h for method, _, h in fake_registry.requests if method == "HEAD"]
    assert heads and all(set(MANIFEST_MEDIA_TYPES) <= set(h["Accept"].split(", ")) for h in heads)


def test_keep_count_keeps_the_newest_by_creation_time(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    report = decommission(fake_registry.repository, keep=1, dry_run=False)
    assert [m.digest for m in report.kept] == [new]
    assert {m.digest for m in report.deleted} == {old, mid}
    assert report.retention == "keep 1 newest"
    assert report.kept[0].created is not None and report.kept[0].created.month == 3
    assert set(fake_registry.manifests) == {new}


def test_dry_run_reports_and_deletes_nothing(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    report = decommission(fake_registry.repository, keep=[new], dry_run=True)
    assert report.dry_run and {m.digest for m in report.deleted} == {old, mid}
    assert len(fake_registry.manifests) == 3
    assert not any(method == "DELETE" for method, _, _ in fake_registry.requests)


def test_report_serialises_to_json(fake_registry: FakeRegistry) -> None:
    _, _, new = _three(fake_registry)
    missing = "sha256:" + "f" * 64
    report = decommission(fake_registry.repository, keep=[new, missing], dry_run=True)
    data = json.loads(report.to_json_text())
    assert data["repository"] == fake_registry.repository and data["dry_run"] is True and data["ok"] is True
    assert data["kept"] == [{"digest": new, "tags": ["1.1.0", "ccccccc", "latest"], "created": None}]
    assert len(data["deleted"]) == 2 and data["failures"] == []
    assert data["keep_not_found"] == [missing]


def test_partial_failure_is_reported_and_the_rest_still_goes(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    fake_registry.fail_delete = {old}
    report = decommission(fake_registry.repository, keep=[new], dry_run=False)
    assert not report.ok
    assert [(f.digest, f.tags) for f in report.failures] == [(old, ("1.0.0", "aaaaaaa"))]
    assert "HTTP 500" in report.failures[0].error and "UNKNOWN" in report.failures[0].error
    assert [m.digest for m in report.deleted] == [mid]
    assert set(fake_registry.manifests) == {old, new}
    assert json.loads(report.to_json_text())["ok"] is False


@pytest.mark.parametrize("body", [b'"bad gateway"', b"[]", b'{"errors": "none"}', b"<html>bad gateway</html>"])
def test_a_failed_delete_with_an_odd_error_body_is_still_a_reported_failure(
    fake_registry: FakeRegistry, body: bytes
) -> None:
    old, mid, new = _three(fake_registry)
    fake_registry.fail_delete, fake_registry.fail_body = {mid}, body
    report = decommission(fake_registry.repository, keep=[new], dry_run=False)
    assert [(f.digest, f.error) for f in report.failures] == [(mid, "HTTP 502")]
    assert [m.digest for m in report.deleted] == [old] and not report.ok


def test_delete_disabled_is_explained(fake_registry: FakeRegistry) -> None:
    _, _, new = _three(fake_registry)
    fake_registry.delete_enabled = False
    report = decommission(fake_registry.repository, keep=[new], dry_run=False)
    assert len(report.failures) == 2 and report.deleted == ()
    assert all("storage.delete.enabled" in f.error for f in report.failures)


def test_missing_repository_is_a_clear_error(fake_registry: FakeRegistry) -> None:
    with pytest.raises(
        RepositoryNotFoundError, match=r"127\.0\.0\.1:\d+/acme/other: repository not found.*NAME_UNKNOWN"
    ):
        decommission(f"127.0.0.1:{fake_registry.port}/acme/other", keep=1, dry_run=False)


def test_tags_are_paged(fake_registry: FakeRegistry) -> None:
    digests = [fake_registry.push(f"2026-01-0{i}T00:00:00Z", f"t{i}") for i in range(1, 6)]
    report = decommission(fake_registry.repository, keep=[digests[0]], dry_run=True)
    assert len(report.deleted) == 4
    pages = [p for method, p, _ in fake_registry.requests if p.endswith("/tags/list")]
    assert len(pages) == 3


def test_basic_auth(fake_registry: FakeRegistry) -> None:
    _, _, new = _three(fake_registry)
    fake_registry.auth = "basic"
    report = decommission(fake_registry.repository, keep=[new], dry_run=False, username="ci", password="pw-123")
    assert report.ok and len(report.deleted) == 2


@pytest.mark.parametrize("mode", ["basic", "bearer"])
def test_refused_credentials_raise_without_leaking_them(fake_registry: FakeRegistry, mode: str) -> None:
    _three(fake_registry)
    fake_registry.auth = mode
    with pytest.raises(RegistryAuthError) as err:
        decommission(fake_registry.repository, keep=1, dry_run=False, username="ci", password="wrong-pw-9")
    assert "401" in str(err.value) and "wrong-pw-9" not in str(err.value)
    with pytest.raises(RegistryAuthError, match="without credentials"):
        decommission(fake_registry.repository, keep=1, dry_run=False)
    assert len(fake_registry.manifests) == 3


def test_bearer_token_auth(fake_registry: FakeRegistry) -> None:
    _, _, new = _three(fake_registry)
    fake_registry.auth = "bearer"
    report = decommission(fake_registry.repository, keep=[new], dry_run=False, username="ci", password="pw-123")
    assert report.ok and len(report.deleted) == 2
    assert fake_registry.token_scopes == [f"repository:{NAME}:pull,delete"]
    deletes = [h for method, _, h in fake_registry.requests if method == "DELETE"]
    assert deletes and all(h["Authorization"] == "Bearer good-token" for h in deletes)


# ---- ECR (moto) ---------------------------------------------------------------------------------------


ECR_REPO = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello"


@pytest.fixture
def ecr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        client = boto3.client("ecr", region_name="eu-west-1")
        client.create_repository(repositoryName="hello")
        yield client


def _put(client: Any, n: int, *tags: str) -> str:
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "n": n, "layers": []})
    digest = _sha(manifest.encode())
    for tag in tags:
        client.put_image(repositoryName="hello", imageManifest=manifest, imageTag=tag, imageDigest=digest)
    return digest


def _ecr_state(client: Any) -> dict[str, set[str]]:
    state: dict[str, set[str]] = {}
    for detail in client.describe_images(repositoryName="hello")["imageDetails"]:
        state.setdefault(detail["imageDigest"], set()).update(detail.get("imageTags", []))
    return state


def test_ecr_decommission_keeps_the_production_digest(ecr: Any) -> None:
    d1 = _put(ecr, 1, "aaaaaaa")
    d2 = _put(ecr, 2, "bbbbbbb", "1.0.0")
    d3 = _put(ecr, 3, "ccccccc")
    report = decommission(ECR_REPO, keep=keep_last([d1, d2], 1), dry_run=False, ecr_client=ecr)
    assert report.ok and report.registry == "ecr"
    assert [(m.digest, m.tags) for m in report.kept] == [(d2, ("1.0.0", "bbbbbbb"))]
    assert {m.digest for m in report.deleted} == {d1, d3}
    assert _ecr_state(ecr) == {d2: {"1.0.0", "bbbbbbb"}}


def test_ecr_dry_run_deletes_nothing(ecr: Any) -> None:
    d1, d2 = _put(ecr, 1, "aaaaaaa"), _put(ecr, 2, "bbbbbbb")
    report = decommission(ECR_REPO, keep=[d2], dry_run=True, ecr_client=ecr)
    assert [m.digest for m in report.deleted] == [d1]
    assert set(_ecr_state(ecr)) == {d1, d2}


def test_ecr_keep_count_uses_push_time(ecr: Any) -> None:
    d1, d2 = _put(ecr, 1, "aaaaaaa"), _put(ecr, 2, "bbbbbbb")
    report = decommission(ECR_REPO, keep=1, dry_run=True, ecr_client=ecr)
    # moto stamps both with the same second; ties keep listing order, so check the rule, not the pick.
    assert len(report.kept) == 1 and len(report.deleted) == 1
    assert {report.kept[0].digest, report.deleted[0].digest} == {d1, d2}
    assert report.kept[0].created is not None


def test_ecr_missing_repository(ecr: Any) -> None:
    with pytest.raises(RepositoryNotFoundError, match="repository nope not found in ECR account 123456789012"):
        decommission(ECR_REPO.replace("/hello", "/nope"), keep=1, dry_run=False, ecr_client=ecr)


class _FailingEcr:
    """Forwards to moto, but ECR refuses one digest (as it does for, e.g., an image in use)."""

    def __init__(self, client: Any, refuse: str) -> None:
        self._client, self._refuse = client, refuse

    def get_paginator(self, name: str) -> Any:
        return self._client.get_paginator(name)

    def batch_delete_image(self, **kw: Any) -> dict[str, Any]:
        ids = [i for i in kw["imageIds"] if i["imageDigest"] != self._refuse]
        response = dict(self._client.batch_delete_image(**{**kw, "imageIds": ids}))
        response["failures"] = [
            {"imageId": {"imageDigest": self._refuse}, "failureCode": "ImageReferencedByManifestList",
             "failureReason": "referenced by an index"},
        ]  # fmt: skip
        return response


def test_ecr_partial_failure_is_reported(ecr: Any) -> None:
    d1, d2, d3 = _put(ecr, 1, "a1"), _put(ecr, 2, "b2"), _put(ecr, 3, "c3")
    client = EcrRegistryClient(ECR_REPO, client=_FailingEcr(ecr, d1))  # type: ignore[arg-type]
    report = decommission(ECR_REPO, keep=[d3], dry_run=False, client=client)
    assert not report.ok
    assert [(f.digest, f.tags) for f in report.failures] == [(d1, ("a1",))]
    assert "ImageReferencedByManifestList" in report.failures[0].error
    assert [m.digest for m in report.deleted] == [d2]
    assert set(_ecr_state(ecr)) == {d1, d3}


def test_ecr_access_denied_is_an_auth_error() -> None:
    from botocore.stub import Stubber

    client = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_client_error("describe_images", service_error_code="AccessDeniedException", http_status_code=403)
        with pytest.raises(RegistryAuthError, match="AWS refused to list images: AccessDeniedException"):
            decommission(ECR_REPO, keep=1, dry_run=False, ecr_client=client)


def test_report_type_is_what_decommission_returns(fake_registry: FakeRegistry) -> None:
    report = decommission(fake_registry.repository, keep=1, dry_run=True)
    assert isinstance(report, DecommissionReport) and report.deleted == () and report.kept == ()
    assert Manifest("sha256:" + "0" * 64).tags == ()

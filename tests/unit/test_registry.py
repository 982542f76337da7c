"""Registry decommission: the OCI Distribution client against an in-process fake registry (real HTTP),
the ECR client against moto, retention, dry run, auth and partial failures."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from fake_registry import NAME, OCI_INDEX, OCI_MANIFEST, FakeRegistry, sha
from moto import mock_aws

from components.registry import (
    MANIFEST_MEDIA_TYPES,
    DecommissionReport,
    DockerHubClient,
    EcrRegistryClient,
    Failure,
    Manifest,
    OciRegistryClient,
    RegistryAuthError,
    RegistryError,
    RegistryUnsupportedError,
    RepositoryNotFoundError,
    client_for,
    decommission,
    keep_last,
    normalize_digest,
    normalize_repository,
)
from components.registry.ghcr import GhcrRegistryClient
from components.registry.http import Http, body_json, parse_time, retry_after
from components.registry.model import delete_each, index_children


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
    assert list(data) == ["repository", "registry", "dry_run", "retention", "ok", "deleted", "kept", "failures",
                          "keep_not_found"]  # fmt: skip
    assert data["registry"] == "oci" and data["retention"] == "keep 2 listed digest(s)"
    assert data["kept"] == [{"digest": new, "tags": ["1.1.0", "ccccccc", "latest"], "created": None, "children": []}]
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
    digest = sha(manifest.encode())
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


# ---- ECR image indexes (moto) --------------------------------------------------------------------------

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def _put_raw(client: Any, manifest: str, media_type: str, tag: str | None = None) -> str:
    """PutImage as a pushing client sends it: the manifest's own bytes, its media type, its digest.

    moto (5.x ``moto/ecr/models.py``, ``Image._create_digest``) does not hash the manifest the way ECR does
    (an index, having no layers, gets a random digest from 101 values), so the real digest is passed."""
    digest = sha(manifest.encode())
    extra = {"imageTag": tag} if tag else {}
    client.put_image(
        repositoryName="hello", imageManifest=manifest, imageManifestMediaType=media_type, imageDigest=digest, **extra
    )
    return digest


def _put_platform(client: Any, n: int, arch: str, media_type: str = OCI_MANIFEST) -> str:
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(f"config {n} {arch}".encode()),
              "size": 100 + n}  # fmt: skip
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(f"layer {n} {arch}".encode()),
             "size": 1000 + n}  # fmt: skip
    manifest = json.dumps({"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": [layer]})
    return _put_raw(client, manifest, media_type)  # untagged, as buildx pushes the platforms of an index


def _put_index(client: Any, n: int, tag: str, media_type: str = OCI_INDEX) -> tuple[str, str, str]:
    """An index (OCI image index or Docker manifest list) over two untagged platforms: (index, amd64, arm64)."""
    child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    amd, arm = _put_platform(client, n, "amd64", child_type), _put_platform(client, n, "arm64", child_type)
    manifests = [
        {"mediaType": child_type, "digest": d, "size": 400, "platform": {"architecture": a, "os": "linux"}}
        for d, a in ((amd, "amd64"), (arm, "arm64"))
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": manifests})
    return _put_raw(client, index, media_type, tag), amd, arm


class _RecordingEcr:
    """Forwards to moto and records the calls; optionally hides ``imageManifestMediaType`` from
    DescribeImages (a field the API may leave out) and refuses, as ECR does, to delete an image that an
    index still in the repository lists (``ImageReferencedByManifestList``, botocore ``ImageFailureCode``;
    moto 5.x ``batch_delete_image`` deletes it)."""

    def __init__(self, client: Any, *, hide_media_type: bool = False, refuse_referenced: bool = False) -> None:
        self._client = client
        self.hide_media_type, self.refuse_referenced = hide_media_type, refuse_referenced
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_paginator(self, name: str) -> Any:
        outer = self

        class Paginator:
            def paginate(self, **kw: Any) -> Iterator[dict[str, Any]]:
                outer.calls.append((name, kw))
                for page in outer._client.get_paginator(name).paginate(**kw):
                    if outer.hide_media_type:
                        for detail in page["imageDetails"]:
                            detail.pop("imageManifestMediaType", None)
                    yield page

        return Paginator()

    def batch_get_image(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("batch_get_image", kw))
        return dict(self._client.batch_get_image(**kw))

    def batch_delete_image(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("batch_delete_image", kw))
        if not self.refuse_referenced:
            return dict(self._client.batch_delete_image(**kw))
        asked = {i["imageDigest"] for i in kw["imageIds"]}
        referenced: set[str] = set()
        for digest in set(_ecr_state(self._client)) - asked:
            answer = self._client.batch_get_image(repositoryName="hello", imageIds=[{"imageDigest": digest}])
            image = answer["images"][0]
            referenced |= {m["digest"] for m in json.loads(image["imageManifest"]).get("manifests", [])}
        refused = asked & referenced
        ids = [i for i in kw["imageIds"] if i["imageDigest"] not in refused]
        response = dict(self._client.batch_delete_image(**{**kw, "imageIds": ids})) if ids else {"failures": []}
        response["failures"] = [*response.get("failures", []), *(
            {"imageId": {"imageDigest": d}, "failureCode": "ImageReferencedByManifestList",
             "failureReason": "Requested image is referenced by a manifest list"} for d in sorted(refused)
        )]  # fmt: skip
        return response


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST], ids=["oci_index", "docker_manifest_list"])
def test_ecr_a_kept_index_keeps_its_platforms_and_an_old_one_goes_with_them(ecr: Any, media_type: str) -> None:
    """ECR lists an index and its platforms as separate images (the platforms untagged) and reports each one's
    ``imageManifestMediaType`` (botocore ``data/ecr/2015-09-21/service-2.json``, ``ImageDetail``; moto 5.x records
    it from PutImage and returns it). The kept index keeps both platforms; the unretained index, its
    platforms and a lone image go."""
    old, old_amd, old_arm = _put_index(ecr, 1, "1.0.0", media_type)
    lone = _put(ecr, 7, "scratch")
    new, amd, arm = _put_index(ecr, 2, "1.1.0", media_type)
    report = decommission(ECR_REPO, keep=[new], dry_run=False, ecr_client=ecr)
    assert report.ok
    assert {m.digest for m in report.kept} == {new, amd, arm}
    assert {m.digest for m in report.deleted} == {old, old_amd, old_arm, lone}
    assert set(_ecr_state(ecr)) == {new, amd, arm}
    assert next(m for m in report.kept if m.digest == new).children == (amd, arm)


def test_ecr_keep_count_counts_an_index_as_one_image(ecr: Any) -> None:
    """Without index detection ``keep=1`` would keep one of three "images" (moto stamps them in the same second)
    and delete a platform production pulls."""
    index, amd, arm = _put_index(ecr, 1, "1.0.0")
    report = decommission(ECR_REPO, keep=1, dry_run=False, ecr_client=ecr)
    assert report.ok and report.deleted == ()
    assert {m.digest for m in report.kept} == {index, amd, arm}
    assert set(_ecr_state(ecr)) == {index, amd, arm}


def test_ecr_reads_manifests_of_indexes_and_of_unknown_types_only(ecr: Any) -> None:
    """BatchGetImage (botocore ``BatchGetImageRequest``) is asked for indexes only, naming every manifest media
    type in ``acceptedMediaTypes``, the index types too, as awslabs/amazon-ecr-containerd-resolver does (pull
    request 13, ``ecr/resolver.go``). moto 5.x ignores that parameter (``batch_get_image``): what ECR answers
    for these types is not checked here. When DescribeImages leaves ``imageManifestMediaType`` out, every
    image is read and its type comes from BatchGetImage's ``imageManifestMediaType`` or the manifest's
    ``mediaType`` (as the same resolver's ``parseImageManifestMediaType`` does)."""
    index, amd, arm = _put_index(ecr, 1, "1.0.0")
    lone = _put(ecr, 7, "scratch")
    spy = _RecordingEcr(ecr)
    listed = EcrRegistryClient(ECR_REPO, client=spy).list_manifests(need_dates=False)  # type: ignore[arg-type]
    assert {m.digest: m.children for m in listed} == {index: (amd, arm), amd: (), arm: (), lone: ()}
    reads = [kw for name, kw in spy.calls if name == "batch_get_image"]
    assert [[i["imageDigest"] for i in kw["imageIds"]] for kw in reads] == [[index]]
    assert reads[0]["acceptedMediaTypes"] == list(MANIFEST_MEDIA_TYPES)
    assert reads[0]["registryId"] == "123456789012" and reads[0]["repositoryName"] == "hello"

    blind = _RecordingEcr(ecr, hide_media_type=True)
    listed = EcrRegistryClient(ECR_REPO, client=blind).list_manifests(need_dates=False)  # type: ignore[arg-type]
    assert {m.digest: m.children for m in listed} == {index: (amd, arm), amd: (), arm: (), lone: ()}
    read = {i["imageDigest"] for name, kw in blind.calls if name == "batch_get_image" for i in kw["imageIds"]}
    assert read == {index, amd, arm, lone}


def test_ecr_deletes_an_index_in_a_call_before_its_platforms(ecr: Any) -> None:
    """ECR refuses to delete an image a manifest list still references (``ImageReferencedByManifestList``);
    the emulation refuses it likewise, so the index must go in an earlier BatchDeleteImage call."""
    old, old_amd, old_arm = _put_index(ecr, 1, "1.0.0")
    new, _, _ = _put_index(ecr, 2, "1.1.0")
    spy = _RecordingEcr(ecr, refuse_referenced=True)
    report = decommission(ECR_REPO, keep=[new], dry_run=False, client=EcrRegistryClient(ECR_REPO, client=spy))  # type: ignore[arg-type]
    assert report.ok, report.failures
    deletes = [[i["imageDigest"] for i in kw["imageIds"]] for name, kw in spy.calls if name == "batch_delete_image"]
    assert deletes == [[old], [old_amd, old_arm]]
    assert {m.digest for m in report.deleted} == {old, old_amd, old_arm}


def test_ecr_emulated_refusal_fires_when_an_index_and_its_platforms_share_a_call(ecr: Any) -> None:
    """The emulated ``ImageReferencedByManifestList`` refusal fires: a platform whose index stays in the
    repository is refused and stays (the guard the wave order is tested against)."""
    index, amd, _ = _put_index(ecr, 1, "1.0.0")
    spy = _RecordingEcr(ecr, refuse_referenced=True)
    response = spy.batch_delete_image(repositoryName="hello", imageIds=[{"imageDigest": amd}])
    assert [f["failureCode"] for f in response["failures"]] == ["ImageReferencedByManifestList"]
    assert amd in _ecr_state(ecr) and index in _ecr_state(ecr)


def test_ecr_nested_indexes_are_deleted_outside_in() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    outer, inner, leaf = Manifest(a, children=(b,)), Manifest(b, children=(c,)), Manifest(c)
    calls: list[list[str]] = []

    class Ecr:
        def batch_delete_image(self, **kw: Any) -> dict[str, Any]:
            calls.append([i["imageDigest"] for i in kw["imageIds"]])
            return {"failures": []}

    assert EcrRegistryClient(ECR_REPO, client=Ecr()).delete([leaf, inner, outer]) == []  # type: ignore[arg-type]
    assert calls == [[a], [b], [c]]


def _unread(digest: str) -> dict[str, Any]:
    return {"images": [], "failures": [{"imageId": {"imageDigest": digest}, "failureCode": "ImageNotFound",
                                        "failureReason": "Requested image not found"}]}  # fmt: skip


def _served(digest: str, manifest: str) -> dict[str, Any]:
    return {"images": [{"imageId": {"imageDigest": digest}, "imageManifest": manifest}], "failures": []}


@pytest.mark.parametrize(("answer", "message"), [
    (_unread, "could not read manifest {}: ImageNotFound: Requested image not found"),
    (lambda d: {"images": [], "failures": []}, "could not read manifest {}: ECR did not return it"),
    (lambda d: _served(d, "<html>"), "manifest {} is not a JSON object"),
    (lambda d: _served(d, json.dumps({"mediaType": OCI_INDEX})), "index {}: 'manifests' is not a list of descriptors"),
], ids=["failure", "missing", "not_json", "index_without_manifests"])  # fmt: skip
def test_ecr_an_unreadable_index_stops_before_anything_is_deleted(ecr: Any, answer: Any, message: str) -> None:
    """Platforms of an index that cannot be read could be deleted from under it: the run stops first."""
    index, _, _ = _put_index(ecr, 1, "1.0.0")
    _put(ecr, 7, "scratch")
    spy = _RecordingEcr(ecr)
    spy.batch_get_image = lambda **kw: answer(index)  # type: ignore[method-assign]
    with pytest.raises(RegistryError, match=re.escape(message.format(index))):
        decommission(ECR_REPO, keep=1, dry_run=False, client=EcrRegistryClient(ECR_REPO, client=spy))  # type: ignore[arg-type]
    assert not [c for c, _ in spy.calls if c == "batch_delete_image"]
    assert len(_ecr_state(ecr)) == 4


def test_ecr_a_refused_manifest_read_is_an_auth_error() -> None:
    from botocore.stub import Stubber

    client = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    digest = "sha256:" + "d" * 64
    with Stubber(client) as stub:
        stub.add_response("describe_images", {"imageDetails": [
            {"imageDigest": digest, "imageTags": ["v1"], "imageManifestMediaType": OCI_INDEX}]})  # fmt: skip
        stub.add_client_error("batch_get_image", service_error_code="AccessDeniedException", http_status_code=403)
        with pytest.raises(RegistryAuthError, match="AWS refused to read image manifests: AccessDeniedException"):
            decommission(ECR_REPO, keep=1, dry_run=False, ecr_client=client)


def test_report_type_is_what_decommission_returns(fake_registry: FakeRegistry) -> None:
    report = decommission(fake_registry.repository, keep=1, dry_run=True)
    assert isinstance(report, DecommissionReport) and report.deleted == () and report.kept == ()
    assert Manifest("sha256:" + "0" * 64).tags == ()


# ---- hostile and flaky registries (issue 12) -------------------------------------------------------------


def _client(reg: FakeRegistry, sleeps: list[float] | None = None, **kw: Any) -> OciRegistryClient:
    waits = sleeps if sleeps is not None else []
    return OciRegistryClient(reg.repository, http=Http(label=reg.repository, sleep=waits.append), **kw)


def test_self_referencing_pagination_is_an_error_not_a_loop(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.link_loop = True
    with pytest.raises(RegistryError, match=r"pagination loops \(next page http://127\.0\.0\.1:\d+/v2/acme/hello"):
        decommission(fake_registry.repository, keep=1, dry_run=False)
    assert len([p for m, p, _ in fake_registry.requests if p.endswith("/tags/list")]) == 1
    assert len(fake_registry.manifests) == 3


def test_pagination_has_a_bound() -> None:
    http = Http(label="r")
    responses = iter(range(10))

    def fetch(url: str) -> requests.Response:
        response = requests.Response()
        response.url, response.status_code = url, 200
        response.headers["Link"] = f'<{url}x>; rel="next"'  # a new page every time
        next(responses)
        return response

    with pytest.raises(RegistryError, match="r: more than 3 pages; refusing to go on listing"):
        list(http.pages("http://h/p", fetch, max_pages=3))


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (
            b"<html><body>502 Bad Gateway</body></html>",
            "text/html",
            r"list tags: the answer is not JSON \(text/html, 41 bytes\)",
        ),
        (b'["a", "b"]', "application/json", "list tags: expected a JSON dict, got list"),
        (b'{"tags": "latest"}', "application/json", "list tags: 'tags' is not a list of names"),
        (b'{"tags": [1, 2]}', "application/json", "list tags: 'tags' is not a list of names"),
    ],
    ids=["html", "json_list", "tags_string", "tags_numbers"],
)
def test_an_unexpected_tag_list_body_is_a_registry_error(
    fake_registry: FakeRegistry, body: bytes, content_type: str, message: str
) -> None:
    _three(fake_registry)
    fake_registry.faults = [("GET", "/tags/list", 200, {"Content-Type": content_type}, body)]
    with pytest.raises(RegistryError, match=f"^{re.escape(fake_registry.repository)}: {message}"):
        decommission(fake_registry.repository, keep=1, dry_run=False)
    assert len(fake_registry.manifests) == 3


def test_an_unexpected_manifest_or_config_body_is_a_registry_error(fake_registry: FakeRegistry) -> None:
    old, _, _ = _three(fake_registry)
    fake_registry.faults = [("GET", f"/manifests/{old}", 200, {}, b"<html>")]
    with pytest.raises(RegistryError, match=f"read manifest {old}: the answer is not JSON"):
        decommission(fake_registry.repository, keep=1, dry_run=True)
    fake_registry.faults = [("GET", "/blobs/", 200, {}, b"[]")]
    with pytest.raises(RegistryError, match=r"read config sha256:[0-9a-f]{64}: expected a JSON dict, got list"):
        decommission(fake_registry.repository, keep=1, dry_run=True)
    fake_registry.faults = [("GET", f"/manifests/{old}", 200, {}, b'{"manifests": {"digest": "x"}}')]
    with pytest.raises(RegistryError, match=f"index {old}: 'manifests' is not a list of descriptors"):
        decommission(fake_registry.repository, keep=1, dry_run=True)


def test_429_is_retried_after_the_time_the_registry_asks(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    fake_registry.faults = [
        ("GET", "/tags/list", 429, {"Retry-After": "2"}, b""),
        ("HEAD", "/manifests/", 503, {"Retry-After": "0"}, b""),
        ("DELETE", f"/manifests/{old}", 429, {}, b""),
    ]
    sleeps: list[float] = []
    report = decommission(fake_registry.repository, keep=[new], dry_run=False, client=_client(fake_registry, sleeps))
    assert report.ok and {m.digest for m in report.deleted} == {old, mid}
    assert sleeps == [2.0, 0.0, 1.0]  # Retry-After, then the default second when the header is missing
    assert set(fake_registry.manifests) == {new}


def test_retry_after_as_an_http_date() -> None:
    response = requests.Response()
    response.headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:05 GMT"
    assert retry_after(response, now=lambda: 1445412480.0) == 5.0
    assert retry_after(response, now=lambda: 1445412490.0) == 0.0
    response.headers["Retry-After"] = "soon"
    assert retry_after(response) == 1.0


def test_a_retry_after_beyond_the_cap_stops_with_a_clear_error(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.faults = [("GET", "/tags/list", 429, {"Retry-After": "31"}, b"")]
    sleeps: list[float] = []
    with pytest.raises(RegistryError, match=r"GET http://127\.0\.0\.1:\d+/v2/acme/hello/tags/list answered 429 with "
                       r"Retry-After 31s, more than the 30s this client waits; run again later"):  # fmt: skip
        decommission(fake_registry.repository, keep=1, dry_run=False, client=_client(fake_registry, sleeps))
    assert sleeps == []


def test_retries_are_capped(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.faults = [("GET", "/tags/list", 503, {"Retry-After": "1"}, b"")] * 4
    sleeps: list[float] = []
    with pytest.raises(RegistryError, match="still answered 503 after 4 attempts; run again later"):
        decommission(fake_registry.repository, keep=1, dry_run=False, client=_client(fake_registry, sleeps))
    assert sleeps == [1.0, 1.0, 1.0]


def test_a_404_on_delete_means_already_deleted(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    # Someone else deletes `old` between the listing and our DELETE.
    fake_registry.faults = [("DELETE", f"/manifests/{old}", 404, {}, b'{"errors": [{"code": "MANIFEST_UNKNOWN"}]}')]
    del fake_registry.manifests[old]
    for tag in ("aaaaaaa", "1.0.0"):
        del fake_registry.tags[tag]
    client = _client(fake_registry)
    manifests = [Manifest(old, ("1.0.0",)), Manifest(mid, ("bbbbbbb",))]
    assert client.delete(manifests) == []
    assert set(fake_registry.manifests) == {new}


def test_a_lost_delete_answer_is_reconciled_by_the_final_listing(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    fake_registry.lose_delete_answer = {old}
    report = decommission(fake_registry.repository, keep=[new], dry_run=False)
    assert report.ok, report.to_json_text()
    assert {m.digest for m in report.deleted} == {old, mid}
    assert set(fake_registry.manifests) == {new}


def test_an_accepted_delete_that_did_nothing_is_a_failure(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    fake_registry.keep_after_delete = {mid}
    report = decommission(fake_registry.repository, keep=[new], dry_run=False)
    assert [(f.digest, f.error) for f in report.failures] == [
        (mid, "still listed after the registry accepted its DELETE")
    ]
    assert [m.digest for m in report.deleted] == [old]


def test_a_failed_final_listing_leaves_deletions_unconfirmed(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    client = _client(fake_registry)
    original = client.list_manifests
    calls = []

    def listing(*, need_dates: bool) -> list[Manifest]:
        calls.append(need_dates)
        if len(calls) == 2:
            raise RegistryError("boom")
        return original(need_dates=need_dates)

    client.list_manifests = listing  # type: ignore[method-assign]
    report = decommission(fake_registry.repository, keep=[new], dry_run=False, client=client)
    assert not report.ok and {f.digest for f in report.failures} == {old, mid}
    assert all(f.error == "not confirmed: the final listing failed: boom" for f in report.failures)
    assert len(report.failures) == 2 and report.deleted == ()


def test_a_repository_emptied_by_the_decommission_counts_as_all_deleted(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    report = decommission(fake_registry.repository, keep=0, dry_run=False)
    assert report.ok and {m.digest for m in report.deleted} == {old, mid, new} and report.kept == ()
    assert report.retention == "keep 0 newest" and fake_registry.manifests == {}


def test_resolve_hashes_the_manifest_when_the_registry_sends_no_digest(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    fake_registry.head_digest = False
    report = decommission(fake_registry.repository, keep=[mid], dry_run=True)
    assert {m.digest for m in report.deleted} == {old, new} and [m.digest for m in report.kept] == [mid]
    gets = [p for m, p, _ in fake_registry.requests if m == "GET" and "/manifests/" in p and "sha256" not in p]
    assert len(gets) == 6  # one GET per tag after the HEAD gave no digest


def test_resolve_uses_the_get_digest_header_when_head_has_none(fake_registry: FakeRegistry) -> None:
    mid = _three(fake_registry)[1]
    fake_registry.faults = [("HEAD", "/manifests/bbbbbbb", 200, {}, b"")]
    assert _client(fake_registry).resolve("bbbbbbb") == mid
    fake_registry.faults = [("HEAD", "/manifests/bbbbbbb", 404, {}, b"")]
    assert _client(fake_registry).resolve("bbbbbbb") == mid
    fake_registry.faults = [("HEAD", "/manifests/x", 404, {}, b""), ("GET", "/manifests/x", 404, {}, b"")]
    with pytest.raises(RegistryError, match="resolve x answered HTTP 404"):
        _client(fake_registry).resolve("x")


def test_keeping_an_index_keeps_its_platforms_and_counts_as_one_image(fake_registry: FakeRegistry) -> None:
    amd = fake_registry.push("2026-01-01T00:00:00Z", "v1-amd64")
    arm = fake_registry.push("2026-01-01T00:00:01Z", "v1-arm64")
    index = fake_registry.push_index("v1", children=(amd, arm))
    lone = fake_registry.push("2025-12-01T00:00:00Z", "v0")
    report = decommission(fake_registry.repository, keep=[index], dry_run=True)
    assert {m.digest for m in report.kept} == {index, amd, arm}
    assert [m.digest for m in report.deleted] == [lone]
    assert next(m for m in report.kept if m.digest == index).children == (amd, arm)
    # keep=1 keeps the newest image: the index (and its platforms), not an index and one platform.
    report = decommission(fake_registry.repository, keep=1, dry_run=True)
    assert {m.digest for m in report.kept} == {index, amd, arm}
    assert json.loads(report.to_json_text())["kept"][0]["children"] in ([], [amd, arm])


def test_deleting_an_index_deletes_it_before_its_platforms(fake_registry: FakeRegistry) -> None:
    amd = fake_registry.push("2026-01-01T00:00:00Z", "v1-amd64")
    index = fake_registry.push_index("v1", children=(amd,), media_type=MANIFEST_MEDIA_TYPES[2])
    new = fake_registry.push("2026-02-01T00:00:00Z", "v2")
    report = decommission(fake_registry.repository, keep=[new], dry_run=False)
    assert report.ok and [m.digest for m in report.deleted] == [index, amd]
    deletes = [p.rsplit("/", 1)[-1] for m, p, _ in fake_registry.requests if m == "DELETE"]
    assert deletes == [index, amd]


def test_a_platform_production_ran_is_kept_even_without_its_index(fake_registry: FakeRegistry) -> None:
    amd = fake_registry.push("2026-01-01T00:00:00Z", "v1-amd64")
    index = fake_registry.push_index("v1", children=(amd,))
    report = decommission(fake_registry.repository, keep=[amd], dry_run=True)
    assert [m.digest for m in report.kept] == [amd] and [m.digest for m in report.deleted] == [index]


def test_a_non_bearer_challenge_is_an_auth_error(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.auth, fake_registry.challenge = "basic", 'Digest realm="fake"'
    with pytest.raises(
        RegistryAuthError, match=r"GET /v2/acme/hello/tags/list was refused \(401\) without credentials"
    ):
        decommission(fake_registry.repository, keep=1, dry_run=True)
    assert not [p for _, p, _ in fake_registry.requests if p == "/token"]


def test_the_token_request_carries_service_and_scope(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.auth = "bearer"
    decommission(fake_registry.repository, keep=1, dry_run=True, username="ci", password="pw-123")
    assert fake_registry.token_queries[0] == {"service": ["fake"], "scope": [f"repository:{NAME}:pull,delete"]}


@pytest.mark.parametrize(("status", "error", "message"), [
    (403, RegistryAuthError, r"token service http://127\.0\.0\.1:\d+/token refused the given credentials \(403\)"),
    (500, RegistryError, r"token service http://127\.0\.0\.1:\d+/token answered 500"),
], ids=["refused", "broken"])  # fmt: skip
def test_a_token_service_failure_is_reported(
    fake_registry: FakeRegistry, status: int, error: type[Exception], message: str
) -> None:
    _three(fake_registry)
    fake_registry.auth, fake_registry.token_status = "bearer", status
    with pytest.raises(error, match=message):
        decommission(fake_registry.repository, keep=1, dry_run=True, username="ci", password="pw-123")


@pytest.mark.parametrize(("body", "message"), [
    (b"<html>", "token service .*: the answer is not JSON"),
    (b'{"token": ""}', "token service .* returned no token"),
    (b'{"access_token": 5}', "token service .* returned no token"),
], ids=["html", "empty", "number"])  # fmt: skip
def test_a_token_service_without_a_token_is_an_error(fake_registry: FakeRegistry, body: bytes, message: str) -> None:
    _three(fake_registry)
    fake_registry.auth = "bearer"
    fake_registry.faults = [("GET", "/token", 200, {}, body)]
    with pytest.raises(RegistryError, match=message):
        decommission(fake_registry.repository, keep=1, dry_run=True, username="ci", password="pw-123")


def test_access_token_is_accepted(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.auth = "bearer"
    fake_registry.faults = [("GET", "/token", 200, {}, b'{"access_token": "good-token"}')]
    report = decommission(fake_registry.repository, keep=1, dry_run=True, username="ci", password="pw-123")
    assert len(report.kept) == 1


def test_a_bearer_challenge_without_realm_is_an_auth_error(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.faults = [("GET", "/tags/list", 401, {"WWW-Authenticate": 'Bearer service="x"'}, b"")]
    with pytest.raises(RegistryAuthError, match="bearer challenge without a realm: 'Bearer service=\"x\"'"):
        decommission(fake_registry.repository, keep=1, dry_run=True)


@pytest.mark.parametrize(("repository", "base"), [
    ("127.0.0.1:5000/a/b", "http://127.0.0.1:5000"),
    ("localhost:5000/a/b", "http://localhost:5000"),
    ("registry.example.com/a/b", "https://registry.example.com"),
    ("10.0.0.5:5000/a/b", "https://10.0.0.5:5000"),
], ids=["loopback", "localhost", "remote", "private_ip"])  # fmt: skip
def test_https_for_every_registry_but_loopback(repository: str, base: str) -> None:
    assert OciRegistryClient(repository).base == base


@pytest.mark.parametrize(("given", "normal"), [
    ("GHCR.io/example-org/hello", "ghcr.io/example-org/hello"),
    ("ghcr.io/Example-Org/hello/", "ghcr.io/example-org/hello"),
    ("https://ghcr.io/example-org/hello", "ghcr.io/example-org/hello"),
    ("nginx", "docker.io/library/nginx"),
    ("index.docker.io/nginx", "docker.io/library/nginx"),
    ("docker.io/library/nginx", "docker.io/library/nginx"),
    ("registry-1.docker.io/acme/app", "docker.io/acme/app"),
    ("acme/app", "docker.io/acme/app"),
    ("localhost/app", "localhost/app"),
    ("127.0.0.1:5000//a//b", "127.0.0.1:5000/a/b"),
], ids=["host_case", "owner_case_slash", "scheme", "bare", "index", "library", "registry1", "hub_user",
        "localhost", "double_slash"])  # fmt: skip
def test_repository_identity_is_normalised(given: str, normal: str) -> None:
    assert normalize_repository(given) == normal


@pytest.mark.parametrize("bad", ["", "/", "ghcr.io/acme/hello:1.0", "ghcr.io/acme/hello@sha256:" + "a" * 64,
                                 "ghcr.io/a b"], ids=["empty", "slash", "tag", "digest", "space"])  # fmt: skip
def test_a_repository_with_a_tag_or_nothing_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="repository"):
        normalize_repository(bad)


@pytest.mark.parametrize("repository", ["docker.io/acme/hello", "acme/hello", "index.docker.io/acme/hello"],
                         ids=["docker_io", "implicit", "index"])  # fmt: skip
def test_docker_hub_deletion_is_refused_with_what_to_do(repository: str) -> None:
    with pytest.raises(RegistryUnsupportedError) as err:
        decommission(repository, keep=1, dry_run=False, session=_NoNetwork())
    text = str(err.value)
    assert text.startswith("docker.io/acme/hello: Docker Hub deletes images only through its own Hub API")
    assert "nothing was deleted" in text and "hub-tool" in text and "GHCR, ECR" in text


def test_docker_hub_client_lists_through_the_registry_api_and_never_deletes() -> None:
    client = client_for("acme/hello", session=_NoNetwork())
    assert isinstance(client, DockerHubClient) and client.kind == "dockerhub"
    assert client.base == "https://registry-1.docker.io" and client.name == "acme/hello"
    with pytest.raises(RegistryUnsupportedError, match="Docker Hub"):
        client.delete([Manifest("sha256:" + "a" * 64)])


def test_backends_are_chosen_by_normalised_host() -> None:
    assert isinstance(client_for("GHCR.io/Acme/hello", password="t", session=_NoNetwork()), GhcrRegistryClient)
    assert isinstance(client_for(ECR_REPO), EcrRegistryClient)
    assert type(client_for("registry.example.com/a/b")) is OciRegistryClient


class _NoNetwork(requests.Session):
    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        raise AssertionError(f"no request expected: {args}")


def test_a_connection_failure_on_delete_is_a_failure_not_a_crash(fake_registry: FakeRegistry) -> None:
    old, _, _ = _three(fake_registry)
    client = OciRegistryClient(f"127.0.0.1:1/{NAME}", http=Http(label="x", sleep=lambda s: None, timeout=0.5))
    failures = client.delete([Manifest(old, ("1.0.0",))])
    assert len(failures) == 1 and failures[0].error.startswith("x: DELETE http://127.0.0.1:1/v2/acme/hello/manifests/")
    assert failures[0].error.endswith("failed: ConnectionError")


def test_reads_are_retried_after_a_connection_failure() -> None:
    calls = []

    class Flaky(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            calls.append(method)
            if len(calls) < 3:
                raise requests.ConnectionError("reset")
            response = requests.Response()
            response.status_code = 200
            return response

    sleeps: list[float] = []
    assert Http(label="x", session=Flaky(), sleep=sleeps.append).send("GET", "http://h/").status_code == 200
    assert calls == ["GET"] * 3 and sleeps == [1.0, 1.0]
    calls.clear()
    with pytest.raises(RegistryError, match=r"^x: DELETE http://h/ failed: ConnectionError$"):
        Http(label="x", session=Flaky(), sleep=sleeps.append).send("DELETE", "http://h/?secret=1")
    assert calls == ["DELETE"]  # a DELETE is never repeated blind


def test_a_timeout_is_named() -> None:
    class Slow(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            raise requests.ReadTimeout("slow")

    with pytest.raises(RegistryError, match=r"^x: GET http://h/ timed out: ReadTimeout$"):
        Http(label="x", session=Slow(), sleep=lambda s: None, max_attempts=2).send("GET", "http://h/")


# ---- pinned details (each test kills mutants that survived `make mutation`) ------------------------------


class _Recording(requests.Session):
    """A session that answers from a script and records what was asked."""

    def __init__(self, answers: list[tuple[int, dict[str, str], bytes]]) -> None:
        super().__init__()
        self.answers, self.sent = answers, []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append((method, url, kwargs))
        status, headers, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code, response._content, response.url = status, body, url
        response.headers.update(headers)
        return response


def test_report_json_text_and_dates() -> None:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    report = DecommissionReport("r/x", "oci", False, "keep 1 newest", deleted=(),
                                kept=(Manifest("sha256:" + "a" * 64, ("t",), when),),
                                failures=(Failure("sha256:" + "b" * 64, ("u",), "boom"),))  # fmt: skip
    assert report.to_json_text() == json.dumps(report.to_json(), indent=2)
    data = report.to_json()
    assert data["kept"][0]["created"] == "2026-03-01T00:00:00+00:00"
    assert data["failures"] == [{"digest": "sha256:" + "b" * 64, "tags": ["u"], "error": "boom"}]
    assert data["ok"] is False


def test_keep_last_keeps_one_by_default() -> None:
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert keep_last([a, b]) == [b]


def test_partition_rules() -> None:
    from components.registry import partition

    old = Manifest("sha256:" + "1" * 64, created=datetime(2026, 1, 1, tzinfo=UTC))
    undated = Manifest("sha256:" + "2" * 64)
    new = Manifest("sha256:" + "3" * 64, created=datetime(2026, 2, 1, tzinfo=UTC))
    deleted, kept, _, _ = partition([undated, old, new], 2)
    assert kept == [old, new] and deleted == [undated]  # an image without a date counts as the oldest
    with pytest.raises(TypeError, match=r"^keep must be a list of digests or a count, got True$"):
        partition([old], True)
    # An index whose platform is not listed (untagged) still keeps what is listed.
    index = Manifest("sha256:" + "4" * 64, children=("sha256:" + "5" * 64, old.digest))
    deleted, kept, _, _ = partition([index, old, new], [index.digest])
    assert kept == [index, old] and deleted == [new]


def test_client_construction_details() -> None:
    with pytest.raises(ValueError, match=r"^repository 'hostonly' must be <registry host>/<name>$"):
        OciRegistryClient("hostonly")
    assert OciRegistryClient("[::1]:5000/a/b").base == "http://[::1]:5000"
    client = OciRegistryClient("registry.example.com/a/b")
    assert client._http.timeout == 30.0 and client._http.label == "registry.example.com/a/b"
    assert OciRegistryClient("r.example.com/a/b", timeout=5)._http.timeout == 5
    assert OciRegistryClient("r.example.com/a/b", username="u")._basic is None  # no password: no basic auth
    session = _Recording([(200, {}, b'{"tags": []}')])
    assert OciRegistryClient("r.example.com/a/b", session=session).tags() == []
    assert session.sent[0][1] == "https://r.example.com/v2/a/b/tags/list?n=1000"


def test_client_for_passes_everything_on() -> None:
    session = _NoNetwork()
    hub = client_for("acme/app", username="u", password="p", session=session)
    assert isinstance(hub, DockerHubClient) and hub._basic == ("u", "p") and hub._http.session is session
    assert client_for("docker.io/acme/app", scheme="http").base == "http://registry-1.docker.io"  # type: ignore[attr-defined]
    oci = client_for("r.example.com/a/b", username="u", password="p", scheme="http", session=session)
    assert isinstance(oci, OciRegistryClient) and oci.base == "http://r.example.com" and oci._http.session is session
    ghcr = client_for("ghcr.io/acme/app", username="bot", password="tok", session=session, github_api="http://api")
    assert isinstance(ghcr, GhcrRegistryClient) and ghcr.api == "http://api" and ghcr._http.session is session
    assert ghcr._reader._basic == ("bot", "tok") and ghcr._reader._http.session is session  # type: ignore[attr-defined]


def test_decommission_passes_its_connection_settings_on() -> None:
    session = _Recording([(200, {}, b'{"tags": []}')])
    report = decommission("r.example.com/a/b", keep=1, dry_run=True, session=session, scheme="http")
    assert report.kept == () and session.sent[0][1] == "http://r.example.com/v2/a/b/tags/list?n=1000"
    api = _Recording([(200, {}, b"[]")])
    decommission("ghcr.io/acme/app", keep=1, dry_run=True, password="tok", session=api, github_api="http://api")
    assert api.sent[0][1] == "http://api/orgs/acme/packages/container/app/versions?per_page=100"


def test_absolute_urls_are_used_as_they_are() -> None:
    session = _Recording([(200, {}, b"{}")])
    OciRegistryClient("127.0.0.1:5000/a/b", session=session)._request("GET", "https://other.example/v2/x")
    assert session.sent[0][1] == "https://other.example/v2/x"


def test_refusal_messages_say_whether_credentials_were_sent(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.auth = "basic"
    with pytest.raises(RegistryAuthError, match=r"^127\.0\.0\.1:\d+/acme/hello: GET /v2/acme/hello/tags/list was "
                       r"refused \(401\) with the given credentials$"):  # fmt: skip
        decommission(fake_registry.repository, keep=1, dry_run=True, username="ci", password="bad")


def test_a_401_without_a_challenge_is_an_auth_error(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.faults = [("GET", "/tags/list", 401, {}, b"")]
    with pytest.raises(RegistryAuthError, match=r"refused \(401\) without credentials"):
        decommission(fake_registry.repository, keep=1, dry_run=True)


def test_a_challenge_with_spaces_and_without_service(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.auth = "bearer"
    realm = f"http://127.0.0.1:{fake_registry.port}/token"
    fake_registry.faults = [("GET", "/tags/list", 401, {"WWW-Authenticate": f'Bearer realm="{realm}", scope="x"'}, b"")]
    decommission(fake_registry.repository, keep=1, dry_run=True, username="ci", password="pw-123")
    token_paths = [p for m, p, _ in fake_registry.requests if p == "/token"]
    assert token_paths and fake_registry.token_queries[0]["scope"] == [f"repository:{NAME}:pull,delete"]


def test_the_token_query_keeps_an_empty_service() -> None:
    session = _Recording([(401, {"WWW-Authenticate": 'Bearer realm="http://t/token?x=1"'}, b""),
                          (200, {}, b'{"token": "t"}'), (200, {}, b'{"tags": []}')])  # fmt: skip
    OciRegistryClient("127.0.0.1:5000/a/b", session=session).tags()
    assert session.sent[1][1] == "http://t/token?x=1&service=&scope=repository%3Aa%2Fb%3Apull%2Cdelete"


def test_a_digest_challenge_is_not_answered_twice(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.auth, fake_registry.challenge = "basic", 'Digest realm="fake"'
    with pytest.raises(RegistryAuthError):
        decommission(fake_registry.repository, keep=1, dry_run=True)
    assert len([p for m, p, _ in fake_registry.requests if p.endswith("/tags/list")]) == 1


def test_a_token_refused_without_credentials_says_so(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    fake_registry.auth = "bearer"
    with pytest.raises(RegistryAuthError, match=r"token service http://127\.0\.0\.1:\d+/token refused a token without "
                       r"credentials \(401\)$"):  # fmt: skip
        decommission(fake_registry.repository, keep=1, dry_run=True)


@pytest.mark.parametrize(("method", "where", "status", "body", "message"), [
    ("GET", "/tags/list", 500, b"", "list tags answered HTTP 500"),
    ("GET", "/manifests/sha256", 500, b"", "read manifest sha256:[0-9a-f]{64} answered HTTP 500"),
    ("GET", "/manifests/sha256", 200, b"[]", "read manifest sha256:[0-9a-f]{64}: expected a JSON dict, got list"),
    ("GET", "/blobs/", 500, b"", "read config sha256:[0-9a-f]{64} answered HTTP 500"),
], ids=["tags", "manifest", "manifest_body", "config"])  # fmt: skip
def test_errors_name_the_repository_and_the_action(
    fake_registry: FakeRegistry, method: str, where: str, status: int, body: bytes, message: str
) -> None:
    _three(fake_registry)
    fake_registry.faults = [(method, where, status, {}, body)]
    with pytest.raises(RegistryError, match=f"^{re.escape(fake_registry.repository)}: {message}$"):
        decommission(fake_registry.repository, keep=1, dry_run=False)


def test_resolve_asks_head_only_when_it_gives_the_digest(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    decommission(fake_registry.repository, keep=[], dry_run=True)
    tag_gets = [p for m, p, _ in fake_registry.requests if m == "GET" and "/manifests/" in p and "sha256:" not in p]
    assert tag_gets == []


def test_resolve_trusts_the_registrys_digest_over_its_own_hash(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    claimed = "sha256:" + "e" * 64
    fake_registry.faults = [("HEAD", "/manifests/bbbbbbb", 200, {}, b""),
                            ("GET", "/manifests/bbbbbbb", 200, {"Docker-Content-Digest": claimed}, b"{}")]  # fmt: skip
    assert _client(fake_registry).resolve("bbbbbbb") == claimed


def test_created_reads_the_first_platform_and_ignores_odd_configs(fake_registry: FakeRegistry) -> None:
    first = fake_registry.push("2026-01-01T00:00:00.123456789Z", "a")
    second = fake_registry.push("2026-05-01T00:00:00Z", "b")
    index = fake_registry.push_index("i", children=(first, second))
    client = _client(fake_registry)
    assert client.created(index) == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    odd = fake_registry.push("2026-01-01T00:00:00", "c")  # no zone: UTC
    assert client.created(odd) == datetime(2026, 1, 1, tzinfo=UTC)
    config = json.dumps({"created": 12}).encode()
    fake_registry.blobs[sha(config)] = config
    manifest = json.dumps({"mediaType": OCI_MANIFEST, "config": {"digest": sha(config)}}).encode()
    fake_registry.manifests[sha(manifest)] = manifest
    assert client.created(sha(manifest)) is None
    weird = json.dumps({"mediaType": OCI_MANIFEST, "config": "sha256:x"}).encode()
    fake_registry.manifests[sha(weird)] = weird
    assert client.created(sha(weird)) is None
    assert client.created(index, {"mediaType": OCI_MANIFEST, "config": {}}) is None  # the given body is used


def test_children_of_an_index_and_of_an_image(fake_registry: FakeRegistry) -> None:
    amd = fake_registry.push("2026-01-01T00:00:00Z", "a")
    index = fake_registry.push_index("i", children=(amd,))
    client = _client(fake_registry)
    assert client.children(index) == (amd,) and client.children(amd) == ()


@pytest.mark.parametrize(("body", "message"), [
    ({"mediaType": OCI_INDEX}, "'manifests' is not a list of descriptors"),
    ({"mediaType": OCI_INDEX, "manifests": [1]}, "'manifests' is not a list of descriptors"),
], ids=["no_manifests", "not_descriptors"])  # fmt: skip
def test_a_broken_index_is_an_error(fake_registry: FakeRegistry, body: dict[str, Any], message: str) -> None:
    data = json.dumps(body).encode()
    fake_registry.manifests[sha(data)] = data
    fake_registry.tags["i"] = sha(data)
    with pytest.raises(RegistryError, match=f"^{re.escape(fake_registry.repository)}: index {sha(data)}: {message}$"):
        decommission(fake_registry.repository, keep=1, dry_run=True)


def test_delete_answers(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    fake_registry.faults = [
        ("DELETE", old, 200, {}, b""),
        ("DELETE", mid, 405, {}, b'{"errors": [{"code": "UNSUPPORTED", "message": "no"}, '
                                 b'{"code": "X", "message": "y"}]}'),
        ("DELETE", new, 500, {}, b'{"errors": []}'),
    ]  # fmt: skip
    client = _client(fake_registry)
    failures = client.delete([Manifest(old, ("1",)), Manifest(mid, ("2",)), Manifest(new, ("3",))])
    assert failures == [
        Failure(mid, ("2",), f"{client.base} refuses deletes through the Distribution API (405): on a distribution "
                "registry set storage.delete.enabled: true; a hosted registry deletes through its own API "
                "(UNSUPPORTED: no; X: y)"),
        Failure(new, ("3",), "HTTP 500"),
    ]  # fmt: skip


def test_a_delete_that_cannot_connect_keeps_its_digest_and_tags() -> None:
    digest = "sha256:" + "a" * 64
    client = OciRegistryClient(f"127.0.0.1:1/{NAME}", http=Http(label="x", sleep=lambda s: None, timeout=0.5))
    (failure,) = client.delete([Manifest(digest, ("1.0.0",))])
    assert (failure.digest, failure.tags) == (digest, ("1.0.0",))


def test_the_final_listing_reads_no_dates_and_keeps_tags_in_failures(fake_registry: FakeRegistry) -> None:
    old, _, new = _three(fake_registry)
    fake_registry.keep_after_delete = {old}
    report = decommission(fake_registry.repository, keep=[new], dry_run=False)
    assert not [p for m, p, _ in fake_registry.requests if "/blobs/" in p]
    assert [(f.digest, f.tags) for f in report.failures] == [(old, ("1.0.0", "aaaaaaa"))]


def _second_listing_raises(client: OciRegistryClient, error: Exception) -> None:
    """The client's second listing (the decommission's final check) raises ``error``."""
    original = client.list_manifests
    calls: list[bool] = []

    def listing(*, need_dates: bool) -> list[Manifest]:
        calls.append(need_dates)
        if len(calls) == 2:
            raise error
        return original(need_dates=need_dates)

    client.list_manifests = listing  # type: ignore[method-assign]


def test_a_failed_final_listing_keeps_tags(fake_registry: FakeRegistry) -> None:
    old, mid, new = _three(fake_registry)
    client = _client(fake_registry)
    _second_listing_raises(client, RegistryError("boom"))
    report = decommission(fake_registry.repository, keep=[new], dry_run=False, client=client)
    assert {(f.digest, f.tags) for f in report.failures} == {(old, ("1.0.0", "aaaaaaa")), (mid, ("bbbbbbb",))}


def test_a_repository_gone_with_its_last_tag_counts_as_all_deleted(fake_registry: FakeRegistry) -> None:
    """distribution answers tags/list of a repository without tags with 404 NAME_UNKNOWN."""
    old = _three(fake_registry)[0]
    client = _client(fake_registry)
    _second_listing_raises(client, RepositoryNotFoundError("gone"))
    fake_registry.keep_after_delete = {old}  # would be a failure if the listing said it is still there
    report = decommission(fake_registry.repository, keep=0, dry_run=False, client=client)
    assert report.ok and len(report.deleted) == 3


def test_keep_must_not_be_a_string() -> None:
    with pytest.raises(TypeError, match=r"^keep must be a list of digests or a count, not a single string$"):
        decommission("r.example.com/a/b", keep="sha256:x", dry_run=True)  # type: ignore[arg-type]


def test_a_build_time_with_an_offset_is_converted_not_relabelled(fake_registry: FakeRegistry) -> None:
    digest = fake_registry.push("2026-01-01T02:00:00+02:00", "a")
    assert _client(fake_registry).created(digest) == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert _client(fake_registry).created(digest).utcoffset() == timedelta(hours=2)  # type: ignore[union-attr]


def test_manifests_are_read_once_each_with_every_media_type(fake_registry: FakeRegistry) -> None:
    _three(fake_registry)
    decommission(fake_registry.repository, keep=1, dry_run=True)
    reads = [h for m, p, h in fake_registry.requests if m == "GET" and "/manifests/sha256:" in p]
    assert len(reads) == 3 and all(h["Accept"] == ", ".join(MANIFEST_MEDIA_TYPES) for h in reads)


def test_a_broken_index_is_named_by_every_path(fake_registry: FakeRegistry) -> None:
    data = json.dumps({"mediaType": OCI_INDEX}).encode()
    fake_registry.manifests[sha(data)] = data
    fake_registry.tags["i"] = sha(data)
    expected = f"^{re.escape(fake_registry.repository)}: index {sha(data)}: 'manifests' is not a list of descriptors$"
    with pytest.raises(RegistryError, match=expected):
        _client(fake_registry).children(sha(data))
    with pytest.raises(RegistryError, match=expected):
        decommission(fake_registry.repository, keep=[], dry_run=True)


# ---- shared helpers of the clients (components.registry.http, components.registry.model) -----------------


def test_parse_time_reads_rfc3339_and_takes_utc_without_an_offset() -> None:
    assert parse_time("2026-01-01T00:00:00.123456789Z") == datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)
    assert parse_time("2026-01-01T01:00:00+01:00") == datetime(2026, 1, 1, tzinfo=UTC)
    naive = parse_time("2026-01-01T00:00:00")
    assert naive == datetime(2026, 1, 1, tzinfo=UTC) and naive is not None and naive.tzinfo is UTC
    assert parse_time("yesterday") is None


def _answer(status: int, body: bytes = b"") -> requests.Response:
    response = requests.Response()
    response.status_code, response._content = status, body
    return response


def test_body_json_is_none_for_anything_but_json() -> None:
    assert body_json(_answer(200, b'{"a": 1}')) == {"a": 1}
    assert body_json(_answer(502, b"<html>bad gateway</html>")) is None
    assert body_json(_answer(204)) is None


def test_delete_each_counts_done_answers_and_goes_on_after_a_failure() -> None:
    a, b, c, d = (Manifest("sha256:" + ch * 64, tags=(ch,)) for ch in "abcd")
    answers: dict[str, Any] = {a.digest: 204, b.digest: 500, c.digest: RegistryError("connection lost"), d.digest: 404}

    def send(m: Manifest) -> requests.Response:
        answer = answers[m.digest]
        if isinstance(answer, Exception):
            raise answer
        return _answer(answer)

    failures = delete_each([a, b, c, d], send, (204, 404), lambda r: f"HTTP {r.status_code}")
    assert failures == [Failure(b.digest, ("b",), "HTTP 500"), Failure(c.digest, ("c",), "connection lost")]


def test_index_children_takes_the_media_type_the_registry_reported() -> None:
    """ECR reports ``imageManifestMediaType`` beside a manifest, which may itself carry no ``mediaType``."""
    child = "sha256:" + "c" * 64
    listing = {"schemaVersion": 2, "manifests": [{"digest": child}]}
    assert index_children(listing, "r/x", "sha256:i", DOCKER_LIST) == (child,)
    assert index_children(listing, "r/x", "sha256:i") == (child,)  # "manifests" alone says index
    assert index_children({"schemaVersion": 2, "layers": []}, "r/x", "sha256:m", OCI_MANIFEST) == ()
    with pytest.raises(RegistryError, match=r"^r/x: index sha256:i: 'manifests' is not a list of descriptors$"):
        index_children({"schemaVersion": 2}, "r/x", "sha256:i", OCI_INDEX)


def test_resolve_sends_upper_case_reads_and_retries_them_after_a_lost_connection() -> None:
    """Only GET and HEAD are repeated after a lost connection (components.registry.http.Http.send)."""
    digest = "sha256:" + "e" * 64
    answers = {"HEAD": (200, {}, b""), "GET": (200, {"Docker-Content-Digest": digest}, b"{}")}
    sent: list[str] = []

    class Flaky(requests.Session):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
            sent.append(method)
            if sent.count(method) == 1:
                raise requests.ConnectionError("reset")
            status, headers, body = answers[method]
            response = requests.Response()
            response.status_code, response._content, response.url = status, body, url
            response.headers.update(headers)
            return response

    http = Http(label="x", session=Flaky(), sleep=lambda s: None)
    assert OciRegistryClient("r.example.com/a/b", http=http).resolve("v1") == digest
    assert sent == ["HEAD", "HEAD", "GET", "GET"]


def test_a_request_without_accept_sends_no_accept_header() -> None:
    session = _Recording([(200, {}, b"{}"), (200, {}, b"{}")])
    client = OciRegistryClient("r.example.com/a/b", session=session)
    client._request("GET", "/v2/a/b/blobs/sha256:1")
    client._request("GET", "/v2/a/b/manifests/v1", accept="x/y")
    assert session.sent[0][2]["headers"] == {} and session.sent[1][2]["headers"] == {"Accept": "x/y"}


def test_keep_takes_any_sequence_of_digests(fake_registry: FakeRegistry) -> None:
    from collections import UserList

    old, mid, new = _three(fake_registry)
    report = decommission(fake_registry.repository, keep=UserList([mid]), dry_run=True)
    assert [m.digest for m in report.kept] == [mid] and {m.digest for m in report.deleted} == {old, new}

"""Decommission against the real registry (Debian's docker-registry): deleted manifests answer 404,
the retained one still answers 200, and the registry's garbage collector accepts the result."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import dockerenv
import pytest

from components.registry import MANIFEST_MEDIA_TYPES, decommission, keep_last


def _manifest_status(registry: dockerenv.OciRegistry, name: str, digest: str) -> int:
    req = urllib.request.Request(
        f"{registry.url}/v2/{name}/manifests/{digest}",
        method="HEAD",
        headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _push_revisions(
    engine: dockerenv.DockerEngine, registry: dockerenv.OciRegistry, base_image: str, name: str, revisions: list[str]
) -> list[str]:
    """Build one image per revision (a new revision label → a new manifest), push, return digests."""
    digests = []
    for revision in revisions:
        local = f"local/{name}:{revision}"
        dockerenv.build_app_image(engine, local, base_image=base_image, revision=revision)
        remote = f"{registry.host}/{name}:{revision}"
        engine.docker("tag", local, remote)
        engine.docker("push", remote, timeout=300)
        repo_digests = json.loads(engine.docker("image", "inspect", local).stdout)[0]["RepoDigests"]
        digests.append(next(d for d in repo_digests if d.startswith(f"{registry.host}/{name}@")).split("@")[1])
    assert len(set(digests)) == len(digests)
    return digests


def test_decommission_keeps_the_production_digest_and_deletes_the_rest(
    docker_engine: dockerenv.DockerEngine, oci_registry: dockerenv.OciRegistry, base_image: str
) -> None:
    name = "decommission/keep-list"
    d1, d2, d3 = _push_revisions(docker_engine, oci_registry, base_image, name, ["1111111", "2222222", "3333333"])
    repository = f"{oci_registry.host}/{name}"
    # Production ran d1 then d2; d3 was only ever in staging.
    keep = keep_last([d1, d2], 1)

    dry = decommission(repository, keep=keep, dry_run=True)
    assert {m.digest for m in dry.deleted} == {d1, d3}
    assert all(_manifest_status(oci_registry, name, d) == 200 for d in (d1, d2, d3))

    report = decommission(repository, keep=keep, dry_run=False)
    assert report.ok, report.to_json_text()
    assert [(m.digest, m.tags) for m in report.kept] == [(d2, ("2222222",))]
    assert {m.digest for m in report.deleted} == {d1, d3}
    assert _manifest_status(oci_registry, name, d1) == 404
    assert _manifest_status(oci_registry, name, d3) == 404
    assert _manifest_status(oci_registry, name, d2) == 200

    # Tags of deleted manifests are gone too; a second run finds nothing more to delete.
    again = decommission(repository, keep=keep, dry_run=False)
    assert again.deleted == () and [m.digest for m in again.kept] == [d2]
    # The registry's own garbage collector runs over what is left.
    oci_registry.garbage_collect()
    assert _manifest_status(oci_registry, name, d2) == 200


def test_decommission_keep_count_uses_build_time(
    docker_engine: dockerenv.DockerEngine, oci_registry: dockerenv.OciRegistry, base_image: str
) -> None:
    name = "decommission/keep-count"
    d1, d2 = _push_revisions(docker_engine, oci_registry, base_image, name, ["aaaaaaa", "bbbbbbb"])
    report = decommission(f"{oci_registry.host}/{name}", keep=1, dry_run=False)
    assert report.ok and [m.digest for m in report.kept] == [d2] and [m.digest for m in report.deleted] == [d1]
    assert _manifest_status(oci_registry, name, d1) == 404
    assert _manifest_status(oci_registry, name, d2) == 200


def test_missing_repository_on_the_real_registry(oci_registry: dockerenv.OciRegistry) -> None:
    from components.registry import RepositoryNotFoundError

    with pytest.raises(RepositoryNotFoundError, match=r"repository not found.*NAME_UNKNOWN"):
        decommission(f"{oci_registry.host}/never/pushed", keep=1, dry_run=True)


def test_delete_disabled_registry_reports_every_digest(
    docker_engine: dockerenv.DockerEngine, base_image: str, tmp_path: Any
) -> None:
    registry = dockerenv.start_registry(tmp_path / "no-delete", delete_enabled=False)
    try:
        name = "decommission/no-delete"
        d1, d2 = _push_revisions(docker_engine, registry, base_image, name, ["ccccccc", "ddddddd"])
        report = decommission(f"{registry.host}/{name}", keep=[d2], dry_run=False)
        assert not report.ok and [f.digest for f in report.failures] == [d1]
        assert "storage.delete.enabled" in report.failures[0].error
        assert _manifest_status(registry, name, d1) == 200
    finally:
        dockerenv.stop_registry(registry)

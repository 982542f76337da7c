"""Decommission against the real registry (Debian's docker-registry): deleted manifests answer 404,
the retained one still answers 200, and the registry's garbage collector accepts the result."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import dockerenv
import pytest
from faultproxy import FaultProxy, Rule, manifest_status, push_image, push_index

from components.registry import MANIFEST_MEDIA_TYPES, OciRegistryClient, RegistryError, decommission, keep_last
from components.registry.http import Http


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


# ---- a real registry behind a fault-injecting proxy (issue 12) -----------------------------------------------


@pytest.fixture
def proxy(oci_registry: dockerenv.OciRegistry) -> Iterator[FaultProxy]:
    fault_proxy = FaultProxy(oci_registry.url)
    yield fault_proxy
    fault_proxy.close()


def _seed(registry: dockerenv.OciRegistry, name: str, n: int = 3) -> list[str]:
    return [push_image(registry.url, name, f"2026-0{i}-01T00:00:00Z", f"v{i}") for i in range(1, n + 1)]


def _fast(proxy: FaultProxy, name: str, timeout: float = 30.0) -> OciRegistryClient:
    """A client through the proxy; waits are recorded, not slept (the proxy's own stalls are real)."""
    return OciRegistryClient(f"{proxy.host}/{name}", http=Http(label=f"{proxy.host}/{name}", timeout=timeout,
                                                               sleep=lambda s: None))  # fmt: skip


def test_self_referencing_pagination_stops_at_once(oci_registry: dockerenv.OciRegistry, proxy: FaultProxy) -> None:
    """Before: 413 calls in 20 s and growing memory. Now: one page, then a RegistryError, nothing deleted."""
    name = "faults/loop"
    digests = _seed(oci_registry, name)
    proxy.add(Rule("GET", "/tags/list", "loop", times=100))
    with pytest.raises(RegistryError, match="pagination loops"):
        decommission(f"{proxy.host}/{name}", keep=1, dry_run=False, client=_fast(proxy, name))
    assert proxy.count("GET", "/tags/list") == 1
    assert all(manifest_status(oci_registry.url, name, d) == 200 for d in digests)


@pytest.mark.parametrize(("body", "content_type"), [
    (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    (b'["v1", "v2"]', "application/json"),
], ids=["html", "json_list"])  # fmt: skip
def test_a_foreign_body_is_a_registry_error(
    oci_registry: dockerenv.OciRegistry, proxy: FaultProxy, body: bytes, content_type: str
) -> None:
    """Before: JSONDecodeError / AttributeError escaping the client. Now: RegistryError, nothing deleted."""
    name = f"faults/body-{content_type.split('/')[1]}"
    digests = _seed(oci_registry, name)
    proxy.add(Rule("GET", "/tags/list", "body", body=body, headers={"Content-Type": content_type}))
    with pytest.raises(RegistryError, match=r"list tags: (the answer is not JSON|expected a JSON dict, got list)"):
        decommission(f"{proxy.host}/{name}", keep=1, dry_run=False, client=_fast(proxy, name))
    assert all(manifest_status(oci_registry.url, name, d) == 200 for d in digests)


def test_429_and_503_are_retried_honouring_retry_after(oci_registry: dockerenv.OciRegistry, proxy: FaultProxy) -> None:
    """Before: 429 was a hard failure. Now: waited for (Retry-After) and retried, up to a cap."""
    name = "faults/throttle"
    d1, d2, d3 = _seed(oci_registry, name)
    proxy.add(
        Rule("GET", "/tags/list", "status", status=429, headers={"Retry-After": "1"}),
        Rule("DELETE", d1, "status", status=503, headers={"Retry-After": "1"}, times=2),
    )
    report = decommission(f"{proxy.host}/{name}", keep=1, dry_run=False)  # real sleeps: about 3 s
    assert report.ok and {m.digest for m in report.deleted} == {d1, d2} and [m.digest for m in report.kept] == [d3]
    assert proxy.count("DELETE", d1) == 3
    assert manifest_status(oci_registry.url, name, d1) == 404


def test_a_500_on_one_delete_is_reported_and_a_rerun_finishes(
    oci_registry: dockerenv.OciRegistry, proxy: FaultProxy
) -> None:
    name = "faults/500"
    d1, d2, d3 = _seed(oci_registry, name)
    proxy.add(Rule("DELETE", d1, "status", status=500, body=b'{"errors": [{"code": "UNKNOWN", "message": "boom"}]}'))
    report = decommission(f"{proxy.host}/{name}", keep=1, dry_run=False, client=_fast(proxy, name))
    assert [(f.digest, f.error) for f in report.failures] == [(d1, "HTTP 500 (UNKNOWN: boom)")]
    assert [m.digest for m in report.deleted] == [d2]
    again = decommission(f"{proxy.host}/{name}", keep=1, dry_run=False, client=_fast(proxy, name))
    assert again.ok and [m.digest for m in again.deleted] == [d1] and [m.digest for m in again.kept] == [d3]


def test_a_404_on_delete_means_already_deleted(oci_registry: dockerenv.OciRegistry, proxy: FaultProxy) -> None:
    """Before: a failure although the end state was reached. Now: counted as deleted (the listing confirms)."""
    name = "faults/404"
    d1, d2, _d3 = _seed(oci_registry, name)
    proxy.add(Rule("DELETE", d1, "after", status=404))  # applied upstream, answered 404 (a replayed DELETE)
    report = decommission(f"{proxy.host}/{name}", keep=1, dry_run=False, client=_fast(proxy, name))
    assert report.ok and {m.digest for m in report.deleted} == {d1, d2}
    assert manifest_status(oci_registry.url, name, d1) == 404


def test_a_lost_delete_answer_is_settled_by_the_final_listing(
    oci_registry: dockerenv.OciRegistry, proxy: FaultProxy
) -> None:
    """Before: the deleted digest was reported failed forever. Now: the final listing shows it gone."""
    name = "faults/lost"
    d1, d2, _d3 = _seed(oci_registry, name)
    proxy.add(Rule("DELETE", d2, "lose"))
    report = decommission(f"{proxy.host}/{name}", keep=1, dry_run=False, client=_fast(proxy, name))
    assert report.ok, report.to_json_text()
    assert {m.digest for m in report.deleted} == {d1, d2} and manifest_status(oci_registry.url, name, d2) == 404


def test_resets_and_timeouts_on_reads_are_retried(oci_registry: dockerenv.OciRegistry, proxy: FaultProxy) -> None:
    name = "faults/reset"
    _d1, _d2, d3 = _seed(oci_registry, name)
    proxy.add(Rule("HEAD", "/manifests/v1", "reset"), Rule("GET", f"/manifests/{d3}", "stall", seconds=2.5))
    report = decommission(f"{proxy.host}/{name}", keep=1, dry_run=False, client=_fast(proxy, name, timeout=1.0))
    assert report.ok and [m.digest for m in report.kept] == [d3]
    assert proxy.count("HEAD", "/manifests/v1") >= 2


def test_a_reset_delete_is_not_repeated_and_is_reported(oci_registry: dockerenv.OciRegistry, proxy: FaultProxy) -> None:
    name = "faults/reset-delete"
    d1, _d2, _d3 = _seed(oci_registry, name)
    proxy.add(Rule("DELETE", d1, "reset"))  # never reached the registry
    report = decommission(f"{proxy.host}/{name}", keep=1, dry_run=False, client=_fast(proxy, name))
    assert [f.digest for f in report.failures] == [d1] and "DELETE" in report.failures[0].error
    assert proxy.count("DELETE", d1) == 1 and manifest_status(oci_registry.url, name, d1) == 200


def test_an_index_keeps_its_platforms_on_the_real_registry(oci_registry: dockerenv.OciRegistry) -> None:
    """Before: keeping an index deleted its tagged platform manifests (the kept image could not be pulled)."""
    name = "faults/index"
    old = push_image(oci_registry.url, name, "2025-01-01T00:00:00Z", "v0")
    amd = push_image(oci_registry.url, name, "2026-01-01T00:00:00Z", "v1-amd64")
    arm = push_image(oci_registry.url, name, "2026-01-01T00:00:00Z", "v1-arm64", platform="arm64")
    index = push_index(oci_registry.url, name, [amd, arm], "v1")
    report = decommission(f"{oci_registry.host}/{name}", keep=1, dry_run=False)
    assert report.ok and {m.digest for m in report.kept} == {index, amd, arm}
    assert [m.digest for m in report.deleted] == [old]
    for digest in (index, amd, arm):
        assert manifest_status(oci_registry.url, name, digest) == 200
    assert manifest_status(oci_registry.url, name, old) == 404
    oci_registry.garbage_collect()
    assert manifest_status(oci_registry.url, name, "v1") == 200

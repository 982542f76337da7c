"""GHCR decommission through the GitHub Packages REST API, against a local server that follows GitHub's
published REST API description (github/rest-api-description, ``descriptions/api.github.com/api.github.com.yaml``
at 85b6ee9f1568906d51987ef80dadeda4dfea16ea; the operations used are in
``tests/fixtures/github-packages-api.excerpt.yaml``). Every request the client sends is checked against that
excerpt: path template, method, path parameter values, query parameter names."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import yaml
from fake_registry import GITHUB_TOKEN, FakeGitHub, FakeRegistry

from components.registry import OciRegistryClient, decommission
from components.registry.ghcr import GhcrRegistryClient
from components.registry.http import RegistryAuthError, RegistryError, RepositoryNotFoundError

SPEC = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "github-packages-api.excerpt.yaml").read_text())


class Reader:
    """The registry side (``ghcr.io/v2``, GET only): which versions an index holds."""

    def __init__(self, children: dict[str, tuple[str, ...]] | None = None) -> None:
        self.map = children or {}
        self.asked: list[str] = []

    def children(self, digest: str) -> tuple[str, ...]:
        self.asked.append(digest)
        return self.map.get(digest, ())


def _client(gh: FakeGitHub, reader: Reader | None = None, repository: str = "ghcr.io/acme/hello") -> GhcrRegistryClient:
    return GhcrRegistryClient(
        repository, token=GITHUB_TOKEN, api=gh.api, reader=reader or Reader(), sleep=lambda s: None
    )


def _check_against_spec(requests: list[tuple[str, str]]) -> None:
    """Each request matches one path template of the excerpt, with a declared method, path parameter values
    of the declared type/enum, and only declared query parameters."""
    params = SPEC["components"]["parameters"]
    for method, raw in requests:
        url = urlsplit(raw)
        matched = False
        for template, operations in SPEC["paths"].items():
            names = re.findall(r"{(\w+)}", template)
            pattern = "^" + re.sub(r"\\{\w+\\}", "([^/]+)", re.escape(template)) + "$"
            found = re.match(pattern, url.path)
            if not found:
                continue
            assert method.lower() in operations, f"{method} {url.path}: {template} has no {method}"
            declared = [params[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
                        for p in operations[method.lower()]["parameters"]]  # fmt: skip
            for name, value in zip(names, found.groups(), strict=True):
                spec = next(p for p in declared if p["name"] == name and p["in"] == "path")
                if spec["schema"]["type"] == "integer":
                    assert value.isdigit(), f"{name}={value!r} is not an integer"
                if "enum" in spec["schema"]:
                    assert value in spec["schema"]["enum"], f"{name}={value!r} not in {spec['schema']['enum']}"
                assert "/" not in unquote(value) or name == "package_name", name
            allowed = {p["name"] for p in declared if p["in"] == "query"}
            sent = set(parse_qs(url.query))
            assert sent <= allowed, f"{method} {url.path}: query {sent - allowed} not declared by {template}"
            matched = True
        assert matched, f"{method} {url.path} is not an operation of the excerpt"


def test_organisation_package_keeps_the_listed_digest_and_deletes_the_rest(github: FakeGitHub) -> None:
    old = github.add(1, "2026-01-01T00:00:00Z", "aaaaaaa")
    mid = github.add(2, "2026-02-01T00:00:00Z", "bbbbbbb")
    new = github.add(3, "2026-03-01T00:00:00Z", "ccccccc", "latest")
    report = decommission("GHCR.io/Acme/hello", keep=[mid], dry_run=False, client=_client(github))
    assert report.ok and report.registry == "ghcr" and report.repository == "ghcr.io/acme/hello"
    assert [m.digest for m in report.kept] == [mid] and {m.digest for m in report.deleted} == {old, new}
    assert github.remaining() == {mid}
    deletes = [p for m, p in github.requests if m == "DELETE"]
    assert deletes == [
        "/orgs/acme/packages/container/hello/versions/1001",
        "/orgs/acme/packages/container/hello/versions/1003",
    ]
    assert any("per_page=100" in p for m, p in github.requests if m == "GET")
    _check_against_spec(github.requests)


def test_pages_follow_the_link_header(github: FakeGitHub) -> None:
    digests = [github.add(n, f"2026-01-0{n}T00:00:00Z", f"t{n}") for n in range(1, 6)]
    report = decommission("ghcr.io/acme/hello", keep=1, dry_run=True, client=_client(github))
    assert [m.digest for m in report.kept] == [digests[-1]] and len(report.deleted) == 4
    assert len([p for m, p in github.requests if m == "GET"]) == 3
    _check_against_spec(github.requests)


def test_user_package_falls_back_to_the_users_operations(github: FakeGitHub) -> None:
    github.owner_kind, github.owner = "users", "octocat"
    old = github.add(1, "2026-01-01T00:00:00Z", "aaaaaaa")
    new = github.add(2, "2026-02-01T00:00:00Z", "bbbbbbb")
    report = decommission("ghcr.io/octocat/hello", keep=[new], dry_run=False,
                          client=_client(github, repository="ghcr.io/octocat/hello"))  # fmt: skip
    assert report.ok and [m.digest for m in report.deleted] == [old] and github.remaining() == {new}
    paths = [(m, urlsplit(p).path) for m, p in github.requests]
    assert paths[0] == ("GET", "/orgs/octocat/packages/container/hello/versions")
    assert ("GET", "/users/octocat/packages/container/hello/versions") in paths
    assert ("DELETE", "/users/octocat/packages/container/hello/versions/1001") in paths
    # The user operation declares no query parameters: none are sent.
    assert all("?" not in p for m, p in github.requests if p.startswith("/users/"))
    _check_against_spec(github.requests)


def test_a_package_name_with_slashes_is_one_url_encoded_segment(github: FakeGitHub) -> None:
    github.package = "team/hello"
    old = github.add(1, "2026-01-01T00:00:00Z", "a")
    new = github.add(2, "2026-02-01T00:00:00Z", "b")
    client = _client(github, repository="ghcr.io/acme/team/hello")
    report = decommission("ghcr.io/acme/team/hello", keep=[new], dry_run=False, client=client)
    assert report.ok and [m.digest for m in report.deleted] == [old]
    assert ("DELETE", "/orgs/acme/packages/container/team%2Fhello/versions/1001") in github.requests
    _check_against_spec(github.requests)


def test_an_index_keeps_its_untagged_platform_versions(github: FakeGitHub) -> None:
    amd = github.add(1, "2026-01-01T00:00:00Z")
    arm = github.add(2, "2026-01-01T00:00:00Z")
    index = github.add(3, "2026-01-01T00:00:01Z", "v1")
    orphan = github.add(4, "2025-12-01T00:00:00Z")
    old_index = github.add(5, "2025-11-01T00:00:00Z", "v0")
    old_amd = github.add(6, "2025-11-01T00:00:00Z")
    reader = Reader({index: (amd, arm), old_index: (old_amd,)})
    report = decommission("ghcr.io/acme/hello", keep=1, dry_run=False, client=_client(github, reader))
    assert {m.digest for m in report.kept} == {index, amd, arm}
    assert github.remaining() == {index, amd, arm}
    assert {m.digest for m in report.deleted} == {orphan, old_index, old_amd}
    assert sorted(reader.asked) == sorted([index, old_index, index])  # tagged ones: listing, then the final check
    _check_against_spec(github.requests)


def test_index_platforms_are_read_from_the_registry_side_with_the_oci_client(
    github: FakeGitHub, fake_registry: FakeRegistry
) -> None:
    """The real reader (the OCI Distribution client, GET only) against the shared fake registry: the
    kept index's untagged platform versions stay, the old index and its platform go, the registry side
    is never asked to delete (GHCR answers the Distribution API's DELETE with 405)."""
    amd = fake_registry.push("2026-02-01T00:00:00Z")
    arm = fake_registry.push("2026-02-01T00:00:01Z")
    index = fake_registry.push_index("v2", children=(amd, arm))
    old_amd = fake_registry.push("2026-01-01T00:00:00Z")
    old_index = fake_registry.push_index("v1", children=(old_amd,))
    for n, digest, created, tags in [
        (1, old_amd, "2026-01-01T00:00:00Z", ()), (2, old_index, "2026-01-01T00:00:01Z", ("v1",)),
        (3, amd, "2026-02-01T00:00:00Z", ()), (4, arm, "2026-02-01T00:00:00Z", ()),
        (5, index, "2026-02-01T00:00:01Z", ("v2",)),
    ]:  # fmt: skip
        github.add(n, created, *tags, digest=digest)
    reader = OciRegistryClient(fake_registry.repository)
    client = GhcrRegistryClient("ghcr.io/acme/hello", token=GITHUB_TOKEN, api=github.api, reader=reader)
    report = decommission("ghcr.io/acme/hello", keep=1, dry_run=False, client=client)
    assert report.ok
    assert {m.digest for m in report.kept} == {index, amd, arm}
    assert {m.digest for m in report.deleted} == {old_index, old_amd}
    assert github.remaining() == {index, amd, arm}
    assert [m for m, _, _ in fake_registry.requests if m != "GET"] == []
    _check_against_spec(github.requests)


def test_a_version_date_without_an_offset_is_read_as_utc(github: FakeGitHub) -> None:
    """GitHub sends ``created_at`` with ``Z``; one without an offset is read as UTC like every registry date
    (components.registry.http.parse_time), so ``keep=N`` can order it against the others."""
    old = github.add(1, "2026-01-01T00:00:00", "a")
    new = github.add(2, "2026-02-01T00:00:00Z", "b")
    report = decommission("ghcr.io/acme/hello", keep=1, dry_run=True, client=_client(github))
    assert [m.digest for m in report.kept] == [new] and [m.digest for m in report.deleted] == [old]


def test_self_referencing_link_is_an_error(github: FakeGitHub) -> None:
    github.add(1, "2026-01-01T00:00:00Z", "a")
    github.link_loop = True
    with pytest.raises(RegistryError, match="pagination loops"):
        decommission("ghcr.io/acme/hello", keep=1, dry_run=False, client=_client(github))
    assert not [m for m, _ in github.requests if m == "DELETE"]


@pytest.mark.parametrize(("body", "message"), [
    (b"<!DOCTYPE html><html>Unicorn!</html>", "list package versions: the answer is not JSON"),
    (b'{"message": "x"}', "list package versions: expected a JSON list, got dict"),
    (b"[1, 2]", "list package versions: not a list of objects"),
    (b'[{"id": "7", "name": "sha256:x"}]', "a package version without an integer id and a name"),
    (b'[{"id": 7, "name": "1.0.0"}]', "package version 7 is named '1.0.0', not a digest"),
], ids=["html", "object", "numbers", "string_id", "tag_name"])  # fmt: skip
def test_unexpected_bodies_are_registry_errors(github: FakeGitHub, body: bytes, message: str) -> None:
    github.body_override = body
    with pytest.raises(RegistryError, match=re.escape(message)):
        decommission("ghcr.io/acme/hello", keep=1, dry_run=False, client=_client(github))


def test_a_refused_token_names_the_scopes_it_needs(github: FakeGitHub) -> None:
    client = GhcrRegistryClient("ghcr.io/acme/hello", token="wrong-secret-7", api=github.api, reader=Reader())
    with pytest.raises(RegistryAuthError) as err:
        decommission("ghcr.io/acme/hello", keep=1, dry_run=False, client=client)
    assert "(401: Bad credentials): the token needs read:packages and delete:packages" in str(err.value)
    assert "wrong-secret-7" not in str(err.value)


def test_no_token_is_refused_before_any_request() -> None:
    with pytest.raises(RegistryAuthError, match=r"needs a token .read:packages and delete:packages.: set"):
        GhcrRegistryClient("ghcr.io/acme/hello", token=None, reader=Reader())


def test_a_missing_package_is_named(github: FakeGitHub) -> None:
    with pytest.raises(RepositoryNotFoundError, match="no container package 'other' owned by organisation or user"):
        decommission("ghcr.io/acme/other", keep=1, dry_run=False,
                     client=_client(github, repository="ghcr.io/acme/other"))  # fmt: skip


def test_a_refused_delete_is_a_failure_with_what_to_do(github: FakeGitHub) -> None:
    github.add(1, "2026-01-01T00:00:00Z", "a")
    new = github.add(2, "2026-02-01T00:00:00Z", "b")
    github.delete_status = 403
    report = decommission("ghcr.io/acme/hello", keep=[new], dry_run=False, client=_client(github))
    assert not report.ok and len(report.failures) == 1
    assert report.failures[0].error.startswith("GitHub refused (403: Must have admin rights to Repository.)")
    assert (
        "read:packages and delete:packages" in report.failures[0].error
        and "5,000 downloads" in report.failures[0].error
    )


def test_a_version_already_deleted_is_not_a_failure(github: FakeGitHub) -> None:
    old = github.add(1, "2026-01-01T00:00:00Z", "a")
    new = github.add(2, "2026-02-01T00:00:00Z", "b")
    client = _client(github)
    manifests = client.list_manifests(need_dates=False)
    github.versions = [v for v in github.versions if v["name"] != old]  # someone else deleted it
    assert client.delete([m for m in manifests if m.digest == old]) == []
    assert github.remaining() == {new}


@pytest.mark.parametrize("repository", ["ghcr.io/acme", "quay.io/acme/hello"], ids=["no_package", "other_host"])
def test_only_ghcr_repositories(repository: str) -> None:
    with pytest.raises(ValueError, match="is not a GHCR repository"):
        GhcrRegistryClient(repository, token=GITHUB_TOKEN, reader=Reader())


def test_the_spec_check_can_fail() -> None:
    with pytest.raises(AssertionError, match="not declared"):
        _check_against_spec([("GET", "/users/a/packages/container/b/versions?per_page=100")])
    with pytest.raises(AssertionError, match="not in"):
        _check_against_spec([("GET", "/orgs/a/packages/oci/b/versions")])
    with pytest.raises(AssertionError, match="has no DELETE"):
        _check_against_spec([("DELETE", "/orgs/a/packages/container/b/versions")])
    with pytest.raises(AssertionError, match="not an operation"):
        _check_against_spec([("GET", "/orgs/a/packages/container/b/c/versions")])
    with pytest.raises(AssertionError, match="not an integer"):
        _check_against_spec([("DELETE", "/orgs/a/packages/container/b/versions/sha256:1")])

"""components/registry/http.py and model.py on their own: retries, pagination, bodies, digests and repository names.

test_registry.py and test_registry_ghcr.py drive them through whole decommissions against fake registries;
these pin each rule and each message with hand-made answers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from components.registry.ghcr import GhcrRegistryClient
from components.registry.http import (
    DEFAULT_WAIT,
    MAX_ATTEMPTS,
    Http,
    RegistryError,
    body_json,
    json_body,
    next_link,
    parse_time,
    retry_after,
)
from components.registry.model import (
    Manifest,
    delete_each,
    index_children,
    normalize_digest,
    normalize_repository,
    same_repository,
)

D1, D2, D3 = ("sha256:" + c * 64 for c in "123")


def answer(status: int = 200, body: bytes = b"", headers: Mapping[str, str] | None = None,
           url: str = "https://registry.example/v2/x") -> requests.Response:  # fmt: skip
    response = requests.Response()
    response.status_code, response._content, response.url = status, body, url
    response.headers.update(headers or {})
    return response


class Session:
    """Answers (or raises) in order, and records each request."""

    def __init__(self, *answers: requests.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, str, dict[str, Any]]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.requests.append((method, url, kwargs))
        item = self.answers.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def http(session: Session, **kwargs: Any) -> tuple[Http, list[float]]:
    waits: list[float] = []
    client = Http("ghcr.io/acme/hello", session=session, sleep=waits.append, **kwargs)
    return client, waits


# -- Retry-After ------------------------------------------------------------------------------------------


def test_retry_after_reads_seconds_or_a_date_and_defaults_to_one_second() -> None:
    assert retry_after(answer(503)) == DEFAULT_WAIT == 1.0
    assert retry_after(answer(503, headers={"Retry-After": "  "})) == DEFAULT_WAIT
    assert retry_after(answer(503, headers={"Retry-After": " 7 "})) == 7.0
    assert retry_after(answer(503, headers={"Retry-After": "soon"})) == DEFAULT_WAIT
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    stamp = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert retry_after(answer(429, headers={"Retry-After": date}), now=lambda: stamp - 12.5) == 12.5
    assert retry_after(answer(429, headers={"Retry-After": date}), now=lambda: stamp + 60) == 0.0


# -- send -------------------------------------------------------------------------------------------------


def test_a_busy_registry_is_asked_again_after_the_wait_it_names() -> None:
    session = Session(answer(429, headers={"Retry-After": "2"}), answer(503), answer(200, b"{}"))
    client, waits = http(session, timeout=5.0)
    response = client.send("GET", "https://r.example/v2/x?n=1", headers={"Accept": "a"}, params={"n": "1"},
                           auth=("u", "p"))  # fmt: skip
    assert response.status_code == 200 and waits == [2.0, 1.0]
    sent = {"headers": {"Accept": "a"}, "params": {"n": "1"}, "auth": ("u", "p"), "timeout": 5.0}
    assert session.requests == [("GET", "https://r.example/v2/x?n=1", sent)] * 3
    assert http(Session(answer(404)))[0].send("DELETE", "https://r.example/x").status_code == 404


def test_a_registry_still_busy_after_every_attempt_is_an_error() -> None:
    client, waits = http(Session(*[answer(503) for _ in range(MAX_ATTEMPTS)]))
    with pytest.raises(RegistryError) as raised:
        client.send("GET", "https://r.example/v2/x?token=secret")
    assert str(raised.value) == (
        "ghcr.io/acme/hello: GET https://r.example/v2/x still answered 503 after 4 attempts; run again later"
    )
    assert waits == [1.0, 1.0, 1.0]
    client, waits = http(Session(answer(429), answer(429)), max_attempts=2)
    with pytest.raises(RegistryError, match="still answered 429 after 2 attempts"):
        client.send("GET", "https://r.example/x")
    assert waits == [1.0]


def test_one_attempt_is_one_request_and_no_wait() -> None:
    session = Session(answer(503), answer(200))
    client, waits = http(session, max_attempts=1)
    with pytest.raises(RegistryError, match="still answered 503 after 1 attempts"):
        client.send("GET", "https://r.example/x")
    assert waits == [] and len(session.requests) == 1


def test_a_wait_longer_than_the_limit_is_an_error_at_once() -> None:
    client, waits = http(Session(answer(429, headers={"Retry-After": "31"})))
    with pytest.raises(RegistryError) as raised:
        client.send("DELETE", "https://r.example/v2/x?last=y")
    assert str(raised.value) == (
        "ghcr.io/acme/hello: DELETE https://r.example/v2/x answered 429 with Retry-After 31s, more than the 30s "
        "this client waits; run again later"
    )
    assert waits == []
    client, waits = http(Session(answer(429, headers={"Retry-After": "30"}), answer(204)))
    assert client.send("DELETE", "https://r.example/x").status_code == 204 and waits == [30.0]
    client, waits = http(Session(answer(429, headers={"Retry-After": "6"})), max_wait=5.0)
    with pytest.raises(RegistryError, match="Retry-After 6s, more than the 5s"):
        client.send("GET", "https://r.example/x")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_lost_connection_is_retried_for_reads(method: str) -> None:
    session = Session(requests.ConnectionError("reset"), requests.Timeout("slow"), answer(200))
    client, waits = http(session)
    assert client.send(method, "https://r.example/x").status_code == 200 and waits == [DEFAULT_WAIT] * 2
    client, waits = http(Session(*[requests.Timeout("slow")] * MAX_ATTEMPTS))
    with pytest.raises(RegistryError) as raised:
        client.send(method, "https://r.example/x?q=1")
    assert str(raised.value) == f"ghcr.io/acme/hello: {method} https://r.example/x timed out: Timeout"
    assert len(waits) == MAX_ATTEMPTS - 1


def test_a_message_names_the_url_without_any_query() -> None:
    client, _ = http(Session(requests.ConnectionError("reset")))
    with pytest.raises(RegistryError) as raised:
        client.send("DELETE", "https://r.example/x?next=/a?b&token=t")
    assert str(raised.value) == "ghcr.io/acme/hello: DELETE https://r.example/x failed: ConnectionError"


def test_a_lost_delete_or_post_is_not_repeated() -> None:
    for method in ("DELETE", "POST"):
        session = Session(requests.ConnectionError("reset"), answer(204))
        client, waits = http(session)
        with pytest.raises(RegistryError) as raised:
            client.send(method, "https://r.example/x")
        assert str(raised.value) == f"ghcr.io/acme/hello: {method} https://r.example/x failed: ConnectionError"
        assert waits == [] and len(session.requests) == 1


# -- pages ------------------------------------------------------------------------------------------------


def _paged(links: dict[str, str]) -> Any:
    def fetch(url: str) -> requests.Response:
        link = links.get(url)
        return answer(headers={"Link": f'<{link}>; rel="next"'} if link else {}, url=url)

    return fetch


def test_pages_follow_next_links_relative_to_the_page() -> None:
    links = {"https://r.example/v2/x/tags/list": "/v2/x/tags/list?last=a", "https://r.example/v2/x/tags/list?last=a":
             "https://r.example/v2/x/tags/list?last=b"}  # fmt: skip
    client, _ = http(Session())
    urls = [r.url for r in client.pages("https://r.example/v2/x/tags/list", _paged(links))]
    assert urls == ["https://r.example/v2/x/tags/list", "https://r.example/v2/x/tags/list?last=a",
                    "https://r.example/v2/x/tags/list?last=b"]  # fmt: skip


def test_a_page_seen_twice_or_too_many_pages_is_an_error() -> None:
    client, _ = http(Session())
    loop = {"https://r.example/a": "https://r.example/b?t=1", "https://r.example/b?t=1": "https://r.example/a"}
    with pytest.raises(RegistryError) as raised:
        list(client.pages("https://r.example/a", _paged(loop)))
    assert (
        str(raised.value) == "ghcr.io/acme/hello: the registry's pagination loops (next page https://r.example/a again)"
    )
    chain = {f"https://r.example/{n}": f"https://r.example/{n + 1}" for n in range(5)}
    assert len(list(client.pages("https://r.example/0", _paged(chain), max_pages=6))) == 6
    with pytest.raises(RegistryError) as raised:
        list(client.pages("https://r.example/0", _paged(chain), max_pages=5))
    assert str(raised.value) == "ghcr.io/acme/hello: more than 5 pages; refusing to go on listing"


def test_next_link_reads_quoted_or_bare_rel() -> None:
    base = "https://r.example/v2/x/tags/list"
    assert next_link(answer(headers={"Link": "</v2/x/tags/list?n=2>;rel=next"}, url=base)) == f"{base}?n=2"
    assert next_link(answer(headers={"Link": '<https://o.example/p> ; rel="prev"'}, url=base)) is None
    assert next_link(answer(url=base)) is None


# -- bodies and times -------------------------------------------------------------------------------------


def test_json_bodies_are_checked_for_shape() -> None:
    assert json_body(answer(body=b'{"a": 1}'), dict, "repo", "tags") == {"a": 1}
    assert json_body(answer(body=b"[1]"), list, "repo", "tags") == [1]
    with pytest.raises(RegistryError) as raised:
        json_body(answer(body=b"<html>", headers={"Content-Type": "text/html"}), dict, "repo", "tags")
    assert str(raised.value) == "repo: tags: the answer is not JSON (text/html, 6 bytes)"
    with pytest.raises(RegistryError) as raised:
        json_body(answer(body=b""), dict, "repo", "tags")
    assert str(raised.value) == "repo: tags: the answer is not JSON (no content type, 0 bytes)"
    with pytest.raises(RegistryError) as raised:
        json_body(answer(body=b"[1]"), dict, "repo", "tags")
    assert str(raised.value) == "repo: tags: expected a JSON dict, got list"
    assert body_json(answer(body=b'{"errors": []}')) == {"errors": []}
    assert body_json(answer(body=b"bad gateway")) is None


def test_times_are_read_as_rfc_3339_and_utc_when_they_name_no_offset() -> None:
    assert parse_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    plus_two = parse_time("2026-01-02T05:04:05+02:00")
    assert plus_two == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert plus_two is not None and plus_two.utcoffset() == timedelta(hours=2)
    naive = parse_time("2026-01-02T03:04:05")
    assert naive == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and naive is not None and naive.tzinfo is UTC
    assert parse_time("yesterday") is None
    assert parse_time("2026-01-02T03:04:05-05:00") == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))
    )


# -- model ------------------------------------------------------------------------------------------------


def test_each_manifest_is_deleted_and_a_failure_never_stops_the_others() -> None:
    manifests = [Manifest(D1, ("a",)), Manifest(D2, ("b", "c")), Manifest(D3)]

    def send(m: Manifest) -> requests.Response:
        if m.digest == D1:
            raise RegistryError("DELETE failed: ConnectionError")
        return answer(404 if m.digest == D2 else 202, body=m.digest.encode())

    failures = delete_each(manifests, send, {202, 404} - {404}, lambda r: f"answered {r.status_code}")
    assert [(f.digest, f.tags, f.error) for f in failures] == [
        (D1, ("a",), "DELETE failed: ConnectionError"),
        (D2, ("b", "c"), "answered 404"),
    ]
    assert delete_each(manifests[1:], send, {202, 404}, lambda r: "no") == []


def test_a_digest_is_bare_or_after_the_repository() -> None:
    assert normalize_digest(D1) == D1
    assert normalize_digest(f"ghcr.io/acme/hello@{D1}") == D1
    assert normalize_digest(f"localhost:5000/a@b@{D2}") == D2
    with pytest.raises(ValueError) as raised:
        normalize_digest("ghcr.io/acme/hello:1.0")
    assert (
        str(raised.value) == "'ghcr.io/acme/hello:1.0' is not a digest (sha256:<64 hex>) or a repo@sha256:… reference"
    )


@pytest.mark.parametrize(
    ("body", "media_type", "children"),
    [
        ({"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{"digest": D1}, {"digest": D2}]},
         None, (D1, D2)),
        ({"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "manifests": [{"digest": D3}]},
         None, (D3,)),
        ({"manifests": [{"digest": D1}]}, None, (D1,)),
        ({"manifests": []}, "application/vnd.oci.image.index.v1+json", ()),
        ({"mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}, None, ()),
        ({"layers": []}, "application/vnd.docker.distribution.manifest.v2+json", ()),
    ],
    ids=["oci_index", "docker_list", "manifests_only", "reported_index", "image", "reported_image"],
)  # fmt: skip
def test_an_index_lists_its_platform_manifests(body: dict[str, Any], media_type: str | None,
                                               children: tuple[str, ...]) -> None:  # fmt: skip
    assert index_children(body, "repo", D3, media_type) == children


@pytest.mark.parametrize("media_type", ["application/vnd.oci.image.index.v1+json",
                                        "application/vnd.docker.distribution.manifest.list.v2+json"])  # fmt: skip
@pytest.mark.parametrize("entries", [None, "x", [D1], [{"digest": D1}, "x"]], ids=["none", "text", "bare", "mixed"])
def test_an_index_without_descriptors_is_an_error(media_type: str, entries: object) -> None:
    for body, reported in (({"mediaType": media_type, "manifests": entries}, None), ({"manifests": entries}, None),
                           ({"manifests": entries} if entries is not None else {}, media_type)):  # fmt: skip
        with pytest.raises(RegistryError) as raised:
            index_children(body, "repo", D3, reported)
        assert str(raised.value) == f"repo: index {D3}: 'manifests' is not a list of descriptors"


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("GHCR.io/Acme/hello/", "ghcr.io/acme/hello"),
        ("https://ghcr.io/acme/hello", "ghcr.io/acme/hello"),
        ("HTTP://ghcr.io//acme/hello", "ghcr.io/acme/hello"),
        (" nginx ", "docker.io/library/nginx"),
        ("my.app", "docker.io/library/my.app"),  # one part is a name, dotted or not
        ("localhost", "docker.io/library/localhost"),
        ("index.docker.io/nginx", "docker.io/library/nginx"),
        ("registry-1.docker.io/library/nginx", "docker.io/library/nginx"),
        ("registry.hub.docker.com/acme/app", "docker.io/acme/app"),
        ("acme/app", "docker.io/acme/app"),
        ("localhost/app", "localhost/app"),
        ("LocalHost/app", "localhost/app"),
        ("localhost:5000/a/b", "localhost:5000/a/b"),
        ("example.com/a__b/c-d/e.f", "example.com/a__b/c-d/e.f"),
    ],
)
def test_one_spelling_per_repository(given: str, normal: str) -> None:
    assert normalize_repository(given) == normal


@pytest.mark.parametrize("given", ["", " / ", "https://", "ghcr.io/acme/hello:1.0", f"ghcr.io/acme/hello@{D1}",
                                   "ghcr.io/acme/-x", "ghcr.io/acme/a..b", "ghcr.io/acme/a b"])  # fmt: skip
def test_no_repository_name_is_refused(given: str) -> None:
    with pytest.raises(ValueError) as raised:
        normalize_repository(given)
    empty = f"repository {given!r} is empty"
    bad = (f"repository {given!r} must be <registry host>/<name> without a tag or digest (lower-case letters, digits "
           "and . _ - separators)")  # fmt: skip
    assert str(raised.value) in (empty, bad)
    assert (str(raised.value) == empty) is (given.strip() in ("", "/", "https://"))


@pytest.mark.parametrize(
    ("ref", "same"),
    [
        (f"ghcr.io/acme/hello@{D1}", True),
        (f"GHCR.io/acme/hello:1.0@{D1}", True),
        ("ghcr.io/acme/hello:1.0", True),
        (f"localhost:5000/hello:1.0@{D1}", False),
        (f"ghcr.io/acme/other@{D1}", False),
        (f"ghcr.io/acme/He llo@{D1}", False),
    ],
)
def test_an_image_belongs_to_its_repository_whatever_its_tag(ref: str, same: bool) -> None:
    assert same_repository(ref, "ghcr.io/acme/hello") is same


def test_a_registry_port_is_no_tag_and_a_name_that_is_no_repository_is_no_image_of_one() -> None:
    assert same_repository(f"localhost:5000/hello:1.0@{D1}", "localhost:5000/hello") is True
    assert same_repository(f"localhost:5000/hello@{D1}", "localhost:5000/hello") is True
    assert same_repository(f"hello:1.0@{D1}", "docker.io/library/hello") is True
    assert same_repository(f"localhost:5000/a:b/c@{D1}", "localhost:5000/a") is False
    assert same_repository(f"ghcr.io/acme/hello@x@{D1}", "ghcr.io/acme/hello") is False


# -- GHCR through the GitHub Packages API, answer by answer ------------------------------------------------


def _versions(*versions: dict[str, Any]) -> requests.Response:
    return answer(200, json.dumps(list(versions)).encode(), {"Content-Type": "application/json"})


def _ghcr(session: Session, reader: Any = None) -> GhcrRegistryClient:
    return GhcrRegistryClient("ghcr.io/acme/hello", token="tok", api="https://api.example/", session=session,
                              sleep=lambda _: None, reader=reader or _NoChildren())  # type: ignore[arg-type]  # fmt: skip


class _NoChildren:
    def children(self, digest: str) -> tuple[str, ...]:
        return ()


ORGS = "https://api.example/orgs/acme/packages/container/hello/versions"
USERS = "https://api.example/users/acme/packages/container/hello/versions"


def test_ghcr_sends_the_api_s_headers_and_reads_each_version() -> None:
    session = Session(_versions(
        {"id": 7, "name": D1, "created_at": "2026-01-02T03:04:05Z", "metadata": {"container": {"tags": ["b", "a"]}}},
        {"id": 8, "name": D2, "created_at": 5, "metadata": {"container": {"tags": "latest"}}},
        {"id": 9, "name": D3, "metadata": {"container": {"tags": ["ok", 5]}}},
        {"id": 10, "name": f"ghcr.io/acme/hello@{D1}", "metadata": {"container": "x"}},
        {"id": 11, "name": D2, "metadata": None},
    ))  # fmt: skip
    listed = _ghcr(session).list_manifests(need_dates=True)
    assert [(m.digest, m.tags, m.created, m.ref) for m in listed] == [
        (D1, ("a", "b"), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "7"),
        (D2, (), None, "8"),
        (D3, (), None, "9"),
        (D1, (), None, "10"),
        (D2, (), None, "11"),
    ]
    [(method, url, sent)] = session.requests
    assert (method, url) == ("GET", f"{ORGS}?per_page=100")
    assert requests.structures.CaseInsensitiveDict(sent["headers"]) == requests.structures.CaseInsensitiveDict(
        {"Accept": "application/vnd.github+json", "Authorization": "Bearer tok", "X-GitHub-Api-Version": "2022-11-28"}
    )


def test_ghcr_a_user_s_package_is_found_once_and_then_asked_for_directly() -> None:
    session = Session(answer(404), _versions({"id": 7, "name": D1}), _versions({"id": 7, "name": D1}), answer(204))
    client = _ghcr(session)
    client.list_manifests(need_dates=False)
    [manifest] = client.list_manifests(need_dates=False)
    assert client.delete([manifest]) == []
    assert [(m, u) for m, u, _ in session.requests] == [
        ("GET", f"{ORGS}?per_page=100"), ("GET", USERS), ("GET", USERS), ("DELETE", f"{USERS}/7"),
    ]  # fmt: skip


def test_ghcr_delete_lists_first_when_it_must_and_counts_204_and_404_as_done() -> None:
    session = Session(_versions({"id": 7, "name": D1}), answer(204), answer(404), answer(500, b"oops"))
    client = _ghcr(session)
    manifests = [Manifest(D1, ("a",), ref="7"), Manifest(D2, ref="8"), Manifest(D3, ("c",), ref="9")]
    assert [(f.digest, f.tags, f.error) for f in client.delete(manifests)] == [(D3, ("c",), "HTTP 500")]
    assert [(m, u) for m, u, _ in session.requests] == [
        ("GET", f"{ORGS}?per_page=100"), ("DELETE", f"{ORGS}/7"), ("DELETE", f"{ORGS}/8"), ("DELETE", f"{ORGS}/9"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, b'{"message": "Server Error"}', "HTTP 500: Server Error"),
        (502, b"<html>bad gateway</html>", "HTTP 502"),
        (500, b'{"message": ""}', "HTTP 500"),
        (500, b'{"message": 5}', "HTTP 500"),
        (500, b'["message"]', "HTTP 500"),
        (401, b'{"message": "Bad credentials"}', "GitHub refused (401: Bad credentials): the token needs read:packages "
         "and delete:packages and admin rights on the package; a public version with more than 5,000 downloads "
         "cannot be deleted"),
        (403, b"", "GitHub refused (403): the token needs read:packages and delete:packages and admin rights on the "
         "package; a public version with more than 5,000 downloads cannot be deleted"),
    ],
    ids=["message", "html", "empty_message", "number_message", "list", "401", "403"],
)  # fmt: skip
def test_ghcr_a_refused_delete_says_why(status: int, body: bytes, error: str) -> None:
    session = Session(_versions(), answer(status, body))
    [failure] = _ghcr(session).delete([Manifest(D1, ref="7")])
    assert failure.error == error


def test_ghcr_a_listing_that_fails_is_an_error_with_github_s_message() -> None:
    with pytest.raises(RegistryError) as raised:
        _ghcr(Session(answer(500, b'{"message": "Server Error"}'))).list_manifests(need_dates=False)
    assert str(raised.value) == "ghcr.io/acme/hello: listing package versions answered HTTP 500: Server Error"
    with pytest.raises(RegistryError) as raised:
        _ghcr(Session(answer(200, b"{}"))).list_manifests(need_dates=False)
    assert str(raised.value) == "ghcr.io/acme/hello: list package versions: expected a JSON list, got dict"


# -- ECR errors --------------------------------------------------------------------------------------------


def _ecr_error(exc: Exception) -> str:
    from components.registry.ecr import EcrApi

    api = EcrApi(ECR_REPO, client=object())  # type: ignore[arg-type]
    with pytest.raises(RegistryError) as raised:
        api._raise(exc, "list images")
    return f"{type(raised.value).__name__}: {raised.value}"


ECR_REPO = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello"


def test_ecr_errors_say_what_failed() -> None:
    from botocore.exceptions import ClientError, NoCredentialsError

    assert _ecr_error(NoCredentialsError()) == f"RegistryAuthError: {ECR_REPO}: no AWS credentials to list images"
    missing = ClientError({"Error": {"Code": "RepositoryNotFoundException"}}, "DescribeImages")
    assert _ecr_error(missing) == (
        f"RepositoryNotFoundError: {ECR_REPO}: repository hello not found in ECR account 123456789012"
    )
    denied = ClientError({"Error": {"Code": "ExpiredTokenException"}}, "DescribeImages")
    assert _ecr_error(denied) == f"RegistryAuthError: {ECR_REPO}: AWS refused to list images: ExpiredTokenException"
    bare = ClientError({}, "DescribeImages")
    assert _ecr_error(bare) == f"RegistryError: {ECR_REPO}: could not list images: {bare}"
    assert _ecr_error(ValueError("odd")) == f"RegistryError: {ECR_REPO}: could not list images: odd"


def test_ecr_without_boto3_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from components.registry.ecr import Boto3MissingError, import_boto3

    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(Boto3MissingError) as raised:
        import_boto3(ECR_REPO)
    assert str(raised.value) == (
        f"{ECR_REPO} is an Amazon ECR repository, which needs boto3 (import of boto3 halted; None in sys.modules); "
        "install the package's ecr extra: pip install 'service-lifecycle-components[ecr]'"
    )


class _Ecr:
    """ECR's calls as boto3 makes them, answered from what the test sets; every call recorded."""

    def __init__(self, *, images: list[dict[str, Any]] | None = None, read: dict[str, Any] | None = None,
                 deleted: dict[str, Any] | Exception | None = None) -> None:  # fmt: skip
        self.images, self.read, self.deleted = images or [], read or {}, deleted or {}
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_paginator(self, name: str) -> Any:
        ecr = self

        class Pages:
            def paginate(self, **kwargs: Any) -> list[dict[str, Any]]:
                ecr.calls.append((name, kwargs))
                return [{"imageDetails": ecr.images}, {}]  # a page may say nothing

        return Pages()

    def batch_get_image(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("batch_get_image", kwargs))
        if "images" in self.read and self.read["images"] == "each":  # a plain image for every digest asked
            return {"images": [{"imageId": i, "imageManifest": "{}"} for i in kwargs["imageIds"]]}
        return self.read

    def batch_delete_image(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("batch_delete_image", kwargs))
        if isinstance(self.deleted, Exception):
            raise self.deleted
        return self.deleted


def _ecr_client(ecr: _Ecr) -> Any:
    from components.registry.ecr import EcrRegistryClient

    return EcrRegistryClient(ECR_REPO, client=ecr)  # type: ignore[arg-type]


def test_ecr_deletes_by_digest_and_reports_each_image_ecr_refused() -> None:
    ecr = _Ecr(deleted={"imageIds": [], "failures": [
        {"imageId": {"imageDigest": D2}, "failureCode": "ImageReferencedByManifestList", "failureReason": "in use"},
        {"imageId": {"imageDigest": D3}, "failureCode": "ImageNotFound"},
        {"failureCode": "InvalidImageDigest", "failureReason": "odd"},
    ]})  # fmt: skip
    failures = _ecr_client(ecr).delete([Manifest(D1, ("a",)), Manifest(D2, ("b",))])
    assert [(f.digest, f.tags, f.error) for f in failures] == [
        (D2, ("b",), "ImageReferencedByManifestList: in use"),
        (D3, (), "ImageNotFound: None"),
        ("", (), "InvalidImageDigest: odd"),
    ]
    assert ecr.calls == [("batch_delete_image", {"registryId": "123456789012", "repositoryName": "hello",
                                                 "imageIds": [{"imageDigest": D1}, {"imageDigest": D2}]})]  # fmt: skip
    assert _ecr_client(_Ecr(deleted={"imageIds": [{"imageDigest": D1}]})).delete([Manifest(D1)]) == []


def test_ecr_a_refused_delete_call_fails_each_image_of_it() -> None:
    from botocore.exceptions import ClientError

    denied = ClientError({"Error": {"Code": "AccessDeniedException"}}, "BatchDeleteImage")
    failures = _ecr_client(_Ecr(deleted=denied)).delete([Manifest(D1, ("a",)), Manifest(D2)])
    error = f"{ECR_REPO}: AWS refused to delete images: AccessDeniedException"
    assert [(f.digest, f.tags, f.error) for f in failures] == [(D1, ("a",), error), (D2, (), error)]
    odd = ClientError({"Error": {"Code": "ServerException"}}, "BatchDeleteImage")
    [failure] = _ecr_client(_Ecr(deleted=odd)).delete([Manifest(D1)])
    assert failure.error == f"{ECR_REPO}: could not delete images: {odd}"


def test_ecr_an_index_is_read_to_find_its_platforms() -> None:
    oci_index, oci_image = "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json"
    index = json.dumps({"mediaType": oci_index, "manifests": [{"digest": D2}]})
    ecr = _Ecr(
        images=[{"imageDigest": D1, "imageTags": ["v1"], "imageManifestMediaType": oci_index},
                {"imageDigest": D2, "imageManifestMediaType": oci_image}],
        read={"images": [{"imageId": {"imageDigest": D1}, "imageManifest": index}]},
    )  # fmt: skip
    listed = _ecr_client(ecr).list_manifests(need_dates=False)
    assert [(m.digest, m.tags, m.children) for m in listed] == [(D1, ("v1",), (D2,)), (D2, (), ())]
    assert [name for name, _ in ecr.calls] == ["describe_images", "batch_get_image"]


@pytest.mark.parametrize(
    ("read", "error"),
    [
        ({"failures": [{"failureCode": "ImageNotFound", "failureReason": "gone"}]},
         "could not read manifest ?: ImageNotFound: gone"),
        ({"failures": [{"imageId": {"imageDigest": D1}, "failureCode": "ImageNotFound"}]},
         f"could not read manifest {D1}: ImageNotFound: None"),
        ({}, f"could not read manifest {D1}: ECR did not return it"),
        ({"images": [{"imageManifest": "{}"}]}, f"could not read manifest {D1}: ECR did not return it"),
        ({"images": [{"imageId": {"imageDigest": D1}}]}, f"manifest {D1} is not a JSON object"),
        ({"images": [{"imageId": {"imageDigest": D1}, "imageManifest": "[1]"}]}, f"manifest {D1} is not a JSON object"),
    ],
    ids=["failure_without_id", "failure", "no_images", "image_without_id", "no_manifest", "not_an_object"],
)  # fmt: skip
def test_ecr_a_manifest_that_cannot_be_read_stops_the_listing(read: dict[str, Any], error: str) -> None:
    ecr = _Ecr(images=[{"imageDigest": D1, "imageTags": ["v1"]}], read=read)  # no media type: read to be sure
    with pytest.raises(RegistryError) as raised:
        _ecr_client(ecr).list_manifests(need_dates=False)
    assert str(raised.value) == f"{ECR_REPO}: {error}"


def test_ghcr_waits_with_the_given_sleep_and_names_the_repository_in_http_errors() -> None:
    waits: list[float] = []
    session = Session(answer(503, headers={"Retry-After": "3"}), _versions({"id": 7, "name": D1}))
    client = GhcrRegistryClient("ghcr.io/acme/hello", token="tok", api="https://ghe.example/api/v3/",
                                session=session, sleep=waits.append, reader=_NoChildren())  # type: ignore[arg-type]  # fmt: skip
    assert [m.digest for m in client.list_manifests(need_dates=False)] == [D1] and waits == [3.0]
    assert (
        session.requests[0][1] == "https://ghe.example/api/v3/orgs/acme/packages/container/hello/versions?per_page=100"
    )
    busy = Session(*[answer(503) for _ in range(4)])
    with pytest.raises(RegistryError) as raised:
        _ghcr(busy).list_manifests(need_dates=False)
    assert str(raised.value) == (f"ghcr.io/acme/hello: GET {ORGS} still answered 503 after 4 attempts; run again later")


def test_ghcr_without_a_token_says_which_setting_takes_it() -> None:
    from components.registry.http import RegistryAuthError

    with pytest.raises(RegistryAuthError) as raised:
        GhcrRegistryClient("ghcr.io/acme/hello", token="", reader=_NoChildren())  # type: ignore[arg-type]
    assert str(raised.value) == (
        "ghcr.io/acme/hello: GHCR deletes through the GitHub API, which needs a token (read:packages and "
        "delete:packages): set registryPassword to it"
    )


def test_ecr_the_media_type_batch_get_image_reports_makes_an_index_of_a_manifest_without_one() -> None:
    bare = json.dumps({"schemaVersion": 2})
    oci_index, docker_list = (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )

    def read(media_type: str | None = None) -> dict[str, Any]:
        image = {"imageId": {"imageDigest": D1}, "imageManifest": bare}
        return {"images": [{**image, "imageManifestMediaType": media_type} if media_type else image]}

    for reported in (oci_index, docker_list):
        with pytest.raises(RegistryError) as raised:
            _ecr_client(_Ecr(images=[{"imageDigest": D1}], read=read(reported))).list_manifests(need_dates=False)
        assert str(raised.value) == f"{ECR_REPO}: index {D1}: 'manifests' is not a list of descriptors"
    listed_as_index = _Ecr(images=[{"imageDigest": D1, "imageManifestMediaType": oci_index}], read=read())
    with pytest.raises(RegistryError, match="'manifests' is not a list of descriptors"):
        _ecr_client(listed_as_index).list_manifests(need_dates=False)
    plain = _Ecr(images=[{"imageDigest": D1}], read=read())
    assert [m.children for m in _ecr_client(plain).list_manifests(need_dates=False)] == [()]


def test_ecr_reads_manifests_a_hundred_at_a_time() -> None:
    digests = [f"sha256:{n:064x}" for n in range(101)]
    ecr = _Ecr(images=[{"imageDigest": d} for d in digests], read={"images": "each"})
    assert len(_ecr_client(ecr).list_manifests(need_dates=False)) == 101
    asked = [[i["imageDigest"] for i in kwargs["imageIds"]] for name, kwargs in ecr.calls if name == "batch_get_image"]
    assert asked == [digests[:100], digests[100:]]


def test_ecr_repository_urls() -> None:
    from components.registry.ecr import Boto3MissingError, EcrApi

    nested = EcrApi("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/hello", client=object())  # type: ignore[arg-type]
    assert (nested.name, nested.account) == ("team/hello", "123456789012")
    for wrong in (
        "quay.io/acme/hello",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        "ghcr.io/a/123456789012.dkr.ecr.eu-west-1.amazonaws.com/x",
    ):
        with pytest.raises(ValueError) as raised:
            EcrApi(wrong, client=object())  # type: ignore[arg-type]
        assert str(raised.value) == f"{wrong!r} is not an Amazon ECR repository URL"
    made = EcrApi(ECR_REPO)
    assert made._client.meta.region_name == "eu-west-1"
    sys.modules["boto3"], saved = None, sys.modules["boto3"]  # type: ignore[assignment]
    try:
        with pytest.raises(Boto3MissingError, match=f"^{ECR_REPO} is an Amazon ECR repository, which needs boto3"):
            EcrApi(ECR_REPO)
    finally:
        sys.modules["boto3"] = saved

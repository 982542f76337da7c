"""components/config/settings/sources.py, and loading.py's entry points, piece by piece: where a service of
several reads a key, how its problems are told once, which lists of services are accepted.

tests/unit/test_library.py drives :func:`load_services` with whole configurations; these pin its parts.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from components.config.problems import SettingProblem
from components.config.settings import SettingsError
from components.config.settings.sources import _name_clashes, _once, _service_names, _ServiceSource


class Source:
    """A ConfigSource over plain values; a secret is whatever object the test gives."""

    def __init__(self, values: dict[str, str] | None = None, secrets: dict[str, Any] | None = None) -> None:
        self.values, self.secrets = values or {}, secrets or {}

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def get_secret(self, name: str) -> Any:
        return self.secrets.get(name)


def test_a_service_reads_its_own_namespace_then_the_shared_one() -> None:
    own = Source({"replicas": "4", "serviceName": "storefront"}, {"registryPassword": "own-token"})
    shared = Source({"replicas": "2", "team": "shop", "serviceName": "x"}, {"registryPassword": "shared", "k": "s"})
    source = _ServiceSource("web", own, shared)  # type: ignore[arg-type]
    assert (source.get("replicas"), source.get("team"), source.get("zoneName")) == ("4", "shop", None)
    assert source.get("serviceName") == "storefront"
    assert _ServiceSource("web", Source(), shared).get("serviceName") == "web"  # type: ignore[arg-type]  # never shared
    assert (source.get_secret("registryPassword"), source.get_secret("k"), source.get_secret("none")) == (
        "own-token", "s", None,
    )  # fmt: skip


def test_a_service_sets_a_key_its_namespace_or_the_shared_one_sets() -> None:
    source = _ServiceSource("web", Source({"replicas": "4"}), Source({"team": "shop"}))  # type: ignore[arg-type]
    assert [source.sets(k) for k in ("replicas", "team", "zoneName")] == [True, True, False]


def test_a_problem_names_the_key_where_the_value_was_read() -> None:
    own = Source({"replicas": "4", "team": "web-team"})
    shared = Source({"team": "shop", "zoneName": "example.com", "serviceName": "shop"})
    source = _ServiceSource("web", own, shared)  # type: ignore[arg-type]
    where = {k: source.where(k, shared="shop") for k in ("replicas", "team", "zoneName", "hostnames", "serviceName")}
    assert where == {"replicas": "web:replicas", "team": "web:team", "zoneName": "shop:zoneName",
                     "hostnames": "web:hostnames", "serviceName": "web:serviceName"}  # fmt: skip


def _problem(key: str, value: str = "<not set>", expected: str = "a value") -> SettingProblem:
    return SettingProblem(key, value, expected)


def test_a_key_no_namespace_sets_that_two_services_miss_is_the_projects_once() -> None:
    per_service = {"web": [_problem("web:zoneName")], "api": [_problem("api:zoneName")]}
    assert _once(per_service, "shop", lambda service, short: False) == [_problem("shop:zoneName")]


def test_a_key_one_service_misses_stays_that_services() -> None:
    per_service = {"web": [], "api": [_problem("api:imageRepository")]}
    assert _once(per_service, "shop", lambda service, short: False) == [_problem("api:imageRepository")]
    # the same line from a service that sets the key is that service's, and does not make the other's shared
    alike = {"web": [_problem("web:imageRepository")], "api": [_problem("api:imageRepository")]}
    sets = {("api", "imageRepository")}
    assert _once(alike, "shop", lambda service, short: (service, short) in sets) == [
        _problem("web:imageRepository"),
        _problem("api:imageRepository"),
    ]


def test_a_default_refused_for_two_services_is_the_projects_and_a_third_s_own_value_stays_its() -> None:
    """accessEnabled set nowhere for web and api (their default false refused) is shop:accessEnabled, once;
    worker's own ``worker:accessEnabled: false`` is worker's to change."""
    refused = ("'false'", "true: stage staging is always behind Cloudflare Access")
    per_service = {s: [_problem(f"{s}:accessEnabled", *refused)] for s in ("web", "api", "worker")}
    assert _once(per_service, "shop", lambda service, short: (service, short) == ("worker", "accessEnabled")) == [
        _problem("shop:accessEnabled", *refused),
        _problem("worker:accessEnabled", *refused),
    ]


def test_a_shared_key_s_problem_is_told_once_and_each_service_s_own_is_kept() -> None:
    shared = _problem("shop:team", "'Shop'", "a lower-case team name")
    per_service = {
        "web": [shared, _problem("web:replicas", "'0'", "1 to 50")],
        "api": [shared, _problem("api:replicas", "'0'", "1 to 50")],
    }
    sets = {("web", "replicas"), ("api", "replicas"), ("web", "team"), ("api", "team")}
    assert _once(per_service, "shop", lambda service, short: (service, short) in sets) == [
        shared,
        _problem("web:replicas", "'0'", "1 to 50"),
        _problem("api:replicas", "'0'", "1 to 50"),
    ]


@pytest.mark.parametrize("listed", ["web", "[web", "{}", "[]", '["web", "web"]', '["web", 5]', '["Web"]', '["aws"]',
                                    '["shop"]', '["-web"]'])  # fmt: skip
def test_a_services_list_is_a_non_empty_list_of_distinct_free_names(listed: str) -> None:
    with pytest.raises(SettingsError) as raised:
        _service_names(listed, "shop")
    assert [str(p) for p in raised.value.problems] == [
        f"shop:services: got {listed!r}; expected a non-empty list of distinct service names (DNS-1123 labels), "
        "none of them a provider's configuration namespace (aws, cloudflare, config, docker, kubernetes, pulumi) "
        "or shop"
    ]


def test_a_services_list_keeps_its_order() -> None:
    assert _service_names('["web", "api", "worker-2"]', "shop") == ["web", "api", "worker-2"]


class _Named:
    def __init__(self, name: str) -> None:
        self.service_name = name


def test_a_name_an_earlier_service_has_is_refused_once_per_later_service() -> None:
    result = {"web": _Named("web"), "api": _Named("web"), "worker": _Named("web"), "jobs": _Named("jobs")}
    assert [str(p) for p in _name_clashes(result)] == [  # type: ignore[arg-type]
        "api:serviceName: got 'web'; expected a name web does not have",
        "worker:serviceName: got 'web'; expected a name web does not have",
    ]


# -- settings without a stack file (components/config/settings/loading.py) ------------------------------------

STAGING = {
    "stage": "staging", "serviceName": "web", "team": "web", "appVersion": "1.0.0",
    "imageRepository": "ghcr.io/acme/web", "cloudflareAccountId": "0" * 32, "cloudflareZoneId": "1" * 32,
    "zoneName": "example.com", "hostnames": ["web.example.com"], "accessEnabled": True,
    "accessAllowEmailDomains": ["example.com"], "registryUsername": "ci", "registryPassword": "x",
}  # fmt: skip


def test_the_environment_given_is_the_one_read_for_the_source_revision() -> None:
    from components.config import schema
    from components.config.settings import Settings, settings_from_mapping

    keywords = {schema.BY_NAME[k].python_name: v for k, v in STAGING.items()}
    created = Settings.create(environ={"SOURCE_REVISION": "abcdef1"}, **keywords)
    assert created.build is not None and created.build.revision == "abcdef1"
    mapped = settings_from_mapping(STAGING, environ={"GITHUB_SHA": "1234567"})
    assert mapped.build is not None and mapped.build.revision == "1234567"


def test_an_unknown_key_far_from_every_setting_is_refused_without_a_hint() -> None:
    from components.config.settings import settings_from_mapping

    with pytest.raises(SettingsError) as raised:
        settings_from_mapping({**STAGING, "zzqqxxjj": 1, "replica": 2}, environ={"SOURCE_REVISION": "abcdef1"})
    assert [str(p) for p in raised.value.problems] == [
        "zzqqxxjj: got 1; expected a setting of components.schema",
        "replica: got 2; expected a setting of components.schema (did you mean replicas?)",
    ]


@pulumi.runtime.test
def test_a_secret_given_as_an_output_stays_that_output_s_value_and_a_secret() -> pulumi.Output[None]:
    from components.config.settings import settings_from_mapping

    settings = settings_from_mapping({**STAGING, "cloudflareApiToken": pulumi.Output.from_input("tok-9")},
                                     environ={"SOURCE_REVISION": "abcdef1"})  # fmt: skip
    token = settings.cloudflare.api_token
    assert token is not None

    def check(args: list[Any]) -> None:
        assert args == ["tok-9", True]

    return pulumi.Output.all(token, pulumi.Output.from_input(token).is_secret()).apply(check)  # type: ignore[arg-type]


# -- load_services piece by piece: what it passes to load_settings ------------------------------------------


def _plain(values: dict[str, Any]) -> dict[str, str]:
    """Values as a stack's config hands them over: text, lists as JSON, booleans as true/false."""
    import json

    return {k: json.dumps(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in values.items()}  # fmt: skip


def test_without_a_services_list_the_environment_and_the_namespace_given_are_the_ones_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from components.config.settings import load_services

    environ = {"SOURCE_REVISION": "abcdef1"}
    source = Source(_plain(STAGING), {"registryPassword": "x"})  # no `name`: the project's namespace
    assert load_services(source, environ=environ)["web"].build.revision == "abcdef1"  # type: ignore[arg-type,union-attr]
    with pytest.raises(SettingsError) as raised:
        load_services(
            Source(_plain({**STAGING, "replicas": 0}), {"registryPassword": "x"}), environ=environ, namespace="acme"
        )  # type: ignore[arg-type]
    assert [p.key for p in raised.value.problems] == ["acme:replicas"]
    monkeypatch.setattr(pulumi, "Config", lambda *args: source)  # the running program's config, by default
    assert load_services(environ=environ)["web"].build.revision == "abcdef1"  # type: ignore[union-attr]


def test_each_listed_service_reads_the_environment_given() -> None:
    from components.config.settings import load_services

    shared = {k: v for k, v in _plain(STAGING).items() if k not in ("serviceName", "imageRepository", "hostnames")}
    own = {name: Source(_plain({"imageRepository": f"ghcr.io/acme/{name}", "hostnames": [f"{name}.example.com"]}))
           for name in ("web", "api")}  # fmt: skip
    project = Source({**shared, "services": '["web", "api"]'}, {"registryPassword": "x"})
    services = load_services(
        project, namespace_source=own.__getitem__,  # type: ignore[arg-type]
        environ={"SOURCE_REVISION": "abcdef1"}, namespace="shop",
    )  # fmt: skip
    assert [s.build.revision for s in services.values()] == ["abcdef1", "abcdef1"]  # type: ignore[union-attr]


def test_one_bad_value_each_service_sets_alike_stays_each_service_s() -> None:
    from components.config.settings import load_services

    shared = {k: v for k, v in _plain(STAGING).items() if k not in ("serviceName", "imageRepository", "hostnames")}
    own = {name: Source(_plain({"imageRepository": f"ghcr.io/acme/{name}", "hostnames": [f"{name}.example.com"],
                                "replicas": 0}))
           for name in ("web", "api")}  # fmt: skip
    project = Source({**shared, "services": '["web", "api"]'}, {"registryPassword": "x"})
    with pytest.raises(SettingsError) as raised:
        load_services(
            project, namespace_source=own.__getitem__,  # type: ignore[arg-type]
            environ={"SOURCE_REVISION": "abcdef1"}, namespace="shop",
        )  # fmt: skip
    assert [p.key for p in raised.value.problems] == ["web:replicas", "api:replicas"]

"""Several services in one program.

:func:`load_services` reads every service a stack runs (``<project>:services``), each from its own
namespace first, then the project's shared keys, with :func:`components.config.settings.loading.load_settings`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, Final

import pulumi

from components.config.problems import PROJECT, SettingProblem
from components.config.settings.loading import Settings, load_settings
from components.config.settings.model import _DNS_LABEL, ConfigSource, SettingsError

SERVICES_KEY: Final = "services"
"""Project key listing the services of a program that runs several (see :func:`load_services`)."""
RESERVED_NAMESPACES: Final = frozenset({"pulumi", "kubernetes", "cloudflare", "docker", "aws", "config"})
"""Configuration namespaces of the providers: no service may take one as its own."""


class _ServiceSource:
    """One service of several: its own namespace first, then the project's shared keys."""

    def __init__(self, service: str, own: ConfigSource, shared: ConfigSource) -> None:
        self.service = service
        self._own = own
        self._shared = shared

    def get(self, name: str) -> str | None:
        if name == "serviceName":  # never shared: every service would take the same name
            return self._own.get(name) or self.service
        value = self._own.get(name)
        return self._shared.get(name) if value is None else value

    def get_secret(self, name: str) -> pulumi.Output[str] | None:
        value = self._own.get_secret(name)
        return self._shared.get_secret(name) if value is None else value

    def sets(self, name: str) -> bool:
        """Whether the service's own namespace or the shared one sets ``name`` (else: its default, or missing)."""
        return self._own.get(name) is not None or self._shared.get(name) is not None

    def where(self, name: str, *, shared: str) -> str:
        """The key as the user wrote it: the service's own, else the shared one, else (missing) the service's."""
        if name != "serviceName" and self._own.get(name) is None and self._shared.get(name) is not None:
            return f"{shared}:{name}"
        return f"{self.service}:{name}"


def load_services(
    config: ConfigSource | None = None,
    *,
    namespace_source: Callable[[str], ConfigSource] | None = None,
    environ: Mapping[str, str] | None = None,
    namespace: str | None = None,
) -> dict[str, Settings]:
    """Settings of every service a stack runs, by service name: the one way to run several.

    Without a ``services`` key this is :func:`load_settings` (one service, the project's keys).
    With ``<project>:services: [web, api]`` each service reads its own namespace first
    (``web:imageRepository``), then the project's shared keys (``<project>:stage``), then the
    schema's defaults; its ``serviceName`` is its name unless its namespace sets one. Every
    service is validated, and all problems come in one :class:`SettingsError`, each naming the key
    where the value was read. ``namespace_source`` gives the source of another namespace
    (default ``pulumi.Config``).
    """
    shared: ConfigSource = config if config is not None else pulumi.Config()
    prefix = namespace or getattr(shared, "name", None) or PROJECT
    listed = shared.get(SERVICES_KEY)
    if listed is None:
        settings = load_settings(shared, environ=environ, namespace=prefix)
        return {settings.service_name: settings}
    names = _service_names(listed, prefix)
    make_source = namespace_source or pulumi.Config
    result: dict[str, Settings] = {}
    problems: list[SettingProblem] = []
    shared_name = shared.get("serviceName")
    if shared_name is not None:  # silently unused otherwise: each service is named by its entry
        problems.append(
            SettingProblem(f"{prefix}:serviceName", repr(shared_name), f"not set: {prefix}:{SERVICES_KEY} names them")
        )
    per_service: dict[str, list[SettingProblem]] = {}
    sources: dict[str, _ServiceSource] = {}
    for service in names:
        source = sources[service] = _ServiceSource(service, make_source(service), shared)
        try:
            settings = load_settings(source, environ=environ, label=partial(source.where, shared=prefix))
        except SettingsError as error:
            per_service[service] = list(error.problems)
            continue
        if settings.promotion is not None:  # each service promotes its own output of the source stack
            promotion = dataclasses.replace(settings.promotion, output=image_ref_output(service), service=service)
            settings = dataclasses.replace(settings, promotion=promotion)
        result[service] = settings
    problems += _once(per_service, prefix, lambda service, short: sources[service].sets(short))
    problems += _name_clashes(result)
    if problems:
        raise SettingsError(problems)
    return result


def image_ref_output(service: str) -> str:
    """The output a program of several services exports each service's image under: ``<service>_image_ref``."""
    return f"{service}_image_ref"


def _once(
    per_service: Mapping[str, list[SettingProblem]], prefix: str, sets: Callable[[str, str], bool]
) -> list[SettingProblem]:
    """Every service's problems, each shared problem once.

    A shared key (``<prefix>:replicas``) read by every service is reported by each: once here. A key
    no namespace sets (missing, or its default refused) that two or more services report alike is the
    project's to set (``<prefix>:zoneName``), not each service's; reported by one service only, it stays
    that service's (``api:imageRepository``). ``sets(service, key)``: whether a namespace sets it.
    """
    alike: dict[tuple[str, str, str], int] = {}
    for service, found in per_service.items():
        for problem in found:
            short = _short(problem.key)
            if problem.key == f"{service}:{short}" and not sets(service, short):
                identity = (short, problem.value, problem.expected)
                alike[identity] = alike.get(identity, 0) + 1
    seen: set[tuple[str, str, str]] = set()
    result: list[SettingProblem] = []
    for service, found in per_service.items():
        for problem in found:
            short = _short(problem.key)
            unset = problem.key == f"{service}:{short}" and not sets(service, short)
            shared = unset and alike.get((short, problem.value, problem.expected), 0) > 1
            reported = dataclasses.replace(problem, key=f"{prefix}:{short}") if shared else problem
            identity = (reported.key, reported.value, reported.expected)
            if identity not in seen:
                seen.add(identity)
                result.append(reported)
    return result


def _short(key: str) -> str:
    return key.rpartition(":")[2]


def _service_names(listed: str, prefix: str) -> list[str]:
    """The services ``<prefix>:services`` lists; a :class:`SettingsError` when it is not a list of distinct names."""
    try:
        names: Any = json.loads(listed)
    except json.JSONDecodeError:
        names = None
    expected = (
        "a non-empty list of distinct service names (DNS-1123 labels), none of them a provider's "
        f"configuration namespace ({', '.join(sorted(RESERVED_NAMESPACES))}) or {prefix}"
    )
    if (
        not isinstance(names, list)
        or not names
        or len(set(map(str, names))) != len(names)
        or not all(isinstance(n, str) and _DNS_LABEL.fullmatch(n) and n not in RESERVED_NAMESPACES for n in names)
        or prefix in names
    ):
        raise SettingsError([SettingProblem(f"{prefix}:{SERVICES_KEY}", repr(listed), expected)])
    return names


def _name_clashes(result: Mapping[str, Settings]) -> list[SettingProblem]:
    """A problem for each service whose own namespace gives it a name an earlier service has."""
    problems: list[SettingProblem] = []
    taken: dict[str, str] = {}
    for service, settings in result.items():
        if settings.service_name in taken:
            other = taken[settings.service_name]
            problems.append(
                SettingProblem(f"{service}:serviceName", repr(settings.service_name), f"a name {other} does not have")
            )
        taken.setdefault(settings.service_name, service)
    return problems

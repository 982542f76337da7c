"""Typed settings: :class:`Settings`, and :func:`load_settings`, which reads and validates them.

:func:`load_settings` runs the steps of :mod:`components.config.settings.steps` in order and raises
one :class:`SettingsError` listing every problem; :func:`settings_from_mapping` and
:meth:`Settings.create` read a mapping or keywords with the checks and error lines of a stack file.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pulumi

from components.config import schema
from components.config.problems import PROJECT, SettingProblem, shown_value
from components.config.settings.model import (
    BuildSettings,
    CloudflareSettings,
    ConfigSource,
    KubernetesSettings,
    MonitoringSettings,
    PromotionSettings,
    RegistrySettings,
    Resources,
    SettingsError,
)
from components.config.settings.reading import _Reader, _string_items
from components.config.settings.steps import (
    _read_build,
    _read_cloudflare,
    _read_kubernetes,
    _read_label_scheme,
    _read_monitoring,
    _read_name_suffix,
    _read_promotion,
    _read_registry,
    _read_service,
    _read_stage,
)
from components.labels import DEFAULT_SCHEME, LabelScheme
from components.lifecycle import Stage, StageParts


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the program needs, validated."""

    stage: Stage
    parts: StageParts
    service_name: str
    team: str
    app_version: str
    replicas: int
    container_port: int
    resources: Resources
    serves_http: bool = True
    """The pods serve HTTP (Service, probes, scraping, request alerts); False: a worker that serves nothing."""
    registry: RegistrySettings
    build: BuildSettings | None
    """Present only in stages that build."""
    promotion: PromotionSettings | None
    """Present only in stages that promote."""
    kubernetes: KubernetesSettings
    cloudflare: CloudflareSettings
    monitoring: MonitoringSettings
    name_suffix: str | None = None
    """``nameSuffix``: appended to the ``<service>-<stage>`` names; None (the default): not set."""
    labels: LabelScheme = DEFAULT_SCHEME
    """``labelPrefix`` and ``managedBy``: the label keys and managed-by value of every object."""

    @property
    def namespace(self) -> str:
        """The service's namespace in this stage: ``<service>-<stage>``, or ``<service>-<stage>-<nameSuffix>``.
        The Cloudflare tunnel, the Access names and the dashboard are named after it too."""
        base = f"{self.service_name}-{self.stage.value}"
        return f"{base}-{self.name_suffix}" if self.name_suffix else base

    @classmethod
    def create(cls, *, environ: Mapping[str, str] | None = None, **values: object) -> Settings:
        """Settings from keyword arguments named after the settings (``service_name="web"``).

        (``build`` is taken: it is the build settings' field.) The same checks as a stack file and
        the schema's defaults; problem lines name the keywords.
        """
        return _validated(values, keyword=True, namespace=None, environ=environ)


def load_settings(
    config: ConfigSource | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    namespace: str | None = None,
    label: Callable[[str], str] | None = None,
) -> Settings:
    """Read and validate every setting; raise :class:`SettingsError` listing all problems.

    ``config`` defaults to ``pulumi.Config()`` (the running project's namespace); ``environ`` (for
    the source revision fallback) defaults to ``os.environ``. Problem lines name keys as
    ``<namespace>:<key>``: ``namespace`` defaults to the config's own (``pulumi.Config.name``), else
    ``service-lifecycle``; ``label`` (key → shown name) overrides that.
    """
    source: ConfigSource = config if config is not None else pulumi.Config()
    env = os.environ if environ is None else environ
    prefix = namespace or getattr(source, "name", None) or PROJECT
    r = _Reader(source, label or (lambda name: f"{prefix}:{name}"))

    # Every step reads all of its keys whatever came before, so one error lists every problem, in
    # this order. A step returns None after reporting a problem (build, promotion: also when the stage has none).
    stage, parts = _read_stage(r)
    if parts is not None and parts.exposure and _string_items(r.raw("hostnames") or "") == []:
        # hostnames: [] is a service without a public hostname (internal, worker): nothing to expose
        parts = dataclasses.replace(parts, exposure=False, access_required=False)
    service = _read_service(r, stage, parts)
    registry = _read_registry(r, parts)
    build = _read_build(r, parts, env)
    promotion = _read_promotion(r, stage, parts)
    kubernetes = _read_kubernetes(r)
    cloudflare = _read_cloudflare(r, stage, parts)
    monitoring = _read_monitoring(r)
    name_suffix = _read_name_suffix(r, service.service_name if service else None, stage)
    label_scheme = _read_label_scheme(r)
    if r.problems:
        raise SettingsError(r.problems)

    # No problem, so only build and promotion may be None; the assert narrows the types for mypy.
    assert stage and parts and service and registry and kubernetes and cloudflare and monitoring
    return Settings(
        stage=stage,
        parts=parts,
        service_name=service.service_name,
        team=service.team,
        app_version=service.app_version,
        replicas=service.replicas,
        container_port=service.container_port,
        resources=service.resources,
        serves_http=service.serves_http,
        registry=registry,
        build=build,
        promotion=promotion,
        kubernetes=kubernetes,
        cloudflare=cloudflare,
        monitoring=monitoring,
        name_suffix=name_suffix,
        labels=label_scheme,
    )


def config_text(value: object) -> str:
    """A Python value as the Pulumi CLI hands configuration to a program: text, lists as JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


class _MappingSource:
    """A :class:`ConfigSource` over key → Python value; secret values become Pulumi secrets."""

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = values

    def get(self, name: str) -> str | None:
        value = self._values.get(name)
        return None if value is None else config_text(value)

    def get_secret(self, name: str) -> pulumi.Output[str] | None:
        value = self._values.get(name)
        if value is None:
            return None
        if isinstance(value, pulumi.Output):
            return pulumi.Output.secret(value)
        return pulumi.Output.secret(config_text(value))


def _validated(
    values: Mapping[str, object], *, keyword: bool, namespace: str | None, environ: Mapping[str, str] | None
) -> Settings:
    def given(name: str) -> str:
        setting = schema.BY_NAME.get(name)
        return setting.python_name if keyword and setting else name

    def shown(written: str) -> str:
        return f"{namespace}:{written}" if namespace else written

    known = schema.BY_PYTHON_NAME if keyword else schema.BY_NAME
    problems: list[SettingProblem] = []
    by_name: dict[str, object] = {}
    for written, value in values.items():
        setting = known.get(written)
        if setting is None:
            close = difflib.get_close_matches(written, list(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            # an unknown key may be a misspelt secret: looks_secret knows the schema's secrets, typos included
            problems.append(
                SettingProblem(shown(written), shown_value(written, value), f"a setting of components.schema{hint}")
            )
        elif isinstance(value, pulumi.Output) and not setting.secret:
            problems.append(SettingProblem(shown(written), "an Output", "a plain value (only secrets may be Outputs)"))
        else:
            by_name[setting.name] = value
    try:
        settings = load_settings(_MappingSource(by_name), environ=environ, label=lambda name: shown(given(name)))
    except SettingsError as error:
        reported = {p.key for p in problems}  # a refused value is not also "not set"
        raise SettingsError([*problems, *(p for p in error.problems if p.key not in reported)]) from None
    if problems:
        raise SettingsError(problems)
    return settings


def settings_from_mapping(
    values: Mapping[str, object], *, namespace: str | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from a plain mapping of configuration keys (``{"serviceName": "web", "replicas": 2}``).

    Values may be Python values (numbers, booleans, lists) or text as in a stack file; secret
    settings become Pulumi secrets (a :class:`pulumi.Output` is kept as one). The schema's
    defaults fill what is not given; the checks and problem lines are those of a stack file, keys
    named ``<namespace>:<key>`` when ``namespace`` is given, else as written. An unknown key is a
    problem too (with a did-you-mean).
    """
    return _validated(values, keyword=False, namespace=namespace, environ=environ)

"""A stack's configuration as the Pulumi CLI would hand it to the program, read from the project's files.

:func:`load_stack_config` runs the stack's configuration as a one-way pipeline; each stage takes
the previous stage's result and never calls back:

1. read (:func:`components.config.stackfile.read_stack`): the project's files through the
   hostile-input reader (size, depth, aliases, duplicate keys);
2. the Pulumi CLI's merge and rules, one step returning all its problems
   (:func:`components.config.stack_rules.cli_config`);
3. our stricter checks (:func:`checked`, here): namespace typos, provider keys, a listed service's
   keys (settings of the schema, secrets encrypted), ciphertext shape, a hostname owned by two stacks
   (each service's at its own stage); the result is a :class:`StackConfig`;
4. typed settings: :func:`components.config.settings.load_services` (or ``load_settings``) over
   :meth:`StackConfig.source`, in the program or the offline plan.

Every problem of stages 1 to 3 is collected before :class:`StackFileError` is raised. No value of a
secret-looking key is ever shown. The offline plan (:mod:`components.testing.offline`), the test
helpers (:mod:`components.testing`), the sunset and the retention ledger read stack files through here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.config import schema
from components.config.names import PROVIDER_NAMESPACES, closest, namespace_problem, provider_keys
from components.config.problems import PROJECT, SECRET_MARK, SettingProblem, StackFileError, shown_value
from components.config.stack_rules import CliConfig, GivenValue, cli_config, is_secure
from components.config.stackfile import (
    read_stack,
    stack_files,  # re-exported: its home before the pipeline
)
from components.lifecycle import Stage, parts_for

__all__ = ["DictConfig", "StackConfig", "StackFileError", "checked", "load_stack_config", "stack_files"]


class DictConfig:
    """A :class:`components.config.settings.ConfigSource` over full keys → text (what a stack file holds).

    ``namespace`` is the one :meth:`get` reads (``<namespace>:<name>``); :meth:`view` gives another.
    """

    def __init__(self, values: Mapping[str, str], secret_keys: set[str], namespace: str = "service-lifecycle") -> None:
        self._values = values
        self._secret_keys = secret_keys
        self.name = namespace

    def get(self, name: str) -> str | None:
        return self._values.get(f"{self.name}:{name}")

    def get_secret(self, name: str) -> pulumi.Output[str] | None:
        value = self._values.get(f"{self.name}:{name}")
        return None if value is None else pulumi.Output.secret(value)

    def view(self, namespace: str) -> DictConfig:
        """The same values read in another namespace (a service's own, see ``load_services``)."""
        return DictConfig(self._values, self._secret_keys, namespace)


@dataclass
class StackConfig:
    """A stack's configuration as the Pulumi CLI would hand it to the program."""

    stack: str
    values: dict[str, str]
    """Full key → string value (arrays and objects JSON-encoded), project defaults merged in."""
    secret_keys: set[str] = field(default_factory=set)
    """Full keys whose values are secret."""
    declared: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The project's declared settings (short key → declaration) from Pulumi.yaml."""
    notes: list[str] = field(default_factory=list)
    project: str = PROJECT
    """The project's name (Pulumi.yaml ``name``): its settings' configuration namespace."""

    def key(self, short: str) -> str:
        """The full key of one of the project's settings: ``<project>:<short>``."""
        return f"{self.project}:{short}"

    def source(self) -> DictConfig:
        return DictConfig(self.values, self.secret_keys, self.project)


def load_stack_config(project_dir: Path, stack: str) -> StackConfig:
    """Read Pulumi.yaml and Pulumi.<stack>.yaml as the Pulumi CLI would (defaults merged), and check them.

    Stages 1 to 3 of the pipeline (see the module's text), every problem collected: raises
    :class:`StackFileError` carrying what could be read, so that the settings can be checked too.
    """
    files = read_stack(project_dir, stack)  # 1. read, within the limits
    merged = cli_config(files)  # 2. the CLI's merge and rules
    config, problems = checked(merged)  # 3. our stricter checks
    if problems:
        raise StackFileError(problems, config)
    return config


def checked(merged: CliConfig) -> tuple[StackConfig, list[SettingProblem]]:
    """Stage 3: the CLI's configuration without the keys our checks refuse, and every problem so far.

    The stack file's keys go into the values unless refused here: an undeclared namespace a typo away
    from a known one, a provider key the SDK does not read, a listed service's key that is not a setting
    (or a secret not encrypted), a ``secure:`` that is not ciphertext. Then a hostname another stack's
    file owns too (any service's).
    """
    services = _service_namespaces(merged.files.config, merged.project)
    config = StackConfig(
        stack=merged.files.stack,
        values=dict(merged.defaults),
        secret_keys=set(merged.secret_keys),
        declared=merged.files.declared,
        project=merged.project,
    )
    ours: list[SettingProblem] = []
    for given in merged.given:
        problem = _refused(config, given, services)
        if problem is not None:
            ours.append(problem)
            continue
        config.values[given.full] = given.text  # settings check the value itself
        if is_secure(given.value):
            config.secret_keys.add(given.full)
    return config, [*merged.problems, *ours, *_hostnames_owned_elsewhere(merged, config)]


def _refused(config: StackConfig, given: GivenValue, services: frozenset[str]) -> SettingProblem | None:
    """Our problem with one ``key: value`` of the stack file that the CLI's rules do not report (a namespace
    a typo away, a provider key, a malformed ``secure:``), if any."""
    namespace, _, short = given.full.partition(":")
    secure = is_secure(given.value)
    if secure and not (isinstance(given.value["secure"], str) and given.value["secure"]):
        return SettingProblem(
            given.full, SECRET_MARK, "secure: <ciphertext>, as `pulumi config set --secret` writes it"
        )
    shown = SECRET_MARK if secure else shown_value(given.full, given.value, config.secret_keys)
    if namespace in services and namespace != config.project:
        wrong = _service_key_problem(config.project, namespace, short, secure=secure)
        if wrong is not None:
            return SettingProblem(given.full, SECRET_MARK if short in schema.SECRETS else shown, wrong)
    elif namespace != config.project:
        wrong = namespace_problem(namespace, short, config.project)
        near = closest(namespace, PROVIDER_NAMESPACES)
        if wrong is not None and short in schema.BY_NAME and provider_keys(namespace) is None and near is not None:
            # worker:imageRepository is a service's key in a stack that does not list that service, not a typo of
            # the docker provider's namespace (which has no imageRepository)
            wrong = (
                f"a key of a listed service: add {namespace} to {config.key('services')}, or set {config.key(short)}"
            )
        if wrong is not None:
            return SettingProblem(given.full, shown, wrong)
    return None


SHARED_ONLY: frozenset[str] = frozenset({"services"})
"""Project keys no service may set in its own namespace."""


def _service_key_problem(project: str, service: str, short: str, *, secure: bool) -> str | None:
    """What is wrong with ``<service>:<short>`` of a listed service, or None: the library's settings only
    (a typo names the close one, in the service's namespace), a secret encrypted."""
    if short in SHARED_ONLY:
        return f"not set per service: {project}:{short} is the project's"
    setting = schema.BY_NAME.get(short)
    if setting is None:
        near = closest(short, sorted(schema.BY_NAME))
        hint = f" (did you mean {service}:{near}?)" if near else ""
        return f"a setting of components/config/schema.py{hint}"
    if setting.secret and not secure:
        return f"an encrypted value: pulumi config set --secret {service}:{short} …"
    return None


def _service_namespaces(raw: Mapping[str, Any], project: str) -> frozenset[str]:
    """The namespaces of the services a multi-service stack lists (``<project>:services``)."""
    listed = raw.get(f"{project}:services", raw.get("services"))
    return frozenset(s for s in listed if isinstance(s, str)) if isinstance(listed, list) else frozenset()


def _hostnames_owned_elsewhere(merged: CliConfig, config: StackConfig) -> list[SettingProblem]:
    """A hostname in two committed stack files is one DNS record with two owners (unless one is sunset).

    Every service of a stack counts: the project's ``hostnames`` and each listed service's own
    (``api:hostnames``), each at its effective stage (its own ``stage``, else the project's).
    """
    services = frozenset(_listed(config.values.get(config.key("services"))))
    mine = [
        (full, host)
        for full, _ in _published(config.values, config.project, services, decoded=False)
        for host in _listed(config.values.get(full))
    ]
    if not mine:
        return []
    problems: list[SettingProblem] = []
    for other, other_config in merged.files.others:
        theirs: dict[str, object] = {}
        their_services = _service_namespaces(other_config, config.project)
        for their_key, stage in _published(other_config, config.project, their_services, decoded=True):
            listed = _value(other_config, their_key, config.project, decoded=True)
            for host in listed if isinstance(listed, list) else []:
                if isinstance(host, str):
                    theirs.setdefault(host, stage)
        for full, host in sorted(mine):
            if host in theirs:
                problems.append(SettingProblem(full, repr(host),
                    f"a hostname no other stack owns: Pulumi.{other}.yaml (stage {theirs[host]}) has it too; one DNS "
                    "record cannot have two owners"))  # fmt: skip
    return problems


def _published(
    values: Mapping[str, Any], project: str, services: frozenset[str], *, decoded: bool
) -> list[tuple[str, object]]:
    """The hostnames keys of a stack (the project's, each listed service's) whose effective stage publishes,
    with that stage. ``decoded``: values as a stack file holds them (else as text, the CLI's)."""

    def get(full: str) -> object:
        return _value(values, full, project, decoded=decoded)

    shared_stage = get(f"{project}:stage")
    found: list[tuple[str, object]] = []
    for namespace in (project, *sorted(services)):
        stage = get(f"{namespace}:stage") if namespace != project else shared_stage
        stage = shared_stage if stage is None else stage
        if get(f"{namespace}:hostnames") is not None and _publishes(stage):
            found.append((f"{namespace}:hostnames", stage))
    return found


def _value(values: Mapping[str, Any], full: str, project: str, *, decoded: bool) -> object:
    """``values[full]``; in a stack file (``decoded``) a bare key is the project's too."""
    value = values.get(full)
    if value is None and decoded and full.startswith(f"{project}:"):
        value = values.get(full.partition(":")[2])
    return value


def _publishes(stage: object) -> bool:
    """Whether a stack at ``stage`` has DNS records (the stage table's exposure); a stage that is not one
    counts as publishing: that stack's own plan reports it."""
    if not isinstance(stage, str) or stage not in {known.value for known in Stage}:
        return True
    return parts_for(Stage(stage)).exposure


def _listed(encoded: str | None) -> list[str]:
    try:
        items = json.loads(encoded) if encoded else []
    except json.JSONDecodeError:
        return []
    return [i for i in items if isinstance(i, str)] if isinstance(items, list) else []

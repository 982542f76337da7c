"""A stack's configuration as the Pulumi CLI would hand it to the program, read from the project's files.

:func:`load_stack_config` runs the stack's configuration as a one-way pipeline; each stage takes
the previous stage's result and never calls back:

1. read (:func:`components.config.stackfile.read_stack`): the project's files through the
   hostile-input reader (size, depth, aliases, duplicate keys);
2. the Pulumi CLI's merge and rules, one step returning all its problems
   (:func:`components.config.stack_rules.cli_config`);
3. our stricter checks (:func:`checked`, here): namespace typos, provider keys, ciphertext shape,
   a hostname owned by two stacks; the result is a :class:`StackConfig`;
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

from components.config.names import namespace_problem
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
    from a known one, a provider key the SDK does not read, a ``secure:`` that is not ciphertext. Then a
    hostname another stack's file owns too.
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
    if namespace != config.project and namespace not in services:
        wrong = namespace_problem(namespace, short, config.project)
        if wrong is not None:
            shown = SECRET_MARK if secure else shown_value(given.full, given.value, config.secret_keys)
            return SettingProblem(given.full, shown, wrong)
    return None


def _service_namespaces(raw: Mapping[str, Any], project: str) -> frozenset[str]:
    """The namespaces of the services a multi-service stack lists (``<project>:services``)."""
    listed = raw.get(f"{project}:services", raw.get("services"))
    return frozenset(s for s in listed if isinstance(s, str)) if isinstance(listed, list) else frozenset()


def _hostnames_owned_elsewhere(merged: CliConfig, config: StackConfig) -> list[SettingProblem]:
    """A hostname in two committed stack files is one DNS record with two owners (unless one is sunset)."""
    mine = _listed(config.values.get(config.key("hostnames")))
    if not mine or not _publishes(config.values.get(config.key("stage"))):
        return []
    problems: list[SettingProblem] = []
    for other, other_config in merged.files.others:
        stage = other_config.get(config.key("stage"), other_config.get("stage"))
        theirs = other_config.get(config.key("hostnames"), other_config.get("hostnames"))
        if not _publishes(stage) or not isinstance(theirs, list):
            continue
        for host in sorted(set(mine) & {h for h in theirs if isinstance(h, str)}):
            problems.append(SettingProblem(config.key("hostnames"), repr(host),
                f"a hostname no other stack owns: Pulumi.{other}.yaml (stage {stage}) has it too; one DNS record "
                "cannot have two owners"))  # fmt: skip
    return problems


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

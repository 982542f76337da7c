"""A stack's configuration as the Pulumi CLI would hand it to the program, read from the project's files.

:func:`load_stack_config` reads ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` through the hostile-input
reader (:func:`components.config.stackfile.read_yaml`), merges the project's declared defaults as the CLI
does, applies the CLI's config rules (:mod:`components.config.stack_rules`) and the library's own key checks
(namespace typos, provider keys, ciphertext shape, a hostname owned by two stacks), and collects every
problem before raising :class:`StackFileError`. No value of a secret-looking key is ever shown.

The offline plan (:mod:`components.commands.plan`), the test helpers (:mod:`components.testing`)
and the retention ledger read stack files through here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.config import schema, stack_rules
from components.config.settings import PROJECT, SECRET_MARK, SHOWN_CHARS, SettingProblem, cut, looks_secret, shown_value
from components.config.stackfile import StackFileRefused, namespace_problem, read_yaml
from components.lifecycle import Stage, parts_for


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


class StackFileError(Exception):
    """A project or stack file that cannot be read; carries one problem per line."""

    def __init__(self, problems: list[SettingProblem], config: StackConfig | None = None) -> None:
        self.problems = problems
        self.config = config
        """What could be read (values of the wrong type kept as text), to validate the rest too."""
        super().__init__("\n".join(str(p) for p in problems))


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
    """Read Pulumi.yaml and Pulumi.<stack>.yaml as the Pulumi CLI would (defaults merged).

    Both files go through :func:`components.config.stackfile.read_yaml` (size, depth, aliases, duplicate
    keys) before any value is looked at; then every key is checked and every problem collected.
    """
    stack_file = _existing_stack_file(project_dir, stack)
    project, stack_doc = _read_files(project_dir, stack_file)
    config = _with_project_defaults(project, project_dir / "Pulumi.yaml", stack)
    raw = _config_mapping(stack_doc, stack_file)
    problems = [
        *stack_rules.project_file_problems(config.project, config.declared, "Pulumi.yaml"),
        *_cli_rule_problems(config, raw),  # before _taken adds the stack's secure: keys to the secret keys
        *_taken(config, raw),
        *_hostnames_owned_elsewhere(project_dir, stack, config),
    ]
    if problems:
        raise StackFileError(problems, config)
    return config


def _existing_stack_file(project_dir: Path, stack: str) -> Path:
    """``Pulumi.<stack>.yaml``, or a problem naming the stacks there are (and --project-dir when none)."""
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        existing = _stacks_in(project_dir)
        hint = "" if existing else f"; no stack file in {project_dir}: run from the project or pass --project-dir"
        raise StackFileError(
            [
                SettingProblem(
                    f"--stack {stack}", str(stack_file), f"an existing stack file; stacks here: {existing}{hint}"
                )
            ]
        )
    return stack_file


def _with_project_defaults(project: dict[str, Any], project_file: Path, stack: str) -> StackConfig:
    """The stack's configuration before its own file: the project's declared defaults (the CLI's
    ``createConfigValue``) and which keys are secret (declared so, or the schema's secrets)."""
    declared = _declarations(project, project_file)
    config = StackConfig(stack=stack, values={}, declared=declared, project=str(project.get("name") or PROJECT))
    for short, declaration in declared.items():
        if "default" in declaration:
            config.values[config.key(short)] = stack_rules.cli_text(declaration["default"])
        if declaration.get("secret"):
            config.secret_keys.add(config.key(short))
    config.secret_keys |= {config.key(name) for name in schema.SECRETS if name not in declared}
    return config


def _config_mapping(stack_doc: dict[str, Any], stack_file: Path) -> dict[Any, Any]:
    """The stack file's ``config:`` mapping (none is an empty one)."""
    raw = stack_doc.get("config") or {}
    if not isinstance(raw, dict):
        raise StackFileError(
            [SettingProblem(f"{stack_file.name}: config", _shown("config", raw), "a mapping of settings")]
        )
    return raw


def _cli_rule_problems(config: StackConfig, raw: Mapping[str, Any]) -> list[SettingProblem]:
    """The Pulumi CLI's own rules (missing, type, secret) with its wording, values masked and cut."""
    rules = stack_rules.stack_problems(config.stack, config.declared, raw, config.project)
    return [_masked(problem, config) for problem in rules]


def _taken(config: StackConfig, raw: Mapping[Any, Any]) -> list[SettingProblem]:
    """Every key of the stack file added to ``config``; our problems with them (undeclared namespaces,
    provider keys, ciphertext shape)."""
    services = _service_namespaces(raw, config.project)
    return [p for given, value in raw.items() if (p := _take(config, str(given), value, services)) is not None]


def stack_files(project_dir: Path) -> list[tuple[str, Path]]:
    """Every stack file of the project as (stack, ``Pulumi.<stack>.yaml``), in the order of the file names."""
    return [(path.name[len("Pulumi.") : -len(".yaml")], path) for path in sorted(project_dir.glob("Pulumi.*.yaml"))]


def _stacks_in(project_dir: Path) -> list[str]:
    """The stacks' names, sorted by name (the order error lines list them in)."""
    return sorted(name for name, _ in stack_files(project_dir))


def _read_files(project_dir: Path, stack_file: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    project_file = project_dir / "Pulumi.yaml"
    documents: list[dict[str, Any]] = []
    for path in (project_file, stack_file):
        try:
            documents.append(read_yaml(path))
        except FileNotFoundError:
            hint = "a Pulumi.yaml next to the stack files: run from the project or pass --project-dir"
            raise StackFileError([SettingProblem(str(path), "<missing>", hint)]) from None
        except StackFileRefused as refused:
            raise StackFileError(
                [
                    stack_rules.RuleProblem(each.where, each.problem, "a stack file Pulumi can read", each.cli)
                    for each in refused.every()
                ]
            ) from None
        except OSError as error:
            raise StackFileError(
                [SettingProblem(str(path), "<unreadable>", f"a readable file ({error.strerror})")]
            ) from None
    return documents[0], documents[1]


def _declarations(project: dict[str, Any], project_file: Path) -> dict[str, dict[str, Any]]:
    declared = project.get("config") or {}
    if not isinstance(declared, dict) or not all(isinstance(d, dict) for d in declared.values()):
        raise StackFileError([SettingProblem(f"{project_file.name}: config", "<not a mapping of declarations>",
                                             "name: {type: …, description: …} per setting")])  # fmt: skip
    return declared


def _shown(full: str, value: Any, config: StackConfig | None = None) -> str:
    """A value as an error line may show it (:func:`components.config.settings.shown_value`)."""
    return shown_value(full, value, config.secret_keys if config else ())


def _service_namespaces(raw: Mapping[str, Any], project: str) -> frozenset[str]:
    """The namespaces of the services a multi-service stack lists (``<project>:services``)."""
    listed = raw.get(f"{project}:services", raw.get("services"))
    return frozenset(s for s in listed if isinstance(s, str)) if isinstance(listed, list) else frozenset()


def _masked(problem: SettingProblem, config: StackConfig) -> SettingProblem:
    """``problem`` with its value masked where :func:`components.config.settings.looks_secret` says so, and long
    values cut."""
    if problem.value in ("<not set>", SECRET_MARK):
        return problem
    if looks_secret(problem.key, config.secret_keys):
        return dataclasses.replace(problem, value=SECRET_MARK)
    return dataclasses.replace(problem, value=cut(problem.value)) if len(problem.value) > SHOWN_CHARS else problem


def _take(config: StackConfig, full: str, value: Any, services: frozenset[str]) -> SettingProblem | None:
    """Add one ``key: value`` of the stack file to ``config``; the problem :mod:`components.config.stack_rules`
    does not already report (a namespace a typo away, a provider key, a malformed ``secure:``), if any."""
    namespace, _, short = full.partition(":")
    if not short:  # Pulumi treats a bare key as the project's
        namespace, short, full = config.project, namespace, config.key(namespace)
    secure = isinstance(value, dict) and set(value) == {"secure"}
    if secure and not (isinstance(value["secure"], str) and value["secure"]):
        return SettingProblem(full, SECRET_MARK, "secure: <ciphertext>, as `pulumi config set --secret` writes it")
    if namespace != config.project and namespace not in services:
        wrong = namespace_problem(namespace, short, config.project)
        if wrong is not None:
            return SettingProblem(full, SECRET_MARK if secure else _shown(full, value, config), wrong)
    if secure:
        config.values[full] = SECRET_MARK
        config.secret_keys.add(full)
        return None
    config.values[full] = stack_rules.cli_text(value)  # settings check the value itself
    return None


def _hostnames_owned_elsewhere(project_dir: Path, stack: str, config: StackConfig) -> list[SettingProblem]:
    """A hostname in two committed stack files is one DNS record with two owners (unless one is sunset)."""
    mine = _listed(config.values.get(config.key("hostnames")))
    if not mine or not _publishes(config.values.get(config.key("stage"))):
        return []
    problems: list[SettingProblem] = []
    for other, path in sorted(stack_files(project_dir)):
        if other == stack:
            continue
        try:
            other_config = read_yaml(path).get("config") or {}
        except (OSError, StackFileRefused):
            continue  # that stack's own plan reports it
        if not isinstance(other_config, dict):
            continue
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

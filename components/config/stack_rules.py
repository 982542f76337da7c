"""Stage 2 of a stack's configuration: the Pulumi CLI's merge and its rules, applied offline.

:func:`cli_config` takes what the reader read (:class:`components.config.stackfile.StackFiles`, stage 1)
and returns the configuration as the CLI would merge it (the project's declared defaults, then the
stack's values) with every problem its rules find (:class:`CliConfig`); our stricter checks
(:mod:`components.config.stack_config`, stage 3) take that result.

The CLI refuses a stack before it starts the program when its configuration breaks the project's
``config:`` schema; the offline plan applies the same rules with the same wording, so that a stack
file the plan accepts is one ``pulumi up`` accepts too. Each function mirrors one place in
pulumi/pulumi (the tests name it):

- :func:`project_problems`: ``(*Project).Validate`` in ``sdk/go/common/workspace/project.go``.
- :func:`missing_problems`: ``mergeConfig`` and ``missingStackConfigurationKeysError`` in
  ``pkg/workspace/config.go``.
- :func:`value_problems`: ``validateStackConfigValue`` (same file) with ``ValidateConfigValue``.
- :func:`undeclared_problems`: not a CLI rule (the CLI passes undeclared keys to the program
  silently): ours, so that a typo does not quietly leave a setting at its default.
- A key twice in one mapping (gopkg.in/yaml.v3 ``decoder.mapping``, the CLI's YAML decoder) is refused
  by the reader, with yaml.v3's line, before any rule here runs: :func:`components.config.stackfile.duplicate_keys`.

Settings that Pulumi.yaml cannot declare (optional secrets, see :data:`PROGRAM_SETTINGS`) are
checked here too: the CLI knows nothing of them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from components.config import schema
from components.config.names import closest
from components.config.problems import PROJECT, SECRET_MARK, RuleProblem, SettingProblem, masked
from components.config.stackfile import StackFiles

_GO_INT: Final = re.compile(r"[+-]?[0-9]+")
"""What Go's ``strconv.Atoi`` parses: an optional sign and ASCII digits (no spaces, no ``_``)."""
_GO_INT_RANGE: Final = range(-(1 << 63), 1 << 63)
"""Atoi on a 64-bit machine: a number outside ``int`` is an error."""


@dataclass(frozen=True, kw_only=True)
class ProgramSetting:
    """A setting the program reads that Pulumi.yaml does not declare."""

    type: str
    secret: bool
    description: str


PROGRAM_SETTINGS: Final[Mapping[str, ProgramSetting]] = {
    setting.name: ProgramSetting(type=setting.type, secret=setting.secret, description=setting.description)
    for setting in schema.SETTINGS
    if not setting.declared_in_project
}
"""Settings of :mod:`components.config.schema` this repository's Pulumi.yaml does not declare: the optional
secrets. Pulumi.yaml cannot declare them: without a ``default`` the CLI calls them
missing when unset (``mergeConfig``); with one it merges the default in as plain text and then
refuses it as "must be encrypted as it's secret" (``validateStackConfigValue``). So they are
marked ``declared_in_project=False`` in the schema, read with ``get_secret`` and checked by
:func:`undeclared_problems`."""


# ---------------------------------------------------------------------------------------------
# Values as the CLI holds them


def cli_text(value: Any) -> str:
    """A top-level stack value as the CLI's ``config.Value`` holds it (resource/config ``object.MarshalString``):
    strings as they are, booleans and numbers as JSON text, lists and mappings as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))  # Go's JSON writes 3.0 as 3
    return json.dumps(value)


def is_secure(value: Any) -> bool:
    """A ``secure: <ciphertext>`` value (what ``pulumi config set --secret`` writes)."""
    return isinstance(value, dict) and set(value) == {"secure"}


def full_type_name(declaration: Mapping[str, Any]) -> str:
    """``InferFullTypeName``: ``array<string>`` for an array of strings."""
    items = declaration.get("items")
    if isinstance(items, Mapping):
        return f"array<{full_type_name(items)}>"
    return str(declaration.get("type", "string"))


def validate_config_value(type_name: str, items: Mapping[str, Any] | None, value: Any) -> bool:
    """``ValidateConfigValue`` (sdk/go/common/workspace/project.go), for a value as Go decoded it."""
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return True
        return isinstance(value, str) and _GO_INT.fullmatch(value) is not None and _fits_go_int(value)
    if type_name == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if type_name == "object":
        return isinstance(value, dict)
    if not isinstance(value, list) or not isinstance(items, Mapping):
        return False
    return all(validate_config_value(str(items.get("type")), items.get("items"), item) for item in value)


def _fits_go_int(text: str) -> bool:
    # int64 has at most 19 digits: a longer text (a hostile file's 5,000 digits) is out of range unread.
    digits = text.lstrip("+-").lstrip("0")
    return len(digits) <= 19 and int(text) in _GO_INT_RANGE


def _stack_content(value: Any) -> Any:
    """What ``validateStackConfigValue`` checks: the text, or for an object value its JSON decoded."""
    if isinstance(value, (list, dict)) or value is None:
        return json.loads(json.dumps(value))  # Go's json.Unmarshal: numbers become float64
    return cli_text(value)


# ---------------------------------------------------------------------------------------------
# The project file


def project_problems(project: str, declared: Mapping[str, Any]) -> list[str]:
    """``(*Project).Validate``: the rules a Pulumi.yaml ``config:`` block must keep (all of them,
    where the CLI stops at the first)."""
    problems: list[str] = []
    for name, declaration in declared.items():
        if not isinstance(declaration, Mapping):
            continue  # a shorthand value (``key: value``): nothing typed to check
        has_default, has_value = declaration.get("default") is not None, declaration.get("value") is not None
        if has_default and has_value:
            problems.append(f"project config '{name}' cannot have both a 'default' and 'value' attribute")
        explicit = "type" in declaration
        if ":" not in name or name.split(":", 1)[0] == project:
            if explicit and declaration["type"] == "array" and declaration.get("items") is None:
                problems.append(
                    f"The configuration key '{name}' declares an array but does not specify the underlying "
                    "type via the 'items' attribute"
                )
            elif (
                explicit
                and has_default
                and not validate_config_value(
                    str(declaration["type"]), declaration.get("items"), declaration["default"]
                )
            ):
                problems.append(
                    f"The default value specified for configuration key '{name}' is not of the expected type "
                    f"'{full_type_name(declaration)}'"
                )
        elif explicit:
            problems.append(f"Configuration key '{name}' is not namespaced by the project and should not define a type")
        elif has_default:
            problems.append(
                f"Configuration key '{name}' is not namespaced by the project and should not define a default "
                "value. Did you mean to use the 'value' attribute instead of 'default'?"
            )
        elif not has_value:
            problems.append(f"Configuration key '{name}' is namespaced and must provide an attribute 'value'")
    return problems


def project_file_problems(project: str, declared: Mapping[str, Any], file_name: str) -> list[RuleProblem]:
    """:func:`project_problems` as problem lines (the CLI refuses such a project before any stack)."""
    return [
        RuleProblem(file_name, "config", "a project the Pulumi CLI loads", cli)
        for cli in project_problems(project, declared)
    ]


# ---------------------------------------------------------------------------------------------
# The stack file against the project's declarations


def _project_keys(stack_config: Mapping[str, Any], project: str = PROJECT) -> dict[str, Any]:
    """Stack values of the project's namespace by short key (a bare key is the project's)."""
    found: dict[str, Any] = {}
    for given, value in stack_config.items():
        namespace, _, short = str(given).partition(":")
        if not short:
            namespace, short = project, namespace
        if namespace == project:
            found[short] = value
    return found


def _format_missing(names: list[str]) -> str:
    """``formatMissingKeys``: 'a' alone; 'a', 'b' and 'c' sorted."""
    quoted = [f"'{n}'" for n in sorted(names)]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def _has_default_or_value(declaration: Any) -> bool:
    if not isinstance(declaration, Mapping):
        return declaration is not None  # the shorthand ``key: value`` is a value
    return declaration.get("default") is not None or declaration.get("value") is not None


def missing_problems(
    stack: str, declared: Mapping[str, Any], stack_config: Mapping[str, Any], project: str = PROJECT
) -> list[RuleProblem]:
    """``mergeConfig``: keys of the project's namespace declared with neither ``default`` nor ``value``
    that the stack does not set; one CLI message for all of them."""
    given = _project_keys(stack_config, project)
    missing = sorted(
        name
        for name, declaration in declared.items()
        if (":" not in name or name.split(":", 1)[0] == project)
        and name.split(":")[-1] not in given
        and not _has_default_or_value(declaration)
    )
    if not missing:
        return []
    values = "value" if len(missing) == 1 else "values"
    cli = f"Stack '{stack}' is missing configuration {values} {_format_missing(missing)}"
    expected = "a value: Pulumi.yaml declares it without a default"
    return [RuleProblem(f"{project}:{name.split(':')[-1]}", "<not set>", expected, cli) for name in missing]


def value_problems(
    stack: str, declared: Mapping[str, Any], stack_config: Mapping[str, Any], project: str = PROJECT
) -> list[RuleProblem]:
    """``validateStackConfigValue``: a declared-secret key must be ``secure:``; a typed key's value must
    pass ``ValidateConfigValue`` (the CLI stops at the first bad key in sorted order; we list all)."""
    problems: list[RuleProblem] = []
    given = _project_keys(stack_config, project)
    for name in sorted(declared):
        declaration = declared[name]
        short = name.split(":")[-1]
        if short not in given or not isinstance(declaration, Mapping):
            continue
        value, full = given[short], f"{project}:{short}"
        if declaration.get("secret") and not is_secure(value):
            cli = f"Stack '{stack}' with configuration key '{name}' must be encrypted as it's secret"
            problems.append(
                RuleProblem(full, SECRET_MARK, f"an encrypted value: pulumi config set --secret {short} …", cli)
            )
            continue
        if "type" not in declaration or is_secure(value):
            continue  # ciphertext: its type is checked where it can be decrypted, by the CLI
        if not validate_config_value(str(declaration["type"]), declaration.get("items"), _stack_content(value)):
            type_name = full_type_name(declaration)
            cli = f"Stack '{stack}' with configuration key '{name}' must be of type '{type_name}'"
            problems.append(RuleProblem(full, repr(value), f"a value of type {type_name} (Pulumi.yaml)", cli))
    return problems


def undeclared_problems(
    declared: Mapping[str, Any], stack_config: Mapping[str, Any], project: str = PROJECT
) -> list[RuleProblem]:
    """Our rule, not the CLI's: every key of the project's namespace is declared in the project file or
    known to the library (:mod:`components.config.schema`; a typo names the close key), and a secret the
    project file does not declare is ``secure:``."""
    declared_short = {name.split(":")[-1] for name in declared}
    known = declared_short | set(schema.BY_NAME)
    problems: list[RuleProblem] = []
    for short, value in _project_keys(stack_config, project).items():
        full = f"{project}:{short}"
        shown = SECRET_MARK if is_secure(value) else repr(value)
        if short not in known:
            near = closest(short, sorted(known))
            hint = f" (did you mean {project}:{near}?)" if near else ""
            where = "declared in Pulumi.yaml or components/schema.py"
            problems.append(RuleProblem(full, shown, f"a setting {where}{hint}"))
        elif short not in declared_short and schema.BY_NAME[short].secret and not is_secure(value):
            problems.append(RuleProblem(full, SECRET_MARK, f"an encrypted value: pulumi config set --secret {short} …"))
    return problems


def stack_problems(
    stack: str, declared: Mapping[str, Any], stack_config: Mapping[str, Any], project: str = PROJECT
) -> list[RuleProblem]:
    """Every rule above for one stack's ``config:`` mapping, in the CLI's order."""
    return (
        missing_problems(stack, declared, stack_config, project)
        + value_problems(stack, declared, stack_config, project)
        + undeclared_problems(declared, stack_config, project)
    )


# ---------------------------------------------------------------------------------------------
# The stage: merge and rules in one step


@dataclass(frozen=True)
class GivenValue:
    """One ``key: value`` of the stack file, as the CLI holds it."""

    written: str
    """The key as the stack file writes it (a bare key is the project's)."""
    full: str
    """``<namespace>:<key>``."""
    value: Any
    """The value as the YAML decoded it."""
    text: str
    """What the program gets: the CLI's text (:func:`cli_text`), :data:`SECRET_MARK` for a ``secure:`` value."""


@dataclass(frozen=True)
class CliConfig:
    """A stack's configuration as the Pulumi CLI merges it, and every problem the CLI's rules find."""

    files: StackFiles
    """What stage 1 read."""
    project: str
    """The project's name (Pulumi.yaml ``name``): its settings' configuration namespace."""
    defaults: dict[str, str]
    """Full key → the project's declared default, as text (the CLI's ``createConfigValue``)."""
    secret_keys: frozenset[str]
    """Full keys that are secret before the stack's own ``secure:`` values: declared so, or the schema's secrets."""
    given: tuple[GivenValue, ...]
    """The stack file's keys, in its order."""
    problems: tuple[SettingProblem, ...]
    """The project file's problems, then the stack's (values masked and cut, in the CLI's order)."""

    def key(self, short: str) -> str:
        return f"{self.project}:{short}"


def cli_config(files: StackFiles) -> CliConfig:
    """Stage 2: merge the project's declared defaults and the stack's values as the CLI does, and apply
    every rule above (the project file's, then the stack's), values masked where
    :func:`components.config.problems.looks_secret` says so."""
    project = str(files.project.get("name") or PROJECT)
    defaults: dict[str, str] = {}
    secret_keys: set[str] = set()
    for short, declaration in files.declared.items():
        if "default" in declaration:
            defaults[f"{project}:{short}"] = cli_text(declaration["default"])
        if declaration.get("secret"):
            secret_keys.add(f"{project}:{short}")
    secret_keys |= {f"{project}:{name}" for name in schema.SECRETS if name not in files.declared}
    given = tuple(_given(str(written), value, project) for written, value in files.config.items())
    rules = stack_problems(files.stack, files.declared, files.config, project)
    problems = (
        *project_file_problems(project, files.declared, "Pulumi.yaml"),
        *(masked(problem, secret_keys) for problem in rules),
    )
    return CliConfig(files, project, defaults, frozenset(secret_keys), given, problems)


def _given(written: str, value: Any, project: str) -> GivenValue:
    namespace, _, short = written.partition(":")
    full = f"{project}:{namespace}" if not short else written  # Pulumi treats a bare key as the project's
    return GivenValue(written, full, value, SECRET_MARK if is_secure(value) else cli_text(value))

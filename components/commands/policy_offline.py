"""The policy pack's rules, run offline against the resources the offline plan recorded.

``python -m components plan --stack staging --policy`` runs the program under the recording
mocks (components.commands.plan) and then every rule of ``policy/service_lifecycle_policy/rules.py``
over the recorded resources: the same functions ``pulumi preview --policy-pack policy`` runs,
without the Pulumi CLI. Recorded inputs keep secrets wrapped, so the offline run can also tell
a Pulumi secret from plaintext (rules that need that run only here).

The rules live in the policy pack, which has its own virtualenv and must not depend on this
package. They ship inside this package's distribution too (the wheel installs the pack's
``service_lifecycle_policy`` package beside ``components``), so ``plan --policy`` works after a plain
``pip install``. A program's own copy at ``<project>/policy`` wins; a pack that cannot be found or
imported at all is exit :data:`EXIT_PACK_MISSING` (3), never 1, which means a real violation.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final, TextIO

from components.testing import REDACTED, RecordedResource, wrap_secret

PACKAGE: Final = "service_lifecycle_policy"
RULES_MODULE: Final = f"{PACKAGE}.rules"
POLICY_DIR: Final = "policy"
EXIT_PASSED: Final = 0
EXIT_VIOLATED: Final = 1
EXIT_PACK_MISSING: Final = 3
"""The rules could not be found or imported: nothing was checked (distinct from 1, a violation)."""


class PolicyPackNotFoundError(Exception):
    """The policy pack's rules could not be found (next to the project, installed, or in the source tree)."""


@dataclass(frozen=True, kw_only=True)
class OfflineViolation:
    """A rule that fired on the plan."""

    policy: str
    """Policy name, as the pack reports it."""
    message: str
    """What is wrong and what is expected."""
    urn: str | None
    """The offending resource, when there is one."""


def _candidate_dirs(project_dir: Path | None) -> list[Path]:
    """Folders holding a pack by path, before and after the installed one: the project's own, then the source tree."""
    dirs = [] if project_dir is None else [project_dir / POLICY_DIR]
    dirs.append(Path(__file__).resolve().parents[2] / POLICY_DIR)  # a checkout: components/commands/ → ../..
    return dirs


def _import_rules() -> ModuleType | None:
    """The installed pack's rules, or None when no ``service_lifecycle_policy`` package is importable."""
    try:
        return importlib.import_module(RULES_MODULE)
    except ModuleNotFoundError as error:
        if error.name in (PACKAGE, RULES_MODULE):
            return None
        raise PolicyPackNotFoundError(f"the policy pack's rules cannot be imported: {error}") from None


def load_rules(project_dir: Path | None = None) -> ModuleType:
    """Import the pack's rules: ``<project_dir>/policy`` if the program has its own copy, else the
    installed package (shipped with this one), else a checkout's ``policy/`` beside ``components/``."""
    dirs = _candidate_dirs(project_dir)
    own, source_tree = dirs[:-1], dirs[-1:]
    for policy_dir in own:
        if (policy_dir / PACKAGE / "rules.py").is_file():
            return _import_from(policy_dir)
    installed = _import_rules()
    if installed is not None:
        return installed
    for policy_dir in source_tree:
        if (policy_dir / PACKAGE / "rules.py").is_file():
            return _import_from(policy_dir)
    searched = ", ".join(str(d) for d in dirs)
    raise PolicyPackNotFoundError(
        f"policy pack rules not found: no {PACKAGE} package is installed and none is in {searched}; "
        "reinstall service-lifecycle-components (the rules ship inside it) or copy the pack to <project>/policy"
    )


def _import_from(policy_dir: Path) -> ModuleType:
    path = str(policy_dir.resolve())
    if path not in sys.path:
        sys.path.insert(0, path)
    module = _import_rules()
    if module is None:
        raise PolicyPackNotFoundError(f"policy pack rules in {policy_dir} cannot be imported")
    return module


def checked_resources(resources: Sequence[RecordedResource], rules: ModuleType) -> list[Any]:
    """Recorded resources as the rules see them (custom resources only; secrets still marked)."""
    return [
        rules.CheckedResource(
            type=r.type, name=r.name, urn=r.urn, props=r.inputs, protect=r.protect, secrets_marked=True
        )
        for r in resources
        if r.custom and not r.type.startswith("pulumi:")
    ]


def resources_from_plan_json(plan: dict[str, Any]) -> list[RecordedResource]:
    """The resources of a written ``plan.json``, its ``[secret]`` placeholders marked as secrets again."""

    def remark(value: Any) -> Any:
        if value == REDACTED:
            return wrap_secret(REDACTED)
        if isinstance(value, dict):
            return {k: remark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [remark(v) for v in value]
        return value

    return [
        RecordedResource(
            type=r["type"],
            name=r["name"],
            urn=r["urn"],
            parent=r.get("parent"),
            inputs=remark(r.get("inputs") or {}),
            custom=bool(r.get("custom", True)),
            protect=bool(r.get("protect", False)),
        )
        for r in plan.get("resources", [])
    ]


def check(resources: Sequence[RecordedResource], project_dir: Path | None = None) -> list[OfflineViolation]:
    """Every violation of the pack's rules in ``resources``."""
    rules = load_rules(project_dir)
    found = rules.evaluate(checked_resources(resources, rules))
    return [OfflineViolation(policy=str(v.policy), message=str(v.message), urn=v.urn) for v in found]


def rule_names(project_dir: Path | None = None) -> list[str]:
    """Names of every rule, in the order they run."""
    return [str(rule.name) for rule in load_rules(project_dir).RULES]


def report(violations: Sequence[OfflineViolation], *, rules_run: int, out: TextIO) -> None:
    """Print one line per violation, then a summary line."""
    for violation in violations:
        print(f"policy violation [mandatory] {violation.policy}: {violation.message}", file=out)
    if violations:
        print(f"policy: {len(violations)} mandatory violation(s) from {rules_run} rules", file=out)
    else:
        print(f"policy: all {rules_run} rules pass", file=out)


def run(resources: Sequence[RecordedResource], project_dir: Path | None, out: TextIO, err: TextIO | None = None) -> int:
    """Check ``resources`` and report on ``out``: 0 when every rule passes, 1 on a violation, 3 (on
    ``err``, default ``out``) when the pack's rules cannot be found or imported, so nothing was checked."""
    try:
        violations = check(resources, project_dir)
        rules_run = len(rule_names(project_dir))
    except PolicyPackNotFoundError as error:
        print(f"policy: error: {error} (exit {EXIT_PACK_MISSING}: nothing was checked)", file=err or out)
        return EXIT_PACK_MISSING
    report(violations, rules_run=rules_run, out=out)
    return EXIT_VIOLATED if violations else EXIT_PASSED

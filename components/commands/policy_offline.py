"""The policy pack's rules, run offline against the resources the offline plan recorded.

``python -m components plan --stack staging --policy`` runs the program under the recording
mocks (components.commands.plan) and then every rule of ``policy/service_lifecycle_policy/rules.py``
over the recorded resources: the same functions ``pulumi preview --policy-pack policy`` runs,
without the Pulumi CLI. Recorded inputs keep secrets wrapped, so the offline run can also tell
a Pulumi secret from plaintext (rules that need that run only here).

The rules live in the policy pack, which has its own virtualenv and must not depend on this
package; they are loaded from ``<project>/policy`` by path.
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

RULES_MODULE: Final = "service_lifecycle_policy.rules"
POLICY_DIR: Final = "policy"


class PolicyPackNotFoundError(Exception):
    """The policy pack's rules could not be found next to the project."""


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
    dirs = [] if project_dir is None else [project_dir / POLICY_DIR]
    dirs.append(Path(__file__).resolve().parents[2] / POLICY_DIR)  # the repository: components/commands/ → ../..
    return dirs


def load_rules(project_dir: Path | None = None) -> ModuleType:
    """Import the pack's rules module from ``<project_dir>/policy`` (or beside this package)."""
    for policy_dir in _candidate_dirs(project_dir):
        if (policy_dir / "service_lifecycle_policy" / "rules.py").is_file():
            path = str(policy_dir.resolve())
            if path not in sys.path:
                sys.path.insert(0, path)
            return importlib.import_module(RULES_MODULE)
    searched = ", ".join(str(d) for d in _candidate_dirs(project_dir))
    raise PolicyPackNotFoundError(f"policy pack rules not found (looked in {searched})")


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


def run(resources: Sequence[RecordedResource], project_dir: Path | None, out: TextIO) -> int:
    """Check ``resources`` and report; 0 when every rule passes, 1 otherwise (the plan's exit codes)."""
    try:
        violations = check(resources, project_dir)
        rules_run = len(rule_names(project_dir))
    except PolicyPackNotFoundError as error:
        print(f"policy: error: {error}", file=out)
        return 1
    report(violations, rules_run=rules_run, out=out)
    return 1 if violations else 0

"""CrossGuard adapter: turns each rule of ``rules.RULES`` into a mandatory pulumi_policy policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import _DictProxy, _ListProxy

from service_lifecycle_policy import rules

PACK_NAME: Final = "service-lifecycle"


def plain(value: Any) -> Any:
    """The engine's props without the unknown-checking proxies, unknowns left as sentinels.

    The rules decide themselves how to treat a value unknown during preview, so they must see
    the sentinel rather than have the proxy raise on first access.
    """
    if isinstance(value, _DictProxy | _ListProxy):
        value = value["__target"]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _protect(opts: Any) -> bool:
    return bool(getattr(opts, "protect", False))


def from_resource_args(args: ResourceValidationArgs) -> rules.CheckedResource:
    return rules.CheckedResource(
        type=args.resource_type,
        name=args.name,
        urn=args.urn,
        props=plain(args.props),
        protect=_protect(args.opts),
    )


def from_stack_args(args: StackValidationArgs) -> list[rules.CheckedResource]:
    return [
        rules.CheckedResource(
            type=r.resource_type, name=r.name, urn=r.urn, props=plain(r.props), protect=_protect(r.opts)
        )
        for r in args.resources
    ]


def _resource_validator(
    rule: rules.Rule,
) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    check: Any = rule.check

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in check(from_resource_args(args)):
            report(message, None)

    return validate


def _stack_validator(rule: rules.Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    check: Any = rule.check

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for message, urn in check(from_stack_args(args)):
            report(message, urn)

    return validate


def policies(selected: Sequence[rules.Rule] = rules.RULES) -> list[Policy]:
    """One mandatory CrossGuard policy per rule.

    Rules that need secrets to stay marked are left out: the engine hands policies unwrapped
    values, so they could not tell a Pulumi secret from plaintext (they run offline instead).
    """
    result: list[Policy] = []
    for rule in selected:
        if rule.needs_secret_marks:
            continue
        if rule.scope == "resource":
            result.append(
                ResourceValidationPolicy(
                    name=rule.name,
                    description=rule.description,
                    enforcement_level=EnforcementLevel.MANDATORY,
                    validate=_resource_validator(rule),
                )
            )
        else:
            result.append(
                StackValidationPolicy(
                    name=rule.name,
                    description=rule.description,
                    enforcement_level=EnforcementLevel.MANDATORY,
                    validate=_stack_validator(rule),
                )
            )
    return result

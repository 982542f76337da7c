"""The real engine's preview against the offline plan: the same resources, by URN, type and parent.

Every difference is a bug in one of them. Two kinds of resource exist only on the engine's side and
are set apart, not compared: the engine's default providers (``pulumi:providers:<pkg>::default_<v>``,
named by the plugin's version) and the root ``pulumi:pulumi:Stack`` when the plan has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_PROVIDER = "::default"


def _type(urn: str) -> str:
    return urn.split("::")[2].rsplit("$", maxsplit=1)[-1]


def engine_resources(steps: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """URN → (type, parent URN) of every resource a ``pulumi preview --json`` touches."""
    found: dict[str, tuple[str, str | None]] = {}
    for step in steps:
        state = step.get("newState") or step.get("oldState") or {}
        urn = str(step.get("urn") or state.get("urn"))
        if _type(urn).startswith("pulumi:providers:") and DEFAULT_PROVIDER in urn:
            continue
        found[urn] = (str(state.get("type") or _type(urn)), state.get("parent") or None)
    return found


def plan_resources(plan: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {str(r["urn"]): (str(r["type"]), r.get("parent") or None) for r in plan.get("resources", [])}


def compare(steps: Iterable[Mapping[str, Any]], plan: Mapping[str, Any]) -> list[str]:
    """Differences between the engine's preview and the offline plan, one line each."""
    real, offline = engine_resources(steps), plan_resources(plan)
    if not real:
        return ["the engine's preview has no resources"]
    if not offline:
        return ["the offline plan has no resources"]
    if not any(t == "pulumi:pulumi:Stack" for t, _ in offline.values()):
        # The plan records what the program registers; the root stack is the engine's own.
        real = {u: v for u, v in real.items() if v[0] != "pulumi:pulumi:Stack"}
    problems = []
    for urn in sorted(set(real) - set(offline)):
        problems.append(f"only in the engine's preview: {urn}")
    for urn in sorted(set(offline) - set(real)):
        problems.append(f"only in the offline plan: {urn}")
    for urn in sorted(set(real) & set(offline)):
        if real[urn] != offline[urn]:
            problems.append(f"{urn}: engine {real[urn]} != offline plan {offline[urn]}")
    return problems

"""The rules as files: the rule document as Prometheus rule-file YAML, and the offline plan's ``rules/`` files;
and what a rule document holds (its alerts, expressions, recorded series and the metrics they read).

:func:`write_rule_files` writes the ``spec`` of every recorded PrometheusRule (built by
:func:`components.monitoring.rules.rule_groups`) as ``rules/<service>.rules.yml``, the file
``promtool`` checks and tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Protocol

import yaml


class _RuleDumper(yaml.SafeDumper):
    """Block scalars for multi-line expressions, and no anchors: a file people read and diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_RuleDumper.add_representer(str, _str)


def to_yaml(groups: dict[str, Any]) -> str:
    """The rule document as a Prometheus rule file."""
    return yaml.dump(groups, Dumper=_RuleDumper, sort_keys=True, default_flow_style=False, width=200)


class _Recorded(Protocol):
    type: str
    inputs: dict[str, Any]


PROMETHEUS_RULE_TYPE: Final = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
SERVICE_LABEL_KEY: Final = "service-lifecycle/service"


def write_rule_files(resources: Iterable[_Recorded], out: Path) -> list[Path]:
    """Write the ``spec`` of every recorded PrometheusRule as ``out/rules/<service>.rules.yml``.

    The file holds exactly what the cluster's PrometheusRule carries, so ``promtool check rules``
    and ``promtool test rules`` on it check what would be deployed. Returns the written paths
    (none in stages without monitoring).
    """
    rules_dir = out / "rules"
    rules_dir.mkdir(parents=True, exist_ok=True)
    for stale in rules_dir.glob("*.rules.yml"):
        stale.unlink()
    written: list[Path] = []
    for resource in resources:
        if resource.type != PROMETHEUS_RULE_TYPE:
            continue
        metadata = resource.inputs.get("metadata") or {}
        object_labels = metadata.get("labels") or {}
        service = (
            object_labels.get(SERVICE_LABEL_KEY)
            or next((v for k, v in sorted(object_labels.items()) if str(k).endswith("/service")), None)  # labelPrefix
            or metadata.get("name")
            or "service"
        )
        path = rules_dir / f"{service}.rules.yml"
        path.write_text(to_yaml(resource.inputs["spec"]))
        written.append(path)
    return written


def alert_names(groups: dict[str, Any]) -> list[str]:
    """Names of every alert in a rule document."""
    return [r["alert"] for g in groups["groups"] for r in g["rules"] if "alert" in r]


_PROMQL_WORDS: Final = frozenset(
    {
        "sum", "min", "max", "avg", "count", "by", "without", "rate", "increase", "irate", "or", "and", "unless",
        "absent", "histogram_quantile", "on", "ignoring", "group_left", "group_right", "bool", "le", "namespace",
        "job", "pod", "container", "deployment", "offset",
    }
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (identifiers that are not PromQL words or label names)."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "[]", without_strings)
    without_matchers = re.sub(r"\{[^}]*\}", "{}", without_ranges)
    without_groupings = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", r"\1", without_matchers)
    names = set(re.findall(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*", without_groupings))  # not the s of 1800s
    return {n for n in names if n not in _PROMQL_WORDS and not re.fullmatch(r"\d+[smhd]?", n)}


def exprs(groups: dict[str, Any]) -> list[str]:
    """Every expression of a rule document."""
    return [r["expr"] for g in groups["groups"] for r in g["rules"]]


def recorded_names(groups: dict[str, Any]) -> set[str]:
    """Names of the series the document records."""
    return {r["record"] for g in groups["groups"] for r in g["rules"] if "record" in r}

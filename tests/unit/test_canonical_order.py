"""Issue 22, item 5: every written artefact has one key order, whatever protobuf or PyYAML is installed.

Values reach the mocks as protobuf ``Struct`` maps, iterated in a hash order that changed between
protobuf 5 and 6 (every manifest of a plan differed, 59 of 59 in a ``plan-diff``). The plan now
writes every mapping with its keys sorted. These tests cannot pass with protobuf's own order: in
protobuf 5's and 6's alike, ``metadata`` came before ``kind`` and labels were shuffled.
``tests/integration/test_protobuf_majors.py`` runs the plan under both majors and compares the bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.commands.plan import Plan, dump_manifest, run_plan, write_outputs
from components.monitoring.rule_files import to_yaml
from components.testing import canonical


def _unsorted(value: Any, where: str = "") -> list[str]:
    """Paths of every mapping whose keys are not in sorted order."""
    found: list[str] = []
    if isinstance(value, dict):
        if list(value) != sorted(value):
            found.append(f"{where or '/'}: {list(value)}")
        for k, v in value.items():
            found += _unsorted(v, f"{where}/{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _unsorted(v, f"{where}[{i}]")
    return found


def _reversed(value: Any) -> Any:
    """``value`` with every mapping's keys in reverse order: another order the wire could have used."""
    if isinstance(value, dict):
        return {k: _reversed(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    return value


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_every_written_artefact_has_its_keys_sorted_at_every_level(
    offline_plan: Callable[[str], tuple[dict[str, Any], Path]], stack: str
) -> None:
    plan_json, out = offline_plan(stack)
    files = sorted((out / "manifests").glob("*.yaml")) + sorted((out / "rules").glob("*.yml"))
    assert len(files) > 10
    problems = [f"{path.name} {p}" for path in files for p in _unsorted(yaml.safe_load(path.read_text()))]
    for resource in plan_json["resources"]:
        problems += [f"plan.json {resource['urn']} {p}" for p in _unsorted(resource["inputs"])]
    problems += [f"plan.json outputs {p}" for p in _unsorted(plan_json["outputs"])]
    for invoke in plan_json["invokes"]:
        problems += [f"plan.json invoke {invoke['token']} {p}" for p in _unsorted(invoke["args"])]
    assert problems == []
    # The dashboard is a ConfigMap manifest: it is among the files above.
    assert any("dashboard" in path.name for path in files)


def test_the_written_bytes_do_not_depend_on_the_order_values_arrive_in(
    tmp_path: Path, project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_REVISION", "0" * 40)
    plan, _ = run_plan(project_dir, "staging")
    shuffled: Plan = replace(
        plan,
        resources=[replace(r, inputs=_reversed(r.inputs)) for r in plan.resources],
        outputs=_reversed(plan.outputs),
        invokes=[{**i, "args": _reversed(i["args"])} for i in plan.invokes],
    )
    assert any(list(r.inputs) != list(s.inputs) for r, s in zip(plan.resources, shuffled.resources, strict=True))
    write_outputs(plan, tmp_path / "a")
    write_outputs(shuffled, tmp_path / "b")
    a = {p.relative_to(tmp_path / "a"): p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    b = {p.relative_to(tmp_path / "b"): p.read_bytes() for p in (tmp_path / "b").rglob("*") if p.is_file()}
    assert len(a) > 10 and a == b


def test_the_dumpers_sort_what_they_are_given() -> None:
    obj = {"metadata": {"name": "x", "labels": {"z": "1", "a": "2"}}, "kind": "ConfigMap", "apiVersion": "v1"}
    assert dump_manifest(obj) == dump_manifest(_reversed(obj))
    assert dump_manifest(obj).startswith("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels:\n    a: '2'\n")
    rules = {"groups": [{"rules": [{"record": "r", "expr": "up"}], "name": "g"}]}
    assert to_yaml(rules) == to_yaml(_reversed(rules)) == "groups:\n- name: g\n  rules:\n  - expr: up\n    record: r\n"
    assert json.dumps(canonical(_reversed(obj))) == json.dumps(canonical(obj))
    assert list(canonical({"b": {"d": 1, "c": 2}, "a": [{"y": 1, "x": 2}]})) == ["a", "b"]

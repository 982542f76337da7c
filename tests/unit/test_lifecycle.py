"""The stage → parts table of docs/design.md, as data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from components.lifecycle import STAGE_PARTS, ImageSource, Stage, parts_for


@pytest.mark.parametrize(
    ("stage", "image", "environment", "monitoring", "exposure", "access"),
    [
        (Stage.STAGING, ImageSource.BUILD, True, True, True, True),
        (Stage.PRODUCTION, ImageSource.PROMOTE, True, True, True, False),
        (Stage.SUNSET, ImageSource.NONE, False, False, False, False),
    ],
)
def test_stage_table_matches_design(
    stage: Stage, image: ImageSource, environment: bool, monitoring: bool, exposure: bool, access: bool
) -> None:
    parts = parts_for(stage)
    assert parts.image_source is image
    assert parts.environment is environment and parts.workload is environment
    assert parts.monitoring is monitoring
    assert parts.exposure is exposure
    assert parts.access_required is access


def test_every_stage_has_parts_and_the_table_is_read_only() -> None:
    assert set(STAGE_PARTS) == set(Stage)
    with pytest.raises(TypeError):
        STAGE_PARTS[Stage.SUNSET] = STAGE_PARTS[Stage.PRODUCTION]  # type: ignore[index]


def test_only_production_is_protected_and_needs_two_replicas() -> None:
    assert parts_for(Stage.PRODUCTION).protect_environment and parts_for(Stage.PRODUCTION).min_replicas == 2
    assert not parts_for(Stage.STAGING).protect_environment
    assert not parts_for(Stage.SUNSET).runs_anything


def test_no_component_branches_on_a_stack_or_stage_name() -> None:
    """Stage differences are values (docs/design.md): no component compares against a stage/stack literal."""
    offenders = []
    names = {s.value for s in Stage}
    for path in sorted(Path("components").rglob("*.py")):
        if path.as_posix() in {"components/lifecycle.py", "components/config/settings/reading.py"}:
            continue  # the stage table, and the reader of the stage value
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in names:
                        offenders.append(f"{path}:{node.lineno}")
                    if isinstance(side, ast.Call) and getattr(side.func, "attr", "") == "get_stack":
                        offenders.append(f"{path}:{node.lineno}")
                    if (
                        isinstance(side, ast.Attribute)
                        and isinstance(side.value, ast.Name)
                        and side.value.id == "Stage"
                    ):
                        offenders.append(f"{path}:{node.lineno}")
    assert not offenders, f"branches on a stage or stack name: {offenders}"

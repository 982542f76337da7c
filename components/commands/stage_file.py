"""The stage of a stack file: read it, and plan its change to ``sunset`` before anything is destroyed.

The edit is located with a round-trip YAML parser (ruamel.yaml keeps each key's line and column), so
a quoted key (``"service-lifecycle:stage":``), flow style or a nested unrelated ``stage:`` are told
apart from the one top-level ``config`` key; only the value's characters on that line change, and
the result is parsed again and must equal the original document with only the stage changed.

The key is the project's own, ``<project>:stage`` (or the bare ``stage``, which the Pulumi CLI reads
as the project's): the project is the ``name`` of the ``Pulumi.yaml`` next to the stack file
(:func:`project_of`), so a platform team's program named ``acme`` edits ``acme:stage``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelError

from components.config.settings import PROJECT, key
from components.config.stackfile import StackFileRefused, read_yaml

STAGE_KEY: Final = key("stage")
"""This repository's stage key; a stack file's own is :func:`stage_key` of its project."""
_BARE_KEY: Final = "stage"
_SCALAR: Final = re.compile(r"""^(?:"[^"\n]*"|'[^'\n]*'|[^\s#,}\]]+)""")


class StackFileEditError(Exception):
    """The stage cannot be changed safely; the message says why."""


def stack_name(stack: str) -> str:
    """The stack's own name: a fully qualified ``org/project/stack`` uses its last part."""
    return stack.rsplit("/", 1)[-1]


def stack_file(project_dir: Path, stack: str) -> Path:
    """``Pulumi.<stack>.yaml`` (a fully qualified ``org/project/stack`` uses its last part)."""
    return project_dir / f"Pulumi.{stack_name(stack)}.yaml"


def project_of(project_dir: Path) -> str:
    """The project's name, its settings' configuration namespace: ``name`` in ``project_dir/Pulumi.yaml``.

    Without a readable Pulumi.yaml with a name, :data:`~components.config.settings.PROJECT`, as
    :func:`components.config.stack_config.load_stack_config` does (which reports an unreadable one).
    """
    path = project_dir / "Pulumi.yaml"
    if not path.is_file():
        return PROJECT
    try:
        name = read_yaml(path).get("name")
    except (OSError, StackFileRefused):
        return PROJECT
    return str(name or PROJECT)


def stage_key(path: Path) -> str:
    """The stage key of stack file ``path``: ``<project>:stage``, the project's being next to it."""
    return f"{project_of(path.parent)}:{_BARE_KEY}"


def read_stage(path: Path, service: str | None = None) -> str | None:
    """The stage the stack file says; for ``service`` (one of several), that service's: its own
    ``<service>:stage``, else the project's."""
    doc = yaml.safe_load(path.read_text()) or {}
    return _effective_stage(doc.get("config") or {}, stage_key(path), service)


def _effective_stage(config: dict[str, Any], full_key: str, service: str | None) -> str | None:
    own = config.get(f"{service}:{_BARE_KEY}") if service else None
    return str(own) if own is not None else _stage_of(config, full_key)


def _stage_of(config: dict[str, Any], full_key: str) -> str | None:
    """The stage a stack file's ``config`` mapping says (the full key, else the bare one Pulumi reads as it)."""
    value = config.get(full_key, config.get(_BARE_KEY))
    return None if value is None else str(value)


@dataclass(frozen=True)
class StageEdit:
    """A planned stage change: the file's text now, and after."""

    path: Path
    old_stage: str
    before: str
    after: str

    def apply(self) -> None:
        """Write the new text, unless the file changed since it was planned."""
        if self.path.read_text() != self.before:
            raise StackFileEditError(f"{self.path.name} changed since the sunset read it; nothing was written")
        self.path.write_text(self.after)


def plan_stage_edit(path: Path, stage: str, service: str | None = None) -> StageEdit:
    """The edit that sets the stage to ``stage``; StackFileEditError when it is missing or ambiguous.

    For ``service`` (one of several in the stack), its own ``<service>:stage``: changed where the file has
    it, else added on the line after the project's stage key, at its indentation.
    """
    text = path.read_text()
    try:
        doc: Any = YAML(typ="rt").load(text)
    except RuamelError as error:
        raise StackFileEditError(f"{path.name} is not valid YAML: {error}") from None
    config = doc.get("config") if isinstance(doc, CommentedMap) else None
    if not isinstance(config, CommentedMap):
        raise StackFileEditError(f"{path.name} has no config mapping")
    full_key = stage_key(path)
    if service is not None and f"{service}:{_BARE_KEY}" in config:
        full_key = f"{service}:{_BARE_KEY}"
    elif service is not None:
        return _added_stage(path, text, config, shared_key=full_key, new_key=f"{service}:{_BARE_KEY}", stage=stage)
    found = [k for k in config if k in (full_key, _BARE_KEY)]
    if len(found) != 1:
        raise StackFileEditError(
            f"{path.name}: expected exactly one '{full_key}' key directly under config, found "
            f"{len(found)} ({', '.join(map(repr, found)) or 'none'}); Pulumi reads '{_BARE_KEY}' as "
            f"'{full_key}', so both together are ambiguous"
        )
    old = config[found[0]]
    if not isinstance(old, str):
        raise StackFileEditError(f"{path.name}: {found[0]} is {old!r}, not a stage name")
    line, column = config.lc.value(found[0])
    lines = text.splitlines(keepends=True)
    token = _SCALAR.match(lines[line][column:])
    if token is None:
        raise StackFileEditError(f"{path.name}: line {line + 1}: cannot find the stage value")
    lines[line] = lines[line][:column] + stage + lines[line][column + token.end() :]
    after = "".join(lines)
    expected = yaml.safe_load(text)
    expected["config"][found[0]] = stage
    if yaml.safe_load(after) != expected:  # never write a file that says something else than intended
        raise StackFileEditError(f"{path.name}: changing line {line + 1} would change more than the stage")
    return StageEdit(path=path, old_stage=old, before=text, after=after)


def _added_stage(
    path: Path, text: str, config: CommentedMap, *, shared_key: str, new_key: str, stage: str
) -> StageEdit:
    """The edit that adds ``new_key: stage`` after the project's stage key (whose value it inherited)."""
    anchor = [k for k in config if k in (shared_key, _BARE_KEY)]
    if len(anchor) != 1:
        raise StackFileEditError(f"{path.name}: expected exactly one '{shared_key}' key directly under config")
    line, column = config.lc.key(anchor[0])
    lines = text.splitlines(keepends=True)
    if line + 1 < len(lines) and not lines[line].endswith("\n"):
        lines[line] += "\n"
    lines.insert(line + 1, " " * column + f"{new_key}: {stage}\n")
    after = "".join(lines)
    expected = yaml.safe_load(text)
    expected["config"][new_key] = stage
    if yaml.safe_load(after) != expected:  # never write a file that says something else than intended
        raise StackFileEditError(f"{path.name}: adding {new_key} after line {line + 1} would change more")
    return StageEdit(path=path, old_stage=str(config[anchor[0]]), before=text, after=after)


def write_stage(path: Path, stage: str, service: str | None = None) -> str:
    """Set the stage to ``stage`` (that value only; ``service``: that service's own); return the old value."""
    edit = plan_stage_edit(path, stage, service)
    edit.apply()
    return edit.old_stage


def default_branch_stage(project_dir: Path, path: Path, service: str | None = None) -> tuple[str | None, str]:
    """(stage the default branch's copy of ``path`` says, where that was read) through git.

    The default branch is ``origin/HEAD`` (what the remote calls default), else ``origin/main``. A
    missing git, repository or file gives ``(None, why)``.
    """

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or f"git {' '.join(args)} failed")
        return done.stdout

    try:
        top = Path(git("rev-parse", "--show-toplevel").strip())
        try:
            branch = git("symbolic-ref", "--short", "refs/remotes/origin/HEAD").strip()
        except RuntimeError:
            branch = "origin/main"
        relative = path.resolve().relative_to(top.resolve()).as_posix()
        content = git("show", f"{branch}:{relative}")
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as error:
        return None, f"the default branch (git: {error})"
    doc = yaml.safe_load(content) or {}
    config = doc.get("config") or {} if isinstance(doc, dict) else {}
    return (_effective_stage(config, stage_key(path), service) if isinstance(config, dict) else None), branch

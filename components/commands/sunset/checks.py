"""What a sunset checks before its first destructive step. Each check returns the problem, or None;
:func:`precondition_problem` runs them in this order:

- the stack's image repository is a repository name (the registry step needs it);
- the report path can be written (a directory, or an unwritable place, would fail after the destroy);
- the stack file's stage key is unambiguous and the stage change is already on the default branch
  (a deploy from a branch that still says production would bring everything back);
- no live stack promotes from this one (``promoteFromStack``) without a pinned digest: its
  StackReference would lose ``image_ref`` and the next deploy would skip or break it.

And what the registry step reads: which other stacks still deploy from the same repository
(compared after normalisation).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from components.commands.stage_file import (
    StackFileEditError,
    plan_stage_edit,
    project_of,
    read_stage,
    stack_file,
    stack_name,
)
from components.config.stack_config import StackConfig, StackFileError, load_stack_config, stack_files
from components.lifecycle import Stage
from components.registry.model import normalize_repository

BranchStage = Callable[..., tuple[str | None, str]]
"""``(project_dir, stack_file[, service])`` → (the stage the default branch says, where it was read)."""


def precondition_problem(
    project_dir: Path,
    stack: str,
    repository: str,
    report_path: Path,
    branch_stage: BranchStage,
    *,
    dry_run: bool,
    service: str | None = None,
) -> str | None:
    """Everything that would make a later step fail, checked while nothing has changed yet."""
    project = project_of(project_dir)

    def key(short: str) -> str:  # the project's own namespace (Pulumi.yaml name)
        return f"{project}:{short}"

    try:
        normalize_repository(repository)
    except ValueError as error:
        return f"{key('imageRepository')}: {error}"
    problem = report_path_problem(report_path) or stage_problem(
        project_dir, stack, branch_stage, dry_run=dry_run, service=service
    )
    if problem:
        return problem
    waiting = promoters(project_dir, stack, service) if service else promoters(project_dir, stack)
    if waiting:
        names = ", ".join(waiting)
        output, pin = (
            (f"{service}_image_ref", f"{service}:pinnedDigest") if service else ("image_ref", key("pinnedDigest"))
        )
        whose = f"--service {service} " if service else ""
        return (
            f"live stack(s) {names} promote from {stack} ({key('promoteFromStack')}) without "
            f"{pin}: their StackReference would lose {output} and their next deploy would "
            f"break. Pin the digest they run ({pin}) or sunset {whose}{names} first. Nothing was changed."
        )
    return None


def report_path_problem(path: Path) -> str | None:
    """Why the report cannot be saved at ``path``, or None. Creates missing parent folders."""
    if path.is_dir():
        return f"--report {path} is a directory: give a file name (for example {path / 'sunset.json'})"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"--report {path}: cannot create its folder: {error.strerror or error}"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"--report {path} is not writable"
    if not os.access(path.parent, os.W_OK):
        return f"--report {path}: folder {path.parent} is not writable"
    return None


def stage_problem(
    project_dir: Path, stack: str, branch_stage: BranchStage, *, dry_run: bool, service: str | None = None
) -> str | None:
    """The stage key must be unambiguous; a real run needs ``sunset`` in the file and on the default branch
    (for ``service``, one of several: that service's stage, its own ``<service>:stage`` else the project's)."""
    path = stack_file(project_dir, stack)
    try:
        plan_stage_edit(path, Stage.SUNSET.value, service)
    except StackFileEditError as error:
        return str(error)
    if dry_run:
        return None
    which = f" --service {service}" if service else ""
    how = (
        f"set it with `python -m components sunset --stack {stack}{which} --set-stage` (or the sunset workflow, "
        f"which commits it first), commit {path.name} and merge it to the default branch, then run sunset again"
    )
    said = read_stage(path, service)
    if said != Stage.SUNSET.value:
        whose = f"service {service}'s " if service else ""
        return f"{path.name} says {whose}stage {said}, not sunset: {how}. Nothing was changed."
    branch_value, where = branch_stage(project_dir, path, service) if service else branch_stage(project_dir, path)
    if branch_value != Stage.SUNSET.value:
        said = f"says stage {branch_value}" if branch_value else "could not be read"
        return f"{path.name} on {where} {said}: until it says sunset, a deploy brings the stack back; {how}."
    return None


def promoters(project_dir: Path, stack: str, service: str | None = None) -> list[str]:
    """Live stacks that promote from ``stack`` without a pinned digest (their deploy needs its image_ref).

    ``service`` (one service of several): only stacks where that service is live and promotes, each
    setting read as the program reads it, ``<service>:<key>`` first, then the project's. A stack whose
    ``service`` is sunset reads no ``<service>_image_ref`` any more.
    """
    mine = stack_name(stack)
    found = []
    for other, config in _other_stacks(project_dir, stack):
        if config is None:
            continue
        values, key = config.values, config.key

        def value(short: str, values: dict[str, str] = values, key: Callable[[str], str] = key) -> str | None:
            own = values.get(f"{service}:{short}") if service else None
            return own if own is not None else values.get(key(short))

        source = value("promoteFromStack")
        live = value("stage") != Stage.SUNSET.value
        if live and source and stack_name(source) == mine and not value("pinnedDigest"):
            found.append(other)
    return found


def sharing_stacks(project_dir: Path, stack: str, repository: str) -> list[str]:
    """The project's other stacks whose committed stack file still deploys images of ``repository``.

    Staging and production share one repository: a sunset of one must not delete what the other runs.
    Repositories are compared normalised (host case, Docker Hub names, trailing slashes). A stack
    file that cannot be read counts as sharing (keeping images is the safe side).
    """
    wanted = normalize_repository(repository)
    found: list[str] = []
    for other, config in _other_stacks(project_dir, stack):
        same = _deploys_from(config, wanted)
        if same is None or config is None:
            found.append(f"{other} (unreadable stack file)")
            continue
        stage = config.values.get(config.key("stage"))
        if same and stage != Stage.SUNSET.value:
            found.append(f"{other} (stage {stage})")
    return found


def _deploys_from(config: StackConfig | None, wanted: str) -> bool | None:
    """Whether stack ``config`` deploys from repository ``wanted`` (its own, or one of its services' not at
    stage sunset); None when it cannot be read."""
    if config is None:
        return None
    shared_stage = config.values.get(config.key("stage"))
    namespaces = [config.project]
    try:
        listed = json.loads(config.values.get(config.key("services")) or "[]")
    except json.JSONDecodeError:
        return None
    namespaces += [s for s in listed if isinstance(s, str)] if isinstance(listed, list) else []
    for namespace in namespaces:
        theirs = config.values.get(f"{namespace}:imageRepository") or config.values.get(config.key("imageRepository"))
        stage = config.values.get(f"{namespace}:stage") or shared_stage
        if namespace != config.project and stage == Stage.SUNSET.value:
            continue  # that service is sunset: it deploys nothing
        try:
            if theirs is not None and normalize_repository(theirs) == wanted:
                return True
        except ValueError:
            return None
    return False


def _other_stacks(project_dir: Path, stack: str) -> Iterator[tuple[str, StackConfig | None]]:
    """The project's stacks but ``stack``, with their stack file's configuration (None: it cannot be read)."""
    for other, _ in stack_files(project_dir):
        if other == stack_name(stack):
            continue
        try:
            config: StackConfig | None = load_stack_config(project_dir, other)
        except StackFileError:
            config = None
        yield other, config

"""Sunset a stack: ``python -m components sunset --stack production [--yes] [--dry-run] [--report PATH]``.

docs/design.md steps 12 to 14, with the Pulumi Automation API:

1. **Remove the access points**: ``destroy --target <Exposure URN> --target-dependents`` (DNS
   records, tunnel, Access, cloudflared go; the service stops being reachable). The URN comes from
   :func:`components.service.component_urn`, the naming the program itself uses.
2. **Stage sunset in the stack file**: the command rewrites the one ``service-lifecycle:stage``
   line of ``Pulumi.<stack>.yaml`` (every other line kept as it is) and tells the operator to
   commit it: a deploy from a main branch that still said ``production`` would bring everything back.
3. **Unprotect** what the stage protects (production's namespace), with
   ``pulumi state unprotect --yes <urn>`` for each protected resource still in the stack: the
   Automation API has no unprotect, and the sunset ``up`` deletes every one of them anyway.
4. **``up``** with stage sunset: workload, monitoring and environment go.
5. **Registry decommission** (:mod:`components.registry`): images are deleted except the last
   ``imageRetainDigests`` digests production ran (read from the stack's ``image_ref`` output and its
   Deployments before anything is removed, and from an earlier report of an interrupted sunset).
   Skipped, every image kept, while another stack file still deploys from the same repository.
6. **Report**: what was removed, what was kept, when, which commands ran; JSON saved to a file
   (default ``sunset-<stack>.json``) and text printed.

Before changing anything it shows what will go and asks for confirmation (``--yes`` skips the
question; without a terminal and without ``--yes`` it refuses). ``--dry-run`` only reports.
Every step is skipped when already done, so a second run on a sunset stack changes nothing and
says so. Without the Pulumi CLI it stops before changing anything.

Exit codes: 0 done or nothing to do, 1 a step failed (the report says which), 2 bad arguments or
settings, 3 no Pulumi CLI, 4 not confirmed.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Protocol

import yaml

from components.exposure import TYPE as EXPOSURE_TYPE
from components.lifecycle import Stage
from components.plan import StackFileError, load_stack_config
from components.refs import DIGEST_REF
from components.service import ROLE_EXPOSURE, component_urn
from components.settings import PROJECT, SettingsError, key

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_CLI: Final = 3
EXIT_NOT_CONFIRMED: Final = 4

STAGE_KEY: Final = key("stage")
REGISTRY_STEP: Final = "registry decommission"
SECRET_MASK: Final = "[secret]"
_STACK_TYPE: Final = "pulumi:pulumi:Stack"
_PROVIDER_PREFIX: Final = "pulumi:providers:"
_COMPONENT_PREFIX: Final = "service-lifecycle:index:ServiceStack"
_STAGE_LINE = re.compile(
    rf"^(?P<head>\s+(?:{re.escape(PROJECT)}:)?stage:\s*)(?P<value>[\"']?[\w-]+[\"']?)(?P<tail>\s*(?:#.*)?)$"
)


class SunsetError(Exception):
    """A sunset that cannot go on; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# The boundary: the few stack operations sunset needs


@dataclass(frozen=True)
class StateResource:
    """One resource of the stack's state (from ``pulumi stack export``)."""

    urn: str
    type: str
    parent: str | None = None
    protect: bool = False
    image_refs: tuple[str, ...] = ()
    """Container images of a Kubernetes workload (``repo@sha256:…``), for the registry retention."""
    retain_on_delete: bool = False
    """Deleting it only drops it from the stack: the object itself stays (the shared cluster stack)."""


class StackOps(Protocol):
    """What sunset does to a stack. :class:`AutomationStack` is the real one; tests inject fakes."""

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs, plain values."""
        ...

    def resources(self) -> list[StateResource]:
        """The resources in the stack's state."""
        ...

    def preview_destroy(self, targets: Sequence[str]) -> dict[str, int]:
        """Preview ``destroy --target … --target-dependents``; the change summary."""
        ...

    def destroy(self, targets: Sequence[str]) -> dict[str, int]:
        """``destroy --target … --target-dependents``; the resource changes."""
        ...

    def unprotect(self, urn: str) -> None:
        """``pulumi state unprotect --yes <urn>``."""
        ...

    def up(self) -> dict[str, int]:
        """``up`` with the stack file as it is now; the resource changes."""
        ...

    def secret_config(self, name: str) -> str | None:
        """A configuration value in clear (registry credentials for the decommission)."""
        ...


class AutomationStack:
    """:class:`StackOps` over ``pulumi.automation`` (a local workspace in the project directory)."""

    def __init__(self, stack: str, project_dir: Path, *, echo: Callable[[str], Any] = print) -> None:
        from pulumi import automation

        self._auto = automation
        self._name = stack
        self._dir = project_dir
        self._echo = echo
        self._stack = automation.select_stack(stack_name=stack, work_dir=str(project_dir))

    def outputs(self) -> dict[str, Any]:
        # The report is saved and published (job summary, artifact): secret outputs never reach it in clear.
        return {name: SECRET_MASK if value.secret else value.value for name, value in self._stack.outputs().items()}

    def resources(self) -> list[StateResource]:
        deployment = self._stack.export_stack().deployment or {}
        return [_state_resource(r) for r in deployment.get("resources") or []]

    def preview_destroy(self, targets: Sequence[str]) -> dict[str, int]:
        result = self._stack.preview_destroy(target=list(targets), target_dependents=True, on_output=self._echo)
        return _changes(result.change_summary)

    def destroy(self, targets: Sequence[str]) -> dict[str, int]:
        result = self._stack.destroy(target=list(targets), target_dependents=True, on_output=self._echo)
        return _changes(result.summary.resource_changes)

    def unprotect(self, urn: str) -> None:
        subprocess.run(
            ["pulumi", "state", "unprotect", "--stack", self._name, "--yes", "--non-interactive", urn],
            cwd=self._dir, check=True, timeout=300,
        )  # fmt: skip

    def up(self) -> dict[str, int]:
        result = self._stack.up(on_output=self._echo)
        return _changes(result.summary.resource_changes)

    def secret_config(self, name: str) -> str | None:
        try:
            return self._stack.get_config(name, path=False).value
        except self._auto.CommandError:
            return None


def _changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    """``{OpType.DELETE: 3}`` → ``{"delete": 3}``."""
    return {str(getattr(op, "value", op)): int(count) for op, count in (summary or {}).items()}


def _state_resource(raw: Mapping[str, Any]) -> StateResource:
    images: list[str] = []
    inputs = raw.get("inputs") or {}
    if str(raw.get("type", "")).startswith("kubernetes:apps/v1:") and isinstance(inputs, dict):
        template = ((inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in template.get("containers") or []:
            image = container.get("image") if isinstance(container, dict) else None
            if isinstance(image, str) and DIGEST_REF.match(image):
                images.append(image)
    return StateResource(
        urn=str(raw["urn"]),
        type=str(raw.get("type", "")),
        parent=raw.get("parent") or None,
        protect=bool(raw.get("protect", False)),
        image_refs=tuple(images),
        retain_on_delete=bool(raw.get("retainOnDelete", False)),
    )


StackFactory = Callable[[str, Path], StackOps]


# ---------------------------------------------------------------------------------------------
# The registry boundary


@dataclass
class RegistryResult:
    """What the decommission did (or, in a dry run, would do)."""

    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Decommission(Protocol):
    def __call__(
        self,
        *,
        repository: str,
        production_refs: Sequence[str],
        retain: int,
        dry_run: bool,
        username: str | None,
        password: str | None,
    ) -> RegistryResult: ...


def registry_decommission(
    *,
    repository: str,
    production_refs: Sequence[str],
    retain: int,
    dry_run: bool,
    username: str | None,
    password: str | None,
) -> RegistryResult:
    """Through :func:`components.registry.decommission`: keep the last ``retain`` digests production ran.

    ``production_refs`` is newest first; ``keep_last`` wants the history oldest first.
    """
    from components.registry import decommission, keep_last

    keep = keep_last(list(reversed(production_refs)), retain)
    report = decommission(repository, keep, dry_run, username=username, password=password)
    return RegistryResult(
        deleted=[f"{repository}@{m.digest}" for m in report.deleted],
        kept=[f"{repository}@{m.digest}" for m in report.kept],
        errors=[f"{f.digest}: {f.error}" for f in report.failures],
    )


# ---------------------------------------------------------------------------------------------
# The stack file


def stack_file(project_dir: Path, stack: str) -> Path:
    """``Pulumi.<stack>.yaml`` (a fully qualified ``org/project/stack`` uses its last part)."""
    return project_dir / f"Pulumi.{stack.rsplit('/', 1)[-1]}.yaml"


def read_stage(path: Path) -> str | None:
    doc = yaml.safe_load(path.read_text()) or {}
    config = doc.get("config") or {}
    value = config.get(STAGE_KEY, config.get("stage"))
    return None if value is None else str(value)


def write_stage(path: Path, stage: str) -> str:
    """Set ``service-lifecycle:stage`` to ``stage``, changing that one line only; return the old value."""
    lines = path.read_text().splitlines(keepends=True)
    hits = [i for i, line in enumerate(lines) if _STAGE_LINE.match(line.rstrip("\r\n"))]
    if len(hits) != 1:
        raise SunsetError(f"{path.name}: expected exactly one '{STAGE_KEY}:' line under config, found {len(hits)}")
    index = hits[0]
    ending = lines[index][len(lines[index].rstrip("\r\n")) :]
    match = _STAGE_LINE.match(lines[index].rstrip("\r\n"))
    assert match is not None
    old = match.group("value").strip("\"'")
    lines[index] = f"{match.group('head')}{stage}{match.group('tail')}{ending}"
    path.write_text("".join(lines))
    if read_stage(path) != stage:  # never leave a file that says something else than intended
        raise SunsetError(f"{path.name}: rewriting the stage line did not give stage {stage}")
    return old


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class Step:
    name: str
    status: str
    """planned, done, skipped, failed."""
    detail: str = ""
    command: str = ""
    items: list[str] = field(default_factory=list)


@dataclass
class Report:
    stack: str
    project: str
    started: str
    finished: str = ""
    dry_run: bool = False
    result: str = ""
    """done, nothing-to-do, dry-run, refused, failed."""
    exposure_urn: str = ""
    stage_before: str = ""
    stage_after: str = ""
    steps: list[Step] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)
    """Dropped from the stack but left in place (``retain_on_delete``: the shared cluster stack)."""
    kept: list[str] = field(default_factory=list)
    production_image_refs: list[str] = field(default_factory=list)
    registry_deleted: list[str] = field(default_factory=list)
    registry_kept: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    next_actions: list[str] = field(default_factory=list)

    def step(self, name: str) -> Step:
        for existing in self.steps:
            if existing.name == name:
                return existing
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"sunset of stack {self.stack} ({self.project}): {self.result}",
            f"  started {self.started}" + (f", finished {self.finished}" if self.finished else ""),
            f"  stage in the stack file: {self.stage_before} -> {self.stage_after}",
            f"  exposure: {self.exposure_urn}",
            "steps:",
        ]
        for step in self.steps:
            lines.append(f"  [{step.status}] {step.name}: {step.detail}")
            if step.command:
                lines.append(f"      $ {step.command}")
            lines += [f"      - {item}" for item in step.items]
        for title, values in (
            ("removed", self.removed),
            ("kept", self.kept),
            ("images deleted from the registry", self.registry_deleted),
            ("images kept in the registry", self.registry_kept),
            ("still in the stack", self.remaining),
            ("next", self.next_actions),
        ):
            if values:
                lines.append(f"{title}:")
                lines += [f"  - {v}" for v in values]
        return "\n".join(lines)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# The orchestration


@dataclass
class Options:
    stack: str
    project_dir: Path
    yes: bool = False
    dry_run: bool = False
    report_path: Path | None = None


@dataclass
class Inputs:
    """Everything sunset reads before it decides (and before it changes anything)."""

    service: str
    repository: str
    username: str | None
    retain: int
    stage: str
    urn: str
    resources: list[StateResource]
    outputs: dict[str, Any]
    previous: dict[str, Any] | None
    sharing: list[str] = field(default_factory=list)
    """Other stacks whose stack file still deploys from ``repository`` (not sunset): images stay."""


def sharing_stacks(project_dir: Path, stack: str, repository: str) -> list[str]:
    """The project's other stacks whose committed stack file still deploys images of ``repository``.

    Staging and production share one repository: a sunset of one must not delete what the other runs.
    A stack file that cannot be read counts as sharing (keeping images is the safe side).
    """
    mine = stack_file(project_dir, stack).name
    found: list[str] = []
    for path in sorted(project_dir.glob("Pulumi.*.yaml")):
        if path.name == mine:
            continue
        other = path.name[len("Pulumi.") : -len(".yaml")]
        try:
            values = load_stack_config(project_dir, other).values
        except StackFileError:
            found.append(f"{other} (unreadable stack file)")
            continue
        stage = values.get(STAGE_KEY)
        if values.get(key("imageRepository")) == repository and stage != Stage.SUNSET.value:
            found.append(f"{other} (stage {stage})")
    return found


def exposure_urn(stack: str, service: str) -> str:
    """The Exposure's URN in ``stack``, by the program's own naming."""
    return component_urn(
        project=PROJECT, stack=stack.rsplit("/", 1)[-1], service=service, child_type=EXPOSURE_TYPE, role=ROLE_EXPOSURE
    )


def _descendants(resources: Sequence[StateResource], root: str) -> list[StateResource]:
    """``root`` and everything parented (transitively) under it, plus what depends on its provider."""
    members = {root}
    changed = True
    while changed:
        changed = False
        for resource in resources:
            if resource.urn not in members and resource.parent in members:
                members.add(resource.urn)
                changed = True
    return [r for r in resources if r.urn in members]


def _workload_like(resources: Sequence[StateResource]) -> list[StateResource]:
    """What a sunset ``up`` removes: everything but the stack, providers and ServiceStack components."""
    return [
        r
        for r in resources
        if r.type != _STACK_TYPE and not r.type.startswith(_PROVIDER_PREFIX) and r.type != _COMPONENT_PREFIX
    ]


def _production_refs(inputs: Inputs) -> list[str]:
    refs: list[str] = []
    image_ref = inputs.outputs.get("image_ref")
    if isinstance(image_ref, str) and DIGEST_REF.match(image_ref):
        refs.append(image_ref)
    for resource in inputs.resources:
        refs += [r for r in resource.image_refs if r.startswith(inputs.repository + "@")]
    if inputs.previous:
        refs += [r for r in inputs.previous.get("production_image_refs") or [] if isinstance(r, str)]
    return list(dict.fromkeys(refs))  # first seen (the newest) first, no duplicates


class Sunset:
    """One sunset run. Construct with the boundary objects, then :meth:`run`."""

    def __init__(
        self,
        options: Options,
        *,
        stack_factory: StackFactory | None = None,
        decommission: Decommission = registry_decommission,
        which: Callable[[str], str | None] = shutil.which,
        stdin: IO[str] | None = None,
        out: IO[str] | None = None,
        clock: Callable[[], str] = _now,
    ) -> None:
        self.options = options
        self._factory: StackFactory = stack_factory or AutomationStack
        self._decommission = decommission
        self._which = which
        self._stdin = stdin if stdin is not None else sys.stdin
        self._out = out if out is not None else sys.stdout
        self._clock = clock
        self.report: Report | None = None

    def say(self, text: str) -> None:
        print(text, file=self._out)

    @property
    def report_path(self) -> Path:
        name = self.options.stack.rsplit("/", 1)[-1]
        return self.options.report_path or self.options.project_dir / f"sunset-{name}.json"

    # -- entry ---------------------------------------------------------------------------------

    def run(self) -> int:
        opts = self.options
        path = stack_file(opts.project_dir, opts.stack)
        if not path.is_file():
            self.say(f"error: {path} does not exist: sunset needs the stack's committed stack file")
            return EXIT_USAGE
        try:
            config = load_stack_config(opts.project_dir, opts.stack.rsplit("/", 1)[-1])
        except StackFileError as error:
            self.say(f"error: {path.name}:\n" + "\n".join(f"  {p}" for p in error.problems))
            return EXIT_USAGE
        service = config.values.get(key("serviceName"))
        repository = config.values.get(key("imageRepository"))
        retain_raw = config.values.get(key("imageRetainDigests"), "1")
        if not service or not repository or not retain_raw.isdigit() or int(retain_raw) < 1:
            self.say(f"error: {path.name} must set {key('serviceName')}, {key('imageRepository')} and a positive "
                     f"{key('imageRetainDigests')}")  # fmt: skip
            return EXIT_USAGE
        # Stop before anything can change when the CLI the Automation API drives is missing.
        if self._which("pulumi") is None:
            self.say(
                "error: the Pulumi CLI is not installed (no `pulumi` on PATH): the Automation API drives it.\n"
                "  Nothing was changed. Install it (https://www.pulumi.com/docs/install/) and run sunset again."
            )
            return EXIT_NO_CLI
        try:
            ops = self._factory(opts.stack, opts.project_dir)
            inputs = Inputs(
                service=service,
                repository=repository,
                username=config.values.get(key("registryUsername")) or None,  # Pulumi.yaml's "" is unset
                retain=int(retain_raw),
                stage=read_stage(path) or "",
                urn=exposure_urn(opts.stack, service),
                resources=ops.resources(),
                outputs=ops.outputs(),
                previous=self._previous_report(),
                sharing=sharing_stacks(opts.project_dir, opts.stack, repository),
            )
        except FileNotFoundError as error:
            self.say(f"error: the Pulumi CLI could not be run ({error}). Nothing was changed.")
            return EXIT_NO_CLI
        except Exception as error:
            self.say(f"error: could not read stack {opts.stack}: {error}. Nothing was changed.")
            return EXIT_FAILED
        return self._run(ops, inputs, path)

    def _previous_report(self) -> dict[str, Any] | None:
        if not self.report_path.is_file():
            return None
        try:
            loaded: Any = json.loads(self.report_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return loaded if isinstance(loaded, dict) and loaded.get("stack") == self.options.stack else None

    # -- plan, confirm, execute ------------------------------------------------------------------

    def _run(self, ops: StackOps, inputs: Inputs, path: Path) -> int:
        opts = self.options
        report = self.report = Report(
            stack=opts.stack, project=PROJECT, started=self._clock(), dry_run=opts.dry_run,
            exposure_urn=inputs.urn, stage_before=inputs.stage, stage_after=inputs.stage,
        )  # fmt: skip
        exposure = _descendants(inputs.resources, inputs.urn)
        exposure_urns = {r.urn for r in exposure}
        workload = [r for r in _workload_like(inputs.resources) if r.urn not in exposure_urns]
        protected = [r for r in workload if r.protect]
        retained = [r.urn for r in workload if r.retain_on_delete]
        refs = _production_refs(inputs)
        report.production_image_refs = refs
        exported = inputs.outputs.get("exposure_urn")
        if isinstance(exported, str) and exported != inputs.urn:
            return self._fail(
                report, "remove access points",
                f"the stack exports exposure_urn {exported} but this program names it {inputs.urn}: the stack "
                "was deployed by other code; refusing to target anything. Nothing was changed.",
            )  # fmt: skip
        stack_name = opts.stack
        sunset_already = not exposure and not workload and inputs.stage == Stage.SUNSET.value
        # The registry step is due with the rest of a sunset, or when an earlier run stopped before it.
        registry_due = not sunset_already or _previous_step_status(inputs.previous, REGISTRY_STEP) not in (
            None,
            "done",
        )
        # Another live stack deploys from the same repository: deleting "all but ours" would delete its images.
        registry_due = registry_due and not inputs.sharing
        registry_done = not registry_due

        if sunset_already and not registry_due:
            report.result = "nothing-to-do"
            report.finished = self._clock()
            self.say(f"stack {stack_name} is already sunset: its stack file says stage sunset and no exposure, "
                     "workload or monitoring is left. Nothing to do; nothing was changed.")  # fmt: skip
            return EXIT_OK

        stage_change = inputs.stage != Stage.SUNSET.value
        up_due = bool(workload) or stage_change
        destroy_cmd = f"pulumi destroy --stack {stack_name} --target '{inputs.urn}' --target-dependents --yes"
        unprotect_cmds = [f"pulumi state unprotect --stack {stack_name} --yes '{r.urn}'" for r in protected]
        report.steps = [
            Step(
                "remove access points",
                "planned" if exposure else "skipped",
                f"destroy the Exposure and its {len(exposure) - 1} children" if exposure else "no exposure left",
                destroy_cmd if exposure else "",
                [r.urn for r in exposure],
            ),
            Step(
                "set stage sunset in the stack file",
                "planned" if stage_change else "skipped",
                f"{path.name}: {STAGE_KEY} {inputs.stage} -> sunset" if stage_change else f"{path.name} says sunset",
            ),
            Step(
                "unprotect",
                "planned" if protected else "skipped",
                f"{len(protected)} protected resource(s) the sunset up deletes" if protected else "nothing protected",
                "; ".join(unprotect_cmds),
                [r.urn for r in protected],
            ),
            Step(
                "decommission workload and monitoring",
                "planned" if up_due else "skipped",
                f"pulumi up with stage sunset removes {len(workload) - len(retained)} resource(s)"
                + (f" and leaves {len(retained)} retained one(s) in place" if retained else ""),
                f"pulumi up --stack {stack_name} --yes" if up_due else "",
                [r.urn for r in workload],
            ),
            Step(
                REGISTRY_STEP,
                "skipped" if registry_done else "planned",
                f"every image kept: {', '.join(inputs.sharing)} still deploy(s) from {inputs.repository}; "
                "the last stack of it to sunset decommissions the images"
                if inputs.sharing
                else "done by an earlier run"
                if registry_done
                else f"{inputs.repository}: keep the last {inputs.retain} digest(s) production ran, delete the rest",
            ),
        ]
        if exposure:
            try:
                summary = ops.preview_destroy([inputs.urn])
                report.step("remove access points").detail += f" (engine preview: {_summary(summary)})"
            except Exception as error:
                return self._fail(report, "remove access points", f"preview failed: {error}. Nothing was changed.")
            # --target-dependents also takes whatever depends on the Exposure: only the access points may go.
            if summary.get("delete", 0) > len(exposure):
                return self._fail(
                    report, "remove access points",
                    f"the engine would delete {summary['delete']} resources but the Exposure holds {len(exposure)}: "
                    "something outside it depends on it; refusing to remove more than the access points. "
                    "Nothing was changed.",
                )  # fmt: skip
        self.say(report.render())

        if opts.dry_run:
            if not registry_done and refs:
                self._registry_preview(ops, report, inputs, refs)
            report.result = "dry-run"
            report.finished = self._clock()
            self.say("dry run: nothing was changed.")
            if opts.report_path is not None:
                self._save(report)
            return EXIT_OK
        if not opts.yes and not self._confirm(stack_name):
            report.result = "refused"
            return EXIT_NOT_CONFIRMED

        # 1. access points
        if exposure:
            step = report.step("remove access points")
            try:
                changes = ops.destroy([inputs.urn])
            except Exception as error:
                return self._fail(report, step.name, f"destroy failed: {error}")
            step.status, step.detail = "done", f"removed ({_summary(changes)})"
            report.removed += [r.urn for r in exposure]
        # 2. the stack file
        if inputs.stage != Stage.SUNSET.value:
            step = report.step("set stage sunset in the stack file")
            try:
                write_stage(path, Stage.SUNSET.value)
            except (OSError, SunsetError) as error:
                return self._fail(report, step.name, str(error))
            step.status = "done"
            report.stage_after = Stage.SUNSET.value
            report.next_actions.append(
                f"commit the stack file so main says sunset: git add {path.name} && "
                f"git commit -m '{stack_name}: sunset'"
            )
        # 3. unprotect
        for resource in protected:
            try:
                ops.unprotect(resource.urn)
            except Exception as error:
                return self._fail(report, "unprotect", f"{resource.urn}: {error}")
        if protected:
            report.step("unprotect").status = "done"
        # 4. up with stage sunset
        step = report.step("decommission workload and monitoring")
        if step.status == "planned":
            try:
                changes = ops.up()
            except Exception as error:
                return self._fail(report, step.name, f"up failed: {error}")
            step.status, step.detail = "done", f"removed ({_summary(changes)})"
            report.removed += [r.urn for r in workload if r.urn not in retained]
            report.retained = retained
        elif inputs.previous:  # an earlier run did the up: what it left in place is still there
            report.retained = [u for u in inputs.previous.get("retained") or [] if isinstance(u, str)]
        # 5. registry
        step = report.step(REGISTRY_STEP)
        if step.status == "planned":
            if not refs:
                return self._fail(
                    report, step.name,
                    "no digest production ran is known (no image_ref output, no Deployment in the state, no "
                    "earlier report): refusing to delete images blind",
                )  # fmt: skip
            try:
                result = self._decommission(
                    repository=inputs.repository, production_refs=refs, retain=inputs.retain, dry_run=False,
                    username=inputs.username, password=ops.secret_config(key("registryPassword")),
                )  # fmt: skip
            except Exception as error:
                return self._fail(report, step.name, str(error))
            report.registry_deleted, report.registry_kept = result.deleted, result.kept
            step.items = [f"deleted {d}" for d in result.deleted] + [f"kept {k}" for k in result.kept]
            if result.errors:
                step.items += [f"error: {e}" for e in result.errors]
                return self._fail(report, step.name, f"{len(result.errors)} error(s); run sunset again to retry")
            step.status = "done"
            step.detail += f": deleted {len(result.deleted)}, kept {len(result.kept)}"
            if len(refs) < inputs.retain:  # the state only knows what production runs now
                step.detail += f" (only {len(refs)} digest(s) production ran are known)"
        elif inputs.previous:
            report.registry_deleted = list(inputs.previous.get("registry_deleted") or [])
            report.registry_kept = list(inputs.previous.get("registry_kept") or [])
        # 6. confirm
        return self._confirm_and_finish(ops, report, inputs)

    def _registry_preview(self, ops: StackOps, report: Report, inputs: Inputs, refs: Sequence[str]) -> None:
        """The decommission in its own dry-run mode: lists, deletes nothing. A failure is only noted."""
        step = report.step(REGISTRY_STEP)
        try:
            result = self._decommission(
                repository=inputs.repository, production_refs=refs, retain=inputs.retain, dry_run=True,
                username=inputs.username, password=ops.secret_config(key("registryPassword")),
            )  # fmt: skip
        except Exception as error:
            step.items = [f"could not list the registry: {error}"]
            return
        step.items = [f"would delete {d}" for d in result.deleted] + [f"would keep {k}" for k in result.kept]
        self.say(f"registry ({inputs.repository}), dry run:")
        self.say("\n".join(f"  - {item}" for item in step.items) or "  nothing to delete")

    def _confirm_and_finish(self, ops: StackOps, report: Report, inputs: Inputs) -> int:
        try:
            after = ops.resources()
            report.outputs = ops.outputs()
        except Exception as error:
            return self._fail(report, "confirm", f"could not read the stack after the sunset: {error}")
        report.remaining = [r.urn for r in _workload_like(after)]
        report.kept = [
            f"stack {report.stack}, its state and update history",
            f"{stack_file(self.options.project_dir, report.stack).name} (stage: sunset)",
            *[f"{urn} (retain_on_delete: out of the stack, still running)" for urn in report.retained],
            *[f"image {ref}" for ref in report.registry_kept],
            *(
                [f"every image of {inputs.repository}: {', '.join(inputs.sharing)} still deploy(s) from it"]
                if inputs.sharing
                else []
            ),
        ]
        if report.remaining:
            return self._fail(report, "confirm", f"{len(report.remaining)} resource(s) are still in the stack")
        report.result = "done"
        report.finished = self._clock()
        self._save(report)
        self.say(report.render())
        return EXIT_OK

    def _confirm(self, stack_name: str) -> bool:
        if not self._stdin.isatty():
            self.say("refusing: stdin is not a terminal and --yes was not given. Nothing was changed.")
            return False
        self.say(f"Type the stack name ({stack_name}) to sunset it: ")
        answer = self._stdin.readline().strip()
        if answer != stack_name:
            self.say("not confirmed. Nothing was changed.")
            return False
        return True

    def _fail(self, report: Report, step_name: str, message: str) -> int:
        try:
            step = report.step(step_name)
        except KeyError:
            step = Step(step_name, "planned")
            report.steps.append(step)
        step.status, step.detail = "failed", message
        report.result = "failed"
        report.finished = self._clock()
        report.next_actions.append("fix the cause and run sunset again: finished steps are skipped")
        self._save(report)
        self.say(report.render())
        return EXIT_FAILED

    def _save(self, report: Report) -> None:
        self.report_path.parent.mkdir(parents=True, exist_ok=True)
        self.report_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
        self.say(f"report saved to {self.report_path}")


def _previous_step_status(previous: Mapping[str, Any] | None, name: str) -> str | None:
    for step in (previous or {}).get("steps") or []:
        if isinstance(step, dict) and step.get("name") == name:
            status = step.get("status")
            return str(status) if status is not None else None
    return None


def _summary(changes: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {op}" for op, count in sorted(changes.items())) or "no changes"


# ---------------------------------------------------------------------------------------------
# Command


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components sunset",
        # Plain text: the module docstring is reStructuredText (``…``, **…**) and argparse prints it raw.
        description="Sunset a stack: remove its access points, then its workload and monitoring, then its "
        "registry images; report what was removed and kept. Asks before changing anything.",
    )
    parser.add_argument("--stack", required=True, help="stack to sunset (Pulumi.<stack>.yaml must exist)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (CI)")
    parser.add_argument("--dry-run", action="store_true", help="only report what would be done")
    parser.add_argument("--report", type=Path, help="where to save the JSON report (default sunset-<stack>.json)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="directory of Pulumi.yaml (default .)")
    args = parser.parse_args(argv)
    options = Options(
        stack=args.stack, project_dir=args.project_dir.resolve(), yes=args.yes, dry_run=args.dry_run,
        report_path=args.report,
    )  # fmt: skip
    try:
        return Sunset(options).run()
    except SettingsError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE

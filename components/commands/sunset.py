"""Sunset a stack: ``python -m components sunset --stack production [--yes] [--dry-run] [--report PATH]``.

docs/design.md steps 12 to 14, with the Pulumi Automation API. Before the first destructive step it
checks everything it will need (:mod:`components.commands.sunset_checks`): the report path is writable; the
stack file's stage key is unambiguous and says ``sunset`` on the default branch (``--set-stage``
writes it, through a round-trip YAML edit, for you to commit: a deploy from a branch that still said
``production`` would bring everything back); no live stack promotes from this one without a pinned
digest. Then:

1. **Silence** the service's alerts in Alertmanager for the sunset window (``--alertmanager-url``,
   or env ``SUNSET_ALERTMANAGER_URL``): TunnelDown would page between steps 2 and 4.
2. **Remove the access points**: ``destroy --target <Exposure URN> --target-dependents`` (DNS
   records, tunnel, Access, cloudflared go). The URN is the stack's ``exposure_urn`` output, else
   the one Exposure in its state: never computed from a project name.
3. **Unprotect** what the stage protects (production's namespace), with
   ``pulumi state unprotect --yes <urn>``: the Automation API has no unprotect.
4. **``up``** with stage sunset: workload, monitoring and environment go.
5. **Registry decommission** (:mod:`components.registry`): every image is deleted except, for every
   stack that ever deployed from the repository, its last ``imageRetainDigests`` digests (the
   retention ledger, :mod:`components.commands.retention`, and this stack's state). Skipped, every image
   kept, while another live stack file still deploys from the same repository.
6. **Report**: what was removed, what was kept, when, which commands ran; JSON saved to a file
   (default ``sunset-<stack>.json``) and text printed.

It shows what will go and asks for confirmation (``--yes`` skips the question; without a terminal
and without ``--yes`` it refuses). ``--dry-run`` only reports. Every step is skipped when already
done, so a second run changes nothing and says so. Without the Pulumi CLI it stops before changing anything.

Exit codes: 0 done or nothing to do, 1 a step failed (the report says which), 2 bad arguments,
settings or a failed precondition, 3 no Pulumi CLI, 4 not confirmed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Protocol

from components.commands import retention, silence
from components.commands.stage_file import (
    STAGE_KEY,
    StackFileEditError,
    default_branch_stage,
    read_stage,
    stack_file,
    write_stage,
)
from components.commands.sunset_checks import BranchStage, promoters, report_path_problem, sharing_stacks, stage_problem
from components.commands.sunset_report import Report, Step, _now
from components.commands.sunset_stack import (
    SECRET_MASK,
    AutomationStack,
    StackFactory,
    StackOps,
    StateResource,
    _state_resource,
)
from components.exposure import TYPE as EXPOSURE_TYPE
from components.lifecycle import Stage
from components.refs import DIGEST_REF
from components.registry_model import normalize_digest, normalize_repository
from components.settings import PROJECT, SettingsError, key
from components.stack_config import StackFileError, load_stack_config

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_CLI: Final = 3
EXIT_NOT_CONFIRMED: Final = 4

REGISTRY_STEP: Final = "registry decommission"
SILENCE_STEP: Final = "silence alerts"
STAGE_STEP: Final = "stage sunset on the default branch"
ALERTMANAGER_ENV: Final = "SUNSET_ALERTMANAGER_URL"
_STACK_TYPE: Final = "pulumi:pulumi:Stack"
_PROVIDER_PREFIX: Final = "pulumi:providers:"
_COMPONENT_PREFIX: Final = "service-lifecycle:index:ServiceStack"

__all__ = [
    "SECRET_MASK", "STAGE_KEY", "AutomationStack", "Report", "StackFileEditError", "StackOps", "StateResource",
    "Step", "Sunset", "_state_resource", "read_stage", "stack_file", "write_stage",
]  # fmt: skip


class SunsetError(Exception):
    """A sunset that cannot go on; the message says why and what to do."""


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
        self, *, repository: str, keep: Sequence[str], dry_run: bool, username: str | None, password: str | None
    ) -> RegistryResult: ...


def registry_decommission(
    *, repository: str, keep: Sequence[str], dry_run: bool, username: str | None, password: str | None
) -> RegistryResult:
    """Through :func:`components.registry.decommission`: keep exactly the ``keep`` digests."""
    from components.registry import decommission

    report = decommission(repository, list(keep), dry_run, username=username, password=password)
    return RegistryResult(
        deleted=[f"{report.repository}@{m.digest}" for m in report.deleted],
        kept=[f"{report.repository}@{m.digest}" for m in report.kept],
        errors=[f"{f.digest}: {f.error}" for f in report.failures],
    )


# ---------------------------------------------------------------------------------------------
# What sunset reads before it decides


@dataclass
class Options:
    stack: str
    project_dir: Path
    yes: bool = False
    dry_run: bool = False
    report_path: Path | None = None
    alertmanager_url: str | None = None


@dataclass
class Inputs:
    """Everything sunset reads before it decides (and before it changes anything)."""

    service: str
    repository: str
    username: str | None
    retain: int
    stage: str
    urn: str | None
    """The Exposure's URN (stack output, else state); None when the stack has none."""
    resources: list[StateResource]
    outputs: dict[str, Any]
    previous: dict[str, Any] | None
    sharing: list[str] = field(default_factory=list)
    """Other stacks whose stack file still deploys from ``repository`` (not sunset): images stay."""
    others: dict[str, list[str]] = field(default_factory=dict)
    """Digests the other stacks' retention keeps (:func:`components.commands.retention.retained_by_others`)."""


def exposure_urn_of(outputs: Mapping[str, Any], resources: Sequence[StateResource]) -> str | None:
    """The stack's ``exposure_urn`` output, else its one Exposure in the state; SunsetError when unclear."""
    exposures = [r.urn for r in resources if r.type == EXPOSURE_TYPE]
    exported = outputs.get("exposure_urn")
    if isinstance(exported, str) and exported:
        if exposures and exported not in exposures:
            raise SunsetError(
                f"the stack exports exposure_urn {exported} but its state holds Exposure(s) {', '.join(exposures)}: "
                "refusing to target anything"
            )
        return exported if exported in exposures else None
    if len(exposures) > 1:
        raise SunsetError(f"the state holds {len(exposures)} Exposures and no exposure_urn output says which")
    return exposures[0] if exposures else None


def _descendants(resources: Sequence[StateResource], root: str | None) -> list[StateResource]:
    """``root`` and everything parented (transitively) under it."""
    if root is None:
        return []
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
    """What this stack ran, newest first: its output, its Deployments, an earlier report."""
    refs: list[str] = []
    image_ref = inputs.outputs.get("image_ref")
    if isinstance(image_ref, str) and DIGEST_REF.match(image_ref):
        refs.append(image_ref)
    mine = normalize_repository(inputs.repository)
    for resource in inputs.resources:
        refs += [r for r in resource.image_refs if _same_repository(r, mine)]
    if inputs.previous:
        refs += [r for r in inputs.previous.get("production_image_refs") or [] if isinstance(r, str)]
    return list(dict.fromkeys(refs))  # first seen (the newest) first, no duplicates


def _same_repository(ref: str, normalized: str) -> bool:
    name = ref.rsplit("@", 1)[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:  # a tag before the digest
        name = name[: name.rindex(":")]
    try:
        return normalize_repository(name) == normalized
    except ValueError:
        return False


@dataclass
class Plan:
    """What this run will do, decided before anything changes."""

    exposure: list[StateResource]
    workload: list[StateResource]
    protected: list[StateResource]
    retained: list[str]
    refs: list[str]
    keep: list[str]
    registry_due: bool
    silence_due: bool


Silencer = Callable[[str, dict[str, Any]], str]


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
        branch_stage: BranchStage = default_branch_stage,
        silencer: Silencer = silence.silence,
    ) -> None:
        self.options = options
        self._factory: StackFactory = stack_factory or AutomationStack
        self._decommission = decommission
        self._which = which
        self._stdin = stdin if stdin is not None else sys.stdin
        self._out = out if out is not None else sys.stdout
        self._clock = clock
        self._branch_stage = branch_stage
        self._silencer = silencer
        self.report: Report | None = None

    def say(self, text: str) -> None:
        print(text, file=self._out)

    @property
    def report_path(self) -> Path:
        name = self.options.stack.rsplit("/", 1)[-1]
        return self.options.report_path or self.options.project_dir / f"sunset-{name}.json"

    # -- entry: settings and preconditions -------------------------------------------------------

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
        problem = self._precondition_problem(repository)
        if problem:
            self.say(f"error: {problem}")
            return EXIT_USAGE
        try:
            ops = self._factory(opts.stack, opts.project_dir)
            resources, outputs = ops.resources(), ops.outputs()
            inputs = Inputs(
                service=service,
                repository=normalize_repository(repository),
                username=config.values.get(key("registryUsername")) or None,  # Pulumi.yaml's "" is unset
                retain=int(retain_raw),
                stage=read_stage(path) or "",
                urn=exposure_urn_of(outputs, resources),
                resources=resources,
                outputs=outputs,
                previous=self._previous_report(),
                sharing=sharing_stacks(opts.project_dir, opts.stack, repository),
                others=retention.retained_by_others(opts.project_dir, opts.stack, repository),
            )
        except FileNotFoundError as error:
            self.say(f"error: the Pulumi CLI could not be run ({error}). Nothing was changed.")
            return EXIT_NO_CLI
        except Exception as error:
            self.say(f"error: could not read stack {opts.stack}: {error}. Nothing was changed.")
            return EXIT_FAILED
        return self._run(ops, inputs, path)

    def _precondition_problem(self, repository: str) -> str | None:
        """Everything that would make a later step fail, checked while nothing has changed yet."""
        opts = self.options
        try:
            normalize_repository(repository)
        except ValueError as error:
            return f"{key('imageRepository')}: {error}"
        problem = report_path_problem(self.report_path) or stage_problem(
            opts.project_dir, opts.stack, self._branch_stage, dry_run=opts.dry_run
        )
        if problem:
            return problem
        waiting = promoters(opts.project_dir, opts.stack)
        if waiting:
            names = ", ".join(waiting)
            return (
                f"live stack(s) {names} promote from {opts.stack} ({key('promoteFromStack')}) without "
                f"{key('pinnedDigest')}: their StackReference would lose image_ref and their next deploy would "
                f"break. Pin the digest they run ({key('pinnedDigest')}) or sunset {names} first. Nothing was changed."
            )
        return None

    def _previous_report(self) -> dict[str, Any] | None:
        if not self.report_path.is_file():
            return None
        try:
            loaded: Any = json.loads(self.report_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return loaded if isinstance(loaded, dict) and loaded.get("stack") == self.options.stack else None

    # -- plan -------------------------------------------------------------------------------------

    def _plan(self, inputs: Inputs) -> Plan:
        exposure = _descendants(inputs.resources, inputs.urn)
        exposure_urns = {r.urn for r in exposure}
        workload = [r for r in _workload_like(inputs.resources) if r.urn not in exposure_urns]
        refs = _production_refs(inputs)
        history = retention.newest_first(self.options.project_dir, self.options.stack, refs)
        own = list(dict.fromkeys(normalize_digest(r) for r in history if _same_repository(r, inputs.repository)))
        keep = list(dict.fromkeys(own[: inputs.retain] + [d for ds in inputs.others.values() for d in ds]))
        sunset_already = not exposure and not workload and inputs.stage == Stage.SUNSET.value
        # The registry step is due with the rest of a sunset, or when an earlier run stopped before it;
        # never while another live stack deploys from the same repository.
        previous = _previous_step_status(inputs.previous, REGISTRY_STEP)
        registry_due = (not sunset_already or previous not in (None, "done")) and not inputs.sharing
        return Plan(
            exposure=exposure, workload=workload, protected=[r for r in workload if r.protect],
            retained=[r.urn for r in workload if r.retain_on_delete], refs=history, keep=keep,
            registry_due=registry_due,
            silence_due=bool(self.options.alertmanager_url) and bool(exposure or workload),
        )  # fmt: skip

    def _steps(self, inputs: Inputs, plan: Plan, path: Path) -> list[Step]:
        stack = self.options.stack
        stage_ok = inputs.stage == Stage.SUNSET.value
        unprotect_cmds = [f"pulumi state unprotect --stack {stack} --yes '{r.urn}'" for r in plan.protected]
        removed = len(plan.workload) - len(plan.retained)
        if inputs.sharing:
            registry = (f"every image kept: {', '.join(inputs.sharing)} still deploy(s) from {inputs.repository}; "
                        "the last stack of it to sunset decommissions the images")  # fmt: skip
        elif not plan.registry_due:
            registry = "done by an earlier run"
        else:
            registry = (f"{inputs.repository}: keep {len(plan.keep)} digest(s) (the last {inputs.retain} this stack "
                        f"ran, and what the other stacks' retention keeps), delete the rest")  # fmt: skip
        return [
            Step(STAGE_STEP, "done" if stage_ok else "planned",
                 f"{path.name} says sunset" if stage_ok else
                 f"{path.name} says {inputs.stage}: commit stage sunset to the default branch first (--set-stage)"),
            Step(SILENCE_STEP, "planned" if plan.silence_due else "skipped",
                 f"silence service={inputs.service} in Alertmanager {self.options.alertmanager_url}"
                 if plan.silence_due else "no Alertmanager URL given" if not self.options.alertmanager_url
                 else "nothing left that could alert"),
            Step("remove access points", "planned" if plan.exposure else "skipped",
                 f"destroy the Exposure and its {len(plan.exposure) - 1} children" if plan.exposure
                 else "no exposure left",
                 f"pulumi destroy --stack {stack} --target '{inputs.urn}' --target-dependents --yes"
                 if plan.exposure else "", [r.urn for r in plan.exposure]),
            Step("unprotect", "planned" if plan.protected else "skipped",
                 f"{len(plan.protected)} protected resource(s) the sunset up deletes" if plan.protected
                 else "nothing protected", "; ".join(unprotect_cmds), [r.urn for r in plan.protected]),
            Step("decommission workload and monitoring", "planned" if plan.workload else "skipped",
                 f"pulumi up with stage sunset removes {removed} resource(s)"
                 + (f" and leaves {len(plan.retained)} retained one(s) in place" if plan.retained else ""),
                 f"pulumi up --stack {stack} --yes" if plan.workload else "", [r.urn for r in plan.workload]),
            Step(REGISTRY_STEP, "planned" if plan.registry_due else "skipped", registry,
                 items=[f"keep {d}" for d in plan.keep] if plan.registry_due else []),
        ]  # fmt: skip

    # -- preview, confirm, execute ------------------------------------------------------------------

    def _run(self, ops: StackOps, inputs: Inputs, path: Path) -> int:
        opts = self.options
        report = self.report = Report(
            stack=opts.stack, project=PROJECT, started=self._clock(), dry_run=opts.dry_run,
            exposure_urn=inputs.urn or "", stage_before=inputs.stage, stage_after=inputs.stage,
        )  # fmt: skip
        plan = self._plan(inputs)
        report.production_image_refs = plan.refs
        report.retention = {opts.stack: plan.keep[: inputs.retain], **inputs.others}
        if not plan.exposure and not plan.workload and inputs.stage == Stage.SUNSET.value and not plan.registry_due:
            report.result = "nothing-to-do"
            report.finished = self._clock()
            self.say(f"stack {opts.stack} is already sunset: its stack file says stage sunset and no exposure, "
                     "workload or monitoring is left. Nothing to do; nothing was changed.")  # fmt: skip
            return EXIT_OK
        report.steps = self._steps(inputs, plan, path)
        if plan.exposure:
            problem = self._preview_exposure(ops, report, inputs, plan)
            if problem is not None:
                return problem
        self.say(report.render())
        if opts.dry_run:
            if plan.registry_due and plan.refs:
                self._registry_preview(ops, report, inputs, plan)
            report.result = "dry-run"
            report.finished = self._clock()
            self.say("dry run: nothing was changed.")
            if opts.report_path is not None:
                self._save(report)
            return EXIT_OK
        if not opts.yes and not self._confirm(opts.stack):
            report.result = "refused"
            return EXIT_NOT_CONFIRMED
        return self._execute(ops, report, inputs, plan)

    def _preview_exposure(self, ops: StackOps, report: Report, inputs: Inputs, plan: Plan) -> int | None:
        assert inputs.urn is not None
        try:
            summary = ops.preview_destroy([inputs.urn])
            report.step("remove access points").detail += f" (engine preview: {_summary(summary)})"
        except Exception as error:
            return self._fail(report, "remove access points", f"preview failed: {error}. Nothing was changed.")
        # --target-dependents also takes whatever depends on the Exposure: only the access points may go.
        if summary.get("delete", 0) > len(plan.exposure):
            return self._fail(
                report, "remove access points",
                f"the engine would delete {summary['delete']} resources but the Exposure holds {len(plan.exposure)}: "
                "something outside it depends on it; refusing to remove more than the access points. "
                "Nothing was changed.",
            )  # fmt: skip
        return None

    def _execute(self, ops: StackOps, report: Report, inputs: Inputs, plan: Plan) -> int:
        if plan.silence_due:
            step = report.step(SILENCE_STEP)
            namespace = inputs.outputs.get("namespace")
            if not isinstance(namespace, str) or not namespace:
                return self._fail(report, step.name, "the stack exports no namespace to match its alerts on. "
                                  "Nothing was changed.")  # fmt: skip
            body = silence.silence_body(service=inputs.service, namespace=namespace, stack=self.options.stack,
                                        starts=silence.now())  # fmt: skip
            try:
                report.silence_id = self._silencer(str(self.options.alertmanager_url), body)
            except Exception as error:
                return self._fail(report, step.name, f"{error}. Nothing was changed.")
            step.status, step.detail = "done", f"silence {report.silence_id} until {body['endsAt']}"
        if plan.exposure:
            step = report.step("remove access points")
            try:
                changes = ops.destroy([str(inputs.urn)])
            except Exception as error:
                return self._fail(report, step.name, f"destroy failed: {error}")
            step.status, step.detail = "done", f"removed ({_summary(changes)})"
            report.removed += [r.urn for r in plan.exposure]
        for resource in plan.protected:
            try:
                ops.unprotect(resource.urn)
            except Exception as error:
                return self._fail(report, "unprotect", f"{resource.urn}: {error}")
        if plan.protected:
            report.step("unprotect").status = "done"
        step = report.step("decommission workload and monitoring")
        if step.status == "planned":
            try:
                changes = ops.up()
            except Exception as error:
                return self._fail(report, step.name, f"up failed: {error}")
            step.status, step.detail = "done", f"removed ({_summary(changes)})"
            report.removed += [r.urn for r in plan.workload if r.urn not in plan.retained]
            report.retained = plan.retained
        elif inputs.previous:  # an earlier run did the up: what it left in place is still there
            report.retained = [u for u in inputs.previous.get("retained") or [] if isinstance(u, str)]
        failed = self._registry(ops, report, inputs, plan)
        return failed if failed is not None else self._confirm_and_finish(ops, report, inputs)

    def _registry(self, ops: StackOps, report: Report, inputs: Inputs, plan: Plan) -> int | None:
        step = report.step(REGISTRY_STEP)
        if step.status != "planned":
            if inputs.previous:
                report.registry_deleted = list(inputs.previous.get("registry_deleted") or [])
                report.registry_kept = list(inputs.previous.get("registry_kept") or [])
            return None
        if not plan.keep:
            return self._fail(
                report, step.name,
                "no digest any stack ran is known (no image_ref output, no Deployment in the state, no ledger, no "
                "earlier report): refusing to delete images blind",
            )  # fmt: skip
        try:
            result = self._run_decommission(ops, inputs, plan, dry_run=False)
        except Exception as error:
            return self._fail(report, step.name, str(error))
        report.registry_deleted, report.registry_kept = result.deleted, result.kept
        step.items = [f"deleted {d}" for d in result.deleted] + [f"kept {k}" for k in result.kept]
        if result.errors:
            step.items += [f"error: {e}" for e in result.errors]
            return self._fail(report, step.name, f"{len(result.errors)} error(s); run sunset again to retry")
        step.status = "done"
        step.detail += f": deleted {len(result.deleted)}, kept {len(result.kept)}"
        own = len([r for r in plan.refs if _same_repository(r, inputs.repository)])
        if own < inputs.retain:
            step.detail += f" (only {own} digest(s) this stack ran are known)"
        return None

    def _run_decommission(self, ops: StackOps, inputs: Inputs, plan: Plan, *, dry_run: bool) -> RegistryResult:
        """The registry decommission with what this sunset keeps, logged in as the stack's registry user."""
        return self._decommission(
            repository=inputs.repository,
            keep=plan.keep,
            dry_run=dry_run,
            username=inputs.username,
            password=ops.secret_config(key("registryPassword")),
        )

    def _registry_preview(self, ops: StackOps, report: Report, inputs: Inputs, plan: Plan) -> None:
        """The decommission in its own dry-run mode: lists, deletes nothing. A failure is only noted."""
        step = report.step(REGISTRY_STEP)
        try:
            result = self._run_decommission(ops, inputs, plan, dry_run=True)
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
    parser.add_argument(
        "--set-stage", action="store_true", help="only set stage sunset in the stack file (commit and merge it first)"
    )
    parser.add_argument(
        "--alertmanager-url",
        default=os.environ.get(ALERTMANAGER_ENV) or None,
        help=f"silence the service's alerts there during the sunset (default env {ALERTMANAGER_ENV})",
    )
    args = parser.parse_args(argv)
    project_dir = args.project_dir.resolve()
    if args.set_stage:
        path = stack_file(project_dir, args.stack)
        try:
            old = write_stage(path, Stage.SUNSET.value)
        except (OSError, StackFileEditError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        print(f"{path.name}: stage {old} -> sunset. Commit it and merge it to the default branch, then run "
              f"`python -m components sunset --stack {args.stack}`:\n  git add {path.name} && "
              f"git commit -m '{args.stack}: stage sunset' && git push")  # fmt: skip
        return EXIT_OK
    options = Options(
        stack=args.stack, project_dir=project_dir, yes=args.yes, dry_run=args.dry_run,
        report_path=args.report, alertmanager_url=args.alertmanager_url,
    )  # fmt: skip
    try:
        return Sunset(options).run()
    except SettingsError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE

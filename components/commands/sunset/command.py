"""Sunset a stack: ``python -m components sunset --stack production [--yes] [--dry-run] [--report PATH]``.

docs/design.md steps 12 to 14, with the Pulumi Automation API. Before the first destructive step it
checks everything it will need (:mod:`components.commands.sunset.checks`): the report path is writable; the
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

This module is the order of it all (:class:`Sunset`) and the command line; each step lives in its own
module: what is read (:mod:`components.commands.sunset.inputs`), the preconditions
(:mod:`components.commands.sunset.checks`), what will be done (:mod:`components.commands.sunset.plan`),
steps 1 to 4 and the confirmation (:mod:`components.commands.sunset.steps`), step 5
(:mod:`components.commands.sunset.registry`), the report (:mod:`components.commands.sunset.report`),
the Automation API boundary (:mod:`components.commands.sunset.stack`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final

from components.commands import silence
from components.commands.stage_file import (
    STAGE_KEY,
    StackFileEditError,
    default_branch_stage,
    read_stage,
    stack_file,
    stack_name,
    write_stage,
)
from components.commands.sunset.checks import BranchStage, precondition_problem
from components.commands.sunset.inputs import (
    Inputs,
    Options,
    StackFileUnusableError,
    SunsetError,
    exposure_urn_of,
    listed_services,
    read_inputs,
    read_settings,
)
from components.commands.sunset.plan import Context, make_plan, planned_steps, workload_like
from components.commands.sunset.registry import (
    Decommission,
    RegistryResult,
    registry_decommission,
)
from components.commands.sunset.report import (
    EXIT_FAILED,
    EXIT_NO_CLI,
    EXIT_NOT_CONFIRMED,
    EXIT_OK,
    EXIT_USAGE,
    Journal,
    Report,
    Step,
    _now,
)
from components.commands.sunset.stack import (
    SECRET_MASK,
    AutomationStack,
    StackFactory,
    StackOps,
    StateResource,
    _state_resource,
)
from components.commands.sunset.steps import Silencer, change_summary, confirmed, dry_run, execute, preview_exposure
from components.config.settings import SettingsError
from components.lifecycle import Stage

ALERTMANAGER_ENV: Final = "SUNSET_ALERTMANAGER_URL"

__all__ = [
    "EXIT_FAILED", "EXIT_NOT_CONFIRMED", "EXIT_NO_CLI", "EXIT_OK", "EXIT_USAGE", "SECRET_MASK", "STAGE_KEY",
    "AutomationStack", "Options", "RegistryResult", "Report", "StackFileEditError", "StackOps", "StateResource",
    "Step", "Sunset", "SunsetError", "_state_resource", "exposure_urn_of", "read_stage", "stack_file", "write_stage",
]  # fmt: skip


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
        which = f"-{self.options.service}" if self.options.service else ""
        return (
            self.options.report_path
            or self.options.project_dir / f"sunset-{stack_name(self.options.stack)}{which}.json"
        )

    def run(self) -> int:
        """Settings, the CLI, the preconditions, then the stack: each stops the run before anything changes."""
        opts = self.options
        try:
            several = listed_services(opts.project_dir, opts.stack) if opts.service is None else []
            if several:
                return whole_stack(self, several)
            settings = read_settings(opts.project_dir, opts.stack, opts.service)
        except StackFileUnusableError as error:
            self.say(f"error: {error}")
            return EXIT_USAGE
        # Stop before anything can change when the CLI the Automation API drives is missing.
        if self._which("pulumi") is None:
            self.say(
                "error: the Pulumi CLI is not installed (no `pulumi` on PATH): the Automation API drives it.\n"
                "  Nothing was changed. Install it (https://www.pulumi.com/docs/install/) and run sunset again."
            )
            return EXIT_NO_CLI
        problem = precondition_problem(
            opts.project_dir, opts.stack, settings.repository, self.report_path, self._branch_stage,
            dry_run=opts.dry_run, service=opts.service,
        )  # fmt: skip
        if problem:
            self.say(f"error: {problem}")
            return EXIT_USAGE
        try:
            ops = self._factory(opts.stack, opts.project_dir)
            inputs = read_inputs(ops, settings, opts, self.report_path)
        except FileNotFoundError as error:
            self.say(f"error: the Pulumi CLI could not be run ({error}). Nothing was changed.")
            return EXIT_NO_CLI
        except Exception as error:
            self.say(f"error: could not read stack {opts.stack}: {error}. Nothing was changed.")
            return EXIT_FAILED
        return self._run(ops, inputs, settings.path)

    def for_service(self, service: str) -> Sunset:
        """The same run, with the same boundaries, for one service of a stack of several."""
        return Sunset(
            dataclasses.replace(self.options, service=service), stack_factory=self._factory,
            decommission=self._decommission, which=self._which, stdin=self._stdin, out=self._out,
            clock=self._clock, branch_stage=self._branch_stage, silencer=self._silencer,
        )  # fmt: skip

    def stack_ops(self) -> StackOps:
        return self._factory(self.options.stack, self.options.project_dir)

    def _run(self, ops: StackOps, inputs: Inputs, path: Path) -> int:
        """Plan, preview, then a dry run's report, or the confirmation and the steps."""
        opts = self.options
        report = self.report = Report(
            stack=opts.stack, project=inputs.project, started=self._clock(), dry_run=opts.dry_run,
            exposure_urn=inputs.urn or "", stage_before=inputs.stage, stage_after=inputs.stage,
        )  # fmt: skip
        journal = Journal(report, self.report_path, self.say, self._clock)
        ctx = Context(opts, ops, inputs, make_plan(inputs, opts), journal)
        report.production_image_refs = ctx.plan.refs
        report.retention = {opts.stack: ctx.plan.kept_own, **inputs.others}
        if ctx.plan.nothing_to_do(inputs):
            ctx.journal.finish("nothing-to-do")
            self.say(f"stack {opts.stack} is already sunset: its stack file says stage sunset and no exposure, "
                     "workload or monitoring is left. Nothing to do; nothing was changed.")  # fmt: skip
            return EXIT_OK
        report.steps = planned_steps(inputs, ctx.plan, opts, path)
        failed = preview_exposure(ctx)
        if failed is not None:
            return failed
        self.say(report.render())
        if opts.dry_run:
            return dry_run(ctx, self._decommission)
        if not opts.yes and not confirmed(opts.stack, self._stdin, self.say):
            report.result = "refused"
            return EXIT_NOT_CONFIRMED
        return execute(ctx, silencer=self._silencer, decommission=self._decommission)


# ---------------------------------------------------------------------------------------------
# Command


def whole_stack(sunset: Sunset, services: list[str]) -> int:
    """A whole stack of several services: each service's sunset in turn (its access points, its parts, its
    images), then one ``up`` for what is left (the cluster's monitoring stack). Each service's stage is the
    project's ``sunset`` unless it sets its own; the first failure stops the run."""
    opts, say = sunset.options, sunset.say
    if not opts.dry_run and read_stage(stack_file(opts.project_dir, opts.stack)) != Stage.SUNSET.value:
        say(f"error: {stack_file(opts.project_dir, opts.stack).name} does not say stage sunset: set it "
            f"with `python -m components sunset --stack {opts.stack} --set-stage`, commit and merge it, "
            "then run sunset again. Nothing was changed.")  # fmt: skip
        return EXIT_USAGE
    for service in services:
        say(f"== service {service}")
        code = sunset.for_service(service).run()
        if code != EXIT_OK:
            return code
    if opts.dry_run:
        return EXIT_OK
    say(f"== stack {opts.stack}: what no service owns")
    try:
        ops = sunset.stack_ops()
        if workload_like(ops.resources()):
            say(f"pulumi up --stack {opts.stack} --yes: {change_summary(ops.up())}")
        left = workload_like(ops.resources())
    except Exception as error:
        say(f"error: the stack's last up failed: {error}")
        return EXIT_FAILED
    if left:
        say(f"error: {len(left)} resource(s) are still in stack {opts.stack}: " + ", ".join(r.urn for r in left))
        return EXIT_FAILED
    say(f"stack {opts.stack} is sunset: every service ({', '.join(services)}) and the rest are removed.")
    return EXIT_OK


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
        "--service", help="one service of a stack of several (<project>:services): only its parts and images go"
    )
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
            old = write_stage(path, Stage.SUNSET.value, args.service)
        except (OSError, StackFileEditError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        which = f" --service {args.service}" if args.service else ""
        print(f"{path.name}: stage {old} -> sunset. Commit it and merge it to the default branch, then run "
              f"`python -m components sunset --stack {args.stack}{which}`:\n  git add {path.name} && "
              f"git commit -m '{args.stack}: stage sunset' && git push")  # fmt: skip
        return EXIT_OK
    options = Options(
        stack=args.stack, project_dir=project_dir, yes=args.yes, dry_run=args.dry_run,
        report_path=args.report, alertmanager_url=args.alertmanager_url, service=args.service,
    )  # fmt: skip
    try:
        return Sunset(options).run()
    except SettingsError as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE

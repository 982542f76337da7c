"""The stack steps of a sunset, in the order :class:`components.commands.sunset.Sunset` runs them.

Each takes the run's :class:`~components.commands.sunset.plan.Context`, does nothing when the plan
does not call for it, and returns None to go on or the exit code of a failure it reported (the
registry step is :mod:`components.commands.sunset.registry`). :func:`confirm_and_finish` ends a run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import IO, Any

from components.commands import silence
from components.commands.stage_file import stack_file
from components.commands.sunset.inputs import output_name
from components.commands.sunset.plan import (
    CONFIRM_STEP,
    EXPOSURE_STEP,
    SILENCE_STEP,
    UNPROTECT_STEP,
    WORKLOAD_STEP,
    Context,
    in_scope,
    scaffold_of,
    workload_like,
)
from components.commands.sunset.registry import Decommission, decommission_registry, preview_registry
from components.commands.sunset.report import EXIT_OK
from components.service import TYPE as SERVICE_STACK_TYPE

Silencer = Callable[[str, dict[str, Any]], str]


def preview_exposure(ctx: Context) -> int | None:
    """Before anything changes: the engine's preview of the exposure destroy deletes only the Exposure."""
    if not ctx.plan.exposure:
        return None
    assert ctx.inputs.urn is not None
    journal, size = ctx.journal, len(ctx.plan.exposure)
    try:
        summary = ctx.ops.preview_destroy([ctx.inputs.urn])
        journal.report.step(EXPOSURE_STEP).detail += f" (engine preview: {change_summary(summary)})"
    except Exception as error:
        return journal.fail(EXPOSURE_STEP, f"preview failed: {error}. Nothing was changed.")
    # --target-dependents also takes whatever depends on the Exposure: only the access points may go.
    if summary.get("delete", 0) > size:
        return journal.fail(
            EXPOSURE_STEP,
            f"the engine would delete {summary['delete']} resources but the Exposure holds {size}: "
            "something outside it depends on it; refusing to remove more than the access points. "
            "Nothing was changed.",
        )
    return None


def silence_alerts(ctx: Context, silencer: Silencer) -> int | None:
    """Step 1: an Alertmanager silence for the service's alerts over the sunset window."""
    if not ctx.plan.silence_due:
        return None
    report = ctx.journal.report
    step = report.step(SILENCE_STEP)
    namespace = ctx.inputs.outputs.get(output_name("namespace", ctx.inputs.scope))
    if not isinstance(namespace, str) or not namespace:
        return ctx.journal.fail(
            step.name, "the stack exports no namespace to match its alerts on. Nothing was changed."
        )
    body = silence.silence_body(
        service=ctx.inputs.service, namespace=namespace, stack=ctx.options.stack, starts=silence.now()
    )
    try:
        report.silence_id = silencer(str(ctx.options.alertmanager_url), body)
    except Exception as error:
        return ctx.journal.fail(step.name, f"{error}. Nothing was changed.")
    step.status, step.detail = "done", f"silence {report.silence_id} until {body['endsAt']}"
    return None


def remove_access_points(ctx: Context) -> int | None:
    """Step 2: ``destroy --target <Exposure URN> --target-dependents``."""
    if not ctx.plan.exposure:
        return None
    report = ctx.journal.report
    step = report.step(EXPOSURE_STEP)
    try:
        changes = ctx.ops.destroy([str(ctx.inputs.urn)])
    except Exception as error:
        return ctx.journal.fail(step.name, f"destroy failed: {error}")
    step.status, step.detail = "done", f"removed ({change_summary(changes)})"
    report.removed += [r.urn for r in ctx.plan.exposure]
    return None


def unprotect(ctx: Context) -> int | None:
    """Step 3: ``pulumi state unprotect`` what the sunset ``up`` deletes (the Automation API has no unprotect)."""
    for resource in ctx.plan.protected:
        try:
            ctx.ops.unprotect(resource.urn)
        except Exception as error:
            return ctx.journal.fail(UNPROTECT_STEP, f"{resource.urn}: {error}")
    if ctx.plan.protected:
        ctx.journal.report.step(UNPROTECT_STEP).status = "done"
    return None


def decommission_workload(ctx: Context) -> int | None:
    """Step 4: ``up`` with stage sunset (workload, monitoring and environment go)."""
    report, plan = ctx.journal.report, ctx.plan
    step = report.step(WORKLOAD_STEP)
    if step.status == "planned":
        try:
            # one service of several: only its resources, its ServiceStack and provider last (the other
            # services' are not touched, even by a diff)
            changes = ctx.ops.up([r.urn for r in plan.decommissioned]) if ctx.inputs.scope else ctx.ops.up()
        except Exception as error:
            return ctx.journal.fail(step.name, f"up failed: {error}")
        step.status, step.detail = "done", f"removed ({change_summary(changes)})"
        report.removed += [r.urn for r in plan.decommissioned if r.urn not in plan.retained]
        report.retained = plan.retained
    elif ctx.inputs.previous:  # an earlier run did the up: what it left in place is still there
        report.retained = [u for u in ctx.inputs.previous.get("retained") or [] if isinstance(u, str)]
    return None


def confirm_and_finish(ctx: Context) -> int:
    """Step 6: read the stack again; nothing but what is kept may be left. Save and print the report."""
    journal, report, inputs = ctx.journal, ctx.journal.report, ctx.inputs
    try:
        after = ctx.ops.resources()
        report.outputs = ctx.ops.outputs()
    except Exception as error:
        return journal.fail(CONFIRM_STEP, f"could not read the stack after the sunset: {error}")
    left = workload_like(in_scope(inputs, after)) + scaffold_of(inputs, after)
    report.remaining = [r.urn for r in left]
    report.kept = [
        f"stack {report.stack}, its state and update history",
        f"{stack_file(ctx.options.project_dir, report.stack).name} (stage: sunset)",
        *[f"{urn} (retain_on_delete: out of the stack, still running)" for urn in report.retained],
        *[f"image {ref}" for ref in report.registry_kept],
        *(
            [f"every image of {inputs.repository}: {', '.join(inputs.sharing)} still deploy(s) from it"]
            if inputs.sharing
            else []
        ),
    ]
    if report.remaining:
        registered = [r.urn for r in left if r.type == SERVICE_STACK_TYPE]
        hint = (
            f": the program still registers {', '.join(registered)} at stage sunset; register nothing of a service "
            "whose stage is sunset (as examples/platform/__main__.py does), then run sunset again"
            if len(registered) == len(left)  # report.remaining is not empty here
            else ""
        )
        return journal.fail(CONFIRM_STEP, f"{len(report.remaining)} resource(s) are still in the stack{hint}")
    journal.finish("done")
    journal.save()
    journal.say(report.render())
    return EXIT_OK


def execute(ctx: Context, *, silencer: Silencer, decommission: Decommission) -> int:
    """Steps 1 to 5, in order; each skips itself when not due. A failure ends the run; then the confirmation."""
    steps = (
        partial(silence_alerts, silencer=silencer),
        remove_access_points,
        unprotect,
        decommission_workload,
        partial(decommission_registry, decommission=decommission),
    )
    for step in steps:
        failed = step(ctx)
        if failed is not None:
            return failed
    return confirm_and_finish(ctx)


def dry_run(ctx: Context, decommission: Decommission) -> int:
    """Nothing changes: the registry's preview, the report printed (and saved where ``--report`` says)."""
    if ctx.plan.registry_due and ctx.plan.refs:
        preview_registry(ctx, decommission)
    ctx.journal.finish("dry-run")
    ctx.journal.say("dry run: nothing was changed.")
    if ctx.options.report_path is not None:
        ctx.journal.save()
    return EXIT_OK


def confirmed(stack: str, stdin: IO[str], say: Callable[[str], None]) -> bool:
    """The operator typed the stack's name; without a terminal there is no one to ask."""
    if not stdin.isatty():
        say("refusing: stdin is not a terminal and --yes was not given. Nothing was changed.")
        return False
    say(f"Type the stack name ({stack}) to sunset it: ")
    answer = stdin.readline().strip()
    if answer != stack:
        say("not confirmed. Nothing was changed.")
        return False
    return True


def change_summary(changes: Mapping[str, int]) -> str:
    """An engine's resource changes in one phrase: ``3 delete, 1 same``, or ``no changes``."""
    return ", ".join(f"{count} {op}" for op, count in sorted(changes.items())) or "no changes"

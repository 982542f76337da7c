"""Step 5 of a sunset, the registry decommission: delete every image of the repository but the digests
the retention keeps (:attr:`~components.commands.sunset.plan.Plan.keep`), through
:func:`components.registry.decommission`; and its dry-run preview.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from components.commands.sunset.plan import REGISTRY_STEP, Context
from components.registry.model import same_repository


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


def decommission_registry(ctx: Context, decommission: Decommission) -> int | None:
    """The step: skipped when not planned (the report then carries what an earlier run did); None when done."""
    report, inputs, plan = ctx.journal.report, ctx.inputs, ctx.plan
    step = report.step(REGISTRY_STEP)
    if step.status != "planned":
        if inputs.previous:
            report.registry_deleted = list(inputs.previous.get("registry_deleted") or [])
            report.registry_kept = list(inputs.previous.get("registry_kept") or [])
        return None
    if not plan.keep:
        return ctx.journal.fail(
            step.name,
            "no digest any stack ran is known (no image_ref output, no Deployment in the state, no ledger, no "
            "earlier report): refusing to delete images blind",
        )
    try:
        result = _run(ctx, decommission, dry_run=False)
    except Exception as error:
        return ctx.journal.fail(step.name, str(error))
    report.registry_deleted, report.registry_kept = result.deleted, result.kept
    step.items = [f"deleted {d}" for d in result.deleted] + [f"kept {k}" for k in result.kept]
    if result.errors:
        step.items += [f"error: {e}" for e in result.errors]
        return ctx.journal.fail(step.name, f"{len(result.errors)} error(s); run sunset again to retry")
    step.status = "done"
    step.detail += f": deleted {len(result.deleted)}, kept {len(result.kept)}"
    own = len([r for r in plan.refs if same_repository(r, inputs.repository)])
    if own < inputs.retain:
        step.detail += f" (only {own} digest(s) this stack ran are known)"
    return None


def preview_registry(ctx: Context, decommission: Decommission) -> None:
    """The decommission in its own dry-run mode: lists, deletes nothing. A failure is only noted."""
    step = ctx.journal.report.step(REGISTRY_STEP)
    try:
        result = _run(ctx, decommission, dry_run=True)
    except Exception as error:
        step.items = [f"could not list the registry: {error}"]
        return
    step.items = [f"would delete {d}" for d in result.deleted] + [f"would keep {k}" for k in result.kept]
    ctx.journal.say(f"registry ({ctx.inputs.repository}), dry run:")
    ctx.journal.say("\n".join(f"  - {item}" for item in step.items) or "  nothing to delete")


def _run(ctx: Context, decommission: Decommission, *, dry_run: bool) -> RegistryResult:
    """The registry decommission with what this sunset keeps, logged in as the stack's registry user."""
    return decommission(
        repository=ctx.inputs.repository,
        keep=ctx.plan.keep,
        dry_run=dry_run,
        username=ctx.inputs.username,
        password=(ctx.inputs.scope and ctx.ops.secret_config(f"{ctx.inputs.scope}:registryPassword"))
        or ctx.ops.secret_config(f"{ctx.inputs.project}:registryPassword"),
    )

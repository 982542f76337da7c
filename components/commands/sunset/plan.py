"""What a sunset run will do, decided from its :class:`~components.commands.sunset.inputs.Inputs`
before anything changes: which resources each step removes, which digests the registry keeps, which
steps are due, and the steps as the report lists them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from components.commands import retention
from components.commands.sunset.inputs import Inputs, Options, output_name, service_stack_urn
from components.commands.sunset.report import Journal, Step
from components.commands.sunset.stack import StackOps, StateResource
from components.lifecycle import Stage
from components.refs import DIGEST_REF
from components.registry.model import normalize_digest, normalize_repository, same_repository
from components.service import TYPE as SERVICE_STACK_TYPE

STAGE_STEP: Final = "stage sunset on the default branch"
SILENCE_STEP: Final = "silence alerts"
EXPOSURE_STEP: Final = "remove access points"
UNPROTECT_STEP: Final = "unprotect"
WORKLOAD_STEP: Final = "decommission workload and monitoring"
REGISTRY_STEP: Final = "registry decommission"
CONFIRM_STEP: Final = "confirm"

_STACK_TYPE: Final = "pulumi:pulumi:Stack"
_PROVIDER_PREFIX: Final = "pulumi:providers:"


@dataclass
class Plan:
    """What this run will do, decided before anything changes."""

    exposure: list[StateResource]
    workload: list[StateResource]
    scaffold: list[StateResource]
    """One service of several: its ServiceStack and the providers below it, which go with its workload
    (:func:`scaffold_of`); empty for a whole stack, whose untargeted ``up`` removes them."""
    protected: list[StateResource]
    retained: list[str]
    refs: list[str]
    keep: list[str]
    """Every digest the registry step keeps: this stack's last ``retain``, then the other stacks'."""
    kept_own: list[str]
    """This stack's share of ``keep``: its last ``retain`` digests (the report's retention entry)."""
    registry_due: bool
    silence_due: bool

    def nothing_to_do(self, inputs: Inputs) -> bool:
        """Already sunset: the stack file says so, nothing is left in the stack, the registry step is done."""
        return (
            not self.exposure
            and not self.workload
            and not self.scaffold
            and inputs.stage == Stage.SUNSET.value
            and not self.registry_due
        )

    @property
    def decommissioned(self) -> list[StateResource]:
        """What the workload step's ``up`` removes (or, retained, leaves running out of the stack)."""
        return self.workload + self.scaffold


@dataclass
class Context:
    """One run's decided state, handed to each step: what it reads, what it does it to, where it reports."""

    options: Options
    ops: StackOps
    inputs: Inputs
    plan: Plan
    journal: Journal


def in_scope(inputs: Inputs, resources: Sequence[StateResource]) -> list[StateResource]:
    """What a sunset may remove of ``resources``: everything of a stack of one; of one service of several,
    only what is below its ServiceStack (the other services and the cluster's monitoring stay)."""
    if inputs.scope is None:
        return list(resources)
    owner = service_stack_urn(resources, inputs.scope)
    below = {r.urn for r in _descendants(resources, owner)} - {owner}
    return [r for r in resources if r.urn in below]


def scaffold_of(inputs: Inputs, resources: Sequence[StateResource]) -> list[StateResource]:
    """One service of several: its ServiceStack and the providers below it, none of them a part.

    A program registers nothing of a service whose stage is sunset (``examples/platform/__main__.py``),
    so the sunset's targeted ``up`` removes these with the parts and leaves no trace of the service in
    the state. A whole stack has none: its ``up`` is not targeted and removes them anyway.
    """
    if inputs.scope is None:
        return []
    owner = service_stack_urn(resources, inputs.scope)
    providers = [r for r in in_scope(inputs, resources) if r.type.startswith(_PROVIDER_PREFIX)]
    return [r for r in resources if r.urn == owner] + providers


def make_plan(inputs: Inputs, options: Options) -> Plan:
    exposure = _descendants(inputs.resources, inputs.urn)
    exposure_urns = {r.urn for r in exposure}
    workload = [r for r in workload_like(in_scope(inputs, inputs.resources)) if r.urn not in exposure_urns]
    refs = _production_refs(inputs)
    history = retention.newest_first(options.project_dir, options.stack, refs)
    own = list(dict.fromkeys(normalize_digest(r) for r in history if same_repository(r, inputs.repository)))
    keep = list(dict.fromkeys(own[: inputs.retain] + [d for ds in inputs.others.values() for d in ds]))
    sunset_already = not exposure and not workload and inputs.stage == Stage.SUNSET.value
    # The registry step is due with the rest of a sunset, or when an earlier run stopped before it;
    # never while another live stack deploys from the same repository.
    previous = _previous_step_status(inputs.previous, REGISTRY_STEP)
    registry_due = (not sunset_already or previous not in (None, "done")) and not inputs.sharing
    return Plan(
        exposure=exposure, workload=workload,
        scaffold=[r for r in scaffold_of(inputs, inputs.resources) if r.urn not in exposure_urns],
        protected=[r for r in workload if r.protect],
        retained=[r.urn for r in workload if r.retain_on_delete], refs=history, keep=keep,
        kept_own=own[: inputs.retain], registry_due=registry_due,
        silence_due=bool(options.alertmanager_url) and bool(exposure or workload),
    )  # fmt: skip


def planned_steps(inputs: Inputs, plan: Plan, options: Options, path: Path) -> list[Step]:
    """The steps in the order they run, each planned, skipped or (the stage) already done."""
    stack = options.stack
    stage_ok = inputs.stage == Stage.SUNSET.value
    unprotect_cmds = [f"pulumi state unprotect --stack {stack} --yes '{r.urn}'" for r in plan.protected]
    removed = len(plan.decommissioned) - len(plan.retained)
    return [
        Step(STAGE_STEP, "done" if stage_ok else "planned",
             f"{path.name} says sunset" if stage_ok else
             f"{path.name} says {inputs.stage}: commit stage sunset to the default branch first (--set-stage)"),
        Step(SILENCE_STEP, "planned" if plan.silence_due else "skipped",
             f"silence service={inputs.service} in Alertmanager {options.alertmanager_url}"
             if plan.silence_due else "no Alertmanager URL given" if not options.alertmanager_url
             else "nothing left that could alert"),
        Step(EXPOSURE_STEP, "planned" if plan.exposure else "skipped",
             f"destroy the Exposure and its {len(plan.exposure) - 1} children" if plan.exposure
             else "no exposure left",
             f"pulumi destroy --stack {stack} --target '{inputs.urn}' --target-dependents --yes"
             if plan.exposure else "", [r.urn for r in plan.exposure]),
        Step(UNPROTECT_STEP, "planned" if plan.protected else "skipped",
             f"{len(plan.protected)} protected resource(s) the sunset up deletes" if plan.protected
             else "nothing protected", "; ".join(unprotect_cmds), [r.urn for r in plan.protected]),
        Step(WORKLOAD_STEP, "planned" if plan.decommissioned else "skipped",
             f"pulumi up with stage sunset removes {removed} resource(s)"
             + (f" and leaves {len(plan.retained)} retained one(s) in place" if plan.retained else ""),
             (f"pulumi up --stack {stack} --yes" + "".join(f" --target '{r.urn}'" for r in plan.decommissioned)
              if inputs.scope else f"pulumi up --stack {stack} --yes") if plan.decommissioned else "",
             [r.urn for r in plan.decommissioned]),
        Step(REGISTRY_STEP, "planned" if plan.registry_due else "skipped", _registry_detail(inputs, plan),
             items=[f"keep {d}" for d in plan.keep] if plan.registry_due else []),
    ]  # fmt: skip


def _registry_detail(inputs: Inputs, plan: Plan) -> str:
    if inputs.sharing:
        return (f"every image kept: {', '.join(inputs.sharing)} still deploy(s) from {inputs.repository}; "
                "the last stack of it to sunset decommissions the images")  # fmt: skip
    if not plan.registry_due:
        return "done by an earlier run"
    return (f"{inputs.repository}: keep {len(plan.keep)} digest(s) (the last {inputs.retain} this stack "
            f"ran, and what the other stacks' retention keeps), delete the rest")  # fmt: skip


def workload_like(resources: Sequence[StateResource]) -> list[StateResource]:
    """What a sunset ``up`` removes: everything but the stack, providers and ServiceStack components."""
    return [
        r
        for r in resources
        if r.type != _STACK_TYPE and not r.type.startswith(_PROVIDER_PREFIX) and r.type != SERVICE_STACK_TYPE
    ]


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


def _production_refs(inputs: Inputs) -> list[str]:
    """What this stack ran, newest first: its output, its Deployments, an earlier report."""
    refs: list[str] = []
    image_ref = inputs.outputs.get(output_name("image_ref", inputs.scope))
    if isinstance(image_ref, str) and DIGEST_REF.match(image_ref):
        refs.append(image_ref)
    mine = normalize_repository(inputs.repository)
    for resource in in_scope(inputs, inputs.resources):
        refs += [r for r in resource.image_refs if same_repository(r, mine)]
    if inputs.previous:
        refs += [r for r in inputs.previous.get("production_image_refs") or [] if isinstance(r, str)]
    return list(dict.fromkeys(refs))  # first seen (the newest) first, no duplicates


def _previous_step_status(previous: Mapping[str, Any] | None, name: str) -> str | None:
    for step in (previous or {}).get("steps") or []:
        if isinstance(step, dict) and step.get("name") == name:
            status = step.get("status")
            return str(status) if status is not None else None
    return None

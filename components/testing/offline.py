"""The offline run of a Pulumi program: its stack's configuration, the stand-ins, the recording mocks.

:func:`run_plan` reads the stack's configuration (:func:`components.config.stack_config.load_stack_config`,
stages 1 to 3), checks the settings (stage 4, :func:`components.config.settings.load_services`) with
stand-ins for what only exists at deploy time, hands the configuration to the engine's settings as the
Pulumi CLI would, and runs ``__main__.py`` under :class:`components.testing.RecordingMocks`. The
``plan`` command (:mod:`components.commands.plan`) prints and writes its result; the pytest plugin's
``plan_stack`` fixture returns it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import runpy
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

from components import image
from components.config import schema
from components.config.settings import SECRET_MARK, SettingProblem, Settings, SettingsError, load_services
from components.config.stack_config import StackConfig, StackFileError, load_stack_config
from components.testing.mocks import (
    OfflineEcrClient,
    RecordedInvoke,
    RecordedResource,
    RecordingMocks,
    canonical,
    redact,
    wrap_secret,
)
from components.testing.monitor import install_mocks
from components.testing.running import run_program


def _offline_stand_ins(config: StackConfig, project_dir: Path, environ: Mapping[str, str]) -> dict[str, Settings]:
    """Fill what only exists at deploy time and say so in the notes, whatever else is wrong; raise on real problems.

    Raises :class:`StackFileError` carrying ``config`` (and so its notes) when a real problem remains.
    """

    def validate() -> dict[str, Settings]:
        with contextlib.chdir(project_dir):  # as the program runs: relative paths (buildContext) are the project's
            return load_services(config.source(), namespace_source=config.source().view, environ=environ)

    try:
        services = validate()
    except SettingsError as error:

        def short(problem: SettingProblem) -> str:
            return problem.key.rpartition(":")[2]

        missing = [p for p in error.problems if p.value == "<not set>"]
        missing_secrets = [p for p in missing if short(p) in schema.SECRETS or p.key in config.secret_keys]
        missing_revision = [p for p in missing if short(p) == "sourceRevision"]
        real = [p for p in error.problems if p not in missing_secrets and p not in missing_revision]
        for problem in missing_secrets:
            config.values[problem.key] = SECRET_MARK
            config.notes.append(f"{problem.key} is not in the stack file: planned as {SECRET_MARK}")
        if missing_revision:
            revision = _git_revision(project_dir)
            for problem in missing_revision:
                config.values[problem.key] = revision
                config.notes.append(f"{problem.key} taken from the working copy: {revision}")
        if real:  # what the plan stands in for is a note, never a problem of the stack file
            raise StackFileError(real, config) from None
        try:
            services = validate()
        except SettingsError as invalid:
            raise StackFileError(list(invalid.problems), config) from None
    for settings in services.values():
        if settings.build is not None and settings.registry.is_ecr:
            config.notes.append(f"ECR login for {settings.registry.server} answered offline with a stand-in token")
        if settings.promotion and settings.promotion.from_stack and not settings.promotion.pinned_digest:
            config.notes.append(
                f"StackReference {settings.promotion.from_stack} answered offline with a stand-in "
                f"{settings.promotion.output}"
            )
    return services


def _git_revision(project_dir: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "0" * 40


def offline_stack_outputs(services: Mapping[str, Settings]) -> dict[str, dict[str, Any]]:
    """Stand-in outputs of the stacks the promoting services read: each service's own output
    (``image_ref``, or ``<service>_image_ref`` of several) in that service's own repository, with a
    digest derived from the source stack's name and the output (so two services never share one)."""
    answers: dict[str, dict[str, Any]] = {}
    for settings in services.values():
        promotion = settings.promotion
        if promotion is None or not promotion.from_stack:
            continue
        source = promotion.from_stack
        seed = (
            f"offline-plan:{source}" if promotion.output == "image_ref" else f"offline-plan:{source}:{promotion.output}"
        )
        digest = hashlib.sha256(seed.encode()).hexdigest()
        answer = answers.setdefault(source, {"stage": "staging"})
        answer[promotion.output] = f"{settings.registry.repository}@sha256:{digest}"
    return {source: dict(sorted(answer.items())) for source, answer in answers.items()}


@dataclass
class Plan:
    """The result of one offline run."""

    project: str
    stack: str
    stage: str
    resources: list[RecordedResource]
    invokes: list[dict[str, Any]]
    outputs: dict[str, Any]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "stage": self.stage,
            "notes": self.notes,
            "outputs": whole_numbers(canonical(redact(self.outputs))),
            "resources": [whole_numbers(r.to_json()) for r in self.resources],
            "invokes": [{**i, "args": canonical(i["args"])} for i in self.invokes],
        }


def run_plan(
    project_dir: Path, stack: str, *, environ: Mapping[str, str] | None = None, program: Path | None = None
) -> tuple[Plan, RecordingMocks]:
    """Validate the stack's settings and run the program under recording mocks.

    Raises :class:`StackFileError` or :class:`SettingsError` on bad configuration, and
    :class:`components.testing.EngineRuleError` when the program breaks a rule the engine enforces.
    """
    env = dict(os.environ if environ is None else environ)
    config, services = _load_with_stand_ins(project_dir, stack, env)
    mocks = RecordingMocks(stack_outputs=offline_stack_outputs(services))
    pulumi.runtime.set_all_config(dict(config.values), sorted(config.secret_keys))
    pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
    install_mocks(mocks, project=config.project, stack=stack)
    _run_main(project_dir, program or project_dir / "__main__.py")
    plan = Plan(
        project=config.project,
        stack=stack,
        stage=config.values.get(config.key("stage"), ""),
        # Registrations run concurrently: sort so that plans (and their diffs in PRs) are stable.
        resources=tree_order(mocks.resources),
        invokes=stable_invokes(mocks.invocations),
        outputs=_stack_outputs(),
        notes=list(config.notes),
    )
    return plan, mocks


def _load_with_stand_ins(
    project_dir: Path, stack: str, env: Mapping[str, str]
) -> tuple[StackConfig, dict[str, Settings]]:
    """The stack's configuration with the offline stand-ins filled in; on bad configuration, every
    problem at once: the stack file's and the settings' (not the stack file's first)."""
    try:
        config = load_stack_config(project_dir, stack)
    except StackFileError as error:
        if error.config is not None:
            reported = {p.key for p in error.problems}
            try:
                _offline_stand_ins(error.config, project_dir, env)
            except StackFileError as invalid:
                # a key misspelt in the stack file (its line says "did you mean api:memoryLimit?") is not
                # also reported as not set: the key is named once
                hinted = {p.expected.rpartition("did you mean ")[2].rstrip("?)") for p in error.problems}
                error.problems += [
                    p for p in invalid.problems
                    if p.key not in reported and not (p.value == "<not set>" and p.key in hinted)
                ]  # fmt: skip
        raise
    return config, _offline_stand_ins(config, project_dir, env)


def _run_main(project_dir: Path, main: Path) -> None:
    """Run the program as ``pulumi up`` would (from the project, importable), never reaching AWS for ECR."""
    sys.path.insert(0, str(project_dir))
    cwd = Path.cwd()
    online_ecr = image.ecr_client_factory
    try:
        os.chdir(project_dir)
        image.ecr_client_factory = OfflineEcrClient  # never AWS: no network, no credentials

        def run_main() -> None:
            runpy.run_path(str(main), run_name="__main__")

        run_program(run_main)
    finally:
        image.ecr_client_factory = online_ecr
        os.chdir(cwd)
        sys.path.remove(str(project_dir))


def stable_invokes(invocations: Iterable[RecordedInvoke]) -> list[dict[str, Any]]:
    """The invokes, redacted, by token then arguments: they run concurrently too (two services' tunnel
    token lookups finish in either order), and a plan must not differ between two runs of one commit."""
    invokes = [{"token": i.token, "args": canonical(redact(i.args))} for i in invocations]
    return sorted(invokes, key=lambda i: (i["token"], json.dumps(i["args"], sort_keys=True, default=str)))


def tree_order(resources: list[RecordedResource]) -> list[RecordedResource]:
    """Depth-first, parents before children, siblings by URN: stable whatever the registration order."""
    urns = {r.urn for r in resources}
    children: dict[str | None, list[RecordedResource]] = {}
    for resource in resources:
        children.setdefault(resource.parent if resource.parent in urns else None, []).append(resource)
    ordered: list[RecordedResource] = []

    def visit(parent: str | None) -> None:
        for child in sorted(children.get(parent, []), key=lambda r: r.urn):
            ordered.append(child)
            visit(child.urn)

    visit(None)
    return ordered


def _stack_outputs() -> dict[str, Any]:
    """The values the program exported, resolved; secret ones wrapped like recorded inputs."""
    root = pulumi.runtime.settings.get_root_resource()
    exported: dict[str, Any] = getattr(root, "outputs", {}) or {}
    resolved: dict[str, Any] = {}
    for name, value in exported.items():
        output = pulumi.Output.from_input(value)
        plain = _sync_await(output.future())
        secret = _sync_await(output.is_secret())
        resolved[name] = wrap_secret(plain) if secret else plain
    return resolved


def whole_numbers(value: Any) -> Any:
    """Pulumi's wire format carries every number as a double: give integral ones back as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value

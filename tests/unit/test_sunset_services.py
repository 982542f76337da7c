"""Sunset of one service out of a stack of several (``--service``), with the sunset's fakes.

The state is the platform example's production plan (examples/platform: api, web, worker and one
cluster monitoring stack), recorded by the offline plan; the fake engine below removes what a
(targeted) ``up`` or ``destroy`` would.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import settings as pulumi_settings

from components.commands import plan as plan_command
from components.commands.stage_file import read_stage, write_stage
from components.commands.sunset.checks import precondition_problem
from components.commands.sunset.command import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Options,
    RegistryResult,
    StateResource,
    Sunset,
)
from components.commands.sunset.stack import _state_resource
from components.service import TYPE as SERVICE_STACK

PLATFORM = Path(__file__).resolve().parents[2] / "examples" / "platform"
STACK = "production"
SERVICES = ("api", "web", "worker")


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[list[StateResource], dict[str, Any]]]:
    """The production stack's state and outputs, as the offline plan records them."""
    plan, mocks = plan_command.run_plan(PLATFORM, STACK, environ={})
    pulumi_settings.SETTINGS.outputs.clear()
    state = [
        _state_resource({"urn": r.urn, "type": r.type, "parent": r.parent, "protect": r.protect,
                         "inputs": r.plain_inputs, "retainOnDelete": r.retain_on_delete})
        for r in mocks.resources
    ]  # fmt: skip
    yield state, dict(plan.outputs)


class FakeEngine:
    """What sunset does to a stack: targeted destroy, unprotect, up (targeted: only those resources)."""

    def __init__(self, project_dir: Path, state: list[StateResource], outputs: dict[str, Any]) -> None:
        self.project_dir, self.state, self.output_values = project_dir, list(state), dict(outputs)
        self.calls: list[tuple[Any, ...]] = []

    def outputs(self) -> dict[str, Any]:
        return dict(self.output_values)

    def resources(self) -> list[StateResource]:
        return list(self.state)

    def _subtree(self, urn: str) -> set[str]:
        members, grew = {urn}, True
        while grew:
            grew = False
            for r in self.state:
                if r.parent in members and r.urn not in members:
                    members.add(r.urn)
                    grew = True
        return members

    def preview_destroy(self, targets: Sequence[str]) -> dict[str, int]:
        return {"delete": len(set().union(*(self._subtree(t) for t in targets)))}

    def destroy(self, targets: Sequence[str]) -> dict[str, int]:
        self.calls.append(("destroy", tuple(targets)))
        gone = set().union(*(self._subtree(t) for t in targets))
        self.state = [r for r in self.state if r.urn not in gone]
        return {"delete": len(gone)}

    def unprotect(self, urn: str) -> None:
        self.calls.append(("unprotect", urn))
        self.state = [replace(r, protect=False) if r.urn == urn else r for r in self.state]

    def up(self, targets: Sequence[str] = ()) -> dict[str, int]:
        self.calls.append(("up", tuple(targets)))
        gone = [r for r in self.state if r.urn in set(targets)] if targets else [
            r for r in self.state if r.type not in ("pulumi:pulumi:Stack", SERVICE_STACK)
            and not r.type.startswith("pulumi:providers:")
        ]  # fmt: skip
        if protected := [r.urn for r in gone if r.protect]:
            raise RuntimeError(f"unable to delete protected resource(s) {protected}")
        self.state = [r for r in self.state if r not in gone]
        return {"delete": len(gone)}

    def secret_config(self, name: str) -> str | None:
        return None


class FakeRegistry:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(
        self, *, repository: str, keep: Sequence[str], dry_run: bool, username: str | None, password: str | None
    ) -> RegistryResult:
        self.calls.append({"repository": repository, "keep": list(keep), "dry_run": dry_run})
        old = f"{repository}@sha256:" + "9" * 64
        return RegistryResult(deleted=[old], kept=[f"{repository}@{d}" for d in keep])


def branch(project_dir: Path, path: Path, service: str | None = None) -> tuple[str | None, str]:
    """The default branch says what the working copy says (the stage change is committed and merged)."""
    return read_stage(path, service), "origin/main"


def service_stack(state: Sequence[StateResource], service: str) -> str:
    return next(r.urn for r in state if r.type == SERVICE_STACK and r.urn.endswith(f"::{service}"))


def ancestors(state: Sequence[StateResource], urn: str) -> set[str]:
    """``urn``'s parent, the parent's parent, and so on."""
    parents = {r.urn: r.parent for r in state}
    found: set[str] = set()
    while (parent := parents.get(urn)) is not None:
        found.add(parent)
        urn = parent
    return found


def below(state: Sequence[StateResource], service: str) -> set[str]:
    owner = service_stack(state, service)
    members, grew = {owner}, True
    while grew:
        grew = False
        for r in state:
            if r.parent in members and r.urn not in members:
                members.add(r.urn)
                grew = True
    return members - {owner}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    copy = tmp_path / "platform"
    shutil.copytree(PLATFORM, copy, ignore=shutil.ignore_patterns("__pycache__", "out", "test_*.py"))
    return copy


def sunset(project: Path, engine: FakeEngine, registry: FakeRegistry, service: str | None) -> tuple[int, str]:
    out = io.StringIO()
    code = Sunset(
        Options(stack=STACK, project_dir=project, yes=True, service=service),
        stack_factory=lambda _s, _d: engine, decommission=registry, which=lambda _: "/usr/bin/pulumi",
        out=out, branch_stage=branch,
    ).run()  # fmt: skip
    return code, out.getvalue()


def test_one_service_goes_and_the_others_are_untouched(
    recorded: tuple[list[StateResource], dict[str, Any]], project: Path
) -> None:
    state, outputs = recorded
    write_stage(project / "Pulumi.production.yaml", "sunset", "api")  # adds api:stage: sunset
    write_stage(project / "Pulumi.staging.yaml", "sunset", "api")  # staging's api is gone too: images may go
    assert read_stage(project / "Pulumi.production.yaml") == "production"  # the project's stage is unchanged
    engine, registry = FakeEngine(project, state, outputs), FakeRegistry()
    others = {urn for s in ("web", "worker") for urn in below(state, s)}
    cluster = {r.urn for r in state if "cluster-" in r.urn}
    owner = service_stack(state, "api")
    api = below(state, "api") | {owner}
    exposure = outputs["api_exposure_urn"]
    exposure_tree = {r.urn for r in state if r.urn == exposure or exposure in ancestors(state, r.urn)}

    code, said = sunset(project, engine, registry, "api")

    assert code == EXIT_OK, said
    left = {r.urn for r in engine.state}
    # api's exposure, workload, monitoring and namespace are gone, and so are its ServiceStack and provider
    assert not api & left
    assert others <= left and cluster <= left  # web, worker and the cluster's monitoring untouched
    destroyed = [c for c in engine.calls if c[0] == "destroy"]
    assert destroyed == [("destroy", (exposure,))]  # the access points first, only api's
    (up,) = [c for c in engine.calls if c[0] == "up"]
    # a targeted up: nothing of another service is even diffed, nothing the destroy already removed is named
    assert set(up[1]) == api - exposure_tree
    assert owner in up[1] and "pulumi:providers:kubernetes::api-k8s" in " ".join(up[1])
    unprotected = [c[1] for c in engine.calls if c[0] == "unprotect"]
    assert unprotected and all(urn in api for urn in unprotected)  # api's protected namespace only
    assert [c["repository"] for c in registry.calls] == ["ghcr.io/acme/platform-api"]
    assert registry.calls[0]["keep"] == [outputs["api_image_ref"].rpartition("@")[2]]  # its retention: the last 1
    assert (project / "sunset-production-api.json").is_file()


def test_images_stay_while_another_stack_still_runs_the_service(
    recorded: tuple[list[StateResource], dict[str, Any]], project: Path
) -> None:
    state, outputs = recorded
    write_stage(project / "Pulumi.production.yaml", "sunset", "worker")
    engine, registry = FakeEngine(project, state, outputs), FakeRegistry()
    code, said = sunset(project, engine, registry, "worker")
    assert code == EXIT_OK, said
    assert not registry.calls  # staging's worker still deploys from ghcr.io/acme/platform-worker
    assert "staging (stage staging) still deploy(s) from ghcr.io/acme/platform-worker" in said
    assert not [c for c in engine.calls if c[0] == "destroy"]  # the worker has no exposure to remove
    assert not (below(state, "worker") | {service_stack(state, "worker")}) & {r.urn for r in engine.state}
    assert below(state, "api") <= {r.urn for r in engine.state}


def test_a_service_whose_stage_is_not_sunset_is_refused_before_anything_changes(
    recorded: tuple[list[StateResource], dict[str, Any]], project: Path
) -> None:
    state, outputs = recorded
    engine, registry = FakeEngine(project, state, outputs), FakeRegistry()
    code, said = sunset(project, engine, registry, "web")
    assert code == EXIT_USAGE
    assert "service web's stage production, not sunset" in said and "--service web --set-stage" in said
    assert not engine.calls and not registry.calls


def test_a_service_the_stack_does_not_list_is_refused(
    recorded: tuple[list[StateResource], dict[str, Any]], project: Path
) -> None:
    engine, registry = FakeEngine(project, *recorded), FakeRegistry()
    code, said = sunset(project, engine, registry, "billing")
    assert code == EXIT_USAGE and "--service billing" in said and "api, web, worker" in said
    assert not engine.calls


def test_the_whole_stack_of_several_is_refused_while_its_stage_is_not_sunset(
    recorded: tuple[list[StateResource], dict[str, Any]], project: Path
) -> None:
    engine, registry = FakeEngine(project, *recorded), FakeRegistry()
    code, said = sunset(project, engine, registry, None)
    assert code == EXIT_USAGE and "does not say stage sunset" in said and "--set-stage" in said
    assert not engine.calls and not registry.calls


def test_the_whole_stack_of_several_goes_service_by_service_then_the_rest(
    recorded: tuple[list[StateResource], dict[str, Any]], project: Path
) -> None:
    state, outputs = recorded
    write_stage(project / "Pulumi.production.yaml", "sunset")  # the project's stage: every service's
    write_stage(project / "Pulumi.staging.yaml", "sunset")  # no other stack runs these images any more
    engine, registry = FakeEngine(project, state, outputs), FakeRegistry()

    code, said = sunset(project, engine, registry, None)

    assert code == EXIT_OK, said
    left = [r for r in engine.state if r.type != "pulumi:pulumi:Stack"]
    # each service's ServiceStack and provider went with it; the cluster's provider is the last up's
    assert [r.urn.rpartition("::")[2] for r in left] == ["cluster-monitoring-k8s"], [r.urn for r in left]
    destroyed = [c[1] for c in engine.calls if c[0] == "destroy"]
    assert destroyed == [(outputs["api_exposure_urn"],), (outputs["web_exposure_urn"],)]  # access points first
    ups = [c[1] for c in engine.calls if c[0] == "up"]
    assert len(ups) == 4 and all(ups[:3]) and ups[3] == ()  # one targeted up per service, then the rest
    assert [c["repository"] for c in registry.calls] == [f"ghcr.io/acme/platform-{s}" for s in SERVICES]
    assert all(len(c["keep"]) == 1 for c in registry.calls)  # each service's retention: its last digest
    assert "stack production is sunset: every service (api, web, worker)" in said
    assert all((project / f"sunset-production-{s}.json").is_file() for s in SERVICES)


def test_set_stage_adds_the_services_own_stage_and_nothing_else(project: Path) -> None:
    path = project / "Pulumi.production.yaml"
    before = path.read_text()
    assert write_stage(path, "sunset", "web") == "production"
    added = [line for line in path.read_text().splitlines() if line not in before.splitlines()]
    assert added == ["  web:stage: sunset"]
    assert (read_stage(path, "web"), read_stage(path, "api"), read_stage(path)) == (
        "sunset",
        "production",
        "production",
    )
    write_stage(path, "sunset", "web")  # a second time: the key is there, only its value is written
    assert path.read_text().count("web:stage") == 1


def test_a_service_leaves_the_stack_production_promotes_from_once_productions_service_is_sunset(
    project: Path,
) -> None:
    """Found by the real-engine platform run (tests/integration/test_engine_platform_sunset.py): with
    production's api sunset, staging's api was still refused because production (stage production)
    promotes from staging; but production's api reads no api_image_ref any more."""
    write_stage(project / "Pulumi.staging.yaml", "sunset", "api")
    report = project / "sunset-staging-api.json"

    def problem(service: str | None) -> str | None:
        return precondition_problem(
            project, "staging", "ghcr.io/acme/platform-api", report, branch, dry_run=False, service=service
        )

    refused = problem("api")  # production's api still promotes from staging
    assert refused is not None and "production" in refused
    assert "api:pinnedDigest" in refused and "api_image_ref" in refused
    write_stage(project / "Pulumi.production.yaml", "sunset", "api")
    assert problem("api") is None  # production's api is sunset: nothing reads staging's api_image_ref
    write_stage(project / "Pulumi.staging.yaml", "sunset")
    assert problem(None) is not None  # the whole of staging: production's web and worker still promote
    (project / "Pulumi.production.yaml").write_text(
        (project / "Pulumi.production.yaml").read_text().replace("  api:stage: sunset\n", "")
        + "  api:pinnedDigest: sha256:"
        + "1" * 64
        + "\n"
    )
    assert problem("api") is None  # a pinned digest reads nothing from staging either


class OldProgramEngine(FakeEngine):
    """A program that still registers a sunset service's ServiceStack: a targeted ``up`` keeps it."""

    def up(self, targets: Sequence[str] = ()) -> dict[str, int]:
        kept = [r for r in self.state if r.urn in set(targets) and r.type == SERVICE_STACK]
        changes = super().up(targets)
        self.state += kept
        return changes


def test_a_program_that_still_registers_the_sunset_service_is_named_and_the_run_fails(
    recorded: tuple[list[StateResource], dict[str, Any]], project: Path
) -> None:
    state, outputs = recorded
    write_stage(project / "Pulumi.production.yaml", "sunset", "api")
    engine, registry = OldProgramEngine(project, state, outputs), FakeRegistry()

    code, said = sunset(project, engine, registry, "api")

    assert code == EXIT_FAILED
    owner = service_stack(state, "api")
    assert {r.urn for r in engine.state} & (below(state, "api") | {owner}) == {owner}
    assert f"1 resource(s) are still in the stack: the program still registers {owner} at stage sunset" in said
    assert "register nothing of a service whose stage is sunset" in said


def test_what_an_earlier_sunset_left_of_the_service_goes_on_the_next_run(
    recorded: tuple[list[StateResource], dict[str, Any]], project: Path
) -> None:
    state, outputs = recorded
    write_stage(project / "Pulumi.production.yaml", "sunset", "api")
    owner = service_stack(state, "api")
    # what version 0.3 left after api's sunset: its ServiceStack and its kubernetes provider, nothing else
    remnant = {owner, *(r.urn for r in state if r.parent == owner and r.type.startswith("pulumi:providers:"))}
    assert len(remnant) == 2
    earlier = [r for r in state if r.urn in remnant or r.urn not in below(state, "api")]
    engine, registry = FakeEngine(project, earlier, outputs), FakeRegistry()

    code, said = sunset(project, engine, registry, "api")

    assert code == EXIT_OK, said
    assert [c for c in engine.calls if c[0] == "up"] == [
        ("up", tuple(sorted(remnant, key=[r.urn for r in earlier].index)))
    ]
    assert not remnant & {r.urn for r in engine.state}
    code, said = sunset(project, engine, registry, "api")
    assert code == EXIT_OK and "Nothing to do" in said, said

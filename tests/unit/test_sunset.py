"""The sunset command against a fake Automation API stack injected at the StackOps boundary."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.commands.sunset import checks as sunset_checks
from components.commands.sunset import command as sunset
from components.commands.sunset import stack as sunset_stack
from components.commands.sunset.command import (
    EXIT_FAILED,
    EXIT_NO_CLI,
    EXIT_NOT_CONFIRMED,
    EXIT_OK,
    Options,
    RegistryResult,
    StackFileEditError,
    StateResource,
    Sunset,
    read_stage,
    write_stage,
)
from components.exposure import TYPE as EXPOSURE_TYPE

REPO_DIR = Path(__file__).resolve().parents[2]
STACK = "production"
SERVICE_STACK = "service-lifecycle:index:ServiceStack"
ROOT = f"urn:pulumi:{STACK}::service-lifecycle::pulumi:pulumi:Stack::service-lifecycle-{STACK}"
SVC = f"urn:pulumi:{STACK}::service-lifecycle::{SERVICE_STACK}::hello"
EXPOSURE = f"urn:pulumi:{STACK}::service-lifecycle::{SERVICE_STACK}${EXPOSURE_TYPE}::hello-exposure"
REPO = "ghcr.io/example-org/hello"
RUNNING = f"{REPO}@sha256:" + "1" * 64
PREVIOUS = f"{REPO}@sha256:" + "2" * 64
D_RUNNING, D_PREVIOUS = RUNNING.split("@")[1], PREVIOUS.split("@")[1]


def _child(parent: str, parent_types: str, type_: str, name: str, **kw: Any) -> StateResource:
    return StateResource(
        urn=f"urn:pulumi:{STACK}::service-lifecycle::{parent_types}${type_}::{name}", type=type_, parent=parent, **kw
    )


def production_state() -> list[StateResource]:
    """A production stack's state: exposure (with its provider and children), environment, workload."""
    exp_types = f"{SERVICE_STACK}${EXPOSURE_TYPE}"
    env_type = "service-lifecycle:index:Environment"
    wl_type = "service-lifecycle:index:Workload"
    env = _child(SVC, SERVICE_STACK, env_type, "hello-env")
    workload = _child(SVC, SERVICE_STACK, wl_type, "hello-workload")
    return [
        StateResource(urn=ROOT, type="pulumi:pulumi:Stack"),
        StateResource(urn=SVC, type=SERVICE_STACK, parent=ROOT),
        StateResource(
            urn=f"urn:pulumi:{STACK}::service-lifecycle::pulumi:providers:kubernetes::hello-kubernetes",
            type="pulumi:providers:kubernetes",
            parent=SVC,
        ),
        env,
        _child(
            env.urn, f"{SERVICE_STACK}${env_type}", "kubernetes:core/v1:Namespace", "hello-env-namespace", protect=True
        ),
        workload,
        _child(
            workload.urn,
            f"{SERVICE_STACK}${wl_type}",
            "kubernetes:apps/v1:Deployment",
            "hello-workload-deployment",
            image_refs=(RUNNING,),
        ),
        StateResource(urn=EXPOSURE, type=EXPOSURE_TYPE, parent=SVC),
        _child(EXPOSURE, exp_types, "pulumi:providers:cloudflare", "hello-exposure-cloudflare"),
        _child(
            EXPOSURE,
            exp_types,
            "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared",
            "hello-exposure-tunnel",
        ),
        _child(EXPOSURE, exp_types, "cloudflare:index/dnsRecord:DnsRecord", "hello-exposure-dns-hello.example.com"),
        _child(EXPOSURE, exp_types, "kubernetes:apps/v1:Deployment", "hello-exposure-cloudflared"),
    ]


class FakeStack:
    """Behaves like the engine for what sunset does: targeted destroy, protect, up from the stack file."""

    def __init__(
        self, project_dir: Path, resources: list[StateResource], outputs: dict[str, Any], stack: str = STACK
    ) -> None:
        self.project_dir = project_dir
        self.stack = stack
        self.state = list(resources)
        self.output_values = dict(outputs)
        self.calls: list[tuple[Any, ...]] = []
        self.fail_on: str | None = None

    def _maybe_fail(self, op: str) -> None:
        if self.fail_on == op:
            raise RuntimeError(f"{op} failed: simulated engine error")

    def outputs(self) -> dict[str, Any]:
        self.calls.append(("outputs",))
        return dict(self.output_values)

    def resources(self) -> list[StateResource]:
        self.calls.append(("resources",))
        return list(self.state)

    def _subtree(self, urn: str) -> set[str]:
        members = {urn}
        grew = True
        while grew:
            grew = False
            for r in self.state:
                if r.parent in members and r.urn not in members:
                    members.add(r.urn)
                    grew = True
        return members

    def preview_destroy(self, targets: Sequence[str]) -> dict[str, int]:
        self.calls.append(("preview_destroy", tuple(targets)))
        self._maybe_fail("preview_destroy")
        return {"delete": sum(len(self._subtree(t)) for t in targets)}

    def destroy(self, targets: Sequence[str]) -> dict[str, int]:
        self.calls.append(("destroy", tuple(targets)))
        self._maybe_fail("destroy")
        gone = set().union(*(self._subtree(t) for t in targets))
        self.state = [r for r in self.state if r.urn not in gone]
        return {"delete": len(gone)}

    def unprotect(self, urn: str) -> None:
        self.calls.append(("unprotect", urn))
        self.state = [replace(r, protect=False) if r.urn == urn else r for r in self.state]

    def up(self) -> dict[str, int]:
        stage = read_stage(self.project_dir / f"Pulumi.{self.stack}.yaml")
        self.calls.append(("up", stage))
        self._maybe_fail("up")
        if stage != "sunset":
            return {"same": len(self.state)}
        # As the real engine showed (docs/engine.md): __main__.py registers nothing of the service at
        # sunset, so the up deletes everything but the stack, the ServiceStack and its providers too.
        gone = [r for r in self.state if r.type != "pulumi:pulumi:Stack"]
        protected = [r.urn for r in gone if r.protect]
        if protected:
            raise RuntimeError(f"unable to delete protected resource(s) {protected}")
        self.state = [r for r in self.state if r not in gone]
        self.output_values = {"stage": "sunset", "parts": [], "namespace": None, "image_ref": None, "urls": []}
        return {"delete": len(gone), "same": len(self.state)}

    def secret_config(self, name: str) -> str | None:
        self.calls.append(("secret_config", name))
        return "registry-token-from-stack" if name == "service-lifecycle:registryPassword" else None

    @property
    def changes(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in ("destroy", "unprotect", "up")]


class FakeRegistry:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def __call__(
        self, *, repository: str, keep: Sequence[str], dry_run: bool, username: str | None, password: str | None
    ) -> RegistryResult:
        self.calls.append({"repository": repository, "keep": list(keep), "dry_run": dry_run, "username": username,
                           "password": password})  # fmt: skip
        kept = [f"{repository}@{d}" for d in keep]
        return RegistryResult(deleted=[f"{REPO}@sha256:" + "9" * 64], kept=kept, errors=list(self.errors))


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def project(tmp_path: Path, project_dir: Path) -> Path:
    for name in ("Pulumi.yaml", f"Pulumi.{STACK}.yaml", "__main__.py"):
        shutil.copy(project_dir / name, tmp_path / name)
    # A real sunset starts from a stack file whose stage sunset is on the default branch (sunset.yml commits it).
    write_stage(tmp_path / f"Pulumi.{STACK}.yaml", "sunset")
    return tmp_path


BRANCH: dict[str, str | None] = {}


def _branch_stage(project_dir: Path, path: Path) -> tuple[str | None, str]:
    """The default branch says what BRANCH says, else what the working copy says (committed and pushed)."""
    return BRANCH.get(path.name, read_stage(path)), "origin/main"


@pytest.fixture(autouse=True)
def _branch() -> Any:
    BRANCH.clear()
    yield
    BRANCH.clear()


@pytest.fixture
def fake(project: Path) -> FakeStack:
    return FakeStack(
        project, production_state(), {"stage": STACK, "image_ref": RUNNING, "urls": ["https://hello.example.com"]}
    )


Runner = Callable[..., tuple[int, str]]


@pytest.fixture
def run(project: Path, fake: FakeStack) -> tuple[Runner, FakeRegistry, list[int]]:
    registry = FakeRegistry()
    factory_calls: list[int] = []

    def go(*, yes: bool = True, dry_run: bool = False, stdin: io.StringIO | None = None,
           which: Callable[[str], str | None] = lambda _: "/usr/bin/pulumi") -> tuple[int, str]:  # fmt: skip
        out = io.StringIO()

        def factory(stack: str, directory: Path) -> FakeStack:
            factory_calls.append(1)
            assert (stack, directory) == (STACK, project)
            return fake

        code = Sunset(
            Options(stack=STACK, project_dir=project, yes=yes, dry_run=dry_run),
            stack_factory=factory, decommission=registry, which=which,
            stdin=stdin if stdin is not None else io.StringIO(""), out=out, clock=lambda: "2026-11-27T15:00:00+00:00",
            branch_stage=_branch_stage,
        ).run()  # fmt: skip
        return code, out.getvalue()

    return go, registry, factory_calls


# -- the flow ---------------------------------------------------------------------------------


def test_full_sunset_runs_the_steps_in_order_with_exact_targets(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    go, registry, _ = run
    namespace = next(r.urn for r in production_state() if r.type == "kubernetes:core/v1:Namespace")
    code, out = go()
    assert code == EXIT_OK, out
    assert [c for c in fake.calls if c[0] not in ("resources", "outputs", "secret_config")] == [
        ("preview_destroy", (EXPOSURE,)),
        ("destroy", (EXPOSURE,)),
        ("unprotect", namespace),
        ("up", "sunset"),  # the up sees the stack file already saying sunset
    ]
    assert registry.calls == [{"repository": REPO, "keep": [RUNNING.split("@")[1]], "dry_run": False,
                               "username": "example-org-ci", "password": "registry-token-from-stack"}]  # fmt: skip
    assert [r.type for r in fake.state] == ["pulumi:pulumi:Stack"]
    assert read_stage(project / f"Pulumi.{STACK}.yaml") == "sunset"


def test_set_stage_changes_that_value_only(project: Path, project_dir: Path) -> None:
    path = project / f"Pulumi.{STACK}.yaml"
    shutil.copy(project_dir / path.name, path)
    before = path.read_text().splitlines()
    assert sunset.main(["--stack", STACK, "--project-dir", str(project), "--set-stage"]) == EXIT_OK
    after = path.read_text().splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [("  service-lifecycle:stage: production", "  service-lifecycle:stage: sunset")]


def test_report_is_saved_and_printed(run: tuple[Runner, FakeRegistry, list[int]], project: Path) -> None:
    code, out = run[0]()
    assert code == EXIT_OK
    report = json.loads((project / "sunset-production.json").read_text())
    assert report["result"] == "done"
    assert report["exposure_urn"] == EXPOSURE
    assert (report["stage_before"], report["stage_after"]) == ("sunset", "sunset")
    assert report["started"] == report["finished"] == "2026-11-27T15:00:00+00:00"
    assert EXPOSURE in report["removed"]
    assert any("Namespace::hello-env-namespace" in urn for urn in report["removed"])
    assert report["remaining"] == []
    assert report["registry_kept"] == [RUNNING] and len(report["registry_deleted"]) == 1
    assert report["retention"] == {"production": [RUNNING.split("@")[1]]}
    assert f"image {RUNNING}" in report["kept"]
    assert report["production_image_refs"] == [RUNNING]
    commands = [s["command"] for s in report["steps"] if s["command"]]
    assert commands[0] == f"pulumi destroy --stack production --target '{EXPOSURE}' --target-dependents --yes"
    assert any(c.startswith("pulumi state unprotect --stack production --yes") for c in commands)
    assert "pulumi up --stack production --yes" in commands
    assert [s["status"] for s in report["steps"]] == ["done", "skipped", "done", "done", "done", "done"]
    assert "sunset of stack production (service-lifecycle): done" in out


def test_report_says_what_the_sunset_left_in_place(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    """The shared cluster stack is retain_on_delete: out of the stack, still running; never 'removed'."""
    mon_type = "service-lifecycle:index:Monitoring"
    monitoring = _child(SVC, SERVICE_STACK, mon_type, "hello-monitoring")
    release = _child(monitoring.urn, f"{SERVICE_STACK}${mon_type}", "kubernetes:helm.sh/v3:Release",
                     "hello-monitoring-kube-prometheus-stack", retain_on_delete=True)  # fmt: skip
    fake.state += [monitoring, release]
    code, out = run[0]()
    assert code == EXIT_OK, out
    report = json.loads((project / "sunset-production.json").read_text())
    assert release.urn not in report["removed"] and monitoring.urn in report["removed"]
    assert report["retained"] == [release.urn]
    assert f"{release.urn} (retain_on_delete: out of the stack, still running)" in report["kept"]
    assert "leaves 1 retained one(s) in place" in out


def test_state_export_reads_retain_on_delete() -> None:
    raw = {"urn": "urn:x::r", "type": "kubernetes:helm.sh/v3:Release", "retainOnDelete": True}
    assert sunset._state_resource(raw).retain_on_delete is True
    assert sunset._state_resource({"urn": "urn:x::s", "type": "t"}).retain_on_delete is False


def test_images_stay_while_another_stack_deploys_from_the_same_repository(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path, project_dir: Path
) -> None:
    """Staging and production share one repository: sunsetting one must not delete what the other runs."""
    go, registry, _ = run
    staging_file = project / "Pulumi.staging.yaml"
    shutil.copy(project_dir / "Pulumi.staging.yaml", staging_file)
    code, out = go()
    assert code == EXIT_OK, out
    assert registry.calls == []  # nothing deleted while staging still deploys from the repository
    report = json.loads((project / "sunset-production.json").read_text())
    (step,) = [s for s in report["steps"] if s["name"] == "registry decommission"]
    assert step["status"] == "skipped" and "staging (stage staging)" in step["detail"], step
    assert f"every image of {REPO}: staging (stage staging) still deploy(s) from it" in report["kept"]
    fake.calls.clear()
    code, out = go()  # idempotent meanwhile
    assert (code, fake.changes, registry.calls) == (EXIT_OK, [], []) and "Nothing to do" in out
    # Once staging is sunset too, a rerun decommissions with the digests the first run recorded.
    write_stage(staging_file, "sunset")
    assert go()[0] == EXIT_OK
    assert [c["keep"] for c in registry.calls] == [[D_RUNNING]] and fake.changes == []


def test_refuses_when_the_destroy_would_reach_beyond_the_exposure(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack
) -> None:
    """A resource outside the Exposure that depends on it would go with --target-dependents: refuse."""
    exposure_size = len(fake._subtree(EXPOSURE))
    fake.preview_destroy = lambda targets: {"delete": exposure_size + 1}  # type: ignore[method-assign]
    code, out = run[0]()
    assert code == EXIT_FAILED
    assert f"would delete {exposure_size + 1} resources but the Exposure holds {exposure_size}" in out
    assert fake.changes == [] and run[1].calls == []


def test_second_run_changes_nothing_and_says_so(run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack) -> None:
    go, registry, _ = run
    assert go()[0] == EXIT_OK
    fake.calls.clear()
    code, out = go()
    assert code == EXIT_OK
    assert "already sunset" in out and "Nothing to do" in out
    assert fake.changes == []
    assert len(registry.calls) == 1  # only the first run


def test_sunset_stack_file_without_exposure_is_nothing_to_do(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    write_stage(project / f"Pulumi.{STACK}.yaml", "sunset")
    fake.state = [r for r in fake.state if r.type in ("pulumi:pulumi:Stack", SERVICE_STACK)]
    code, out = run[0]()
    assert (code, fake.changes, run[1].calls) == (EXIT_OK, [], [])
    assert "Nothing to do" in out


def test_dry_run_only_reports(run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path) -> None:
    go, registry, _ = run
    before = (project / f"Pulumi.{STACK}.yaml").read_text()
    code, out = go(dry_run=True, yes=False)
    assert code == EXIT_OK
    assert fake.changes == []
    assert ("preview_destroy", (EXPOSURE,)) in fake.calls
    assert [c["dry_run"] for c in registry.calls] == [True]
    assert (project / f"Pulumi.{STACK}.yaml").read_text() == before
    assert not (project / "sunset-production.json").exists()
    assert "dry run: nothing was changed" in out
    assert "[planned] remove access points" in out and "hello-exposure-tunnel" in out


def test_refuses_without_a_terminal_and_without_yes(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    code, out = run[0](yes=False, stdin=io.StringIO("production\n"))
    assert code == EXIT_NOT_CONFIRMED
    assert "refusing" in out and "--yes" in out
    assert fake.changes == [] and run[1].calls == []
    assert read_stage(project / f"Pulumi.{STACK}.yaml") == "sunset"


def test_a_wrong_answer_at_the_prompt_changes_nothing(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack
) -> None:
    code, out = run[0](yes=False, stdin=Tty("staging\n"))
    assert code == EXIT_NOT_CONFIRMED and fake.changes == []
    assert "not confirmed" in out


def test_typing_the_stack_name_confirms(run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack) -> None:
    code, out = run[0](yes=False, stdin=Tty("production\n"))
    assert code == EXIT_OK, out
    assert [c[0] for c in fake.changes] == ["destroy", "unprotect", "up"]


def test_stops_before_anything_without_the_pulumi_cli(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    go, registry, factory_calls = run
    code, out = go(which=lambda _: None)
    assert code == EXIT_NO_CLI
    assert "Pulumi CLI is not installed" in out and "Nothing was changed" in out
    assert factory_calls == [] and fake.calls == [] and registry.calls == []
    assert read_stage(project / f"Pulumi.{STACK}.yaml") == "sunset"


def test_cli_vanishing_when_the_workspace_starts_is_a_clean_stop(project: Path) -> None:
    def factory(stack: str, directory: Path) -> FakeStack:
        raise FileNotFoundError("[Errno 2] No such file or directory: 'pulumi'")

    out = io.StringIO()
    code = Sunset(Options(stack=STACK, project_dir=project, yes=True), stack_factory=factory,
                  which=lambda _: "/usr/bin/pulumi", out=out, branch_stage=_branch_stage).run()  # fmt: skip
    assert code == EXIT_NO_CLI and "Nothing was changed" in out.getvalue()


def test_command_line_without_pulumi_on_path_exits_with_a_clear_message(project: Path) -> None:
    env = {**os.environ, "PATH": os.path.dirname(sys.executable), "PYTHONPATH": str(REPO_DIR)}
    assert shutil.which("pulumi", path=env["PATH"]) is None
    result = subprocess.run(
        [sys.executable, "-m", "components", "sunset", "--stack", STACK, "--yes", "--project-dir", str(project)],
        capture_output=True, text=True, env=env, timeout=120, cwd=project,
    )  # fmt: skip
    assert result.returncode == EXIT_NO_CLI, result.stdout + result.stderr
    assert "the Pulumi CLI is not installed" in result.stdout
    assert read_stage(project / f"Pulumi.{STACK}.yaml") == "sunset"


def test_a_failed_up_is_reported_and_a_rerun_resumes(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    go, registry, _ = run
    fake.fail_on = "up"
    code, out = go()
    assert code == EXIT_FAILED
    report = json.loads((project / "sunset-production.json").read_text())
    assert report["result"] == "failed"
    statuses = {s["name"]: s["status"] for s in report["steps"]}
    assert statuses["remove access points"] == "done"
    assert statuses["decommission workload and monitoring"] == "failed"
    assert statuses["registry decommission"] == "planned"
    assert registry.calls == []
    fake.calls.clear()
    fake.fail_on = None
    code, out = go()
    assert code == EXIT_OK, out
    assert [c[0] for c in fake.changes] == ["up"]  # exposure gone, namespace already unprotected
    # the digest production ran came from the first run's report: the up removed the Deployment
    assert registry.calls[0]["keep"] == [D_RUNNING]


def test_registry_errors_fail_the_sunset_and_the_rerun_retries_them(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack
) -> None:
    go, registry, _ = run
    registry.errors = ["sha256:9999: 500 Internal Server Error"]
    assert go()[0] == EXIT_FAILED
    registry.errors = []
    fake.calls.clear()
    code, out = go()
    assert code == EXIT_OK, out
    assert fake.changes == [] and len(registry.calls) == 2


def test_registry_is_never_cleared_blind(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    fake.output_values.pop("image_ref")
    fake.state = [replace(r, image_refs=()) for r in fake.state]
    code, out = run[0]()
    assert code == EXIT_FAILED
    assert "refusing to delete images blind" in out
    assert run[1].calls == []


def test_retention_uses_every_digest_production_ran(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack
) -> None:
    fake.state = [replace(r, image_refs=(RUNNING, PREVIOUS)) if r.image_refs else r for r in fake.state]
    assert run[0]()[0] == EXIT_OK
    assert run[1].calls[0]["keep"] == [D_RUNNING, D_PREVIOUS]


# -- the URN and the stage --------------------------------------------------------------------


def test_the_target_is_the_stacks_exported_exposure_urn_whatever_the_project_is_called(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack
) -> None:
    """Issue 14: a project renamed (or the library used by another program) names its URNs differently;
    the sunset reads the Exposure's URN from the stack's exposure_urn output, never from a fixed name."""
    renamed = [replace(r, urn=r.urn.replace("::service-lifecycle::", "::acme-shop::"),
                       parent=r.parent.replace("::service-lifecycle::", "::acme-shop::") if r.parent else None)
               for r in fake.state]  # fmt: skip
    fake.state = renamed
    target = EXPOSURE.replace("::service-lifecycle::", "::acme-shop::")
    fake.output_values["exposure_urn"] = target
    assert run[0]()[0] == EXIT_OK
    assert ("destroy", (target,)) in fake.calls


def test_without_an_output_the_one_exposure_in_the_state_is_the_target(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack
) -> None:
    assert "exposure_urn" not in fake.output_values
    assert run[0]()[0] == EXIT_OK
    assert ("destroy", (EXPOSURE,)) in fake.calls
    assert sunset.exposure_urn_of({}, []) is None


def test_two_exposures_and_no_output_is_a_refusal(run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack) -> None:
    fake.state.append(replace(next(r for r in fake.state if r.type == EXPOSURE_TYPE), urn=EXPOSURE + "-2"))
    code, out = run[0]()
    assert code == EXIT_FAILED and "2 Exposures and no exposure_urn output says which" in out
    assert fake.changes == []


def test_the_exposure_urn_is_exported_by_the_production_plan(
    offline_plan: Callable[[str], tuple[dict[str, Any], Path]],
) -> None:
    plan, _ = offline_plan("production")
    exposures = [r["urn"] for r in plan["resources"] if r["type"] == EXPOSURE_TYPE]
    assert len(exposures) == 1 and plan["outputs"]["exposure_urn"] == exposures[0]


def test_sunset_stage_registers_nothing_of_the_service(project: Path, tmp_path: Path) -> None:
    """The program at stage sunset registers no resource (not even the ServiceStack): after the sunset's
    up the state holds the stack alone (the real engine's lifecycle run, step 13, checks the state)."""
    write_stage(project / f"Pulumi.{STACK}.yaml", "sunset")
    out = tmp_path / "plan-out"
    command = [sys.executable, "-m", "components", "plan", "--stack", STACK, "--project-dir", str(project)]
    env = {**os.environ, "PYTHONPATH": str(REPO_DIR)}
    result = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=project, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    plan = json.loads((out / "plan.json").read_text())
    assert plan["stage"] == "sunset"
    assert plan["resources"] == []
    assert plan["outputs"]["parts"] == [] and plan["outputs"]["image_ref"] is None
    assert list((out / "manifests").glob("*.yaml")) == []


def test_write_stage_refuses_a_file_without_one_stage_line(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  service-lifecycle:serviceName: hello\n")
    with pytest.raises(StackFileEditError, match="exactly one"):
        write_stage(path, "sunset")
    assert path.read_text() == "config:\n  service-lifecycle:serviceName: hello\n"


def test_write_stage_keeps_comments_and_quotes_working(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text('# top\nconfig:\n  service-lifecycle:stage: "production"  # promoted\n  other: 1\n')
    assert write_stage(path, "sunset") == "production"
    assert path.read_text() == "# top\nconfig:\n  service-lifecycle:stage: sunset  # promoted\n  other: 1\n"
    assert yaml.safe_load(path.read_text())["config"]["service-lifecycle:stage"] == "sunset"


def test_the_command_is_registered() -> None:
    from components.commands.cli import COMMANDS

    assert COMMANDS["sunset"][0] == sunset.__name__


# -- the real Automation API adapter, up to the CLI boundary ----------------------------------


class _AutoStack:
    """Stands in for pulumi.automation.Stack, answering with the SDK's own result types."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _summary(self) -> Any:
        from pulumi.automation import OpType
        from pulumi.automation._stack import UpdateSummary

        return UpdateSummary(kind="destroy", start_time=None, message="", environment={}, config={},  # type: ignore[arg-type]
                             result="succeeded", resource_changes={OpType.DELETE: 7})  # fmt: skip

    def outputs(self) -> dict[str, Any]:
        from pulumi.automation import OutputValue

        return {
            "image_ref": OutputValue(value=RUNNING, secret=False),
            "access_client_secret": OutputValue(value="cf-client-secret-value", secret=True),
        }

    def export_stack(self) -> Any:
        from pulumi.automation import Deployment

        image = {"spec": {"template": {"spec": {"containers": [{"image": RUNNING}, {"image": "busybox:1"}]}}}}
        return Deployment(version=3, deployment={"resources": [
            {"urn": ROOT, "type": "pulumi:pulumi:Stack"},
            {"urn": SVC, "type": SERVICE_STACK, "parent": ROOT},
            {"urn": "urn:x::d", "type": "kubernetes:apps/v1:Deployment", "parent": SVC, "inputs": image},
            {"urn": "urn:x::ns", "type": "kubernetes:core/v1:Namespace", "parent": SVC, "protect": True},
        ]})  # fmt: skip

    def preview_destroy(self, **kwargs: Any) -> Any:
        from pulumi.automation import OpType
        from pulumi.automation._stack import PreviewResult

        self.calls.append(("preview_destroy", kwargs))
        return PreviewResult(stdout="", stderr="", change_summary={OpType.DELETE: 7})

    def destroy(self, **kwargs: Any) -> Any:
        from pulumi.automation._stack import DestroyResult

        self.calls.append(("destroy", kwargs))
        return DestroyResult(stdout="", stderr="", summary=self._summary())

    def up(self, **kwargs: Any) -> Any:
        from pulumi.automation._stack import UpResult

        self.calls.append(("up", kwargs))
        return UpResult(stdout="", stderr="", summary=self._summary(), outputs={})

    def get_config(self, name: str, *, path: bool = False) -> Any:
        from pulumi.automation import ConfigValue

        return ConfigValue(value="pw", secret=True)


def test_automation_adapter_passes_targets_and_reads_results(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    from pulumi import automation

    fake = _AutoStack()
    selected: list[tuple[str, str]] = []

    def select_stack(*, stack_name: str, work_dir: str) -> _AutoStack:
        selected.append((stack_name, work_dir))
        return fake

    monkeypatch.setattr(automation, "select_stack", select_stack)
    ops = sunset.AutomationStack(STACK, project, echo=lambda _: None)
    assert selected == [(STACK, str(project))]
    # The report (saved, published as artifact and job summary) carries outputs: secrets stay masked.
    assert ops.outputs() == {"image_ref": RUNNING, "access_client_secret": "[secret]"}
    resources = ops.resources()
    assert [r.protect for r in resources] == [False, False, False, True]
    assert resources[2].image_refs == (RUNNING,)  # only digest-pinned images count
    assert ops.preview_destroy([EXPOSURE]) == {"delete": 7}
    assert ops.destroy([EXPOSURE]) == {"delete": 7}
    assert ops.up() == {"delete": 7}
    assert ops.secret_config("service-lifecycle:registryPassword") == "pw"
    for name, kwargs in fake.calls[:2]:
        assert (kwargs["target"], kwargs["target_dependents"]) == ([EXPOSURE], True), name
    assert "target" not in fake.calls[2][1]  # the sunset up is a whole-stack up


def test_unprotect_runs_the_cli_in_the_project(monkeypatch: pytest.MonkeyPatch, project: Path) -> None:
    from pulumi import automation

    ran: list[tuple[list[str], Path]] = []
    monkeypatch.setattr(automation, "select_stack", lambda **_: _AutoStack())
    monkeypatch.setattr(sunset_stack.subprocess, "run", lambda argv, cwd, **_: ran.append((argv, cwd)))
    sunset.AutomationStack(STACK, project).unprotect("urn:x::ns")
    assert ran == [
        (["pulumi", "state", "unprotect", "--stack", STACK, "--yes", "--non-interactive", "urn:x::ns"], project)
    ]


def test_real_automation_api_without_the_cli_stops_cleanly(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No stub: the real pulumi.automation workspace, which cannot find the CLI on this machine."""
    if shutil.which("pulumi"):
        pytest.skip("a Pulumi CLI is installed here; this test covers machines without one")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable))
    out = io.StringIO()
    code = Sunset(Options(stack=STACK, project_dir=project, yes=True), which=lambda _: "/stale/pulumi", out=out,
                  branch_stage=_branch_stage).run()  # fmt: skip
    assert code == EXIT_NO_CLI, out.getvalue()
    assert "Nothing was changed" in out.getvalue()
    assert read_stage(project / f"Pulumi.{STACK}.yaml") == "sunset"


def test_refuses_when_the_stack_exports_another_exposure_urn(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack
) -> None:
    fake.output_values["exposure_urn"] = EXPOSURE.replace("hello-exposure", "other-exposure")
    code, out = run[0]()
    assert code == EXIT_FAILED and "refusing to target anything" in out
    assert fake.changes == [] and run[1].calls == []


def test_an_exported_exposure_urn_that_matches_is_accepted(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack
) -> None:
    fake.output_values["exposure_urn"] = EXPOSURE
    assert run[0]()[0] == EXIT_OK


# -- checks before the first destructive step (issue 12) ---------------------------------------


def test_a_report_path_that_is_a_directory_is_refused_before_anything(
    project: Path, fake: FakeStack, tmp_path: Path
) -> None:
    """Before: every destructive step ran, then saving the report failed. Now: refused up front."""
    out = io.StringIO()
    code = Sunset(Options(stack=STACK, project_dir=project, yes=True, report_path=tmp_path),
                  stack_factory=lambda s, d: fake, decommission=FakeRegistry(), which=lambda _: "/usr/bin/pulumi",
                  out=out, branch_stage=_branch_stage).run()  # fmt: skip
    assert code == sunset.EXIT_USAGE and f"--report {tmp_path} is a directory" in out.getvalue()
    assert fake.calls == []


def test_an_unwritable_report_folder_is_refused(tmp_path: Path) -> None:
    from components.commands.sunset.checks import report_path_problem

    locked = tmp_path / "locked"
    locked.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert report_path_problem(blocker / "sub" / "r.json") is not None  # a file where a folder should be
    assert report_path_problem(tmp_path / "new" / "r.json") is None and (tmp_path / "new").is_dir()
    if os.geteuid() != 0:  # root writes anywhere
        locked.chmod(0o500)
        assert "not writable" in str(report_path_problem(locked / "r.json"))


@pytest.mark.parametrize(("text", "problem"), [
    ('config:\n  "service-lifecycle:stage": production\n  other: 1\n', None),
    ("config:\n  service-lifecycle:stage: production\n  stage: production\n", "found 2"),
    ("config:\n  service-lifecycle:nested:\n    stage: x\n", "found 0"),
    ("config: {service-lifecycle:stage: production, other: 1}\n", None),
    ("config:\n  service-lifecycle:stage: [production]\n", "not a stage name"),
    ("config: [1]\n", "no config mapping"),
    ("config:\n  a: [\n", "not valid YAML"),
], ids=["quoted_key", "both_keys", "nested_only", "flow_style", "list_value", "no_mapping", "broken"])  # fmt: skip
def test_the_stage_edit_is_unambiguous_or_refused(tmp_path: Path, text: str, problem: str | None) -> None:
    """A quoted key is the same key (YAML); a nested unrelated `stage:` is not it; two spellings are ambiguous.
    A refused edit leaves the file as it was."""
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(text)
    if problem is None:
        assert write_stage(path, "sunset") == "production"
        assert read_stage(path) == "sunset"
        assert yaml.safe_load(path.read_text())["config"].get("other") == yaml.safe_load(text)["config"].get("other")
    else:
        with pytest.raises(StackFileEditError, match=problem):
            write_stage(path, "sunset")
        assert path.read_text() == text


def test_an_edit_of_a_file_changed_meanwhile_is_refused(tmp_path: Path) -> None:
    from components.commands.stage_file import plan_stage_edit

    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  service-lifecycle:stage: production\n")
    edit = plan_stage_edit(path, "sunset")
    path.write_text("config:\n  service-lifecycle:stage: staging\n")
    with pytest.raises(StackFileEditError, match="changed since"):
        edit.apply()


def test_an_ambiguous_stage_key_stops_the_sunset_before_the_destroy(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    """Before: the exposure destroy ran, then the stage rewrite failed ("found 0"). Now: nothing runs."""
    path = project / f"Pulumi.{STACK}.yaml"
    path.write_text(path.read_text() + "  stage: sunset\n")
    code, out = run[0]()
    assert code == sunset.EXIT_USAGE and "found 2" in out and fake.calls == []


def test_the_local_command_refuses_until_the_stage_change_is_on_the_default_branch(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path
) -> None:
    """Before: the local command destroyed first and rewrote the file after, so main still said production and
    the next deploy recreated everything. Now: stage sunset must be committed on the default branch first."""
    path = project / f"Pulumi.{STACK}.yaml"
    write_stage(path, "production")
    code, out = run[0]()
    assert code == sunset.EXIT_USAGE and "says stage production, not sunset" in out and "--set-stage" in out
    assert fake.calls == [] and read_stage(path) == "production"
    # Written locally but not merged: still refused.
    write_stage(path, "sunset")
    BRANCH[path.name] = "production"
    code, out = run[0]()
    assert code == sunset.EXIT_USAGE and "on origin/main says stage production" in out and fake.calls == []
    # A dry run only reports, whatever the branch says.
    write_stage(path, "production")
    code, out = run[0](dry_run=True)
    assert code == EXIT_OK and fake.changes == [] and "commit stage sunset to the default branch first" in out


def test_default_branch_stage_reads_origin_through_git(tmp_path: Path) -> None:
    from components.commands.stage_file import default_branch_stage

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "--bare", "-q", str(remote)], check=True)
    subprocess.run([*git, "clone", "-q", str(remote), str(work)], check=True, capture_output=True)
    path = work / "Pulumi.p.yaml"
    path.write_text("config:\n  service-lifecycle:stage: production\n")
    for args in (["add", "."], ["commit", "-qm", "x"], ["push", "-q", "origin", "HEAD:main"]):
        subprocess.run([*git, *args], cwd=work, check=True, capture_output=True)
    write_stage(path, "sunset")  # local only
    assert default_branch_stage(work, path) == ("production", "origin/main")
    assert default_branch_stage(tmp_path, tmp_path / "nowhere.yaml")[0] is None


def test_set_stage_refuses_an_ambiguous_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = project / f"Pulumi.{STACK}.yaml"
    path.write_text(path.read_text() + "  stage: production\n")
    before = path.read_text()
    assert sunset.main(["--stack", STACK, "--project-dir", str(project), "--set-stage"]) == sunset.EXIT_USAGE
    assert "found 2" in capsys.readouterr().err and path.read_text() == before


def _staging_project(project: Path, project_dir: Path) -> Path:
    shutil.copy(project_dir / "Pulumi.staging.yaml", project / "Pulumi.staging.yaml")
    write_stage(project / f"Pulumi.{STACK}.yaml", "production")
    write_stage(project / "Pulumi.staging.yaml", "sunset")
    return project


def _sunset_staging(project: Path, fake: FakeStack, registry: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = Sunset(Options(stack="staging", project_dir=project, yes=True), stack_factory=lambda s, d: fake,
                  decommission=registry, which=lambda _: "/usr/bin/pulumi", out=out,
                  branch_stage=_branch_stage).run()  # fmt: skip
    return code, out.getvalue()


def test_staging_sunset_is_refused_while_production_promotes_from_it(
    project: Path, project_dir: Path, fake: FakeStack
) -> None:
    """Before: production's StackReference lost image_ref and the deploy workflow skipped production."""
    _staging_project(project, project_dir)
    code, out = _sunset_staging(project, fake, FakeRegistry())
    assert code == sunset.EXIT_USAGE and "production promote from staging" in out and "pinnedDigest" in out
    assert fake.calls == []


def test_staging_sunset_is_allowed_once_production_pins_a_digest_or_is_sunset(
    project: Path, project_dir: Path, fake: FakeStack
) -> None:
    _staging_project(project, project_dir)
    prod = project / f"Pulumi.{STACK}.yaml"
    original = prod.read_text()
    prod.write_text(original + f"  service-lifecycle:pinnedDigest: {D_RUNNING}\n")
    fake.stack = "staging"
    assert _sunset_staging(project, fake, FakeRegistry())[0] == EXIT_OK
    prod.write_text(original)
    write_stage(prod, "sunset")
    assert sunset_checks.promoters(project, "staging") == []


def test_sharing_is_detected_whatever_the_spelling_of_the_repository(project: Path, project_dir: Path) -> None:
    """Before: `GHCR.io/example-org/hello` and `ghcr.io/example-org/hello` were two repositories."""
    staging = project / "Pulumi.staging.yaml"
    shutil.copy(project_dir / "Pulumi.staging.yaml", staging)
    staging.write_text(staging.read_text().replace("ghcr.io/example-org/hello", "GHCR.io/Example-Org/hello/"))
    assert sunset_checks.sharing_stacks(project, STACK, REPO) == ["staging (stage staging)"]


# -- Alertmanager silence ------------------------------------------------------------------------


def test_alerts_are_silenced_before_the_exposure_goes(project: Path, fake: FakeStack) -> None:
    order: list[str] = []
    bodies: list[tuple[str, dict[str, Any]]] = []

    def silencer(url: str, body: dict[str, Any]) -> str:
        order.append("silence")
        bodies.append((url, body))
        return "silence-1"

    original_destroy = fake.destroy
    fake.destroy = lambda targets: (order.append("destroy"), original_destroy(targets))[1]  # type: ignore[method-assign]
    fake.output_values["namespace"] = "hello-production"
    out = io.StringIO()
    code = Sunset(Options(stack=STACK, project_dir=project, yes=True, alertmanager_url="http://am:9093"),
                  stack_factory=lambda s, d: fake, decommission=FakeRegistry(), which=lambda _: "/usr/bin/pulumi",
                  out=out, branch_stage=_branch_stage, silencer=silencer).run()  # fmt: skip
    assert code == EXIT_OK, out.getvalue()
    assert order[:2] == ["silence", "destroy"]
    url, body = bodies[0]
    assert url == "http://am:9093"
    assert body["matchers"] == [
        {"name": "service", "value": "hello", "isRegex": False, "isEqual": True},
        {"name": "namespace", "value": "hello-production", "isRegex": False, "isEqual": True},
    ]
    report = json.loads((project / "sunset-production.json").read_text())
    assert report["silence_id"] == "silence-1"


def test_a_refused_silence_stops_the_sunset_before_anything(project: Path, fake: FakeStack) -> None:
    def silencer(url: str, body: dict[str, Any]) -> str:
        raise RuntimeError("Alertmanager http://am:9093/api/v2/silences answered 400: bad matcher")

    fake.output_values["namespace"] = "hello-production"
    out = io.StringIO()
    code = Sunset(Options(stack=STACK, project_dir=project, yes=True, alertmanager_url="http://am:9093"),
                  stack_factory=lambda s, d: fake, decommission=FakeRegistry(), which=lambda _: "/usr/bin/pulumi",
                  out=out, branch_stage=_branch_stage, silencer=silencer).run()  # fmt: skip
    assert code == EXIT_FAILED and "answered 400" in out.getvalue() and fake.changes == []


# -- retention across stacks (issue 12) ------------------------------------------------------------


class MemoryRegistry:
    """A registry holding manifests in memory, behind the real decommission (partition, reconciliation)."""

    kind = "oci"
    delete_refusal = None

    def __init__(self, digests: list[str]) -> None:
        from components.registry import Manifest

        self.manifests = {d: Manifest(d, (d[7:14],)) for d in digests}
        self.deletes = 0

    def list_manifests(self, *, need_dates: bool) -> list[Any]:
        return list(self.manifests.values())

    def delete(self, manifests: Sequence[Any]) -> list[Any]:
        for m in manifests:
            self.deletes += 1
            self.manifests.pop(m.digest, None)
        return []

    def decommission(self, *, repository: str, keep: Sequence[str], dry_run: bool, username: str | None,
                     password: str | None) -> RegistryResult:  # fmt: skip
        from components.registry import decommission

        report = decommission(repository, list(keep), dry_run, client=self)
        return RegistryResult(deleted=[m.digest for m in report.deleted], kept=[m.digest for m in report.kept])


def _digest(n: int) -> str:
    return "sha256:" + str(n) * 64


def test_production_then_staging_then_production_rerun_keeps_productions_last_digests(
    project: Path, project_dir: Path
) -> None:
    """Before: production sunset (registry skipped, staging shares) -> staging sunset (kept staging's last 1)
    -> production rerun: the registry was empty. Now the ledger keeps each stack's last imageRetainDigests."""
    from components.commands import retention

    shutil.copy(project_dir / "Pulumi.staging.yaml", project / "Pulumi.staging.yaml")
    prod_file = project / f"Pulumi.{STACK}.yaml"
    prod_file.write_text(prod_file.read_text().replace("promoteFromStack", "pinnedDigest: " + _digest(3) + "\n  #"))
    d1, d2, d3, d4, d5 = (_digest(n) for n in range(1, 6))
    for n in (1, 2, 3):  # production ran d1, d2, d3 (retain 2: d2, d3)
        retention.record(project, "production", f"{REPO}@{_digest(n)}")
    for n in (1, 2, 3, 4):  # staging ran d1..d4 (retain 1: d4)
        retention.record(project, "staging", f"{REPO}@{_digest(n)}")
    registry = MemoryRegistry([d1, d2, d3, d4, d5])  # d5: built, never deployed

    def stack_run(stack: str, fake: FakeStack) -> tuple[int, str]:
        out = io.StringIO()
        code = Sunset(Options(stack=stack, project_dir=project, yes=True), stack_factory=lambda s, d: fake,
                      decommission=registry.decommission, which=lambda _: "/usr/bin/pulumi", out=out,
                      branch_stage=_branch_stage).run()  # fmt: skip
        return code, out.getvalue()

    prod_state = [replace(r, image_refs=(f"{REPO}@{d3}",)) if r.image_refs else r for r in production_state()]
    prod = FakeStack(project, prod_state, {"image_ref": f"{REPO}@{d3}"})
    code, out = stack_run("production", prod)
    assert code == EXIT_OK, out
    assert set(registry.manifests) == {d1, d2, d3, d4, d5}  # staging still deploys from it: all kept

    write_stage(project / "Pulumi.staging.yaml", "sunset")
    staging_state = [replace(r, image_refs=(f"{REPO}@{d4}",)) if r.image_refs else r for r in production_state()]
    staging = FakeStack(project, staging_state, {"image_ref": f"{REPO}@{d4}"}, stack="staging")
    code, out = stack_run("staging", staging)
    assert code == EXIT_OK, out
    assert set(registry.manifests) == {d2, d3, d4}
    report = json.loads((project / "sunset-staging.json").read_text())
    assert report["retention"] == {"staging": [d4], "production": [d3, d2]}

    prod.calls.clear()
    code, out = stack_run("production", prod)  # the production rerun: its registry step is due now
    assert code == EXIT_OK, out
    assert prod.changes == [] and set(registry.manifests) == {d2, d3, d4}, out

    deletes = registry.deletes
    for stack, fake in (("production", prod), ("staging", staging)):  # a sunset run twice changes nothing
        fake.calls.clear()
        code, out = stack_run(stack, fake)
        assert code == EXIT_OK and "Nothing to do" in out and fake.changes == []
    assert registry.deletes == deletes and set(registry.manifests) == {d2, d3, d4}


def test_the_ledger_records_each_new_digest_once(tmp_path: Path) -> None:
    from components.commands import retention

    ref = f"{REPO}@{_digest(1)}"
    assert retention.record(tmp_path, "production", ref) is True
    assert retention.record(tmp_path, "production", ref) is False
    assert retention.record(tmp_path, "production", f"{REPO}@{_digest(2)}") is True
    assert retention.history(tmp_path, "org/service-lifecycle/production") == [ref, f"{REPO}@{_digest(2)}"]
    text = (tmp_path / "deployments" / "production.txt").read_text()
    assert text.startswith("# digests stack production deployed") and text.count("\n") == 3
    with pytest.raises(retention.LedgerError, match="expected the image_ref output"):
        retention.record(tmp_path, "production", f"{REPO}:latest")
    (tmp_path / "deployments" / "production.txt").write_text("ghcr.io/x:latest\n")
    with pytest.raises(retention.LedgerError, match=r"line 1: 'ghcr\.io/x:latest' is not repo@sha256"):
        retention.history(tmp_path, "production")


def test_the_ledger_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from components.commands import retention

    ref = f"{REPO}@{_digest(7)}"
    assert retention.main(["--stack", "staging", "--image-ref", ref, "--project-dir", str(tmp_path)]) == 0
    assert "recorded" in capsys.readouterr().out
    assert retention.main(["--stack", "staging", "--image-ref", "nope", "--project-dir", str(tmp_path)]) == 2
    assert retention.history(tmp_path, "staging") == [ref]


def test_other_stacks_keep_their_last_n_matched_by_normalised_repository(project: Path, project_dir: Path) -> None:
    from components.commands import retention

    staging = project / "Pulumi.staging.yaml"
    shutil.copy(project_dir / "Pulumi.staging.yaml", staging)
    staging.write_text(staging.read_text().replace("ghcr.io/example-org/hello", "GHCR.io/example-org/hello"))
    for n in (1, 2):
        retention.record(project, "staging", f"GHCR.io/example-org/hello@{_digest(n)}")
    retention.record(project, "old-preview", f"ghcr.io/example-org/other@{_digest(9)}")  # another repository
    (project / "sunset-gone.json").write_text(json.dumps({"production_image_refs": [f"{REPO}@{_digest(5)}"]}))
    kept = retention.retained_by_others(project, STACK, REPO)
    assert kept == {"gone": [_digest(5)], "staging": [_digest(2)]}


# -- the seams of the split: settings, preconditions in order, the other stack files, the journal ---------


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("remove", "does not exist: sunset needs the stack's committed stack file"),
        ('  service-lifecycle:imageRetainDigests: "2"', "must set service-lifecycle:serviceName"),
    ],
    ids=["no-stack-file", "retain-zero"],
)
def test_stack_file_settings_stop_the_sunset_before_the_stack_is_opened(
    run: tuple[Runner, FakeRegistry, list[int]], fake: FakeStack, project: Path, edit: str, expected: str
) -> None:
    go, registry, factory_calls = run
    path = project / f"Pulumi.{STACK}.yaml"
    if edit == "remove":
        path.unlink()
    else:
        text = path.read_text()
        assert edit in text
        path.write_text(text.replace(edit, '  service-lifecycle:imageRetainDigests: "0"'))
    code, out = go()
    assert code == sunset.EXIT_USAGE and f"error: {path if edit == 'remove' else path.name}" in out
    assert expected in out and factory_calls == [] and fake.calls == [] and registry.calls == []


def test_the_repository_is_checked_before_the_report_path(project: Path, tmp_path: Path) -> None:
    from components.commands.sunset.checks import precondition_problem

    problem = precondition_problem(
        project, STACK, "ghcr.io/example-org/hello:1.0", tmp_path, _branch_stage, dry_run=False
    )
    assert problem is not None and problem.startswith("service-lifecycle:imageRepository: repository ")
    assert precondition_problem(project, STACK, REPO, tmp_path, _branch_stage, dry_run=False) == (
        f"--report {tmp_path} is a directory: give a file name (for example {tmp_path / 'sunset.json'})"
    )
    assert precondition_problem(project, STACK, REPO, tmp_path / "r.json", _branch_stage, dry_run=False) is None


def test_an_unreadable_other_stack_file_keeps_the_images_and_blocks_no_promotion(project: Path) -> None:
    (project / "Pulumi.staging.yaml").write_text("config: [not, a, mapping\n")
    assert sunset_checks.sharing_stacks(project, STACK, REPO) == ["staging (unreadable stack file)"]
    assert sunset_checks.promoters(project, "staging") == []


def test_stack_files_come_in_file_name_order_and_a_qualified_stack_uses_its_last_part(tmp_path: Path) -> None:
    from components.commands.stage_file import stack_name
    from components.config.stack_config import stack_files

    for name in ("b", "a", "a-b"):
        (tmp_path / f"Pulumi.{name}.yaml").write_text("config: {}\n")
    (tmp_path / "Pulumi.yaml").write_text("name: x\n")
    assert [name for name, _ in stack_files(tmp_path)] == ["a-b", "a", "b"]  # "Pulumi.a-b" < "Pulumi.a."
    assert stack_name("example-org/service-lifecycle/production") == stack_name("production") == "production"


def test_a_failure_outside_the_planned_steps_is_added_saved_and_printed(tmp_path: Path) -> None:
    from components.commands.sunset.report import Journal, Report, Step

    printed: list[str] = []
    report = Report(stack=STACK, project="service-lifecycle", started="t0", steps=[Step("up", "done")])
    journal = Journal(report, tmp_path / "out" / "r.json", printed.append, lambda: "t1")
    assert journal.fail("confirm", "2 resource(s) are still in the stack") == EXIT_FAILED
    saved = json.loads((tmp_path / "out" / "r.json").read_text())
    assert [(s["name"], s["status"]) for s in saved["steps"]] == [("up", "done"), ("confirm", "failed")]
    assert saved["result"] == "failed" and saved["finished"] == "t1" and saved["steps"][1]["detail"].startswith("2 ")
    assert saved["next_actions"] == ["fix the cause and run sunset again: finished steps are skipped"]
    assert printed[0] == f"report saved to {tmp_path / 'out' / 'r.json'}"
    assert "  [failed] confirm: 2 resource(s) are still in the stack" in printed[1]


# -- a program with its own project name (issue 14), and a tagged ledger line --------------------------------


def _acme(project: Path, tmp_path: Path, project_dir: Path, *, rename_keys: bool = True) -> Path:
    """The repository's project and stack files as a platform team's program named ``acme`` (Pulumi.yaml
    ``name: acme``), its keys renamed ``acme:*`` unless ``rename_keys`` is False (a file copied unchanged)."""
    acme = tmp_path / "acme"
    acme.mkdir()
    text = (project_dir / "Pulumi.yaml").read_text()
    assert text.startswith("name: service-lifecycle\n")
    (acme / "Pulumi.yaml").write_text(text.replace("name: service-lifecycle\n", "name: acme\n", 1))
    for name in (f"Pulumi.{STACK}.yaml", "Pulumi.staging.yaml"):
        source = (project if name == f"Pulumi.{STACK}.yaml" else project_dir) / name
        stack_text = source.read_text()
        (acme / name).write_text(stack_text.replace("  service-lifecycle:", "  acme:") if rename_keys else stack_text)
    return acme


class AcmeStack(FakeStack):
    """The fake engine of a program named acme: its state's URNs name project acme; its secret is acme's."""

    def secret_config(self, name: str) -> str | None:
        self.calls.append(("secret_config", name))
        return "registry-token-from-stack" if name == "acme:registryPassword" else None


def _acme_state() -> list[StateResource]:
    def renamed(urn: str | None) -> str | None:
        return urn.replace("::service-lifecycle::", "::acme::") if urn else urn

    return [replace(r, urn=str(renamed(r.urn)), parent=renamed(r.parent)) for r in production_state()]


def _sunset(directory: Path, stack: FakeStack, registry: FakeRegistry) -> tuple[int, str]:
    out = io.StringIO()
    code = Sunset(
        Options(stack=STACK, project_dir=directory, yes=True), stack_factory=lambda _s, _d: stack,
        decommission=registry, which=lambda _: "/usr/bin/pulumi", stdin=io.StringIO(""), out=out,
        clock=lambda: "2026-11-27T15:00:00+00:00", branch_stage=_branch_stage,
    ).run()  # fmt: skip
    return code, out.getvalue()


def test_a_program_named_acme_is_sunset_from_its_own_keys(project: Path, tmp_path: Path, project_dir: Path) -> None:
    """A bare key is the project's and a full key is ``<namespace>:<name>``: pulumi/pulumi
    ``sdk/go/common/resource/config/key.go`` (``ParseKey``: the namespace is what precedes the ``:``) and
    ``pkg/workspace/config.go`` (``parseConfigKey``: a key without ``:`` takes ``project.Name``). So a program
    whose Pulumi.yaml says ``name: acme`` has ``acme:stage``, ``acme:imageRepository``…; before, the sunset
    refused it ("must set service-lifecycle:serviceName …"). The whole sunset runs on acme's keys: its stage
    edit, its registry user and password, the other stack's retention (a tagged ledger line) and report."""
    acme = _acme(project, tmp_path, project_dir)
    staging = acme / "Pulumi.staging.yaml"
    assert sunset.main(["--stack", "staging", "--project-dir", str(acme), "--set-stage"]) == EXIT_OK
    assert "  acme:stage: sunset\n" in staging.read_text() and read_stage(staging) == "sunset"
    tagged = f"{REPO}:1.0@{_digest(4)}"  # what `python -m components ledger` records from a tagged image_ref
    from components.commands import retention

    assert retention.record(acme, "staging", tagged) is True
    fake = AcmeStack(acme, _acme_state(), {"stage": STACK, "image_ref": RUNNING})
    registry = FakeRegistry()
    code, out = _sunset(acme, fake, registry)
    assert code == EXIT_OK, out
    assert ("secret_config", "acme:registryPassword") in fake.calls
    assert registry.calls == [{"repository": REPO, "keep": [D_RUNNING, _digest(4)], "dry_run": False,
                               "username": "example-org-ci", "password": "registry-token-from-stack"}]  # fmt: skip
    report = json.loads((acme / "sunset-production.json").read_text())
    assert report["project"] == "acme" and report["retention"]["staging"] == [_digest(4)]
    # production ran one digest and retains 2: its entry is its own digest, not padded with staging's
    assert report["retention"]["production"] == [D_RUNNING]
    assert "sunset of stack production (acme): done" in out
    assert [r.type for r in fake.state] == ["pulumi:pulumi:Stack"]


def test_acme_s_checks_read_acme_s_keys(project: Path, tmp_path: Path, project_dir: Path) -> None:
    """The preconditions name and read the project's keys: a live acme staging that promotes from production
    blocks it (``acme:promoteFromStack``), and deploys from the same repository (``acme:imageRepository``)."""
    acme = _acme(project, tmp_path, project_dir)
    staging = acme / "Pulumi.staging.yaml"
    staging.write_text(staging.read_text() + "  acme:promoteFromStack: example-org/acme/production\n")
    assert sunset_checks.promoters(acme, STACK) == ["staging"]
    assert sunset_checks.sharing_stacks(acme, STACK, REPO) == ["staging (stage staging)"]
    problem = sunset_checks.precondition_problem(acme, STACK, REPO, tmp_path / "r.json", _branch_stage, dry_run=False)
    assert problem is not None and problem.startswith("live stack(s) staging promote from production (acme:promote")
    bad = sunset_checks.precondition_problem(acme, STACK, f"{REPO}:1.0", tmp_path / "r.json", _branch_stage,
                                             dry_run=False)  # fmt: skip
    assert bad is not None and bad.startswith("acme:imageRepository: repository ")
    (acme / f"Pulumi.{STACK}.yaml").write_text("config:\n  acme:stage: production\n  stage: production\n")
    with pytest.raises(
        StackFileEditError, match=r"exactly one 'acme:stage' key .* Pulumi reads 'stage' as 'acme:stage'"
    ):
        write_stage(acme / f"Pulumi.{STACK}.yaml", "sunset")


@pytest.mark.parametrize("declared", [True, False], ids=["declared_settings", "bare_project_file"])
def test_service_lifecycle_keys_in_an_acme_program_are_refused_naming_the_key(
    project: Path, tmp_path: Path, project_dir: Path, declared: bool
) -> None:
    """The Pulumi CLI hands program acme only acme:* (and the bare keys); a stack file still spelling
    service-lifecycle:* keys is another project's: refused, naming acme's key, before the stack is opened."""
    acme = _acme(project, tmp_path, project_dir, rename_keys=False)
    if not declared:
        (acme / "Pulumi.yaml").write_text("name: acme\nruntime: python\n")
    fake, registry = AcmeStack(acme, _acme_state(), {}), FakeRegistry()
    code, out = _sunset(acme, fake, registry)
    assert code == sunset.EXIT_USAGE and fake.calls == [] and registry.calls == []
    lines = [line for line in out.splitlines() if "acme:serviceName" in line]
    assert lines, out
    if not declared:
        assert lines == [
            "error: Pulumi.production.yaml must set acme:serviceName, acme:imageRepository and a positive "
            "acme:imageRetainDigests; it sets service-lifecycle:imageRepository, service-lifecycle:serviceName "
            "instead: the keys of project acme are acme:<key> (Pulumi.yaml name: acme)"
        ]


def test_a_multi_service_stack_not_at_sunset_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    """``<project>:services`` (components.config.settings.load_services): the whole stack of several is sunset
    service by service (tests/unit/test_sunset_services.py), and only once its stack file says sunset."""
    example = REPO_DIR / "examples" / "two-services"
    for path in example.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    out = io.StringIO()
    code = Sunset(Options(stack="staging", project_dir=tmp_path, yes=True), stack_factory=lambda _s, _d: pytest.fail(),
                  which=lambda _: "/usr/bin/pulumi", out=out).run()  # fmt: skip
    assert code == sunset.EXIT_USAGE
    assert out.getvalue().startswith("error: Pulumi.staging.yaml does not say stage sunset: set it with "
                                     "`python -m components sunset --stack staging --set-stage`")  # fmt: skip


def test_a_tagged_ledger_line_is_kept_not_a_crash(project: Path) -> None:
    """``repo:tag@sha256:…`` is a digest reference (components.refs.DIGEST_REF) the ledger records. Before:
    retention passed ``repo:tag`` to normalize_repository, which raised, and the sunset refused with
    "could not read stack production". Now the tagged line counts for its repository."""
    from components.commands import retention

    retention.record(project, "staging", f"{REPO}@{_digest(3)}")
    retention.record(project, "staging", f"GHCR.io/example-org/hello:1.2.0@{_digest(4)}")
    retention.record(project, "preview", f"ghcr.io/example-org/other:1.0@{_digest(5)}")  # another repository
    assert retention.retained_by_others(project, STACK, REPO) == {"staging": [_digest(4)]}


@pytest.mark.parametrize(("ref", "repository", "same"), [
    (f"{REPO}:1.0@{_digest(1)}", REPO, True),
    (f"{REPO}@{_digest(1)}", REPO, True),
    (f"GHCR.io/Example-Org/hello:Latest@{_digest(1)}", REPO, True),
    (f"localhost:5000/hello@{_digest(1)}", "localhost:5000/hello", True),
    (f"localhost:5000/hello:1.0@{_digest(1)}", "localhost:5000/hello", True),
    (f"nginx:1.27@{_digest(1)}", "docker.io/library/nginx", True),
    (f"{REPO}-other:1.0@{_digest(1)}", REPO, False),
    (f"localhost:5000/hello:1.0@{_digest(1)}", "docker.io/library/localhost", False),
    (f"ghcr.io/a..b:1@{_digest(1)}", REPO, False),
], ids=["tag", "no_tag", "case", "port", "port_and_tag", "hub_tag", "other", "port_not_tag", "no_name"])  # fmt: skip
def test_one_tag_aware_repository_comparison(ref: str, repository: str, same: bool) -> None:
    """distribution/reference ``reference.go`` grammar: ``reference := name [":" tag] ["@" digest]`` and
    ``domain := domain-component ['.' domain-component]* [':' port-number]``: a ``:`` in the last path part
    is the tag, one in the first part of several is the registry's port."""
    from components.commands.sunset import plan as sunset_plan
    from components.registry.model import same_repository

    assert same_repository(ref, repository) is same
    assert sunset_plan.same_repository is same_repository  # the one comparison retention uses too

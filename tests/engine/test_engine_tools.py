"""The real engine's tooling fails clearly: a tool that cannot be built, a taken port, a control plane
that does not come up, and the preview-versus-plan comparison that must catch every difference."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine import controlplane, urns, workspace

REPO = Path(__file__).resolve().parents[2]

STACK = "urn:pulumi:staging::p::pulumi:pulumi:Stack::p-staging"
PARENT = "urn:pulumi:staging::p::service-lifecycle:index:ServiceStack::hello"
CHILD = "urn:pulumi:staging::p::service-lifecycle:index:ServiceStack$kubernetes:core/v1:Namespace::hello-ns"


def _plan(*resources: tuple[str, str, str | None]) -> dict[str, object]:
    return {"resources": [{"urn": u, "type": t, "parent": p} for u, t, p in resources]}


def _step(urn: str, type_: str, parent: str | None, op: str = "create") -> dict[str, object]:
    return {"op": op, "urn": urn, "newState": {"urn": urn, "type": type_, "parent": parent}}


def test_urns_equal_when_the_engine_adds_only_its_stack_and_default_providers() -> None:
    plan = _plan(
        (PARENT, "service-lifecycle:index:ServiceStack", STACK),
        (CHILD, "kubernetes:core/v1:Namespace", PARENT),
    )
    steps = [
        _step(STACK, "pulumi:pulumi:Stack", None),
        _step("urn:pulumi:staging::p::pulumi:providers:docker::default_5_2_0", "pulumi:providers:docker", None),
        _step(PARENT, "service-lifecycle:index:ServiceStack", STACK),
        _step(CHILD, "kubernetes:core/v1:Namespace", PARENT),
    ]
    assert urns.compare(steps, plan) == []


def test_urns_differences_are_each_named() -> None:
    plan = _plan(
        (PARENT, "service-lifecycle:index:ServiceStack", STACK),
        (CHILD, "kubernetes:core/v1:Namespace", PARENT),
        ("urn:pulumi:staging::p::x:index:Only::plan", "x:index:Only", STACK),
    )
    steps = [
        _step(PARENT, "service-lifecycle:index:ServiceStack", None),  # parent differs
        _step(CHILD, "kubernetes:core/v1:Namespace", PARENT),
        _step("urn:pulumi:staging::p::x:index:Only::engine", "x:index:Only", STACK),
    ]
    problems = urns.compare(steps, plan)
    assert any("only in the engine's preview" in p and p.endswith("::engine") for p in problems)
    assert any("only in the offline plan" in p and p.endswith("::plan") for p in problems)
    assert any(p.startswith(PARENT) for p in problems)
    assert len(problems) == 3


def test_urns_empty_preview_is_a_difference() -> None:
    assert urns.compare([], _plan((PARENT, "t", None))) == ["the engine's preview has no resources"]


def test_build_of_a_version_the_proxy_does_not_serve_exits_2_naming_the_module(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain")
    done = subprocess.run(
        [str(REPO / "engine" / "build.sh")],
        env={
            **os.environ,
            "SERVICE_LIFECYCLE_ENGINE_CACHE": str(tmp_path),
            "SERVICE_LIFECYCLE_ENGINE_ONLY": "kwok",
            "KWOK_VERSION": "0.0.99",
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 2, done.stderr
    assert "could not build kwok: module sigs.k8s.io/kwok/cmd/kwok@v0.0.99" in done.stderr
    assert "Go module proxy" in done.stderr
    assert not list(tmp_path.glob("kwok-*")), "a failed build left something in the cache"


def test_a_taken_port_is_refused_with_its_number() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(controlplane.ControlPlaneError, match=f"port {port} for kube-apiserver is already taken"):
            controlplane.require_free(port, "kube-apiserver")


def test_missing_tools_name_make_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(controlplane.ControlPlaneError, match=r"not on PATH: .*etcd.*run `make engine`"):
        controlplane.start(nodes=1)


def test_a_process_that_does_not_come_up_shows_its_log(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    log.write_text("first line\nlast words of the component\n")
    popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    process = controlplane.Process("slow", popen, log)
    try:
        with pytest.raises(controlplane.ControlPlaneError, match="did not become ready") as raised:
            controlplane._wait(process, lambda: False, 0.5, "its health answers")
        assert "last words of the component" in str(raised.value)
    finally:
        controlplane._terminate(popen)
    assert popen.poll() is not None


def test_a_process_that_dies_shows_its_exit_code_and_log(tmp_path: Path) -> None:
    log = tmp_path / "dead.log"
    log.write_text("fatal: cannot bind\n")
    popen = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], start_new_session=True)
    popen.wait()
    with pytest.raises(controlplane.ControlPlaneError, match=r"exited with 3[\s\S]*fatal: cannot bind"):
        controlplane._wait(controlplane.Process("dead", popen, log), lambda: False, 5, "ready")


def test_engine_env_without_make_engine_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(workspace, "ENGINE_ENV", tmp_path / "out" / "engine" / "env.json")
    monkeypatch.setattr(workspace, "REPO", tmp_path)
    with pytest.raises(workspace.EngineMissing, match="run `make engine` first"):
        workspace.engine_env()

"""The GitHub Actions workflows: actionlint (with shellcheck) on every file, the guard rails of the
pipeline as structural checks that are shown to fail on a broken copy, and the workflows' own
scripts (stage reading, sunset confirmation, stage commit) run for real."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
WORKFLOWS = PROJECT_DIR / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
PULUMI_ACTION = "pulumi/actions@"

Workflow = dict[str, Any]


def _tool(name: str) -> str:
    """A binary from this interpreter's environment (venv/bin), else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -r requirements-dev.txt")
    return found


def actionlint(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("actionlint"), "-no-color", f"-shellcheck={_tool('shellcheck')}", *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def load(name: str) -> Workflow:
    doc: Workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean
        doc["on"] = doc.pop(True)
    return doc


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps") or [])


def pulumi_steps(job: dict[str, Any], command: str | None = None) -> list[dict[str, Any]]:
    found = [s for s in steps(job) if str(s.get("uses", "")).startswith(PULUMI_ACTION)]
    return [s for s in found if command is None or (s.get("with") or {}).get("command") == command]


def step_named(job: dict[str, Any], prefix: str) -> dict[str, Any]:
    matches = [s for s in steps(job) if str(s.get("name", "")).startswith(prefix)]
    assert len(matches) == 1, f"expected one step named {prefix!r}, found {len(matches)}"
    return matches[0]


def needs(job: dict[str, Any]) -> list[str]:
    value = job.get("needs") or []
    return [value] if isinstance(value, str) else list(value)


def ancestors(workflow: Workflow, job_name: str) -> set[str]:
    seen: set[str] = set()
    todo = needs(workflow["jobs"][job_name])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += needs(workflow["jobs"][name])
    return seen


# ---- actionlint -------------------------------------------------------------------------------


def test_there_are_the_three_pipeline_workflows() -> None:
    assert {"pull-request.yml", "deploy.yml", "sunset.yml"} <= {f.name for f in FILES}


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_actionlint_passes(path: Path) -> None:
    result = actionlint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "name: broken\n"
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    needs: [missing-job]\n"
        "    steps:\n"
        "      - run: echo ${{ github.event.pull_request.titel }}\n"
        "  b:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: for f in $(ls *.txt); do echo $f; done\n"
    )
    result = actionlint(broken)
    assert result.returncode == 1
    assert 'job "a" needs job "missing-job" which does not exist' in result.stdout
    # shellcheck runs inside actionlint: the unquoted, ls-parsing loop is reported.
    assert "shellcheck reported issue" in result.stdout and "SC2045" in result.stdout


# ---- the guard rails, as checks that return problems ---------------------------------------


def deploy_problems(wf: Workflow) -> list[str]:
    jobs: dict[str, Any] = wf["jobs"]
    problems: list[str] = []
    if wf["on"].get("push", {}).get("branches") != ["main"]:
        problems.append("deploy must run on pushes to main")
    ups = {name: pulumi_steps(job, "up") for name, job in jobs.items()}
    by_stack = {(step.get("with") or {}).get("stack-name"): name for name, found in ups.items() for step in found}
    if set(by_stack) != {"staging", "production"}:
        return [*problems, f"expected one `pulumi up` of staging and one of production, found {sorted(by_stack)}"]
    staging, production = jobs[by_stack["staging"]], jobs[by_stack["production"]]
    env = production.get("environment")
    if (env.get("name") if isinstance(env, dict) else env) != "production":
        problems.append("the production up job must run in the `production` environment (the approval)")
    for name, job in ((by_stack["staging"], staging), (by_stack["production"], production)):
        for step in pulumi_steps(job, "up"):
            if (step.get("with") or {}).get("policyPacks") != "policy":
                problems.append(f"{name}: pulumi up without the policy pack")
    production_text = yaml.safe_dump(production)
    if re.search(r"docker\s+(buildx\s+)?build|docker/build-push-action|buildah|kaniko", production_text):
        problems.append("production builds an image; it must promote staging's digest")
    if "SOURCE_REVISION" in production_text:
        problems.append("production sets a build revision; it never builds")
    smoke_jobs = [
        name for name, job in jobs.items()
        if any("components smoke" in str(s.get("run", "")) for s in steps(job))
    ]  # fmt: skip
    smoke_staging = [n for n in smoke_jobs if by_stack["staging"] in ancestors(wf, n) and n != by_stack["production"]]
    smoke_staging = [n for n in smoke_staging if by_stack["production"] not in ancestors(wf, n)]
    if not smoke_staging:
        problems.append("no smoke test of staging after its up")
    elif not set(smoke_staging) & ancestors(wf, by_stack["production"]):
        problems.append("production does not depend on the staging smoke test")
    else:
        run = " ".join(str(s.get("run", "")) for n in smoke_staging for s in steps(jobs[n]))
        for header in ("CF-Access-Client-Id", "CF-Access-Client-Secret"):
            if f"--header-from-env {header}=" not in run:
                problems.append(f"the staging smoke test does not send {header} from the environment")
    if not any(by_stack["production"] in ancestors(wf, n) for n in smoke_jobs):
        problems.append("no smoke test of production after its up")
    for stack in ("staging", "production"):
        job_steps = steps(jobs[by_stack[stack]])
        guard = next((i for i, st in enumerate(job_steps) if "?ref=main" in str(st.get("run", ""))), None)
        up = next(i for i, st in enumerate(job_steps) if st in pulumi_steps(jobs[by_stack[stack]], "up"))
        if guard is None or guard > up:
            problems.append(f"{by_stack[stack]}: no check, before up, that main does not say {stack} is sunset")
    problems += _verification_problems(wf, by_stack["staging"], by_stack["production"], smoke_staging)
    if "test" not in ancestors(wf, by_stack["staging"]):
        problems.append("staging is deployed without the tests passing first")
    for name, stack in (("staging", "staging"), ("production", "production")):
        concurrency = jobs[by_stack[name]].get("concurrency") or {}
        if concurrency.get("group") != stack or concurrency.get("cancel-in-progress") is not False:
            problems.append(f"{by_stack[name]}: concurrency must be group {stack}, cancel-in-progress false")
    return problems


def _verification_problems(wf: Workflow, staging: str, production: str, smoke_staging: list[str]) -> list[str]:
    """verify-deploy after staging's smoke test (production depends on it) and after production's up;
    a production breach rolls back to rollback-target's pin, is verified again and fails the run."""
    jobs: dict[str, Any] = wf["jobs"]
    problems: list[str] = []

    def verifies(job: dict[str, Any], stack: str) -> list[int]:
        found = enumerate(steps(job))
        return [
            i
            for i, s in found
            if "verify-deploy" in str(s.get("run", "")) and (s.get("env") or {}).get("STACK") == stack
        ]

    verify_staging = [n for n, job in jobs.items() if verifies(job, "staging")]
    if not verify_staging or not any(set(smoke_staging) & ancestors(wf, n) for n in verify_staging):
        problems.append("no verify-deploy of staging after its smoke test")
    elif not set(verify_staging) & ancestors(wf, production):
        problems.append("production does not depend on the staging verification")
    job = jobs[production]
    job_steps = steps(job)
    up = next(i for i, st in enumerate(job_steps) if st in pulumi_steps(job, "up"))
    after_up = [i for i in verifies(job, "production") if i > up]
    if not after_up:
        return [*problems, "no verify-deploy of production after its up"]
    pins = [st for st in pulumi_steps(job, "up") if "pinnedDigest" in str((st.get("with") or {}).get("config-map"))]
    rollbacks = [i for i, st in enumerate(job_steps) if st in pins]
    target = [i for i, st in enumerate(job_steps) if "components rollback-target" in str(st.get("run", ""))]
    if not rollbacks or not target or not target[0] < rollbacks[0]:
        problems.append("a production breach does not roll back: rollback-target, then up with pinnedDigest")
    elif not [i for i in after_up if i > rollbacks[0]]:
        problems.append("the rollback is not verified again")
    final = job_steps[-1]
    if "always()" not in str(final.get("if", "")) or "exit 1" not in str(final.get("run", "")):
        problems.append("the production job's last step must fail the run on a breach, whatever happened before")
    return problems


def pull_request_problems(wf: Workflow) -> list[str]:
    problems: list[str] = []
    if "pull_request_target" in wf["on"]:
        problems.append("pull_request_target runs fork code with secrets")
    same_repo = "github.event.pull_request.head.repo.full_name == github.repository"
    plan_jobs = []
    for name, job in wf["jobs"].items():
        text = yaml.safe_dump(job)
        gated = same_repo in str(job.get("if", ""))
        if "secrets." in text and not gated:
            problems.append(f"{name}: uses secrets but also runs for fork PRs")
        if "components plan" in text and "--policy" in text:
            plan_jobs.append(name)
            if gated:
                problems.append(f"{name}: the offline plan must run for fork PRs too")
            if "plan-diff" not in text:
                problems.append(f"{name}: no manifest diff against the base branch")
        for step in pulumi_steps(job, "preview"):
            with_ = step.get("with") or {}
            if not gated:
                problems.append(f"{name}: pulumi preview needs secrets: run it only for same-repository PRs")
            if with_.get("comment-on-pr") is not True or with_.get("policyPacks") != "policy":
                problems.append(f"{name}: preview must comment on the PR and run the policy pack")
            concurrency = job.get("concurrency") or {}
            if concurrency.get("cancel-in-progress") is not False:
                problems.append(f"{name}: preview concurrency must not cancel in progress")
    if not plan_jobs:
        problems.append("no offline plan with the policy check")
    return problems


def sunset_problems(wf: Workflow) -> list[str]:
    problems: list[str] = []
    dispatch = wf["on"].get("workflow_dispatch") or {}
    inputs = dispatch.get("inputs") or {}
    if set(wf["on"]) != {"workflow_dispatch"}:
        problems.append("sunset must only run by hand")
    if inputs.get("stack", {}).get("options") != ["staging", "production"]:
        problems.append("input `stack` must be a choice of the stacks")
    if not inputs.get("confirm", {}).get("required"):
        problems.append("input `confirm` must be required")
    (job,) = wf["jobs"].values()
    runs = [str(s.get("run", "")) for s in steps(job)]
    sunset_at = next((i for i, r in enumerate(runs) if "components sunset" in r and "--yes" in r), None)
    confirm_at = next((i for i, r in enumerate(runs) if "CONFIRM" in r and "serviceName" in r), None)
    commit_at = next((i for i, r in enumerate(runs) if "git push" in r), None)
    if sunset_at is None:
        return [*problems, "no `python -m components sunset --yes` step"]
    if confirm_at is None or confirm_at > sunset_at:
        problems.append("the typed confirmation is not checked before the sunset")
    if commit_at is None or commit_at > sunset_at:
        problems.append("stage sunset is not committed to main before the sunset")
    text = yaml.safe_dump(job)
    if "${{ inputs.confirm }}" in "".join(runs):
        problems.append("the typed confirmation is interpolated into a script (injection)")
    if "GITHUB_STEP_SUMMARY" not in text or "actions/upload-artifact@" not in text:
        problems.append("the report must go to the job summary and an artifact")
    concurrency = job.get("concurrency") or {}
    if concurrency.get("group") != "${{ inputs.stack }}" or concurrency.get("cancel-in-progress") is not False:
        problems.append("sunset must share the stack's concurrency group and never be cancelled")
    return problems


def test_deploy_guard_rails() -> None:
    assert deploy_problems(load("deploy.yml")) == []


def test_production_credentials_are_set_up_where_only_the_approval_reaches_them() -> None:
    """The reviewers gate nothing if a repository-level token can change production: PR previews run
    PR code with repository secrets. The setup the workflows rely on must say so."""
    readme = " ".join((PROJECT_DIR / "docs" / "pipeline.md").read_text().split())  # the README's until 0.3.0
    header = " ".join(line.lstrip("# ") for line in (WORKFLOWS / "deploy.yml").read_text().splitlines()[:14])
    assert "repository-level `PULUMI_ACCESS_TOKEN` (and Cloudflare token) must reach the staging stack only" in readme
    assert "in the `production` environment's secrets under the same names" in readme
    assert "tokens that can change production are secrets of the `production` environment" in header


def test_pull_request_guard_rails() -> None:
    assert pull_request_problems(load("pull-request.yml")) == []


def test_sunset_guard_rails() -> None:
    assert sunset_problems(load("sunset.yml")) == []


def _drop_environment(wf: Workflow) -> None:
    wf["jobs"]["production"].pop("environment")


def _add_build(wf: Workflow) -> None:
    wf["jobs"]["production"]["steps"].insert(0, {"run": "docker build -t x app"})


def _skip_staging_smoke(wf: Workflow) -> None:
    wf["jobs"]["production"]["needs"] = ["stages", "staging"]


def _cancel_in_progress(wf: Workflow) -> None:
    wf["jobs"]["staging"]["concurrency"]["cancel-in-progress"] = True


def _token_on_command_line(wf: Workflow) -> None:
    for step in wf["jobs"]["smoke-staging"]["steps"]:
        if "components smoke" in str(step.get("run", "")):
            step["run"] = step["run"].replace("--header-from-env CF-Access-Client-Secret=", "--header x=")


def _drop_sunset_guard(wf: Workflow) -> None:
    job = wf["jobs"]["production"]
    job["steps"] = [s for s in job["steps"] if "?ref=main" not in str(s.get("run", ""))]


def _no_staging_verification(wf: Workflow) -> None:
    wf["jobs"]["production-preview"]["needs"].remove("verify-staging")
    wf["jobs"]["production"]["needs"].remove("verify-staging")


def _no_rollback(wf: Workflow) -> None:
    job = wf["jobs"]["production"]
    job["steps"] = [s for s in job["steps"] if "config-map" not in (s.get("with") or {})]


def _no_reverify(wf: Workflow) -> None:
    job = wf["jobs"]["production"]
    job["steps"] = [s for s in job["steps"] if s.get("id") != "reverify"]


def _verdict_not_always(wf: Workflow) -> None:
    wf["jobs"]["production"]["steps"][-1]["if"] = "success()"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_no_staging_verification, "production does not depend on the staging verification"),
        (_no_rollback, "a production breach does not roll back"),
        (_no_reverify, "the rollback is not verified again"),
        (_verdict_not_always, "must fail the run on a breach"),
        (_drop_sunset_guard, "production: no check, before up, that main does not say production is sunset"),
        (_drop_environment, "`production` environment"),
        (_add_build, "production builds an image"),
        (_skip_staging_smoke, "production does not depend on the staging smoke test"),
        (_cancel_in_progress, "cancel-in-progress false"),
        (_token_on_command_line, "CF-Access-Client-Secret"),
    ],
)
def test_deploy_checks_fail_on_a_broken_copy(mutate: Callable[[Workflow], None], expected: str) -> None:
    wf = copy.deepcopy(load("deploy.yml"))
    mutate(wf)
    problems = deploy_problems(wf)
    assert any(expected in p for p in problems), problems


def _secret_in_plan_job(wf: Workflow) -> None:
    wf["jobs"]["plan"]["steps"].append({"run": "echo", "env": {"T": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}})


def _ungated_preview(wf: Workflow) -> None:
    wf["jobs"]["preview"].pop("if")


def _target(wf: Workflow) -> None:
    wf["on"] = {"pull_request_target": {}}


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_secret_in_plan_job, "plan: uses secrets but also runs for fork PRs"),
        (_ungated_preview, "run it only for same-repository PRs"),
        (_target, "pull_request_target"),
    ],
)
def test_pull_request_checks_fail_on_a_broken_copy(mutate: Callable[[Workflow], None], expected: str) -> None:
    wf = copy.deepcopy(load("pull-request.yml"))
    mutate(wf)
    assert any(expected in p for p in pull_request_problems(wf))


def _no_confirmation(wf: Workflow) -> None:
    job = wf["jobs"]["sunset"]
    job["steps"] = [s for s in job["steps"] if "CONFIRM" not in str(s.get("run", ""))]


def _sunset_before_commit(wf: Workflow) -> None:
    job = wf["jobs"]["sunset"]
    commit = next(s for s in job["steps"] if "git push" in str(s.get("run", "")))
    job["steps"].remove(commit)
    job["steps"].append(commit)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_no_confirmation, "typed confirmation is not checked"),
        (_sunset_before_commit, "not committed to main before"),
        (lambda wf: wf["on"]["workflow_dispatch"]["inputs"].pop("confirm"), "`confirm` must be required"),
    ],
)
def test_sunset_checks_fail_on_a_broken_copy(mutate: Callable[[Workflow], None], expected: str) -> None:
    wf = copy.deepcopy(load("sunset.yml"))
    mutate(wf)
    assert any(expected in p for p in sunset_problems(wf))


# ---- general hygiene ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_actions_are_pinned_by_commit_sha_with_a_version_comment(path: Path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(\s+#\s*(v\d[\w.]*))?\s*$", line)
        if match:
            assert SHA_PIN.match(match.group(1)), f"{path.name}:{number}: {match.group(1)} is not pinned to a SHA"
            assert match.group(3), f"{path.name}:{number}: say which version the SHA is (# vX.Y.Z)"


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_permissions_are_minimal_per_job(path: Path) -> None:
    wf = load(path.name)
    assert wf.get("permissions") == {}, f"{path.name}: the workflow must grant nothing by default"
    allowed_writes = {
        ("pull-request.yml", "preview"): {"pull-requests"},
        ("pr-comment.yml", "comment"): {"pull-requests"},
        ("sunset.yml", "sunset"): {"contents"},
        ("deploy.yml", "ledger"): {"contents"},  # commits the retention ledger (deployments/<stack>.txt)
        # Attestations: a Sigstore certificate (id-token), stored with GitHub and pushed to GHCR.
        ("deploy.yml", "staging"): {"id-token", "attestations", "packages"},
        # The deploy verification's figures as a check on the commit.
        ("deploy.yml", "verify-staging"): {"checks"},
        ("deploy.yml", "production"): {"checks"},
        ("drift.yml", "issues"): {"issues"},
    }
    for name, job in wf["jobs"].items():
        permissions = job.get("permissions")
        assert isinstance(permissions, dict), f"{path.name}:{name}: declare the job's permissions"
        writes = {scope for scope, level in permissions.items() if level == "write"}
        assert writes <= allowed_writes.get((path.name, name), set()), f"{path.name}:{name}: writes {writes}"


def test_pr_comment_never_runs_pull_request_code() -> None:
    wf = load("pr-comment.yml")
    assert set(wf["on"]) == {"workflow_run"}
    assert wf["on"]["workflow_run"]["workflows"] == [load("pull-request.yml")["name"]]
    uploaded = {
        (s.get("with") or {}).get("name")
        for job in load("pull-request.yml")["jobs"].values()
        for s in steps(job)
        if str(s.get("uses", "")).startswith("actions/upload-artifact@")
    }
    downloaded = {
        (s.get("with") or {}).get("name")
        for job in wf["jobs"].values()
        for s in steps(job)
        if str(s.get("uses", "")).startswith("actions/download-artifact@")
    }
    assert downloaded and downloaded <= uploaded
    script = next(
        str((s.get("with") or {}).get("script"))
        for j in wf["jobs"].values()
        for s in steps(j)
        if "with" in s and "script" in s["with"]
    )
    from components.commands.plan_diff import MARKER

    assert MARKER in script, "the comment step must recognise plan-diff's marker"
    for job in wf["jobs"].values():
        for step in steps(job):
            assert "run" not in step, "pr-comment runs no shell: the artifact is untrusted"
            assert not str(step.get("uses", "")).startswith("actions/checkout@"), "never check out PR code here"


# ---- the workflows' own scripts, run for real ---------------------------------------------------


def _run_step(step: dict[str, Any], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = str(step["run"])
    merged = {**os.environ, **env}
    if "PATH" not in env:  # a step's bare `python` is setup-python's on a runner; here, this run's
        merged["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', os.defpath)}"
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env=merged,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_stages_step_reads_the_committed_stack_files(tmp_path: Path) -> None:
    step = step_named(load("deploy.yml")["jobs"]["stages"], "Stage of each stack")
    for name in ("Pulumi.staging.yaml", "Pulumi.production.yaml"):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    output = tmp_path / "github_output"
    result = _run_step(step, tmp_path, {"GITHUB_OUTPUT": str(output)})
    assert result.returncode == 0, result.stderr
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    staging = yaml.safe_load((PROJECT_DIR / "Pulumi.staging.yaml").read_text())["config"]
    production = yaml.safe_load((PROJECT_DIR / "Pulumi.production.yaml").read_text())["config"]
    assert values == {
        "staging": "staging",
        "production": "production",
        "version": staging["service-lifecycle:appVersion"],
        "production_version": production["service-lifecycle:appVersion"],
        "pinned": "",
    }


PIN = "sha256:" + "b" * 64
VALIDATED = "ghcr.io/example-org/hello@sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("pinned", "deployed", "code"),
    [
        ("", VALIDATED, 0),
        ("", f"ghcr.io/example-org/hello@{PIN}", 1),
        (PIN, f"ghcr.io/example-org/hello@{PIN}", 0),  # a rollback (docs/design.md step 8) is a success
        (PIN, VALIDATED, 1),
    ],
)
def test_production_digest_check_accepts_a_rollback_pin(pinned: str, deployed: str, code: int, tmp_path: Path) -> None:
    production = load("deploy.yml")["jobs"]["production"]
    step = step_named(production, "Production runs exactly the validated digest")
    result = _run_step(step, tmp_path, {"VALIDATED": VALIDATED, "PINNED": pinned, "DEPLOYED": deployed})
    assert result.returncode == code, result.stdout + result.stderr
    stack_file = tmp_path / "Pulumi.production.yaml"
    stack_file.write_text(
        (PROJECT_DIR / "Pulumi.production.yaml")
        .read_text()
        .replace("config:\n", f"config:\n  service-lifecycle:pinnedDigest: {PIN}\n", 1)
    )
    shutil.copy(PROJECT_DIR / "Pulumi.staging.yaml", tmp_path)
    output = tmp_path / "github_output"
    stages = step_named(load("deploy.yml")["jobs"]["stages"], "Stage of each stack")
    assert _run_step(stages, tmp_path, {"GITHUB_OUTPUT": str(output)}).returncode == 0
    assert f"pinned={PIN}" in output.read_text().splitlines()
    # The production smoke test does not expect this run's revision from a rollback's older image.
    smoke = step_named(load("deploy.yml")["jobs"]["smoke-production"], "python -m components smoke")
    fake = tmp_path / "bin" / "python"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "URL": "https://x", "VERSION": "1", "REVISION": "abcdef0"}
    assert "--expect-revision abcdef0" in _run_step(smoke, tmp_path, {**env, "PINNED": ""}).stdout
    assert "--expect-revision" not in _run_step(smoke, tmp_path, {**env, "PINNED": PIN}).stdout


def _acme_copy(tmp_path: Path, stack: str = "production") -> Path:
    """This repository's project and stack file as a program named ``acme`` (keys ``acme:*``)."""
    (tmp_path / "Pulumi.yaml").write_text(
        (PROJECT_DIR / "Pulumi.yaml").read_text().replace("name: service-lifecycle", "name: acme", 1)
    )
    text = (PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text().replace("service-lifecycle:", "acme:")
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    return tmp_path / f"Pulumi.{stack}.yaml"


@pytest.mark.parametrize(
    ("project", "typed", "code"),
    [("service-lifecycle", "hello", 0), ("service-lifecycle", "hello-production", 1), ("acme", "hello", 0),
     ("acme", "hello-production", 1)],
)  # fmt: skip
def test_sunset_confirmation_must_equal_the_service_name(tmp_path: Path, project: str, typed: str, code: int) -> None:
    """The confirmation reads the program's own ``<project>:serviceName`` (Pulumi.yaml ``name``)."""
    step = step_named(load("sunset.yml")["jobs"]["sunset"], "Check the typed confirmation")
    if project == "acme":
        _acme_copy(tmp_path)
    else:
        shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path)
        shutil.copy(PROJECT_DIR / "Pulumi.production.yaml", tmp_path)
    result = _run_step(step, tmp_path, {"STACK": "production", "CONFIRM": typed})
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert "does not match the service name" in result.stdout and "nothing was changed" in result.stdout


def test_sunset_confirmation_refuses_a_stack_without_the_project_s_service_name(tmp_path: Path) -> None:
    step = step_named(load("sunset.yml")["jobs"]["sunset"], "Check the typed confirmation")
    shutil.copy(PROJECT_DIR / "Pulumi.production.yaml", tmp_path)  # service-lifecycle:* keys …
    (tmp_path / "Pulumi.yaml").write_text("name: acme\nruntime: python\n")  # … in a program named acme
    result = _run_step(step, tmp_path, {"STACK": "production", "CONFIRM": "hello"})
    assert result.returncode == 1
    assert "Pulumi.production.yaml sets no acme:serviceName: nothing was changed" in result.stdout


@pytest.mark.parametrize(("project", "stage", "code"), [("service-lifecycle", "sunset", 0), ("acme", "sunset", 0),
                                                        ("acme", "production", 1)])  # fmt: skip
def test_the_last_sunset_check_reads_the_program_s_stage_key(
    tmp_path: Path, venv_stand_in: Callable[[Path], Path], project: str, stage: str, code: int
) -> None:
    step = step_named(load("sunset.yml")["jobs"]["sunset"], "The stack file still says sunset")
    if project == "acme":
        path = _acme_copy(tmp_path)
    else:
        shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path)
        path = Path(shutil.copy(PROJECT_DIR / "Pulumi.production.yaml", tmp_path))
    path.write_text(path.read_text().replace(f"{project}:stage: production", f"{project}:stage: {stage}"))
    _git(tmp_path, "init", "--quiet")
    venv_stand_in(tmp_path)
    result = _run_step(step, tmp_path, {"STACK": "production"})
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert "says stage 'production' after the sunset, not sunset" in result.stdout


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


@pytest.fixture
def clone(tmp_path: Path, venv_stand_in: Callable[[Path], Path]) -> Iterator[tuple[Path, Path]]:
    """A clone of a bare 'origin' whose main holds the production stack file, and a venv stand-in."""
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    _git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(origin))
    _git(tmp_path, "clone", "--quiet", str(origin), str(work))
    shutil.copy(PROJECT_DIR / "Pulumi.production.yaml", work)
    _git(work, "add", "Pulumi.production.yaml")
    _git(work, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "--quiet", "-m", "init")
    _git(work, "push", "--quiet", "origin", "HEAD:main")
    venv_stand_in(work)
    yield origin, work


def _commit_step() -> dict[str, Any]:
    return step_named(load("sunset.yml")["jobs"]["sunset"], "Commit stage sunset to main first")


def _stage_on_origin(origin: Path) -> str:
    text = _git(origin, "show", "main:Pulumi.production.yaml")
    return str(yaml.safe_load(text)["config"]["service-lifecycle:stage"])


def test_sunset_commits_the_stage_to_main_before_anything_else(clone: tuple[Path, Path]) -> None:
    origin, work = clone
    env = {"STACK": "production", "PYTHONPATH": str(PROJECT_DIR)}
    result = _run_step(_commit_step(), work, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _stage_on_origin(origin) == "sunset"
    assert _git(origin, "log", "-1", "--format=%s", "main") == "sunset: stage sunset for stack production"
    # Only the stage line changed.
    diff = _git(origin, "diff", "main~1", "main", "--unified=0")
    assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-  service-lifecycle:stage: production",
        "+  service-lifecycle:stage: sunset",
    ]
    # A second run finds it committed and changes nothing.
    again = _run_step(_commit_step(), work, env)
    assert again.returncode == 0 and "already says stage sunset" in again.stdout
    assert _git(origin, "rev-list", "--count", "main") == "2"


def test_sunset_refuses_when_the_stage_cannot_be_pushed(clone: tuple[Path, Path]) -> None:
    origin, work = clone
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = _run_step(_commit_step(), work, {"STACK": "production", "PYTHONPATH": str(PROJECT_DIR)})
    assert result.returncode == 1
    assert "could not push 'stage: sunset' for production to main; nothing was changed" in result.stdout
    assert _stage_on_origin(origin) == "production"


def test_sunset_report_is_committed_where_a_rerun_finds_it(clone: tuple[Path, Path], tmp_path: Path) -> None:
    """A rerun on a fresh runner resumes from the committed report (after a failed registry step the
    state no longer knows production's digests); without it, it would say 'nothing to do'."""
    from components.commands.sunset.command import Options, Sunset

    origin, work = clone
    job = load("sunset.yml")["jobs"]["sunset"]
    run_line = str(step_named(job, "python -m components sunset")["run"])
    assert '--report "sunset-$STACK.json"' in run_line
    assert Sunset(Options(stack="production", project_dir=work)).report_path == work / "sunset-production.json"
    step = step_named(job, "Commit the report to main")
    assert step.get("if") == "always()"  # a failed sunset's report is what a rerun needs most
    (work / "sunset-production.json").write_text('{"stack": "production", "result": "failed"}\n')
    env = {"STACK": "production", "REPORT_DIR": str(tmp_path / "report")}
    (tmp_path / "report").mkdir()
    result = _run_step(step, work, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"result": "failed"' in _git(origin, "show", "main:sunset-production.json")
    assert (tmp_path / "report" / "sunset-production.json").is_file()  # the artifact has it too
    again = _run_step(step, work, env)
    assert again.returncode == 0 and "already this report" in again.stdout
    assert _git(origin, "rev-list", "--count", "main") == "2"


def test_stack_outputs_the_workflows_read_are_exported(
    offline_plan: Callable[[str], tuple[dict[str, Any], Path]],
) -> None:
    exported = set(offline_plan("staging")[0]["outputs"]) | set(offline_plan("production")[0]["outputs"])
    read: set[str] = set()
    for path in FILES:
        wf = load(path.name)
        for job in wf["jobs"].values():
            pulumi_ids = {s["id"] for s in pulumi_steps(job) if "id" in s}
            text = yaml.safe_dump(job)
            for step_id, output in re.findall(r"steps\.([\w-]+)\.outputs\.([\w-]+)", text):
                if step_id in pulumi_ids and output != "output":
                    read.add(output)
    assert read >= {"image_ref", "urls", "access_client_id", "access_client_secret"}
    assert read <= exported, f"workflows read stack outputs the program does not export: {read - exported}"


# Inputs of each pinned action, from its action.yml at that commit. actionlint checks the inputs of
# popular actions only when they are referenced by tag, so SHA pins need this check instead.
ACTION_INPUTS: dict[str, tuple[set[str], set[str]]] = {
    "actions/checkout@de0fac2e4500dabe0009e67214ff5f5447ce83dd": (
        {
            "clean", "fetch-depth", "fetch-tags", "filter", "github-server-url", "lfs", "path", "persist-credentials",
            "ref", "repository", "set-safe-directory", "show-progress", "sparse-checkout", "sparse-checkout-cone-mode",
            "ssh-key", "ssh-known-hosts", "ssh-strict", "ssh-user", "submodules", "token",
        },
        set(),
    ),
    "actions/setup-python@a309ff8b426b58ec0e2a45f0f869d46889d02405": (
        {
            "allow-prereleases", "architecture", "cache", "cache-dependency-path", "check-latest", "freethreaded",
            "pip-install", "pip-version", "python-version", "python-version-file", "token", "update-environment",
        },
        set(),
    ),
    "actions/upload-artifact@b7c566a772e6b6bfb58ed0dc250532a479d7789f": (
        {
            "compression-level", "if-no-files-found", "include-hidden-files", "name", "overwrite", "path",
            "retention-days",
        },
        {"path"},
    ),
    "actions/download-artifact@37930b1c2abaa49bbe596cd826c3c89aef350131": (
        {"artifact-ids", "github-token", "merge-multiple", "name", "path", "pattern", "repository", "run-id"},
        set(),
    ),
    "actions/github-script@ed597411d8f924073f98dfc5c65a23a2325f34cd": (
        {
            "base-url", "debug", "github-token", "previews", "result-encoding", "retries", "retry-exempt-status-codes",
            "script", "user-agent",
        },
        {"script"},
    ),
    "actions/attest@1e69f48acb82d1966a394da916b4c1698aa569d6": (
        {
            "create-storage-record", "github-token", "predicate", "predicate-path", "predicate-type",
            "push-to-registry", "sbom-path", "show-summary", "subject-checksums", "subject-digest", "subject-name",
            "subject-path", "subject-version",
        },
        set(),
    ),
    "anchore/sbom-action@e22c389904149dbc22b58101806040fa8d37a610": (
        {
            "artifact-name", "config", "dependency-snapshot", "file", "format", "github-token", "image", "output-file",
            "path", "registry-password", "registry-username", "syft-version", "upload-artifact",
            "upload-artifact-retention", "upload-release-assets",
        },
        set(),
    ),
    "pulumi/actions@8582a9e8cc630786854029b4e09281acd6794b58": (
        {
            "always-include-summary", "cloud-url", "color", "command", "comment-on-pr", "comment-on-pr-number",
            "comment-on-summary", "config-map", "continue-on-error", "debug", "diff", "edit-pr-comment", "exclude",
            "exclude-dependents", "exclude-protected", "expect-no-changes", "github-token", "log-flow", "log-verbosity",
            "message", "parallel", "plan", "policyPackConfigs", "policyPacks", "pulumi-version", "pulumi-version-file",
            "refresh", "remove", "replace", "secrets-provider", "stack-name", "suppress-outputs", "suppress-progress",
            "target", "target-dependents", "upsert", "work-dir",
        },
        set(),
    ),
}  # fmt: skip


def input_problems(wf: Workflow) -> list[str]:
    problems: list[str] = []
    for name, job in wf["jobs"].items():
        for step in steps(job):
            uses = step.get("uses")
            if uses is None:
                continue
            if uses not in ACTION_INPUTS:
                problems.append(f"{name}: {uses} is not a known pin")
                continue
            known, required = ACTION_INPUTS[uses]
            given = set(step.get("with") or {})
            problems += [f"{name}: {uses.split('@')[0]} has no input {key!r}" for key in sorted(given - known)]
            problems += [f"{name}: {uses.split('@')[0]} needs input {key!r}" for key in sorted(required - given)]
            if uses.startswith(PULUMI_ACTION) and "command" in given and "stack-name" not in given:
                problems.append(f"{name}: pulumi/actions with a command needs stack-name")
    return problems


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_action_inputs_exist_at_the_pinned_version(path: Path) -> None:
    assert input_problems(load(path.name)) == []


def test_input_check_catches_a_misspelt_input() -> None:
    wf = copy.deepcopy(load("deploy.yml"))
    up = pulumi_steps(wf["jobs"]["staging"], "up")[0]
    up["with"]["policy-packs"] = up["with"].pop("policyPacks")
    assert "staging: pulumi/actions has no input 'policy-packs'" in input_problems(wf)


@pytest.mark.parametrize(("stage_on_main", "code"), [("production", 0), ("sunset", 1)])
def test_deploy_refuses_a_stack_that_main_says_is_sunset(
    tmp_path: Path, stage_on_main: str, code: int, venv_stand_in: Callable[[Path], Path]
) -> None:
    step = step_named(load("deploy.yml")["jobs"]["production"], "Refuse if main now says production is sunset")
    stack_file = (PROJECT_DIR / "Pulumi.production.yaml").read_text()
    (tmp_path / "main.yaml").write_text(
        stack_file.replace("service-lifecycle:stage: production", f"service-lifecycle:stage: {stage_on_main}")
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_gh = bin_dir / "gh"  # stands in for the GitHub API: answers the file at ?ref=main
    fake_gh.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/gh-args\ncat {tmp_path}/main.yaml\n')
    fake_gh.chmod(0o755)
    venv_stand_in(tmp_path)
    env = {**step["env"], "GH_TOKEN": "x", "GITHUB_REPOSITORY": "acme/hello", "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = _run_step(step, tmp_path, env)
    assert result.returncode == code, result.stdout + result.stderr
    assert "repos/acme/hello/contents/Pulumi.production.yaml?ref=main" in (tmp_path / "gh-args").read_text()
    if code:
        assert "main says stack production is sunset" in result.stdout


def test_make_targets_the_workflows_run_exist() -> None:
    makefile = (PROJECT_DIR / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[:?]?=\s*(\S+)", makefile, re.MULTILINE))
    targets = {
        re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), t)
        for t in re.findall(r"^([^\s#:=][^:=]*?)\s*:(?!=)", makefile, re.MULTILINE)
    }
    used = {t for path in FILES for t in re.findall(r"\bmake\s+([\w./-]+)", path.read_text())}
    assert used >= {"test", "venv/.installed"}
    assert used <= targets, f"workflows run make targets the Makefile lacks: {used - targets}"


# ---- deploy verification and the rollback, as the production job runs them -------------------------

GOOD = "ghcr.io/example-org/hello@sha256:" + "1" * 64
BETTER = "ghcr.io/example-org/hello@sha256:" + "2" * 64
BAD = "ghcr.io/example-org/hello@sha256:" + "3" * 64


def test_the_rollback_pins_the_last_digest_that_passed_verification_on_main(
    tmp_path: Path, venv_stand_in: Callable[[Path], Path]
) -> None:
    """The ledger on main (served by a stand-in gh) says GOOD and BETTER passed, BETTER breached on a
    later deploy and BAD breached now: the pin is GOOD, the newest digest whose latest result passed."""
    from components.commands import retention

    main = tmp_path / "main"
    for ref, result in ((GOOD, "passed"), (BETTER, "passed"), (BETTER, "breached"), (BAD, "breached")):
        retention.record(main, "production", ref)
        retention.record_verification(main, "production", ref, result)
    work = tmp_path / "work"
    (work / "deployments").mkdir(parents=True)
    (work / "deployments" / "production.txt").write_text(f"{BAD}\n")  # this commit's stale ledger
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_gh = bin_dir / "gh"  # the file at ?ref=main, or a 404 (exit 1)
    fake_gh.write_text(
        "#!/bin/sh\nfor a; do last=$a; done\nfile=${last#*contents/}; file=${file%%\\?ref=main}\n"
        f'[ -f "{main}/$file" ] && exec cat "{main}/$file"\necho \'{{"message":"Not Found"}}\'; exit 1\n'
    )
    fake_gh.chmod(0o755)
    venv_stand_in(work)
    step = step_named(load("deploy.yml")["jobs"]["production"], "Rollback target")
    output = tmp_path / "github_output"
    env = {**step["env"], "BREACHED": BAD, "GH_TOKEN": "x", "GITHUB_REPOSITORY": "acme/hello",
           "GITHUB_OUTPUT": str(output), "PATH": f"{bin_dir}:{os.environ['PATH']}"}  # fmt: skip
    result = _run_step(step, work, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert dict(line.split("=", 1) for line in output.read_text().splitlines()) == {
        "image_ref": GOOD,
        "digest": GOOD.rsplit("@", 1)[1],
    }
    # With nothing that passed, no pin: the step fails and production is not touched.
    (main / "deployments" / "production.verify.jsonl").write_text(
        json.dumps({"image_ref": BAD, "result": "breached", "time": ""}) + "\n"
    )
    output.write_text("")
    result = _run_step(step, work, env)
    assert result.returncode == 1
    assert "nothing safe to roll back to; production stays on what it runs now" in result.stdout
    assert output.read_text() == ""


@pytest.mark.parametrize(
    ("outcomes", "code", "message"),
    [
        ({"CODE": "0"}, 0, "verified healthy"),
        ({"CODE": "3"}, 1, "could NOT be verified"),
        ({"CODE": "2"}, 1, "verify-deploy could not run on production (exit 2)"),
        ({"CODE": "1", "TARGET": "failure"}, 1, "ROLLBACK NOT POSSIBLE"),
        ({"CODE": "1", "TARGET": "success", "ROLLBACK": "failure"}, 1, "ROLLBACK FAILED"),
        ({"CODE": "1", "TARGET": "success", "ROLLBACK": "success", "RECODE": "1"}, 1, "did NOT verify healthy"),
        ({"CODE": "1", "TARGET": "success", "ROLLBACK": "success", "RECODE": "0"}, 1, "was rolled back to"),
    ],
)
def test_the_production_verdict_fails_red_on_any_breach(
    tmp_path: Path, outcomes: dict[str, str], code: int, message: str
) -> None:
    step = step_named(load("deploy.yml")["jobs"]["production"], "Verdict")
    summary = tmp_path / "summary"
    env = {key: "" for key in step["env"]}
    env.update(DEPLOYED=BAD, PIN=GOOD, ROLLED_BACK=GOOD, GITHUB_STEP_SUMMARY=str(summary), **outcomes)
    result = _run_step(step, tmp_path, env)
    assert result.returncode == code, result.stdout + result.stderr
    assert message in result.stdout
    if code:
        assert message in summary.read_text()  # loud in the job summary too


@pytest.mark.parametrize(("exit_code", "result"), [(0, "passed"), (1, "breached"), (3, "not-verified"), (2, "error")])
def test_the_verify_step_records_the_result_and_the_summary(tmp_path: Path, exit_code: int, result: str) -> None:
    step = step_named(load("deploy.yml")["jobs"]["production"], "python -m components verify-deploy (production)")
    fake = tmp_path / "venv" / "bin" / "python"  # stands in for verify-deploy: its arguments, a summary, an exit
    fake.parent.mkdir(parents=True)
    fake.write_text(  # anything but -m (the conftest's interpreter probe) goes to this run's interpreter
        f'#!/bin/sh\n[ "$1" = -m ] || exec {sys.executable} "$@"\necho "$@" > {tmp_path}/args\n'
        f"mkdir -p verify-production\necho '### Deploy verification' > verify-production/verify.md\nexit {exit_code}\n"
    )
    fake.chmod(0o755)
    output, summary = tmp_path / "output", tmp_path / "summary"
    env = {**step["env"], "IMAGE_REF": BAD, "SINCE": "1700000000", "PROMETHEUS_URL": "https://prom.example",
           "PROMETHEUS_TOKEN": "", "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary)}  # fmt: skip
    done = _run_step(step, tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr  # the verdict step decides, after the rollback
    assert f"code={exit_code}\nresult={result}\n" == output.read_text()
    assert "### Deploy verification" in summary.read_text()
    args = (tmp_path / "args").read_text()
    assert f"verify-deploy --stack production --image-ref {BAD} --since 1700000000 --wait" in args
    assert "--bearer-token-env" not in args  # no token: no option (an empty one would be exit 2)

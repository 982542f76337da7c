"""drift.yml, and deploy.yml's supply-chain steps: structure (shown to fail on broken copies),
zizmor, and the steps' own scripts run for real with stand-ins for ``pulumi``, ``gh`` and ``docker``."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.test_workflows import WORKFLOWS, _run_step, _tool, load, pulumi_steps, step_named, steps

PROJECT_DIR = Path(__file__).resolve().parents[2]
ATTESTATIONS = Path(__file__).parent / "attestations"
PREVIEWS = Path(__file__).parent / "drift"
DIGEST = "0cbdde0bc3ffc2b850ce5c53f63ca228c7bdc69062275c105f40edfd7b5fc825"
VALIDATED = f"ghcr.io/example-org/hello@sha256:{DIGEST}"
Workflow = dict[str, Any]


def zizmor(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("zizmor"), "--offline", "--no-progress", *map(str, paths)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["drift.yml", "deploy.yml"])
def test_zizmor_finds_nothing(name: str) -> None:
    result = zizmor(WORKFLOWS / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_catches_a_template_injection(tmp_path: Path) -> None:
    broken = tmp_path / "drift.yml"
    text = (WORKFLOWS / "drift.yml").read_text()
    broken.write_text(text.replace('echo "live stacks: $stacks"', 'echo "${{ github.event.head_commit.message }}"'))
    result = zizmor(broken)
    assert result.returncode != 0 and "template-injection" in result.stdout + result.stderr


# ---- drift.yml structure ---------------------------------------------------------------------


def drift_problems(wf: Workflow) -> list[str]:
    problems: list[str] = []
    if set(wf["on"]) != {"schedule", "workflow_dispatch"}:
        problems.append("runs on a schedule and on demand only")
    preview = wf["jobs"]["preview"]
    if preview.get("environment") != "drift-${{ matrix.stack }}":
        problems.append("the preview takes its read-only credentials from the drift-<stack> environment")
    if any(level == "write" for level in (preview.get("permissions") or {}).values()):
        problems.append("the preview job writes nothing")
    text = yaml.safe_dump(preview)
    secrets = {part.split("}")[0].strip() for part in text.split("secrets.")[1:]}
    if not secrets or any(not s.startswith("DRIFT_") for s in secrets):
        problems.append(f"the preview uses only DRIFT_* secrets, not {sorted(secrets)}")
    command = str(step_named(preview, "pulumi preview")["run"])
    for flag in ("--refresh", "--expect-no-changes"):
        if flag not in command:
            problems.append(f"the preview runs with {flag}")
    if any(s.get("with", {}).get("command") for s in pulumi_steps(preview)):
        problems.append("pulumi/actions only installs the CLI here (a command would write or need more rights)")
    issues = wf["jobs"]["issues"]
    if "secrets." in yaml.safe_dump(issues):
        problems.append("the issue job holds no secret")
    if "always()" not in str(issues.get("if")) or "preview" not in issues.get("needs", []):
        problems.append("the issue job runs after every preview, drifted or not")
    return problems


def test_drift_guard_rails() -> None:
    assert drift_problems(load("drift.yml")) == []


def _deploy_secret(wf: Workflow) -> None:
    env = step_named(wf["jobs"]["preview"], "pulumi preview")["env"]
    env["PULUMI_ACCESS_TOKEN"] = "${{ secrets.PULUMI_ACCESS_TOKEN }}"


def _no_expectation(wf: Workflow) -> None:
    step = step_named(wf["jobs"]["preview"], "pulumi preview")
    step["run"] = step["run"].replace("--expect-no-changes", "")


def _push_only(wf: Workflow) -> None:
    wf["on"] = {"push": {"branches": ["main"]}}


def _issue_secret(wf: Workflow) -> None:
    wf["jobs"]["issues"]["steps"][-1]["env"]["CLOUDFLARE_API_TOKEN"] = "${{ secrets.DRIFT_CLOUDFLARE_API_TOKEN }}"


def _writes_in_preview(wf: Workflow) -> None:
    wf["jobs"]["preview"]["permissions"]["issues"] = "write"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_deploy_secret, "only DRIFT_* secrets"),
        (_no_expectation, "--expect-no-changes"),
        (_push_only, "schedule"),
        (_issue_secret, "holds no secret"),
        (_writes_in_preview, "writes nothing"),
    ],
    ids=["deploy_secret", "no_expectation", "push_only", "issue_secret", "writes_in_preview"],
)
def test_drift_checks_fail_on_a_broken_copy(mutate: Any, expected: str) -> None:
    wf = copy.deepcopy(load("drift.yml"))
    mutate(wf)
    assert any(expected in p for p in drift_problems(wf))


# ---- drift.yml steps, run for real -----------------------------------------------------------


def stand_ins(tmp_path: Path) -> dict[str, str]:
    """``python`` (pip a no-op, else this interpreter with the project importable), ``venv/bin/python``,
    and ``pulumi``/``gh`` that record their arguments; ``pulumi preview`` answers $PREVIEW_FILE."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then exit 0; fi\nexec {sys.executable} "$@"\n'
    (bin_dir / "python").write_text(python)
    (tmp_path / "venv" / "bin").mkdir(parents=True, exist_ok=True)
    (tmp_path / "venv" / "bin" / "python").write_text(python)
    record = 'echo "$(basename "$0") $*" >> "$CALLS"\n'
    (bin_dir / "pulumi").write_text(
        f'#!/bin/sh\n{record}if [ "$1" = preview ]; then cat "$PREVIEW_FILE"; exit "$PREVIEW_EXIT"; fi\n'
    )
    (bin_dir / "gh").write_text(f"#!/bin/sh\n{record}echo '[]'\n")
    for tool in ("python", "pulumi", "gh"):
        (bin_dir / tool).chmod(0o755)
    (tmp_path / "venv" / "bin" / "python").chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(PROJECT_DIR),
        "CALLS": str(tmp_path / "calls"),
        "RUNNER_TEMP": str(tmp_path),
    }


def test_stacks_step_lists_the_live_stacks(tmp_path: Path) -> None:
    env = stand_ins(tmp_path)
    for stack in ("staging", "production"):
        shutil.copy(PROJECT_DIR / f"Pulumi.{stack}.yaml", tmp_path)
    staging = tmp_path / "Pulumi.staging.yaml"
    staging.write_text(staging.read_text().replace("stage: staging", "stage: sunset"))
    step = step_named(load("drift.yml")["jobs"]["stacks"], "python -m components drift stacks")
    result = _run_step(step, tmp_path, {**env, "GITHUB_OUTPUT": str(tmp_path / "out")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out").read_text() == 'stacks=["production"]\n'


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_credentials_step_swaps_in_the_read_only_ones(stack: str, tmp_path: Path) -> None:
    env = stand_ins(tmp_path)
    text = (PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text()
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(text + "  service-lifecycle:kubeconfig:\n    secure: v1:abc\n")
    step = step_named(load("drift.yml")["jobs"]["preview"], "Read-only credentials")
    secrets = {"DRIFT_PULUMI_ACCESS_TOKEN": "pul-ro", "DRIFT_KUBECONFIG": "apiVersion: v1\nkind: Config",
               "DRIFT_CLOUDFLARE_API_TOKEN": "cf-ro", "REGISTRY_TOKEN": "ghs_read", "STACK": stack}  # fmt: skip
    result = _run_step(step, tmp_path, {**env, **secrets})
    assert result.returncode == 0, result.stdout + result.stderr
    made = (tmp_path / "calls").read_text().splitlines()
    assert f"pulumi config rm kubeconfig --stack {stack}" in made
    assert not any("cloudflareApiToken" in line for line in made)  # not in the stack file: nothing to remove
    # A stack that names a registry user (it builds, or its pods pull with a secret) gets the job's
    # read-only token as registryPassword; a pull-only stack reads it nowhere, so it changes nothing.
    assert f"pulumi config set --secret registryPassword ghs_read --stack {stack}" in made
    assert (tmp_path / "kubeconfig").read_text() == "apiVersion: v1\nkind: Config\n"
    assert oct((tmp_path / "kubeconfig").stat().st_mode & 0o777) == "0o600"
    missing = _run_step(step, tmp_path, {**env, **secrets, "DRIFT_CLOUDFLARE_API_TOKEN": ""})
    assert missing.returncode == 1
    assert f"environment drift-{stack} has no secret DRIFT_CLOUDFLARE_API_TOKEN" in missing.stdout


@pytest.mark.parametrize(("preview", "code", "status"), [("drift", 255, "drift"), ("clean", 0, "clean")])
def test_preview_step_writes_the_report(preview: str, code: int, status: str, tmp_path: Path) -> None:
    env = stand_ins(tmp_path)
    log = tmp_path / "answer.txt"
    clean = "Resources:\n    33 unchanged\n"
    log.write_text((PREVIEWS / "preview-drift.txt").read_text() if preview == "drift" else clean)
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\n")
    step = step_named(load("drift.yml")["jobs"]["preview"], "pulumi preview")
    extra = {"PREVIEW_FILE": str(log), "PREVIEW_EXIT": str(code), "STACK": "staging", "RUN_URL": "https://ci/run/7"}
    result = _run_step(step, tmp_path, {**env, **extra})
    assert result.returncode == 0, result.stdout + result.stderr
    made = (tmp_path / "calls").read_text()
    assert "pulumi preview --stack staging --refresh --expect-no-changes --non-interactive" in made
    report = json.loads((tmp_path / "drift-report" / "staging.json").read_text())
    assert report["status"] == status and report["run_url"] == "https://ci/run/7"
    assert not (tmp_path / "kubeconfig").exists(), "the read-only kubeconfig is removed after the preview"


def test_issues_step_syncs_every_report(tmp_path: Path) -> None:
    env = stand_ins(tmp_path)
    (tmp_path / "drift-reports").mkdir()
    for stack in ("staging", "production"):
        report = {"stack": stack, "status": "clean", "changes": [], "summary": [], "detail": "", "run_url": ""}
        (tmp_path / "drift-reports" / f"{stack}.json").write_text(json.dumps(report))
    step = step_named(load("drift.yml")["jobs"]["issues"], "python -m components drift issues")
    result = _run_step(step, tmp_path, {**env, "GH_TOKEN": "x", "GITHUB_REPOSITORY": "acme/hello"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["production: clean", "staging: clean"]


# ---- deploy.yml: attestations after staging, verification before production ------------------


def supply_chain_problems(wf: Workflow) -> list[str]:
    problems: list[str] = []
    staging = steps(wf["jobs"]["staging"])
    names = [str(s.get("name", s.get("uses", ""))) for s in staging]
    up = next(i for i, s in enumerate(staging) if s.get("id") == "up")
    attests = [i for i, s in enumerate(staging) if str(s.get("uses", "")).startswith("actions/attest@")]
    sboms = [i for i, s in enumerate(staging) if str(s.get("uses", "")).startswith("anchore/sbom-action@")]
    if len(attests) != 2 or not sboms or min(attests + sboms) < up:
        problems.append(f"staging makes an SBOM and two attestations after `pulumi up`: {names}")
    for i in attests:
        given = staging[i].get("with") or {}
        bound = given.get("subject-digest") == "${{ steps.subject.outputs.digest }}"
        if not bound or given.get("push-to-registry") is not True:
            problems.append("each attestation is bound to the deployed digest and pushed to the registry")
    if sum(1 for i in attests if (staging[i].get("with") or {}).get("sbom-path") == "sbom.spdx.json") != 1:
        problems.append("one attestation carries the SBOM the scan wrote")
    subject = str(step_named(wf["jobs"]["staging"], "Image name and digest")["env"]["IMAGE_REF"])
    if subject != "${{ steps.up.outputs.image_ref }}":
        problems.append("the attestations' subject is the image staging deployed")
    permissions = wf["jobs"]["staging"].get("permissions") or {}
    if permissions.get("id-token") != "write" or permissions.get("attestations") != "write":
        problems.append("staging signs (id-token) and stores (attestations) the attestations")
    production = steps(wf["jobs"]["production"])
    verify = [i for i, s in enumerate(production) if "verify-attestation" in str(s.get("run", ""))]
    up_prod = next(i for i, s in enumerate(production) if s.get("id") == "up")
    if not verify or verify[0] > up_prod:
        problems.append("production verifies the attestations before `pulumi up`")
    elif '--signer-workflow "$GITHUB_REPOSITORY/.github/workflows/deploy.yml"' not in production[verify[0]]["run"]:
        problems.append("the expected signer is this repository's deploy.yml")
    return problems


def test_supply_chain_guard_rails() -> None:
    assert supply_chain_problems(load("deploy.yml")) == []


def _verify_after_up(wf: Workflow) -> None:
    production = wf["jobs"]["production"]["steps"]
    index = next(i for i, s in enumerate(production) if "verify-attestation" in str(s.get("run", "")))
    production.append(production.pop(index))


def _no_push(wf: Workflow) -> None:
    next(s for s in wf["jobs"]["staging"]["steps"] if "sbom-path" in s.get("with", {}))["with"].pop("push-to-registry")


def _no_sbom(wf: Workflow) -> None:
    next(s for s in wf["jobs"]["staging"]["steps"] if "sbom-path" in s.get("with", {}))["with"].pop("sbom-path")


def _other_signer(wf: Workflow) -> None:
    step = next(s for s in wf["jobs"]["production"]["steps"] if "verify-attestation" in str(s.get("run", "")))
    step["run"] = step["run"].replace("deploy.yml", "pull-request.yml")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_verify_after_up, "before `pulumi up`"),
        (_no_push, "pushed to the registry"),
        (_no_sbom, "carries the SBOM"),
        (_other_signer, "deploy.yml"),
    ],
    ids=["verify_after_up", "no_push", "no_sbom", "other_signer"],
)
def test_supply_chain_checks_fail_on_a_broken_copy(mutate: Any, expected: str) -> None:
    wf = copy.deepcopy(load("deploy.yml"))
    mutate(wf)
    assert any(expected in p for p in supply_chain_problems(wf))


def test_subject_step_splits_the_reference_and_refuses_other_registries(tmp_path: Path) -> None:
    env = stand_ins(tmp_path)
    (tmp_path / "bin" / "docker").write_text('#!/bin/sh\necho "docker $* $(cat)" >> "$CALLS"\n')
    (tmp_path / "bin" / "docker").chmod(0o755)
    step = step_named(load("deploy.yml")["jobs"]["staging"], "Image name and digest")
    extra = {"GITHUB_OUTPUT": str(tmp_path / "out"), "REGISTRY_TOKEN": "ghs_x", "GITHUB_ACTOR": "ci"}
    result = _run_step(step, tmp_path, {**env, **extra, "IMAGE_REF": VALIDATED})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "out").read_text() == f"name=ghcr.io/example-org/hello\ndigest=sha256:{DIGEST}\n"
    assert "docker login ghcr.io --username ci --password-stdin ghs_x" in (tmp_path / "calls").read_text()
    ecr_ref = f"1.dkr.ecr.eu-west-1.amazonaws.com/h@sha256:{DIGEST}"
    ecr = _run_step(step, tmp_path, {**env, **extra, "IMAGE_REF": ecr_ref})
    assert ecr.returncode == 1 and "log in to 1.dkr.ecr.eu-west-1.amazonaws.com here" in ecr.stdout


@pytest.mark.parametrize(("pinned", "code"), [("", 0), ("sha256:" + "b" * 64, 1)], ids=["validated", "rollback_pin"])
def test_verification_step_runs_the_command_on_the_digest_to_promote(pinned: str, code: int, tmp_path: Path) -> None:
    """The step runs ``verify-attestation`` for real against a ``gh`` that prints the fixtures
    (tests/unit/attestations): they attest the validated digest, so a rollback to another digest
    without attestations of its own is refused."""
    env = stand_ins(tmp_path)
    answers = {
        "https://slsa.dev/provenance/v1": (ATTESTATIONS / "gh-verify-provenance.json").read_text(),
        "https://spdx.dev/Document/v2.3": (ATTESTATIONS / "gh-verify-sbom.json").read_text(),
    }
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    (tmp_path / "bin" / "gh").write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "open(os.environ['CALLS'], 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        f"answers = json.load(open({str(tmp_path / 'answers.json')!r}))\n"
        "print(answers[sys.argv[sys.argv.index('--predicate-type') + 1]])\n"
    )
    (tmp_path / "bin" / "docker").write_text("#!/bin/sh\ncat > /dev/null\n")
    (tmp_path / "bin" / "docker").chmod(0o755)
    step = step_named(load("deploy.yml")["jobs"]["production"], "Verify the SBOM and provenance attestations")
    extra = {"GH_TOKEN": "x", "VALIDATED": VALIDATED, "PINNED": pinned,
             "GITHUB_REPOSITORY": "example-org/service-lifecycle", "GITHUB_ACTOR": "ci"}  # fmt: skip
    result = _run_step(step, tmp_path, {**env, **extra})
    assert result.returncode == code, result.stdout + result.stderr
    made = (tmp_path / "calls").read_text()
    promoted = f"ghcr.io/example-org/hello@{pinned}" if pinned else VALIDATED
    assert f"attestation verify oci://{promoted} --repo example-org/service-lifecycle" in made
    assert "--signer-workflow example-org/service-lifecycle/.github/workflows/deploy.yml" in made
    if code:
        assert f"not the promoted {pinned}" in result.stderr

"""``python -m components verify-attestation``: the check production runs before ``pulumi up``.

The GitHub CLI is replaced by a script that records its arguments and prints locally made output
shaped like ``gh attestation verify --format json`` (tests/unit/attestations/README.md names the
sources of each field). The refusals are the point: each guard has a test that makes it fire.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.commands import attest, cli

FIXTURES = Path(__file__).parent / "attestations"
REPO = "example-org/service-lifecycle"
WORKFLOW = f"{REPO}/.github/workflows/deploy.yml"
DIGEST = "0cbdde0bc3ffc2b850ce5c53f63ca228c7bdc69062275c105f40edfd7b5fc825"
IMAGE = f"ghcr.io/example-org/hello@sha256:{DIGEST}"
SBOM = "https://spdx.dev/Document/v2.3"

FAKE_GH = """\
import json, os, sys
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
answers = json.load(open(os.environ["FAKE_GH_ANSWERS"]))
answer = answers[sys.argv[sys.argv.index("--predicate-type") + 1]]
sys.stdout.write(answer.get("stdout", ""))
sys.stderr.write(answer.get("stderr", ""))
sys.exit(answer.get("exit", 0))
"""


def fixture(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((FIXTURES / f"gh-verify-{name}.json").read_text())
    return entries


def ok(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"stdout": json.dumps(entries), "exit": 0}


# The CLI's own refusal when the digest has no attestation (cli/cli verify.go, runVerify).
NO_ATTESTATION = {
    "stderr": f"✗ No attestations found for subject sha256:{DIGEST}\n\nError: no attestations found\n",
    "exit": 1,
}


@pytest.fixture
def fake_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[list[str]]]:
    """Put a ``gh`` on PATH that answers per predicate type; return a function reading its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "gh"
    script.write_text(f"#!{sys.executable}\n{FAKE_GH}")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_GH_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_GH_ANSWERS", str(tmp_path / "answers.json"))

    def answer(provenance: dict[str, Any] | None = None, sbom: dict[str, Any] | None = None) -> list[list[str]]:
        answers = {
            attest.PROVENANCE: provenance or ok(fixture("provenance")),
            SBOM: sbom or ok(fixture("sbom")),
        }
        (tmp_path / "answers.json").write_text(json.dumps(answers))
        return []

    answer()
    return answer


def calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def run(*extra: str, image: str = IMAGE) -> int:
    return cli.main(["verify-attestation", "--image", image, "--repo", REPO, "--signer-workflow", WORKFLOW, *extra])


def test_valid_attestations_pass_with_the_documented_calls(
    fake_gh: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The call is the documented one (cli/cli ``pkg/cmd/attestation/verify/verify.go``, ``NewVerifyCmd``:
    ``oci://<image-uri>``, ``--repo``, ``--signer-workflow``, ``--predicate-type``, ``--format json``)."""
    assert run() == 0
    common = ["attestation", "verify", f"oci://{IMAGE}", "--repo", REPO, "--signer-workflow", WORKFLOW]
    assert calls(tmp_path) == [
        [*common, "--predicate-type", "https://slsa.dev/provenance/v1", "--format", "json"],
        [*common, "--predicate-type", SBOM, "--format", "json"],
    ]
    out = capsys.readouterr().out
    signer = f"https://github.com/{WORKFLOW}@refs/heads/main"
    assert f"verified https://slsa.dev/provenance/v1 for {IMAGE}, signed by {signer}" in out
    assert f"verified {SBOM} for {IMAGE}" in out


def test_wrong_digest_is_refused(fake_gh: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    other = "f" * 64
    assert run(image=f"ghcr.io/example-org/hello@sha256:{other}") == 1
    err = capsys.readouterr().err
    assert f"refusing to promote ghcr.io/example-org/hello@sha256:{other}" in err
    assert f"the attestation is for sha256:{DIGEST}, not the promoted sha256:{other}" in err


def mutated(name: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    entries = copy.deepcopy(fixture(name))
    change(entries[0]["verificationResult"])
    return ok(entries)


def set_path(*path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(result: dict[str, Any]) -> None:
        node = result
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


PROVENANCE_WORKFLOW = ("statement", "predicate", "buildDefinition", "externalParameters", "workflow")
PR_WORKFLOW_SAN = f"https://github.com/{REPO}/.github/workflows/pull-request.yml@refs/heads/main"
IDENTITY_CASES = {
    "other_workflow": (
        set_path("signature", "certificate", "subjectAlternativeName", value=PR_WORKFLOW_SAN),
        f"signed by '{PR_WORKFLOW_SAN}', expected the workflow identity",
    ),
    "other_ref": (
        set_path(
            "signature", "certificate", "subjectAlternativeName", value=f"https://github.com/{WORKFLOW}@refs/heads/dev"
        ),
        "@refs/heads/dev', expected the workflow identity",
    ),
    "fork_source": (
        set_path("signature", "certificate", "sourceRepositoryURI", value="https://github.com/fork/service-lifecycle"),
        "built from 'https://github.com/fork/service-lifecycle', expected https://github.com/example-org/service-lifecycle",
    ),
    "other_issuer": (
        set_path("signature", "certificate", "issuer", value="https://accounts.google.com"),
        "certificate issuer 'https://accounts.google.com'",
    ),
    "provenance_path": (
        set_path(*PROVENANCE_WORKFLOW, "path", value=".github/workflows/sunset.yml"),
        "workflow.path is '.github/workflows/sunset.yml', expected '.github/workflows/deploy.yml'",
    ),
    "provenance_repository": (
        set_path(*PROVENANCE_WORKFLOW, "repository", value="https://github.com/other/repo"),
        "workflow.repository is 'https://github.com/other/repo'",
    ),
    "predicate_type": (
        set_path("statement", "predicateType", value="https://slsa.dev/provenance/v0.2"),
        "predicate type 'https://slsa.dev/provenance/v0.2', expected 'https://slsa.dev/provenance/v1'",
    ),
}


@pytest.mark.parametrize("case", sorted(IDENTITY_CASES))
def test_wrong_identity_is_refused(case: str, fake_gh: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    """``gh`` matches the certificate's SAN against a prefix regex only (cli/cli ``verify/policy.go``,
    ``validateSignerWorkflow``: ``^https://<host>/<workflow>``), so the exact identity is checked here."""
    change, message = IDENTITY_CASES[case]
    fake_gh(provenance=mutated("provenance", change))
    assert run() == 1
    err = capsys.readouterr().err
    assert "refusing to promote" in err and message in err


def test_missing_attestation_is_refused(
    fake_gh: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_gh(provenance=NO_ATTESTATION)
    assert run() == 1
    err = capsys.readouterr().err
    assert "no valid provenance attestation (https://slsa.dev/provenance/v1)" in err
    assert "exited 1" in err and "No attestations found for subject" in err
    assert len(calls(tmp_path)) == 1  # stops at the first refusal


def test_missing_sbom_is_refused(fake_gh: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    fake_gh(sbom=NO_ATTESTATION)
    assert run() == 1
    assert f"no valid SBOM attestation ({SBOM})" in capsys.readouterr().err


def test_an_sbom_of_another_image_is_refused(fake_gh: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    other_subject = [{"name": "x", "digest": {"sha256": "e" * 64}}]
    fake_gh(sbom=mutated("sbom", set_path("statement", "subject", value=other_subject)))
    assert run() == 1
    assert f"not the promoted sha256:{DIGEST}" in capsys.readouterr().err


def test_an_empty_answer_is_refused(fake_gh: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    fake_gh(sbom=ok([]))
    assert run() == 1
    assert f"no SBOM attestation ({SBOM})" in capsys.readouterr().err


def test_one_valid_attestation_among_others_is_enough(fake_gh: Callable[..., Any]) -> None:
    stale = mutated("provenance", set_path("statement", "subject", value=[{"digest": {"sha256": "e" * 64}}]))
    fake_gh(provenance=ok([*json.loads(stale["stdout"]), *fixture("provenance")]))
    assert run() == 0


@pytest.mark.parametrize(
    "answer",
    [
        {"stderr": "error getting trust domain, make sure you are authenticated against the host\n", "exit": 1},
        {"stdout": "✓ Verification succeeded!\n", "exit": 0},
    ],
    ids=["cli_exits_nonzero", "cli_prints_no_json"],
)
def test_cli_errors_are_refused(
    answer: dict[str, Any], fake_gh: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_gh(provenance=answer)
    assert run() == 1
    err = capsys.readouterr().err
    assert "refusing to promote" in err
    assert "make sure you are authenticated" in err or "printed no JSON" in err


def test_missing_cli_stops_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run() == 1
    assert "the GitHub CLI (gh) is not installed or not on PATH" in capsys.readouterr().err
    assert run("--gh", str(tmp_path / "gh")) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image", "ghcr.io/example-org/hello:1.0.0"], "--image: got 'ghcr.io/example-org/hello:1.0.0'"),
        (["--repo", "example-org"], "--repo: got 'example-org'; expected owner/name"),
        (["--signer-workflow", "other/repo/.github/workflows/deploy.yml"], "--signer-workflow: got"),
        (["--ref", "main"], "--ref: got 'main'; expected a full git ref"),
        (["--sbom-predicate-type", "https://example.com/sbom"], "--sbom-predicate-type: got"),
    ],
    ids=["tag_not_digest", "repo_without_owner", "workflow_of_another_repo", "short_ref", "unknown_sbom_type"],
)
def test_bad_arguments_are_refused_before_any_call(
    args: list[str], message: str, fake_gh: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = {"--image": IMAGE, "--repo": REPO, "--signer-workflow": WORKFLOW}
    extra = dict(zip(args[::2], args[1::2], strict=True))
    argv = [item for key, value in {**base, **extra}.items() for item in (key, value)]
    assert cli.main(["verify-attestation", *argv]) == 2
    assert message in capsys.readouterr().err
    assert calls(tmp_path) == []


def test_bundles_can_come_from_the_registry(fake_gh: Callable[..., Any], tmp_path: Path) -> None:
    assert run("--bundle-from-oci") == 0
    assert all(call[-1] == "--bundle-from-oci" for call in calls(tmp_path))

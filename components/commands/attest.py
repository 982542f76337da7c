"""Verify an image's provenance and SBOM attestations before promotion: ``python -m components verify-attestation``.

``python -m components verify-attestation --image REPO@sha256:D --repo OWNER/NAME
--signer-workflow OWNER/NAME/.github/workflows/deploy.yml [--ref refs/heads/main]``

Wraps the GitHub CLI's documented check, once per required predicate type::

    gh attestation verify oci://REPO@sha256:D --repo OWNER/NAME \\
        --signer-workflow OWNER/NAME/.github/workflows/deploy.yml --predicate-type TYPE --format json

``gh`` checks the Sigstore bundle (signature, certificate chain, transparency log) and that the
signing certificate's subject alternative name starts with the workflow. Its JSON result (one
entry per verified attestation: ``attestation.bundle`` and ``verificationResult`` with the in-toto
``statement`` and the ``signature.certificate`` summary; cli/cli
``pkg/cmd/attestation/verification/sigstore.go`` ``AttestationProcessingResult``, sigstore-go
``pkg/verify/signed_entity.go`` ``VerificationResult``) is then checked again here, exactly:

* a subject of the statement has the digest being promoted;
* the certificate's subject alternative name is ``https://github.com/<workflow>@<ref>``, its OIDC
  issuer GitHub Actions', its source repository the expected one (``gh`` matches only a prefix);
* the provenance (``https://slsa.dev/provenance/v1``) names the same repository, workflow path and
  ref in ``buildDefinition.externalParameters.workflow``;
* an SBOM attestation (SPDX or CycloneDX, as ``actions/attest`` types it) exists for the digest.

Exit 0 when both attestations pass; 1 with the reason otherwise (the deploy then stops before
``pulumi up``); 2 on bad arguments. Without ``gh`` it stops with exit 1 and says so.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from components.refs import DIGEST_REF

PROVENANCE: Final = "https://slsa.dev/provenance/v1"
"""What ``actions/attest`` (and ``attest-build-provenance``) sign by default."""
SPDX_PREFIX: Final = "https://spdx.dev/Document/"
CYCLONEDX: Final = "https://cyclonedx.org/bom"
DEFAULT_SBOM_TYPE: Final = "https://spdx.dev/Document/v2.3"
"""actions/attest ``src/sbom.ts`` types an SPDX SBOM ``https://spdx.dev/Document/v<spdxVersion>``; syft writes 2.3."""
GITHUB_ISSUER: Final = "https://token.actions.githubusercontent.com"
"""The OIDC issuer of GitHub Actions' tokens (cli/cli ``verification.GitHubOIDCIssuer``)."""

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class AttestationError(Exception):
    """The image may not be promoted; the message says why."""


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What a valid attestation of the promoted image must say."""

    image: str
    """``<repository>@sha256:<digest>``: the exact image production is about to run."""
    repo: str
    """``owner/name`` of the repository whose workflow built the image."""
    workflow: str
    """``owner/name/.github/workflows/<file>``: the workflow that signed."""
    ref: str = "refs/heads/main"
    """The git ref that workflow ran on."""
    sbom_type: str = DEFAULT_SBOM_TYPE
    """Predicate type of the SBOM attestation."""

    @property
    def digest(self) -> str:
        return self.image.rsplit("@sha256:", 1)[1]

    @property
    def workflow_path(self) -> str:
        return self.workflow.removeprefix(f"{self.repo}/")

    @property
    def san(self) -> str:
        return f"https://github.com/{self.workflow}@{self.ref}"


@dataclass(frozen=True)
class Verified:
    """One attestation that passed every check."""

    predicate_type: str
    signer: str


def check_arguments(expected: Expected) -> None:
    """Bad input is refused before any call, naming the option, the value and what is expected."""
    if not DIGEST_REF.match(expected.image):
        raise AttestationError(f"--image: got {expected.image!r}; expected <repository>@sha256:<64 hex digits>")
    if expected.repo.count("/") != 1 or not all(expected.repo.split("/")):
        raise AttestationError(f"--repo: got {expected.repo!r}; expected owner/name")
    if not expected.workflow.startswith(f"{expected.repo}/.github/workflows/"):
        raise AttestationError(
            f"--signer-workflow: got {expected.workflow!r}; expected {expected.repo}/.github/workflows/<file>.yml"
        )
    if not expected.ref.startswith("refs/"):
        raise AttestationError(f"--ref: got {expected.ref!r}; expected a full git ref such as refs/heads/main")
    if not expected.sbom_type.startswith((SPDX_PREFIX, CYCLONEDX)):
        raise AttestationError(
            f"--sbom-predicate-type: got {expected.sbom_type!r}; expected {SPDX_PREFIX}v<version> or {CYCLONEDX}"
        )


def gh_command(expected: Expected, predicate_type: str, *, bundle_from_oci: bool) -> list[str]:
    """The documented call (``gh attestation verify --help``), for one predicate type."""
    command = ["attestation", "verify", f"oci://{expected.image}", "--repo", expected.repo]
    command += ["--signer-workflow", expected.workflow, "--predicate-type", predicate_type, "--format", "json"]
    return command + (["--bundle-from-oci"] if bundle_from_oci else [])


def run_gh(gh: str | None) -> Runner:
    """A runner for ``gh``; stops with a clear message when the GitHub CLI is not installed."""
    found = gh or shutil.which("gh")
    if found is None or shutil.which(found) is None:
        raise AttestationError(
            "the GitHub CLI (gh) is not installed or not on PATH: it is what verifies the attestations "
            "(GitHub-hosted runners have it; elsewhere see https://cli.github.com)"
        )

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([found, *args], capture_output=True, text=True, timeout=300, check=False)

    return run


def _field(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def check_result(entry: Any, expected: Expected, predicate_type: str) -> Verified:
    """Check one entry of ``gh attestation verify --format json`` against ``expected``; raise on the first gap."""
    result = _field(entry, "verificationResult")
    statement = _field(result, "statement")
    certificate = _field(result, "signature", "certificate")
    if not isinstance(statement, dict) or not isinstance(certificate, dict):
        raise AttestationError("the result has no verificationResult.statement or signature.certificate")
    subjects = statement.get("subject") or []
    digests = [_field(s, "digest", "sha256") for s in subjects]
    if expected.digest not in digests:
        shown = ", ".join(f"sha256:{d}" for d in digests) or "none"
        raise AttestationError(f"the attestation is for {shown}, not the promoted sha256:{expected.digest}")
    actual_type = str(statement.get("predicateType"))
    if actual_type != predicate_type:
        raise AttestationError(f"predicate type {actual_type!r}, expected {predicate_type!r}")
    san = certificate.get("subjectAlternativeName")
    if san != expected.san:
        raise AttestationError(f"signed by {san!r}, expected the workflow identity {expected.san!r}")
    if certificate.get("issuer") != GITHUB_ISSUER:
        raise AttestationError(f"certificate issuer {certificate.get('issuer')!r}, expected {GITHUB_ISSUER!r}")
    source = certificate.get("sourceRepositoryURI")
    if source != f"https://github.com/{expected.repo}":
        raise AttestationError(f"built from {source!r}, expected https://github.com/{expected.repo}")
    if predicate_type == PROVENANCE:
        _check_provenance(statement, expected)
    return Verified(predicate_type=actual_type, signer=str(san))


def _check_provenance(statement: dict[str, Any], expected: Expected) -> None:
    workflow = _field(statement, "predicate", "buildDefinition", "externalParameters", "workflow")
    wanted = {
        "repository": f"https://github.com/{expected.repo}",
        "path": expected.workflow_path,
        "ref": expected.ref,
    }
    for key, value in wanted.items():
        got = _field(workflow, key)
        if got != value:
            raise AttestationError(
                f"provenance buildDefinition.externalParameters.workflow.{key} is {got!r}, expected {value!r}"
            )


def verify(expected: Expected, run: Runner, *, bundle_from_oci: bool = False) -> list[Verified]:
    """Both attestations of ``expected.image``, or :class:`AttestationError` saying which is missing or wrong."""
    check_arguments(expected)
    verified: list[Verified] = []
    for kind, predicate_type in (("provenance", PROVENANCE), ("SBOM", expected.sbom_type)):
        done = run(gh_command(expected, predicate_type, bundle_from_oci=bundle_from_oci))
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise AttestationError(
                f"no valid {kind} attestation ({predicate_type}) for {expected.image}: gh attestation verify "
                f"exited {done.returncode}: {' / '.join(line.strip() for line in detail[-3:]) or 'no output'}"
            )
        try:
            entries = json.loads(done.stdout)
        except json.JSONDecodeError as error:
            raise AttestationError(f"gh attestation verify printed no JSON for the {kind} check: {error}") from error
        if not isinstance(entries, list) or not entries:
            raise AttestationError(f"no {kind} attestation ({predicate_type}) for {expected.image}")
        problems: list[str] = []
        for entry in entries:
            try:
                verified.append(check_result(entry, expected, predicate_type))
                break
            except AttestationError as problem:
                problems.append(str(problem))
        else:
            raise AttestationError(f"no {kind} attestation passes: " + "; ".join(problems))
    return verified


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components verify-attestation",
        description="Refuse to promote an image without a valid provenance and SBOM attestation.",
    )
    parser.add_argument("--image", required=True, help="<repository>@sha256:<digest> about to be promoted")
    parser.add_argument("--repo", required=True, help="owner/name of the repository that built it")
    parser.add_argument("--signer-workflow", required=True, help="owner/name/.github/workflows/<file>.yml")
    parser.add_argument("--ref", default="refs/heads/main", help="git ref the signing workflow ran on")
    parser.add_argument("--sbom-predicate-type", default=DEFAULT_SBOM_TYPE, help="predicate type of the SBOM")
    parser.add_argument("--bundle-from-oci", action="store_true", help="read the bundles from the registry")
    parser.add_argument("--gh", help="path of the gh binary (default: gh on PATH)")
    args = parser.parse_args(list(argv))
    expected = Expected(
        image=args.image,
        repo=args.repo,
        workflow=args.signer_workflow,
        ref=args.ref,
        sbom_type=args.sbom_predicate_type,
    )
    try:
        check_arguments(expected)
    except AttestationError as error:
        print(f"verify-attestation: {error}", file=sys.stderr)
        return 2
    try:
        verified = verify(expected, run_gh(args.gh), bundle_from_oci=args.bundle_from_oci)
    except AttestationError as error:
        print(f"refusing to promote {args.image}: {error}", file=sys.stderr)
        return 1
    for item in verified:
        print(f"verified {item.predicate_type} for {args.image}, signed by {item.signer}")
    return 0

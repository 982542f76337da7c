"""``python -m components drift``: live stacks, preview classification, one issue per stack.

The GitHub CLI is a script that records its arguments and answers ``gh issue list`` from a file,
so the open/update/close decisions are checked without GitHub (``gh issue list --json number,title``
prints a JSON array of the requested fields: cli/cli ``pkg/cmd/issue/list/list.go``, ``--json``).
The preview outputs are made locally in the Pulumi CLI's shapes (tests/unit/drift/README.md).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.commands import cli, drift

PROJECT_DIR = Path(__file__).resolve().parents[2]
PREVIEWS = Path(__file__).parent / "drift"
REPO = "example-org/service-lifecycle"

FAKE_GH = """\
import json, os, sys
with open(os.environ["FAKE_GH_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:3] == ["issue", "list"]:
    sys.stdout.write(open(os.environ["FAKE_GH_ISSUES"]).read())
elif sys.argv[1:3] == ["issue", "create"]:
    print("https://github.com/example-org/service-lifecycle/issues/77")
sys.exit(int(os.environ.get("FAKE_GH_EXIT", "0")))
"""


@pytest.fixture
def gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[list[dict[str, Any]]], None]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(f"#!{sys.executable}\n{FAKE_GH}")
    (bin_dir / "gh").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_GH_LOG", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_GH_ISSUES", str(tmp_path / "issues.json"))

    def open_issues(issues: list[dict[str, Any]]) -> None:
        (tmp_path / "issues.json").write_text(json.dumps(issues))

    open_issues([])
    return open_issues


def calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def write_report(folder: Path, stack: str, status: str, log: str = "") -> None:
    report = drift.classify(stack, {"clean": 0, "drift": 255, "error": 255}[status], log, "https://ci/run/1")
    assert report.status == status
    folder.mkdir(exist_ok=True)
    (folder / f"{stack}.json").write_text(json.dumps(report.__dict__))


# ---- stacks ----------------------------------------------------------------------------------


def test_live_stacks_are_the_committed_ones_not_sunset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert drift.live_stacks(PROJECT_DIR) == ["production", "staging"]
    for stack in ("staging", "production"):
        shutil.copy(PROJECT_DIR / f"Pulumi.{stack}.yaml", tmp_path)
    sunset = tmp_path / "Pulumi.production.yaml"
    sunset.write_text(sunset.read_text().replace("stage: production", "stage: sunset"))
    assert cli.main(["drift", "stacks", "--project-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == ["staging"]


def test_live_stacks_read_the_program_s_own_stage_key(tmp_path: Path) -> None:
    """A program named acme keeps its stage under acme:stage (or the bare key, which Pulumi reads as
    the project's): drift reads the key the sunset edits (components/commands/stage_file.py)."""
    (tmp_path / "Pulumi.yaml").write_text("name: acme\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  acme:stage: staging\n")
    (tmp_path / "Pulumi.old.yaml").write_text("config:\n  stage: sunset\n")
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  acme:stage: production\n")
    assert drift.live_stacks(tmp_path) == ["dev", "prod"]
    (tmp_path / "Pulumi.qa.yaml").write_text("config:\n  service-lifecycle:stage: staging\n")
    with pytest.raises(drift.DriftError, match=r"Pulumi\.qa\.yaml: acme:stage is None; expected one of"):
        drift.live_stacks(tmp_path)


def test_a_bad_stage_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Pulumi.qa.yaml").write_text("config:\n  service-lifecycle:stage: retired\n")
    assert cli.main(["drift", "stacks", "--project-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "Pulumi.qa.yaml: service-lifecycle:stage is 'retired'; expected one of staging, production, sunset" in err


# ---- classify --------------------------------------------------------------------------------


def test_drift_is_recognised_with_its_changes_and_summary() -> None:
    report = drift.classify("staging", 255, (PREVIEWS / "preview-drift.txt").read_text(), "https://ci/run/1")
    assert report.status == "drift"
    assert report.changes == [
        "~ update kubernetes:apps/v1:Deployment hello-workload-deployment",
        "+- replace cloudflare:index:DnsRecord hello-exposure-dns-hello-staging.example.com",
    ]
    assert report.summary == ["Resources:", "    ~ 1 to update", "    +-1 to replace", "    2 changes. 31 unchanged"]


# What the real 3.276 CLI printed in the lifecycle run's drift job (engine/lifecycle_checks.py, step 10):
# the read-only kubeconfig in place of the stack's changes the kubernetes provider's inputs.
PROVIDER_ONLY = """\
 ~  pulumi:providers:kubernetes hello-k8s refreshing
 ~  pulumi:providers:kubernetes hello-k8s refresh
 ~  pulumi:providers:kubernetes hello-k8s update [diff: ~kubeconfig]
    pulumi:pulumi:Stack service-lifecycle-staging

Resources:
    ~ 1 to update
    38 unchanged

error: no changes were expected for preview but changes were proposed
"""


def test_the_job_s_own_credentials_are_not_drift() -> None:
    """Found by the real engine: every drift run reported the provider its read-only kubeconfig updates."""
    assert drift.classify("staging", 255, PROVIDER_ONLY).status == "clean"


def test_a_resource_change_beside_the_provider_s_is_drift_without_the_provider() -> None:
    log = PROVIDER_ONLY.replace(
        "    pulumi:pulumi:Stack",
        " ~  kubernetes:core/v1:Namespace hello-env-namespace update [diff: ~metadata]\n    pulumi:pulumi:Stack",
    )
    report = drift.classify("staging", 255, log)
    assert report.status == "drift"
    assert report.changes == ["~ update kubernetes:core/v1:Namespace hello-env-namespace"]


def test_the_operation_form_of_the_refusal_is_drift_too() -> None:
    log = "Resources:\n    ~ 1 to update\n\nerror: no changes were expected for preview but changes were proposed\n"
    assert drift.classify("staging", 255, log).status == "drift"


@pytest.mark.parametrize(
    "log",
    [
        "error: failed to load kubeconfig: open /tmp/kubeconfig: no such file or directory\n",
        "error: [403] Forbidden: this token cannot read stack example-org/service-lifecycle/staging\n",
        "",
    ],
    ids=["kubeconfig_missing", "token_forbidden", "no_output"],
)
def test_other_failures_are_errors_not_drift(log: str, tmp_path: Path) -> None:
    (tmp_path / "preview.txt").write_text(log)
    argv = ["drift", "classify", "--stack", "staging", "--exit-code", "255", "--log", str(tmp_path / "preview.txt")]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 1
    assert json.loads((tmp_path / "out" / "staging.json").read_text())["status"] == "error"


def test_a_clean_preview_is_clean(tmp_path: Path) -> None:
    (tmp_path / "preview.txt").write_text("Resources:\n    33 unchanged\n")
    argv = ["drift", "classify", "--stack", "production", "--exit-code", "0", "--log", str(tmp_path / "preview.txt")]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "production.json").read_text())["status"] == "clean"


# ---- issues ----------------------------------------------------------------------------------


def test_first_drift_opens_one_labelled_issue(gh: Callable[..., None], tmp_path: Path) -> None:
    write_report(tmp_path / "reports", "staging", "drift", (PREVIEWS / "preview-drift.txt").read_text())
    body_seen: list[str] = []
    real_unlink = Path.unlink

    def keep_body(path: Path, missing_ok: bool = False) -> None:
        body_seen.append(path.read_text())
        real_unlink(path, missing_ok=missing_ok)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "unlink", keep_body)
        assert cli.main(["drift", "issues", "--reports", str(tmp_path / "reports"), "--repo", REPO]) == 0
    made = calls(tmp_path)
    assert made[0][:2] == ["issue", "list"] and made[0][4:6] == ["--label", "drift"]
    assert made[1][:3] == ["label", "create", "drift"]
    assert made[2][:2] == ["issue", "create"] and made[2][made[2].index("--title") + 1] == "drift: stack staging"
    assert len(made) == 3
    [body] = body_seen
    assert body.startswith("<!-- service-lifecycle:drift:staging -->")
    assert "| `~` | update | `kubernetes:apps/v1:Deployment` | `hello-workload-deployment` |" in body
    assert "    ~ 1 to update" in body and "https://ci/run/1" in body


def test_later_drift_updates_the_same_issue(gh: Callable[..., None], tmp_path: Path) -> None:
    # The search is fuzzy: another stack's issue may come back too, and only the exact title counts.
    gh([{"number": 12, "title": "drift: stack staging-eu"}, {"number": 9, "title": "drift: stack staging"}])
    write_report(tmp_path / "reports", "staging", "drift", (PREVIEWS / "preview-drift.txt").read_text())
    assert cli.main(["drift", "issues", "--reports", str(tmp_path / "reports"), "--repo", REPO]) == 0
    made = calls(tmp_path)
    assert [c[:3] for c in made] == [["issue", "list", "--repo"], ["issue", "edit", "9"]]
    assert not any(c[:2] == ["issue", "create"] for c in made)


def test_a_clean_stack_closes_its_issue(
    gh: Callable[..., None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gh([{"number": 9, "title": "drift: stack staging"}])
    write_report(tmp_path / "reports", "staging", "clean")
    assert cli.main(["drift", "issues", "--reports", str(tmp_path / "reports"), "--repo", REPO]) == 0
    close = calls(tmp_path)[-1]
    assert close[:3] == ["issue", "close", "9"] and "Clean again" in close[close.index("--comment") + 1]
    assert "staging: clean, closed #9" in capsys.readouterr().out


def test_clean_without_an_issue_and_errors_touch_nothing(gh: Callable[..., None], tmp_path: Path) -> None:
    gh([{"number": 9, "title": "drift: stack production"}])
    write_report(tmp_path / "reports", "staging", "clean")
    write_report(tmp_path / "reports", "production", "error", "error: forbidden\n")
    assert cli.main(["drift", "issues", "--reports", str(tmp_path / "reports"), "--repo", REPO]) == 0
    made = calls(tmp_path)
    assert [c[:2] for c in made] == [["issue", "list"]]  # staging's lookup only; production's issue stays open


def test_gh_failures_and_absence_are_reported(gh: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    write_report(tmp_path / "reports", "staging", "clean")
    argv = ["drift", "issues", "--reports", str(tmp_path / "reports"), "--repo", REPO]
    monkeypatch.setenv("FAKE_GH_EXIT", "1")
    assert cli.main(argv) == 1
    assert "gh issue list failed (1)" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert cli.main(argv) == 1
    assert "the GitHub CLI (gh) is not installed" in capsys.readouterr().err
    empty = ["drift", "issues", "--reports", str(tmp_path / "empty"), "--repo", REPO, "--gh", sys.executable]
    assert cli.main(empty) == 1
    assert "--reports: no <stack>.json in" in capsys.readouterr().err


def test_a_huge_preview_stays_under_githubs_body_limit() -> None:
    log = "x" * 200_000 + "\nerror: no changes were expected but changes were proposed\n"
    report = drift.classify("staging", 255, log)
    report.changes = [f"~ update kubernetes:core/v1:ConfigMap cm{i}" for i in range(300)]
    assert len(drift.issue_body(report)) < 65_536

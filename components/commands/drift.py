"""Drift detection for the live stacks: ``python -m components drift <stacks|classify|issues>``.

The drift workflow (``.github/workflows/drift.yml``) runs, per live stack,
``pulumi preview --refresh --expect-no-changes`` with read-only credentials and hands the result
to these three steps:

``stacks``
    Prints the JSON list of live stacks: every committed ``Pulumi.<stack>.yaml`` whose
    ``<project>:stage`` is not ``sunset`` (a sunset stack has nothing left to drift).
``classify --stack S --exit-code N --log FILE --out DIR [--run-url URL]``
    Reads the preview's output and writes ``DIR/<stack>.json``: ``clean`` (exit 0), ``drift``
    (the CLI's own "no changes were expected … but changes were proposed", pulumi/pulumi
    ``pkg/backend/backenderr/backenderr.go`` ``NoChangesExpectedError``) with the changed
    resources and the ``Resources:`` summary, or ``error`` (anything else). Exit 1 on ``error``.
``issues --reports DIR --repo OWNER/NAME``
    One issue per stack, found by the ``drift`` label and its title ``drift: stack <S>``: opened
    on the first drift, its body replaced on later ones (never a second issue), closed with a
    comment when the stack is clean again. An ``error`` report leaves the issue as it is.
    Uses the GitHub CLI (``gh issue list|create|edit|close``); stops with a clear message without it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from components.commands.stage_file import read_stage, stage_key
from components.config.stack_config import stack_files
from components.lifecycle import Stage, parts_for

LABEL: Final = "drift"
"""The label every drift issue carries; with the title, how the workflow finds a stack's issue."""
MAX_BODY: Final = 60_000
"""GitHub refuses issue bodies above 65,536 characters."""
PROVIDER_TYPE: Final = "pulumi:providers:"
NO_CHANGES_EXPECTED: Final = re.compile(r"no changes were expected (?:for \S+ )?but changes were proposed")
# A step line of the preview's resource table: the op's prefix (pulumi/pulumi
# sdk/go/common/display, StepOp.RawPrefix: "+ ", "- ", "~ ", "+-", "++", "--", ">-", ...), the
# tree drawing, then type, name and plan.
_STEP = re.compile(r"^\s*(\+-|\+\+|--|>-|>~|=>|<-|<<|[+\-~=])\s+[│├└─\s]*(\S+:\S+)\s+(\S+)\s+(\S+)")

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


class DriftError(Exception):
    """The drift check could not run; the message says why."""


def title(stack: str) -> str:
    return f"drift: stack {stack}"


# ---------------------------------------------------------------------------------------------
# stacks


def live_stacks(project_dir: Path) -> list[str]:
    """Stacks whose committed stack file names a stage in which something runs (not sunset)."""
    live: list[str] = []
    for stack, path in stack_files(project_dir):
        stage = read_stage(path)  # the project's own <project>:stage, or the bare key Pulumi reads as it
        try:
            parsed = Stage(str(stage))
        except ValueError as error:
            allowed = ", ".join(s.value for s in Stage)
            raise DriftError(f"{path.name}: {stage_key(path)} is {stage!r}; expected one of {allowed}") from error
        if parts_for(parsed).runs_anything:  # sunset: nothing left to drift
            live.append(stack)
    return live


# ---------------------------------------------------------------------------------------------
# classify


@dataclass
class Report:
    """What one stack's preview said, as the issues step reads it."""

    stack: str
    status: str
    """``clean``, ``drift`` or ``error``."""
    changes: list[str] = field(default_factory=list)
    """One line per resource the preview would change: ``~ update kubernetes:apps/v1:Deployment hello``."""
    summary: list[str] = field(default_factory=list)
    """The preview's ``Resources:`` block."""
    detail: str = ""
    """The end of the preview's output (the run's log has all of it)."""
    run_url: str = ""


def classify(stack: str, exit_code: int, log: str, run_url: str = "") -> Report:
    """Read ``pulumi preview --expect-no-changes``'s exit code and output."""
    if exit_code == 0:
        return Report(stack=stack, status="clean", run_url=run_url)
    status = "drift" if NO_CHANGES_EXPECTED.search(log) else "error"
    steps = [m for m in map(_STEP.match, log.splitlines()) if m and not m[4].startswith("refresh")]
    # The job's own credentials are no drift: the read-only kubeconfig and token replace the stack's,
    # so each provider they configure shows as an update in every run (the real CLI shows
    # `~ update pulumi:providers:kubernetes`). A provider has no live state that could drift.
    resources = [m for m in steps if not m[2].startswith(PROVIDER_TYPE)]
    if status == "drift" and steps and not resources:
        return Report(stack=stack, status="clean", run_url=run_url)
    changes = [f"{m[1]} {m[4]} {m[2]} {m[3]}" for m in resources]
    summary: list[str] = []
    lines = log.splitlines()
    if "Resources:" in (line.strip() for line in lines):
        start = [line.strip() for line in lines].index("Resources:")
        for line in lines[start:]:
            if not line.strip() and len(summary) > 1:
                break
            if line.strip():
                summary.append(line.rstrip())
    return Report(stack=stack, status=status, changes=changes, summary=summary, detail=log[-20_000:], run_url=run_url)


# ---------------------------------------------------------------------------------------------
# issues


def issue_body(report: Report) -> str:
    """The issue's text: what drifted, how to see it, how it closes."""
    lines = [
        f"<!-- service-lifecycle:drift:{report.stack} -->",
        f"`pulumi preview --refresh --expect-no-changes` of stack `{report.stack}` proposes changes: the live "
        "resources no longer match the program and the stack's committed configuration.",
        "",
        f"Last seen: {report.run_url or 'this run'}. The drift workflow updates this issue while the drift lasts "
        "and closes it when the stack is clean again (after `pulumi up`, or after the change is made in code).",
        "",
        "```",
        *(report.summary or ["(no Resources: summary in the output)"]),
        "```",
        "",
    ]
    if report.changes:
        lines += ["| op | plan | type | name |", "|---|---|---|---|"]
        lines += ["| `{}` | {} | `{}` | `{}` |".format(*change.split(" ", 3)) for change in report.changes]
        lines.append("")
    head = "\n".join(lines)
    room = max(MAX_BODY - len(head) - 100, 0)
    detail = report.detail[-room:] if room else ""
    return head + f"\n<details><summary>preview output (end)</summary>\n\n```\n{detail}\n```\n</details>\n"


def run_gh(gh: str | None) -> Runner:
    found = gh or shutil.which("gh")
    if found is None or shutil.which(found) is None:
        raise DriftError("the GitHub CLI (gh) is not installed or not on PATH: it opens and closes the drift issues")

    def run(args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([found, *args], capture_output=True, text=True, timeout=120, check=False)

    return run


def _gh(run: Runner, args: list[str]) -> str:
    done = run(args)
    if done.returncode != 0:
        raise DriftError(f"gh {' '.join(args[:2])} failed ({done.returncode}): {(done.stderr or done.stdout).strip()}")
    return done.stdout


def open_issue(run: Runner, repo: str, stack: str) -> int | None:
    """The number of the stack's open drift issue, if there is one."""
    search = f'in:title "{title(stack)}"'
    query = ["--label", LABEL, "--state", "open", "--search", search, "--json", "number,title", "--limit", "100"]
    out = _gh(run, ["issue", "list", "--repo", repo, *query])
    # The search is fuzzy ("stack staging" also finds "stack staging-eu"): the title decides.
    numbers = sorted(int(i["number"]) for i in json.loads(out or "[]") if i.get("title") == title(stack))
    return numbers[0] if numbers else None


def sync_issue(run: Runner, repo: str, report: Report) -> str:
    """Open, update or close the stack's issue; return what was done."""
    if report.status == "error":
        return f"{report.stack}: the preview failed (not drift): issue left as it is"
    number = open_issue(run, repo, report.stack)
    if report.status == "clean":
        if number is None:
            return f"{report.stack}: clean"
        where = report.run_url or "drift run"
        comment = f"Clean again: `pulumi preview --expect-no-changes` proposes no change ({where})."
        _gh(run, ["issue", "close", str(number), "--repo", repo, "--comment", comment])
        return f"{report.stack}: clean, closed #{number}"
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as body:
        body.write(issue_body(report))
    try:
        if number is None:
            _gh(run, ["label", "create", LABEL, "--repo", repo, "--force", "--color", "d93f0b",
                      "--description", "Live resources differ from the stack (drift workflow)"])  # fmt: skip
            url = _gh(run, ["issue", "create", "--repo", repo, "--title", title(report.stack), "--label", LABEL,
                            "--body-file", body.name])  # fmt: skip
            return f"{report.stack}: drift, opened {url.strip()}"
        _gh(run, ["issue", "edit", str(number), "--repo", repo, "--body-file", body.name])
        return f"{report.stack}: drift, updated #{number}"
    finally:
        Path(body.name).unlink()


# ---------------------------------------------------------------------------------------------
# command


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m components drift", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    stacks = commands.add_parser("stacks", help="print the live stacks as a JSON list")
    stacks.add_argument("--project-dir", type=Path, default=Path.cwd())
    check = commands.add_parser("classify", help="turn one preview's exit code and output into a report")
    check.add_argument("--stack", required=True)
    check.add_argument("--exit-code", type=int, required=True)
    check.add_argument("--log", type=Path, required=True, help="the preview's output")
    check.add_argument("--out", type=Path, required=True, help="directory for <stack>.json")
    check.add_argument("--run-url", default="")
    issues = commands.add_parser("issues", help="open, update or close one issue per stack")
    issues.add_argument("--reports", type=Path, required=True, help="directory of <stack>.json reports")
    issues.add_argument("--repo", required=True, help="owner/name")
    issues.add_argument("--gh", help="path of the gh binary (default: gh on PATH)")
    args = parser.parse_args(list(argv))
    try:
        if args.command == "stacks":
            print(json.dumps(live_stacks(args.project_dir)))
            return 0
        if args.command == "classify":
            report = classify(args.stack, args.exit_code, args.log.read_text(errors="replace"), args.run_url)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{args.stack}.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
            print(f"{args.stack}: {report.status}" + "".join(f"\n  {c}" for c in report.changes))
            return 1 if report.status == "error" else 0
        run = run_gh(args.gh)
        reports = sorted(args.reports.glob("*.json"))
        if not reports:
            raise DriftError(f"--reports: no <stack>.json in {args.reports}")
        for path in reports:
            print(sync_issue(run, args.repo, Report(**json.loads(path.read_text()))))
        return 0
    except DriftError as error:
        print(f"drift: {error}", file=sys.stderr)
        return 1

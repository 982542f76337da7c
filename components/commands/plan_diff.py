"""Compare two offline plans (base branch and pull request) and write the pull-request comment.

``python -m components plan-diff --base BASE --head HEAD [--stack S ...] [--out comment.md]``

``BASE/<stack>`` and ``HEAD/<stack>`` are ``python -m components plan --out`` directories
(``manifests/*.yaml`` and ``plan.json``); ``HEAD/<stack>/policy.txt``, when present, is the
output of ``plan --policy`` and is quoted in the comment. Manifest files are matched by
kind, namespace and name (the plan's numeric prefix is ignored, so inserting one object does
not show every later file as renamed). Everything used here is already redacted by the plan.

Exit code 0 whatever the diff says: the comment informs, the plan and policy steps gate.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from components.commands import plan_diagram

MARKER: Final = "<!-- service-lifecycle:offline-plan -->"
"""First line of the comment; the commenting workflow updates the comment that starts with it."""
MAX_COMMENT: Final = 60_000
"""GitHub rejects comments above 65,536 characters; leave room for the summary."""
_PREFIX = re.compile(r"^\d+-")


@dataclass
class StackDiff:
    """What changed in one stack's plan."""

    stack: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    diff: str = ""
    type_changes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Resource type → (count in base, count in head), only where they differ."""
    base_missing: bool = False
    policy: str | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)
    """The head plan's resources (``plan.json``), plus those only the base has: the diagram's nodes."""
    resource_changes: dict[str, str] = field(default_factory=dict)
    """URN → ``changed``, ``added`` or ``removed``: what the diagram marks."""

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.changed or self.type_changes)


def _manifests(plan_dir: Path) -> dict[str, str]:
    folder = plan_dir / "manifests"
    if not folder.is_dir():
        return {}
    return {_PREFIX.sub("", path.name): path.read_text() for path in sorted(folder.glob("*.yaml"))}


def _resources(plan_dir: Path) -> list[dict[str, Any]]:
    path = plan_dir / "plan.json"
    if not path.is_file():
        return []
    resources: list[dict[str, Any]] = json.loads(path.read_text()).get("resources", [])
    return resources


def diff_stack(base: Path, head: Path, stack: str) -> StackDiff:
    """Compare ``base/<stack>`` with ``head/<stack>``."""
    base_dir, head_dir = base / stack, head / stack
    result = StackDiff(stack=stack, base_missing=not (base_dir / "plan.json").is_file())
    old, new = _manifests(base_dir), _manifests(head_dir)
    chunks: list[str] = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if before is None:
            result.added.append(name)
        elif after is None:
            result.removed.append(name)
        else:
            result.changed.append(name)
        chunks.extend(
            difflib.unified_diff(
                (before or "").splitlines(keepends=True),
                (after or "").splitlines(keepends=True),
                fromfile=f"a/{stack}/{name}" if before is not None else "/dev/null",
                tofile=f"b/{stack}/{name}" if after is not None else "/dev/null",
            )
        )
    result.diff = "".join(line if line.endswith("\n") else line + "\n" for line in chunks)
    old_resources, new_resources = _resources(base_dir), _resources(head_dir)
    counts_old = Counter(str(r.get("type")) for r in old_resources)
    counts_new = Counter(str(r.get("type")) for r in new_resources)
    for type_token in sorted(set(counts_old) | set(counts_new)):
        if counts_old[type_token] != counts_new[type_token]:
            result.type_changes[type_token] = (counts_old[type_token], counts_new[type_token])
    policy_file = head_dir / "policy.txt"
    if policy_file.is_file():
        result.policy = policy_file.read_text().strip()
    result.resources, result.resource_changes = plan_diagram.compare(old_resources, new_resources)
    return result


def _policy_line(policy: str | None) -> str:
    if policy is None:
        return "policy: not run"
    return policy.splitlines()[-1] if policy else "policy: no output"


def _diagram_block(d: StackDiff, max_chars: int) -> list[str]:
    """``d``'s plan as a Mermaid flowchart, changed resources marked (see :mod:`components.commands.plan_diagram`)."""
    diagram = plan_diagram.render(d.resources, d.resource_changes, max_chars=max_chars)
    if diagram is None:
        if d.resources:
            note = "the plan diagram does not fit the comment; `plan.txt` in the artifact has the tree"
            return [f"_`{d.stack}`: {note}._", ""]
        return []
    touched = Counter(d.resource_changes.values())
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(touched.items())) or "no resource changed"
    folded = " (collapsed to components)" if diagram.collapsed else ""
    return [
        f"<details open><summary>plan diagram: {d.stack}: {diagram.nodes} resources, {counts}{folded}</summary>",
        "",
        "```mermaid",
        diagram.text.rstrip("\n"),
        "```",
        "",
        "`~` changed · `+` added · `-` removed",
        "</details>",
        "",
    ]


def render(diffs: list[StackDiff], *, base_ref: str, limit: int = MAX_COMMENT) -> str:
    """The comment body (Markdown), at most about ``limit`` characters."""
    lines = [MARKER, f"## Offline plan against `{base_ref}`", ""]
    lines.append("Rendered without credentials or the Pulumi CLI (`python -m components plan`); secrets redacted.")
    lines.append("")
    # The diagrams open the comment; together they take at most a third of it.
    share = min(plan_diagram.MAX_DIAGRAM_CHARS, limit // (3 * max(1, len(diffs))))
    for d in diffs:
        lines += _diagram_block(d, share)
    for d in diffs:
        summary = (
            "no change"
            if d.unchanged
            else f"{len(d.changed)} changed, {len(d.added)} added, {len(d.removed)} removed manifest(s)"
        )
        lines.append(f"### `{d.stack}`: {summary} · {_policy_line(d.policy)}")
        if d.base_missing:
            lines.append(f"_`{base_ref}` has no offline plan for `{d.stack}`: every manifest shows as added._")
        if d.type_changes:
            lines.append("")
            lines.append("| resource type | base | this PR |")
            lines.append("|---|---:|---:|")
            lines += [f"| `{t}` | {a} | {b} |" for t, (a, b) in d.type_changes.items()]
        if d.policy and "violation" in d.policy:
            lines += [
                "",
                "<details open><summary>policy violations</summary>",
                "",
                "```",
                d.policy,
                "```",
                "</details>",
            ]
        lines.append("")
    head = "\n".join(lines)
    budget = max(limit - len(head) - 200 * len(diffs), 0)
    body: list[str] = [head]
    for d in diffs:
        if not d.diff:
            continue
        share = budget // max(1, sum(1 for x in diffs if x.diff))
        text = d.diff
        note = ""
        if len(text) > share:
            text = text[:share].rsplit("\n", 1)[0] + "\n"
            note = "\n_(diff truncated: the full diff is in the `offline-plan` artifact)_"
        body.append(f"<details><summary>manifest diff: {d.stack}</summary>\n\n```diff\n{text}```{note}\n</details>\n")
    return "\n".join(body)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components plan-diff", description="Compare two offline plans; write a PR comment."
    )
    parser.add_argument("--base", type=Path, required=True, help="plan directories of the base branch")
    parser.add_argument("--head", type=Path, required=True, help="plan directories of the pull request")
    parser.add_argument("--stack", action="append", dest="stacks", help="stack to compare (repeatable)")
    parser.add_argument("--base-ref", default="main", help="name of the base branch, for the comment")
    parser.add_argument("--out", type=Path, help="write the comment here (default: stdout)")
    parser.add_argument("--diff-out", type=Path, help="also write the full unified diff here")
    args = parser.parse_args(argv)
    stacks: list[str] = args.stacks or ["staging", "production"]
    diffs = [diff_stack(args.base, args.head, stack) for stack in stacks]
    comment = render(diffs, base_ref=args.base_ref)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(comment)
    else:
        sys.stdout.write(comment)
    if args.diff_out:
        args.diff_out.parent.mkdir(parents=True, exist_ok=True)
        args.diff_out.write_text("".join(d.diff for d in diffs))
    return 0

"""The offline plan: run the Pulumi program under the recording mocks and show what it would do.

``python -m components plan --stack staging|production [--project-dir DIR] [--out DIR] [--format text|json]``

It works for any program that uses the library. It reads ``DIR/Pulumi.yaml`` (the project's name,
which is its configuration namespace, and its declared settings with their defaults, as the Pulumi
CLI merges them; settings the project does not declare take :mod:`components.config.schema`'s defaults)
and ``Pulumi.<stack>.yaml`` (``secure:`` values become ``[secret]``), applies the Pulumi CLI's config
rules (:mod:`components.config.stack_rules`) and validates the settings (exit 2 with one line per bad key),
runs ``__main__.py`` under :mod:`components.testing` (:mod:`components.testing.offline`; exit 1 on what
the engine would refuse, one line: :class:`components.testing.EngineRuleError`), prints the resource
tree, and with ``--out`` writes every Kubernetes object as YAML under ``DIR/manifests`` and the whole plan as
``DIR/plan.json``. No network, credentials or Pulumi CLI.

What the plan cannot know offline it says so in its notes: secrets that are not in the stack file
(planned as ``[secret]``), the promoted stack's ``image_ref`` (answered by the mocks), the git
revision (taken from the working copy).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import yaml

from components import image
from components.config.settings import SECRET_MARK, SettingsError
from components.config.stack_config import StackFileError
from components.monitoring.rule_files import write_rule_files
from components.testing import (
    EngineRuleError,
    RecordedResource,
    canonical,
    redact,
    release_worker_loops,
    unwrap,
)
from components.testing.offline import (  # the offline run; re-exported: this module's names before 0.3.0
    Plan,
    offline_stack_outputs,
    run_plan,
    stable_invokes,
    tree_order,
    whole_numbers,
)

__all__ = [
    "EXIT_BAD_SETTINGS",
    "EXIT_FAILED",
    "EXIT_OK",
    "MAX_PROBLEMS_SHOWN",
    "Plan",
    "dump_manifest",
    "main",
    "manifest",
    "offline_stack_outputs",
    "render_tree",
    "report_problems",
    "run_plan",
    "stable_invokes",
    "summary",
    "tree_order",
    "whole_numbers",
    "write_outputs",
]  # fmt: skip

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2


# ---------------------------------------------------------------------------------------------
# Rendering


def _short_type(token: str) -> str:
    return token.rsplit(":", maxsplit=1)[-1] if token.startswith("service-lifecycle:") else token


_SUMMARY_FIELDS = ("imageName", "name", "content", "type", "proxied", "chart", "version", "replicas")


def summary(resource: RecordedResource) -> str:
    """The few fields a reviewer needs, on one line."""
    inputs = whole_numbers(redact(resource.inputs))
    parts: list[str] = []
    metadata = inputs.get("metadata")
    if resource.type.startswith("kubernetes:") and isinstance(metadata, dict):
        ns = metadata.get("namespace")
        parts.append(f"{ns}/{metadata.get('name')}" if ns else str(metadata.get("name")))
        spec = inputs.get("spec")
        if isinstance(spec, dict):
            for field_name in ("replicas", "type", "minReplicas", "maxReplicas", "minAvailable", "maxUnavailable"):
                if field_name in spec:
                    parts.append(f"{field_name}={spec[field_name]}")
            template = spec.get("template")
            if isinstance(template, dict):
                containers = (template.get("spec") or {}).get("containers") or []
                parts += [f"image={c.get('image')}" for c in containers if isinstance(c, dict)]
    else:
        for field_name in _SUMMARY_FIELDS:
            if field_name in inputs and not isinstance(inputs[field_name], (dict, list)):
                parts.append(f"{field_name}={inputs[field_name]}")
    if resource.protect:
        parts.append("protect")
    if resource.retain_on_delete:
        parts.append("retainOnDelete")
    return "  ".join(parts)


def render_tree(plan: Plan) -> str:
    lines = [f"{plan.project} / {plan.stack}  (stage {plan.stage}, {len(plan.resources)} resources)"]
    by_parent: dict[str | None, list[RecordedResource]] = {}
    urns = {r.urn for r in plan.resources}
    for resource in plan.resources:
        parent = resource.parent if resource.parent in urns else None
        by_parent.setdefault(parent, []).append(resource)

    def walk(parent: str | None, prefix: str) -> Iterator[str]:
        children = by_parent.get(parent, [])
        for index, child in enumerate(children):
            last = index == len(children) - 1
            detail = summary(child)
            yield f"{prefix}{'└─ ' if last else '├─ '}{_short_type(child.type)}  {child.name}" + (
                f"  [{detail}]" if detail else ""
            )
            yield from walk(child.urn, prefix + ("   " if last else "│  "))

    lines += list(walk(None, ""))
    if plan.outputs:
        lines.append("outputs:")
        lines += [f"  {k}: {json.dumps(v)}" for k, v in sorted(redact(plan.outputs).items())]
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)


def manifest(resource: RecordedResource) -> dict[str, Any]:
    """The Kubernetes object a resource would apply, secrets redacted."""
    obj: dict[str, Any] = whole_numbers(redact(resource.inputs))
    if obj.get("kind") == "Secret":
        # Every Secret value is redacted, secret-marked or not; the keys stay for reviewers.
        plain = unwrap(resource.inputs)
        for field_name in ("data", "stringData"):
            if isinstance(plain.get(field_name), dict):
                obj[field_name] = {k: SECRET_MARK for k in plain[field_name]}
    return obj


def dump_manifest(obj: dict[str, Any]) -> str:
    """One manifest as YAML, the same bytes whatever protobuf or PyYAML is installed: keys sorted at every
    level (:func:`components.testing.canonical`), block style and line width spelled out rather than
    left to the PyYAML release's defaults."""
    text: str = yaml.safe_dump(
        canonical(obj), sort_keys=True, default_flow_style=False, width=80, allow_unicode=False, indent=2
    )
    return text


def write_outputs(plan: Plan, out: Path) -> list[Path]:
    """Write ``manifests/*.yaml``, ``plan.json`` and ``rules/*.rules.yml`` under ``out``; return the manifest paths."""
    manifests_dir = out / "manifests"
    manifests_dir.mkdir(parents=True, exist_ok=True)
    for stale in manifests_dir.glob("*.yaml"):
        stale.unlink()
    written: list[Path] = []
    for resource in plan.resources:
        if not resource.type.startswith("kubernetes:") or not resource.custom:
            continue
        if resource.type.startswith(("kubernetes:helm.sh", "pulumi:providers")):
            continue
        obj = manifest(resource)
        metadata = obj.get("metadata") or {}
        # Named by identity, not by order: a PR's manifest diff then pairs the same objects.
        name = "_".join(
            str(p) for p in (metadata.get("namespace") or "cluster", obj.get("kind", "Object"), metadata.get("name"))
        )
        path = manifests_dir / f"{name}.yaml"
        path.write_text(dump_manifest(obj))
        written.append(path)
    (out / "plan.json").write_text(json.dumps(plan.to_json(), indent=2, sort_keys=False) + "\n")
    write_rule_files(plan.resources, out)  # rules/<service>.rules.yml: what promtool checks and tests
    return written


# ---------------------------------------------------------------------------------------------
# Command


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m components plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: Pulumi.<stack>.yaml must exist")
    parser.add_argument("--out", type=Path, help="write manifests/*.yaml and plan.json under this directory")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="what to print (default text)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd(), help="directory of Pulumi.yaml (default .)")
    parser.add_argument(
        "--policy",
        action="store_true",
        help="run the policy pack offline; 1 if violated, 3 if its rules cannot be found or imported",
    )
    args = parser.parse_args(argv)
    project_dir: Path = args.project_dir.resolve()
    if args.out is not None and (unwritable := _out_problem(args.out)):
        print(f"error: --out {args.out}: {unwritable}", file=sys.stderr)  # before minutes of planning
        return EXIT_BAD_SETTINGS
    try:
        return _plan_and_show(args, project_dir)
    finally:
        release_worker_loops()  # every exit, or stderr may end with "Exception ignored in BaseEventLoop.__del__"


def _out_problem(out: Path) -> str | None:
    """Why plan files cannot be written under ``out`` (created if missing), or None."""
    if out.exists() and not out.is_dir():
        return "is not a directory; expected a directory to write manifests/ and plan.json in"
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        return f"cannot be written ({error.strerror or error}); expected a writable directory"
    return None


MAX_PROBLEMS_SHOWN = 50
"""Problem lines printed at most; the rest are counted (a hostile file must not flood a CI log)."""


def report_problems(stack: str, error: StackFileError | SettingsError, stream: TextIO) -> None:
    """One line per problem (at most :data:`MAX_PROBLEMS_SHOWN`, then how many more), then the notes
    (a stand-in is a note even when something else is wrong)."""
    print(f"error: stack {stack}: {len(error.problems)} invalid setting(s):", file=stream)
    said: set[str] = set()
    shown, rest = error.problems[:MAX_PROBLEMS_SHOWN], len(error.problems) - MAX_PROBLEMS_SHOWN
    for problem in shown:
        cli = getattr(problem, "cli", "")
        if cli and cli not in said:  # the Pulumi CLI's own line, as `pulumi up` would print it
            said.add(cli)
            print(f"  {cli}", file=stream)
        print(f"  {problem}", file=stream)
    if rest > 0:
        print(f"  … and {rest} more: fix these and run the plan again", file=stream)
    config = error.config if isinstance(error, StackFileError) else None
    for note in config.notes if config else []:
        print(f"note: {note}", file=stream)


def _plan_and_show(args: argparse.Namespace, project_dir: Path) -> int:
    try:
        plan, _ = run_plan(project_dir, args.stack)
    except EngineRuleError as error:  # what the engine would refuse: one line, no traceback
        print(f"error: stack {args.stack}: {error}", file=sys.stderr)
        return EXIT_FAILED
    except image.BuildContextError as error:  # a program that builds without the settings' check: one line
        print(f"error: stack {args.stack}: {error}", file=sys.stderr)
        return EXIT_BAD_SETTINGS
    except (StackFileError, SettingsError) as error:
        report_problems(args.stack, error, sys.stderr)
        return EXIT_BAD_SETTINGS
    if args.format == "json":
        print(json.dumps(plan.to_json(), indent=2))
    else:
        print(render_tree(plan))
    if args.out:
        try:
            written = write_outputs(plan, args.out)
        except OSError as error:
            print(f"error: --out {args.out}: cannot be written ({error.strerror or error})", file=sys.stderr)
            return EXIT_BAD_SETTINGS
        print(f"wrote {len(written)} manifests and plan.json under {args.out}", file=sys.stderr)
    if args.policy:
        from components.commands import policy_offline

        stream = sys.stderr if args.format == "json" else sys.stdout
        return policy_offline.run(plan.resources, project_dir, stream, sys.stderr)
    return EXIT_OK

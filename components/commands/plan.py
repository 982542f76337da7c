"""The offline plan: run the Pulumi program under the recording mocks and show what it would do.

``python -m components plan --stack staging|production [--project-dir DIR] [--out DIR] [--format text|json]``

It works for any program that uses the library. It reads ``DIR/Pulumi.yaml`` (the project's name,
which is its configuration namespace, and its declared settings with their defaults, as the Pulumi
CLI merges them; settings the project does not declare take :mod:`components.config.schema`'s defaults)
and ``Pulumi.<stack>.yaml`` (``secure:`` values become ``[secret]``), applies the Pulumi CLI's config
rules (:mod:`components.config.stack_rules`) and validates the settings (exit 2 with one line per bad key),
runs ``__main__.py`` under :mod:`components.testing` (exit 1 on what the engine would refuse, one
line: :class:`components.testing.EngineRuleError`), prints the resource tree, and with ``--out``
writes every Kubernetes object as YAML under ``DIR/manifests`` and the whole plan as
``DIR/plan.json``. No network, credentials or Pulumi CLI.

What the plan cannot know offline it says so in its notes: secrets that are not in the stack file
(planned as ``[secret]``), the promoted stack's ``image_ref`` (answered by the mocks), the git
revision (taken from the working copy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pulumi
import yaml
from pulumi.runtime.sync_await import _sync_await

from components import image
from components.config import schema
from components.config.settings import SECRET_MARK, SettingProblem, SettingsError, load_services
from components.config.stack_config import StackConfig, StackFileError, load_stack_config
from components.monitoring.rules import write_rule_files
from components.testing import (
    EngineRuleError,
    OfflineEcrClient,
    RecordedInvoke,
    RecordedResource,
    RecordingMocks,
    install_mocks,
    redact,
    release_worker_loops,
    run_program,
    unwrap,
    wrap_secret,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_SETTINGS = 2


def _offline_stand_ins(config: StackConfig, project_dir: Path, environ: Mapping[str, str]) -> None:
    """Fill what only exists at deploy time and say so in the notes, whatever else is wrong; raise on real problems.

    Raises :class:`StackFileError` carrying ``config`` (and so its notes) when a real problem remains.
    """

    def validate() -> dict[str, Any]:
        return load_services(config.source(), namespace_source=config.source().view, environ=environ)

    try:
        services = validate()
    except SettingsError as error:

        def short(problem: SettingProblem) -> str:
            return problem.key.rpartition(":")[2]

        missing = [p for p in error.problems if p.value == "<not set>"]
        missing_secrets = [p for p in missing if short(p) in schema.SECRETS or p.key in config.secret_keys]
        missing_revision = [p for p in missing if short(p) == "sourceRevision"]
        real = [p for p in error.problems if p not in missing_secrets and p not in missing_revision]
        for problem in missing_secrets:
            config.values[problem.key] = SECRET_MARK
            config.notes.append(f"{problem.key} is not in the stack file: planned as {SECRET_MARK}")
        if missing_revision:
            revision = _git_revision(project_dir)
            for problem in missing_revision:
                config.values[problem.key] = revision
                config.notes.append(f"{problem.key} taken from the working copy: {revision}")
        if real:  # what the plan stands in for is a note, never a problem of the stack file
            raise StackFileError(real, config) from None
        try:
            services = validate()
        except SettingsError as invalid:
            raise StackFileError(list(invalid.problems), config) from None
    for settings in services.values():
        if settings.build is not None and settings.registry.is_ecr:
            config.notes.append(f"ECR login for {settings.registry.server} answered offline with a stand-in token")
        if settings.promotion and settings.promotion.from_stack and not settings.promotion.pinned_digest:
            config.notes.append(
                f"StackReference {settings.promotion.from_stack} answered offline with a stand-in image_ref"
            )


def _git_revision(project_dir: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True, text=True, check=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "0" * 40


def offline_stack_outputs(config: StackConfig) -> dict[str, dict[str, Any]]:
    """Stand-in outputs of the stack a promoting stage reads, derived from its name."""
    answers: dict[str, dict[str, Any]] = {}
    for full, source in config.values.items():
        namespace, _, short = full.rpartition(":")
        if short != "promoteFromStack" or not source:
            continue
        repository = config.values.get(
            f"{namespace}:imageRepository", config.values.get(config.key("imageRepository"), "registry.invalid/unknown")
        )
        digest = hashlib.sha256(f"offline-plan:{source}".encode()).hexdigest()
        answers[source] = {"image_ref": f"{repository}@sha256:{digest}", "stage": "staging"}
    return answers


@dataclass
class Plan:
    """The result of one offline run."""

    project: str
    stack: str
    stage: str
    resources: list[RecordedResource]
    invokes: list[dict[str, Any]]
    outputs: dict[str, Any]
    notes: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "stage": self.stage,
            "notes": self.notes,
            "outputs": whole_numbers(redact(self.outputs)),
            "resources": [whole_numbers(r.to_json()) for r in self.resources],
            "invokes": self.invokes,
        }


def run_plan(
    project_dir: Path, stack: str, *, environ: Mapping[str, str] | None = None, program: Path | None = None
) -> tuple[Plan, RecordingMocks]:
    """Validate the stack's settings and run the program under recording mocks.

    Raises :class:`StackFileError` or :class:`SettingsError` on bad configuration, and
    :class:`components.testing.EngineRuleError` when the program breaks a rule the engine enforces.
    """
    env = dict(os.environ if environ is None else environ)
    config = _load_with_stand_ins(project_dir, stack, env)
    mocks = RecordingMocks(stack_outputs=offline_stack_outputs(config))
    pulumi.runtime.set_all_config(dict(config.values), sorted(config.secret_keys))
    pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
    install_mocks(mocks, project=config.project, stack=stack)
    _run_main(project_dir, program or project_dir / "__main__.py")
    plan = Plan(
        project=config.project,
        stack=stack,
        stage=config.values.get(config.key("stage"), ""),
        # Registrations run concurrently: sort so that plans (and their diffs in PRs) are stable.
        resources=tree_order(mocks.resources),
        invokes=stable_invokes(mocks.invocations),
        outputs=_stack_outputs(),
        notes=list(config.notes),
    )
    return plan, mocks


def _load_with_stand_ins(project_dir: Path, stack: str, env: Mapping[str, str]) -> StackConfig:
    """The stack's configuration with the offline stand-ins filled in; on bad configuration, every
    problem at once: the stack file's and the settings' (not the stack file's first)."""
    try:
        config = load_stack_config(project_dir, stack)
    except StackFileError as error:
        if error.config is not None:
            reported = {p.key for p in error.problems}
            try:
                _offline_stand_ins(error.config, project_dir, env)
            except StackFileError as invalid:
                error.problems += [p for p in invalid.problems if p.key not in reported]
        raise
    _offline_stand_ins(config, project_dir, env)
    return config


def _run_main(project_dir: Path, main: Path) -> None:
    """Run the program as ``pulumi up`` would (from the project, importable), never reaching AWS for ECR."""
    sys.path.insert(0, str(project_dir))
    cwd = Path.cwd()
    online_ecr = image.ecr_client_factory
    try:
        os.chdir(project_dir)
        image.ecr_client_factory = OfflineEcrClient  # never AWS: no network, no credentials

        def run_main() -> None:
            runpy.run_path(str(main), run_name="__main__")

        run_program(run_main)
    finally:
        image.ecr_client_factory = online_ecr
        os.chdir(cwd)
        sys.path.remove(str(project_dir))


def stable_invokes(invocations: Iterable[RecordedInvoke]) -> list[dict[str, Any]]:
    """The invokes, redacted, by token then arguments: they run concurrently too (two services' tunnel
    token lookups finish in either order), and a plan must not differ between two runs of one commit."""
    invokes = [{"token": i.token, "args": redact(i.args)} for i in invocations]
    return sorted(invokes, key=lambda i: (i["token"], json.dumps(i["args"], sort_keys=True, default=str)))


def tree_order(resources: list[RecordedResource]) -> list[RecordedResource]:
    """Depth-first, parents before children, siblings by URN: stable whatever the registration order."""
    urns = {r.urn for r in resources}
    children: dict[str | None, list[RecordedResource]] = {}
    for resource in resources:
        children.setdefault(resource.parent if resource.parent in urns else None, []).append(resource)
    ordered: list[RecordedResource] = []

    def visit(parent: str | None) -> None:
        for child in sorted(children.get(parent, []), key=lambda r: r.urn):
            ordered.append(child)
            visit(child.urn)

    visit(None)
    return ordered


def _stack_outputs() -> dict[str, Any]:
    """The values the program exported, resolved; secret ones wrapped like recorded inputs."""
    root = pulumi.runtime.settings.get_root_resource()
    exported: dict[str, Any] = getattr(root, "outputs", {}) or {}
    resolved: dict[str, Any] = {}
    for name, value in exported.items():
        output = pulumi.Output.from_input(value)
        plain = _sync_await(output.future())
        secret = _sync_await(output.is_secret())
        resolved[name] = wrap_secret(plain) if secret else plain
    return resolved


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


def whole_numbers(value: Any) -> Any:
    """Pulumi's wire format carries every number as a double: give integral ones back as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    return value


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
        path.write_text(yaml.safe_dump(obj, sort_keys=False))
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
    parser.add_argument("--policy", action="store_true", help="run the policy pack offline; 1 if violated")
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
        return policy_offline.run(plan.resources, project_dir, stream)
    return EXIT_OK

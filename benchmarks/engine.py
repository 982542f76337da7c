"""The real engine's cost: `pulumi preview` of staging against a flat program that registers the same
resources without components, side by side in one run, and `pulumi up` of an unchanged stack.

    PYTHONPATH=. venv/bin/python benchmarks/engine.py [--repeat 3]   (after `make engine`)

The flat program (written below) reads the offline plan's resources and registers each custom
resource and provider with the same type, name and inputs, at the top level: what the components
add is their own registration, the parent links and the settings' checks, which is what the ratio
measures (both import the providers' SDKs). Goal: ≤ 1.2 times.
Also prints each step's wall time from the last `make e2e` (out/e2e/report.json) when there is one.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine import e2e, lifecycle_checks  # noqa: E402

FLAT_PROGRAM = '''"""The staging stack's resources, registered flat (no components): the benchmark's baseline."""
import json
import os

import pulumi
# A hand-written program registering these resources imports the providers' SDKs as the components
# do (pulumi_cloudflare alone takes seconds to import): the ratio is about the components, not them.
import pulumi_cloudflare  # noqa: F401
import pulumi_docker  # noqa: F401
import pulumi_kubernetes  # noqa: F401

plan = json.load(open(os.environ["FLAT_PLAN"]))
MAPS = ("stringData", "data")  # a Secret's whole map is one secret in the plan


def unredacted(value, key=""):
    """The plan writes each secret as "[secret]": a secret of the same shape in its place."""
    if value == "[secret]":
        return pulumi.Output.secret({"redacted": "cmVkYWN0ZWQ="} if key in MAPS else "redacted")
    if isinstance(value, dict):
        return {k: unredacted(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [unredacted(v) for v in value]
    return value


providers = {}
for resource in plan["resources"]:
    if resource["type"].startswith("pulumi:providers:"):
        package = resource["type"].split(":")[-1]
        providers[resource["urn"]] = pulumi.ProviderResource(package, resource["name"], unredacted(resource["inputs"]))
for resource in plan["resources"]:
    if not resource["custom"] or resource["type"].startswith("pulumi:providers:"):
        continue
    provider = providers.get(resource.get("provider") or "")
    pulumi.CustomResource(
        resource["type"], resource["name"], unredacted(resource["inputs"]),
        opts=pulumi.ResourceOptions(provider=provider),
    )
'''


def timed(systems: e2e.Systems, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    """Wall time of one `pulumi` command, run as the e2e runs it (SOURCE_REVISION, --non-interactive)."""
    started = time.monotonic()
    result = systems.ws.pulumi(*args, cwd=cwd, env=env, check=False)
    if result.code != 0:
        raise SystemExit(f"`pulumi {' '.join(args)}` failed (exit {result.code}):\n{result.stdout}\n{result.stderr}")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    report = REPO / "out" / "e2e" / "report.json"
    if report.is_file():
        print("make e2e, wall time per step (out/e2e/report.json):")
        for step in json.loads(report.read_text())["steps"]:
            print(f"  {step['name']:<24} {step['seconds']:8.1f} s  {'ok' if step['ok'] else 'FAILED'}")
    root = Path(tempfile.mkdtemp(prefix="service-lifecycle-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            systems = e2e.start_systems(root, stack)
            systems.base_image = e2e.push_base_image(systems)
            e2e.overlay(systems)
            ws = systems.ws
            plan = lifecycle_checks._offline_plan(systems, "staging")
            flat = ws.root / "flat"
            flat.mkdir()
            (flat / "Pulumi.yaml").write_text("name: flat\nruntime:\n  name: python\n")
            (flat / "__main__.py").write_text(FLAT_PROGRAM)
            (flat / "plan.json").write_text(json.dumps(plan))
            (flat / "app").symlink_to(ws.project / "app")  # the image's build context, relative as in the plan
            ws.pulumi("stack", "init", "staging", cwd=flat)
            env_flat = {"FLAT_PLAN": str(flat / "plan.json")}
            components, baseline = [], []
            for _ in range(args.repeat):
                components.append(timed(systems, "preview", "--stack", "staging"))
                baseline.append(timed(systems, "preview", "--stack", "staging", cwd=flat, env=env_flat))
            c, b = statistics.median(components), statistics.median(baseline)
            print(f"pulumi preview of staging, median of {args.repeat}, side by side:")
            print(f"  the program (components)      {c:7.2f} s")
            print(f"  a flat program, same resources {b:7.2f} s")
            print(f"  ratio                          {c / b:7.2f}x  (goal <= 1.2x)")
            lifecycle_checks.step_up_staging(systems)  # with the monitoring namespace the cluster stack would own
            unchanged = [
                timed(systems, "up", "--stack", "staging", "--yes", "--skip-preview") for _ in range(args.repeat)
            ]
            print(f"pulumi up of an unchanged staging stack: median {statistics.median(unchanged):.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

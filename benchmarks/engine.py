"""The real engine's cost: `pulumi preview` of staging against a flat program that registers the same
resources without components, side by side in one run, and `pulumi up` of an unchanged stack.

    PYTHONPATH=. venv/bin/python benchmarks/engine.py [--repeat 3]   (after `make engine`)

The flat program (written below) reads the offline plan's resources and registers each custom
resource and provider with the same type, name and inputs, at the top level: what the components
add is their own registration and the parent links, which is what the ratio measures. Goal: ≤ 1.2 times.
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

plan = json.load(open(os.environ["FLAT_PLAN"]))
providers = {}
for resource in plan["resources"]:
    if resource["type"].startswith("pulumi:providers:"):
        package = resource["type"].split(":")[-1]
        providers[resource["urn"]] = pulumi.ProviderResource(package, resource["name"], dict(resource["inputs"]))
for resource in plan["resources"]:
    if not resource["custom"] or resource["type"].startswith("pulumi:providers:"):
        continue
    provider = providers.get(resource.get("provider") or "")
    pulumi.CustomResource(
        resource["type"], resource["name"], dict(resource["inputs"]),
        opts=pulumi.ResourceOptions(provider=provider),
    )
'''


def timed(systems: e2e.Systems, argv: list[str], cwd: Path | None = None) -> float:
    started = time.monotonic()
    systems.ws.run(argv, cwd=cwd)
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
            ws.run(["pulumi", "stack", "init", "staging", "--non-interactive"], cwd=flat)
            env_flat = {"FLAT_PLAN": str(flat / "plan.json")}
            components, baseline = [], []
            for _ in range(args.repeat):
                components.append(timed(systems, ["pulumi", "preview", "--stack", "staging", "--non-interactive"]))
                started = time.monotonic()
                ws.run(["pulumi", "preview", "--stack", "staging", "--non-interactive"], cwd=flat, env=env_flat)
                baseline.append(time.monotonic() - started)
            c, b = statistics.median(components), statistics.median(baseline)
            print(f"pulumi preview of staging, median of {args.repeat}, side by side:")
            print(f"  the program (components)      {c:7.2f} s")
            print(f"  a flat program, same resources {b:7.2f} s")
            print(f"  ratio                          {c / b:7.2f}x  (goal <= 1.2x)")
            ws.pulumi("up", "--stack", "staging", "--yes", "--skip-preview")
            unchanged = [
                timed(systems, ["pulumi", "up", "--stack", "staging", "--yes", "--skip-preview", "--non-interactive"])
                for _ in range(args.repeat)
            ]
            print(f"pulumi up of an unchanged staging stack: median {statistics.median(unchanged):.2f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The project's command line: ``python -m components <command> [options]``.

Each command lives in its own module with ``main(argv: list[str]) -> int``; this module only
dispatches, importing the command's module on demand so a quick command stays quick.
"""

from __future__ import annotations

import importlib
import sys
from typing import Final

COMMANDS: Final = {
    "plan": ("components.commands.plan", "offline plan of a stack under the recording mocks (no cloud, no CLI)"),
    "smoke": ("components.commands.smoke", "check /healthz, /readyz and the version of a deployed service"),
    "plan-diff": ("components.commands.plan_diff", "compare two offline plans and write the pull-request comment"),
    "verify-attestation": (
        "components.commands.attest",
        "refuse an image without valid provenance and SBOM attestations (wraps gh attestation verify)",
    ),
    "drift": ("components.commands.drift", "live stacks, drift reports and the one-issue-per-stack sync of drift.yml"),
    "sunset": (
        "components.commands.sunset.command",
        "remove a stack's access points, workload, monitoring and images (Automation API)",
    ),
    "schema": (
        "components.commands.schema",
        "print the Pulumi.yaml config block of every setting, from components/config/schema.py",
    ),
    "ledger": (
        "components.commands.retention",
        "record a deployed digest in deployments/<stack>.txt (registry retention) and its verification",
    ),
    "verify-deploy": (
        "components.commands.verify",
        "judge the window after a rollout against the SLO and the previous release (Prometheus)",
    ),
    "rollback-target": (
        "components.commands.rollback",
        "the last digest of a stack that passed deploy verification (the rollback's pinnedDigest)",
    ),
}
"""Command name → (module, one-line help)."""


def usage() -> str:
    lines = ["usage: python -m components <command> [options]", "", "commands:"]
    width = max(map(len, COMMANDS)) + 2
    lines += [f"  {name:<{width}}{help_}" for name, (_, help_) in COMMANDS.items()]
    lines.append("\n`python -m components <command> --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    result: int = module.main(rest)
    return result

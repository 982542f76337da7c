"""Offline plan cost: wall time and peak memory per stack, against the SDK import floor,
and how the plan grows from 1 to 20 services in one program.

    venv/bin/python benchmarks/plan.py [--repeat 3]

Each figure is the median of --repeat runs, each in a fresh process (peak RSS from wait4).
Prints figures; asserts nothing: the machine decides the absolute numbers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent

MANY_SERVICES = """
import pulumi
from components.config import schema
from components.service import ServiceStack, ServiceStackArgs
from components.config.settings import settings_from_mapping

# The stack's values for every service, then each service's own name, repository and hostname:
# validated like a stack file (components.config.settings.settings_from_mapping), secrets kept secret.
config = pulumi.Config()
shared = {{s.name: config.get_secret(s.name) if s.secret else config.get(s.name) for s in schema.SETTINGS}}
shared = {{k: v for k, v in shared.items() if v is not None}}
zone = shared["zoneName"]
for index in range({count}):
    name = f"svc{{index:02d}}"
    repository = f"ghcr.io/example-org/{{name}}"
    own = {{"serviceName": name, "imageRepository": repository, "hostnames": [f"{{name}}.{{zone}}"]}}
    settings = settings_from_mapping({{**shared, **own}}, namespace=config.name)
    ServiceStack(name, ServiceStackArgs(settings=settings))
"""

RUN_PROGRAM = """
import sys
from pathlib import Path
from components.commands.plan import run_plan
from components.testing import release_worker_loops
plan, _ = run_plan(Path(sys.argv[1]), sys.argv[2], program=Path(sys.argv[3]))
release_worker_loops()
print(len(plan.resources))
"""


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run argv; return (seconds, peak RSS in MiB, stdout)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=PROJECT_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR), **(env or {})},
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{stderr}")
    return seconds, usage.ru_maxrss / 1024, stdout


def median_of(repeat: int, argv: list[str]) -> tuple[float, float, str]:
    runs = [measure(argv) for _ in range(repeat)]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs), runs[-1][2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    python = sys.executable
    print(f"offline plan benchmark ({args.repeat} runs each, median; {os.cpu_count()} cores)")
    print(f"{'what':<48} {'wall s':>8} {'peak MiB':>9}")

    floor = median_of(args.repeat, [python, "-c", "import pulumi, pulumi_kubernetes, pulumi_cloudflare, pulumi_docker"])
    print(f"{'floor: import the four Pulumi SDKs':<48} {floor[0]:>8.2f} {floor[1]:>9.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        for stack in ("staging", "production"):
            seconds, peak, _ = median_of(
                args.repeat, [python, "-m", "components", "plan", "--stack", stack, "--out", f"{tmp}/{stack}"]
            )
            print(f"{'plan --stack ' + stack:<48} {seconds:>8.2f} {peak:>9.0f}")
        results = {}
        for count in (1, 5, 20):
            program = Path(tmp) / f"many_{count}.py"
            program.write_text(MANY_SERVICES.format(count=count))
            seconds, peak, out = median_of(
                args.repeat, [python, "-c", RUN_PROGRAM, str(PROJECT_DIR), "production", str(program)]
            )
            results[count] = seconds
            label = f"production plan, {count} service(s), {out.strip()} resources"
            print(f"{label:<48} {seconds:>8.2f} {peak:>9.0f}")
        per_service = (results[20] - results[1]) / 19
        print(f"growth: {per_service * 1000:.0f} ms per extra service beyond the first "
              f"(floor {floor[0]:.2f} s is {floor[0] / results[1]:.0%} of a one-service plan)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost of the alert rules: building them, and what promtool spends checking and unit-testing them.

    venv/bin/python benchmarks/rules.py [--repeat 5]

Builds the staging rules with components.monitoring.rules (median of --repeat builds), writes them as a rule
file, then times ``promtool check rules`` and ``promtool test rules`` on every tests/rules/*.test.yml
(median of --repeat runs each). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))

from components.monitoring.rules import RuleParams, alert_names, recorded_names, rule_groups, to_yaml  # noqa: E402

PARAMS = RuleParams(
    service="hello",
    namespace="hello-staging",
    team="platform",
    slo_availability=99.5,
    latency_p95_seconds=0.5,
    app_job="hello",
    tunnel_job="hello-cloudflared",
    runbook_url="https://github.com/example-org/service-lifecycle/blob/main/docs/runbooks/monitoring.md",
)


def _median_seconds(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    build = _median_seconds(lambda: to_yaml(rule_groups(PARAMS)), args.repeat)
    groups = rule_groups(PARAMS)
    text = to_yaml(groups)
    print(f"rules: {len(recorded_names(groups))} recording + {len(alert_names(groups))} alerting")
    print(f"build + YAML: {build * 1000:.2f} ms (median of {args.repeat}); rule file {len(text)} bytes")

    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool: not installed (apt-get install prometheus); nothing more to measure")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        rule_file = Path(tmp) / "hello.rules.yml"
        rule_file.write_text(text)
        check = _median_seconds(
            lambda: subprocess.run([promtool, "check", "rules", str(rule_file)], check=True, capture_output=True),
            args.repeat,
        )
        print(f"promtool check rules: {check:.2f} s")
        for test_file in sorted((PROJECT_DIR / "tests" / "rules").glob("*.test.yml")):
            document = yaml.safe_load(test_file.read_text())
            document["rule_files"] = [str(rule_file)]
            local = Path(tmp) / test_file.name
            local.write_text(yaml.safe_dump(document, sort_keys=False))
            cases = len(document["tests"])
            checks = sum(len(c.get("alert_rule_test", [])) for c in document["tests"])
            seconds = _median_seconds(
                lambda local=local: subprocess.run(
                    [promtool, "test", "rules", str(local)], check=True, capture_output=True
                ),
                args.repeat,
            )
            print(f"promtool test rules {test_file.name}: {seconds:.2f} s ({cases} cases, {checks} alert checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

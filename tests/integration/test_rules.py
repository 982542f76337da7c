"""The rule files the offline plan writes, checked and unit-tested by the real promtool; the
Alertmanager configuration Monitoring generates, checked by the real amtool.

promtool and amtool come from Debian's ``prometheus`` and ``prometheus-alertmanager`` packages
(scripts/install-system-deps.sh). Without them these tests skip locally and fail under CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring.cluster import alertmanager_config

RULE_TESTS = Path(__file__).resolve().parents[1] / "rules"
TEST_FILES = sorted(RULE_TESTS.glob("*.test.yml"))
# What tests/rules/*.test.yml were written against: the staging stack's rules.
TESTED_STACK = "staging"
TESTED_NAMESPACE = "hello-staging"
TESTED_BUDGET = "0.005"

PlanFn = Callable[[str], tuple[dict[str, Any], Path]]


def _on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if path is None:
        reason = f"{name} is missing (apt-get install {package}; scripts/install-system-deps.sh installs it)"
        if _on_ci():
            pytest.fail(f"CI must run the rule tests, but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def promtool() -> str:
    return _tool("promtool", "prometheus")


@pytest.fixture(scope="module")
def amtool() -> str:
    return _tool("amtool", "prometheus-alertmanager")


def _rule_file(offline_plan: PlanFn, stack: str) -> Path:
    _, out = offline_plan(stack)
    files = sorted((out / "rules").glob("*.rules.yml"))
    assert [f.name for f in files] == ["hello.rules.yml"], files
    return files[0]


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_promtool_accepts_the_planned_rule_file(promtool: str, offline_plan: PlanFn, stack: str) -> None:
    rule_file = _rule_file(offline_plan, stack)
    result = _run(promtool, "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 22 rules found" in result.stdout


def _localised_test(test_file: Path, rule_file: Path, tmp_path: Path) -> Path:
    """A copy of ``test_file`` whose ``rule_files`` is the planned rule file."""
    document = yaml.safe_load(test_file.read_text())
    document["rule_files"] = [str(rule_file)]
    target = tmp_path / test_file.name
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def test_the_rule_tests_were_written_for_the_planned_staging_rules(offline_plan: PlanFn) -> None:
    text = _rule_file(offline_plan, TESTED_STACK).read_text()
    # If the staging stack's namespace or objective changes, tests/rules/*.test.yml need new series.
    assert f'namespace="{TESTED_NAMESPACE}"' in text
    assert f"(14.4 * {TESTED_BUDGET})" in text
    assert len(TEST_FILES) >= 2


@pytest.mark.parametrize("test_file", TEST_FILES, ids=[f.name for f in TEST_FILES])
def test_every_alert_fires_on_bad_series_and_stays_quiet_on_healthy_ones(
    promtool: str, offline_plan: PlanFn, tmp_path: Path, test_file: Path
) -> None:
    localised = _localised_test(test_file, _rule_file(offline_plan, TESTED_STACK), tmp_path)
    result = _run(promtool, "test", "rules", str(localised))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case(offline_plan: PlanFn) -> None:
    rules = yaml.safe_load(_rule_file(offline_plan, TESTED_STACK).read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    firing: set[str] = set()
    quiet: set[str] = set()
    for test_file in TEST_FILES:
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts - firing == set(), "alerts never shown to fire"
    assert alerts - quiet == set(), "alerts never shown to stay quiet"


@pytest.mark.parametrize(
    ("original", "broken"),
    [("(14.4 * 0.005)", "(14.4 * 0.05)"), ('code=~"5.."', 'code=~"4.."'), ("for: 2m", "for: 2h")],
)
def test_the_rule_tests_catch_a_broken_rule(
    promtool: str, offline_plan: PlanFn, tmp_path: Path, original: str, broken: str
) -> None:
    text = _rule_file(offline_plan, TESTED_STACK).read_text()
    assert original in text
    mutated = tmp_path / "broken.rules.yml"
    mutated.write_text(text.replace(original, broken))
    outcomes = (
        _run(promtool, "test", "rules", str(_localised_test(test_file, mutated, tmp_path))).returncode
        for test_file in TEST_FILES
    )
    assert any(code != 0 for code in outcomes), f"no rule test noticed {original} -> {broken}"


@pytest.mark.parametrize(
    "url", ["https://hooks.slack.com/services/T000/B000/XXXXXXXX", "https://alerts.example.net/hooks/platform"]
)
def test_amtool_accepts_the_alertmanager_configuration(amtool: str, tmp_path: Path, url: str) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(team="platform", webhook_url=url)))
    result = _run(amtool, "check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alertmanager_routes_a_team_alert_to_the_team(amtool: str, tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(team="platform", webhook_url="https://a.example/h")))

    def route(*labels: str) -> str:
        result = _run(amtool, "config", "routes", "test", f"--config.file={config}", *labels)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    assert route("alertname=ErrorBudgetBurnFast", "team=platform", "service=hello") == "team-platform"
    assert route("alertname=Watchdog") == "null"


def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the rule tests"):
        _tool("promtool-not-installed-here", "prometheus")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="promtool-not-installed-here is missing"):
        _tool("promtool-not-installed-here", "prometheus")

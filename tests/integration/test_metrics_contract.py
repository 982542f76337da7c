"""Every metric the alert rules and the dashboard read from the app is one the real app exports.

The rules come from the production plan's rule file and the dashboard from its ConfigMap, exactly
as they would be deployed. The app runs as its real container image (the ``run_app_container``
fixture from tests/integration/conftest.py: what CI exercises), and also straight from source so
that a machine without Docker still checks the contract. Histogram series only appear after a
request has been timed, so a few requests go first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.monitoring import rule_files, rules
from components.monitoring.component import dashboard_exprs

SERVER = Path(__file__).resolve().parents[2] / "app" / "server.py"
PlanFn = Callable[[str], tuple[dict[str, Any], Path]]
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+\S+")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
NOT_FROM_THE_APP = {"up", *rules.KUBE_STATE_METRICS, *rules.CLOUDFLARED_METRICS}
"""Series Prometheus itself, kube-state-metrics or cloudflared provide."""


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(base: str) -> dict[str, list[dict[str, str]]]:
    """Send a few requests, then read /metrics: metric name → label sets of its samples."""
    for path in ("/", "/", "/healthz", "/readyz", "/no-such-page?token=abc"):
        _get(base + path)
    status, text = _get(base + "/metrics")
    assert status == 200
    samples: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        samples.setdefault(match["name"], []).append(dict(_LABEL.findall(match["labels"] or "")))
    return samples


def _used_app_metrics(offline_plan: PlanFn) -> set[str]:
    plan, out = offline_plan("production")
    rule_doc = yaml.safe_load((out / "rules" / "hello.rules.yml").read_text())
    recorded = rule_files.recorded_names(rule_doc)
    from_rules = set().union(*(rule_files.metric_names(e) for e in rule_files.exprs(rule_doc)))
    (config_map,) = [
        r for r in plan["resources"]
        if r["type"] == "kubernetes:core/v1:ConfigMap" and "grafana_dashboard" in r["inputs"]["metadata"]["labels"]
    ]  # fmt: skip
    (board,) = [json.loads(v) for v in config_map["inputs"]["data"].values()]
    from_dashboard = set().union(*(rule_files.metric_names(e) for e in dashboard_exprs(board)))
    used = (from_rules | from_dashboard) - recorded - NOT_FROM_THE_APP
    # The check below would pass vacuously if nothing were found.
    assert {"http_requests_total", "http_request_duration_seconds_bucket", "app_ready"} <= used, used
    return used


def check_contract(samples: dict[str, list[dict[str, str]]], used: set[str]) -> None:
    missing = used - set(samples)
    assert missing == set(), f"rules or dashboard read metrics the app does not export: {sorted(missing)}"
    assert set(rules.APP_METRICS) <= set(samples)
    # The labels the rules select and group on.
    for labelset in samples["http_requests_total"]:
        assert set(labelset) == {"method", "route", "code"}, labelset
        assert labelset["route"] in {"/", "/healthz", "/readyz", "/metrics", "other"}, labelset
    assert {"/", "/healthz", "/readyz", "other"} <= {s["route"] for s in samples["http_requests_total"]}
    assert all({"method", "route", "le"} == set(s) for s in samples["http_request_duration_seconds_bucket"])
    assert any(s["le"] == "+Inf" for s in samples["http_request_duration_seconds_bucket"])
    (build,) = samples["app_build_info"]
    assert set(build) == {"service", "version", "revision"}


def test_the_app_container_exports_what_rules_and_dashboard_read(
    offline_plan: PlanFn, run_app_container: Callable[..., Any]
) -> None:
    container = run_app_container(env={"SERVICE_NAME": "hello"})
    check_contract(scrape(container.url), _used_app_metrics(offline_plan))


@pytest.fixture
def app_process() -> Iterator[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1", "PORT": "0", "SERVICE_NAME": "hello"}
    proc = subprocess.Popen([sys.executable, str(SERVER)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        listening = json.loads(proc.stdout.readline())
        assert listening["event"] == "listening", listening
        yield f"http://127.0.0.1:{listening['port']}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_app_from_source_exports_what_rules_and_dashboard_read(offline_plan: PlanFn, app_process: str) -> None:
    check_contract(scrape(app_process), _used_app_metrics(offline_plan))


def test_a_metric_the_app_does_not_export_is_caught(app_process: str) -> None:
    with pytest.raises(AssertionError, match="http_requests_seconds_total"):
        check_contract(scrape(app_process), {"http_requests_total", "http_requests_seconds_total"})


# ---------------------------------------------------------------------------------------------
# The recording rules on real samples: a real Prometheus scrapes the running app.


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    status, body = _get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    assert status == 200, body
    result: list[dict[str, Any]] = json.loads(body)["data"]["result"]
    return result


@pytest.fixture
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        reason = "prometheus is missing (apt-get install prometheus; scripts/install-system-deps.sh installs it)"
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI must run this test, but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def test_the_recording_rules_work_on_the_real_apps_metrics(
    offline_plan: PlanFn, app_process: str, prometheus_binary: str, tmp_path: Path
) -> None:
    """Scraped every second and evaluated every second (the file says 1m), the staging rules record
    a request rate, a 0 error ratio (not an empty one: the app has answered no 5xx) and a p95."""
    _, out = offline_plan("staging")
    rule_doc = yaml.safe_load((out / "rules" / "hello.rules.yml").read_text())
    for group in rule_doc["groups"]:
        group["interval"] = "1s"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rule_doc, sort_keys=False))
    target = app_process.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yml")],
        "scrape_configs": [
            {"job_name": "hello", "static_configs": [{"targets": [target], "labels": {"namespace": "hello-staging"}}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "prometheus.log"
    log_file = log.open("w")
    server = subprocess.Popen(
        [prometheus_binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=log_file,
    )  # fmt: skip
    try:
        selector = '{namespace="hello-staging",job="hello",service="hello"}'
        wanted = {
            "rate": f"service:http_requests:rate5m{selector}",
            "errors": f"service:http_request_errors:ratio_rate5m{selector}",
            "errors_3d": f"service:http_request_errors:ratio_rate3d{selector}",
            "p95": f"service:http_request_duration_seconds:p95_5m{selector}",
        }
        found: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(found) < len(wanted):
            _get(app_process + "/")  # user traffic between scrapes: rates and the histogram move
            with contextlib.suppress(OSError):
                for name, promql in wanted.items():
                    result = _query(base, promql)
                    if result and result[0]["value"][1] not in ("NaN",):
                        found[name] = float(result[0]["value"][1])
            time.sleep(0.3)
        assert set(found) == set(wanted), f"recorded: {found}; Prometheus log:\n{log.read_text()[-3000:]}"
        assert found["rate"] > 0
        assert found["errors"] == 0 and found["errors_3d"] == 0
        assert 0 < found["p95"] <= 0.5
        up = _query(base, 'up{namespace="hello-staging",job="hello"}')
        assert [sample["value"][1] for sample in up] == ["1"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log_file.close()

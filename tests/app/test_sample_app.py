"""The sample service: routes, metrics, JSON request logs, configuration errors and graceful shutdown."""

from __future__ import annotations

import importlib.util
import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SERVER = Path(__file__).resolve().parents[2] / "app" / "server.py"


def _load_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sample_server", SERVER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["sample_server"] = module
    spec.loader.exec_module(module)
    return module


server = _load_server()


# ---- in-process units ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("PORT", "http"), ("PORT", "70000"), ("DRAIN_SECONDS", "-1"), ("SHUTDOWN_GRACE_SECONDS", "nan")],
)
def test_bad_environment_names_the_variable(key: str, value: str) -> None:
    with pytest.raises(server.ConfigError, match=rf"{key}='{value}'.*expected"):
        server.Config.from_env({key: value})


def test_defaults_match_the_contract() -> None:
    cfg = server.Config.from_env({})
    assert (cfg.port, cfg.drain_seconds, cfg.grace_seconds, cfg.test_delay) == (8080, 5.0, 20.0, False)
    # The image bakes APP_VERSION/GIT_REVISION from build args that may be empty.
    empty = server.Config.from_env({"APP_VERSION": "", "GIT_REVISION": "", "PORT": ""})
    assert (empty.version, empty.revision, empty.port) == ("0.0.0-dev", "unknown", 8080)


def test_routes_are_fixed_labels() -> None:
    assert [server.route_of(p) for p in ("/", "/healthz", "/readyz", "/metrics", "/a/b", "/metrics/x")] == [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "other",
        "other",
    ]


def test_histogram_is_cumulative_and_labels_are_escaped() -> None:
    env = {"SERVICE_NAME": 'we"ird\\name', "APP_VERSION": "1.2.3", "GIT_REVISION": "abc"}
    cfg = server.Config.from_env(env)
    metrics = server.Metrics(cfg)
    metrics.observe("GET", "/", 200, 0.003)
    metrics.observe("GET", "/", 500, 0.3)
    text = metrics.render(ready=False)
    assert 'http_requests_total{method="GET",route="/",code="200"} 1' in text
    assert 'http_requests_total{method="GET",route="/",code="500"} 1' in text
    assert 'http_request_duration_seconds_bucket{method="GET",route="/",le="0.005"} 1' in text
    assert 'http_request_duration_seconds_bucket{method="GET",route="/",le="0.25"} 1' in text
    assert 'http_request_duration_seconds_bucket{method="GET",route="/",le="0.5"} 2' in text
    assert 'http_request_duration_seconds_bucket{method="GET",route="/",le="+Inf"} 2' in text
    assert 'http_request_duration_seconds_count{method="GET",route="/"} 2' in text
    assert 'app_build_info{service="we\\"ird\\\\name",version="1.2.3",revision="abc"} 1' in text
    assert "app_ready 0" in text


def test_logger_writes_one_json_object_per_line() -> None:
    stream = io.StringIO()
    logger = server.Logger(server.Config.from_env({"SERVICE_NAME": "svc"}), stream)
    logger.log("request", status=200)
    logger.log("stopped", level="error", note="multi\nline")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "request" and first["status"] == 200 and first["service"] == "svc"
    assert second["level"] == "error" and second["note"] == "multi\nline"


# ---- the real process ---------------------------------------------------------------------------


def test_routes_metrics_and_request_logs(start_app: Any) -> None:
    app = start_app(SERVICE_NAME="shop", APP_VERSION="1.4.0", GIT_REVISION="deadbeef")
    status, _, body = app.get("/")
    assert status == 200
    assert json.loads(body) == {"service": "shop", "version": "1.4.0", "revision": "deadbeef"}
    assert app.get("/healthz")[::2] == (200, b"ok\n")
    assert app.get("/readyz")[0] == 200
    assert app.get("/no/such/page?token=s3cret")[0] == 404
    status, headers, body = app.get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'http_requests_total{method="GET",route="/",code="200"} 1' in text
    assert 'http_requests_total{method="GET",route="other",code="404"} 1' in text
    assert 'app_build_info{service="shop",version="1.4.0",revision="deadbeef"} 1' in text
    assert "app_ready 1" in text
    assert "/no/such/page" not in text  # raw paths never become labels

    app.wait_for_event("request", route="/metrics")
    requests = [rec for rec in app.lines if rec["event"] == "request"]
    assert [(r["route"], r["status"]) for r in requests] == [
        ("/", 200),
        ("/healthz", 200),
        ("/readyz", 200),
        ("other", 404),
        ("/metrics", 200),
    ]
    assert requests[3]["path"] == "/no/such/page"
    assert not any("s3cret" in line for line in app.raw)  # query strings are never logged
    assert all(isinstance(r["duration_seconds"], float) for r in requests)


def test_unsupported_method_is_counted_and_logged(start_app: Any) -> None:
    app = start_app()
    req = urllib.request.Request(app.base + "/", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 405
    assert app.wait_for_event("request", method="POST")["status"] == 405


@pytest.mark.parametrize(
    ("raw", "status", "route"),
    [
        (b"GET /x HTTP/1.0 extra\r\n\r\n", 400, "other"),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n", 414, "other"),
        (b"BREW / HTTP/1.0\r\n\r\n", 501, "/"),
    ],
    ids=["bad-request-line", "uri-too-long", "unknown-method"],
)
def test_malformed_requests_get_an_answer_a_log_line_and_a_count(
    start_app: Any, raw: bytes, status: int, route: str
) -> None:
    app = start_app()
    with socket.create_connection(("127.0.0.1", app.port), timeout=5) as sock:
        sock.sendall(raw)
        answer = b"".join(iter(lambda: sock.recv(4096), b""))
    assert f"Error code: {status}".encode() in answer  # the stdlib's error page
    record = app.wait_for_event("request", status=status)
    assert (record["method"], record["route"]) == ("other", route)
    metrics = app.get("/metrics")[2].decode()
    assert f'http_requests_total{{method="other",route="{route}",code="{status}"}} 1' in metrics
    assert app.proc.poll() is None


def test_delay_parameter_is_ignored_unless_enabled(start_app: Any) -> None:
    app = start_app()
    started = time.monotonic()
    assert app.get("/?delay=3")[0] == 200
    assert time.monotonic() - started < 1.5


def test_invalid_configuration_exits_2_naming_the_variable() -> None:
    result = subprocess.run(
        [sys.executable, str(SERVER)],
        env={"PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 2
    assert "PORT='eighty'" in result.stderr


def _slow_request(app: Any, seconds: float, out: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        started = time.monotonic()
        try:
            out["status"], _, out["body"] = app.get(f"/?delay={seconds}", timeout=30)
        except Exception as exc:  # recorded and asserted on by the test
            out["error"] = exc
        out["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_sigterm_drops_readiness_drains_and_finishes_in_flight(start_app: Any) -> None:
    app = start_app(ENABLE_TEST_DELAY="1", DRAIN_SECONDS="1", SHUTDOWN_GRACE_SECONDS="5")
    slow: dict[str, Any] = {}
    thread = _slow_request(app, 2.5, slow)
    assert app.wait_for_event("listening")
    time.sleep(0.3)  # the slow request is now in flight
    sent = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    app.wait_for_event("shutdown_started", signal="SIGTERM")

    # Draining: readiness is 503 at once, liveness and the rest still answer.
    assert app.get("/readyz")[0] == 503
    assert app.get("/healthz")[0] == 200
    assert "app_ready 0" in app.get("/metrics")[2].decode()

    # After the drain period the listener is closed: new connections are refused.
    app.wait_for_event("drained", timeout=3)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(app.base + "/healthz", timeout=2)

    thread.join(timeout=10)
    assert slow.get("status") == 200, slow
    assert json.loads(slow["body"])["service"] == "sample-service"
    assert app.proc.wait(timeout=5) == 0
    assert time.monotonic() - sent < 1 + 5
    assert app.wait_for_event("stopped")["inflight"] == 0


def test_grace_period_bounds_the_wait_for_in_flight_requests(start_app: Any) -> None:
    app = start_app(ENABLE_TEST_DELAY="1", DRAIN_SECONDS="0", SHUTDOWN_GRACE_SECONDS="0.5")
    slow: dict[str, Any] = {}
    thread = _slow_request(app, 10, slow)
    time.sleep(0.3)
    sent = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    assert app.proc.wait(timeout=5) == 1
    assert time.monotonic() - sent < 3
    stopped = app.wait_for_event("stopped")
    assert stopped["level"] == "error" and stopped["inflight"] == 1
    thread.join(timeout=10)
    assert "status" not in slow  # the request was cut off, not answered


# ---- release label and fault injection (deploy verification, components/commands/verify.py) ----


def test_build_info_carries_the_digest_of_image_ref_and_nothing_else() -> None:
    digest = "sha256:" + "ab" * 32
    cfg = server.Config.from_env({"SERVICE_NAME": "s", "IMAGE_REF": f"ghcr.io/acme/s@{digest}"})
    assert f'app_build_info{{service="s",version="0.0.0-dev",revision="unknown",digest="{digest}"}} 1' in (
        server.Metrics(cfg).render(ready=True)
    )
    for ref in ("", "ghcr.io/acme/s:1.0", 'x@sha256:"},evil="1'):
        assert server.Config.from_env({"IMAGE_REF": ref}).digest == ""


def test_faults_are_off_by_default() -> None:
    cfg = server.Config.from_env({})
    assert (cfg.fault_error_ratio, cfg.fault_delay_seconds) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("key", "value"), [("FAULT_ERROR_RATIO", "1.5"), ("FAULT_ERROR_RATIO", "nan"), ("FAULT_DELAY_SECONDS", "-1")]
)
def test_bad_fault_settings_name_the_variable(key: str, value: str) -> None:
    with pytest.raises(server.ConfigError, match=rf"{key}='{value}'.*expected"):
        server.Config.from_env({key: value})


def test_injected_errors_are_an_even_share_of_user_requests(start_app: Any) -> None:
    app = start_app(FAULT_ERROR_RATIO="0.2")
    statuses = [app.get("/")[0] for _ in range(20)]
    assert statuses.count(500) == 4 and statuses[4] == 500
    assert app.get("/healthz")[0] == 200  # probes never fail: the pod stays ready
    metrics = app.get("/metrics")[2].decode()
    assert 'http_requests_total{method="GET",route="/",code="500"} 4' in metrics


def test_injected_delay_slows_user_requests_only(start_app: Any) -> None:
    app = start_app(FAULT_DELAY_SECONDS="0.3")
    started = time.monotonic()
    assert app.get("/healthz")[0] == 200
    assert time.monotonic() - started < 0.25
    started = time.monotonic()
    assert app.get("/")[0] == 200
    assert time.monotonic() - started >= 0.3

"""The smoke command against the real app image on the real Docker engine."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from components.commands import smoke

FAST = ["--backoff", "0.2", "--request-timeout", "3"]


def _fails(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("FAIL ")]


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_healthy_container_passes(run_app_container: Any, app_image: Any, capsys: pytest.CaptureFixture[str]) -> None:
    app = run_app_container()
    code = smoke.main(
        [
            "--url", app.url,
            "--expect-version", app_image.version,
            "--expect-revision", app_image.revision,
            "--retries", "3", *FAST,
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert _fails(out) == []
    assert f"version {app_image.version!r}" in out


def test_wrong_version_fails(run_app_container: Any, app_image: Any, capsys: pytest.CaptureFixture[str]) -> None:
    app = run_app_container()
    code = smoke.main(["--url", app.url, "--expect-version", "9.9.9", "--retries", "1", *FAST])
    assert code == 1
    assert _fails(capsys.readouterr().out) == [
        f"FAIL version: {app.url}/ reports version {app_image.version!r}, expected '9.9.9'"
    ]


def test_draining_container_is_not_ready(run_app_container: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # After SIGTERM the app keeps serving for DRAIN_SECONDS with /readyz 503: exactly what smoke must catch.
    app = run_app_container(env={"DRAIN_SECONDS": "30", "SHUTDOWN_GRACE_SECONDS": "1"})
    app.engine.docker("kill", "--signal", "TERM", app.name)
    deadline = time.monotonic() + 10
    while _status(f"{app.url}/readyz") != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    code = smoke.main(["--url", app.url, "--retries", "1", *FAST])
    fails = _fails(capsys.readouterr().out)
    assert code == 1
    assert len(fails) == 1 and fails[0].startswith("FAIL readyz:") and "503" in fails[0], fails


def test_stopped_container_is_unreachable(run_app_container: Any, capsys: pytest.CaptureFixture[str]) -> None:
    app = run_app_container()
    app.remove()
    code = smoke.main(["--url", app.url, "--retries", "1", "--timeout", "5", *FAST])
    fails = _fails(capsys.readouterr().out)
    assert code == 1
    assert len(fails) == 3 and all("unreachable" in line for line in fails), fails

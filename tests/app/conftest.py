"""Run app/server.py as a real process on a free loopback port and read its JSON log lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SERVER = Path(__file__).resolve().parents[2] / "app" / "server.py"


class AppProcess:
    def __init__(self, env: dict[str, str]) -> None:
        full_env = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1", "PORT": "0", **env}
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER)],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        listening = self.wait_for_event("listening", timeout=10)
        self.port = int(listening["port"])
        self.base = f"http://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.raw.append(line)
                self.lines.append(json.loads(line))
                self._cond.notify_all()

    def wait_for_event(self, event: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for rec in self.lines:
                if rec.get("event") == event and all(rec.get(k) == v for k, v in match.items()):
                    return rec
            return None

        with self._cond:
            self._cond.wait_for(lambda: found() is not None or self.proc.poll() is not None, timeout)
            rec = found()
        if rec is None:
            stderr = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            raise AssertionError(f"no {event!r} log line matching {match}; got {self.lines}; stderr={stderr}")
        return rec

    def get(self, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def start_app() -> Iterator[Any]:
    started: list[AppProcess] = []

    def start(**env: str) -> AppProcess:
        app = AppProcess(env)
        started.append(app)
        return app

    yield start
    for app in started:
        app.stop()
        for stream in (app.proc.stdout, app.proc.stderr):
            if stream:
                stream.close()

"""The Alertmanager silence against a local server that checks the body like Alertmanager's API v2 does:
prometheus/alertmanager ``api/v2/openapi.yaml`` (commit 68fb2d5759b3a92c0bb2a1a13d4ef7ff5b06256d),
operation ``postSilences`` (``POST /api/v2/silences``, body ``postableSilence``: ``silence`` requires
``matchers`` (minItems 1; each ``matcher`` requires ``name``, ``value``, ``isRegex``), ``startsAt``,
``endsAt``, ``createdBy``, ``comment``; 200 answers ``{"silenceID": string}``, 400 a string)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.commands.silence import SilenceError, silence, silence_body

REQUIRED = ("matchers", "startsAt", "endsAt", "createdBy", "comment")
MATCHER_REQUIRED = ("name", "value", "isRegex")


def _valid(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body is not an object"
    missing = [k for k in REQUIRED if k not in body]
    if missing:
        return f"missing {missing}"
    if not isinstance(body["matchers"], list) or not body["matchers"]:
        return "matchers: minItems 1"
    for m in body["matchers"]:
        if any(k not in m for k in MATCHER_REQUIRED) or not isinstance(m["isRegex"], bool):
            return "bad matcher"
    for k in ("startsAt", "endsAt"):
        datetime.fromisoformat(body[k].replace("Z", "+00:00"))  # format: date-time
    return None


@pytest.fixture
def alertmanager() -> Iterator[tuple[str, list[Any]]]:
    received: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, body))
            problem = _valid(body) if self.path == "/api/v2/silences" else "not found"
            code, answer = (400, json.dumps(problem)) if problem else (200, json.dumps({"silenceID": "abc-1"}))
            data = answer.encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def test_the_silence_follows_the_api(alertmanager: tuple[str, list[Any]]) -> None:
    url, received = alertmanager
    starts = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    body = silence_body(service="hello", namespace="hello-production", stack="production", starts=starts,
                        window=timedelta(minutes=90))  # fmt: skip
    assert silence(url + "/", body) == "abc-1"
    path, sent = received[0]
    assert path == "/api/v2/silences" and _valid(sent) is None
    assert (sent["startsAt"], sent["endsAt"]) == ("2026-11-27T15:00:00.000Z", "2026-11-27T16:30:00.000Z")
    assert sent["matchers"][0] == {"name": "service", "value": "hello", "isRegex": False, "isEqual": True}


def test_a_rejected_silence_is_an_error(alertmanager: tuple[str, list[Any]]) -> None:
    url, _ = alertmanager
    with pytest.raises(SilenceError, match='answered 400: "missing'):
        silence(url, {"matchers": []})


def test_an_unreachable_alertmanager_is_an_error() -> None:
    with pytest.raises(SilenceError, match="ConnectionError"):
        silence("http://127.0.0.1:1", {"matchers": []}, timeout=1)


def test_the_validator_can_fail() -> None:
    assert _valid([]) == "body is not an object"
    assert _valid({"matchers": [{"name": "a", "value": "b"}], "startsAt": "2026-01-01T00:00:00Z",
                   "endsAt": "2026-01-01T00:00:00Z", "createdBy": "x", "comment": "y"}) == "bad matcher"  # fmt: skip

"""The smoke command against a tiny HTTP server run inside the test."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.commands import smoke

FAST = ["--backoff", "0.01", "--request-timeout", "2"]


@dataclass
class Behaviour:
    version: str = "1.2.3"
    not_ready_for: int = 0
    """How many /readyz requests answer 503 before it turns 200 (-1: always)."""
    healthz_body: bytes = b"ok"
    required_headers: dict[str, str] = field(default_factory=dict)
    """Headers that must be present, else a Cloudflare-Access-like 302 to a login page."""
    readyz_calls: int = 0
    seen_headers: list[dict[str, str]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    behaviour: Behaviour


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        behaviour = self.server.behaviour
        behaviour.seen_headers.append({k.lower(): v for k, v in self.headers.items()})
        for name, value in behaviour.required_headers.items():
            if self.headers.get(name) != value:
                self.send_response(302)
                self.send_header("Location", "https://team.cloudflareaccess.com/cdn-cgi/access/login")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if self.path == "/healthz":
            self._send(200, behaviour.healthz_body)
        elif self.path == "/readyz":
            behaviour.readyz_calls += 1
            ready = behaviour.not_ready_for >= 0 and behaviour.readyz_calls > behaviour.not_ready_for
            self._send(200 if ready else 503, b"ready" if ready else b"draining")
        elif self.path == "/":
            body = json.dumps({"service": "hello", "version": behaviour.version, "revision": "abc"})
            self._send(200, body.encode(), "application/json")
        else:
            self._send(404, b"not found")


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.behaviour = Behaviour()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.behaviour
    finally:
        httpd.shutdown()
        httpd.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fail_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("FAIL ")]


def test_healthy_service_passes(server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = server
    assert smoke.main(["--url", url, "--expect-version", "1.2.3", *FAST]) == 0
    out = capsys.readouterr().out
    assert "PASS healthz" in out and "PASS readyz" in out and "PASS version" in out
    assert _fail_lines(out) == []


def test_wrong_version_fails_with_one_line(server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]) -> None:
    url, behaviour = server
    behaviour.version = "1.2.2"
    code = smoke.main(["--url", url, "--expect-version", "1.2.3", "--retries", "2", *FAST])
    assert code == 1
    fails = _fail_lines(capsys.readouterr().out)
    assert fails == [f"FAIL version: {url}/ reports version '1.2.2', expected '1.2.3'"]


def test_not_ready_fails(server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]) -> None:
    url, behaviour = server
    behaviour.not_ready_for = -1
    assert smoke.main(["--url", url, "--retries", "1", *FAST]) == 1
    fails = _fail_lines(capsys.readouterr().out)
    assert len(fails) == 1
    assert fails[0].startswith("FAIL readyz:") and "503" in fails[0] and "not ready" in fails[0]
    assert behaviour.readyz_calls == 2  # first round plus one retry


def test_connection_refused_fails_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert smoke.main(["--url", url, "--retries", "1", *FAST]) == 1
    fails = _fail_lines(capsys.readouterr().out)
    assert [line.split(":")[0] for line in fails] == ["FAIL healthz", "FAIL readyz", "FAIL version"]
    assert all("unreachable" in line and "refused" in line.lower() for line in fails)


def test_retry_then_succeed(server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]) -> None:
    url, behaviour = server
    behaviour.not_ready_for = 2
    assert smoke.main(["--url", url, "--retries", "5", *FAST]) == 0
    captured = capsys.readouterr()
    assert "healthy (attempt 3)" in captured.out
    assert captured.err.count("retrying") == 2


def test_no_retries_fails_on_first_bad_round(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.not_ready_for = 1
    assert smoke.main(["--url", url, "--retries", "0", *FAST]) == 1


def test_overall_deadline_stops_retrying(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.not_ready_for = -1
    started = time.monotonic()
    code = smoke.main(["--url", url, "--retries", "1000", "--timeout", "0.6", "--backoff", "0.1"])
    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 3.0
    assert 2 <= behaviour.readyz_calls < 20


def test_backoff_doubles_and_is_capped() -> None:
    waits: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    options = smoke.SmokeOptions(
        url=f"http://127.0.0.1:{_free_port()}", retries=6, timeout=1000, backoff=1, max_backoff=8
    )
    import io

    assert smoke.smoke(options, out=io.StringIO(), log=io.StringIO(), clock=lambda: now[0], sleep=sleep) == 1
    assert waits == [1, 2, 4, 8, 8, 8]


def test_healthz_body_must_be_ok(server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]) -> None:
    url, behaviour = server
    behaviour.healthz_body = b"<html>login</html>"
    assert smoke.main(["--url", url, "--retries", "0", *FAST]) == 1
    assert _fail_lines(capsys.readouterr().out)[0].startswith("FAIL healthz:")


def test_access_redirect_is_a_failure_not_followed(
    server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]
) -> None:
    url, behaviour = server
    behaviour.required_headers = {"CF-Access-Client-Id": "id.access", "CF-Access-Client-Secret": "s3cr3t"}
    assert smoke.main(["--url", url, "--retries", "0", *FAST]) == 1
    fails = _fail_lines(capsys.readouterr().out)
    assert len(fails) == 3
    assert all("redirected (302)" in line and "service token" in line for line in fails)


def test_access_headers_from_env_are_sent_and_never_printed(
    server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, behaviour = server
    secret = "very-secret-value-0123456789abcdef"
    behaviour.required_headers = {"CF-Access-Client-Id": "id.access", "CF-Access-Client-Secret": secret}
    monkeypatch.setenv("CF_ACCESS_CLIENT_SECRET", secret)
    code = smoke.main(
        [
            "--url",
            url,
            "--header",
            "CF-Access-Client-Id: id.access",
            "--header-from-env",
            "CF-Access-Client-Secret=CF_ACCESS_CLIENT_SECRET",
            *FAST,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert secret not in captured.out + captured.err
    assert behaviour.seen_headers[0]["cf-access-client-secret"] == secret


def test_missing_env_var_is_a_usage_error(
    server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, behaviour = server
    monkeypatch.delenv("CF_ACCESS_CLIENT_SECRET", raising=False)
    code = smoke.main(["--url", url, "--header-from-env", "CF-Access-Client-Secret=CF_ACCESS_CLIENT_SECRET"])
    assert code == 2
    assert "CF_ACCESS_CLIENT_SECRET is not set" in capsys.readouterr().err
    assert behaviour.seen_headers == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "ftp://example.com"], "absolute http(s) URL"),
        (["--url", "example.com"], "absolute http(s) URL"),
        (["--url", "http://x", "--retries", "-1"], "expected 0 or more"),
        (["--url", "http://x", "--timeout", "0"], "positive number"),
        (["--url", "http://x", "--header", "no-colon"], "'Name: value'"),
        (["--url", "http://x", "--header-from-env", "Name"], "Header-Name=ENV_VAR"),
        ([], "--url"),
        (["--url", "http://x", "--header", "Bad Name: v"], "not an HTTP token"),
        (["--url", "http://x", "--header-from-env", "Bad:Name=V"], "not an HTTP token"),
    ],
    ids=["ftp", "no_scheme", "retries", "timeout", "header_colon", "header_env", "no_url", "name", "env_name"],
)
def test_bad_arguments_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(argv) == 2
    assert message in capsys.readouterr().err


def test_revision_is_checked_by_prefix(server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = server  # the server reports revision "abc" (too short to ever match)
    assert smoke.main(["--url", url, "--expect-revision", "abcdef0", "--retries", "0", *FAST]) == 1
    assert _fail_lines(capsys.readouterr().out) == [f"FAIL version: {url}/ reports revision 'abc', expected 'abcdef0'"]


@pytest.mark.parametrize(
    ("reported", "expected", "ok"),
    [
        ("0123456789abcdef", "0123456", True),
        ("0123456", "0123456789abcdef", True),
        ("0123456789abcdef", "0123457", False),
        ("012345", "012345", False),
    ],
    ids=["long_reported", "long_expected", "different", "too_short"],
)
def test_revision_prefix_rule(reported: str, expected: str, ok: bool) -> None:
    assert smoke._revision_matches(reported, expected) is ok


def test_registered_in_the_cli(server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str]) -> None:
    from components.commands import cli

    url, _ = server
    assert cli.main(["smoke", "--url", url, *FAST]) == 0
    assert "healthy" in capsys.readouterr().out


# ---- abuse: header values from the environment, and servers that break the protocol ----------


@pytest.mark.parametrize(
    "value",
    ["line1\nX-Injected: yes", "value\r", "esc\x1b[2J", "bell\x07"],
    ids=["lf", "cr", "escape", "control"],
)
def test_header_value_with_a_line_break_is_refused_without_echoing_it(
    value: str, server: tuple[str, Behaviour], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 9110 section 5.5: no CR, LF or NUL in a field value (http.client would raise a
    ValueError quoting the value, i.e. the secret, in a traceback)."""
    url, behaviour = server
    secret = "s3cr3t-" + value
    monkeypatch.setenv("CF_ACCESS_CLIENT_SECRET", secret)
    code = smoke.main(["--url", url, "--header-from-env", "CF-Access-Client-Secret=CF_ACCESS_CLIENT_SECRET"])
    captured = capsys.readouterr()
    assert code == 2
    assert "CF_ACCESS_CLIENT_SECRET holds a line break or control character" in captured.err
    assert "s3cr3t" not in captured.out + captured.err
    assert "Traceback" not in captured.err
    assert behaviour.seen_headers == []  # refused before any request


def test_a_tab_inside_a_header_value_is_allowed() -> None:
    assert smoke.header_problem("X-A", "a\tb") is None
    assert smoke.header_problem("X A", "b") is not None


def _raw_server(answer: bytes | None, mode: str = "answer") -> tuple[str, list[int], threading.Event]:
    """A TCP server that answers every connection with ``answer`` bytes (or resets/hangs/closes)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    accepted = [0]
    stop = threading.Event()

    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            accepted[0] += 1
            conn.settimeout(2)
            try:
                conn.recv(65536)
                if mode == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                elif answer is not None:
                    conn.sendall(answer)
            except OSError:
                pass
            if mode == "hang":
                held.append(conn)  # never answered, closed when the server stops
            else:
                conn.close()
        for conn in held:
            conn.close()
        listener.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}", accepted, stop


PROTOCOL_FAILURES = [
    ("bad_status_line", b"HTTP/1.1 two-hundred OK\r\n\r\n", "answer", "BadStatusLine"),
    ("garbage", b"hello there\r\n\r\n", "answer", "BadStatusLine"),
    ("long_header_line", b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", "answer", "LineTooLong"),
    ("closed_without_answer", None, "answer", "RemoteDisconnected"),
    ("reset", None, "reset", "ConnectionResetError"),
    ("timeout", None, "hang", "timed out"),
    ("truncated_body", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok", "answer", "IncompleteRead"),
]


@pytest.mark.parametrize(
    ("case", "answer", "mode", "expected"), PROTOCOL_FAILURES, ids=[c[0] for c in PROTOCOL_FAILURES]
)
def test_every_protocol_failure_is_a_retried_one_line_failure(
    case: str, answer: bytes | None, mode: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, accepted, stop = _raw_server(answer, mode)
    try:
        code = smoke.main(["--url", url, "--retries", "1", "--backoff", "0.01", "--request-timeout", "0.5"])
    finally:
        stop.set()
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    fails = _fail_lines(captured.out)
    assert len(fails) == 3, captured.out
    assert any(expected in line for line in fails), fails
    assert all(len(line) < 400 for line in fails)
    assert "attempt 1/2 failed" in captured.err  # retried, not fatal
    assert accepted[0] == 6  # 3 checks x 2 rounds


def test_a_tls_failure_is_a_retried_one_line_failure(capsys: pytest.CaptureFixture[str]) -> None:
    """https against a server that speaks plain HTTP: ssl.SSLError (an OSError) on every check."""
    url, accepted, stop = _raw_server(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    try:
        code = smoke.main(["--url", url.replace("http:", "https:"), "--retries", "1", "--backoff", "0.01"])
    finally:
        stop.set()
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    fails = _fail_lines(captured.out)
    assert len(fails) == 3 and all("SSL" in line for line in fails), fails
    assert accepted[0] == 6  # 3 checks x 2 rounds: retried

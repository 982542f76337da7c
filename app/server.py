"""The sample service that the pipeline ships: a small stdlib-only HTTP service.

Routes: ``/`` (service identity), ``/healthz`` (liveness), ``/readyz`` (readiness: 503 from the
moment SIGTERM arrives), ``/metrics`` (Prometheus text exposition).

Environment (all optional):
  SERVICE_NAME            service name in ``/``, logs and ``app_build_info`` (default ``sample-service``)
  APP_VERSION             version string (default ``0.0.0-dev``)
  GIT_REVISION            source revision (default ``unknown``)
  HOST                    listen address (default ``0.0.0.0``)
  PORT                    listen port (default ``8080``)
  DRAIN_SECONDS           after SIGTERM, keep serving this long with readiness 503 so that load
                          balancers and endpoints stop sending traffic (default ``5``)
  SHUTDOWN_GRACE_SECONDS  after draining, the longest wait for in-flight requests before exit (default ``20``)
  MAX_CONCURRENT_REQUESTS connections served at once, one thread each (default ``32``); more wait in
                          the kernel's listen backlog instead of pinning more threads
  REQUEST_READ_SECONDS    the whole request (line and headers) must arrive within this time after the
                          connection is taken, however slowly it trickles in (default ``10``)
  ENABLE_TEST_DELAY       ``1`` honours ``GET /?delay=SECONDS`` (max 30) so tests can hold a request
                          in flight; off by default, the parameter is then ignored
  IMAGE_REF               the image the pod runs (``repo@sha256:…``, set by the Workload); its digest
                          becomes the ``digest`` label of ``app_build_info`` (left out when unset), which
                          deploy verification and the alerts' ``release`` label select on
  FAULT_ERROR_RATIO       fault injection for verification tests: this share (0 to 1) of ``GET /`` is
                          answered 500, spread evenly (0.2: every fifth request); default 0, off
  FAULT_DELAY_SECONDS     fault injection: each ``GET /`` waits this long first (max 30); default 0, off

Shutdown: readiness drops at SIGTERM; the service keeps accepting for the drain period; then it
stops taking connections, accepts and serves every connection the kernel had already queued in
the listen backlog (closing a listener with queued connections resets them), closes the listener
and waits for in-flight requests.

Exit status: 0 after a clean drain, 1 when the grace period ran out with requests still in flight,
2 on invalid configuration.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import selectors
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROUTES = frozenset({"/", "/healthz", "/readyz", "/metrics"})
# Label values are bounded: anything else is folded into "other" so that a scanner cannot
# blow up the metric cardinality.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_TEST_DELAY_SECONDS = 30.0
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


class ConfigError(ValueError):
    """An environment variable has a value the service cannot use."""


@dataclass(frozen=True)
class Config:
    service: str
    version: str
    revision: str
    host: str
    port: int
    drain_seconds: float
    grace_seconds: float
    test_delay: bool
    max_concurrent: int = 32
    read_seconds: float = 10.0
    digest: str = ""
    fault_error_ratio: float = 0.0
    fault_delay_seconds: float = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        return cls(
            # An empty value (an unset build argument) counts as unset.
            service=env.get("SERVICE_NAME") or "sample-service",
            version=env.get("APP_VERSION") or "0.0.0-dev",
            revision=env.get("GIT_REVISION") or "unknown",
            host=env.get("HOST") or "0.0.0.0",  # noqa: S104 - a container must listen on all interfaces
            port=_port(env.get("PORT") or "8080"),
            drain_seconds=_seconds(env, "DRAIN_SECONDS", "5"),
            grace_seconds=_seconds(env, "SHUTDOWN_GRACE_SECONDS", "20"),
            test_delay=env.get("ENABLE_TEST_DELAY", "") == "1",
            max_concurrent=_positive_int(env, "MAX_CONCURRENT_REQUESTS", "32"),
            read_seconds=_seconds(env, "REQUEST_READ_SECONDS", "10", positive=True),
            digest=_digest_of(env.get("IMAGE_REF") or ""),
            fault_error_ratio=_ratio(env, "FAULT_ERROR_RATIO"),
            fault_delay_seconds=min(_seconds(env, "FAULT_DELAY_SECONDS", "0"), MAX_TEST_DELAY_SECONDS),
        )


def _digest_of(image_ref: str) -> str:
    """``sha256:…`` of ``repo@sha256:…``; "" for anything else (a tag, nothing)."""
    match = _DIGEST.search(image_ref)
    return match.group(1) if match else ""


def _ratio(env: Mapping[str, str], key: str) -> float:
    raw = env.get(key) or "0"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ConfigError(f"{key}={raw!r}: expected a share between 0 and 1")
    return value


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ConfigError(f"PORT={raw!r}: expected an integer port between 0 and 65535")
    return port


def _seconds(env: Mapping[str, str], key: str, default: str, *, positive: bool = False) -> float:
    raw = env.get(key, default)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise ConfigError(f"{key}={raw!r}: expected a {'positive' if positive else 'non-negative'} number of seconds")
    return value


def _positive_int(env: Mapping[str, str], key: str, default: str) -> int:
    raw = env.get(key, default)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 10_000:
        raise ConfigError(f"{key}={raw!r}: expected an integer from 1 to 10000")
    return value


def route_of(path: str) -> str:
    """The fixed route label for a request path (query string already removed)."""
    return path if path in ROUTES else "other"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt(value: float) -> str:
    return "+Inf" if value == math.inf else repr(float(value))


class Metrics:
    """Thread-safe request counter and latency histogram, rendered in the text exposition format."""

    def __init__(self, config: Config) -> None:
        self._lock = threading.Lock()
        self._config = config
        self._requests: dict[tuple[str, str, str], int] = {}
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = {}
        self._counts: dict[tuple[str, str], int] = {}

    def observe(self, method: str, route: str, code: int, seconds: float) -> None:
        key = (method, route)
        with self._lock:
            self._requests[(method, route, str(code))] = self._requests.get((method, route, str(code)), 0) + 1
            buckets = self._buckets.setdefault(key, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self._sums[key] = self._sums.get(key, 0.0) + seconds
            self._counts[key] = self._counts.get(key, 0) + 1

    def render(self, ready: bool) -> str:
        c = self._config
        digest = f',digest="{c.digest}"' if c.digest else ""  # sha256:<hex>: nothing to escape
        lines = [
            "# HELP http_requests_total HTTP requests served, by method, route and status code.",
            "# TYPE http_requests_total counter",
        ]
        with self._lock:
            for (method, route, code), n in sorted(self._requests.items()):
                lines.append(f'http_requests_total{{method="{method}",route="{route}",code="{code}"}} {n}')
            lines += [
                "# HELP http_request_duration_seconds Time to answer an HTTP request, by method and route.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            for key in sorted(self._counts):
                method, route = key
                labels = f'method="{method}",route="{route}"'
                cumulative = (*self._buckets[key], self._counts[key])
                for bound, n in zip((*BUCKETS, math.inf), cumulative, strict=True):
                    lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{_fmt(bound)}"}} {n}')
                lines.append(f"http_request_duration_seconds_sum{{{labels}}} {self._sums[key]!r}")
                lines.append(f"http_request_duration_seconds_count{{{labels}}} {self._counts[key]}")
        lines += [
            "# HELP app_build_info Build information; the value is always 1.",
            "# TYPE app_build_info gauge",
            f'app_build_info{{service="{_escape(c.service)}",version="{_escape(c.version)}",'
            f'revision="{_escape(c.revision)}"{digest}}} 1',
            "# HELP app_ready 1 while the service accepts new traffic, 0 once shutdown has begun.",
            "# TYPE app_ready gauge",
            f"app_ready {1 if ready else 0}",
        ]
        return "\n".join(lines) + "\n"


class Logger:
    """One JSON object per line on stdout; a lock keeps lines from concurrent threads whole."""

    def __init__(self, config: Config, stream: Any = None) -> None:
        self._base = {"service": config.service, "version": config.version}
        self._stream = stream if stream is not None else sys.stdout
        self._lock = threading.Lock()

    def log(self, event: str, level: str = "info", **fields: Any) -> None:
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "event": event,
            **self._base,
            **fields,
        }
        line = json.dumps(record, separators=(",", ":"), default=str)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()


BACKLOG_QUIET_SECONDS = 0.1
"""After the drain, the backlog counts as empty once no connection has arrived for this long."""
BACKLOG_MAX_SECONDS = 2.0
"""Upper bound on emptying the backlog, in case clients never stop arriving."""


class Server(HTTPServer):
    """HTTP server with a bounded number of request threads and a stop that resets no connection."""

    # Listen backlog: room for a burst while every worker is busy (the stdlib default is 5).
    request_queue_size = 128

    def __init__(self, config: Config, logger: Logger | None = None) -> None:
        self.config = config
        self.logger = logger or Logger(config)
        self.metrics = Metrics(config)
        self.ready = True
        self._inflight = 0
        self._idle = threading.Condition()
        self._slots = threading.BoundedSemaphore(config.max_concurrent)
        self._stopping = threading.Event()
        self._faults = 0
        self._fault_lock = threading.Lock()
        super().__init__((config.host, config.port), Handler)

    def serve(self) -> None:
        """Accept while not stopping (a free worker slot first, so threads stay bounded), then take
        and serve everything already queued, then close the listener."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if not self._slots.acquire(timeout=0.2):
                    continue
                if not selector.select(timeout=0.2) or not self._accept_one():
                    self._slots.release()
            self._accept_backlog(selector)
        self.server_close()

    def stop_accepting(self) -> None:
        """Ask :meth:`serve` to empty the backlog and close the listener."""
        self._stopping.set()

    def _accept_one(self) -> bool:
        """Accept one queued connection and serve it on its own thread (holding a taken slot)."""
        try:
            conn, address = self.socket.accept()
        except (BlockingIOError, InterruptedError):
            return False
        with self._idle:
            self._inflight += 1
        threading.Thread(target=self._serve_connection, args=(conn, address), daemon=True).start()
        return True

    def _accept_backlog(self, selector: selectors.BaseSelector) -> None:
        """Serve every connection the kernel completed before the stop; closing the listener with
        them still queued would reset each one."""
        self.socket.setblocking(False)
        deadline = time.monotonic() + BACKLOG_MAX_SECONDS
        while time.monotonic() < deadline and selector.select(timeout=BACKLOG_QUIET_SECONDS):
            self._slots.acquire()
            if not self._accept_one():
                self._slots.release()

    def _serve_connection(self, conn: socket.socket, address: Any) -> None:
        try:
            self.finish_request(conn, address)
        except Exception:  # one broken connection must not stop the server
            self.logger.log("connection_error", level="warning", remote_addr=str(address[0]))
        finally:
            self.shutdown_request(conn)
            self._slots.release()
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is in flight or ``timeout`` passes; True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout=timeout)

    def inject_fault(self) -> bool:
        """Fault injection for ``GET /`` (off by default): wait FAULT_DELAY_SECONDS, then True for an
        evenly spread FAULT_ERROR_RATIO share of requests (the n-th fails when floor(n*ratio) steps up)."""
        c = self.config
        if c.fault_delay_seconds:
            time.sleep(c.fault_delay_seconds)
        if not c.fault_error_ratio:
            return False
        with self._fault_lock:
            self._faults += 1
            n = self._faults
        return math.floor(n * c.fault_error_ratio) > math.floor((n - 1) * c.fault_error_ratio)

    @property
    def inflight(self) -> int:
        with self._idle:
            return self._inflight


class _DeadlineReader(io.RawIOBase):
    """Socket reads that all share one deadline, so a client trickling a byte at a time cannot keep
    a request open by restarting a per-read timeout."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request not received within REQUEST_READ_SECONDS")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = "sample-service"
    sys_version = ""
    # HTTP/1.0: one request per connection, so an idle keep-alive socket never holds up shutdown.
    protocol_version = "HTTP/1.0"
    # Timeout for writing the answer; reading the request has its own deadline (setup).
    timeout = 10

    _started = 0.0

    def setup(self) -> None:
        super().setup()
        self._started = time.monotonic()
        self.rfile.close()
        reader = _DeadlineReader(self.connection, self._started + self.server.config.read_seconds)
        self.rfile = io.BufferedReader(reader)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.connection.settimeout(self.timeout)  # the request is in: from here on only writes
        return parsed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.connection.settimeout(self.timeout)
        super().send_error(code, message, explain)

    def do_GET(self) -> None:
        self._dispatch(body=True)

    def do_HEAD(self) -> None:
        self._dispatch(body=False)

    def _not_allowed(self) -> None:
        self._reply(405, "text/plain; charset=utf-8", b"method not allowed\n", True, {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed  # noqa: N815

    def _dispatch(self, body: bool) -> None:
        url = urlsplit(self.path)
        srv = self.server
        if url.path == "/":
            self._maybe_delay(url.query)
            if srv.inject_fault():
                self._reply(500, "text/plain; charset=utf-8", b"injected fault (FAULT_ERROR_RATIO)\n", body)
                return
            c = srv.config
            payload = {"service": c.service, "version": c.version, "revision": c.revision}
            self._reply(200, "application/json", json.dumps(payload).encode() + b"\n", body)
        elif url.path == "/healthz":
            self._reply(200, "text/plain; charset=utf-8", b"ok\n", body)
        elif url.path == "/readyz":
            if srv.ready:
                self._reply(200, "text/plain; charset=utf-8", b"ready\n", body)
            else:
                self._reply(503, "text/plain; charset=utf-8", b"shutting down\n", body)
        elif url.path == "/metrics":
            text = srv.metrics.render(srv.ready).encode()
            self._reply(200, "text/plain; version=0.0.4; charset=utf-8", text, body)
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found\n", body)

    def _maybe_delay(self, query: str) -> None:
        if not self.server.config.test_delay:
            return
        values = parse_qs(query).get("delay")
        if values:
            try:
                delay = float(values[0])
            except ValueError:
                return
            if math.isfinite(delay) and delay > 0:
                time.sleep(min(delay, MAX_TEST_DELAY_SECONDS))

    def _reply(self, code: int, ctype: str, data: bytes, body: bool, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    # send_response() and send_error() both end up here exactly once per request, including the
    # stdlib's own 400/501 answers, so this is the one place that records metrics and the log line.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = int(code) if str(code).isdigit() else 0
        elapsed = time.monotonic() - self._started
        # A request rejected while parsing (400, 414) has no method, path or headers yet.
        method = self.command if self.command in METHODS else "other"
        path = urlsplit(getattr(self, "path", "")).path
        headers = getattr(self, "headers", None)
        route = route_of(path)
        self.server.metrics.observe(method, route, status, elapsed)
        self.server.logger.log(
            "request",
            method=method,
            route=route,
            path=path[:200],  # never the query string: it may carry tokens
            status=status,
            duration_seconds=round(elapsed, 6),
            remote_addr=self.client_address[0] if self.client_address else "",
            user_agent=(headers.get("User-Agent", "") if headers else "")[:200],
        )

    def log_error(self, format: str, *args: Any) -> None:
        # Protocol errors are followed by send_error -> log_request; that line is enough.
        pass

    def log_message(self, format: str, *args: Any) -> None:
        self.server.logger.log("http", level="warning", message=format % args)


def graceful_stop(server: Server, reason: str) -> threading.Thread:
    """Readiness off now; keep accepting for the drain period; then stop accepting (serve() empties
    the backlog and closes the listener)."""
    server.ready = False
    cfg = server.config
    server.logger.log(
        "shutdown_started", signal=reason, drain_seconds=cfg.drain_seconds, grace_seconds=cfg.grace_seconds
    )

    def run() -> None:
        time.sleep(cfg.drain_seconds)
        server.stop_accepting()

    thread = threading.Thread(target=run, name="graceful-stop", daemon=True)
    thread.start()
    return thread


def finish(server: Server) -> int:
    """After the listener is closed: wait up to the grace period for in-flight requests."""
    server.logger.log("drained", inflight=server.inflight)
    if server.wait_idle(server.config.grace_seconds):
        server.logger.log("stopped", inflight=0)
        return 0
    server.logger.log(
        "stopped",
        level="error",
        inflight=server.inflight,
        message="grace period expired with requests still in flight",
    )
    return 1


def main(env: Mapping[str, str] | None = None) -> int:
    try:
        config = Config.from_env(os.environ if env is None else env)
    except ConfigError as exc:
        print(f"sample-service: invalid configuration: {exc}", file=sys.stderr)
        return 2
    server = Server(config)
    stopper: list[threading.Thread] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopper:
            stopper.append(graceful_stop(server, signal.Signals(signum).name))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = server.server_address[:2]
    server.logger.log("listening", host=host, port=port, revision=config.revision)
    server.serve()
    return finish(server)


if __name__ == "__main__":
    sys.exit(main())

"""The app under pressure: clients arriving until the drain ends, trickling clients, many of them.

Each test runs app/server.py as a real process on loopback (tests/app/conftest.py). Resets are
what a client sees when the server closes a connection the kernel had already accepted into the
listen backlog (Linux answers it with RST: net/ipv4/inet_connection_sock.c, inet_csk_listen_stop);
behind kube-proxy or cloudflared each one is a 502.
"""

from __future__ import annotations

import errno
import http.client
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

RESET_ERRORS = (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError, ConnectionAbortedError)


class Hammer:
    """Client threads that open a connection, GET /, read the answer, and start again until ``until``."""

    def __init__(self, port: int, threads: int) -> None:
        self.port = port
        self.until = float("inf")
        self.ok = 0
        self.resets = 0
        self.refused = 0
        self.other: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)

    def _one(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            return "ok" if response.status == 200 else f"status {response.status}"
        except ConnectionRefusedError:
            return "refused"
        except RESET_ERRORS:
            return "reset"
        except OSError as error:
            return "reset" if error.errno == errno.ECONNRESET else f"{type(error).__name__}: {error}"
        finally:
            conn.close()

    def _run(self) -> None:
        while time.monotonic() < self.until:
            outcome = self._one()
            with self._lock:
                if outcome == "ok":
                    self.ok += 1
                elif outcome == "reset":
                    self.resets += 1
                elif outcome == "refused":
                    self.refused += 1
                    return  # the listener is closed: nobody connects any more
                else:
                    self.other.append(outcome)


@pytest.mark.parametrize("run", [1, 2, 3], ids=["run1", "run2", "run3"])
def test_clients_arriving_until_the_drain_ends_see_no_reset(start_app: Any, run: int) -> None:
    """Every connection the kernel accepted before the listener stops is served, none reset."""
    drain = 1.5
    app = start_app(DRAIN_SECONDS=str(drain), SHUTDOWN_GRACE_SECONDS="10", MAX_CONCURRENT_REQUESTS="4")
    hammer = Hammer(app.port, threads=48)
    hammer.start()
    time.sleep(0.5)
    app.proc.send_signal(signal.SIGTERM)
    hammer.until = time.monotonic() + drain  # clients keep arriving until the end of the drain
    assert app.proc.wait(timeout=20) == 0
    hammer.join()
    assert hammer.ok > 100, vars(hammer)
    assert hammer.other == [], hammer.other
    assert hammer.resets == 0, f"{hammer.resets} resets, {hammer.ok} answered"


def _trickle(port: int, stop: threading.Event, opened: list[socket.socket]) -> None:
    """A client that sends one header byte every 0.2 s and never finishes its request."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return
    opened.append(sock)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\n")
        while not stop.is_set():
            sock.sendall(b"X")
            stop.wait(0.2)
    except OSError:
        pass


def _threads_of(pid: int) -> int:
    return len(os.listdir(Path("/proc") / str(pid) / "task"))


def test_trickling_clients_pin_a_bounded_number_of_threads(start_app: Any) -> None:
    """400 clients trickling header bytes: the app's threads stay bounded by MAX_CONCURRENT_REQUESTS,
    each trickler is cut at the whole-request deadline, and a normal request gets through after it."""
    app = start_app(MAX_CONCURRENT_REQUESTS="8", REQUEST_READ_SECONDS="1")
    stop = threading.Event()
    opened: list[socket.socket] = []
    clients = [threading.Thread(target=_trickle, args=(app.port, stop, opened), daemon=True) for _ in range(400)]
    try:
        for client in clients:
            client.start()
        peak = 0
        for _ in range(10):
            time.sleep(0.1)
            peak = max(peak, _threads_of(app.proc.pid))
        assert peak <= 8 + 4, f"{peak} threads for 8 workers"  # + main, signal stopper, spare
        # Tricklers are cut at the 1 s deadline, so the backlog drains and a real request is served.
        started = time.monotonic()
        status, _, _ = app.get("/healthz", timeout=60)
        assert status == 200
        assert time.monotonic() - started < 60
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=5)
        for sock in opened:
            sock.close()


def test_one_trickling_client_does_not_hold_up_shutdown(start_app: Any) -> None:
    """A trickler is cut at the whole-request deadline (not per line), so the stop exits 0 well
    inside the grace period instead of waiting it out and exiting 1."""
    app = start_app(DRAIN_SECONDS="0.2", SHUTDOWN_GRACE_SECONDS="10", REQUEST_READ_SECONDS="1")
    stop = threading.Event()
    opened: list[socket.socket] = []
    client = threading.Thread(target=_trickle, args=(app.port, stop, opened), daemon=True)
    client.start()
    time.sleep(0.3)
    sent = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    try:
        assert app.proc.wait(timeout=15) == 0
        assert time.monotonic() - sent < 3, "shutdown waited for the trickling client"
    finally:
        stop.set()
        client.join(timeout=5)
        for sock in opened:
            sock.close()

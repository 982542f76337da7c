"""Smoke test of a deployed service: ``python -m components smoke --url URL``.

Checks the app contract on a base URL:

* ``GET /healthz`` answers 200 with body ``ok``;
* ``GET /readyz`` answers 200;
* ``GET /`` answers 200 with a JSON object whose ``version`` (and, when asked, ``revision``)
  is the expected one.

A round runs every check; failed rounds are retried with exponential backoff until
the retries or the overall deadline run out. Exit 0 when a round passes, 1 with one
line per failed check otherwise, 2 on bad arguments.

Redirects are never followed: behind Cloudflare Access a missing or wrong service
token answers with a redirect to the login page, which must count as a failure
rather than a healthy 200 from the login page.

Every network or protocol failure (refused, reset, timeout, TLS, a malformed status line, an
over-long header line, a connection closed mid-answer) is a failed check like any other: it is
retried, and reported in one line.

Header values (for example ``CF-Access-Client-Secret``) are never printed. Pass
secret ones with ``--header-from-env NAME=ENV_VAR`` so they appear neither on the
command line nor in CI logs. Header names must be HTTP tokens and values must hold no
CR, LF or other control character (RFC 9110 section 5.5): they are checked before any
request, and the error names the header and the variable, never the value.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

EXIT_HEALTHY = 0
EXIT_FAILING = 1
EXIT_USAGE = 2

_BODY_LIMIT = 64 * 1024
_DETAIL_LIMIT = 300

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
"""RFC 9110 section 5.1: a field name is a token."""
_BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""RFC 9110 section 5.5: field values hold no CR, LF, NUL or other control character (HTAB is allowed)."""
NETWORK_ERRORS = (OSError, http.client.HTTPException, urllib.error.URLError)
"""Everything a request can fail with on the way: OSError covers refused, reset, timeout and TLS
(ssl.SSLError); HTTPException covers BadStatusLine, LineTooLong, RemoteDisconnected, IncompleteRead."""


def header_problem(name: str, value: str) -> str | None:
    """What makes a header unsendable, without quoting its value; None when it is fine."""
    if not _TOKEN.match(name):
        return f"header name {name!r} is not an HTTP token"
    if _BAD_VALUE_CHARS.search(value):
        return f"the value of header {name} holds a line break or control character"
    return None


def _one_line(text: str) -> str:
    """``text`` on one bounded line: a server's bytes in an error never spill over the report."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _DETAIL_LIMIT else flat[: _DETAIL_LIMIT - 3] + "..."


@dataclass(frozen=True, kw_only=True)
class SmokeOptions:
    """What to check and how patiently."""

    url: str
    """Base URL of the service, e.g. ``https://svc.staging.example.com``; no default."""
    expect_version: str | None = None
    """Version ``GET /`` must report; default None (any non-empty version passes)."""
    expect_revision: str | None = None
    """Git revision ``GET /`` must report (a prefix of at least 7 characters matches either
    way, so a short SHA matches the full one); default None (not checked)."""
    retries: int = 10
    """Extra rounds after the first failing one; default 10."""
    timeout: float = 120.0
    """Overall deadline in seconds for all rounds together; default 120."""
    request_timeout: float = 10.0
    """Per-request timeout in seconds (capped by the time left); default 10."""
    backoff: float = 1.0
    """Wait before the first retry, doubled each retry; default 1 second."""
    max_backoff: float = 15.0
    """Upper bound for a single wait between rounds; default 15 seconds."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra request headers (values are never printed); default none."""


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """Outcome of one check in one round."""

    name: str
    """Check name: ``healthz``, ``readyz`` or ``version``."""
    ok: bool
    """Whether the check passed."""
    detail: str
    """One human-readable line explaining the outcome."""


@dataclass(frozen=True, kw_only=True)
class _Response:
    status: int
    body: bytes
    location: str | None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _join(base: str, path: str) -> str:
    return base.rstrip("/") + path


def _fetch(url: str, headers: Mapping[str, str], timeout: float) -> _Response:
    # options_from_args admits only http(s) base URLs, so no file: or custom scheme reaches here.
    request = urllib.request.Request(  # noqa: S310
        url, headers={"User-Agent": "service-lifecycle-smoke", **headers}
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = response.read(_BODY_LIMIT)
            missing = getattr(response, "length", None)
            if len(body) < _BODY_LIMIT and missing:  # the server closed before its Content-Length
                raise http.client.IncompleteRead(body, missing)
            return _Response(status=response.status, body=body, location=None)
    except urllib.error.HTTPError as error:
        body = error.read(_BODY_LIMIT) if error.fp is not None else b""
        return _Response(status=error.code, body=body, location=error.headers.get("Location"))


def _describe_error(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        if isinstance(reason, BaseException):
            return _one_line(f"{type(reason).__name__}: {reason}")
        return _one_line(str(reason))
    return _one_line(f"{type(error).__name__}: {error}")


def _status_problem(url: str, response: _Response) -> str | None:
    if 300 <= response.status < 400:
        return (
            f"{url} redirected ({response.status}) to {response.location or '?'}: "
            "not following; behind Cloudflare Access this means the service token "
            "headers are missing or rejected"
        )
    if response.status != 200:
        return f"{url} returned HTTP {response.status}, expected 200"
    return None


def _check_healthz(base: str, headers: Mapping[str, str], timeout: float) -> CheckResult:
    url = _join(base, "/healthz")
    response = _fetch(url, headers, timeout)
    problem = _status_problem(url, response)
    if problem is not None:
        return CheckResult(name="healthz", ok=False, detail=problem)
    body = response.body.decode("utf-8", "replace").strip()
    if body != "ok":
        return CheckResult(
            name="healthz",
            ok=False,
            detail=f"{url} returned 200 but body {body[:40]!r}, expected 'ok'",
        )
    return CheckResult(name="healthz", ok=True, detail=f"{url} 200 ok")


def _check_readyz(base: str, headers: Mapping[str, str], timeout: float) -> CheckResult:
    url = _join(base, "/readyz")
    response = _fetch(url, headers, timeout)
    problem = _status_problem(url, response)
    if problem is not None:
        if response.status == 503:
            problem += " (not ready: starting up or draining)"
        return CheckResult(name="readyz", ok=False, detail=problem)
    return CheckResult(name="readyz", ok=True, detail=f"{url} 200 ready")


def _revision_matches(reported: str, expected: str) -> bool:
    shorter = min(len(reported), len(expected))
    return shorter >= 7 and reported[:shorter] == expected[:shorter]


def _check_version(
    base: str, headers: Mapping[str, str], timeout: float, expected: str | None, revision: str | None = None
) -> CheckResult:
    url = _join(base, "/")
    response = _fetch(url, headers, timeout)
    problem = _status_problem(url, response)
    if problem is not None:
        return CheckResult(name="version", ok=False, detail=problem)
    try:
        document = json.loads(response.body)
    except ValueError:
        return CheckResult(name="version", ok=False, detail=f"{url} did not return JSON")
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version:
        return CheckResult(
            name="version",
            ok=False,
            detail=f"{url} returned JSON without a non-empty string 'version'",
        )
    if expected is not None and version != expected:
        return CheckResult(
            name="version",
            ok=False,
            detail=f"{url} reports version {version!r}, expected {expected!r}",
        )
    if revision is not None:
        reported = document.get("revision")
        if not isinstance(reported, str) or not _revision_matches(reported, revision):
            return CheckResult(
                name="version",
                ok=False,
                detail=f"{url} reports revision {reported!r}, expected {revision!r}",
            )
    return CheckResult(name="version", ok=True, detail=f"{url} version {version!r}")


def run_checks(
    base: str,
    headers: Mapping[str, str],
    timeout: float,
    expected: str | None,
    revision: str | None = None,
) -> list[CheckResult]:
    """Run every check once and return their results in a fixed order."""
    checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("healthz", lambda: _check_healthz(base, headers, timeout)),
        ("readyz", lambda: _check_readyz(base, headers, timeout)),
        ("version", lambda: _check_version(base, headers, timeout, expected, revision)),
    ]
    results: list[CheckResult] = []
    for name, check in checks:
        try:
            results.append(check())
        except NETWORK_ERRORS as error:
            url = _join(base, "/" if name == "version" else f"/{name}")
            results.append(CheckResult(name=name, ok=False, detail=f"{url} unreachable: {_describe_error(error)}"))
    return results


def smoke(
    options: SmokeOptions,
    *,
    out: IO[str] | None = None,
    log: IO[str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Check the service until it is healthy or patience runs out; return the exit code."""
    out = sys.stdout if out is None else out
    log = sys.stderr if log is None else log
    deadline = clock() + options.timeout
    wait = options.backoff
    rounds = options.retries + 1
    results: list[CheckResult] = []
    for attempt in range(1, rounds + 1):
        remaining = deadline - clock()
        results = run_checks(
            options.url,
            options.headers,
            max(0.1, min(options.request_timeout, remaining)),
            options.expect_version,
            options.expect_revision,
        )
        failed = [r for r in results if not r.ok]
        if not failed:
            for result in results:
                print(f"PASS {result.name}: {result.detail}", file=out)
            print(f"smoke: {options.url} healthy (attempt {attempt})", file=out)
            return EXIT_HEALTHY
        pause = min(wait, options.max_backoff)
        if attempt == rounds or clock() + pause >= deadline:
            break
        names = ", ".join(r.name for r in failed)
        print(
            f"smoke: attempt {attempt}/{rounds} failed ({names}); retrying in {pause:.1f} s",
            file=log,
        )
        sleep(pause)
        wait *= 2
    for result in results:
        status = "PASS" if result.ok else "FAIL"
        print(f"{status} {result.name}: {result.detail}", file=out)
    print(
        f"smoke: {options.url} failing after {attempt} attempt(s) within {options.timeout:g} s",
        file=out,
    )
    return EXIT_FAILING


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"--header expects 'Name: value', got {text.split(':', 1)[0]!r}...")
    problem = header_problem(name.strip(), value.strip())
    if problem is not None:
        raise argparse.ArgumentTypeError(f"--header: {problem}")
    return name.strip(), value.strip()


def _parse_header_from_env(text: str) -> tuple[str, str]:
    name, sep, variable = text.partition("=")
    if not sep or not name.strip() or not variable.strip():
        raise argparse.ArgumentTypeError(f"--header-from-env expects 'Header-Name=ENV_VAR', got {text!r}")
    if not _TOKEN.match(name.strip()):
        raise argparse.ArgumentTypeError(f"--header-from-env: header name {name.strip()!r} is not an HTTP token")
    return name.strip(), variable.strip()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def build_parser(prog: str = "python -m components smoke") -> argparse.ArgumentParser:
    """The argument parser, shared with the ``python -m components`` dispatcher."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check /healthz, /readyz and the reported version of a deployed service.",
    )
    parser.add_argument("--url", required=True, help="base URL, e.g. https://svc.example.com")
    parser.add_argument("--expect-version", help="version GET / must report")
    parser.add_argument("--expect-revision", help="git revision GET / must report (7+ character prefix)")
    parser.add_argument(
        "--retries",
        type=_non_negative_int,
        default=10,
        help="extra rounds after a failing one (default 10)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=120.0,
        help="overall deadline in seconds (default 120)",
    )
    parser.add_argument(
        "--request-timeout",
        type=_positive_float,
        default=10.0,
        help="per-request timeout in seconds (default 10)",
    )
    parser.add_argument(
        "--backoff",
        type=_positive_float,
        default=1.0,
        help="first wait between rounds in seconds, doubled each time (default 1)",
    )
    parser.add_argument(
        "--header",
        dest="headers",
        action="append",
        type=_parse_header,
        default=[],
        metavar="'NAME: VALUE'",
        help="extra request header (repeatable)",
    )
    parser.add_argument(
        "--header-from-env",
        dest="env_headers",
        action="append",
        type=_parse_header_from_env,
        default=[],
        metavar="NAME=ENV_VAR",
        help="header whose value is read from an environment variable (for secrets; repeatable)",
    )
    return parser


def options_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> SmokeOptions:
    """Turn parsed arguments into options; raises ValueError naming a missing env var."""
    parsed = urllib.parse.urlsplit(args.url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"--url must be an absolute http(s) URL, got {args.url!r}")
    if parsed.query or parsed.fragment:
        raise ValueError(f"--url must not carry a query or fragment, got {args.url!r}")
    headers = dict(args.headers)
    for name, variable in args.env_headers:
        value = environ.get(variable, "")
        if not value:
            raise ValueError(
                f"--header-from-env {name}={variable}: environment variable {variable} is not set or empty"
            )
        if _BAD_VALUE_CHARS.search(value):
            raise ValueError(
                f"--header-from-env {name}={variable}: environment variable {variable} holds a line break or "
                "control character; expected a single-line header value (the value is not shown)"
            )
        headers[name] = value.strip()
    return SmokeOptions(
        url=args.url,
        expect_version=args.expect_version,
        expect_revision=args.expect_revision,
        retries=args.retries,
        timeout=args.timeout,
        request_timeout=args.request_timeout,
        backoff=args.backoff,
        headers=headers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse ``argv`` (without the subcommand), run, return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        options = options_from_args(args, os.environ)
    except ValueError as error:
        print(f"smoke: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return smoke(options)


if __name__ == "__main__":
    sys.exit(main())

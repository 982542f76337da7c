"""Prometheus's HTTP API v1 ``query_range``, with a timeout and bounded retries; every failure is
:class:`NotVerifiedError` (the command exits 3 with its reason)."""

from __future__ import annotations

import base64
import http.client
import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

_BODY_LIMIT: Final = 8 * 1024 * 1024


class NotVerifiedError(Exception):
    """Prometheus could not give an answer to judge: the reason, for exit 3."""


def public_url(url: str) -> str:
    """``url`` without user information, query or fragment: safe to print."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class Prometheus:
    """HTTP API v1 ``query_range`` with a timeout and bounded retries; every failure is :class:`NotVerifiedError`."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    requests: int = 0
    """How many HTTP requests were made (the benchmark reports it)."""

    def query_range(self, promql: str, start: float, end: float, step: int) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})
        endpoint = public_url(self.url).rstrip("/") + "/api/v1/query_range?" + params
        where = public_url(self.url)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            try:
                status, content_type, body = self._get(endpoint)
            except (OSError, http.client.HTTPException, urllib.error.URLError) as error:
                reason = getattr(error, "reason", error)
                last = f"Prometheus at {where} is unreachable: {type(error).__name__}: {reason}"
                continue
            if status == 429 or status >= 500:
                last = f"Prometheus at {where} answered HTTP {status}{_error_of(body)}"
                continue
            if status >= 400:
                raise NotVerifiedError(f"Prometheus at {where} answered HTTP {status}{_error_of(body)}")
            return _result(body, content_type, where, promql)
        raise NotVerifiedError(f"{last} (after {self.retries + 1} attempts)")

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.username is not None and "Authorization" not in self.headers:
            # user:password@ in the URL becomes Basic authentication; the URL is only ever shown without it.
            pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.headers = {**self.headers, "Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    def _get(self, endpoint: str) -> tuple[int, str, bytes]:
        self.requests += 1
        # The scheme is checked (http or https) before any request.
        request = urllib.request.Request(endpoint, headers={"Accept": "application/json", **self.headers})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, response.headers.get("Content-Type", ""), response.read(_BODY_LIMIT)
        except urllib.error.HTTPError as error:
            body = error.read(_BODY_LIMIT) if error.fp else b""
            return error.code, error.headers.get("Content-Type", "") if error.headers else "", body


def _error_of(body: bytes) -> str:
    """Prometheus's own error text from a JSON error body, if it is one."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return f": {data.get('errorType', 'error')}: {' '.join(data['error'].split())[:300]}"
    return ""


def _result(body: bytes, content_type: str, where: str, promql: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError:
        kind = "HTML" if b"<html" in body[:512].lower() or "html" in content_type else "not JSON"
        raise NotVerifiedError(
            f"Prometheus at {where} answered {kind} ({content_type or 'no content type'}), not its API's JSON"
        ) from None
    if not isinstance(data, dict) or data.get("status") != "success" or not isinstance(data.get("data"), dict):
        raise NotVerifiedError(
            f"Prometheus at {where} answered JSON that is not a successful API answer{_error_of(body)}"
        )
    result = data["data"].get("result")
    if data["data"].get("resultType") != "matrix" or not isinstance(result, list):
        raise NotVerifiedError(f"Prometheus at {where} answered no matrix for a range query ({promql[:80]}...)")
    return result


def _values(series: dict[str, Any]) -> list[tuple[float, float]]:
    out = []
    for point in series.get("values") or []:
        try:
            t, v = float(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            raise NotVerifiedError('Prometheus answered a sample that is not [time, "number"]') from None
        if math.isfinite(v):
            out.append((t, v))
    return out

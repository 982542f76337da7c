"""HTTP for the registry clients: retries on 429/503 honouring ``Retry-After``, bounded pagination that
detects loops, and JSON bodies checked for shape. Every failure here is a :class:`RegistryError`.

Shared by the OCI Distribution client (:mod:`components.registry`) and the GitHub Packages client
(:mod:`components.registry.ghcr`), with the readers of their answers' bodies (:func:`json_body`,
:func:`body_json`, :func:`parse_time`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import urljoin

import requests

RETRY_STATUSES: Final = frozenset({429, 503})
"""Too Many Requests and Service Unavailable: the server asks to come back later."""
MAX_ATTEMPTS: Final = 4
MAX_WAIT: Final = 30.0
"""Longest single wait for a ``Retry-After``: a server asking for more gets an error, not a stuck sunset."""
DEFAULT_WAIT: Final = 1.0
MAX_PAGES: Final = 1000
_NEXT: Final = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(RuntimeError):
    """The registry could not be used (anything other than a single failed deletion)."""


class RegistryAuthError(RegistryError):
    """The registry refused the credentials (HTTP 401/403, or AWS access denied)."""


class RepositoryNotFoundError(RegistryError):
    """The repository does not exist in the registry."""


class RegistryUnsupportedError(RegistryError):
    """The registry does not delete through any API this project can use; the message says what to do."""


def retry_after(response: requests.Response, now: Callable[[], float] = time.time) -> float:
    """Seconds to wait before retrying: ``Retry-After`` as seconds or an HTTP date (RFC 9110 10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return DEFAULT_WAIT
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_WAIT
    return max(0.0, when.timestamp() - now())


@dataclass
class Http:
    """One requests session with the retry and error rules; ``label`` names the repository in errors."""

    label: str
    session: requests.Session = field(default_factory=requests.Session)
    timeout: float = 30.0
    sleep: Callable[[float], None] = time.sleep
    max_attempts: int = MAX_ATTEMPTS
    max_wait: float = MAX_WAIT

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> requests.Response:
        """The response, after retrying 429/503 and (for reads) lost connections; RegistryError otherwise.

        A DELETE whose connection is lost is not repeated here: it may have been applied, and the
        decommission's final listing finds out (a second DELETE would answer 404 anyway).
        """
        attempt = 0
        while True:  # each pass returns, raises, or sleeps and asks again: no end to fall off
            attempt += 1
            last = attempt >= self.max_attempts
            try:
                response = self.session.request(
                    method, url, headers=dict(headers or {}), params=params, auth=auth, timeout=self.timeout
                )
            except requests.RequestException as exc:
                if method in ("GET", "HEAD") and not last:
                    self.sleep(DEFAULT_WAIT)
                    continue
                kind = "timed out" if isinstance(exc, requests.Timeout) else "failed"
                raise RegistryError(f"{self.label}: {method} {_bare(url)} {kind}: {type(exc).__name__}") from None
            if response.status_code not in RETRY_STATUSES:
                return response
            wait = retry_after(response)
            if wait > self.max_wait:
                raise RegistryError(
                    f"{self.label}: {method} {_bare(url)} answered {response.status_code} with Retry-After "
                    f"{wait:.0f}s, more than the {self.max_wait:.0f}s this client waits; run again later"
                )
            if last:
                raise RegistryError(
                    f"{self.label}: {method} {_bare(url)} still answered {response.status_code} after "
                    f"{self.max_attempts} attempts; run again later"
                )
            self.sleep(wait)

    def pages(
        self, first: str, fetch: Callable[[str], requests.Response], *, max_pages: int = MAX_PAGES
    ) -> Iterator[requests.Response]:
        """Follow ``Link: <…>; rel="next"`` from ``first``; a page seen twice or too many pages is an error."""
        seen: set[str] = set()
        url: str | None = first
        while url is not None:
            if url in seen:
                raise RegistryError(f"{self.label}: the registry's pagination loops (next page {_bare(url)} again)")
            if len(seen) >= max_pages:
                raise RegistryError(f"{self.label}: more than {max_pages} pages; refusing to go on listing")
            seen.add(url)
            response = fetch(url)
            yield response
            url = next_link(response)


def next_link(response: requests.Response) -> str | None:
    """The absolute URL of the ``rel="next"`` page, or None."""
    match = _NEXT.search(response.headers.get("Link", ""))
    return urljoin(response.url, match.group(1)) if match else None


def json_body(response: requests.Response, expected: type, label: str, what: str) -> Any:
    """The body parsed as JSON of type ``expected`` (dict or list); RegistryError for anything else."""
    try:
        body = response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "no content type")
        raise RegistryError(
            f"{label}: {what}: the answer is not JSON ({kind}, {len(response.content)} bytes)"
        ) from None
    if not isinstance(body, expected):
        raise RegistryError(f"{label}: {what}: expected a JSON {expected.__name__}, got {type(body).__name__}")
    return body


def body_json(response: requests.Response) -> Any:
    """The body as JSON, or None when it is not JSON (an error page from a proxy must not crash a run)."""
    try:
        return response.json()
    except ValueError:
        return None


def parse_time(stamp: str) -> datetime | None:
    """An RFC 3339 time (``Z`` or an offset; Go's nanoseconds) as an aware datetime, UTC when it names no
    offset; None when unreadable. Python 3.11's ``fromisoformat`` reads all of these."""
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bare(url: str) -> str:
    """The URL without its query (tokens and cursors stay out of messages)."""
    return url.split("?", 1)[0]

"""Silence a service's alerts for a sunset window through the Alertmanager API v2.

``POST <alertmanager>/api/v2/silences`` with a ``postableSilence`` (prometheus/alertmanager
``api/v2/openapi.yaml``, operation ``postSilences``): ``matchers`` (``name``, ``value``, ``isRegex``,
``isEqual``), ``startsAt``, ``endsAt``, ``createdBy``, ``comment``; the answer is ``{"silenceID": …}``.

Without it TunnelDown pages between the exposure destroy (the tunnel goes) and the removal of the
rules. The matchers are the labels every rule of the service carries: ``service`` (the rules'
own label) and ``namespace`` (from the series), so the other stage of the same service stays watched.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

import requests

DEFAULT_WINDOW: Final = timedelta(hours=2)


class SilenceError(RuntimeError):
    """Alertmanager did not accept the silence."""


def silence_body(
    *, service: str, namespace: str, stack: str, starts: datetime, window: timedelta = DEFAULT_WINDOW
) -> dict[str, Any]:
    """The ``postableSilence`` for one service in one namespace."""
    stamp = "%Y-%m-%dT%H:%M:%S.000Z"
    return {
        "matchers": [
            {"name": "service", "value": service, "isRegex": False, "isEqual": True},
            {"name": "namespace", "value": namespace, "isRegex": False, "isEqual": True},
        ],
        "startsAt": starts.astimezone(UTC).strftime(stamp),
        "endsAt": (starts + window).astimezone(UTC).strftime(stamp),
        "createdBy": "service-lifecycle sunset",
        "comment": f"sunset of stack {stack}: {service} in {namespace} is being removed",
    }


def silence(
    url: str,
    body: dict[str, Any],
    *,
    session: requests.Session | None = None,
    timeout: float = 15.0,
) -> str:
    """Create the silence; its id. SilenceError with Alertmanager's answer otherwise."""
    endpoint = url.rstrip("/") + "/api/v2/silences"
    try:
        response = (session or requests.Session()).post(endpoint, json=body, timeout=timeout)
    except requests.RequestException as exc:
        raise SilenceError(f"Alertmanager {endpoint}: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise SilenceError(f"Alertmanager {endpoint} answered {response.status_code}: {response.text[:200]}")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
    if not isinstance(silence_id, str) or not silence_id:
        raise SilenceError(f"Alertmanager {endpoint} answered without a silenceID")
    return silence_id


def now() -> datetime:
    return datetime.now(UTC)

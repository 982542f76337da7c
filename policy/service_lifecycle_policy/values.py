"""How the rules read resource inputs: engine sentinels for unknowns, Pulumi's secret wrapper, paths.

Shared by every rule module; imports nothing from Pulumi, so it runs in the policy pack's own
virtualenv and offline alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

SECRET_SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE: Final = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN_VALUES: Final = frozenset(
    {
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string (also what the Python SDK sends for any unknown)
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)
"""Sentinels the engine uses for values not known until apply (preview)."""


def is_unknown(value: object) -> bool:
    """True for a value the engine will only know after apply."""
    return isinstance(value, str) and value in UNKNOWN_VALUES


def is_secret(value: object) -> bool:
    """True for a value wrapped in Pulumi's secret signature."""
    return isinstance(value, Mapping) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE


def reveal(value: Any) -> Any:
    """``value`` with every secret wrapper removed (to inspect, never to print)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reveal(v) for v in value]
    return value


def unwrap(value: Any) -> Any:
    """``value`` without a secret wrapper at its top level (nested secrets stay marked)."""
    while is_secret(value):
        value = value.get("value")
    return value


def get(obj: Any, *path: str) -> Any:
    """The value at ``path`` (keys) inside ``obj``, None where a step is missing; secrets opened."""
    for part in path:
        obj = unwrap(obj)
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return unwrap(obj)


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping, else an empty one (unknowns and wrong types read as empty)."""
    value = unwrap(value)
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` as a list when it is one, else an empty list."""
    value = unwrap(value)
    return list(value) if isinstance(value, list | tuple) else []

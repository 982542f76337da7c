"""A problem line of the stack's configuration, and which values such a line may show.

Every stage of the configuration (the stack-file reader, the Pulumi CLI's rules, the stack's own
checks, the typed settings) reports :class:`SettingProblem` lines, and asks the one function here
whether a value must be hidden (:func:`looks_secret`, :func:`shown_value`, :func:`masked`). It sits
below all of them, so that none imports a later stage to report a problem. Every name is
re-exported by :mod:`components.config.settings`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

import pulumi

from components.config import schema
from components.config.names import edit_distance, provider_keys

PROJECT: Final = "service-lifecycle"
"""The Pulumi project name, and so the configuration namespace."""

SECRET_MARK: Final = "[secret]"
"""How a secret value is shown in errors and plans."""

SHOWN_CHARS: Final = 80
"""Longest value quoted in an error line."""
SECRET_NAME: Final = re.compile(
    r"pa?ss?w(o?r)?d|pwd|token|secret|credential|key|kubeconfig|auth|private", re.IGNORECASE
)
"""Key names whose values are never shown in an error line, declared secret or not (misspellings included)."""


def looks_secret(name: str, secret_keys: Collection[str] = ()) -> bool:
    """Whether an error line must hide the value of the key ``name`` (``short`` or ``namespace:short``).

    The one place that decides it, for the settings' error lines and the stack-file reader's
    (:mod:`components.config.stack_config`). Hidden: a key of ``secret_keys`` (full keys a stack or project
    declares secret); a name that says it is secret (a setting the schema knows says so itself:
    ``imagePullSecret`` is a boolean; any other by its words: password, token, secret, key, credential…);
    and a name a typo away (edit distance ≤ 2, any case) from a secret: the schema's, ``secret_keys``'
    and the secret-looking keys of the name's provider (``cloudflare:apiTokn``), so that a misspelt
    secret is not printed as the unknown key it is.
    """
    if name in secret_keys or _named_secret(name):
        return True
    namespace, _, short = name.rpartition(":")
    near = {full.rpartition(":")[2] for full in secret_keys} | schema.SECRETS
    near |= {known for known in provider_keys(namespace) or () if _named_secret(known)}
    return any(edit_distance(short.lower(), secret.lower()) <= 2 for secret in near)


def shown_value(name: str, value: object, secret_keys: Collection[str] = ()) -> str:
    """``value`` as an error line about the key ``name`` may show it: :data:`SECRET_MARK` where
    :func:`looks_secret` says so (an Output is always one), else its ``repr`` cut to
    :data:`SHOWN_CHARS` characters (a 1 MiB value helps nobody in a log)."""
    if isinstance(value, pulumi.Output) or looks_secret(name, secret_keys):
        return SECRET_MARK
    return cut(repr(value))


def cut(text: str) -> str:
    """``text`` cut to :data:`SHOWN_CHARS` characters, saying how long it was."""
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text)} characters)"


def _named_secret(name: str) -> bool:
    """The name alone: a setting of the schema in the project's namespace by its declaration, any other by its words."""
    known = schema.BY_NAME.get(name.rpartition(":")[2])
    if known is not None and name.partition(":")[0] in (name, PROJECT):
        return known.secret
    return SECRET_NAME.search(name) is not None


@dataclass(frozen=True)
class SettingProblem:
    """One bad configuration value."""

    key: str
    """Full key, e.g. ``service-lifecycle:replicas``."""
    value: str
    """The value as given (``[secret]`` for secrets, ``<not set>`` when missing)."""
    expected: str
    """What would have been accepted."""

    def __str__(self) -> str:
        return f"{self.key}: got {self.value}; expected {self.expected}"


@dataclass(frozen=True)
class RuleProblem(SettingProblem):
    """A setting the CLI (or our stricter rule) refuses; ``cli`` is the CLI's own message, if any."""

    cli: str = ""


def masked(problem: SettingProblem, secret_keys: Collection[str]) -> SettingProblem:
    """``problem`` with its value masked where :func:`looks_secret` says so, and long values cut."""
    if problem.value in ("<not set>", SECRET_MARK):
        return problem
    if looks_secret(problem.key, secret_keys):
        return dataclasses.replace(problem, value=SECRET_MARK)
    return dataclasses.replace(problem, value=cut(problem.value)) if len(problem.value) > SHOWN_CHARS else problem


class StackFileError(Exception):
    """A project or stack file that cannot be read; carries one problem per line."""

    def __init__(self, problems: list[SettingProblem], config: Any = None) -> None:
        self.problems = problems
        self.config = config
        """What could be read (a :class:`components.config.stack_config.StackConfig`, values of the wrong
        type kept as text), to validate the rest too; None when the files could not be read."""
        super().__init__("\n".join(str(p) for p in problems))

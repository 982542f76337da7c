"""The sunset report: steps, what was removed and kept; saved as JSON and printed as text.

:class:`Journal` is where a run writes it, and how a failed step ends the run (exit code 1).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_CLI: Final = 3
EXIT_NOT_CONFIRMED: Final = 4


@dataclass
class Step:
    name: str
    status: str
    """planned, done, skipped, failed."""
    detail: str = ""
    command: str = ""
    items: list[str] = field(default_factory=list)


@dataclass
class Report:
    stack: str
    project: str
    started: str
    finished: str = ""
    dry_run: bool = False
    result: str = ""
    """done, nothing-to-do, dry-run, refused, failed."""
    exposure_urn: str = ""
    stage_before: str = ""
    stage_after: str = ""
    steps: list[Step] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    retained: list[str] = field(default_factory=list)
    """Dropped from the stack but left in place (``retain_on_delete``: the shared cluster stack)."""
    kept: list[str] = field(default_factory=list)
    production_image_refs: list[str] = field(default_factory=list)
    registry_deleted: list[str] = field(default_factory=list)
    registry_kept: list[str] = field(default_factory=list)
    retention: dict[str, list[str]] = field(default_factory=dict)
    """Per stack that deployed from the repository, the digests its ``imageRetainDigests`` keeps."""
    silence_id: str = ""
    """The Alertmanager silence covering the sunset window, when one was created."""
    remaining: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    next_actions: list[str] = field(default_factory=list)

    def step(self, name: str) -> Step:
        for existing in self.steps:
            if existing.name == name:
                return existing
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            f"sunset of stack {self.stack} ({self.project}): {self.result}",
            f"  started {self.started}" + (f", finished {self.finished}" if self.finished else ""),
            f"  stage in the stack file: {self.stage_before} -> {self.stage_after}",
            f"  exposure: {self.exposure_urn}",
            "steps:",
        ]
        for step in self.steps:
            lines.append(f"  [{step.status}] {step.name}: {step.detail}")
            if step.command:
                lines.append(f"      $ {step.command}")
            lines += [f"      - {item}" for item in step.items]
        for title, values in (
            ("removed", self.removed),
            ("kept", self.kept),
            ("images deleted from the registry", self.registry_deleted),
            ("images kept in the registry", self.registry_kept),
            ("still in the stack", self.remaining),
            ("next", self.next_actions),
        ):
            if values:
                lines.append(f"{title}:")
                lines += [f"  - {v}" for v in values]
        return "\n".join(lines)


class Journal:
    """A run's report and where it goes: printed through ``say``, saved as JSON at ``path``."""

    def __init__(self, report: Report, path: Path, say: Callable[[str], None], clock: Callable[[], str]) -> None:
        self.report = report
        self.path = path
        self.say = say
        self._clock = clock

    def finish(self, result: str) -> None:
        self.report.result = result
        self.report.finished = self._clock()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.report.to_json(), indent=2) + "\n")
        self.say(f"report saved to {self.path}")

    def fail(self, step_name: str, message: str) -> int:
        """``step_name`` failed (a step the plan does not list is added): save, print, EXIT_FAILED."""
        try:
            step = self.report.step(step_name)
        except KeyError:
            step = Step(step_name, "planned")
            self.report.steps.append(step)
        step.status, step.detail = "failed", message
        self.finish("failed")
        self.report.next_actions.append("fix the cause and run sunset again: finished steps are skipped")
        self.save()
        self.say(self.report.render())
        return EXIT_FAILED


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

"""The sunset report: steps, what was removed and kept; saved as JSON and printed as text."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


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


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")

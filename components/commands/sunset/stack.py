"""The stack operations a sunset needs (the Automation API boundary), and the state it reads."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from components.refs import DIGEST_REF

SECRET_MASK: Final = "[secret]"


@dataclass(frozen=True)
class StateResource:
    """One resource of the stack's state (from ``pulumi stack export``)."""

    urn: str
    type: str
    parent: str | None = None
    protect: bool = False
    image_refs: tuple[str, ...] = ()
    """Container images of a Kubernetes workload (``repo@sha256:…``), for the registry retention."""
    retain_on_delete: bool = False
    """Deleting it only drops it from the stack: the object itself stays (the shared cluster stack)."""


class StackOps(Protocol):
    """What sunset does to a stack. :class:`AutomationStack` is the real one; tests inject fakes."""

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs, plain values."""
        ...

    def resources(self) -> list[StateResource]:
        """The resources in the stack's state."""
        ...

    def preview_destroy(self, targets: Sequence[str]) -> dict[str, int]:
        """Preview ``destroy --target … --target-dependents``; the change summary."""
        ...

    def destroy(self, targets: Sequence[str]) -> dict[str, int]:
        """``destroy --target … --target-dependents``; the resource changes."""
        ...

    def unprotect(self, urn: str) -> None:
        """``pulumi state unprotect --yes <urn>``."""
        ...

    def up(self, targets: Sequence[str] = ()) -> dict[str, int]:
        """``up`` with the stack file as it is now (only ``targets`` when given: one service of several);
        the resource changes."""
        ...

    def secret_config(self, name: str) -> str | None:
        """A configuration value in clear (registry credentials for the decommission)."""
        ...


class AutomationStack:
    """:class:`StackOps` over ``pulumi.automation`` (a local workspace in the project directory)."""

    def __init__(self, stack: str, project_dir: Path, *, echo: Callable[[str], Any] = print) -> None:
        from pulumi import automation

        self._auto = automation
        self._name = stack
        self._dir = project_dir
        self._echo = echo
        self._stack = automation.select_stack(stack_name=stack, work_dir=str(project_dir))

    def outputs(self) -> dict[str, Any]:
        # The report is saved and published (job summary, artifact): secret outputs never reach it in clear.
        return {name: SECRET_MASK if value.secret else value.value for name, value in self._stack.outputs().items()}

    def resources(self) -> list[StateResource]:
        deployment = self._stack.export_stack().deployment or {}
        return [_state_resource(r) for r in deployment.get("resources") or []]

    def preview_destroy(self, targets: Sequence[str]) -> dict[str, int]:
        result = self._stack.preview_destroy(target=list(targets), target_dependents=True, on_output=self._echo)
        return _changes(result.change_summary)

    def destroy(self, targets: Sequence[str]) -> dict[str, int]:
        result = self._stack.destroy(target=list(targets), target_dependents=True, on_output=self._echo)
        return _changes(result.summary.resource_changes)

    def unprotect(self, urn: str) -> None:
        subprocess.run(
            ["pulumi", "state", "unprotect", "--stack", self._name, "--yes", "--non-interactive", urn],
            cwd=self._dir, check=True, timeout=300,
        )  # fmt: skip

    def up(self, targets: Sequence[str] = ()) -> dict[str, int]:
        # a whole-stack up passes no target at all; one service of several, exactly its resources
        result = (
            self._stack.up(target=list(targets), on_output=self._echo)
            if targets
            else self._stack.up(on_output=self._echo)
        )
        return _changes(result.summary.resource_changes)

    def secret_config(self, name: str) -> str | None:
        try:
            return self._stack.get_config(name, path=False).value
        except self._auto.CommandError:
            return None


def _changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    """``{OpType.DELETE: 3}`` → ``{"delete": 3}``."""
    return {str(getattr(op, "value", op)): int(count) for op, count in (summary or {}).items()}


def _state_resource(raw: Mapping[str, Any]) -> StateResource:
    images: list[str] = []
    inputs = raw.get("inputs") or {}
    if str(raw.get("type", "")).startswith("kubernetes:apps/v1:") and isinstance(inputs, dict):
        template = ((inputs.get("spec") or {}).get("template") or {}).get("spec") or {}
        for container in template.get("containers") or []:
            image = container.get("image") if isinstance(container, dict) else None
            if isinstance(image, str) and DIGEST_REF.match(image):
                images.append(image)
    return StateResource(
        urn=str(raw["urn"]),
        type=str(raw.get("type", "")),
        parent=raw.get("parent") or None,
        protect=bool(raw.get("protect", False)),
        image_refs=tuple(images),
        retain_on_delete=bool(raw.get("retainOnDelete", False)),
    )


StackFactory = Callable[[str, Path], StackOps]

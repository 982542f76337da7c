"""What a sunset reads before it decides: the command's options, the stack file's settings, the stack.

Nothing here changes anything: :func:`read_settings` reads the committed stack file,
:func:`read_inputs` the stack's state and outputs (through :class:`StackOps`), an earlier report,
the retention ledger and the project's other stack files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.commands import retention
from components.commands.stage_file import read_stage, stack_file, stack_name
from components.commands.sunset.checks import sharing_stacks
from components.commands.sunset.stack import StackOps, StateResource
from components.config.settings import SERVICES_KEY
from components.config.stack_config import StackConfig, StackFileError, load_stack_config
from components.exposure import TYPE as EXPOSURE_TYPE
from components.registry.model import normalize_repository
from components.service import TYPE as SERVICE_STACK_TYPE


class SunsetError(Exception):
    """A sunset that cannot go on; the message says why and what to do."""


class StackFileUnusableError(Exception):
    """The stack file cannot drive a sunset; the message (printed after ``error: ``) says why."""


@dataclass
class Options:
    stack: str
    project_dir: Path
    yes: bool = False
    dry_run: bool = False
    report_path: Path | None = None
    alertmanager_url: str | None = None
    service: str | None = None
    """One service of a stack of several (``--service``): only its parts go; None: the stack's one service."""


@dataclass(frozen=True)
class Settings:
    """What the stack file says a sunset needs."""

    path: Path
    service: str
    repository: str
    """As the stack file spells it (:class:`Inputs` holds it normalised)."""
    username: str | None
    retain: int
    project: str
    """The project's name (Pulumi.yaml ``name``): the namespace of its settings, ``<project>:<key>``."""
    scope: str | None = None
    """The service of several this sunset takes (its namespace, ``--service``); None: the whole stack of one."""

    def key(self, short: str) -> str:
        """The full key of one of the project's settings, as error lines name it."""
        return f"{self.project}:{short}"


def read_settings(project_dir: Path, stack: str, service: str | None = None) -> Settings:
    """The stack file's settings; StackFileUnusableError when it is missing, invalid or lacks one.

    ``service``: one service of a stack of several (``<project>:services``), read as the program reads
    it: its own namespace first, then the project's keys.
    """
    path = stack_file(project_dir, stack)
    if not path.is_file():
        raise StackFileUnusableError(f"{path} does not exist: sunset needs the stack's committed stack file")
    try:
        config = load_stack_config(project_dir, stack_name(stack))
    except StackFileError as error:
        raise StackFileUnusableError(f"{path.name}:\n" + "\n".join(f"  {p}" for p in error.problems)) from None
    key = config.key
    listed = json.loads(config.values.get(key(SERVICES_KEY)) or "[]")
    if service is not None:
        return _service_settings(config, path, service, listed)
    if key(SERVICES_KEY) in config.values:  # the command sunsets a whole stack of several service by service
        raise StackFileUnusableError(
            f"{path.name} sets {key(SERVICES_KEY)}: sunset one service at a time, --service "
            f"{' or '.join(map(str, listed))}, or the whole stack without --service"
        )
    service = config.values.get(key("serviceName"))
    repository = config.values.get(key("imageRepository"))
    retain_raw = config.values.get(key("imageRetainDigests"), "1")
    if not service or not repository or not retain_raw.isdigit() or int(retain_raw) < 1:
        raise StackFileUnusableError(
            f"{path.name} must set {key('serviceName')}, {key('imageRepository')} and a positive "
            f"{key('imageRetainDigests')}" + _elsewhere(config, ("serviceName", "imageRepository"))
        )
    username = config.values.get(key("registryUsername")) or None  # Pulumi.yaml's "" is unset
    return Settings(path=path, service=service, repository=repository, username=username, retain=int(retain_raw),
                    project=config.project)  # fmt: skip


def listed_services(project_dir: Path, stack: str) -> list[str]:
    """The services a stack of several lists (``<project>:services``); empty for a stack of one.
    StackFileUnusableError when the stack file cannot be read."""
    path = stack_file(project_dir, stack)
    if not path.is_file():
        raise StackFileUnusableError(f"{path} does not exist: sunset needs the stack's committed stack file")
    try:
        config = load_stack_config(project_dir, stack_name(stack))
    except StackFileError as error:
        raise StackFileUnusableError(f"{path.name}:\n" + "\n".join(f"  {p}" for p in error.problems)) from None
    listed = json.loads(config.values.get(config.key(SERVICES_KEY)) or "[]")
    return [s for s in listed if isinstance(s, str)] if isinstance(listed, list) else []


def _service_settings(config: StackConfig, path: Path, service: str, listed: object) -> Settings:
    """One listed service's sunset settings: its own key, else the project's."""
    if not isinstance(listed, list) or service not in listed:
        raise StackFileUnusableError(
            f"--service {service}: {path.name} lists no such service in {config.key(SERVICES_KEY)} "
            f"({', '.join(map(str, listed)) if isinstance(listed, list) and listed else 'none'})"
        )

    def value(short: str) -> str | None:
        own = config.values.get(f"{service}:{short}")
        return own if own is not None else config.values.get(config.key(short))

    repository = value("imageRepository")
    retain_raw = value("imageRetainDigests") or "1"
    if not repository or not retain_raw.isdigit() or int(retain_raw) < 1:
        raise StackFileUnusableError(
            f"{path.name} must set {service}:imageRepository (or {config.key('imageRepository')}) and a positive "
            f"imageRetainDigests"
        )
    return Settings(path=path, service=value("serviceName") or service, repository=repository,
                    username=value("registryUsername") or None, retain=int(retain_raw), project=config.project,
                    scope=service)  # fmt: skip


def _elsewhere(config: StackConfig, shorts: tuple[str, ...]) -> str:
    """Where the stack file sets those settings in another namespace (a file copied from another project):
    the Pulumi CLI hands the program only ``<project>:<key>`` (a bare key is the project's)."""
    found = sorted(k for k in config.values if k.partition(":")[2] in shorts and k.partition(":")[0] != config.project)
    if not found:
        return ""
    return (f"; it sets {', '.join(found)} instead: the keys of project {config.project} are "
            f"{config.project}:<key> (Pulumi.yaml name: {config.project})")  # fmt: skip


@dataclass
class Inputs:
    """Everything sunset reads before it decides (and before it changes anything)."""

    service: str
    repository: str
    username: str | None
    retain: int
    stage: str
    urn: str | None
    """The Exposure's URN (stack output, else state); None when the stack has none."""
    resources: list[StateResource]
    outputs: dict[str, Any]
    previous: dict[str, Any] | None
    project: str
    """The project's name: its settings are ``<project>:<key>`` (:attr:`Settings.project`)."""
    scope: str | None = None
    """The service of several this sunset takes (:attr:`Settings.scope`); None: the whole stack of one."""
    sharing: list[str] = field(default_factory=list)
    """Other stacks whose stack file still deploys from ``repository`` (not sunset): images stay."""
    others: dict[str, list[str]] = field(default_factory=dict)
    """Digests the other stacks' retention keeps (:func:`components.commands.retention.retained_by_others`)."""


def read_inputs(ops: StackOps, settings: Settings, options: Options, report_path: Path) -> Inputs:
    """The stack's state and outputs with everything else a sunset decides on; raises what it cannot read."""
    resources, outputs = ops.resources(), ops.outputs()
    return Inputs(
        service=settings.service,
        repository=normalize_repository(settings.repository),
        username=settings.username,
        retain=settings.retain,
        stage=read_stage(settings.path, settings.scope) or "",
        urn=exposure_urn_of(outputs, resources, settings.scope),
        resources=resources,
        outputs=outputs,
        previous=previous_report(report_path, options.stack),
        sharing=sharing_stacks(options.project_dir, options.stack, settings.repository),
        others=retention.retained_by_others(options.project_dir, options.stack, settings.repository),
        project=settings.project,
        scope=settings.scope,
    )


def output_name(name: str, scope: str | None) -> str:
    """A stack output of the sunset's service: ``name`` for a stack of one, ``<service>_<name>`` of several."""
    return f"{scope}_{name}" if scope else name


def service_stack_urn(resources: Sequence[StateResource], service: str) -> str | None:
    """The URN of service ``service``'s ServiceStack in the state (its parts are below it), if any."""
    found = [r.urn for r in resources if r.type == SERVICE_STACK_TYPE and r.urn.endswith(f"::{service}")]
    return found[0] if found else None


def exposure_urn_of(
    outputs: Mapping[str, Any], resources: Sequence[StateResource], scope: str | None = None
) -> str | None:
    """The stack's ``exposure_urn`` output, else its one Exposure in the state; SunsetError when unclear.

    ``scope`` (one service of several): its ``<service>_exposure_urn`` output, else the Exposure below its
    ServiceStack; never another service's.
    """
    exposures = [r.urn for r in resources if r.type == EXPOSURE_TYPE]
    if scope is not None:
        owner = service_stack_urn(resources, scope)
        exposures = [r.urn for r in resources if r.type == EXPOSURE_TYPE and owner and r.parent == owner]
    exported = outputs.get(output_name("exposure_urn", scope))
    if isinstance(exported, str) and exported:
        if exposures and exported not in exposures:
            raise SunsetError(
                f"the stack exports exposure_urn {exported} but its state holds Exposure(s) {', '.join(exposures)}: "
                "refusing to target anything"
            )
        return exported if exported in exposures else None
    if len(exposures) > 1:
        raise SunsetError(f"the state holds {len(exposures)} Exposures and no exposure_urn output says which")
    return exposures[0] if exposures else None


def previous_report(path: Path, stack: str) -> dict[str, Any] | None:
    """The report an earlier run of this stack's sunset saved at ``path``, if any: a rerun resumes from it."""
    if not path.is_file():
        return None
    try:
        loaded: Any = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return loaded if isinstance(loaded, dict) and loaded.get("stack") == stack else None

"""Running programs under the recording mocks, and the helpers library users' tests call.

:func:`run_program` runs a function as a Pulumi program under the mocks :func:`components.testing.monitor.install_mocks`
installed; :func:`run_components` and :func:`make_settings` are what the pytest plugin
(:mod:`components.testing.pytest_plugin`) offers as fixtures; :func:`release_worker_loops` ends a
process that ran programs quietly.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

from components.config.stack_config import DictConfig
from components.testing.mocks import EngineRuleError, RecordingMocks
from components.testing.monitor import RecordingMonitor, _worker_loops, _worker_loops_lock, install_mocks, project_of

if TYPE_CHECKING:
    from components.config.settings import Settings


def run_program(fn: Callable[[], None]) -> None:
    """Run ``fn`` as a Pulumi program under the installed mocks and wait for every registration."""
    from pulumi.runtime.settings import SETTINGS
    from pulumi.runtime.stack import run_pulumi_func

    # A previous program that failed leaves work queued in the global runtime; as @pulumi.runtime.test does.
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    monitor = SETTINGS.monitor
    before = len(monitor.mocks.violations) if isinstance(monitor, RecordingMonitor) else 0
    _sync_await(run_pulumi_func(fn))
    # A refusal the SDK swallowed (logged, not raised) still stops the run.
    if isinstance(monitor, RecordingMonitor) and len(monitor.mocks.violations) > before:
        raise EngineRuleError(monitor.mocks.violations[before])


def release_worker_loops() -> None:
    """Call once at the end of a process that ran programs: closes the monitor threads' event loops.

    Left to interpreter shutdown they are collected after their selectors are gone and print
    "Exception ignored in BaseEventLoop.__del__"; joining the executor and closing them now is
    quiet, also after a run that stopped with registrations still in flight (an EngineRuleError).
    No program can run in this process afterwards.
    """
    import gc

    loop = asyncio.get_event_loop()
    if not loop.is_running():
        # A run stopped by an EngineRuleError leaves registrations in flight: cancel them now, or closing
        # the loop below prints "Task was destroyed but it is pending!" for each.
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_default_executor())
    with _worker_loops_lock:
        for worker in _worker_loops:
            if worker is not loop and not worker.is_running() and not worker.is_closed():
                worker.close()
        _worker_loops.clear()
    gc.collect()
    # The worker threads' loops (one per thread, made by the mock monitor) outlive their threads;
    # one collected at interpreter shutdown, after its self-pipe socket, prints "Invalid file descriptor: -1".
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop) and not obj.is_running() and not obj.is_closed():
            obj.close()
    asyncio.set_event_loop(None)
    sys.unraisablehook = _quiet_loop_teardown


def _quiet_loop_teardown(unraisable: Any) -> None:
    """``sys.unraisablehook`` once the programs have run: drops only the one known teardown artefact.

    An event loop the SDK makes again during interpreter shutdown (after :func:`release_worker_loops`
    closed every loop it could find) is collected after its self-pipe socket and reports
    ``ValueError: Invalid file descriptor: -1`` from ``BaseEventLoop.__del__``: nothing is lost, but
    stderr would say "Exception ignored". Everything else goes to the default hook.
    """
    value, obj = unraisable.exc_value, unraisable.object
    owner = getattr(obj, "__qualname__", "")
    if isinstance(value, ValueError) and str(value) == "Invalid file descriptor: -1" and owner.endswith("__del__"):
        return
    sys.__unraisablehook__(unraisable)


# ---------------------------------------------------------------------------------------------
# Helpers for library users' tests (the pytest plugin, components.testing.pytest_plugin, offers them as fixtures)


def config_values(config: Mapping[str, Any], *, project: str) -> dict[str, str]:
    """Configuration as the CLI hands it to a program: full keys, text values (lists as JSON).

    A key without ``:`` is the project's (``replicas`` → ``<project>:replicas``), as in a stack file.
    """
    from components.config.settings import config_text

    return {(k if ":" in k else f"{project}:{k}"): config_text(v) for k, v in config.items()}


def run_components(
    fn: Callable[[], None],
    *,
    project: str | None = None,
    stack: str = "test",
    config: Mapping[str, Any] | None = None,
    secret_keys: set[str] | frozenset[str] = frozenset(),
    stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
    mocks: RecordingMocks | None = None,
) -> RecordingMocks:
    """Run ``fn`` as a Pulumi program under fresh recording mocks; return them, everything recorded.

    ``config`` (key → value; a key without ``:`` is the project's) is what ``pulumi.Config`` and
    :func:`components.config.settings.load_settings` read inside ``fn``; ``secret_keys`` (full keys) are
    secrets. ``stack_outputs`` answers StackReferences by stack name.
    ``project`` defaults to the name in the program's ``Pulumi.yaml``, found from the working
    directory up (:func:`components.testing.monitor.project_of`).
    """
    project = project if project is not None else project_of()
    recording = mocks or RecordingMocks(stack_outputs=stack_outputs)
    values = config_values(config or {}, project=project)
    secrets = {k if ":" in k else f"{project}:{k}" for k in secret_keys}
    pulumi.runtime.set_all_config(values, sorted(secrets))
    pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
    install_mocks(recording, project=project, stack=stack)
    run_program(fn)
    return recording


def make_settings(
    project_dir: str | os.PathLike[str],
    stack: str,
    *,
    service: str | None = None,
    secrets: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Validated settings of a program's stack file, with overrides (key → value; None removes it).

    Reads ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` under ``project_dir`` as the offline plan
    does, in the project's own namespace; ``secrets`` (key → value) stand in for the secrets a
    stack file leaves to ``pulumi config set --secret``; lists and booleans are encoded for you.

    A stack of several services (``<project>:services``) is read as the program reads it
    (:func:`components.config.settings.load_services`, every service validated): ``service`` names the one
    returned (required when it lists more than one); overrides go to that service's own namespace
    (``api:replicas``), where they win over the shared keys, and ``secrets`` to the project's (every
    service reads them).
    """
    from components.config.settings import SERVICES_KEY, config_text, load_services, load_settings
    from components.config.stack_config import load_stack_config

    config = load_stack_config(Path(project_dir), stack)
    values = dict(config.values)
    listed = values.get(f"{config.project}:{SERVICES_KEY}")
    names: list[str] = json.loads(listed) if listed else []
    if service is not None and service not in names:
        raise ValueError(f"make_settings(service={service!r}): stack {stack} lists services {names or 'none'}")
    if service is None and len(names) > 1:
        raise ValueError(f"make_settings: stack {stack} runs services {names}; say which: service='{names[0]}'")
    chosen = service or (names[0] if names else None)
    own = chosen or config.project
    given: list[tuple[str, str, Any]] = [(config.project, short, value) for short, value in (secrets or {}).items()]
    given += [(own, short, value) for short, value in overrides.items()]
    for namespace, short, value in given:
        full = f"{namespace}:{short}"
        if value is None:
            values.pop(full, None)
            values.pop(f"{config.project}:{short}", None)
        else:
            values[full] = config_text(value)
    source = DictConfig(values, set(config.secret_keys), config.project)
    env = os.environ if environ is None else environ
    if chosen is None:
        return load_settings(source, environ=env)
    return load_services(source, namespace_source=source.view, environ=env)[chosen]

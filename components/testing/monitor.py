"""The mock monitor: what Pulumi's mock runtime calls for each registration, recorded and checked.

:class:`RecordingMonitor` records every registration (URN, parent, dependencies, options) into a
:class:`~components.testing.mocks.RecordingMocks` and refuses what the engine would refuse
(:func:`engine_refusal`, in the engine's words); :func:`install_mocks` points Pulumi's runtime at
them, for the program named by :func:`project_of`.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc

from components.testing.mocks import (
    DNS_RECORD_TYPES,
    EngineRuleError,
    RecordedResource,
    RecordingMocks,
    canonical,
    dns_conflict,
    kubernetes_identity,
)

# Deserialising resource references needs an event loop on the monitor's worker thread.
_pulumi_ensure_event_loop: Callable[[], asyncio.AbstractEventLoop] = getattr(_mocks, "_ensure_event_loop")  # noqa: B009
_worker_loops: list[asyncio.AbstractEventLoop] = []
_worker_loops_lock = threading.Lock()


def _ensure_event_loop() -> None:
    """Pulumi's helper (a loop for this worker thread), remembering the loop so that
    :func:`release_worker_loops` can close it rather than leave it to interpreter shutdown."""
    loop = _pulumi_ensure_event_loop()
    with _worker_loops_lock:
        if loop not in _worker_loops:
            _worker_loops.append(loop)


def engine_refusal(
    mocks: RecordingMocks, record: RecordedResource, providers: list[str], *, create: bool
) -> str | None:
    """What the engine (or, at create time, the provider) would refuse about ``record``, in its words; None when
    nothing. Remembers the Kubernetes identity and DNS record of an accepted create. Call with ``mocks._lock`` held.
    """
    urn = record.urn
    if urn in mocks.urns:
        return f"Duplicate resource URN '{urn}'; try giving it a unique name"
    if record.parent and record.parent not in mocks.urns and "::pulumi:pulumi:Stack::" not in record.parent:
        return f"could not find parent resource {record.parent} (registering {urn})"
    for dependency in record.dependencies:
        if dependency not in mocks.urns:
            return f"resource {urn}'s dependency {dependency} refers to missing resource"
    for reference in filter(None, providers):
        if reference.rsplit("::", 1)[0] not in mocks.urns:
            return f"resource {urn} refers to unknown provider {reference}"
    if not create:
        return None
    identity = kubernetes_identity(record)
    if identity is not None:
        if identity in mocks._kubernetes:
            group_kind = f"{identity[2]}.{identity[1]}" if identity[1] else identity[2]
            where = f"{identity[3]}/{identity[4]}" if identity[3] else identity[4]
            return (
                f"{group_kind} {where} is created twice: {urn} and {mocks._kubernetes[identity]} "
                "(the API server refuses the second: AlreadyExists)"
            )
        mocks._kubernetes[identity] = urn
    if record.type in DNS_RECORD_TYPES:
        for other in mocks._dns:
            conflict = dns_conflict(record, other)
            if conflict:
                return f"DNS record {urn} cannot be created: {conflict}"
        mocks._dns.append(record)
    return None


class RecordingMonitor(_mocks.MockMonitor):
    """A MockMonitor that also records URN, parent, dependencies and resource options."""

    mocks: RecordingMocks

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """The engine's URN: the parent's whole qualified type chain (the base mock keeps only its last type)."""
        if parent:
            qualified = parent.split("::")[2]
            if qualified != "pulumi:pulumi:Stack":
                type_ = f"{qualified}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])

    def _record(self, request: Any, *, inputs: Any, custom: bool, **options: Any) -> None:
        self.mocks._pending.record = RecordedResource(
            type=request.type,
            name=request.name,
            urn=self.make_urn(request.parent, request.type, request.name),
            parent=request.parent or None,
            inputs=canonical(dict(rpc.deserialize_properties(inputs))),
            custom=custom,
            provider=request.provider or None,
            dependencies=sorted(set(request.dependencies)),
            **options,
        )

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if request.type == "pulumi:pulumi:Stack":
            with self.mocks._lock:
                self.mocks.urns.add(self.make_urn(request.parent, request.type, request.name))
        else:
            _ensure_event_loop()
            self._record(
                request,
                inputs=request.object,
                custom=bool(request.custom),
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                ignore_changes=list(request.ignoreChanges),
                aliases=[a.urn for a in getattr(request, "aliases", []) if getattr(a, "urn", "")],
                replace_on_changes=list(request.replaceOnChanges),
            )
            providers = [request.provider, *dict(getattr(request, "providers", {}) or {}).values()]
            self._check(self.mocks._pending.record, providers, create=True)
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        _ensure_event_loop()
        self._record(request, inputs=request.properties, custom=True, id=request.id)
        self._check(self.mocks._pending.record, [request.provider], create=False)
        return super().ReadResource(request)  # type: ignore[no-untyped-call]

    def _check(self, record: RecordedResource, providers: list[str], *, create: bool) -> None:
        """The engine's refusals, in its words (pulumi/pulumi sources named in tests/unit/test_testing.py)."""
        mocks = self.mocks
        with mocks._lock:
            problem = engine_refusal(mocks, record, providers, create=create)
            if problem is None:
                mocks.urns.add(record.urn)
                return
            mocks.violations.append(problem)
        mocks._pending.record = None
        raise EngineRuleError(problem)

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            _ensure_event_loop()
            self.mocks.stack_exports = dict(rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def project_of(directory: str | os.PathLike[str] | None = None) -> str:
    """The ``name`` of the program's ``Pulumi.yaml``: in ``directory`` (default the working directory) or
    the nearest folder above it, where the Pulumi CLI looks for its project.

    Raises ValueError naming where it looked when there is none (pass ``project=`` then).
    """
    from components.config.stackfile import read_yaml

    start = Path.cwd() if directory is None else Path(directory)
    for folder in (start.resolve(), *start.resolve().parents):
        for file_name in ("Pulumi.yaml", "Pulumi.yml"):
            project_file = folder / file_name
            if project_file.is_file():
                name = read_yaml(project_file).get("name")
                if isinstance(name, str) and name:
                    return name
                raise ValueError(f"{project_file} has no project name ('name:'); pass project= explicitly")
    raise ValueError(f"no Pulumi.yaml in {start} or a folder above it: pass project= (the program's name)")


def install_mocks(
    mocks: RecordingMocks, *, project: str | None = None, stack: str = "test", preview: bool = False
) -> RecordingMonitor:
    """Point Pulumi's runtime at ``mocks``; call before any resource is created. ``project`` defaults
    to the name in the program's ``Pulumi.yaml`` (:func:`project_of`)."""
    monitor = RecordingMonitor(mocks)
    project = project if project is not None else project_of()
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    return monitor

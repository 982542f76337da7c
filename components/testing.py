"""Recording mocks for Pulumi's mock runtime: shared by our tests, the offline plan and library users.

Usage::

    from components.testing import RecordingMocks, install_mocks

    mocks = RecordingMocks(stack_outputs={"acme/service-lifecycle/staging": {"image_ref": "r@sha256:…"}})
    install_mocks(mocks, project="service-lifecycle", stack="staging")   # before any resource
    ... create components ...
    mocks.by_type("kubernetes:apps/v1:Deployment")   # RecordedResource list

Every resource registration is recorded with what the engine would see: type token, name, URN,
parent URN, the inputs exactly as sent (camelCase; secrets wrapped in Pulumi's secret signature,
see :func:`is_secret`), dependencies and options (protect, retain_on_delete,
delete_before_replace, ignore_changes, provider). Every invoke is recorded too. Outputs are
answered plausibly and deterministically: docker images get a ``repo@sha256:…`` digest,
Cloudflare tunnels a UUID, StackReferences the outputs given to the mocks, and the Cloudflare
tunnel-token invoke a token-shaped string.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pulumi
from pulumi.runtime import mocks as _mocks
from pulumi.runtime import rpc
from pulumi.runtime.sync_await import _sync_await

SECRET_SIG: Final = "4dabf18193072939515e22adb298388d"
"""Key of Pulumi's special-signature field."""
SECRET_VALUE_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"
"""Signature value that marks a secret."""
REDACTED: Final = "[secret]"

STACK_REFERENCE: Final = "pulumi:pulumi:StackReference"
TUNNEL_TOKEN_INVOKE: Final = "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken"


def is_secret(value: object) -> bool:
    """True when ``value`` is a secret as the mocks receive it (Pulumi's wrapped form)."""
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE_SIG


def wrap_secret(value: Any) -> dict[str, Any]:
    """``value`` in the wrapped form a secret has on the wire (the inverse of :func:`unwrap`)."""
    return {SECRET_SIG: SECRET_VALUE_SIG, "value": value}


def unwrap(value: Any) -> Any:
    """Replace every wrapped secret in ``value`` with its plain value (for assertions only)."""
    if is_secret(value):
        return unwrap(value["value"])
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def redact(value: Any) -> Any:
    """Replace every wrapped secret in ``value`` with ``[secret]``: safe to print or write."""
    if is_secret(value):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


@dataclass
class RecordedResource:
    """One registered resource, as the engine would have received it."""

    type: str
    name: str
    urn: str
    parent: str | None
    inputs: dict[str, Any]
    """Inputs as sent: camelCase keys, secrets wrapped (see :func:`is_secret`)."""
    custom: bool
    id: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    provider: str | None = None
    dependencies: list[str] = field(default_factory=list)
    protect: bool = False
    retain_on_delete: bool = False
    delete_before_replace: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)

    @property
    def plain_inputs(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped, for assertions."""
        result: dict[str, Any] = unwrap(self.inputs)
        return result

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe, redacted view (what the offline plan writes)."""
        return {
            "type": self.type,
            "name": self.name,
            "urn": self.urn,
            "parent": self.parent,
            "custom": self.custom,
            "provider": self.provider,
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "deleteBeforeReplace": self.delete_before_replace,
            "ignoreChanges": self.ignore_changes,
            "dependencies": self.dependencies,
            "inputs": redact(self.inputs),
        }


@dataclass
class RecordedInvoke:
    """One provider function call."""

    token: str
    args: dict[str, Any]
    provider: str | None


OutputsFn = Callable[[RecordedResource], dict[str, Any]]


class RecordingMocks(pulumi.runtime.Mocks):
    """Mocks that record everything and answer plausible outputs.

    :param stack_outputs: outputs of referenced stacks, by stack name (StackReference answers).
    :param outputs: extra outputs per type token, computed from the recorded resource; merged
        over the inputs and the built-in answers.
    :param invokes: answers per invoke token, computed from the call's args.
    """

    def __init__(
        self,
        *,
        stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
        outputs: Mapping[str, OutputsFn] | None = None,
        invokes: Mapping[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
    ) -> None:
        self.stack_outputs = {k: dict(v) for k, v in (stack_outputs or {}).items()}
        self._outputs = dict(outputs or {})
        self._invokes = dict(invokes or {})
        self.resources: list[RecordedResource] = []
        self.invocations: list[RecordedInvoke] = []
        self.stack_exports: dict[str, Any] = {}
        # The monitor hands each registration's details to new_resource on the same thread
        # (registrations run concurrently on an executor), hence thread-local.
        self._pending = threading.local()
        self._lock = threading.Lock()

    # -- queries -------------------------------------------------------------------------

    def by_type(self, type_token: str) -> list[RecordedResource]:
        """Resources of one type token, in registration order."""
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> RecordedResource:
        """The single resource of ``type_token`` (and ``name``); AssertionError otherwise."""
        found = [r for r in self.by_type(type_token) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {type_token} {name or ''}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise KeyError(urn)

    def children_of(self, urn: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == urn]

    def kubernetes_objects(self) -> list[RecordedResource]:
        """Every Kubernetes object (not providers, not Helm releases)."""
        return [
            r
            for r in self.resources
            if r.type.startswith("kubernetes:") and r.custom and not r.type.startswith("kubernetes:helm.sh")
        ]

    # -- Mocks API -----------------------------------------------------------------------

    def new_resource(self, args: _mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        record: RecordedResource | None = getattr(self._pending, "record", None)
        self._pending.record = None
        if record is None:  # installed without RecordingMonitor: keep what MockResourceArgs has
            record = RecordedResource(
                type=args.typ, name=args.name, urn="", parent=None, inputs=dict(args.inputs), custom=bool(args.custom)
            )
        resource_id, outputs = self._answer(record)
        record.id = resource_id or ""
        record.outputs = outputs
        with self._lock:
            self.resources.append(record)
        return resource_id, outputs

    def call(self, args: _mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        with self._lock:
            self.invocations.append(RecordedInvoke(token=args.token, args=dict(args.args), provider=args.provider))
        if args.token in self._invokes:
            return self._invokes[args.token](dict(args.args)), []
        if args.token == TUNNEL_TOKEN_INVOKE:
            return {"token": tunnel_token(str(args.args.get("accountId", "")), str(args.args.get("tunnelId", "")))}, []
        return {}, []

    # -- answers -------------------------------------------------------------------------

    def _answer(self, record: RecordedResource) -> tuple[str | None, dict[str, Any]]:
        inputs = dict(record.inputs)
        resource_id: str | None = f"{record.name}-{_digest(record.urn or record.name)[:8]}"
        outputs: dict[str, Any] = dict(inputs)
        if record.type == STACK_REFERENCE:
            stack_name = str(inputs.get("name", record.name))
            resource_id = stack_name
            outputs = {"name": stack_name, "outputs": self.stack_outputs.get(stack_name, {}), "secretOutputNames": []}
        elif not record.custom:
            resource_id = None
        elif record.type == "docker:index/image:Image":
            image_name = str(unwrap(inputs.get("imageName", record.name)))
            repository = image_name.rsplit(":", 1)[0] if ":" in image_name.rsplit("/", 1)[-1] else image_name
            outputs["repoDigest"] = (
                f"{repository}@sha256:{_digest(image_name, json.dumps(redact(inputs), sort_keys=True))}"
            )
            outputs["imageName"] = image_name
        elif record.type.startswith("cloudflare:") and "Tunnel" in record.type and "Config" not in record.type:
            resource_id = str(uuid.UUID(_digest(record.urn)[:32]))
            outputs["id"] = resource_id
        elif record.type == "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken":
            resource_id = _digest(record.urn)[:32]
            outputs["clientId"] = f"{_digest('client-id', record.urn)[:32]}.access"
            outputs["clientSecret"] = _digest("client-secret", record.urn)
        elif record.type.startswith("cloudflare:"):
            resource_id = _digest(record.urn)[:32]
        elif record.type.startswith("kubernetes:") and record.custom:
            metadata = inputs.get("metadata") or {}
            namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
            name = metadata.get("name") if isinstance(metadata, dict) else None
            resource_id = f"{namespace}/{name}" if namespace else str(name or record.name)
        if record.type in self._outputs:
            outputs.update(self._outputs[record.type](record))
        return resource_id, outputs


def tunnel_token(account_id: str, tunnel_id: str) -> str:
    """A token shaped like cloudflared's: base64 of ``{"a": account, "t": tunnel, "s": secret}``."""
    secret = base64.b64encode(bytes.fromhex(_digest(account_id, tunnel_id))).decode()
    return base64.b64encode(json.dumps({"a": account_id, "t": tunnel_id, "s": secret}).encode()).decode()


class OfflineEcrClient:
    """Stands in for boto3's ECR client where AWS is out of reach (the offline plan): answers
    ``get_authorization_token`` with a token shaped like ECR's (``AWS:<password>``, base64)."""

    def __init__(self, region: str) -> None:
        self.region = region

    def get_authorization_token(self, registryIds: list[str]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        password = _digest("offline-ecr-password", self.region, *registryIds)
        token = base64.b64encode(f"AWS:{password}".encode()).decode()
        return {"authorizationData": [{"authorizationToken": token}]}


# Deserialising resource references needs an event loop on the monitor's worker thread.
_ensure_event_loop: Callable[[], None] = getattr(_mocks, "_ensure_event_loop")  # noqa: B009 - private helper


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
            inputs=dict(rpc.deserialize_properties(inputs)),
            custom=custom,
            provider=request.provider or None,
            dependencies=sorted(set(request.dependencies)),
            **options,
        )

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if request.type != "pulumi:pulumi:Stack":
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
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    def ReadResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        _ensure_event_loop()
        self._record(request, inputs=request.properties, custom=True, id=request.id)
        return super().ReadResource(request)  # type: ignore[no-untyped-call]

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            _ensure_event_loop()
            self.mocks.stack_exports = dict(rpc.deserialize_properties(request.outputs))
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


def install_mocks(
    mocks: RecordingMocks, *, project: str = "service-lifecycle", stack: str = "test", preview: bool = False
) -> RecordingMonitor:
    """Point Pulumi's runtime at ``mocks``; call before any resource is created."""
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview, monitor=monitor)
    return monitor


def run_program(fn: Callable[[], None]) -> None:
    """Run ``fn`` as a Pulumi program under the installed mocks and wait for every registration."""
    from pulumi.runtime.settings import SETTINGS
    from pulumi.runtime.stack import run_pulumi_func

    # A previous program that failed leaves work queued in the global runtime; as @pulumi.runtime.test does.
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    _sync_await(run_pulumi_func(fn))


def release_worker_loops() -> None:
    """Call once at the end of a process that ran programs: closes the monitor threads' event loops.

    Left to interpreter shutdown they are collected after their selectors are gone and print
    "Exception ignored in BaseEventLoop.__del__"; joining the executor and collecting now is quiet.
    No program can run in this process afterwards.
    """
    import asyncio
    import gc

    loop = asyncio.get_event_loop()
    if not loop.is_running():
        loop.run_until_complete(loop.shutdown_default_executor())
    gc.collect()
    # The worker threads' loops (one per thread, made by the mock monitor) outlive their threads;
    # one collected at interpreter shutdown, after its self-pipe socket, prints "Invalid file descriptor: -1".
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.AbstractEventLoop) and not obj.is_running() and not obj.is_closed():
            obj.close()
    asyncio.set_event_loop(None)

"""Recording mocks for Pulumi's mock runtime: shared by our tests, the offline plan and library users.

Usage::

    from components.testing import RecordingMocks, install_mocks

    mocks = RecordingMocks(stack_outputs={"acme/service-lifecycle/staging": {"image_ref": "r@sha256:…"}})
    install_mocks(mocks, project="acme", stack="staging")   # before any resource (default project: Pulumi.yaml's)
    ... create components ...
    mocks.by_type("kubernetes:apps/v1:Deployment")   # RecordedResource list

Every resource registration is recorded with what the engine would see: type token, name, URN,
parent URN, the inputs as sent with their keys sorted (:func:`canonical`; camelCase; secrets wrapped
in Pulumi's secret signature, see :func:`is_secret`), dependencies and options (protect, retain_on_delete,
delete_before_replace, ignore_changes, provider). Every invoke is recorded too. Outputs are
answered plausibly and deterministically: docker images get a ``repo@sha256:…`` digest,
Cloudflare tunnels a UUID, StackReferences the outputs given to the mocks, and the Cloudflare
tunnel-token invoke a token-shaped string.

The engine's own refusals are enforced too (:class:`EngineRuleError`, one line naming the URN; the
monitor that records and checks each registration is :mod:`components.testing.monitor`):
a duplicate URN, a parent or dependency or provider that was never registered, and what the
providers would refuse at create time: two Kubernetes objects with one identity, two DNS records
that cannot coexist in one zone. The run stops instead of recording a plan no engine would run.
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


def canonical(value: Any) -> Any:
    """``value`` with the keys of every mapping in sorted order (lists keep theirs): the one key order of
    what the mocks record and the offline plan writes.

    Values reach the mocks as protobuf ``Struct`` maps, whose iteration order is a hash order that
    differs between protobuf 5 and 6 (every manifest of a plan changed order with protobuf 6). A
    sorted order is the same whatever protobuf, Python or PyYAML is installed.
    """
    if isinstance(value, dict):
        return {k: canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [canonical(v) for v in value]
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


class EngineRuleError(Exception):
    """A registration the Pulumi engine (or the provider it calls) would refuse; one line, naming the URN."""


def kubernetes_identity(record: RecordedResource) -> tuple[str, ...] | None:
    """What the API server keys an object by: group, kind, namespace, name (and the cluster: the
    provider). None for anything that is not a whole, named object (Patch resources, Helm, yaml)."""
    if not record.type.startswith("kubernetes:") or not record.custom or record.type.endswith("Patch"):
        return None
    if record.type.startswith(("kubernetes:helm.sh", "kubernetes:yaml")):
        return None
    inputs = unwrap(record.inputs)
    metadata = inputs.get("metadata")
    api_version, kind = inputs.get("apiVersion"), inputs.get("kind")
    if not (isinstance(metadata, dict) and isinstance(metadata.get("name"), str) and api_version and kind):
        return None  # auto-named: the provider adds a random suffix
    # The version is a view of the object, not part of its identity: apps/v1 and apps/v1beta2 name one Deployment.
    group = str(api_version).rsplit("/", 1)[0] if "/" in str(api_version) else ""
    cluster = record.provider.rsplit("::", 1)[0] if record.provider else "default"  # provider ref: <urn>::<id>
    return (cluster, group, str(kind), str(metadata.get("namespace") or ""), metadata["name"])


DNS_RECORD_TYPES: Final = ("cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/record:Record")


def dns_conflict(new: RecordedResource, old: RecordedResource) -> str | None:
    """Why Cloudflare would refuse ``new`` beside ``old``, or None. Cloudflare API, Create DNS Record:
    "A/AAAA records cannot exist on the same name as CNAME records. NS records cannot exist on the
    same name as any other record type"; RFC 1034 section 3.6.2: a CNAME has no other data beside
    it (one CNAME per name); and an identical record (type, name, content) is refused."""
    a, b = unwrap(new.inputs), unwrap(old.inputs)
    if a.get("zoneId") != b.get("zoneId"):
        return None
    name_a, name_b = (str(r.get("name", "")).lower().rstrip(".") for r in (a, b))
    if name_a != name_b:
        return None
    type_a, type_b = str(a.get("type", "")).upper(), str(b.get("type", "")).upper()
    if "CNAME" in (type_a, type_b):
        return f"a CNAME cannot coexist with another record named {name_a} ({type_b} {old.urn})"
    if "NS" in (type_a, type_b) and type_a != type_b:
        return f"an NS record cannot coexist with another type named {name_a} ({type_b} {old.urn})"
    if type_a == type_b and a.get("content") == b.get("content"):
        return f"an identical {type_a} record named {name_a} exists ({old.urn})"
    return None


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
            "inputs": canonical(redact(self.inputs)),
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
        self.urns: set[str] = set()
        """URNs registered so far (the engine's ``stepGenerator.urns``)."""
        self.violations: list[str] = []
        """Engine refusals met during the run; :func:`run_program` raises the first."""
        self._kubernetes: dict[tuple[str, ...], str] = {}
        self._dns: list[RecordedResource] = []

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
                type=args.typ,
                name=args.name,
                urn="",
                parent=None,
                inputs=canonical(dict(args.inputs)),
                custom=bool(args.custom),
            )
        resource_id, outputs = self._answer(record)
        record.id = resource_id or ""
        record.outputs = outputs
        with self._lock:
            self.resources.append(record)
        return resource_id, outputs

    def call(self, args: _mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        with self._lock:
            self.invocations.append(
                RecordedInvoke(token=args.token, args=canonical(dict(args.args)), provider=args.provider)
            )
        if args.token in self._invokes:
            return self._invokes[args.token](dict(args.args)), []
        if args.token == TUNNEL_TOKEN_INVOKE:
            return {"token": tunnel_token(str(args.args.get("accountId", "")), str(args.args.get("tunnelId", "")))}, []
        return {}, []

    # -- answers -------------------------------------------------------------------------

    def _answer(self, record: RecordedResource) -> tuple[str | None, dict[str, Any]]:
        resource_id, outputs = plausible_answer(record, self.stack_outputs)
        if record.type in self._outputs:
            outputs.update(self._outputs[record.type](record))
        return resource_id, outputs


def plausible_answer(
    record: RecordedResource, stack_outputs: Mapping[str, Mapping[str, Any]]
) -> tuple[str | None, dict[str, Any]]:
    """The built-in answer to one registration: its id and outputs (the inputs, plus what the provider adds).

    Deterministic: ids and digests derive from the URN and inputs, so two runs of one program agree.
    """
    inputs = dict(record.inputs)
    resource_id: str | None = f"{record.name}-{_digest(record.urn or record.name)[:8]}"
    outputs: dict[str, Any] = dict(inputs)
    if record.type == STACK_REFERENCE:
        stack_name = str(inputs.get("name", record.name))
        resource_id = stack_name
        outputs = {"name": stack_name, "outputs": stack_outputs.get(stack_name, {}), "secretOutputNames": []}
    elif not record.custom:
        resource_id = None
    elif record.type == "docker:index/image:Image":
        image_name = str(unwrap(inputs.get("imageName", record.name)))
        repository = image_name.rsplit(":", 1)[0] if ":" in image_name.rsplit("/", 1)[-1] else image_name
        outputs["repoDigest"] = f"{repository}@sha256:{_digest(image_name, json.dumps(redact(inputs), sort_keys=True))}"
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

"""A resource provider plugin, over Pulumi's provider gRPC protocol, for packages whose real provider
cannot be built here.

The real pulumi-cloudflare and pulumi-docker providers bridge Terraform providers whose modules the
Go module proxy does not serve, so the real engine runs them as these stand-ins: the CLI starts a
``pulumi-resource-<name>`` found on PATH as it would the real one, speaks the same protocol to it,
and keeps the same state. Each stand-in is a listed gap (docs/engine.md), not a pass: what it checks
is the resource's input names and required inputs, read from the package's own generated Python SDK
(the same schema the real provider serves), and what it does is call the real system (the Docker
engine and registry) or the local Cloudflare API fake.

A package supplies a :class:`Package`: per resource token, a :class:`Kind` with create, read,
update and delete against its system.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from google.protobuf.json_format import MessageToDict
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SIG_KEY = "4dabf18193072939515e22adb298388d"


class ProviderError(Exception):
    """A failure the engine shows on the resource (a refused request, a failed build)."""


Props = dict[str, Any]


@dataclass
class Kind:
    """One resource type: its SDK class (for the input schema) and its operations."""

    sdk_class: str
    create: Callable[[Props, Props], tuple[str, Props]]
    read: Callable[[Props, str, Props], Props | None] = lambda config, id_, state: state
    update: Callable[[Props, str, Props, Props], Props] | None = None
    delete: Callable[[Props, str, Props], None] = lambda config, id_, state: None
    replace_on: tuple[str, ...] = ()
    computed: tuple[str, ...] = ()
    check: Callable[[Props], list[str]] = lambda inputs: []


@dataclass
class Package:
    name: str
    version: str
    sdk_module: str
    kinds: dict[str, Kind]
    invokes: dict[str, Callable[[Props, Props], Props]] = field(default_factory=dict)
    configure: Callable[[Props], Props] = lambda config: config


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def sdk_inputs(module: str, class_name: str) -> tuple[set[str], set[str]]:
    """The input names (camelCase, as on the wire) and the required ones, from the generated SDK.

    The SDK's ``<Resource>Args.__init__`` lists every input; those without a default are required.
    """
    sdk = importlib.import_module(module)
    args_class = getattr(sdk, f"{class_name}Args")
    names: set[str] = set()
    required: set[str] = set()
    for parameter in list(inspect.signature(args_class.__init__).parameters.values())[1:]:
        names.add(camel(parameter.name))
        if parameter.default is inspect.Parameter.empty:
            required.add(camel(parameter.name))
    return names, required


def to_python(value: Any) -> Any:
    """A wire value without the secret wrapper (the engine sends none when secrets are not accepted)."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == "1b47061264138c4ac30d75fd1eb44270":
            return to_python(value.get("value"))
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python(v) for v in value]
    return value


def unwrap(message: struct_pb2.Struct) -> Props:
    props: Props = to_python(MessageToDict(message, preserving_proto_field_name=True))
    return props


def wrap(props: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(_strip_none(props))
    return message


def _strip_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def has_unknown(value: Any) -> bool:
    if value == UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return False


def token_type(urn: str) -> str:
    # urn:pulumi:stack::project::parent$type::name
    return urn.split("::")[2].rsplit("$", maxsplit=1)[-1]


class Servicer(provider_pb2_grpc.ResourceProviderServicer):
    def __init__(self, package: Package) -> None:
        self.package = package
        self.config: Props = {}
        self._schemas: dict[str, tuple[set[str], set[str]]] = {}

    # -- plumbing ---------------------------------------------------------------------------------

    def _kind(self, urn: str, context: grpc.ServicerContext) -> Kind:
        token = token_type(urn)
        kind = self.package.kinds.get(token)
        if kind is None:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"the {self.package.name} stand-in provider does not implement {token} (engine/standin)",
            )
        return kind  # type: ignore[return-value]

    def _schema(self, kind: Kind) -> tuple[set[str], set[str]]:
        if kind.sdk_class not in self._schemas:
            self._schemas[kind.sdk_class] = sdk_inputs(self.package.sdk_module, kind.sdk_class)
        return self._schemas[kind.sdk_class]

    def _guard(self, context: grpc.ServicerContext, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except ProviderError as error:
            context.abort(grpc.StatusCode.UNKNOWN, str(error))
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            context.abort(grpc.StatusCode.UNKNOWN, f"{type(error).__name__}: {error}")

    # -- the protocol -----------------------------------------------------------------------------

    def Handshake(self, request: Any, context: Any) -> Any:  # noqa: N802
        return provider_pb2.ProviderHandshakeResponse(accept_secrets=False, accept_resources=True, accept_outputs=False)

    def GetPluginInfo(self, request: Any, context: Any) -> Any:  # noqa: N802
        return plugin_pb2.PluginInfo(version=self.package.version)

    def GetSchema(self, request: Any, context: Any) -> Any:  # noqa: N802
        return provider_pb2.GetSchemaResponse(
            schema=json.dumps({"name": self.package.name, "version": self.package.version})
        )

    def CheckConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: Any) -> Any:  # noqa: N802
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request: Any, context: Any) -> Any:  # noqa: N802
        config = unwrap(request.args) if request.HasField("args") else {}
        for key, value in request.variables.items():
            config.setdefault(key.split(":")[-1], _maybe_json(value))
        self.config = self.package.configure(config)
        return provider_pb2.ConfigureResponse(acceptSecrets=False, supportsPreview=True, acceptResources=True)

    def Check(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._kind(request.urn, context)
        news = unwrap(request.news)
        names, required = self._schema(kind)
        failures = []
        for key in sorted(set(news) - names - {"__defaults"}):
            failures.append(
                provider_pb2.CheckFailure(property=key, reason=f"{key!r} is not an input of {token_type(request.urn)}")
            )
        for key in sorted(required - set(news)):
            failures.append(provider_pb2.CheckFailure(property=key, reason=f"Missing required property {key!r}"))
        if not has_unknown(news):
            for reason in kind.check(news):
                failures.append(provider_pb2.CheckFailure(property="", reason=reason))
        news.pop("__defaults", None)
        return provider_pb2.CheckResponse(inputs=wrap(news), failures=failures)

    def Diff(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._kind(request.urn, context)
        olds = unwrap(request.old_inputs) if request.HasField("old_inputs") else unwrap(request.olds)
        news = unwrap(request.news)
        changed = sorted(k for k in set(olds) | set(news) if olds.get(k) != news.get(k) and k not in kind.computed)
        if not changed:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        replaces = [k for k in changed if k in kind.replace_on or kind.update is None]
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME, diffs=changed, replaces=replaces, deleteBeforeReplace=False
        )

    def Create(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._kind(request.urn, context)
        inputs = unwrap(request.properties)
        if request.preview:
            preview = dict(inputs)
            for key in kind.computed:
                preview.setdefault(key, UNKNOWN)
            return provider_pb2.CreateResponse(id="", properties=wrap(preview))
        id_, outputs = self._guard(context, lambda: kind.create(self.config, inputs))
        return provider_pb2.CreateResponse(id=id_, properties=wrap({**inputs, **outputs}))

    def Read(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._kind(request.urn, context)
        state = unwrap(request.properties)
        current = self._guard(context, lambda: kind.read(self.config, request.id, state))
        if current is None:
            return provider_pb2.ReadResponse(id="")
        inputs = unwrap(request.inputs) if request.HasField("inputs") else {}
        return provider_pb2.ReadResponse(id=request.id, properties=wrap(current), inputs=wrap(inputs or current))

    def Update(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._kind(request.urn, context)
        olds, news = unwrap(request.olds), unwrap(request.news)
        if request.preview:
            return provider_pb2.UpdateResponse(properties=wrap({**olds, **news}))
        assert kind.update is not None  # Diff asks for a replacement otherwise
        update = kind.update
        outputs = self._guard(context, lambda: update(self.config, request.id, olds, news))
        return provider_pb2.UpdateResponse(properties=wrap({**news, **outputs}))

    def Delete(self, request: Any, context: Any) -> Any:  # noqa: N802
        kind = self._kind(request.urn, context)
        self._guard(context, lambda: kind.delete(self.config, request.id, unwrap(request.properties)))
        return empty_pb2.Empty()

    def Invoke(self, request: Any, context: Any) -> Any:  # noqa: N802
        invoke = self.package.invokes.get(request.tok)
        if invoke is None:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED, f"the {self.package.name} stand-in has no invoke {request.tok}"
            )
        args = unwrap(request.args)
        result = self._guard(context, lambda: invoke(self.config, args))  # type: ignore[misc]
        return provider_pb2.InvokeResponse(**{"return": wrap(result)})

    def Cancel(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()

    def Attach(self, request: Any, context: Any) -> Any:  # noqa: N802
        return empty_pb2.Empty()


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def serve(package: Package) -> None:
    """Start the gRPC server on a free loopback port and print the port, as the engine expects."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(Servicer(package), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    # The engine ends a plugin by killing it; stdout stays quiet after the port.
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    server.wait_for_termination()


SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def snake(name: str) -> str:
    return SNAKE.sub("_", name).lower()

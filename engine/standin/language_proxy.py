"""A pass-through in front of the Python language host, for policy packs.

The Go module proxy serves the Python language host only inside ``sdk/v3`` up to 3.68.0, older than
the 3.276 CLI (docs/engine.md). The CLI starts a policy pack with ``RunPlugin`` and says where the
pack is in ``info`` (``ProgramInfo.program_directory``), leaving the older ``program`` field empty;
the 3.68 host runs ``python <program>`` in the CLI's working directory, so it ran the stack's own
program instead of the pack. This proxy is started by the CLI as ``pulumi-language-python`` (it is
first on PATH only for the policy runs), starts the real host with the same arguments, and forwards
every call unchanged, byte for byte, except that a ``RunPlugin`` request without ``program`` gets
``program = info.program_directory``: the field the CLI of the host's own release would have set.

The host still chooses the interpreter itself (``python3`` on PATH, the project's venv, which holds
pulumi-policy), not the pack's ``virtualenv`` option: the 3.68 host reads that option only from its
command line. Both are listed in docs/engine.md.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from pulumi.runtime.proto import language_pb2

SERVICE = "pulumirpc.LanguageRuntime"
STREAMING = frozenset(
    m.name for m in language_pb2.DESCRIPTOR.services_by_name["LanguageRuntime"].methods if m.server_streaming
)
"""Methods that answer with a stream (RunPlugin, InstallDependencies); every other one is unary."""
MAX_MESSAGE = 400 * 1024 * 1024
"""The CLI's own limit for plugin messages (rpcutil.MaxRPCMessageSize)."""
OPTIONS = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
NAME = "pulumi-language-python"
PROXY_DIR = "SERVICE_LIFECYCLE_LANGUAGE_PROXY_DIR"
"""Set by the launcher (engine/standin/policy-bin/): its directory, skipped when looking for the real host."""


def fill_program(request: bytes) -> bytes:
    """A ``RunPlugin`` request with ``program`` set from ``info.program_directory`` when it is empty."""
    message = language_pb2.RunPluginRequest.FromString(request)
    if message.program or not message.info.program_directory:
        return request
    message.program = message.info.program_directory
    filled: bytes = message.SerializeToString()
    return filled


def real_host(own_dir: Path, path: str) -> str:
    """The first ``pulumi-language-python`` on PATH that is not this proxy."""
    rest = os.pathsep.join(p for p in path.split(os.pathsep) if p and Path(p).resolve() != own_dir.resolve())
    found = shutil.which(NAME, path=rest)
    if found is None:
        raise SystemExit(f"{NAME} proxy: no real {NAME} on PATH after {own_dir}")
    return found


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _forwarded(context: grpc.ServicerContext) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in context.invocation_metadata() if not k.startswith((":", "grpc-")) and k != "user-agent"]


class Forward(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpc has no type information
    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = details.method
        name = method.rsplit("/", 1)[-1]
        if name in STREAMING:
            call_stream = self.channel.unary_stream(method)

            def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
                if name == "RunPlugin":
                    request = fill_program(request)
                try:
                    yield from call_stream(request, metadata=_forwarded(context))
                except grpc.RpcError as error:
                    context.abort(error.code(), error.details() or "")

            return grpc.unary_stream_rpc_method_handler(stream)
        call_unary = self.channel.unary_unary(method)

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            try:
                return bytes(call_unary(request, metadata=_forwarded(context)))
            except grpc.RpcError as error:
                context.abort(error.code(), error.details() or "")
                raise

        return grpc.unary_unary_rpc_method_handler(unary)


def main(argv: list[str]) -> int:
    host = real_host(Path(os.environ[PROXY_DIR]), os.environ.get("PATH", ""))
    # No thread runs yet (the gRPC server starts after the host answers), so preexec_fn is safe here.
    child = subprocess.Popen([host, *argv], stdout=subprocess.PIPE, preexec_fn=_die_with_parent)  # noqa: PLW1509
    assert child.stdout is not None
    port = child.stdout.readline().decode().strip()
    if not port.isdigit():
        child.wait()
        return child.returncode or 1
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=OPTIONS)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=OPTIONS)
    server.add_generic_rpc_handlers([Forward(channel)])
    own = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(own, flush=True)

    def stop(signum: int, frame: object) -> None:
        child.terminate()
        server.stop(grace=1)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = child.wait()
    server.stop(grace=1)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

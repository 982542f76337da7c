"""The language host proxy in front of the 3.68 Python host (engine/standin/language_proxy.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi.runtime.proto import language_pb2

from engine.standin import language_proxy


def _request(**fields: object) -> bytes:
    return language_pb2.RunPluginRequest(**fields).SerializeToString()  # type: ignore[arg-type]


def test_a_policy_pack_request_gets_its_program_from_the_program_info() -> None:
    """What the 3.276 CLI sends for a policy pack: the pack's directory in info, program empty."""
    sent = _request(pwd="/work/project", args=["127.0.0.1:1"],
                    info=language_pb2.ProgramInfo(root_directory="/p/policy", program_directory="/p/policy",
                                                  entry_point="."))  # fmt: skip
    forwarded = language_pb2.RunPluginRequest.FromString(language_proxy.fill_program(sent))
    assert forwarded.program == "/p/policy"
    assert (forwarded.pwd, list(forwarded.args)) == ("/work/project", ["127.0.0.1:1"])


@pytest.mark.parametrize(
    "fields",
    [
        {"program": "/given", "info": language_pb2.ProgramInfo(program_directory="/p/policy")},
        {"pwd": "/work/project"},
    ],
    ids=["program_given", "no_program_info"],
)
def test_other_requests_pass_byte_for_byte(fields: dict[str, object]) -> None:
    sent = _request(**fields)
    assert language_proxy.fill_program(sent) is sent


def test_the_streaming_methods_are_read_from_the_protocol() -> None:
    assert {"RunPlugin", "InstallDependencies"} <= language_proxy.STREAMING
    assert "Run" not in language_proxy.STREAMING


def test_the_real_host_is_found_after_the_proxy(tmp_path: Path) -> None:
    proxy_dir, real_dir = tmp_path / "proxy", tmp_path / "real"
    for directory in (proxy_dir, real_dir):
        directory.mkdir()
        host = directory / language_proxy.NAME
        host.write_text("#!/bin/sh\n")
        host.chmod(0o755)
    assert language_proxy.real_host(proxy_dir, f"{proxy_dir}:{real_dir}") == str(real_dir / language_proxy.NAME)
    with pytest.raises(SystemExit, match="no real pulumi-language-python"):
        language_proxy.real_host(proxy_dir, str(proxy_dir))

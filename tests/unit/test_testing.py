"""The recording mocks record what the engine would see, and answer plausibly."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_kubernetes as k8s
import pytest
from pulumi.resource import DependencyProviderResource, DependencyResource

from components.testing import (
    STACK_REFERENCE,
    TUNNEL_TOKEN_INVOKE,
    EngineRuleError,
    RecordedResource,
    RecordingMocks,
    engine_refusal,
    install_mocks,
    is_secret,
    plausible_answer,
    redact,
    unwrap,
)


class Box(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("test:index:Box", name, None, opts)
        first = k8s.core.v1.ConfigMap(
            f"{name}-first",
            metadata={"name": f"{name}-first", "namespace": "ns"},
            data={"a": "1"},
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        self.second = k8s.core.v1.Secret(
            f"{name}-second",
            metadata={"name": f"{name}-second", "namespace": "ns"},
            string_data={"token": pulumi.Output.secret("s3cr3t")},
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[first], retain_on_delete=True, delete_before_replace=True,
                ignore_changes=["data"],
            ),
        )  # fmt: skip
        self.register_outputs({})


def test_records_parenting_options_and_inputs(run_components: Callable[..., RecordingMocks]) -> None:
    mocks = run_components(lambda: Box("box") and None)
    box = mocks.one("test:index:Box")
    first = mocks.one("kubernetes:core/v1:ConfigMap")
    second = mocks.one("kubernetes:core/v1:Secret")
    assert not box.custom and first.custom
    assert first.parent == box.urn and second.parent == box.urn
    assert second.urn.endswith("::test:index:Box$kubernetes:core/v1:Secret::box-second")
    assert first.protect and not second.protect
    assert second.retain_on_delete and second.delete_before_replace and second.ignore_changes == ["data"]
    assert first.urn in second.dependencies
    assert first.inputs["data"] == {"a": "1"} and first.inputs["kind"] == "ConfigMap"
    assert {r.name for r in mocks.children_of(box.urn)} == {"box-first", "box-second"}
    string_data = second.inputs["stringData"]
    assert is_secret(string_data) and unwrap(string_data) == {"token": "s3cr3t"}
    assert redact(second.inputs)["stringData"] == "[secret]"
    assert "s3cr3t" not in str(second.to_json())
    assert first.id == "ns/box-first"


def test_answers_stack_references_from_configured_outputs(run_components: Callable[..., RecordingMocks]) -> None:
    seen: dict[str, object] = {}

    def program() -> None:
        ref = pulumi.StackReference("source", stack_name="acme/proj/staging")
        ref.get_output("image_ref").apply(lambda v: seen.setdefault("image_ref", v))

    mocks = run_components(program, stack_outputs={"acme/proj/staging": {"image_ref": "r/x@sha256:" + "b" * 64}})
    assert mocks.one(STACK_REFERENCE).inputs["name"] == "acme/proj/staging"
    assert seen["image_ref"] == "r/x@sha256:" + "b" * 64


def test_answers_and_records_the_tunnel_token_invoke(run_components: Callable[..., RecordingMocks]) -> None:
    import pulumi_cloudflare as cloudflare

    seen: dict[str, str] = {}

    def program() -> None:
        result = cloudflare.get_zero_trust_tunnel_cloudflared_token_output(account_id="a" * 32, tunnel_id="t-1")
        result.token.apply(lambda v: seen.setdefault("token", v))

    mocks = run_components(program)
    assert [i.token for i in mocks.invocations] == [TUNNEL_TOKEN_INVOKE]
    assert mocks.invocations[0].args == {"accountId": "a" * 32, "tunnelId": "t-1"}
    assert len(seen["token"]) > 40


def test_docker_images_get_digest_references(run_components: Callable[..., RecordingMocks]) -> None:
    import pulumi_docker as docker

    seen: dict[str, str] = {}

    def program() -> None:
        image = docker.Image("img", image_name="ghcr.io/acme/hello:abc123", skip_push=True,
                             build=docker.DockerBuildArgs(context="app"))  # fmt: skip
        image.repo_digest.apply(lambda v: seen.setdefault("digest", v))

    run_components(program)
    repository, _, digest = seen["digest"].partition("@sha256:")
    assert repository == "ghcr.io/acme/hello" and len(digest) == 64


# ---------------------------------------------------------------------------------------------
# Engine invariants: the run stops with the engine's line instead of recording an impossible plan

GHOST = "urn:pulumi:test::service-lifecycle::test:index:Box::ghost"


def _refused(run_components: Callable[..., RecordingMocks], program: Callable[[], None]) -> tuple[str, RecordingMocks]:
    mocks = RecordingMocks()
    with pytest.raises(EngineRuleError) as raised:
        run_components(program, mocks=mocks)
    assert "\n" not in str(raised.value)
    return str(raised.value), mocks


def test_duplicate_urn_is_refused(run_components: Callable[..., RecordingMocks]) -> None:
    """pulumi/pulumi pkg/resource/deploy/step_generator.go ``generateURN`` with sdk/go/common/diag/errors.go
    ``GetDuplicateResourceURNError``: "Duplicate resource URN '<urn>'; try giving it a unique name"."""

    def program() -> None:
        Box("box")
        Box("box")

    message, mocks = _refused(run_components, program)
    assert message == (
        "Duplicate resource URN 'urn:pulumi:test::service-lifecycle::test:index:Box::box'; try giving it a unique name"
    )
    assert len(mocks.by_type("test:index:Box")) == 1  # the second was never recorded


def test_dependency_on_a_missing_resource_is_refused(run_components: Callable[..., RecordingMocks]) -> None:
    """pulumi/pulumi pkg/resource/deploy/snapshot.go ``VerifyIntegrity``: "resource <urn>'s dependency
    <dep> refers to missing resource" (a state the engine never writes)."""

    def program() -> None:
        k8s.core.v1.ConfigMap(
            "cm", metadata={"name": "cm"}, opts=pulumi.ResourceOptions(depends_on=[DependencyResource(GHOST)])
        )

    message, _ = _refused(run_components, program)
    assert message.endswith(f"'s dependency {GHOST} refers to missing resource")
    assert "kubernetes:core/v1:ConfigMap::cm" in message


def test_unknown_provider_is_refused(run_components: Callable[..., RecordingMocks]) -> None:
    """pulumi/pulumi pkg/resource/deploy/snapshot.go ``VerifyIntegrity``: "resource <urn> refers to unknown
    provider <ref>" (the step generator fails earlier, looking the provider up to register the resource)."""
    ref = "urn:pulumi:test::service-lifecycle::pulumi:providers:kubernetes::elsewhere::0000"

    def program() -> None:
        provider = DependencyProviderResource(ref)
        k8s.core.v1.ConfigMap("cm", metadata={"name": "cm"}, opts=pulumi.ResourceOptions(provider=provider))

    message, _ = _refused(run_components, program)
    assert message.endswith(f"refers to unknown provider {ref}")


def test_parent_never_registered_is_refused() -> None:
    """pulumi/pulumi pkg/resource/deploy/step_generator.go ``checkParent``: "could not find parent resource
    <urn>". The SDK cannot send one on its own (it waits for the parent's URN), so the request is sent
    to the monitor as a language host would."""
    from google.protobuf import struct_pb2
    from pulumi.runtime.proto import resource_pb2

    mocks = RecordingMocks()
    monitor = install_mocks(mocks)
    request = resource_pb2.RegisterResourceRequest(
        type="test:index:Box", name="orphan", parent=GHOST, custom=False, object=struct_pb2.Struct()
    )
    with pytest.raises(EngineRuleError, match=f"could not find parent resource {GHOST}"):
        monitor.RegisterResource(request)
    assert mocks.violations and not mocks.resources


def test_registered_provider_and_parent_pass(run_components: Callable[..., RecordingMocks]) -> None:
    def program() -> None:
        provider = k8s.Provider("cluster")
        Box("box", pulumi.ResourceOptions(providers=[provider]))

    mocks = run_components(program)
    assert mocks.one("kubernetes:core/v1:ConfigMap").provider
    assert mocks.violations == []


def _config_map(name: str, namespace: str | None, api_version: str = "v1", **opts: Any) -> None:
    k8s.core.v1.ConfigMap(
        name,
        api_version=api_version,
        metadata={"name": "shared", **({"namespace": namespace} if namespace else {})},
        opts=pulumi.ResourceOptions(**opts),
    )


def test_two_kubernetes_objects_with_one_identity_are_refused(run_components: Callable[..., RecordingMocks]) -> None:
    """The Kubernetes API server keys an object by group, kind, namespace and name (the version is a
    view of it): a second create answers 409 AlreadyExists, which pulumi-kubernetes reports as a failed
    create. Different namespaces, kinds or clusters (providers) are different objects."""

    def program() -> None:
        _config_map("one", "ns")
        _config_map("two", "ns")

    message, _ = _refused(run_components, program)
    assert message.startswith("ConfigMap ns/shared is created twice: ")
    assert "::two and " in message and "::one" in message and "AlreadyExists" in message

    def fine() -> None:
        _config_map("one", "ns")
        _config_map("two", "other")
        k8s.core.v1.Secret("three", metadata={"name": "shared", "namespace": "ns"})
        _config_map("four", "ns", provider=k8s.Provider("second-cluster"))

    assert run_components(fine).violations == []


def _record(
    name: str, record_type: str, content: str, zone: str = "z1", host: str = "hello.example.com", **opts: Any
) -> cloudflare.DnsRecord:
    return cloudflare.DnsRecord(
        name, zone_id=zone, name=host, type=record_type, content=content, ttl=1, proxied=True,
        opts=pulumi.ResourceOptions(**opts),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("first", "second", "refused"),
    [
        (("CNAME", "t.cfargotunnel.com"), ("CNAME", "u.cfargotunnel.com"), True),
        (("CNAME", "t.cfargotunnel.com"), ("A", "192.0.2.1"), True),
        (("A", "192.0.2.1"), ("CNAME", "t.cfargotunnel.com"), True),
        (("NS", "ns1.example.net"), ("TXT", "x"), True),
        (("A", "192.0.2.1"), ("A", "192.0.2.1"), True),
        (("A", "192.0.2.1"), ("A", "192.0.2.2"), False),
        (("TXT", "a"), ("MX", "mail.example.com"), False),
    ],
    ids=["cname-cname", "cname-a", "a-cname", "ns-other", "identical-a", "round-robin-a", "txt-mx"],
)
def test_dns_records_that_cannot_coexist_are_refused(
    run_components: Callable[..., RecordingMocks], first: tuple[str, str], second: tuple[str, str], refused: bool
) -> None:
    """Cloudflare API, Create DNS Record (developers.cloudflare.com/api/resources/dns/subresources/records/
    methods/create): "A/AAAA records cannot exist on the same name as CNAME records. NS records cannot
    exist on the same name as any other record type"; RFC 1034 section 3.6.2: nothing beside a CNAME;
    Cloudflare refuses an identical record (81058) but keeps several A records (round robin)."""

    def program() -> None:
        # Registrations run concurrently: without the dependency "second" sometimes reached the monitor first.
        _record("second", *second, depends_on=[_record("first", *first)])

    if refused:
        message, _ = _refused(run_components, program)
        assert message.startswith("DNS record urn:") and "::second cannot be created" in message
    else:
        assert run_components(program).violations == []


def test_dns_records_in_other_zones_or_names_coexist(run_components: Callable[..., RecordingMocks]) -> None:
    def program() -> None:
        _record("first", "CNAME", "t.cfargotunnel.com")
        _record("other-zone", "CNAME", "t.cfargotunnel.com", zone="z2")
        _record("other-name", "CNAME", "t.cfargotunnel.com", host="hi.example.com")
        _record("case-and-dot", "A", "192.0.2.1", zone="z3", host="Hello.Example.com.")
        _record("same-as-above", "CNAME", "t.cfargotunnel.com", zone="z4", host="hello.example.com")

    assert run_components(program).violations == []

    def case_insensitive() -> None:
        _record("first", "CNAME", "t.cfargotunnel.com")
        _record("second", "CNAME", "t.cfargotunnel.com", host="HELLO.example.com.")

    _refused(run_components, case_insensitive)


def test_teardown_hook_drops_only_the_loop_self_pipe_artefact(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPython ``Lib/asyncio/base_events.py`` ``BaseEventLoop.__del__`` closes a loop collected at shutdown;
    when its self-pipe is already gone, ``selector_events`` raises ``ValueError('Invalid file descriptor: -1')``
    and ``sys.unraisablehook`` prints "Exception ignored in: <function BaseEventLoop.__del__ …>"."""
    import asyncio
    import types

    from components.testing.running import _quiet_loop_teardown

    seen: list[object] = []
    monkeypatch.setattr(sys, "__unraisablehook__", seen.append)
    artefact = types.SimpleNamespace(
        exc_value=ValueError("Invalid file descriptor: -1"), object=asyncio.BaseEventLoop.__del__
    )
    _quiet_loop_teardown(artefact)
    assert seen == []
    for other in (
        types.SimpleNamespace(exc_value=ValueError("something else"), object=asyncio.BaseEventLoop.__del__),
        types.SimpleNamespace(exc_value=ValueError("Invalid file descriptor: -1"), object=print),
        types.SimpleNamespace(exc_value=OSError("Invalid file descriptor: -1"), object=asyncio.BaseEventLoop.__del__),
    ):
        _quiet_loop_teardown(other)
    assert len(seen) == 3


# ---------------------------------------------------------------------------------------------
# The seams the mocks and the monitor are built from, on their own


def _recorded(type_: str, name: str, **fields: Any) -> RecordedResource:
    values: dict[str, Any] = {"urn": f"urn:pulumi:test::p::{type_}::{name}", "parent": None, "inputs": {}}
    values.update(fields)
    return RecordedResource(type=type_, name=name, custom=values.pop("custom", True), **values)


def test_plausible_answer_is_deterministic_and_per_type() -> None:
    """What RecordingMocks answers before any per-type override: a component has no id, a StackReference
    answers the configured outputs, a Kubernetes object's id is ``<namespace>/<name>``, and two calls agree."""
    config_map = _recorded(
        "kubernetes:core/v1:ConfigMap", "cm", inputs={"metadata": {"name": "hello", "namespace": "ns"}, "data": {}}
    )
    assert plausible_answer(config_map, {}) == (
        "ns/hello",
        {"metadata": {"name": "hello", "namespace": "ns"}, "data": {}},
    )
    assert plausible_answer(_recorded("test:index:Box", "box", custom=False), {})[0] is None
    reference = _recorded(STACK_REFERENCE, "ref", inputs={"name": "org/p/staging"})
    assert plausible_answer(reference, {"org/p/staging": {"image_ref": "r@sha256:1"}}) == (
        "org/p/staging",
        {"name": "org/p/staging", "outputs": {"image_ref": "r@sha256:1"}, "secretOutputNames": []},
    )
    token = _recorded("cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken", "tok")
    first, second = plausible_answer(token, {}), plausible_answer(token, {})
    assert first == second and first[1]["clientId"].endswith(".access")


def test_engine_refusal_names_the_problem_and_remembers_only_accepted_creates() -> None:
    """engine_refusal on its own (the monitor calls it under the lock): None for a good registration, the
    engine's line otherwise; a Kubernetes identity is remembered at create time, never on a read."""
    mocks = RecordingMocks()
    parent = _recorded("test:index:Box", "box", custom=False)
    orphan = _recorded("test:index:Box", "orphan", custom=False, parent=GHOST)
    assert engine_refusal(mocks, orphan, [], create=True) == (
        f"could not find parent resource {GHOST} (registering {orphan.urn})"
    )
    assert engine_refusal(mocks, parent, [], create=True) is None
    mocks.urns.add(parent.urn)
    assert engine_refusal(mocks, parent, [], create=True) == (
        f"Duplicate resource URN '{parent.urn}'; try giving it a unique name"
    )
    inputs = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "same", "namespace": "ns"}}
    read = _recorded("kubernetes:core/v1:ConfigMap", "read", inputs=inputs)
    assert engine_refusal(mocks, read, [], create=False) is None
    first = _recorded("kubernetes:core/v1:ConfigMap", "first", inputs=inputs)
    assert engine_refusal(mocks, first, [], create=True) is None
    second = _recorded("kubernetes:core/v1:ConfigMap", "second", inputs=inputs)
    refusal = engine_refusal(mocks, second, [], create=True)
    assert refusal is not None and refusal.startswith(
        f"ConfigMap ns/same is created twice: {second.urn} and {first.urn}"
    )

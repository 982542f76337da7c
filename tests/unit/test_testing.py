"""The recording mocks record what the engine would see, and answer plausibly."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_kubernetes as k8s

from components.testing import (
    STACK_REFERENCE,
    TUNNEL_TOKEN_INVOKE,
    RecordingMocks,
    is_secret,
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

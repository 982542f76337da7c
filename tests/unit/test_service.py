"""ServiceStack wiring and library use: several services in one program."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pulumi
import pytest

from components.config.settings import Settings
from components.service import (
    ROLE_ENVIRONMENT,
    ROLE_EXPOSURE,
    ROLE_IMAGE,
    ROLE_MONITORING,
    ROLE_WORKLOAD,
    ServiceStack,
    ServiceStackArgs,
    child_name,
    environment_part,
    workload_part,
)
from components.testing import RecordingMocks

SOURCE = "example-org/service-lifecycle/staging"
STACK_OUTPUTS = {SOURCE: {"image_ref": "ghcr.io/example-org/hello@sha256:" + "c" * 64}}


def _kube_identity(mocks: RecordingMocks) -> list[tuple[str, str, str]]:
    identities = []
    for resource in mocks.kubernetes_objects():
        metadata = resource.plain_inputs.get("metadata") or {}
        identities.append(
            (resource.plain_inputs.get("kind", ""), metadata.get("namespace", ""), metadata.get("name", ""))
        )
    return identities


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_two_services_in_one_program_do_not_collide(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks], stage: str
) -> None:
    first = make_settings(stage, serviceName="hello")
    second = make_settings(
        stage, serviceName="world", imageRepository="ghcr.io/example-org/world",
        # every hostname its own (production's hi.example.com once stayed shared: the mocks now refuse that)
        hostnames=[h.replace(".example.com", "-world.example.com") for h in first.cloudflare.hostnames],
    )  # fmt: skip

    def program() -> None:
        ServiceStack("hello", ServiceStackArgs(settings=first))
        ServiceStack("world", ServiceStackArgs(settings=second))

    mocks = run_components(program, stack=stage, stack_outputs=STACK_OUTPUTS)
    urns = Counter(r.urn for r in mocks.resources)
    assert [u for u, n in urns.items() if n > 1] == []
    names = Counter(_kube_identity(mocks))
    assert [n for n, count in names.items() if count > 1] == []
    stacks = mocks.by_type("service-lifecycle:index:ServiceStack")
    assert sorted(s.name for s in stacks) == ["hello", "world"]
    # every other resource hangs below one of the two services
    roots = {s.urn for s in stacks}
    for resource in mocks.resources:
        if resource.urn in roots or (resource.type == "pulumi:pulumi:StackReference" and resource.parent in roots):
            continue
        prefix = f"urn:pulumi:{stage}::service-lifecycle::service-lifecycle:index:ServiceStack$"
        assert resource.urn.startswith(prefix), resource.urn


def test_sunset_registers_nothing_but_the_service(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]
) -> None:
    settings = make_settings("production", stage="sunset", replicas=1)
    mocks = run_components(
        lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)) and None, stack="production"
    )
    assert [r.type for r in mocks.resources] == ["service-lifecycle:index:ServiceStack"]


def test_a_workload_part_without_an_image_is_refused_before_it_is_registered(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]
) -> None:
    """The guard of the workload step fires on its own: no image, no Workload (only the namespace came first)."""
    settings = make_settings("staging")
    mocks = RecordingMocks()

    def program() -> None:
        environment = environment_part("hello", settings, opts=pulumi.ResourceOptions())
        workload_part("hello", settings, image_ref=None, environment=environment, opts=pulumi.ResourceOptions())

    with pytest.raises(pulumi.RunError) as raised:
        run_components(program, stack="staging", mocks=mocks)
    assert str(raised.value) == "stage staging runs a workload but neither builds nor promotes an image"
    assert "service-lifecycle:index:Workload" not in {r.type for r in mocks.resources}
    assert "service-lifecycle:index:Environment" in {r.type for r in mocks.resources}


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_the_parts_are_named_after_the_service_stack_and_its_roles(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks], stage: str
) -> None:
    """Every part function names its component ``child_name(<ServiceStack name>, <role>)``."""
    settings = make_settings(stage, serviceName="hello")
    mocks = run_components(
        lambda: ServiceStack("front", ServiceStackArgs(settings=settings)) and None,
        stack=stage,
        stack_outputs=STACK_OUTPUTS,
    )
    stack = mocks.one("service-lifecycle:index:ServiceStack")
    children = {r.name for r in mocks.children_of(stack.urn) if not r.custom}
    assert children == {child_name("front", role) for role in _roles(settings)}


def _roles(settings: Settings) -> list[str]:
    parts = settings.parts
    roles = [ROLE_IMAGE] if parts.builds_image else []
    return [*roles, ROLE_ENVIRONMENT, ROLE_WORKLOAD, ROLE_MONITORING, ROLE_EXPOSURE]

"""Promotion: production never builds; it deploys staging's image_ref or a pinned digest."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.sync_await import _sync_await

from components.config.settings import Settings, SettingsError
from components.promotion import PromotionError, check_image_ref, pinned_image_ref
from components.service import ServiceStack, ServiceStackArgs
from components.testing import STACK_REFERENCE, RecordingMocks

SOURCE = "example-org/service-lifecycle/staging"
"""promoteFromStack in Pulumi.production.yaml."""
REPOSITORY = "ghcr.io/example-org/hello"
VALIDATED = f"{REPOSITORY}@sha256:" + "c" * 64
PINNED = "sha256:" + "d" * 64
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DOCKER_IMAGE = "docker:index/image:Image"

Deploy = Callable[..., tuple[RecordingMocks, ServiceStack]]


@pytest.fixture
def deploy(make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]) -> Deploy:
    """Run the production ServiceStack with the given settings overrides and source stack outputs."""

    def run(
        stack: str = "production", outputs: dict[str, Any] | None = None, **overrides: Any
    ) -> tuple[RecordingMocks, ServiceStack]:
        settings = make_settings(stack, **overrides)
        made: list[ServiceStack] = []
        stack_outputs = {SOURCE: outputs if outputs is not None else {"image_ref": VALIDATED}}
        mocks = run_components(
            lambda: made.append(ServiceStack("hello", ServiceStackArgs(settings=settings))),
            stack=stack,
            stack_outputs=stack_outputs,
        )
        return mocks, made[0]

    return run


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """Around a program expected to fail: forget its failed output tasks afterwards.

    Installing new mocks does not clear ``SETTINGS.outputs``; a failed run's tasks would fail the next run.
    """
    try:
        yield
    finally:
        with pulumi_settings.SETTINGS.lock:
            pulumi_settings.SETTINGS.outputs.clear()
        pulumi_settings.SETTINGS.rpc_manager.clear()


def app_image(mocks: RecordingMocks) -> str:
    deployment = mocks.one(DEPLOYMENT, "hello-workload-deployment").plain_inputs
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_production_deploys_the_image_staging_validated(deploy: Deploy) -> None:
    mocks, service = deploy()
    reference = mocks.one(STACK_REFERENCE)
    assert reference.name == "hello-promotion-source"
    assert reference.plain_inputs["name"] == SOURCE
    assert reference.parent == mocks.one("service-lifecycle:index:ServiceStack").urn
    assert app_image(mocks) == VALIDATED
    assert service.image_ref is not None
    assert _sync_await(service.image_ref.future()) == VALIDATED
    # production never builds
    assert mocks.by_type(DOCKER_IMAGE) == []


def test_a_new_staging_digest_is_what_production_rolls_out(deploy: Deploy) -> None:
    patched = f"{REPOSITORY}@sha256:" + "e" * 64
    mocks, _ = deploy(outputs={"image_ref": patched})
    assert app_image(mocks) == patched


def test_pinned_digest_rolls_back_without_reading_staging(deploy: Deploy) -> None:
    mocks, service = deploy(pinnedDigest=PINNED)
    assert mocks.by_type(STACK_REFERENCE) == []
    assert app_image(mocks) == f"{REPOSITORY}@{PINNED}"
    assert service.image_ref is not None
    assert _sync_await(service.image_ref.future()) == f"{REPOSITORY}@{PINNED}"


def test_pinned_digest_alone_is_enough(deploy: Deploy) -> None:
    mocks, _ = deploy(pinnedDigest=PINNED, promoteFromStack=None)
    assert mocks.by_type(STACK_REFERENCE) == []
    assert app_image(mocks) == pinned_image_ref(REPOSITORY, PINNED)


def test_staging_builds_and_never_reads_another_stack(deploy: Deploy) -> None:
    mocks, _ = deploy("staging")
    assert mocks.by_type(STACK_REFERENCE) == []
    built = mocks.one(DOCKER_IMAGE).outputs["repoDigest"]
    assert app_image(mocks) == built
    assert built.startswith(f"{REPOSITORY}@sha256:")


def test_promoting_stage_without_a_source_is_a_settings_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("production", promoteFromStack=None, pinnedDigest=None)
    message = str(raised.value)
    assert "service-lifecycle:promoteFromStack" in message
    assert "pinnedDigest" in message


def test_building_stage_refuses_promotion_settings(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError, match="service-lifecycle:pinnedDigest"):
        make_settings("staging", pinnedDigest=PINNED)


@pytest.mark.parametrize(
    "bad",
    [
        f"{REPOSITORY}:1.0.0",  # a tag can move
        f"{REPOSITORY}@sha256:" + "c" * 63,
        "",
        42,
    ],
)
def test_a_bad_image_ref_from_the_source_stack_stops_the_deployment(deploy: Deploy, bad: object) -> None:
    with settled(), pytest.raises(PromotionError) as raised:
        deploy(outputs={"image_ref": bad})
    message = str(raised.value)
    assert f"stack {SOURCE} output 'image_ref'" in message
    assert repr(bad) in message
    assert "service-lifecycle:promoteFromStack" in message


def test_a_source_stack_without_image_ref_stops_the_deployment(deploy: Deploy) -> None:
    with settled(), pytest.raises(PromotionError, match="does not exist") as raised:
        deploy(outputs={"stage": "staging"})
    assert SOURCE in str(raised.value)
    assert "service-lifecycle:pinnedDigest" in str(raised.value)


def test_after_a_failed_promotion_a_good_one_still_deploys(deploy: Deploy) -> None:
    # guards the settled() helper: without it this test would see the failure above
    with settled(), pytest.raises(PromotionError):
        deploy(outputs={"image_ref": "nope"})
    mocks, _ = deploy()
    assert app_image(mocks) == VALIDATED


def test_check_image_ref_accepts_only_digest_references() -> None:
    assert check_image_ref(VALIDATED, source_stack=SOURCE) == VALIDATED
    tagged = f"{REPOSITORY}:1.0.0@sha256:" + "c" * 64
    assert check_image_ref(tagged, source_stack=SOURCE) == tagged
    for bad in (f"{REPOSITORY}:latest", "sha256:" + "c" * 64, f"{REPOSITORY}@sha256:" + "C" * 64, None):
        with pytest.raises(PromotionError):
            check_image_ref(bad, source_stack=SOURCE)


def test_a_library_caller_without_source_or_digest_is_refused_before_any_resource(
    run_components: Callable[..., RecordingMocks],
) -> None:
    from components.config.settings import PromotionSettings
    from components.promotion import promoted_image_ref

    neither = PromotionSettings(from_stack=None, pinned_digest=None)
    mocks = RecordingMocks()
    with settled(), pytest.raises(PromotionError, match="promoteFromStack or service-lifecycle:pinnedDigest"):
        run_components(lambda: promoted_image_ref("hello", repository=REPOSITORY, promotion=neither) and None,
                       mocks=mocks)  # fmt: skip
    assert mocks.resources == []

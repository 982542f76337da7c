"""ContainerImage under the recording mocks; ECR credentials through moto."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from pulumi.runtime.settings import SETTINGS

from components.image import (
    TYPE,
    ContainerImage,
    ContainerImageArgs,
    RegistryCredentialsError,
    ecr_login,
    require_digest_ref,
)
from components.testing import RecordingMocks, is_secret, redact

IMAGE = "docker:index/image:Image"
REVISION = "0123456789abcdef0123456789abcdef01234567"
PASSWORD = "ghp_test-token-7c1d"
ECR_REPO = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello"

RunComponents = Callable[..., RecordingMocks]


def _build(run_components: RunComponents, args: ContainerImageArgs, **kw: Any) -> tuple[RecordingMocks, list[str]]:
    refs: list[str] = []

    def program() -> None:
        image = ContainerImage("hello", args)
        image.image_ref.apply(refs.append)

    return run_components(program, **kw), refs


def _args(**overrides: Any) -> ContainerImageArgs:
    base: dict[str, Any] = {
        "repository": "ghcr.io/acme/hello",
        "revision": REVISION,
        "version": "1.4.2",
        "registry_username": "acme-ci",
        "registry_password": PASSWORD,
    }
    base.update(overrides)
    return ContainerImageArgs(**base)


def test_builds_pushes_and_tags_with_the_revision(run_components: RunComponents) -> None:
    mocks, refs = _build(run_components, _args(source="https://github.com/acme/hello"))
    component = mocks.one(TYPE, "hello")
    image = mocks.one(IMAGE, "hello-image")
    assert image.parent == component.urn
    assert image.urn.endswith(f"{TYPE}${IMAGE}::hello-image")
    inputs = image.plain_inputs
    assert inputs["imageName"] == f"ghcr.io/acme/hello:{REVISION}"
    assert inputs["skipPush"] is False
    assert inputs["build"] == {
        "context": "app",
        "platform": "linux/amd64",
        "args": {"REVISION": REVISION, "VERSION": "1.4.2", "SOURCE": "https://github.com/acme/hello"},
    }
    assert inputs["registry"] == {"server": "ghcr.io", "username": "acme-ci", "password": PASSWORD}
    # The image reference handed on is pinned by digest, in the pushed repository.
    assert len(refs) == 1 and re.fullmatch(r"ghcr\.io/acme/hello@sha256:[0-9a-f]{64}", refs[0])


def test_registry_password_is_a_secret_and_never_plain(run_components: RunComponents) -> None:
    mocks, _ = _build(run_components, _args())
    image = mocks.one(IMAGE)
    # Pulumi marks the whole registry block secret because the password inside it is one.
    assert is_secret(image.inputs["registry"])
    assert image.inputs["registry"]["value"]["password"] == PASSWORD
    assert PASSWORD not in json.dumps(redact(image.inputs))
    assert PASSWORD not in json.dumps(image.to_json())


def test_base_image_and_dockerfile_are_passed_only_when_set(run_components: RunComponents) -> None:
    mocks, _ = _build(run_components, _args(version=None))
    assert mocks.one(IMAGE).plain_inputs["build"]["args"] == {"REVISION": REVISION}
    base = "python:3.12.7-slim-bookworm@sha256:" + "a" * 64
    mocks, _ = _build(run_components, _args(base_image=base, dockerfile="app/Dockerfile", platform="linux/arm64"))
    build = mocks.one(IMAGE).plain_inputs["build"]
    assert build["args"]["BASE_IMAGE"] == base
    assert (build["dockerfile"], build["platform"]) == ("app/Dockerfile", "linux/arm64")


@pytest.mark.parametrize(("missing", "message"), [("registry_password", "password"), ("registry_username", "username")])
def test_missing_credentials_fail_before_any_resource(
    run_components: RunComponents, missing: str, message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(RegistryCredentialsError, match=f"ghcr.io needs a registry {message}"):
        _build(run_components, _args(**{missing: None}), mocks=mocks)
    assert mocks.resources == []


def test_revision_must_be_a_valid_tag(run_components: RunComponents) -> None:
    mocks = RecordingMocks()
    with pytest.raises(ValueError, match="not a valid image tag"):
        _build(run_components, _args(revision="feature/branch"), mocks=mocks)
    assert mocks.resources == []


def test_repository_needs_a_registry_host(run_components: RunComponents) -> None:
    with pytest.raises(ValueError, match="must start with a registry host"):
        _build(run_components, _args(repository="acme/hello"))


def test_a_tag_is_never_accepted_as_image_ref(run_components: RunComponents) -> None:
    assert require_digest_ref("r.io/a@sha256:" + "0" * 64).endswith("0" * 64)
    for bad in ("ghcr.io/acme/hello:1.0", "ghcr.io/acme/hello@sha256:abc", ""):
        with pytest.raises(ValueError, match="pinned by digest"):
            require_digest_ref(bad)
    # A provider that answered a tag instead of a digest fails the program.
    mocks = RecordingMocks(outputs={IMAGE: lambda r: {"repoDigest": "ghcr.io/acme/hello:latest"}})
    try:
        with pytest.raises(Exception, match="pinned by digest"):
            _build(run_components, _args(), mocks=mocks)
    finally:
        # A failed program leaves its dependent tasks queued in Pulumi's global runtime state;
        # drop them so they do not fail the next test's program.
        SETTINGS.rpc_manager.clear()
        SETTINGS.outputs.clear()


# ---- ECR -------------------------------------------------------------------------------------------


@pytest.fixture
def ecr_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("ecr", region_name="eu-west-1")


def test_ecr_credentials_come_from_get_authorization_token(run_components: RunComponents, ecr_client: Any) -> None:
    token = ecr_client.get_authorization_token(registryIds=["123456789012"])["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    mocks, refs = _build(
        run_components,
        _args(repository=ECR_REPO, registry_username=None, registry_password=None, ecr_client=ecr_client),
    )
    image = mocks.one(IMAGE)
    assert is_secret(image.inputs["registry"])
    registry = image.plain_inputs["registry"]
    assert registry["server"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert registry["username"] == user == "AWS"
    assert registry["password"] == password
    assert password not in json.dumps(image.to_json())
    assert image.plain_inputs["imageName"] == f"{ECR_REPO}:{REVISION}"
    assert refs[0].startswith(ECR_REPO + "@sha256:")


def test_ecr_login_uses_the_region_of_the_url_by_default(ecr_client: Any) -> None:
    login = ecr_login(ECR_REPO)  # boto3 client created inside, from the URL's region, under moto
    assert login.server == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def test_ecr_refusal_is_a_clear_error_without_secrets() -> None:
    client = boto3.client(
        "ecr", region_name="eu-west-1", aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="s3cr3t-value"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_authorization_token", service_error_code="AccessDeniedException", http_status_code=403
        )
        with pytest.raises(RegistryCredentialsError) as err:
            ecr_login(ECR_REPO, client=client)
    message = str(err.value)
    assert "123456789012.dkr.ecr.eu-west-1.amazonaws.com" in message and "eu-west-1" in message
    assert "ecr:GetAuthorizationToken" in message
    assert "s3cr3t-value" not in message


def test_ecr_login_rejects_other_registries() -> None:
    with pytest.raises(ValueError, match="not an Amazon ECR repository"):
        ecr_login("ghcr.io/acme/hello")


# ---- wiring in ServiceStack ------------------------------------------------------------------------


def test_service_stack_builds_the_image_only_where_the_stage_builds(
    run_components: RunComponents, make_settings: Callable[..., Any]
) -> None:
    from components.service import ServiceStack, ServiceStackArgs

    staging = make_settings("staging")

    def program(settings: Any) -> Callable[[], None]:
        return lambda: ServiceStack(settings.service_name, ServiceStackArgs(settings=settings)) and None

    mocks = run_components(program(staging), stack="staging")
    component = mocks.one(TYPE)
    assert component.name == f"{staging.service_name}-image"
    assert component.parent == mocks.one("service-lifecycle:index:ServiceStack").urn
    image = mocks.one(IMAGE).plain_inputs
    assert image["imageName"] == f"{staging.registry.repository}:{staging.build.revision}"
    assert image["build"]["platform"] == staging.build.platform
    assert image["build"]["args"]["VERSION"] == staging.app_version
    assert is_secret(mocks.one(IMAGE).inputs["registry"])

    production = make_settings("production")
    promoted = {production.promotion.from_stack: {"image_ref": f"{production.registry.repository}@sha256:{'a' * 64}"}}
    mocks = run_components(program(production), stack="production", stack_outputs=promoted)
    assert mocks.by_type(IMAGE) == [] and mocks.by_type(TYPE) == []


def test_source_url_setting_becomes_the_oci_source_label(
    run_components: RunComponents, make_settings: Callable[..., Any]
) -> None:
    from components.service import ServiceStack, ServiceStackArgs

    settings = make_settings("staging", sourceUrl="https://github.com/acme/hello")
    mocks = run_components(lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)) and None, stack="staging")
    assert mocks.one(IMAGE).plain_inputs["build"]["args"]["SOURCE"] == "https://github.com/acme/hello"


def test_bad_source_url_names_the_key(make_settings: Callable[..., Any]) -> None:
    from components.settings import SettingsError

    with pytest.raises(SettingsError, match=r"service-lifecycle:sourceUrl: got 'git@github\.com:acme/hello'"):
        make_settings("staging", sourceUrl="git@github.com:acme/hello")


@pytest.mark.parametrize("token", ["bm90LWEtcGFpcg==", "%%%not-base64%%%"])
def test_ecr_token_that_is_not_user_password_is_rejected(token: str) -> None:
    client = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_response("get_authorization_token", {"authorizationData": [{"authorizationToken": token}]})
        with pytest.raises(RegistryCredentialsError, match="is not 'user:password'"):
            ecr_login(ECR_REPO, client=client)

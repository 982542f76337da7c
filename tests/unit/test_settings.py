"""Every settings rule: a bad value is refused with the full key, the value and what is expected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from components.lifecycle import Stage
from components.settings import Settings, SettingsError, cpu_millicores, memory_bytes

GOOD_DIGEST = "sha256:" + "a" * 64

# (stack, key, bad value, fragment of the expected text)
BAD_VALUES: list[tuple[str, str, Any, str]] = [
    ("staging", "stage", "prod", "one of staging, production, sunset"),
    ("staging", "stage", None, "one of staging"),
    ("staging", "serviceName", "Hello_World", "DNS-1123 label"),
    ("staging", "serviceName", "-hello", "DNS-1123 label"),
    ("staging", "serviceName", "a" * 41, "at most 40"),
    ("staging", "team", "Platform Team", "DNS-1123 label"),
    ("staging", "appVersion", "v1.0", "semantic version"),
    ("staging", "replicas", "two", "an integer from 1 to 50"),
    ("staging", "replicas", 0, "an integer from 1 to 50"),
    ("production", "replicas", 1, "stage production needs at least 2"),
    ("staging", "containerPort", 80, "unprivileged port"),
    ("staging", "containerPort", 70000, "unprivileged port"),
    ("staging", "cpuRequest", "lots", "CPU quantity"),
    ("staging", "cpuLimit", "0", "CPU quantity"),
    ("staging", "memoryRequest", "128MB", "memory quantity"),
    ("staging", "memoryLimit", "-1Gi", "memory quantity"),
    ("staging", "imageRepository", "ghcr.io/acme/hello:1.0", "without tag or digest"),
    ("staging", "imageRepository", "ghcr.io/acme/hello@" + GOOD_DIGEST, "without tag or digest"),
    ("staging", "imageRepository", "hello", "without tag or digest"),
    ("production", "imageRepository", "acme/hello", "with its registry host"),
    ("staging", "imageRetainDigests", 0, "from 1 to 100"),
    ("staging", "registryUsername", None, "the user that pushes to ghcr.io"),
    ("staging", "registryPassword", None, "pulumi config set --secret registryPassword"),
    ("staging", "buildPlatform", "windows/amd64", "linux/amd64 or linux/arm64"),
    ("staging", "baseImage", "python:3.12-slim", "pinned by digest"),
    ("staging", "promoteFromStack", "acme/service-lifecycle/staging", "stage staging builds its own image"),
    ("staging", "pinnedDigest", GOOD_DIGEST, "stage staging builds its own image"),
    ("production", "pinnedDigest", "sha256:abc", "sha256: followed by 64 hex digits"),
    ("production", "pinnedDigest", "a" * 64, "sha256: followed by 64 hex digits"),
    ("production", "promoteFromStack", "acme/service lifecycle", "a stack name"),
    ("staging", "kubernetesVersion", "1.24", "from 1.25 to 1.37"),
    ("staging", "kubernetesVersion", "v1.31", "from 1.25 to 1.37"),
    ("staging", "cloudflareAccountId", "0123456789ABCDEF0123456789ABCDEF", "32 lower-case hex"),
    ("staging", "cloudflareAccountId", "abc", "32 lower-case hex"),
    ("staging", "cloudflareZoneId", "z" * 32, "32 lower-case hex"),
    ("staging", "zoneName", "not a zone", "a DNS zone"),
    ("staging", "hostnames", ["hello.example.org"], "inside the zone example.com"),
    ("staging", "hostnames", ["Hello.example.com"], "inside the zone example.com"),
    ("staging", "hostnames", ["a.example.com", "a.example.com"], "without duplicates"),
    ("staging", "hostnames", [], "a non-empty list"),
    ("staging", "hostnames", None, "a non-empty list"),
    ("staging", "hostnames", "hello-staging.example.com", "a list of"),
    ("staging", "accessEnabled", False, "stage staging is always behind Cloudflare Access"),
    ("staging", "accessEnabled", "maybe", "true or false"),
    ("staging", "accessAllowEmails", ["not-an-email"], "email addresses"),
    ("staging", "accessAllowEmailDomains", ["@example.com"], "email domains"),
    ("staging", "cloudflaredImage", "cloudflare/cloudflared:latest", "pinned by digest"),
    ("staging", "cloudflaredReplicas", 1, "from 2 to 20"),
    ("staging", "monitoringNamespace", "Monitoring", "DNS-1123 label"),
    ("staging", "monitoringInstallClusterStack", "yes", "true or false"),
    ("staging", "sloAvailabilityTarget", "100", "above 50 and below 100"),
    ("staging", "sloAvailabilityTarget", "high", "above 50 and below 100"),
    ("staging", "latencyP95Seconds", "0", "above 0 and below 60"),
    ("staging", "latencyP95Seconds", "60", "above 0 and below 60"),
    # Not numbers, though Python's int()/Decimal() take them (NaN used to raise, not report).
    ("staging", "replicas", "1_0", "an integer from 1 to 50"),
    ("staging", "replicas", " 3", "an integer from 1 to 50"),
    ("staging", "containerPort", "\u0668\u0660\u0668\u0660", "unprivileged port"),
    ("staging", "sloAvailabilityTarget", "NaN", "above 50 and below 100"),
    ("staging", "latencyP95Seconds", "sNaN", "above 0 and below 60"),
    # "$" also matches before a trailing newline, which a YAML block scalar keeps.
    ("staging", "cloudflareZoneId", "fedcba9876543210fedcba9876543210\n", "32 lower-case hex"),
    ("production", "pinnedDigest", GOOD_DIGEST + "\n", "sha256: followed by 64 hex digits"),
    ("staging", "serviceName", "hello-world-services\n", "DNS-1123 label"),
    # Rules that had no row here.
    ("staging", "imageRetainDigests", 101, "from 1 to 100"),
    ("staging", "buildContext", "", "the Docker build context directory"),
    ("staging", "sourceRevision", "main", "the git commit (7 to 40 hex digits)"),
    ("staging", "sourceUrl", "http://github.com/acme/hello", "the https:// URL of the source repository"),
    ("staging", "sloAvailabilityTarget", "93", "above 93.06"),
    ("staging", "monitoringRunbookUrl", "http://example.com/runbook", "an https:// URL of the alerts' runbook"),
]


@pytest.mark.parametrize(("stack", "name", "value", "expected"), BAD_VALUES, ids=lambda v: str(v)[:30])
def test_bad_value_is_refused_naming_key_value_and_expectation(
    make_settings: Callable[..., Settings], stack: str, name: str, value: Any, expected: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings(stack, **{name: value})
    lines = [str(p) for p in raised.value.problems if p.key == f"service-lifecycle:{name}"]
    assert lines, f"no problem reported for service-lifecycle:{name}: {raised.value}"
    line = lines[0]
    assert line.startswith(f"service-lifecycle:{name}: got ")
    assert expected in line
    if value is None:
        assert "<not set>" in line
    elif isinstance(value, list):
        assert (value[0] if value else "[]") in line
    elif isinstance(value, bool):
        assert repr(str(value).lower()) in line
    else:
        assert str(value)[:20] in line


def test_request_above_limit_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", cpuRequest="2", cpuLimit="500m", memoryRequest="1Gi", memoryLimit="512Mi")
    text = str(raised.value)
    assert "service-lifecycle:cpuRequest: got '2'; expected at most cpuLimit (500m)" in text
    assert "service-lifecycle:memoryRequest: got '1Gi'; expected at most memoryLimit (512Mi)" in text


def test_production_without_promotion_source_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("production", promoteFromStack=None, pinnedDigest=None)
    assert "stage production never builds" in str(raised.value)


def test_staging_with_access_and_empty_allow_list_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", accessAllowEmails=[], accessAllowEmailDomains=[])
    assert "Access is on and would admit nobody" in str(raised.value)


def test_cluster_stack_needs_its_secrets(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("production", monitoringInstallClusterStack=True)
    keys = {p.key for p in raised.value.problems}
    assert {"service-lifecycle:grafanaAdminPassword", "service-lifecycle:alertWebhookUrl"} <= keys


def test_missing_revision_is_refused_when_building(stack_values: Callable[..., dict[str, str]]) -> None:
    from components.plan import DictConfig
    from components.settings import load_settings

    values = stack_values("staging", registryPassword="x", registryPullPassword="y")
    with pytest.raises(SettingsError) as raised:
        load_settings(DictConfig(values, set()), environ={})
    assert "service-lifecycle:sourceRevision: got <not set>; expected the git commit" in str(raised.value)
    settings = load_settings(DictConfig(values, set()), environ={"GITHUB_SHA": "abcdef1234567"})
    assert settings.build is not None and settings.build.revision == "abcdef1234567"


def test_all_problems_are_reported_together(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("production", replicas=1, containerPort=22, hostnames=["x.example.org"], team="A B")
    keys = [p.key.split(":")[1] for p in raised.value.problems]
    assert keys == ["team", "replicas", "containerPort", "hostnames"]
    message = str(raised.value)
    assert message.startswith("invalid stack configuration (4 problem(s)):")
    assert isinstance(raised.value, pulumi.RunError), "RunError: pulumi shows the message without a traceback"


def test_secret_values_are_never_echoed(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("staging", registryPassword="hunter2-very-secret")
    assert "hunter2" not in repr(settings)
    assert isinstance(settings.registry.password, pulumi.Output)


def test_good_stacks_load(make_settings: Callable[..., Settings]) -> None:
    staging = make_settings("staging")
    assert staging.stage is Stage.STAGING and staging.build is not None and staging.promotion is None
    assert staging.cloudflare.access_enabled
    assert staging.namespace == "hello-staging"
    production = make_settings("production")
    assert production.stage is Stage.PRODUCTION and production.build is None
    assert (
        production.promotion is not None and production.promotion.from_stack == "example-org/service-lifecycle/staging"
    )
    assert production.replicas == 3 and not production.cloudflare.access_enabled
    pinned = make_settings("production", pinnedDigest=GOOD_DIGEST)
    assert pinned.promotion is not None and pinned.promotion.pinned_digest == GOOD_DIGEST


def test_production_can_opt_into_access(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("production", accessEnabled=True, accessAllowEmails=["ops@example.com"])
    assert settings.cloudflare.access_enabled


def test_ecr_repository_needs_no_registry_password(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        "staging", imageRepository="123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello",
        registryUsername=None, registryPassword=None, imagePullSecret=False,
    )  # fmt: skip
    assert settings.registry.is_ecr and settings.registry.ecr_region == "eu-west-1"
    assert settings.registry.ecr_repository_name == "hello"


@pytest.mark.parametrize(("quantity", "millicores"), [("250m", 250), ("1", 1000), ("1.5", 1500), ("0.1", 100)])
def test_cpu_quantities(quantity: str, millicores: int) -> None:
    assert cpu_millicores(quantity) == millicores


@pytest.mark.parametrize(("quantity", "size"), [("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("512", 512)])
def test_memory_quantities(quantity: str, size: int) -> None:
    assert memory_bytes(quantity) == size


@pytest.mark.parametrize("quantity", ["1.5m.", "m", "", "1 Gi", "1gi"])
def test_bad_quantities_raise(quantity: str) -> None:
    with pytest.raises(ValueError):
        memory_bytes(quantity)
    with pytest.raises(ValueError):
        cpu_millicores(quantity)

"""Every settings rule: a bad value is refused with the full key, the value and what is expected."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pulumi
import pytest

from components.config.settings import Settings, SettingsError, cpu_millicores, memory_bytes
from components.lifecycle import Stage, parts_for

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


def _plain_ids(rows: list[tuple[Any, ...]]) -> list[str]:
    """Ids of letters, digits and '_' only: mutmut selects tests by node id, and '/', ':' or spaces break that."""
    return [f"{row[0]}_{row[1]}_{index}" for index, row in enumerate(rows)]


@pytest.mark.parametrize(("stack", "name", "value", "expected"), BAD_VALUES, ids=_plain_ids(BAD_VALUES))
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
    assert [str(p) for p in raised.value.problems] == [
        "service-lifecycle:accessAllowEmails: got '[]'; expected at least one email (or a domain in"
        " accessAllowEmailDomains): Access is on and would admit nobody"
    ]


def test_cluster_stack_needs_its_secrets(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("production", monitoringInstallClusterStack=True)
    keys = {p.key for p in raised.value.problems}
    assert {"service-lifecycle:grafanaAdminPassword", "service-lifecycle:alertWebhookUrl"} <= keys


def test_missing_revision_is_refused_when_building(stack_values: Callable[..., dict[str, str]]) -> None:
    from components.config.settings import load_settings
    from components.testing import DictConfig

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


def test_every_step_reports_in_the_order_of_the_steps(make_settings: Callable[..., Settings]) -> None:
    """One bad value for each step of load_settings: the lines come in the steps' order, none stops the next."""
    with pytest.raises(SettingsError) as raised:
        make_settings(
            "staging", appVersion="v1", imageRetainDigests=0, buildPlatform="windows/amd64", pinnedDigest="sha256:abc",
            kubernetesVersion="1.24", zoneName="not a zone", accessAllowEmails=["x"], monitoringNamespace="Monitoring",
        )  # fmt: skip
    keys = [p.key.split(":")[1] for p in raised.value.problems]
    assert keys == [
        "appVersion", "imageRetainDigests", "buildPlatform", "pinnedDigest", "pinnedDigest", "kubernetesVersion",
        "zoneName", "accessAllowEmails", "monitoringNamespace",
    ]  # fmt: skip


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


def test_ecr_repository_refuses_an_image_pull_secret(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings(
            "production", imageRepository="123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello",
            registryUsername=None, registryPassword=None, imagePullSecret=True,
        )  # fmt: skip
    assert [str(p) for p in raised.value.problems] == [
        "service-lifecycle:imagePullSecret: got 'true'; expected false for ECR: EKS nodes pull with their IAM role"
        " (see README)"
    ]


@pytest.mark.parametrize(("quantity", "millicores"), [("250m", 250), ("1", 1000), ("1.5", 1500), ("0.1", 100)])
def test_cpu_quantities(quantity: str, millicores: int) -> None:
    assert cpu_millicores(quantity) == millicores


@pytest.mark.parametrize(("quantity", "size"), [("128Mi", 128 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("512", 512)])
def test_memory_quantities(quantity: str, size: int) -> None:
    assert memory_bytes(quantity) == size


@pytest.mark.parametrize(
    "quantity", ["1.5m.", "m", "", "1 Gi", "1gi"], ids=["dot", "unit_only", "empty", "space", "lower"]
)
def test_bad_quantities_raise(quantity: str) -> None:
    with pytest.raises(ValueError) as memory:
        memory_bytes(quantity)
    with pytest.raises(ValueError) as cpu:
        cpu_millicores(quantity)
    assert memory.value.args == cpu.value.args == (quantity,)  # the quantity refused, for a caller's message


# ---------------------------------------------------------------------------------------------
# The whole error line, for every key: what a user reads is the contract (and a mutant of any
# part of it must fail a test). Required keys removed (None) show "<not set>".

EXACT_LINES: list[tuple[str, str, Any, str]] = [
    ("staging", "stage", None, "service-lifecycle:stage: got <not set>; expected one of staging, production, sunset"),
    (
        "staging",
        "serviceName",
        None,
        "service-lifecycle:serviceName: got <not set>; expected a DNS-1123 label (lower-case letters, digits, '-'; at most 40 characters)",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "team",
        None,
        "service-lifecycle:team: got <not set>; expected a DNS-1123 label naming the owning team",
    ),
    ("staging", "team", "A B", "service-lifecycle:team: got 'A B'; expected a DNS-1123 label naming the owning team"),
    (
        "staging",
        "appVersion",
        None,
        "service-lifecycle:appVersion: got <not set>; expected a semantic version such as 1.4.2",
    ),
    (
        "staging",
        "replicas",
        None,
        "service-lifecycle:replicas: got <not set>; expected an integer from 1 to 50 (stage staging needs at least 1)",
    ),
    (
        "production",
        "replicas",
        "51",
        "service-lifecycle:replicas: got '51'; expected an integer from 2 to 50 (stage production needs at least 2)",
    ),
    (
        "staging",
        "containerPort",
        None,
        "service-lifecycle:containerPort: got <not set>; expected an unprivileged port from 1024 to 65535",
    ),
    (
        "staging",
        "containerPort",
        "1023",
        "service-lifecycle:containerPort: got '1023'; expected an unprivileged port from 1024 to 65535",
    ),
    (
        "staging",
        "cpuRequest",
        None,
        "service-lifecycle:cpuRequest: got <not set>; expected a positive Kubernetes CPU quantity such as 250m or 1",
    ),
    (
        "staging",
        "memoryLimit",
        None,
        "service-lifecycle:memoryLimit: got <not set>; expected a positive Kubernetes memory quantity such as 128Mi or 1Gi",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "memoryLimit",
        "8Ei",
        "service-lifecycle:memoryLimit: got '8Ei'; expected a positive Kubernetes memory quantity such as 128Mi or 1Gi, at most 2^63-1 and in whole thousandths (the API caps or rounds others)",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "cpuLimit",
        "0.0001",
        "service-lifecycle:cpuLimit: got '0.0001'; expected a positive Kubernetes CPU quantity such as 250m or 1, at most 2^63-1 and in whole thousandths (the API caps or rounds others)",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "imageRepository",
        None,
        "service-lifecycle:imageRepository: got <not set>; expected an image repository with its registry host, without tag or digest, such as registry.example.com/team/app",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "imageRetainDigests",
        None,
        "service-lifecycle:imageRetainDigests: got <not set>; expected an integer from 1 to 100",
    ),
    (
        "staging",
        "buildContext",
        None,
        "service-lifecycle:buildContext: got <not set>; expected the Docker build context directory, e.g. app",
    ),
    (
        "staging",
        "buildPlatform",
        None,
        "service-lifecycle:buildPlatform: got <not set>; expected linux/amd64 or linux/arm64",
    ),
    (
        "staging",
        "registryPassword",
        None,
        "service-lifecycle:registryPassword: got <not set>; expected a secret: pulumi config set --secret registryPassword <token>",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "registryUsername",
        None,
        "service-lifecycle:registryUsername: got <not set>; expected the user that pushes to ghcr.io",
    ),
    (
        "staging",
        "kubernetesVersion",
        None,
        "service-lifecycle:kubernetesVersion: got <not set>; expected a Kubernetes minor version from 1.25 to 1.37",
    ),
    (
        "staging",
        "kubeContext",
        "a\nb",
        "service-lifecycle:kubeContext: got 'a\\nb'; expected a kubeconfig context name: one line of printable characters, at most 253",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "cloudflareAccountId",
        None,
        "service-lifecycle:cloudflareAccountId: got <not set>; expected 32 lower-case hex characters",
    ),
    (
        "staging",
        "cloudflareZoneId",
        None,
        "service-lifecycle:cloudflareZoneId: got <not set>; expected 32 lower-case hex characters",
    ),
    ("staging", "zoneName", None, "service-lifecycle:zoneName: got <not set>; expected a DNS zone such as example.com"),
    (
        "staging",
        "zoneName",
        "example",
        "service-lifecycle:zoneName: got 'example'; expected a DNS zone such as example.com",
    ),
    (
        "staging",
        "hostnames",
        None,
        "service-lifecycle:hostnames: got <not set>; expected a non-empty list of lower-case hostnames inside the zone example.com",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "hostnames",
        ["a.b.example.com"],
        "service-lifecycle:hostnames: got 'a.b.example.com'; expected hostnames at most one label below example.com: Universal SSL covers only example.com and *.example.com; list deeper ones in advancedCertificateHostnames once an Advanced Certificate covers them",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "advancedCertificateHostnames",
        ["x.example.com"],
        "service-lifecycle:advancedCertificateHostnames: got 'x.example.com'; expected a list of hostnames from the hostnames setting that an Advanced Certificate covers",  # noqa: E501 - the whole line is the contract
    ),
    ("staging", "accessEnabled", None, "service-lifecycle:accessEnabled: got <not set>; expected true or false"),
    (
        "staging",
        "accessEnabled",
        "false",
        "service-lifecycle:accessEnabled: got 'false'; expected true: stage staging is always behind Cloudflare Access",
    ),
    (
        "staging",
        "cloudflaredImage",
        None,
        "service-lifecycle:cloudflaredImage: got <not set>; expected the cloudflared image pinned by digest (cloudflare/cloudflared:<tag>@sha256:…)",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "cloudflaredReplicas",
        None,
        "service-lifecycle:cloudflaredReplicas: got <not set>; expected an integer from 2 to 20",
    ),
    (
        "staging",
        "monitoringNamespace",
        None,
        "service-lifecycle:monitoringNamespace: got <not set>; expected a namespace name (DNS-1123 label)",
    ),
    (
        "staging",
        "monitoringInstallClusterStack",
        None,
        "service-lifecycle:monitoringInstallClusterStack: got <not set>; expected true or false",
    ),
    (
        "staging",
        "sloAvailabilityTarget",
        None,
        "service-lifecycle:sloAvailabilityTarget: got <not set>; expected a percentage above 50 and below 100, e.g. 99.9",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "sloAvailabilityTarget",
        "93.05",
        "service-lifecycle:sloAvailabilityTarget: got '93.05'; expected above 93.06: a 14.4x burn of a larger error budget needs more than 100% errors, so the page never fires",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "sloAvailabilityTarget",
        "99.99999999999999999999",
        "service-lifecycle:sloAvailabilityTarget: got '99.99999999999999999999'; expected a percentage above 50 and below 100, e.g. 99.9",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "latencyP95Seconds",
        None,
        "service-lifecycle:latencyP95Seconds: got <not set>; expected seconds above 0 and below 60, e.g. 0.5",
    ),
    (
        "staging",
        "latencyP95Seconds",
        "1e-400",
        "service-lifecycle:latencyP95Seconds: got '1e-400'; expected seconds above 0 and below 60, e.g. 0.5",
    ),
    (
        "production",
        "promoteFromStack",
        None,
        "service-lifecycle:promoteFromStack: got <not set>; expected stage production never builds: set promoteFromStack (the staging stack) or pinnedDigest (rollback)",  # noqa: E501 - the whole line is the contract
    ),
    # Survivors of the issue-23 samples of reading.py and steps.py (mutation.py --sample 300, seed 11).
    (
        "staging",
        "baseImage",
        "python:3.12-slim",
        "service-lifecycle:baseImage: got 'python:3.12-slim'; expected a base image pinned by digest (name@sha256:…)",
    ),
    (
        "staging",
        "accessEnabled",
        "maybe",
        "service-lifecycle:accessEnabled: got 'maybe'; expected true or false",
    ),
    # Survivors of the settings sample after load_settings was split by step (mutation.py --sample 120).
    (
        "staging",
        "registryPullPassword",
        None,
        "service-lifecycle:registryPullPassword: got <not set>; expected a secret read-only token: pulumi config set --secret registryPullPassword <token>",  # noqa: E501 - the whole line is the contract
    ),
    (
        "staging",
        "sourceUrl",
        "http://github.com/acme/hello",
        "service-lifecycle:sourceUrl: got 'http://github.com/acme/hello'; expected the https:// URL of the source repository, e.g. https://git.example.com/team/app",  # noqa: E501 - the whole line is the contract
    ),
]


@pytest.mark.parametrize(("stack", "name", "value", "line"), EXACT_LINES, ids=_plain_ids(EXACT_LINES))
def test_error_line_is_exact(
    make_settings: Callable[..., Settings], stack: str, name: str, value: Any, line: str
) -> None:
    from components.config import schema

    if value is None and schema.default_text(name) not in (None, "", "[]"):
        value = ""  # an absent key takes the package's default (components/config/schema.py); "" is "not set"
    with pytest.raises(SettingsError) as raised:
        make_settings(stack, **{name: value})
    assert line in [str(p) for p in raised.value.problems], raised.value


# ---------------------------------------------------------------------------------------------
# Bounds pinned on the accepting side too: a mutant that moves a bound by one must fail here.

GOOD_EDGES: list[tuple[str, str, Any, Callable[[Settings], Any], Any]] = [
    ("staging", "replicas", 1, lambda s: s.replicas, 1),
    ("staging", "replicas", 50, lambda s: s.replicas, 50),
    ("production", "replicas", 2, lambda s: s.replicas, 2),
    ("staging", "containerPort", 1024, lambda s: s.container_port, 1024),
    ("staging", "containerPort", 65535, lambda s: s.container_port, 65535),
    ("staging", "imageRetainDigests", 1, lambda s: s.registry.retain_digests, 1),
    ("staging", "imageRetainDigests", 100, lambda s: s.registry.retain_digests, 100),
    ("staging", "cloudflaredReplicas", 2, lambda s: s.cloudflare.cloudflared_replicas, 2),
    ("staging", "cloudflaredReplicas", 20, lambda s: s.cloudflare.cloudflared_replicas, 20),
    ("staging", "sloAvailabilityTarget", "93.1", lambda s: s.monitoring.slo_availability, 93.1),
    ("staging", "sloAvailabilityTarget", "99.999", lambda s: s.monitoring.slo_availability, 99.999),
    ("staging", "latencyP95Seconds", "0.001", lambda s: s.monitoring.latency_p95_seconds, 0.001),
    ("staging", "latencyP95Seconds", "59.999", lambda s: s.monitoring.latency_p95_seconds, 59.999),
    ("staging", "cpuRequest", "1m", lambda s: s.resources.cpu_request, "1m"),
    ("staging", "memoryRequest", "1", lambda s: s.resources.memory_request, "1"),
    ("staging", "memoryLimit", "7Ei", lambda s: s.resources.memory_limit, "7Ei"),
    ("staging", "kubeContext", "k" * 253, lambda s: s.kubernetes.context, "k" * 253),
    ("staging", "kubeContext", None, lambda s: s.kubernetes.context, None),
    ("staging", "accessEnabled", "TRUE", lambda s: s.cloudflare.access_enabled, True),
    ("production", "accessEnabled", "False", lambda s: s.cloudflare.access_enabled, False),
    ("staging", "buildPlatform", "linux/arm64", lambda s: s.build.platform, "linux/arm64"),
    ("staging", "kubernetesVersion", "1.25", lambda s: s.kubernetes.version, "1.25"),
    ("staging", "kubernetesVersion", "1.37", lambda s: s.kubernetes.version, "1.37"),
    ("staging", "serviceName", "a" * 40, lambda s: s.service_name, "a" * 40),
    ("staging", "team", "t" * 63, lambda s: s.team, "t" * 63),
    ("staging", "sourceRevision", "abcdef1", lambda s: s.build.revision, "abcdef1"),
    ("staging", "baseImage", "python@" + GOOD_DIGEST, lambda s: s.build.base_image, "python@" + GOOD_DIGEST),
    ("staging", "buildContext", "./app", lambda s: s.build.context, "./app"),
    ("production", "promoteFromStack", "acme/service-lifecycle/staging", lambda s: s.promotion.from_stack,
     "acme/service-lifecycle/staging"),
    ("staging", "monitoringInstallClusterStack", "false", lambda s: s.monitoring.install_cluster_stack, False),
    ("staging", "monitoringNamespace", "observability", lambda s: s.monitoring.namespace, "observability"),
    ("staging", "monitoringRunbookUrl", "https://runbooks.example.com/x", lambda s: s.monitoring.runbook_url,
     "https://runbooks.example.com/x"),
    ("staging", "monitoringRunbookUrl", None, lambda s: s.monitoring.runbook_url, None),
    ("staging", "monitoringRunbookUrl", "", lambda s: s.monitoring.runbook_url, None),
    ("staging", "accessAllowEmailDomains", ["example.org"], lambda s: s.cloudflare.access_allow_email_domains,
     ("example.org",)),
    ("staging", "appVersion", "2.0.0-rc.1+build.5", lambda s: s.app_version, "2.0.0-rc.1+build.5"),
    ("staging", "imagePullSecret", "true", lambda s: s.registry.pull_secret, True),
    ("staging", "imagePullSecret", "false", lambda s: (s.registry.pull_secret, s.registry.pull_password),
     (False, None)),
]  # fmt: skip


@pytest.mark.parametrize(("stack", "name", "value", "read", "expected"), GOOD_EDGES, ids=_plain_ids(GOOD_EDGES))
def test_edge_value_is_accepted(
    make_settings: Callable[..., Settings], stack: str, name: str, value: Any, read: Callable[[Settings], Any],
    expected: Any,
) -> None:  # fmt: skip
    assert read(make_settings(stack, **{name: value})) == expected


def test_request_equal_to_limit_is_accepted(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("staging", cpuRequest="500m", cpuLimit="0.5", memoryRequest="1Gi", memoryLimit="1024Mi")
    assert settings.resources.cpu_request == "500m" and settings.resources.cpu_limit == "0.5"
    assert settings.resources.memory_request == "1Gi" and settings.resources.memory_limit == "1024Mi"


def test_every_setting_lands_where_components_read_it(make_settings: Callable[..., Settings]) -> None:
    staging = make_settings("staging")
    assert (staging.service_name, staging.team, staging.app_version) == ("hello", "platform", "1.0.0")
    assert staging.container_port == 8080 and staging.registry.username == "example-org-ci"
    assert staging.registry.repository == "ghcr.io/example-org/hello" and staging.registry.server == "ghcr.io"
    assert not staging.registry.is_ecr and staging.registry.ecr_region is None
    assert staging.registry.ecr_repository_name is None and staging.registry.retain_digests == 1
    assert staging.build is not None and staging.build.context == "app" and staging.build.platform == "linux/amd64"
    assert staging.build.base_image is None and staging.kubernetes.context == "staging"
    assert staging.cloudflare.account_id == "0123456789abcdef0123456789abcdef"
    assert staging.cloudflare.zone_id == "fedcba9876543210fedcba9876543210"
    assert staging.cloudflare.zone_name == "example.com"
    assert staging.cloudflare.hostnames == ("hello-staging.example.com",)
    assert staging.cloudflare.access_allow_emails == ("release-manager@example.com",)
    assert staging.cloudflare.access_allow_email_domains == ("example.com",)
    assert staging.cloudflare.cloudflared_image.startswith("cloudflare/cloudflared:2025.8.1@sha256:")
    assert staging.cloudflare.cloudflared_replicas == 2 and staging.cloudflare.advanced_certificate_hostnames == ()
    assert staging.monitoring.namespace == "monitoring" and staging.monitoring.install_cluster_stack is False
    assert staging.monitoring.slo_availability == 99.5 and staging.monitoring.latency_p95_seconds == 0.5
    assert (staging.monitoring.runbook_url or "").endswith("/docs/runbooks/monitoring.md")
    assert staging.resources.cpu_request == "100m" and staging.resources.memory_limit == "256Mi"
    assert staging.parts.builds_image and staging.namespace == "hello-staging"
    production = make_settings("production", pinnedDigest=GOOD_DIGEST)
    assert production.promotion is not None and production.promotion.pinned_digest == GOOD_DIGEST
    assert production.registry.retain_digests == 2 and production.cloudflare.cloudflared_replicas == 3
    assert production.cloudflare.hostnames == ("hello.example.com", "hi.example.com")


def test_production_needs_only_one_promotion_source(make_settings: Callable[..., Settings]) -> None:
    only_pinned = make_settings("production", promoteFromStack=None, pinnedDigest=GOOD_DIGEST)
    assert only_pinned.promotion is not None and only_pinned.promotion.from_stack is None
    with pytest.raises(SettingsError) as raised:
        make_settings("production", promoteFromStack="bad name", pinnedDigest=None)
    assert [p.key for p in raised.value.problems] == ["service-lifecycle:promoteFromStack"], "no second line"


# ---------------------------------------------------------------------------------------------
# Source URL fallback, secrets, masking


@pytest.mark.parametrize(
    ("environ", "source_url", "expected"),
    [
        ({"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/hello"}, None,
         "https://github.com/acme/hello"),
        ({"GITHUB_SERVER_URL": "https://github.com"}, None, None),
        ({"GITHUB_REPOSITORY": "acme/hello"}, None, None),
        ({"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/hello"},
         "https://git.example.com/x/y", "https://git.example.com/x/y"),
    ],
    ids=["both", "server_only", "repository_only", "setting_wins"],
)  # fmt: skip
def test_source_url_falls_back_to_the_github_environment(
    stack_values: Callable[..., dict[str, str]], environ: dict[str, str], source_url: str | None, expected: str | None
) -> None:
    """GitHub Actions sets GITHUB_SERVER_URL and GITHUB_REPOSITORY (docs: "Variables", default variables)."""
    from components.config.settings import load_settings
    from components.testing import DictConfig

    values = stack_values("staging", registryPassword="x", registryPullPassword="y", sourceUrl=source_url)
    settings = load_settings(DictConfig(values, set()), environ={"SOURCE_REVISION": "abcdef1", **environ})
    assert settings.build is not None and settings.build.source_url == expected


def test_revision_falls_back_to_source_revision_before_github_sha(stack_values: Callable[..., dict[str, str]]) -> None:
    from components.config.settings import load_settings
    from components.testing import DictConfig

    values = stack_values("staging", registryPassword="x", registryPullPassword="y")
    settings = load_settings(DictConfig(values, set()), environ={"SOURCE_REVISION": "1111111", "GITHUB_SHA": "2222222"})
    assert settings.build is not None and settings.build.revision == "1111111"


class _RecordingSource:
    """A ConfigSource that says which keys were read as secrets."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.secret_reads: list[str] = []

    def get(self, name: str) -> str | None:
        return self.values.get(f"service-lifecycle:{name}")

    def get_secret(self, name: str) -> pulumi.Output[str] | None:
        self.secret_reads.append(name)
        value = self.get(name)
        return None if value is None else pulumi.Output.secret(value)


def test_secrets_are_read_only_as_secrets_under_their_own_names(stack_values: Callable[..., dict[str, str]]) -> None:
    from components.config.settings import load_settings

    secrets = {"registryPassword": "p", "registryPullPassword": "r", "kubeconfig": "k", "cloudflareApiToken": "t",
               "alertWebhookUrl": "w", "grafanaAdminPassword": "g"}  # fmt: skip
    source = _RecordingSource(stack_values("production", monitoringInstallClusterStack=True, **secrets))
    settings = load_settings(source, environ={})
    assert sorted(source.secret_reads) == sorted(secrets)
    for output in (settings.registry.password, settings.kubernetes.kubeconfig, settings.cloudflare.api_token,
                   settings.monitoring.alert_webhook_url, settings.monitoring.grafana_admin_password):  # fmt: skip
        assert isinstance(output, pulumi.Output)
    unset = load_settings(_RecordingSource(stack_values("production", imagePullSecret=False)), environ={})
    assert unset.kubernetes.kubeconfig is None and unset.cloudflare.api_token is None
    assert unset.registry.password is None and unset.monitoring.grafana_admin_password is None


@pytest.mark.parametrize(
    "name",
    ["registryPassword", "registryPasword", "registryPasswd", "grafanaAdminPassword", "cloudflareApiToken", "apiKey",
     "aws:secretKey", "kubeconfig", "myCredentials", "deployToken", "privateKeyPem", "basicAuth", "dbPwd"],
)  # fmt: skip
def test_secret_looking_names(name: str) -> None:
    from components.config.settings import looks_secret

    assert looks_secret(name)


@pytest.mark.parametrize(
    "name", ["replicas", "hostnames", "kubeContext", "imageRepository", "cloudflareZoneId", "team"]
)
def test_plain_names(name: str) -> None:
    from components.config.settings import looks_secret

    assert not looks_secret(name)


def test_long_values_are_cut_in_error_lines(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", kubeContext="k" * 10_000)
    line = str(raised.value.problems[0])
    assert line.startswith("service-lifecycle:kubeContext: got '" + "k" * 79 + "… (10002 characters); expected")


# ---------------------------------------------------------------------------------------------
# Numbers and quantities as written


@pytest.mark.parametrize(
    ("amount", "thousandths", "kept"),
    [(Decimal(2**63 - 1), Decimal(2**63 - 1) * 1000, True), (Decimal(2**63), Decimal(2**63) * 1000, False),
     (Decimal("0.001"), Decimal(1), True), (Decimal("0.0005"), Decimal("0.5"), False)],
    ids=["max", "above_max", "one_thousandth", "half_thousandth"],
)  # fmt: skip
def test_quantity_range_is_the_api_servers(amount: Decimal, thousandths: Decimal, kept: bool) -> None:
    """k8s.io/apimachinery pkg/api/resource/quantity.go, type Quantity: at most 2^63-1, at most 3 decimal places."""
    from components.config.settings import QUANTITY_MAX, in_quantity_range

    assert QUANTITY_MAX == 9223372036854775807
    assert in_quantity_range(amount, thousandths) is kept


@pytest.mark.parametrize(
    ("name", "value"),
    [("memoryLimit", "9223372036854775807"), ("cpuLimit", "9223372036854775807"), ("memoryRequest", "0.001"),
     ("cpuRequest", "0.001m")],
    ids=["memory_max", "cpu_max", "memory_milli_byte", "cpu_micro"],
)  # fmt: skip
def test_quantities_at_the_api_edges(make_settings: Callable[..., Settings], name: str, value: str) -> None:
    if name == "cpuRequest":  # below a millicore: the API would round it up to 1m
        with pytest.raises(SettingsError, match="in whole thousandths"):
            make_settings("staging", **{name: value})
    else:
        make_settings("staging", **{name: value})


def test_cpu_and_memory_units_are_exact() -> None:
    assert cpu_millicores("9223372036854775807") == Decimal(9223372036854775807000)
    assert memory_bytes("7Ei") == 7 * 2**60 and memory_bytes("1k") == 1000 and memory_bytes("1Ki") == 1024
    assert memory_bytes("1" * 30) == Decimal("1" * 30)
    with pytest.raises(ValueError):
        memory_bytes("1" * 31)


def test_numbers_are_checked_as_written(make_settings: Callable[..., Settings]) -> None:
    """Decimal text, no exponent: 22 nines round to 100.0 as a float, "1e-400" to 0.0 (past the open bounds)."""
    for name, value in [("sloAvailabilityTarget", "99.99999999999999999999"), ("latencyP95Seconds", "1e-400"),
                        ("latencyP95Seconds", "5E-1"), ("replicas", "1" * 19)]:  # fmt: skip
        with pytest.raises(SettingsError) as raised:
            make_settings("staging", **{name: value})
        assert [p.key for p in raised.value.problems] == [f"service-lifecycle:{name}"]
    assert make_settings("staging", replicas="0" * 17 + "3").replicas == 3


# ---------------------------------------------------------------------------------------------
# The reader's own rules (what every key goes through)


def test_problem_lines_mask_secret_names_and_cut_long_values() -> None:
    from components.config.settings import SHOWN_CHARS, _Reader
    from components.testing import DictConfig

    reader = _Reader(DictConfig({}, set()))
    reader.problem("apiToken", "ghp_plain", "a token")
    reader.problem("team", "x" * (SHOWN_CHARS - 2), "a team")  # its repr is exactly SHOWN_CHARS long
    reader.problem("team", "x" * (SHOWN_CHARS - 1), "a team")
    reader.problem("team", None, "a team")
    longest = repr("x" * (SHOWN_CHARS - 1))
    assert [p.value for p in reader.problems] == [
        "[secret]", repr("x" * (SHOWN_CHARS - 2)), f"{longest[:SHOWN_CHARS]}… ({len(longest)} characters)", "<not set>",
    ]  # fmt: skip
    assert SHOWN_CHARS == 80


def test_settings_error_lists_one_line_per_problem() -> None:
    from components.config.settings import SettingProblem

    error = SettingsError([SettingProblem("k1", "v1", "e1"), SettingProblem("k2", "v2", "e2")])
    assert (
        str(error)
        == "invalid stack configuration (2 problem(s)):\n  k1: got v1; expected e1\n  k2: got v2; expected e2"
    )


def test_an_empty_string_is_not_set(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", serviceName="", team="")
    assert [str(p) for p in raised.value.problems][:2] == [
        "service-lifecycle:serviceName: got <not set>; expected a DNS-1123 label (lower-case letters, digits, '-'; "
        "at most 40 characters)",
        "service-lifecycle:team: got <not set>; expected a DNS-1123 label naming the owning team",
    ]


@pytest.mark.parametrize(
    ("repository", "accepted"),
    [("localhost/hello", True), ("localhost:5000/hello", True), ("registry.example.com:5000/team/hello", True),
     ("registry:5000/hello", True), ("acme/hello.world", False), ("acme/team.x/hello", False),
     ("LOCALHOST/hello", False), ("acme/hello", False)],
    ids=["localhost", "localhost_port", "host_port_path", "port_only", "dot_in_path", "dot_in_middle",
         "upper_localhost", "docker_hub"],
)  # fmt: skip
def test_a_repository_names_its_registry_host(
    make_settings: Callable[..., Settings], repository: str, accepted: bool
) -> None:
    """The first path component is a registry host only with a "." or ":" or as "localhost" (the rule of
    distribution/reference normalize.go, splitDockerDomain)."""
    if accepted:
        settings = make_settings("staging", imageRepository=repository)
        assert (
            settings.registry.repository == repository
            and settings.registry.server == repository.split("/", maxsplit=1)[0]
        )
    else:
        with pytest.raises(SettingsError, match="service-lifecycle:imageRepository: got"):
            make_settings("staging", imageRepository=repository)


@pytest.mark.parametrize(
    ("repository", "region", "name"),
    [("123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello", "eu-west-1", "hello"),
     ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/team/hello", "cn-north-1", "team/hello")],
    ids=["ecr", "ecr_china"],
)  # fmt: skip
def test_ecr_repositories(make_settings: Callable[..., Settings], repository: str, region: str, name: str) -> None:
    settings = make_settings(
        "staging", imageRepository=repository, registryUsername=None, registryPassword=None, imagePullSecret=False
    )
    assert settings.registry.is_ecr and settings.registry.ecr_region == region
    assert (
        settings.registry.ecr_repository_name == name
        and settings.registry.server == repository.split("/", maxsplit=1)[0]
    )
    assert settings.registry.username is None and settings.registry.password is None


@pytest.mark.parametrize(
    ("hosts", "accepted"),
    [(["example.com"], True), (["a.example.com"], True), (["aexample.com"], False), (["a.example.co"], False),
     (["a-.example.com"], False), (["example.com", "www.example.com"], True)],
    ids=["apex", "one_label", "suffix_without_dot", "other_zone", "bad_label", "apex_and_www"],
)  # fmt: skip
def test_hostnames_inside_the_zone(make_settings: Callable[..., Settings], hosts: list[str], accepted: bool) -> None:
    if accepted:
        assert make_settings("production", hostnames=hosts).cloudflare.hostnames == tuple(hosts)
    else:
        with pytest.raises(SettingsError, match="service-lifecycle:hostnames: got"):
            make_settings("production", hostnames=hosts)


def test_hostnames_below_one_label_need_an_advanced_certificate(make_settings: Callable[..., Settings]) -> None:
    deep = ["hello.example.com", "api.hello.example.com", "v1.api.hello.example.com"]
    with pytest.raises(SettingsError) as raised:
        make_settings("production", hostnames=deep, advancedCertificateHostnames=["api.hello.example.com"])
    assert [p.value for p in raised.value.problems] == ["'v1.api.hello.example.com'"]
    with pytest.raises(SettingsError) as raised:
        make_settings("production", hostnames=deep)
    assert [p.value for p in raised.value.problems] == ["'api.hello.example.com, v1.api.hello.example.com'"]
    settings = make_settings("production", hostnames=deep, advancedCertificateHostnames=deep[1:])
    assert settings.cloudflare.advanced_certificate_hostnames == tuple(deep[1:])
    other_zone = make_settings("production", zoneName="example.co.uk", hostnames=["hello.example.co.uk"])
    assert other_zone.cloudflare.hostnames == ("hello.example.co.uk",), "labels counted from the zone, not the TLD"


def test_empty_allow_lists_are_allowed_where_access_is_off(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("production", accessAllowEmails=[], accessAllowEmailDomains=None)
    assert settings.cloudflare.access_allow_emails == () and settings.cloudflare.access_allow_email_domains == ()
    only_domains = make_settings("staging", accessAllowEmails=None)
    assert only_domains.cloudflare.access_allow_emails == () and only_domains.cloudflare.access_enabled


@pytest.mark.parametrize(
    ("value", "expected"),
    [("not json", "a list of email addresses"), ('{"a": 1}', "a list of email addresses"),
     ("[1]", "a list of email addresses"), ('["a@example.com", "a@example.com"]', "without duplicates")],
    ids=["not_json", "object", "numbers", "duplicates"],
)  # fmt: skip
def test_lists_are_json_lists_of_strings(make_settings: Callable[..., Settings], value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", accessAllowEmails=value)
    assert [p.key for p in raised.value.problems] == ["service-lifecycle:accessAllowEmails"]
    assert expected in str(raised.value.problems[0]) and repr(value) in str(raised.value.problems[0])


def test_builds_only_in_building_stages(make_settings: Callable[..., Settings]) -> None:
    production = make_settings("production", sourceRevision="zzz")
    assert production.build is None, "production never builds, so its revision is not read"
    sunset = make_settings("production", stage="sunset", replicas=1, hostnames=[])
    assert sunset.build is None and sunset.promotion is None and sunset.namespace == "hello-sunset"


# Survivors of a mutation sample (make mutation --sample 250), each pinned.


def test_texts_when_other_keys_are_missing_too(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", stage=None, replicas="x", zoneName=None, hostnames=["Bad"], containerPort="65536")
    lines = [str(p) for p in raised.value.problems]
    assert "service-lifecycle:replicas: got 'x'; expected an integer from 1 to 50" in lines
    assert (
        "service-lifecycle:hostnames: got 'Bad'; expected a list of lower-case hostnames inside the zone (zoneName)"
        in lines
    )
    assert "service-lifecycle:containerPort: got '65536'; expected an unprivileged port from 1024 to 65535" in lines


def test_revision_text_and_bad_list_items(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", sourceRevision="main", accessAllowEmails=["a", "b"])
    lines = [str(p) for p in raised.value.problems]
    assert (
        "service-lifecycle:sourceRevision: got 'main'; expected the git commit (7 to 40 hex digits); set it or export "
        "SOURCE_REVISION or GITHUB_SHA"
    ) in lines
    assert "service-lifecycle:accessAllowEmails: got 'a, b'; expected a list of email addresses" in lines


def test_the_environment_defaults_to_os_environ(
    stack_values: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.config.settings import load_settings
    from components.testing import DictConfig

    monkeypatch.setenv("SOURCE_REVISION", "abcdef0")
    settings = load_settings(DictConfig(stack_values("staging", registryPassword="x", registryPullPassword="y"), set()))
    assert settings.build is not None and settings.build.revision == "abcdef0"


# -- issue 22: a service without a public hostname; a worker that serves nothing ---------------------


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_an_empty_hostname_list_is_a_service_without_exposure(
    make_settings: Callable[..., Settings], stack: str
) -> None:
    secrets = {"registryPassword": "x", "sourceRevision": "a" * 40} if stack == "staging" else {}
    settings = make_settings(stack, hostnames=[], accessEnabled=False, **secrets)
    assert settings.cloudflare.hostnames == ()
    # the stage's own parts, exposure and Access off (False, as every part is a bool), everything else the same
    assert settings.parts == dataclasses.replace(parts_for(Stage(stack)), exposure=False, access_required=False)
    assert settings.parts.workload and settings.parts.monitoring
    assert settings.serves_http


def test_a_missing_hostname_list_is_still_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError, match="service-lifecycle:hostnames: got <not set>; expected a non-empty list"):
        make_settings("production", hostnames=None)


def test_a_worker_that_serves_nothing_reads_as_such(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("production", hostnames=[], servesHttp=False)
    assert settings.serves_http is False and not settings.parts.exposure


def test_a_worker_with_hostnames_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("production", servesHttp=False)
    assert [p.key for p in raised.value.problems] == ["service-lifecycle:servesHttp"]
    assert "a service with hostnames serves HTTP" in str(raised.value)


@pytest.mark.parametrize(
    "overrides",
    [{"replicas": 0}, {"containerPort": 80}, {"cpuRequest": "lots"}, {"cpuRequest": "2", "cpuLimit": "1"},
     {"memoryRequest": "1Gi", "memoryLimit": "512Mi"}],
    ids=["replicas", "port", "cpu", "cpu_above_limit", "memory_above_limit"],
)  # fmt: skip
def test_a_service_step_with_a_problem_checks_name_suffix_against_the_longest_service_name(
    make_settings: Callable[..., Settings], overrides: dict[str, Any]
) -> None:
    """The service's name is not used once its step reported a problem: nameSuffix must then fit beside any name
    (40 characters, so at most 14 here), not only beside this one (hello: 49)."""
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", nameSuffix="a" * 15, **overrides)
    name = next(iter(overrides))
    assert [p.key for p in raised.value.problems] == [f"service-lifecycle:{name}", "service-lifecycle:nameSuffix"]
    assert "expected a DNS-1123 label of at most 14 characters" in str(raised.value.problems[-1])
    assert make_settings("staging", nameSuffix="a" * 49).name_suffix == "a" * 49


def test_a_pull_secret_keeps_the_pull_password_and_names_the_pods_user(make_settings: Callable[..., Settings]) -> None:
    assert make_settings("production", imagePullSecret=True).registry.pull_password is not None
    assert make_settings("production", imagePullSecret=False).registry.pull_password is None
    with pytest.raises(SettingsError) as raised:
        make_settings("production", imagePullSecret=True, registryUsername=None)
    assert [str(p) for p in raised.value.problems] == [
        "service-lifecycle:registryUsername: got <not set>; expected the user the pods pull as"
        " (imagePullSecret is true)"
    ]


def test_an_empty_list_where_one_is_required_is_refused_by_the_reader() -> None:
    """``allow_empty=False`` refuses ``[]`` as well as no value (the settings' one such list, hostnames, turns it
    off when a value is given, so only the reader's own test reaches this)."""
    from components.config.settings.reading import _Reader

    class Source:
        def get(self, key: str) -> str | None:
            return {"names": "[]", "others": '["a"]'}.get(key)

        def get_secret(self, key: str) -> pulumi.Output[str] | None:
            return None

    r = _Reader(Source())
    assert r.string_list("names", check=str.isalpha, expected="names", allow_empty=False) is None
    assert r.string_list("others", check=str.isalpha, expected="names", allow_empty=False) == ("a",)
    assert [str(p) for p in r.problems] == ["service-lifecycle:names: got '[]'; expected a non-empty list of names"]


def test_access_off_where_the_stage_requires_it_still_needs_someone_to_admit(
    make_settings: Callable[..., Settings],
) -> None:
    """accessEnabled false is refused in staging, and Access counts as on for the rest of its checks."""
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", accessEnabled=False, accessAllowEmails=[], accessAllowEmailDomains=[])
    assert [p.key for p in raised.value.problems] == [
        "service-lifecycle:accessEnabled",
        "service-lifecycle:accessAllowEmails",
    ]


def test_a_name_suffix_without_a_stage_is_measured_beside_production(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", stage="prod", nameSuffix="-x")
    assert str(raised.value.problems[-1]) == (
        "service-lifecycle:nameSuffix: got '-x'; expected a DNS-1123 label of at most 46 characters, e.g. the"
        " stack's name or a pull request number (hello-production-<suffix> names the namespace: at most 63"
        " characters)"
    )


def test_every_verify_setting_lands_in_the_monitoring_settings(make_settings: Callable[..., Settings]) -> None:
    from components.config.settings import VerifySettings

    settings = make_settings(
        "staging", verifyWindowSeconds=600, verifyIntervalSeconds=30, verifyMinRequests=50, verifyMaxBurnRate="10",
        verifySignificance="0.05", verifyErrorRatioMargin="0.02", verifyLatencyRatio="2", verifyMaxRestarts=3,
        verifyMaxSaturation="0.8",
    )  # fmt: skip
    assert settings.monitoring.verify == VerifySettings(
        window_seconds=600, interval_seconds=30, min_requests=50, max_burn_rate=10.0, significance=0.05,
        error_ratio_margin=0.02, latency_ratio=2.0, max_restarts=3, max_saturation=0.8,
    )  # fmt: skip


VERIFY_BOUNDS: list[tuple[str, list[Any], list[Any], str]] = [
    # key, accepted (the bounds, or just inside them), refused (just outside), what is expected
    ("verifyWindowSeconds", [10, 86400], [9, 86401], "whole seconds from 10 to 86400"),
    ("verifyIntervalSeconds", [1, 3600], [0, 3601], "whole seconds from 1 to 3600"),
    ("verifyMinRequests", [10, 10_000_000], [9, 10_000_001], "a whole number from 10"),
    ("verifyMaxBurnRate", ["0.001", "999.999"], ["0", "1000"], "a positive multiple of the error budget, e.g. 14.4"),
    ("verifySignificance", ["0.001", "0.499"], ["0", "0.5"], "a level above 0 and below 0.5, e.g. 0.01"),
    ("verifyErrorRatioMargin", ["0.001", "0.999"], ["0", "1"], "a share above 0 and below 1, e.g. 0.01"),
    ("verifyLatencyRatio", ["1.001", "99.999"], ["1", "100"], "a ratio above 1 and below 100, e.g. 1.5"),
    ("verifyMaxRestarts", [0, 1000], [-1, 1001], "a whole number from 0 to 1000"),
    ("verifyMaxSaturation", ["0.001", "0.999"], ["0", "1"], "a share above 0 and below 1, e.g. 0.9"),
]


@pytest.mark.parametrize(("name", "accepted", "refused", "expected"), VERIFY_BOUNDS, ids=[r[0] for r in VERIFY_BOUNDS])
def test_verify_settings_are_bounded(
    make_settings: Callable[..., Settings], name: str, accepted: list[Any], refused: list[Any], expected: str
) -> None:
    room = {"verifyWindowSeconds": 7200} if name == "verifyIntervalSeconds" else {"verifyIntervalSeconds": 5}
    for value in accepted:
        assert make_settings("staging", **{**room, name: value}).monitoring.verify is not None
    for value in refused:
        with pytest.raises(SettingsError) as raised:
            make_settings("staging", **{**room, name: value})
        assert [str(p) for p in raised.value.problems] == [
            f"service-lifecycle:{name}: got '{value}'; expected {expected}"
        ]


def test_a_verify_interval_above_half_the_window_is_refused(make_settings: Callable[..., Settings]) -> None:
    assert (
        make_settings("staging", verifyWindowSeconds=61, verifyIntervalSeconds=30).monitoring.verify.interval_seconds
        == 30
    )
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", verifyWindowSeconds=61, verifyIntervalSeconds=31)
    assert [str(p) for p in raised.value.problems] == [
        "service-lifecycle:verifyIntervalSeconds: got '31'; expected at most half of verifyWindowSeconds (61): a window"
        " needs two steps to chart and sum"
    ]

"""The steps of :func:`components.config.settings.load_settings`, one per part of :class:`Settings`.

Each ``_read_*`` step reads every key of its part with a :class:`~components.config.settings.reading._Reader`
(whatever came before, so one error lists every problem) and returns the part, or None after
reporting a problem.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from components.config.settings.model import (
    _DNS_LABEL,
    _ECR,
    MAX_KUBE_CONTEXT,
    MAX_SERVICE_NAME,
    SUPPORTED_KUBERNETES,
    BuildSettings,
    CloudflareSettings,
    KubernetesSettings,
    MonitoringSettings,
    PromotionSettings,
    RegistrySettings,
    Resources,
    VerifySettings,
)
from components.config.settings.reading import (
    _EMAIL,
    _HEX32,
    _HOSTNAME,
    _PINNED_IMAGE,
    _REVISION,
    _SEMVER,
    _STACK_REF,
    _certificate_coverage,
    _in_zone,
    _is_repository,
    _matches,
    _Reader,
    _resources,
    _string_items,
)
from components.labels import DEFAULT_SCHEME, LabelScheme
from components.lifecycle import Stage, StageParts, parts_for
from components.refs import DIGEST


@dataclass(frozen=True, kw_only=True)
class _ServiceValues:
    """The service's own part of :class:`Settings`: who it is and how it runs."""

    service_name: str
    team: str
    app_version: str
    replicas: int
    container_port: int
    resources: Resources
    serves_http: bool


def _read_stage(r: _Reader) -> tuple[Stage | None, StageParts | None]:
    stage_raw = r.string(
        "stage",
        required=True,
        check=lambda v: v in {s.value for s in Stage},
        expected="one of " + ", ".join(s.value for s in Stage),
    )
    stage = Stage(stage_raw) if stage_raw else None
    return stage, parts_for(stage) if stage else None


def _read_service(r: _Reader, stage: Stage | None, parts: StageParts | None) -> _ServiceValues | None:
    service_name = r.string(
        "serviceName",
        required=True,
        check=lambda v: len(v) <= MAX_SERVICE_NAME and _DNS_LABEL.fullmatch(v) is not None,
        expected=f"a DNS-1123 label (lower-case letters, digits, '-'; at most {MAX_SERVICE_NAME} characters)",
    )
    team = r.string(
        "team", required=True, check=lambda v: len(v) <= 63 and _DNS_LABEL.fullmatch(v) is not None,
        expected="a DNS-1123 label naming the owning team",
    )  # fmt: skip
    app_version = r.string(
        "appVersion", required=True, check=_matches(_SEMVER), expected="a semantic version such as 1.4.2"
    )

    min_replicas = max(parts.min_replicas, 1) if parts else 1
    stage_note = f" (stage {stage.value} needs at least {min_replicas})" if stage else ""
    replicas = r.integer(
        "replicas", low=min_replicas, high=50, expected=f"an integer from {min_replicas} to 50{stage_note}"
    )
    container_port = r.integer(
        "containerPort", low=1024, high=65535, expected="an unprivileged port from 1024 to 65535"
    )
    resources = _resources(r)
    serves_http = r.boolean("servesHttp")
    if serves_http is False and (_string_items(r.raw("hostnames") or "") or []):
        r.problem("servesHttp", "false", "true: a service with hostnames serves HTTP (a worker has hostnames: [])")
    if (
        service_name is None or team is None or app_version is None or replicas is None or container_port is None
        or resources is None or serves_http is None
    ):  # fmt: skip
        return None
    return _ServiceValues(
        service_name=service_name, team=team, app_version=app_version, replicas=replicas,
        container_port=container_port, resources=resources, serves_http=serves_http,
    )  # fmt: skip


def _boto3_installed() -> bool:
    """Whether boto3 can be imported (without importing it): ECR logins need it (the ``ecr`` extra)."""
    try:
        return importlib.util.find_spec("boto3") is not None
    except ValueError:  # sys.modules["boto3"] is None: imports of it are blocked
        return False


def _read_registry(r: _Reader, parts: StageParts | None) -> RegistrySettings | None:
    """Registry: needed in every stage (sunset decommissions images there)."""
    repository = r.string(
        "imageRepository", required=True, check=_is_repository,
        expected=(
            "an image repository with its registry host, without tag or digest, such as registry.example.com/team/app"
        ),
    )  # fmt: skip
    username = r.string("registryUsername", required=False, expected="a registry user name")
    password = r.secret("registryPassword")
    retain = r.integer("imageRetainDigests", low=1, high=100, expected="an integer from 1 to 100")
    is_ecr = repository is not None and _ECR.match(repository) is not None
    if parts and parts.builds_image and is_ecr and not _boto3_installed():
        r.problem(
            "imageRepository", repository,
            "boto3 installed to log in to this ECR repository: pip install 'service-lifecycle-components[ecr]'",
        )  # fmt: skip
    if parts and parts.builds_image and repository and not is_ecr:
        if username is None:
            r.problem("registryUsername", None, f"the user that pushes to {repository.split('/', 1)[0]}")
        if password is None:
            r.problem("registryPassword", None, "a secret: pulumi config set --secret registryPassword <token>")
    pull_secret = r.boolean("imagePullSecret")
    pull_password = r.secret("registryPullPassword")
    if pull_secret and is_ecr:
        r.problem("imagePullSecret", "true", "false for ECR: EKS nodes pull with their IAM role (see README)")
    elif pull_secret and parts and parts.workload:
        if username is None:
            r.problem("registryUsername", None, "the user the pods pull as (imagePullSecret is true)")
        if pull_password is None:
            r.problem(
                "registryPullPassword", None,
                "a secret read-only token: pulumi config set --secret registryPullPassword <token>",
            )  # fmt: skip
    if repository is None or retain is None or pull_secret is None:
        return None
    return RegistrySettings(
        repository=repository,
        username=username,
        password=password,
        retain_digests=retain,
        pull_secret=pull_secret,
        pull_password=pull_password if pull_secret else None,
    )


def _build_context_problem(context: str) -> str | None:
    """Why ``context`` cannot be built from (checked only in a stage that builds), or None. Relative paths
    are the project directory's: the Pulumi CLI and the offline plan run the program from there."""
    path = Path(context)
    if not path.is_dir():
        return f"the Docker build context: a directory relative to the project directory; {path.absolute()} is not one"
    if not (path / "Dockerfile").is_file():
        return f"a build context holding a Dockerfile; {path.absolute() / 'Dockerfile'} does not exist"
    return None


def _read_build(r: _Reader, parts: StageParts | None, env: Mapping[str, str]) -> BuildSettings | None:
    """Build: checked in every stage, settings only in a stage that builds."""
    context = r.string("buildContext", required=True, expected="the Docker build context directory, e.g. app")
    platform = r.string(
        "buildPlatform", required=True, check=lambda v: re.fullmatch(r"linux/(amd64|arm64)", v) is not None,
        expected="linux/amd64 or linux/arm64",
    )  # fmt: skip
    base_image = r.string(
        "baseImage", required=False, check=_matches(_PINNED_IMAGE),
        expected="a base image pinned by digest (name@sha256:…)",
    )  # fmt: skip
    source_url = r.string(
        "sourceUrl", required=False, check=lambda v: re.fullmatch(r"https://[^\s/]+/\S+", v) is not None,
        expected="the https:// URL of the source repository, e.g. https://git.example.com/team/app",
    )  # fmt: skip
    if source_url is None and env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        source_url = f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}"
    if not (parts and parts.builds_image):
        return None
    if context is not None and (unusable := _build_context_problem(context)):
        r.problem("buildContext", context, unusable)
    revision = r.raw("sourceRevision") or env.get("SOURCE_REVISION") or env.get("GITHUB_SHA")
    if revision is None or not _REVISION.fullmatch(revision):
        r.problem(
            "sourceRevision", revision,
            "the git commit (7 to 40 hex digits); set it or export SOURCE_REVISION or GITHUB_SHA",
        )  # fmt: skip
        return None
    if context is None or platform is None:
        return None
    return BuildSettings(
        context=context, platform=platform, revision=revision, base_image=base_image, source_url=source_url
    )


def _read_promotion(r: _Reader, stage: Stage | None, parts: StageParts | None) -> PromotionSettings | None:
    """Promotion: checked in every stage, settings only in a stage that promotes."""
    from_stack = r.string(
        "promoteFromStack", required=False, check=_matches(_STACK_REF),
        expected="a stack name such as acme/service-lifecycle/staging",
    )  # fmt: skip
    pinned = r.string(
        "pinnedDigest", required=False, check=_matches(DIGEST), expected="sha256: followed by 64 hex digits"
    )
    if parts and parts.promotes_image:
        if (
            from_stack is None
            and pinned is None
            and r.raw("promoteFromStack") is None
            and r.raw("pinnedDigest") is None
        ):
            r.problem(
                "promoteFromStack", None,
                f"stage {stage} never builds: set promoteFromStack (the staging stack) or pinnedDigest (rollback)",
            )  # fmt: skip
            return None
        return PromotionSettings(from_stack=from_stack, pinned_digest=pinned)
    if parts and parts.builds_image:
        for name in ("promoteFromStack", "pinnedDigest"):
            if r.raw(name) is not None:
                r.problem(name, r.raw(name), f"not set: stage {stage} builds its own image")
    return None


def _read_kubernetes(r: _Reader) -> KubernetesSettings | None:
    version = r.string(
        "kubernetesVersion", required=True, check=lambda v: v in SUPPORTED_KUBERNETES,
        expected=f"a Kubernetes minor version from {SUPPORTED_KUBERNETES[0]} to {SUPPORTED_KUBERNETES[-1]}",
    )  # fmt: skip
    context = r.string(
        "kubeContext", required=False,
        check=lambda v: len(v) <= MAX_KUBE_CONTEXT and v.isprintable() and v.strip() == v,
        expected=f"a kubeconfig context name: one line of printable characters, at most {MAX_KUBE_CONTEXT}",
    )  # fmt: skip
    kubeconfig = r.secret("kubeconfig")
    if version is None:
        return None
    return KubernetesSettings(version=version, context=context, kubeconfig=kubeconfig)


def _read_cloudflare(r: _Reader, stage: Stage | None, parts: StageParts | None) -> CloudflareSettings | None:
    """Cloudflare: validated in every stage so a sunset stack file still describes what was removed."""
    account_id = r.string(
        "cloudflareAccountId", required=True, check=_matches(_HEX32), expected="32 lower-case hex characters"
    )
    zone_id = r.string(
        "cloudflareZoneId", required=True, check=_matches(_HEX32), expected="32 lower-case hex characters"
    )
    zone_name = r.string(
        "zoneName", required=True, check=_matches(_HOSTNAME), expected="a DNS zone such as example.com"
    )
    hostnames = r.string_list(
        "hostnames", check=_in_zone(zone_name) if zone_name else _matches(_HOSTNAME),
        expected=f"lower-case hostnames inside the zone {zone_name or '(zoneName)'}",
        allow_empty=r.raw("hostnames") is not None or not (parts and parts.exposure),  # [] given: not exposed
    )  # fmt: skip
    advanced = _certificate_coverage(r, zone_name, hostnames)
    access = _read_access(r, stage, parts)
    cloudflared_image = r.string(
        "cloudflaredImage", required=True, check=_matches(_PINNED_IMAGE),
        expected="the cloudflared image pinned by digest (cloudflare/cloudflared:<tag>@sha256:…)",
    )  # fmt: skip
    cloudflared_replicas = r.integer("cloudflaredReplicas", low=2, high=20, expected="an integer from 2 to 20")
    api_token = r.secret("cloudflareApiToken")
    if (
        account_id is None or zone_id is None or zone_name is None or hostnames is None or access is None
        or cloudflared_image is None or cloudflared_replicas is None
    ):  # fmt: skip
        return None
    access_enabled, emails, domains = access
    return CloudflareSettings(
        account_id=account_id,
        zone_id=zone_id,
        zone_name=zone_name,
        hostnames=hostnames,
        access_enabled=access_enabled,
        access_allow_emails=emails,
        access_allow_email_domains=domains,
        cloudflared_image=cloudflared_image,
        cloudflared_replicas=cloudflared_replicas,
        api_token=api_token,
        advanced_certificate_hostnames=advanced,
    )


def _read_access(
    r: _Reader, stage: Stage | None, parts: StageParts | None
) -> tuple[bool, tuple[str, ...], tuple[str, ...]] | None:
    """Cloudflare Access: whether it is on (the stage may require it), and whom it admits."""
    access_setting = r.boolean("accessEnabled")
    if parts and parts.access_required and access_setting is False:
        r.problem("accessEnabled", "false", f"true: stage {stage} is always behind Cloudflare Access")
    access = bool(access_setting) or bool(parts and parts.access_required)
    emails = r.string_list("accessAllowEmails", check=_matches(_EMAIL), expected="email addresses")
    domains = r.string_list(
        "accessAllowEmailDomains", check=_matches(_HOSTNAME), expected="email domains such as example.com"
    )
    if access and parts and parts.exposure and emails == () and domains == ():
        r.problem(
            "accessAllowEmails", "[]",
            "at least one email (or a domain in accessAllowEmailDomains): Access is on and would admit nobody",
        )  # fmt: skip
    if emails is None or domains is None:
        return None
    return access, emails, domains


def _read_name_suffix(r: _Reader, service_name: str | None, stage: Stage | None) -> str | None:
    """``nameSuffix``: appended to ``<service>-<stage>`` (namespace, tunnel, Access, dashboard) so that two
    stacks at one stage on one cluster or Cloudflare account do not collide; None: not set."""
    base = f"{service_name or 'x' * MAX_SERVICE_NAME}-{stage.value if stage else 'production'}"
    room = 63 - len(base) - 1  # the namespace is a DNS-1123 label: at most 63 characters
    return r.string(
        "nameSuffix", required=False,
        check=lambda v: len(v) <= room and _DNS_LABEL.fullmatch(v) is not None,
        expected=(
            f"a DNS-1123 label of at most {room} characters, e.g. the stack's name or a pull request number "
            f"({base}-<suffix> names the namespace: at most 63 characters)"
        ),
    )  # fmt: skip


_LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")


def _read_label_scheme(r: _Reader) -> LabelScheme:
    """``labelPrefix`` and ``managedBy``: a platform's own label keys (``<prefix>/service``, ``/stage``,
    ``/team``) and ``app.kubernetes.io/managed-by`` value; the library's when not set."""
    prefix = r.string(
        "labelPrefix", required=False,
        check=lambda v: len(v) <= 253 and _LABEL_PREFIX.fullmatch(v) is not None and not v.startswith("kubernetes.io"),
        expected="a DNS subdomain for label keys such as platform.example.com (keys become <prefix>/service, …)",
    )  # fmt: skip
    managed_by = r.string(
        "managedBy", required=False, check=lambda v: len(v) <= 63 and _LABEL_VALUE.fullmatch(v) is not None,
        expected="a Kubernetes label value (at most 63 letters, digits, '-', '_', '.'), e.g. acme-platform",
    )  # fmt: skip
    return LabelScheme(prefix=prefix or DEFAULT_SCHEME.prefix, managed_by=managed_by or DEFAULT_SCHEME.managed_by)


def _read_monitoring(r: _Reader) -> MonitoringSettings | None:
    namespace = r.string(
        "monitoringNamespace", required=True, check=_matches(_DNS_LABEL), expected="a namespace name (DNS-1123 label)"
    )
    install_stack = r.boolean("monitoringInstallClusterStack")
    webhook = r.secret("alertWebhookUrl")
    grafana_password = r.secret("grafanaAdminPassword")
    if install_stack:
        if grafana_password is None:
            r.problem("grafanaAdminPassword", None, "a secret when monitoringInstallClusterStack is true")
        if webhook is None:
            r.problem("alertWebhookUrl", None, "a secret webhook URL when monitoringInstallClusterStack is true")
    slo = r.decimal(
        "sloAvailabilityTarget", low=50, high=100, expected="a percentage above 50 and below 100, e.g. 99.9"
    )
    latency = r.decimal("latencyP95Seconds", low=0, high=60, expected="seconds above 0 and below 60, e.g. 0.5")
    # The fastest burn-rate page (14.4x, components/monitoring/rules.py) must stay below 100% errors.
    if slo is not None and (100 - slo) * 14.4 >= 100:
        r.problem(
            "sloAvailabilityTarget", str(slo),
            "above 93.06: a 14.4x burn of a larger error budget needs more than 100% errors, so the page never fires",
        )  # fmt: skip
    runbook = r.string(
        "monitoringRunbookUrl", required=False, check=lambda v: re.fullmatch(r'https://[^\s"]+', v) is not None,
        expected="an https:// URL of the alerts' runbook",
    )  # fmt: skip
    verify = _read_verify(r)
    if namespace is None or install_stack is None or slo is None or latency is None:
        return None
    if verify is None:
        return None
    return MonitoringSettings(
        namespace=namespace,
        install_cluster_stack=install_stack,
        alert_webhook_url=webhook,
        grafana_admin_password=grafana_password,
        slo_availability=slo,
        latency_p95_seconds=latency,
        runbook_url=runbook,
        verify=verify,
    )


def _read_verify(r: _Reader) -> VerifySettings | None:
    """The verify* keys of deploy verification (``python -m components verify-deploy``)."""
    window = r.integer("verifyWindowSeconds", low=10, high=86400, expected="whole seconds from 10 to 86400")
    interval = r.integer("verifyIntervalSeconds", low=1, high=3600, expected="whole seconds from 1 to 3600")
    if window is not None and interval is not None and interval > window // 2:
        r.problem(
            "verifyIntervalSeconds", str(interval),
            f"at most half of verifyWindowSeconds ({window}): a window needs two steps to chart and sum",
        )  # fmt: skip
        interval = None
    min_requests = r.integer("verifyMinRequests", low=10, high=10_000_000, expected="a whole number from 10")
    burn = r.decimal(
        "verifyMaxBurnRate", low=0, high=1000, expected="a positive multiple of the error budget, e.g. 14.4"
    )
    alpha = r.decimal("verifySignificance", low=0, high=0.5, expected="a level above 0 and below 0.5, e.g. 0.01")
    margin = r.decimal("verifyErrorRatioMargin", low=0, high=1, expected="a share above 0 and below 1, e.g. 0.01")
    latency = r.decimal("verifyLatencyRatio", low=1, high=100, expected="a ratio above 1 and below 100, e.g. 1.5")
    restarts = r.integer("verifyMaxRestarts", low=0, high=1000, expected="a whole number from 0 to 1000")
    saturation = r.decimal("verifyMaxSaturation", low=0, high=1, expected="a share above 0 and below 1, e.g. 0.9")
    if (
        window is None or interval is None or min_requests is None or burn is None or alpha is None
        or margin is None or latency is None or restarts is None or saturation is None
    ):  # fmt: skip
        return None
    return VerifySettings(
        window_seconds=window, interval_seconds=interval, min_requests=min_requests, max_burn_rate=burn,
        significance=alpha, error_ratio_margin=margin, latency_ratio=latency, max_restarts=restarts,
        max_saturation=saturation,
    )  # fmt: skip

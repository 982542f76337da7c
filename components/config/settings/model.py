"""The settings model: the limits, the error, the source, and the parts of :class:`Settings`.

The limits other modules share (:data:`SUPPORTED_KUBERNETES`, :data:`QUANTITY_MAX`…), the error
(:class:`SettingsError`, of :class:`components.config.problems.SettingProblem` lines), the source a
reader takes keys from (:class:`ConfigSource`) and the dataclasses of the validated tree's parts.
Which values an error line hides: :mod:`components.config.problems`; the tree itself and how it is
read: :mod:`components.config.settings.loading`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import pulumi

from components.config.problems import PROJECT, SettingProblem

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ECR = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")
QUANTITY_MAX: Final = 2**63 - 1
"""Largest number a Kubernetes quantity may represent (k8s.io/apimachinery pkg/api/resource/quantity.go)."""
MAX_KUBE_CONTEXT: Final = 253
"""Longest kubeContext accepted: a context name is one line (kubeconfig YAML keys stay short in practice)."""
SUPPORTED_KUBERNETES: Final = tuple(f"1.{minor}" for minor in range(25, 38))
"""Kubernetes versions whose schemas the manifests are validated against."""
MAX_SERVICE_NAME: Final = 40
"""Longest service name: leaves room for suffixes such as ``-production`` and ``-cloudflared``."""


def key(name: str) -> str:
    """The full configuration key, as users type it: ``service-lifecycle:<name>``."""
    return f"{PROJECT}:{name}"


class SettingsError(pulumi.RunError):
    """Invalid stack configuration. A RunError, so `pulumi up` shows the lines without a traceback."""

    def __init__(self, problems: Sequence[SettingProblem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"invalid stack configuration ({len(self.problems)} problem(s)):\n{lines}")


class ConfigSource(Protocol):
    """The part of :class:`pulumi.Config` that settings need (a fake can stand in for tests)."""

    def get(self, key: str) -> str | None: ...

    def get_secret(self, key: str) -> pulumi.Output[str] | None: ...


# ---------------------------------------------------------------------------------------------
# The settings tree


@dataclass(frozen=True, kw_only=True)
class Resources:
    """Container resource requests and limits (Kubernetes quantities)."""

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


@dataclass(frozen=True, kw_only=True)
class RegistrySettings:
    """Where images live and how to log in."""

    repository: str
    """Image repository without tag or digest, e.g. ``ghcr.io/acme/hello``."""
    username: str | None
    """Registry user; None for ECR (credentials come from AWS)."""
    password: pulumi.Output[str] | None = field(repr=False)
    """Registry password or token, a Pulumi secret; None for ECR."""
    retain_digests: int
    """How many production digests the sunset decommission keeps."""
    pull_secret: bool = False
    """Pods pull with a ``kubernetes.io/dockerconfigjson`` Secret (private registries other than ECR)."""
    pull_password: pulumi.Output[str] | None = field(default=None, repr=False)
    """Read-only registry token for that Secret, a Pulumi secret; None without :attr:`pull_secret`."""

    @property
    def server(self) -> str:
        """The registry host (and port) of :attr:`repository`."""
        return self.repository.split("/", 1)[0]

    @property
    def is_ecr(self) -> bool:
        return _ECR.match(self.repository) is not None

    @property
    def ecr_region(self) -> str | None:
        match = _ECR.match(self.repository)
        return match.group("region") if match else None

    @property
    def ecr_repository_name(self) -> str | None:
        return self.repository.split("/", 1)[1] if self.is_ecr else None


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    """How the image is built (stages that build)."""

    context: str
    """Docker build context, relative to the project directory."""
    platform: str
    """Target platform, e.g. ``linux/amd64``."""
    revision: str
    """Git revision the image is tagged with."""
    base_image: str | None
    """Override of the Dockerfile's ``BASE_IMAGE`` build argument; None keeps the pinned default."""
    source_url: str | None = None
    """Source repository URL for the image's OCI source label; None leaves the label empty."""


@dataclass(frozen=True, kw_only=True)
class PromotionSettings:
    """Where a promoting stage takes its image from."""

    from_stack: str | None
    """Stack whose ``image_ref`` output is promoted, e.g. ``acme/service-lifecycle/staging``."""
    pinned_digest: str | None
    """``sha256:…`` to deploy instead (rollback); wins over :attr:`from_stack`."""
    output: str = "image_ref"
    """The source stack's output read: ``image_ref`` for one service, ``<service>_image_ref`` for one of
    several (:func:`components.config.settings.load_services` sets it)."""
    service: str | None = None
    """The service promoted, named in a :class:`components.promotion.PromotionError`; None: the stack's one."""


@dataclass(frozen=True, kw_only=True)
class KubernetesSettings:
    """Which cluster and which API version."""

    version: str
    """Targeted Kubernetes minor version, e.g. ``1.31``."""
    context: str | None
    """kubeconfig context; None uses the current one."""
    kubeconfig: pulumi.Output[str] | None = field(repr=False)
    """kubeconfig path or contents (secret); None uses the ambient kubeconfig."""


@dataclass(frozen=True, kw_only=True)
class CloudflareSettings:
    """Cloudflare account, zone, hostnames and Access."""

    account_id: str
    zone_id: str
    zone_name: str
    hostnames: tuple[str, ...]
    access_enabled: bool
    """Effective: True when the stage requires Access or settings ask for it."""
    access_allow_emails: tuple[str, ...]
    access_allow_email_domains: tuple[str, ...]
    cloudflared_image: str
    cloudflared_replicas: int
    api_token: pulumi.Output[str] | None = field(repr=False)
    """API token (secret); None lets the provider read ``CLOUDFLARE_API_TOKEN``."""
    advanced_certificate_hostnames: tuple[str, ...] = ()
    """Hostnames more than one label below the zone that an Advanced Certificate covers; default none."""


@dataclass(frozen=True, kw_only=True)
class VerifySettings:
    """How ``python -m components verify-deploy`` judges the window after a rollout (the verify* keys)."""

    window_seconds: int = 300
    """Length of the judged window after the rollout (and of the previous release's window before it)."""
    interval_seconds: int = 60
    """Step of the ``query_range`` queries."""
    min_requests: int = 100
    """User requests each window needs before it is judged."""
    max_burn_rate: float = 14.4
    """Error ratio bound, as a multiple of the error budget."""
    significance: float = 0.01
    """One-sided significance level of the comparisons with the previous release."""
    error_ratio_margin: float = 0.01
    """Least absolute rise of the error ratio over the previous release that can breach."""
    latency_ratio: float = 1.5
    """Least p95 ratio to the previous release that can breach."""
    max_restarts: int = 0
    """Container restarts in the window above which it breaches."""
    max_saturation: float = 0.9
    """CPU use over limit above which it breaches."""


@dataclass(frozen=True, kw_only=True)
class MonitoringSettings:
    """Monitoring of the service, and optionally the cluster-wide stack."""

    namespace: str
    """Namespace of the monitoring stack (Prometheus scrapes from there)."""
    install_cluster_stack: bool
    """Install kube-prometheus-stack and the log stack with this stack."""
    alert_webhook_url: pulumi.Output[str] | None = field(repr=False)
    """Alertmanager receiver URL (Slack or generic webhook), a secret."""
    grafana_admin_password: pulumi.Output[str] | None = field(repr=False)
    """Grafana admin password, a secret (needed when installing the cluster stack)."""
    slo_availability: float
    """Availability objective in percent, e.g. 99.9."""
    latency_p95_seconds: float
    """p95 latency above which the latency alert fires."""
    runbook_url: str | None
    """Runbook every alert links to (``<url>#<alert name>``); None: the alerts carry no runbook link."""
    verify: VerifySettings = field(default_factory=VerifySettings)
    """Deploy verification; its window is also how long alerts name a new release alone."""

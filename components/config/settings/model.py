"""The settings model: the project's constants, the settings dataclasses, and how a value is shown.

The limits other modules share (:data:`PROJECT`, :data:`SUPPORTED_KUBERNETES`…), the one place that
decides which values an error line hides (:func:`looks_secret`, :func:`shown_value`), the error
(:class:`SettingProblem`, :class:`SettingsError`), the source a reader takes keys from
(:class:`ConfigSource`) and the validated tree (:class:`Settings` and its parts). Reading and
validation, with the patterns a value must match: :mod:`components.config.settings.reading`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import pulumi

from components.config import schema
from components.config.stackfile import edit_distance, provider_keys
from components.lifecycle import Stage, StageParts

PROJECT: Final = "service-lifecycle"
"""The Pulumi project name, and so the configuration namespace."""

SECRET_MARK: Final = "[secret]"
"""How a secret value is shown in errors and plans."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ECR = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/")
QUANTITY_MAX: Final = 2**63 - 1
"""Largest number a Kubernetes quantity may represent (k8s.io/apimachinery pkg/api/resource/quantity.go)."""
SHOWN_CHARS: Final = 80
"""Longest value quoted in an error line."""
MAX_KUBE_CONTEXT: Final = 253
"""Longest kubeContext accepted: a context name is one line (kubeconfig YAML keys stay short in practice)."""
SECRET_NAME: Final = re.compile(
    r"pa?ss?w(o?r)?d|pwd|token|secret|credential|key|kubeconfig|auth|private", re.IGNORECASE
)
"""Key names whose values are never shown in an error line, declared secret or not (misspellings included)."""
SUPPORTED_KUBERNETES: Final = tuple(f"1.{minor}" for minor in range(25, 38))
"""Kubernetes versions whose schemas the manifests are validated against."""
MAX_SERVICE_NAME: Final = 40
"""Longest service name: leaves room for suffixes such as ``-production`` and ``-cloudflared``."""


def key(name: str) -> str:
    """The full configuration key, as users type it: ``service-lifecycle:<name>``."""
    return f"{PROJECT}:{name}"


def looks_secret(name: str, secret_keys: Collection[str] = ()) -> bool:
    """Whether an error line must hide the value of the key ``name`` (``short`` or ``namespace:short``).

    The one place that decides it, for the settings' error lines and the stack-file reader's
    (:mod:`components.config.stack_config`). Hidden: a key of ``secret_keys`` (full keys a stack or project
    declares secret); a name that says it is secret (a setting the schema knows says so itself:
    ``imagePullSecret`` is a boolean; any other by its words: password, token, secret, key, credential…);
    and a name a typo away (edit distance ≤ 2, any case) from a secret: the schema's, ``secret_keys``'
    and the secret-looking keys of the name's provider (``cloudflare:apiTokn``), so that a misspelt
    secret is not printed as the unknown key it is.
    """
    if name in secret_keys or _named_secret(name):
        return True
    namespace, _, short = name.rpartition(":")
    near = {full.rpartition(":")[2] for full in secret_keys} | schema.SECRETS
    near |= {known for known in provider_keys(namespace) or () if _named_secret(known)}
    return any(edit_distance(short.lower(), secret.lower()) <= 2 for secret in near)


def shown_value(name: str, value: object, secret_keys: Collection[str] = ()) -> str:
    """``value`` as an error line about the key ``name`` may show it: :data:`SECRET_MARK` where
    :func:`looks_secret` says so (an Output is always one), else its ``repr`` cut to
    :data:`SHOWN_CHARS` characters (a 1 MiB value helps nobody in a log)."""
    if isinstance(value, pulumi.Output) or looks_secret(name, secret_keys):
        return SECRET_MARK
    return cut(repr(value))


def cut(text: str) -> str:
    """``text`` cut to :data:`SHOWN_CHARS` characters, saying how long it was."""
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text)} characters)"


def _named_secret(name: str) -> bool:
    """The name alone: a setting of the schema in the project's namespace by its declaration, any other by its words."""
    known = schema.BY_NAME.get(name.rpartition(":")[2])
    if known is not None and name.partition(":")[0] in (name, PROJECT):
        return known.secret
    return SECRET_NAME.search(name) is not None


@dataclass(frozen=True)
class SettingProblem:
    """One bad configuration value."""

    key: str
    """Full key, e.g. ``service-lifecycle:replicas``."""
    value: str
    """The value as given (``[secret]`` for secrets, ``<not set>`` when missing)."""
    expected: str
    """What would have been accepted."""

    def __str__(self) -> str:
        return f"{self.key}: got {self.value}; expected {self.expected}"


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
    runbook_url: str
    """Runbook every alert links to (``<url>#<alert name>``)."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the program needs, validated."""

    stage: Stage
    parts: StageParts
    service_name: str
    team: str
    app_version: str
    replicas: int
    container_port: int
    resources: Resources
    registry: RegistrySettings
    build: BuildSettings | None
    """Present only in stages that build."""
    promotion: PromotionSettings | None
    """Present only in stages that promote."""
    kubernetes: KubernetesSettings
    cloudflare: CloudflareSettings
    monitoring: MonitoringSettings

    @property
    def namespace(self) -> str:
        """The service's namespace in this stage: ``<service>-<stage>``."""
        return f"{self.service_name}-{self.stage.value}"

    @classmethod
    def create(cls, *, environ: Mapping[str, str] | None = None, **values: object) -> Settings:
        """Settings from keyword arguments named after the settings (``service_name="web"``).

        (``build`` is taken: it is the build settings' field.) The same checks as a stack file and
        the schema's defaults; problem lines name the keywords.
        """
        from components.config.settings.sources import _validated  # lazy: sources builds Settings from this module

        return _validated(values, keyword=True, namespace=None, environ=environ)

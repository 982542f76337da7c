"""Every setting of a service, as data: the one source of types, defaults, descriptions and secrets.

:func:`components.config.settings.load_settings` takes the defaults from here, so a program that imports
the library needs no ``config:`` block in its own ``Pulumi.yaml``. This repository's ``Pulumi.yaml``
declares the same settings (the Pulumi CLI merges declared defaults into the stack configuration);
``python -m components schema`` prints that block from this module and a test checks they agree.

Two rules of the Pulumi CLI shape what may be declared in a project file (pulumi/pulumi,
``pkg/workspace/config.go``, ``mergeConfig``): a key declared without a default must be set in
every stack, and a ``secret: true`` key must not get a plain-text default. So an optional secret
is marked ``declared_in_project=False`` and stays out of the project file; settings reads it from
the stack configuration all the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import yaml

SettingType = Literal["string", "integer", "boolean", "array"]
"""The project-file types the Pulumi CLI knows (an ``array`` here is always a list of strings)."""


@dataclass(frozen=True)
class Setting:
    """One setting of a service."""

    name: str
    """The configuration key without namespace, camelCase (``containerPort``)."""
    type: SettingType
    description: str
    default: str | int | bool | list[str] | None = None
    """Used when the stack does not set the key; None: no default."""
    secret: bool = False
    """Read only with ``get_secret`` and kept a Pulumi secret."""
    required: bool = False
    """Must be set in every stack (no default, nothing sensible without it)."""
    declared_in_project: bool = True
    """Declared in this repository's ``Pulumi.yaml`` (see the module docstring for what must not be)."""

    @property
    def python_name(self) -> str:
        """The keyword of :meth:`components.config.settings.Settings.build`: ``container_port``."""
        return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", self.name).lower()

    def default_text(self) -> str | None:
        """The default as the CLI hands it to the program (text; booleans lower-case)."""
        if self.default is None:
            return None
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, list):
            return json.dumps(self.default)  # the CLI hands a structured value to the program as JSON
        return str(self.default)

    def declaration(self) -> dict[str, Any]:
        """This setting's entry in a project file's ``config:`` block."""
        entry: dict[str, Any] = {"type": self.type}
        if self.type == "array":
            entry["items"] = {"type": "string"}
        if self.secret:
            entry["secret"] = True
        entry["description"] = self.description
        if self.default is not None:
            entry["default"] = self.default
        return entry


SETTINGS: Final[tuple[Setting, ...]] = (
    Setting("stage", "string",
        "Lifecycle stage of this stack: staging, production or sunset (see components/lifecycle.py).",
        required=True),
    Setting("serviceName", "string",
        "DNS-1123 label naming the service; prefixes every Kubernetes and Cloudflare name.", required=True),
    Setting("team", "string", "Owning team; labels every object and routes alerts.", required=True),
    Setting("appVersion", "string", "Semantic version of the service release being deployed.", required=True),
    Setting("replicas", "integer",
        "Minimum pods (and the autoscaler's floor). Production needs at least 2.", default=2),
    Setting("containerPort", "integer", "Port the app listens on inside the pod.", default=8080),
    Setting("servesHttp", "boolean",
        "The pods serve HTTP on containerPort (requests, /healthz, /readyz, /metrics): a Service, HTTP probes, "
        "request alerts. false for a worker that serves nothing: no Service, no probes, no scraping, alerts on "
        "restarts and unavailable pods only; it has no hostnames.", default=True),
    Setting("cpuRequest", "string", "CPU request per pod (Kubernetes quantity).", default="100m"),
    Setting("cpuLimit", "string",
        "CPU limit per pod (Kubernetes quantity); at least cpuRequest.", default="500m"),
    Setting("memoryRequest", "string", "Memory request per pod (Kubernetes quantity).", default="128Mi"),
    Setting("memoryLimit", "string",
        "Memory limit per pod (Kubernetes quantity); at least memoryRequest.", default="256Mi"),
    Setting("imageRepository", "string",
        "Image repository without tag or digest (ghcr.io/org/name, or an ECR repository URL).", required=True),
    Setting("registryUsername", "string",
        "Registry user for non-ECR registries (ECR credentials come from AWS).", default=""),
    Setting("registryPassword", "string",
        "Registry token for non-ECR registries. Set with `pulumi config set --secret registryPassword`.",
        secret=True, declared_in_project=False),
    Setting("imagePullSecret", "boolean",
        "Pods pull with a kubernetes.io/dockerconfigjson Secret made from registryUsername and the secret "
        "registryPullPassword (a read-only token; set it with `pulumi config set --secret registryPullPassword`). "
        "Not for ECR: EKS nodes pull with their IAM role.", default=False),
    Setting("registryPullPassword", "string",
        "Read-only registry token the pods pull with when imagePullSecret is true.", secret=True,
        declared_in_project=False),
    Setting("imageRetainDigests", "integer",
        "How many of the digests production ran are kept when the service is sunset.", default=1),
    Setting("buildContext", "string",
        "Docker build context of the service, relative to this directory.", default="app"),
    Setting("buildPlatform", "string", "Platform the image is built for.", default="linux/amd64"),
    Setting("baseImage", "string",
        "Override of the Dockerfile's BASE_IMAGE build argument (pinned by digest); unset keeps the Dockerfile's.",
        default=""),
    Setting("sourceUrl", "string",
        "Source repository URL for the image's OCI source label; falls back to "
        "$GITHUB_SERVER_URL/$GITHUB_REPOSITORY.", default=""),
    Setting("sourceRevision", "string",
        "Git commit a building stage deploys; validated only (the image is tagged by its content, the commit goes "
        "to the update message). Falls back to $SOURCE_REVISION, then $GITHUB_SHA.", default=""),
    Setting("promoteFromStack", "string",
        "Stack whose image_ref output a promoting stage (production) deploys, e.g. acme/service-lifecycle/staging.",
        default=""),
    Setting("pinnedDigest", "string",
        "sha256 digest to deploy instead of the promoted one (rollback). Wins over promoteFromStack.",
        default=""),
    Setting("kubernetesVersion", "string",
        "Kubernetes minor version the manifests target and are validated against.", default="1.31"),
    Setting("kubeContext", "string",
        "kubeconfig context of the target cluster; unset uses the current context.", default=""),
    Setting("kubeconfig", "string",
        "kubeconfig path or contents for the target cluster; unset uses the ambient kubeconfig.", secret=True,
        declared_in_project=False),
    Setting("cloudflareAccountId", "string", "Cloudflare account ID (32 hex characters).", required=True),
    Setting("cloudflareZoneId", "string", "Cloudflare zone ID (32 hex characters) of zoneName.", required=True),
    Setting("zoneName", "string", "DNS zone the hostnames live in.", required=True),
    Setting("hostnames", "array",
        "Public hostnames of the service, inside zoneName. One label below the zone (hello.example.com) "
        "stays under Cloudflare's Universal SSL certificate, which covers only the zone and *.zone. "
        "[] for a service without a public hostname (internal or worker): no Cloudflare resources.",
        required=True),
    Setting("advancedCertificateHostnames", "array",
        "Hostnames from hostnames more than one label below zoneName that an Advanced Certificate "
        "(ordered in Cloudflare) covers; any other deeper hostname is refused. Default: none.",
        default=[]),
    Setting("accessEnabled", "boolean",
        "Put the hostnames behind Cloudflare Access. Always on in staging.", default=False),
    Setting("accessAllowEmails", "array", "Email addresses Cloudflare Access admits.", default=[]),
    Setting("accessAllowEmailDomains", "array", "Email domains Cloudflare Access admits.", default=[]),
    Setting("cloudflaredImage", "string", "cloudflared image, pinned by digest.",
        default="cloudflare/cloudflared:2025.8.1@sha256:b77d84e8704db38db22c22661cf7e56468c526e3a6a5fe9c8b7c151452fa1472"),
    Setting("cloudflaredReplicas", "integer",
        "cloudflared connector pods (at least 2 for a highly available tunnel).", default=2),
    Setting("cloudflareApiToken", "string",
        "Cloudflare API token; unset lets the provider read CLOUDFLARE_API_TOKEN.", secret=True,
        declared_in_project=False),
    Setting("monitoringNamespace", "string",
        "Namespace of the cluster's monitoring stack (Prometheus scrapes from there).", default="monitoring"),
    Setting("monitoringInstallClusterStack", "boolean",
        "Install kube-prometheus-stack and the log stack with this stack (once per cluster).", default=False),
    Setting("alertWebhookUrl", "string",
        "Alertmanager receiver URL (Slack incoming webhook or generic webhook).", secret=True,
        declared_in_project=False),
    Setting("grafanaAdminPassword", "string",
        "Grafana admin password when the cluster stack is installed.", secret=True,
        declared_in_project=False),
    Setting("sloAvailabilityTarget", "string",
        "Availability objective in percent, driving the burn-rate alerts.", default="99.9"),
    Setting("latencyP95Seconds", "string",
        "p95 request latency (seconds) above which the latency alert fires.", default="0.5"),
    Setting("verifyWindowSeconds", "integer",
        "Seconds after a rollout that `python -m components verify-deploy` judges; the previous release is "
        "compared over the same length before it, and alerts carry the new release's digest for this long.",
        default=300),
    Setting("verifyIntervalSeconds", "integer",
        "Step of verify-deploy's Prometheus query_range (at least 2 scrape intervals); the chart's resolution.",
        default=60),
    Setting("verifyMinRequests", "integer",
        "User requests a window needs (the new release's, and the previous one's for the comparison) before "
        "verify-deploy judges it; fewer is \"not enough data\" (exit 3), never a pass.", default=100),
    Setting("verifyMaxBurnRate", "string",
        "verify-deploy breaches when the window's error ratio exceeds this many times the error budget "
        "(100 - sloAvailabilityTarget); 14.4 is the fast-burn page's rate.", default="14.4"),
    Setting("verifySignificance", "string",
        "One-sided significance level of verify-deploy's tests against the previous release (two-proportion "
        "z-test on errors, Mann-Whitney U on latencies).", default="0.01"),
    Setting("verifyErrorRatioMargin", "string",
        "Least rise of the error ratio over the previous release (absolute, 0.01 = 1 point) that can breach, "
        "however significant.", default="0.01"),
    Setting("verifyLatencyRatio", "string",
        "Least p95 ratio to the previous release's p95 that can breach, however significant.", default="1.5"),
    Setting("verifyMaxRestarts", "integer",
        "Container restarts in the window above which verify-deploy breaches.", default=0),
    Setting("verifyMaxSaturation", "string",
        "Highest CPU use over CPU limit (0 to 1) in the window before verify-deploy breaches.", default="0.9"),
    Setting("monitoringRunbookUrl", "string",
        "Runbook the alerts link to (each alert adds #<alert name>), e.g. your copy of "
        "docs/runbooks/monitoring.md; unset: the alerts carry no runbook link.",
        default=""),
    Setting("nameSuffix", "string",
        "Appended to the names made from <service>-<stage> (namespace, Cloudflare tunnel and Access, "
        "dashboard) as <service>-<stage>-<suffix>, so that two stacks at one stage on one cluster or "
        "Cloudflare account (two teams, per-PR stacks) do not collide; e.g. the stack's name. Unset: "
        "<service>-<stage>.", default=""),
    Setting("labelPrefix", "string",
        "Prefix of the label keys every object carries (<prefix>/service, /stage, /team; the annotations "
        "<prefix>/config-checksum and /tunnel-id): a platform's own DNS subdomain. Unset: service-lifecycle.",
        default=""),
    Setting("managedBy", "string",
        "Value of the app.kubernetes.io/managed-by label on every object. Unset: service-lifecycle.", default=""),
)  # fmt: skip
"""Every setting, in the order of the project file."""

BY_NAME: Final[Mapping[str, Setting]] = {s.name: s for s in SETTINGS}
"""Setting by its configuration key (camelCase)."""
BY_PYTHON_NAME: Final[Mapping[str, Setting]] = {s.python_name: s for s in SETTINGS}
"""Setting by its keyword (snake_case)."""
SECRETS: Final = frozenset(s.name for s in SETTINGS if s.secret)
"""Keys whose values are secrets."""


def default_text(name: str) -> str | None:
    """The default of the setting ``name`` as configuration text; None without one (or unknown)."""
    setting = BY_NAME.get(name)
    return setting.default_text() if setting else None


def project_config() -> dict[str, dict[str, Any]]:
    """The ``config:`` block of a project file: every setting declared in the project, in order."""
    return {s.name: s.declaration() for s in SETTINGS if s.declared_in_project}


def render_project_config() -> str:
    """:func:`project_config` as YAML, ready to paste under a project's ``config:`` key."""
    text: str = yaml.safe_dump(
        {"config": project_config()}, sort_keys=False, width=110, allow_unicode=True, default_flow_style=False
    )
    return text


def render_markdown() -> str:
    """Every setting as the Markdown reference ``docs/settings.md`` (``python -m components schema --markdown``)."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated from components/config/schema.py: `python -m components schema --markdown > docs/settings.md`.",
        "     tests/unit/test_schema.py checks that this file is what the command prints: do not edit by hand. -->",
        "",
        "Every setting the library reads, in the order of the project file. A stack sets them as",
        "`<project>:<key>` in `Pulumi.<stack>.yaml` (`service-lifecycle:replicas` here); a key without a value",
        "takes the default. **required**: every stack must set it. **secret**: set it with",
        "`pulumi config set --secret <key> …`; it stays a Pulumi secret. Not in Pulumi.yaml: a secret the",
        "project file cannot declare (see docs/configuration.md). The keyword is the name",
        "`Settings.create` takes.",
        "",
        "| key | keyword | type | default | description |",
        "|-----|---------|------|---------|-------------|",
    ]
    for setting in SETTINGS:
        kind: str = "list of strings" if setting.type == "array" else setting.type
        marks = [m for m, on in (("required", setting.required), ("secret", setting.secret),
                                 ("not in Pulumi.yaml", not setting.declared_in_project)) if on]  # fmt: skip
        default = "" if setting.default is None else f"`{setting.default_text()}`"
        if setting.default in ("", []):
            default = "not set"
        kind += "".join(f", {mark}" for mark in marks)
        description = setting.description.replace("|", "\\|")
        lines.append(f"| `{setting.name}` | `{setting.python_name}` | {kind} | {default} | {description} |")
    return "\n".join(lines) + "\n"

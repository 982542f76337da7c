"""Reading and validation: :func:`load_settings` and its steps, one per part of :class:`Settings`.

A :class:`_Reader` reads every key, collecting each problem instead of stopping at the first; each
``_read_*`` step reads one part, and :func:`load_settings` runs them in order and raises one
:class:`SettingsError` listing every problem. Kubernetes quantities are parsed here too
(:func:`cpu_millicores`, :func:`memory_bytes`, :func:`in_quantity_range`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any, Final

import pulumi

from components.config import schema
from components.config.settings.model import (
    _DNS_LABEL,
    _ECR,
    MAX_KUBE_CONTEXT,
    MAX_SERVICE_NAME,
    PROJECT,
    QUANTITY_MAX,
    SUPPORTED_KUBERNETES,
    BuildSettings,
    CloudflareSettings,
    ConfigSource,
    KubernetesSettings,
    MonitoringSettings,
    PromotionSettings,
    RegistrySettings,
    Resources,
    SettingProblem,
    Settings,
    SettingsError,
    key,
    shown_value,
)
from components.lifecycle import Stage, StageParts, parts_for
from components.refs import DIGEST

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # int() refuses more than 4300 digits with a traceback
_DECIMAL = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?")  # written out: no exponent, NaN or Infinity
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_REVISION = re.compile(r"^[0-9a-f]{7,40}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")
_REPO_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_REGISTRY_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::\d+)?"
_REPOSITORY = re.compile(rf"^{_REGISTRY_HOST}/{_REPO_PATH}$")
_PINNED_IMAGE = re.compile(rf"^(?:{_REGISTRY_HOST}/)?{_REPO_PATH}(?::[\w][\w.-]{{0,127}})?@sha256:[0-9a-f]{{64}}$")
_STACK_REF = re.compile(r"^(?:[A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")
# At most 30 digits each side: with _EXACT's precision every product and comparison below is exact.
_CPU = re.compile(r"^(?P<n>[0-9]{1,30}(?:\.[0-9]{1,30})?)(?P<unit>m?)$")
_MEMORY = re.compile(r"^(?P<n>[0-9]{1,30}(?:\.[0-9]{1,30})?)(?P<unit>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_EXACT: Final = Context(prec=100)
_MEMORY_UNITS: Final = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def _whole_number(value: str, *, low: int, high: int) -> int | None:
    """``value`` as an integer from ``low`` to ``high``; None when it is anything else."""
    # Only ASCII digits: int() would also take "1_0", " 3" and other scripts' digits.
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if low <= number <= high else None


def _number_between(value: str, *, low: float, high: float) -> float | None:
    """``value`` as a number strictly between ``low`` and ``high``; None when it is anything else."""
    # Checked as written, before any float: "1e-400" or 22 nines after the point would round onto a bound.
    if not _DECIMAL.fullmatch(value):
        return None
    number = Decimal(value)
    as_float = float(number)
    if not (Decimal(str(low)) < number < Decimal(str(high))) or not (low < as_float < high):
        return None
    return as_float


def _string_items(value: str) -> list[str] | None:
    """``value`` as a JSON list of strings (how the CLI hands a list setting to a program); None otherwise."""
    try:
        items: Any = json.loads(value)
    except json.JSONDecodeError:
        return None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    return items


class _Reader:
    """Reads keys, collecting every problem instead of stopping at the first.

    A key the source does not set takes its default from :mod:`components.config.schema`; ``label``
    names a key in a problem line as the user wrote it (``<namespace>:<key>``).
    """

    def __init__(self, config: ConfigSource, label: Callable[[str], str] = key) -> None:
        self._config = config
        self._label = label
        self.problems: list[SettingProblem] = []

    def problem(self, name: str, value: object, expected: str) -> None:
        shown = "<not set>" if value is None else shown_value(name, value)
        self.problems.append(SettingProblem(self._label(name), shown, expected))

    def raw(self, name: str) -> str | None:
        # Pulumi.yaml gives optional settings an empty default: "" is exactly "not set" ([] is an empty list).
        value = self._config.get(name)
        if value is None:
            value = schema.default_text(name)
        return None if value == "" else value

    def string(
        self, name: str, *, required: bool, expected: str, check: Callable[[str], bool] | None = None
    ) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                self.problem(name, None, expected)
            return None
        if check is not None and not check(value):
            self.problem(name, value, expected)
            return None
        return value

    def integer(self, name: str, *, low: int, high: int, expected: str) -> int | None:
        value = self.raw(name)
        number = None if value is None else _whole_number(value, low=low, high=high)
        if number is None:
            self.problem(name, value, expected)
        return number

    def decimal(self, name: str, *, low: float, high: float, expected: str) -> float | None:
        value = self.raw(name)
        number = None if value is None else _number_between(value, low=low, high=high)
        if number is None:
            self.problem(name, value, expected)
        return number

    def boolean(self, name: str) -> bool | None:
        value = self.raw(name)
        if value is None:
            self.problem(name, None, "true or false")
            return None
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(name, value, "true or false")
        return None

    def string_list(
        self, name: str, *, check: Callable[[str], bool], expected: str, allow_empty: bool = True
    ) -> tuple[str, ...] | None:
        value = self.raw(name)
        what = f"a list of {expected}"
        if value is None:
            if allow_empty:
                return ()
            self.problem(name, None, f"a non-empty list of {expected}")
            return None
        items = _string_items(value)
        if items is None:
            self.problem(name, value, what)
            return None
        bad = [item for item in items if not check(item)]
        if bad:
            self.problem(name, ", ".join(bad), what)
            return None
        if len(set(items)) != len(items):
            self.problem(name, value, f"{what} without duplicates")
            return None
        if not items and not allow_empty:
            self.problem(name, value, f"a non-empty list of {expected}")
            return None
        return tuple(items)

    def secret(self, name: str) -> pulumi.Output[str] | None:
        return self._config.get_secret(name)


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    # fullmatch: "$" alone also matches before a trailing newline (a YAML block scalar keeps one).
    return lambda value: pattern.fullmatch(value) is not None


def cpu_millicores(quantity: str) -> Decimal:
    """``500m`` → 500, ``1.5`` → 1500. Raises ValueError on anything else."""
    match = _CPU.fullmatch(quantity)
    if not match:
        raise ValueError(quantity)
    number = Decimal(match.group("n"))
    return number if match.group("unit") == "m" else _EXACT.multiply(number, 1000)


def memory_bytes(quantity: str) -> Decimal:
    """``256Mi`` → 268435456. Raises ValueError on anything else."""
    match = _MEMORY.fullmatch(quantity)
    if not match:
        raise ValueError(quantity)
    return _EXACT.multiply(Decimal(match.group("n")), _MEMORY_UNITS[match.group("unit") or ""])


def in_quantity_range(amount: Decimal, thousandths: Decimal) -> bool:
    """Whether the API server keeps a quantity as written: at most 2^63-1 and at most 3 decimal places.

    k8s.io/apimachinery ``pkg/api/resource/quantity.go`` (type Quantity): "no quantity may represent a
    number greater than 2^63-1 in magnitude, nor may it have more than 3 decimal places. Numbers larger
    or more precise will be capped or rounded up." ``amount`` is in the base unit (cores, bytes),
    ``thousandths`` the same amount in thousandths of it.
    """
    return amount <= QUANTITY_MAX and thousandths == thousandths.to_integral_value()


def _resources(r: _Reader) -> Resources | None:
    def quantity(name: str, parse: Callable[[str], Decimal], per_unit: int, what: str) -> tuple[str, Decimal] | None:
        value = r.raw(name)
        try:
            if value is None:
                raise ValueError
            amount = parse(value)
            if amount <= 0:
                raise ValueError
        except ValueError:
            r.problem(name, value, what)
            return None
        base = _EXACT.divide(amount, per_unit)
        if not in_quantity_range(base, _EXACT.multiply(base, 1000)):
            r.problem(name, value, f"{what}, at most 2^63-1 and in whole thousandths (the API caps or rounds others)")
            return None
        return value, amount

    cpu_what = "a positive Kubernetes CPU quantity such as 250m or 1"
    mem_what = "a positive Kubernetes memory quantity such as 128Mi or 1Gi"
    cpu_req = quantity("cpuRequest", cpu_millicores, 1000, cpu_what)
    cpu_lim = quantity("cpuLimit", cpu_millicores, 1000, cpu_what)
    mem_req = quantity("memoryRequest", memory_bytes, 1, mem_what)
    mem_lim = quantity("memoryLimit", memory_bytes, 1, mem_what)
    ordered = True
    if cpu_req and cpu_lim and cpu_req[1] > cpu_lim[1]:
        r.problem("cpuRequest", cpu_req[0], f"at most cpuLimit ({cpu_lim[0]})")
        ordered = False
    if mem_req and mem_lim and mem_req[1] > mem_lim[1]:
        r.problem("memoryRequest", mem_req[0], f"at most memoryLimit ({mem_lim[0]})")
        ordered = False
    if not (cpu_req and cpu_lim and mem_req and mem_lim and ordered):
        return None
    return Resources(cpu_request=cpu_req[0], cpu_limit=cpu_lim[0], memory_request=mem_req[0], memory_limit=mem_lim[0])


def _is_repository(value: str) -> bool:
    # A first part without "." or ":" (Docker Hub's "acme/hello") names no registry host to log in to.
    host = value.split("/", 1)[0]
    return _REPOSITORY.fullmatch(value) is not None and ("." in host or ":" in host or host == "localhost")


def _in_zone(zone: str) -> Callable[[str], bool]:
    return lambda host: _HOSTNAME.fullmatch(host) is not None and (host == zone or host.endswith("." + zone))


def _certificate_coverage(r: _Reader, zone: str | None, hostnames: tuple[str, ...] | None) -> tuple[str, ...]:
    """Hostnames deeper than one label below the zone need a certificate Universal SSL does not give.

    Universal SSL covers the zone apex and ``*.zone`` only (Cloudflare docs, SSL/TLS > Edge certificates >
    Universal SSL > Limitations); deeper names need an Advanced Certificate, declared here by listing them.
    """
    listed = hostnames or ()
    advanced = r.string_list(
        "advancedCertificateHostnames", check=lambda h: h in listed,
        expected="hostnames from the hostnames setting that an Advanced Certificate covers",
    )  # fmt: skip
    if zone and advanced is not None:
        deep = [h for h in listed if h.count(".") - zone.count(".") > 1 and h not in advanced]
        if deep:
            r.problem(
                "hostnames", ", ".join(deep),
                f"hostnames at most one label below {zone}: Universal SSL covers only {zone} and *.{zone}; "
                "list deeper ones in advancedCertificateHostnames once an Advanced Certificate covers them",
            )  # fmt: skip
    return advanced or ()


def load_settings(
    config: ConfigSource | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    namespace: str | None = None,
    label: Callable[[str], str] | None = None,
) -> Settings:
    """Read and validate every setting; raise :class:`SettingsError` listing all problems.

    ``config`` defaults to ``pulumi.Config()`` (the running project's namespace); ``environ`` (for
    the source revision fallback) defaults to ``os.environ``. Problem lines name keys as
    ``<namespace>:<key>``: ``namespace`` defaults to the config's own (``pulumi.Config.name``), else
    ``service-lifecycle``; ``label`` (key → shown name) overrides that.
    """
    source: ConfigSource = config if config is not None else pulumi.Config()
    env = os.environ if environ is None else environ
    prefix = namespace or getattr(source, "name", None) or PROJECT
    r = _Reader(source, label or (lambda name: f"{prefix}:{name}"))

    # Every step reads all of its keys whatever came before, so one error lists every problem, in
    # this order. A step returns None after reporting a problem (build, promotion: also when the stage has none).
    stage, parts = _read_stage(r)
    service = _read_service(r, stage, parts)
    registry = _read_registry(r, parts)
    build = _read_build(r, parts, env)
    promotion = _read_promotion(r, stage, parts)
    kubernetes = _read_kubernetes(r)
    cloudflare = _read_cloudflare(r, stage, parts)
    monitoring = _read_monitoring(r)
    if r.problems:
        raise SettingsError(r.problems)

    # No problem, so only build and promotion may be None; the assert narrows the types for mypy.
    assert stage and parts and service and registry and kubernetes and cloudflare and monitoring
    return Settings(
        stage=stage,
        parts=parts,
        service_name=service.service_name,
        team=service.team,
        app_version=service.app_version,
        replicas=service.replicas,
        container_port=service.container_port,
        resources=service.resources,
        registry=registry,
        build=build,
        promotion=promotion,
        kubernetes=kubernetes,
        cloudflare=cloudflare,
        monitoring=monitoring,
    )


@dataclass(frozen=True, kw_only=True)
class _ServiceValues:
    """The service's own part of :class:`Settings`: who it is and how it runs."""

    service_name: str
    team: str
    app_version: str
    replicas: int
    container_port: int
    resources: Resources


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
    if (
        service_name is None or team is None or app_version is None or replicas is None or container_port is None
        or resources is None
    ):  # fmt: skip
        return None
    return _ServiceValues(
        service_name=service_name, team=team, app_version=app_version, replicas=replicas,
        container_port=container_port, resources=resources,
    )  # fmt: skip


def _read_registry(r: _Reader, parts: StageParts | None) -> RegistrySettings | None:
    """Registry: needed in every stage (sunset decommissions images there)."""
    repository = r.string(
        "imageRepository", required=True, check=_is_repository,
        expected="an image repository with its registry host, without tag or digest, such as ghcr.io/acme/hello",
    )  # fmt: skip
    username = r.string("registryUsername", required=False, expected="a registry user name")
    password = r.secret("registryPassword")
    retain = r.integer("imageRetainDigests", low=1, high=100, expected="an integer from 1 to 100")
    is_ecr = repository is not None and _ECR.match(repository) is not None
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
        expected="the https:// URL of the source repository, e.g. https://github.com/acme/hello",
    )  # fmt: skip
    if source_url is None and env.get("GITHUB_SERVER_URL") and env.get("GITHUB_REPOSITORY"):
        source_url = f"{env['GITHUB_SERVER_URL']}/{env['GITHUB_REPOSITORY']}"
    if not (parts and parts.builds_image):
        return None
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
        allow_empty=not (parts and parts.exposure),
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
        "monitoringRunbookUrl", required=True, check=lambda v: re.fullmatch(r'https://[^\s"]+', v) is not None,
        expected="an https:// URL of the alerts' runbook",
    )  # fmt: skip
    if namespace is None or install_stack is None or slo is None or latency is None or runbook is None:
        return None
    return MonitoringSettings(
        namespace=namespace,
        install_cluster_stack=install_stack,
        alert_webhook_url=webhook,
        grafana_admin_password=grafana_password,
        slo_availability=slo,
        latency_p95_seconds=latency,
        runbook_url=runbook,
    )

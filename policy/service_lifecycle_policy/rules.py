"""The guard rails of service-lifecycle as plain functions over resource inputs.

The same functions run in two places:

* inside ``pulumi preview/up --policy-pack policy`` through the CrossGuard adapter in
  ``policy/__main__.py`` (props come from the engine, unknowns as sentinel strings);
* offline, through ``components/policy_offline.py``, against the resources the offline plan
  recorded under the mock runtime (no Pulumi CLI needed).

They take plain dicts with the engine's camelCase keys, so they import nothing from Pulumi.
Policies cannot read stack configuration: the stage comes from the ``STAGE_LABEL`` label that
``Environment`` puts on the service's Namespace.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

STAGE_LABEL: Final = "service-lifecycle/stage"
"""Namespace label that carries the lifecycle stage (staging, production)."""
POD_SECURITY_LABEL: Final = "pod-security.kubernetes.io/enforce"

SECRET_SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE: Final = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN_VALUES: Final = frozenset(
    {
        "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string (also what the Python SDK sends for any unknown)
        "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
        "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
        "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
        "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
    }
)
"""Sentinels the engine uses for values not known until apply (preview)."""

DEPLOYMENT: Final = "kubernetes:apps/v1:Deployment"
NAMESPACE: Final = "kubernetes:core/v1:Namespace"
SERVICE: Final = "kubernetes:core/v1:Service"
CONFIG_MAP: Final = "kubernetes:core/v1:ConfigMap"
K8S_SECRET: Final = "kubernetes:core/v1:Secret"
PDB: Final = "kubernetes:policy/v1:PodDisruptionBudget"
INGRESS_TYPES: Final = frozenset(
    {"kubernetes:networking.k8s.io/v1:Ingress", "kubernetes:networking.k8s.io/v1beta1:Ingress"}
)
HPA_TYPES: Final = frozenset({"kubernetes:autoscaling/v2:HorizontalPodAutoscaler"})
DNS_RECORD_TYPES: Final = frozenset({"cloudflare:index/dnsRecord:DnsRecord", "cloudflare:index/record:Record"})
ACCESS_APP_TYPES: Final = frozenset(
    {
        "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication",
        "cloudflare:index/accessApplication:AccessApplication",
    }
)
ACCESS_POLICY_TYPES: Final = frozenset(
    {"cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy", "cloudflare:index/accessPolicy:AccessPolicy"}
)
DOCKER_IMAGE_REF_TYPES: Final = {
    "docker:index/remoteImage:RemoteImage": "name",
    "docker:index/container:Container": "image",
}
"""Docker resources that refer to an existing image, and the input holding the reference."""

# Where each workload kind keeps its pod spec.
_POD_SPEC_PATHS: Final[Mapping[str, tuple[str, ...]]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
_CONTAINER_LISTS: Final = ("initContainers", "containers", "ephemeralContainers")
_DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_SECRET_NAME_WORDS: Final = frozenset(
    {
        *("token", "tokens", "password", "passwords", "passwd", "pwd", "passphrase"),
        *("secret", "secrets", "key", "keys", "apikey", "privatekey", "credential", "credentials"),
    }
)
_REFERENCE_WORDS: Final = frozenset({"name", "ref", "file", "path", "dir", "id", "arn"})
_SECRET_VALUE_PATTERNS: Final = (
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("a Slack token or webhook", re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}|hooks\.slack\.com/services/")),
    ("a JSON web token", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    ("a URL with a password", re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)),
    ("a Cloudflare tunnel token", re.compile(r"^eyJh[A-Za-z0-9_-]{40,}={0,2}$")),
)


# ---------------------------------------------------------------------------------------------
# Inputs and results


@dataclass(frozen=True, kw_only=True)
class CheckedResource:
    """One resource as the rules see it."""

    type: str
    """Type token, e.g. ``kubernetes:apps/v1:Deployment``."""
    name: str
    """Pulumi resource name."""
    urn: str
    """Resource URN (used to attach violations)."""
    props: Mapping[str, Any]
    """Inputs with camelCase keys; secrets may be wrapped in Pulumi's secret signature."""
    protect: bool = False
    """The ``protect`` resource option; default False."""
    secrets_marked: bool = False
    """True when secret inputs are still wrapped (offline plan), so plaintext can be told from
    secrets; the engine hands policies unwrapped values, so default False."""


@dataclass(frozen=True, kw_only=True)
class Violation:
    """A broken guard rail."""

    policy: str
    """Name of the policy that fired."""
    message: str
    """What is wrong and what is expected."""
    urn: str | None = None
    """The offending resource, when there is one."""


ResourceCheck = Callable[[CheckedResource], list[str]]
StackCheck = Callable[[Sequence[CheckedResource]], list[tuple[str, str | None]]]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One policy: a name, a description and its check."""

    name: str
    """Policy name as CrossGuard shows it (kebab-case)."""
    description: str
    """One sentence: what the rule demands."""
    scope: Literal["resource", "stack"]
    """``resource``: the check sees one resource; ``stack``: it sees them all."""
    check: ResourceCheck | StackCheck = field(repr=False)
    """The check: messages (resource scope) or (message, urn) pairs (stack scope)."""
    needs_secret_marks: bool = False
    """Only meaningful when secrets are still marked (offline plan); default False."""


# ---------------------------------------------------------------------------------------------
# Helpers


def is_unknown(value: object) -> bool:
    """True for a value the engine will only know after apply."""
    return isinstance(value, str) and value in UNKNOWN_VALUES


def is_secret(value: object) -> bool:
    """True for a value wrapped in Pulumi's secret signature."""
    return isinstance(value, Mapping) and value.get(SECRET_SIG_KEY) == SECRET_SIG_VALUE


def reveal(value: Any) -> Any:
    """``value`` with every secret wrapper removed (to inspect, never to print)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [reveal(v) for v in value]
    return value


def _open(value: Any) -> Any:
    """``value`` without a secret wrapper at its top level (nested secrets stay marked)."""
    while is_secret(value):
        value = value.get("value")
    return value


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        obj = _open(obj)
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return _open(obj)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _kind(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def display(resource: CheckedResource) -> str:
    """``Kind name`` with the Kubernetes name when known, else the Pulumi name."""
    name = _get(resource.props, "metadata", "name")
    if not isinstance(name, str) or is_unknown(name):
        name = resource.name
    return f"{_kind(resource.type)} {name}"


def pod_spec(resource: CheckedResource) -> Mapping[str, Any] | None:
    """The pod spec of a workload resource, None for anything else."""
    path = _POD_SPEC_PATHS.get(resource.type)
    if path is None:
        return None
    spec = _get(resource.props, *path)
    return spec if isinstance(spec, Mapping) else {}


def containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(label, container)`` for every container of a pod spec, init containers included."""
    for list_name in _CONTAINER_LISTS:
        for index, container in enumerate(_list(_get(spec, list_name))):
            if isinstance(container, Mapping):
                name = container.get("name")
                label = name if isinstance(name, str) else f"#{index}"
                kind = {"initContainers": "init container", "ephemeralContainers": "ephemeral container"}
                yield f"{kind.get(list_name, 'container')} {label!r}", container


def labels(resource: CheckedResource) -> Mapping[str, Any]:
    return _mapping(_get(resource.props, "metadata", "labels"))


def namespace_stages(resources: Sequence[CheckedResource]) -> dict[str, str]:
    """Namespace name → stage, from the Namespaces' ``STAGE_LABEL``."""
    stages: dict[str, str] = {}
    for resource in resources:
        if resource.type != NAMESPACE:
            continue
        stage = labels(resource).get(STAGE_LABEL)
        name = _get(resource.props, "metadata", "name")
        if isinstance(stage, str) and isinstance(name, str) and not is_unknown(name):
            stages[name] = stage
    return stages


def stage_of(resource: CheckedResource, stages: Mapping[str, str]) -> str | None:
    """The stage a namespaced resource belongs to.

    Its namespace's label when the namespace is known (None for a namespace this stack does not
    label); when it is unknown (during preview), the stage every labelled namespace agrees on.
    """
    namespace = _get(resource.props, "metadata", "namespace")
    if isinstance(namespace, str) and not is_unknown(namespace):
        return stages.get(namespace)
    distinct = set(stages.values())
    return distinct.pop() if len(distinct) == 1 else None


def _same_namespace(a: CheckedResource, b: CheckedResource) -> bool:
    na, nb = _get(a.props, "metadata", "namespace"), _get(b.props, "metadata", "namespace")
    if is_unknown(na) or is_unknown(nb):
        return True  # cannot tell during preview: give the benefit of the doubt
    return (na or "default") == (nb or "default")


def _name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w]


def secret_like_name(name: str) -> bool:
    """True when a key or variable name says it holds a credential (token, password, key...).

    Names that point at a credential rather than hold it (``TOKEN_FILE``, ``secretName``,
    ``AWS_ACCESS_KEY_ID``) are not flagged.
    """
    words = _name_words(name)
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    return bool(set(words) & _SECRET_NAME_WORDS)


def credential_kind(value: str) -> str | None:
    """What credential ``value`` looks like, or None."""
    for what, pattern in _SECRET_VALUE_PATTERNS:
        if pattern.search(value):
            return what
    return None


# ---------------------------------------------------------------------------------------------
# Resource rules


def check_images_by_digest(resource: CheckedResource) -> list[str]:
    """Every container image, and every Docker image reference, is ``repo@sha256:<digest>``."""
    problems: list[str] = []
    refs: list[tuple[str, Any]] = []
    spec = pod_spec(resource)
    if spec is not None:
        refs = [(label, _get(c, "image")) for label, c in containers(spec)]
    elif resource.type in DOCKER_IMAGE_REF_TYPES:
        field_name = DOCKER_IMAGE_REF_TYPES[resource.type]
        refs = [(field_name, _get(resource.props, field_name))]
    for label, image in refs:
        if is_unknown(image):
            continue
        if not isinstance(image, str) or not _DIGEST_REF.match(image):
            problems.append(
                f"{display(resource)} {label}: image {image!r} is not pinned by digest; "
                "expected repo@sha256:<64 hex> (tags can move)"
            )
    return problems


def check_restricted_security_context(resource: CheckedResource) -> list[str]:
    """Pods meet Pod Security 'restricted' and run with a read-only root filesystem."""
    spec = pod_spec(resource)
    if spec is None:
        return []
    who = display(resource)
    problems: list[str] = []
    for host_field in ("hostNetwork", "hostPID", "hostIPC"):
        if _get(spec, host_field) is True:
            problems.append(f"{who}: {host_field} is true; expected false")
    for volume in _list(_get(spec, "volumes")):
        if isinstance(volume, Mapping) and volume.get("hostPath") is not None:
            problems.append(f"{who}: volume {volume.get('name')!r} is a hostPath; not allowed")
    pod_ctx = _mapping(_get(spec, "securityContext"))
    for label, container in containers(spec):
        ctx = _mapping(_get(container, "securityContext"))

        def effective(key: str, ctx: Mapping[str, Any] = ctx) -> Any:
            value = ctx.get(key)
            return pod_ctx.get(key) if value is None else value

        where = f"{who} {label}"
        # A host port publishes the pod on the node's address, around Cloudflare (PSS baseline forbids it).
        for port in _list(_get(container, "ports")):
            host_port = _get(port, "hostPort")
            if host_port not in (None, 0) and not is_unknown(host_port):
                problems.append(f"{where}: hostPort {host_port} is set; expected none")
        values = {
            "runAsNonRoot": effective("runAsNonRoot"),
            "runAsUser": effective("runAsUser"),
            "seccomp": _get(effective("seccompProfile"), "type"),
            "allowPrivilegeEscalation": ctx.get("allowPrivilegeEscalation"),
            "privileged": ctx.get("privileged"),
            "readOnlyRootFilesystem": ctx.get("readOnlyRootFilesystem"),
        }
        if any(is_unknown(v) for v in values.values()):
            continue
        if values["runAsNonRoot"] is not True:
            problems.append(f"{where}: runAsNonRoot is {values['runAsNonRoot']!r}; expected true")
        if values["runAsUser"] == 0:
            problems.append(f"{where}: runAsUser is 0 (root); expected a non-zero UID")
        if values["seccomp"] not in ("RuntimeDefault", "Localhost"):
            problems.append(
                f"{where}: seccompProfile.type is {values['seccomp']!r}; expected RuntimeDefault or Localhost"
            )
        if values["allowPrivilegeEscalation"] is not False:
            problems.append(
                f"{where}: allowPrivilegeEscalation is {values['allowPrivilegeEscalation']!r}; expected false"
            )
        if values["privileged"] is True:
            problems.append(f"{where}: privileged is true; expected false")
        if values["readOnlyRootFilesystem"] is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is {values['readOnlyRootFilesystem']!r}; expected true")
        caps = _mapping(ctx.get("capabilities"))
        drop = [str(c) for c in _list(caps.get("drop"))]
        add = [str(c) for c in _list(caps.get("add"))]
        if "ALL" not in drop:
            problems.append(f"{where}: capabilities.drop is {drop!r}; expected it to contain ALL")
        extra = [c for c in add if c != "NET_BIND_SERVICE"]
        if extra:
            problems.append(f"{where}: capabilities.add {extra!r}; only NET_BIND_SERVICE is allowed")
    return problems


def check_requests_and_limits(resource: CheckedResource) -> list[str]:
    """Every container sets CPU and memory requests and limits."""
    spec = pod_spec(resource)
    if spec is None:
        return []
    problems: list[str] = []
    for label, container in containers(spec):
        if label.startswith("ephemeral"):
            continue  # the API forbids resources on ephemeral containers
        resources = _get(container, "resources")
        if is_unknown(resources):
            continue
        missing = [
            f"{kind}.{what}"
            for kind in ("requests", "limits")
            for what in ("cpu", "memory")
            if _get(resources, kind, what) in (None, "")
        ]
        if missing:
            problems.append(f"{display(resource)} {label}: resources {', '.join(missing)} not set")
    return problems


def check_no_public_service_types(resource: CheckedResource) -> list[str]:
    """No Service of type LoadBalancer or NodePort, no externalIPs, no Ingress: traffic enters via Cloudflare."""
    if resource.type in INGRESS_TYPES:
        return [f"{display(resource)}: an Ingress is a public way into the cluster; expected none (Cloudflare Tunnel)"]
    if resource.type != SERVICE:
        return []
    problems: list[str] = []
    service_type = _get(resource.props, "spec", "type")
    if service_type in ("LoadBalancer", "NodePort"):
        problems.append(
            f"{display(resource)}: type {service_type} exposes the cluster directly; "
            "expected ClusterIP (users reach the service only through Cloudflare)"
        )
    if _list(_get(resource.props, "spec", "externalIPs")):
        problems.append(f"{display(resource)}: externalIPs set; expected none")
    return problems


def check_namespace_pod_security(resource: CheckedResource) -> list[str]:
    """The service's Namespaces enforce Pod Security 'restricted'; any other Namespace states its level.

    A service namespace is one labelled with ``STAGE_LABEL``. Shared cluster infrastructure (the
    optional monitoring stack, whose node-exporter reads the host) may need a laxer level, but it
    must say so with an explicit ``enforce`` label rather than inherit the cluster default.
    """
    if resource.type != NAMESPACE:
        return []
    namespace_labels = labels(resource)
    value = namespace_labels.get(POD_SECURITY_LABEL)
    if is_unknown(value) or is_unknown(namespace_labels):
        return []
    if STAGE_LABEL in namespace_labels:
        if value == "restricted":
            return []
        return [f"{display(resource)}: label {POD_SECURITY_LABEL} is {value!r}; expected 'restricted'"]
    if value in ("restricted", "baseline", "privileged"):
        return []
    return [
        f"{display(resource)}: label {POD_SECURITY_LABEL} is {value!r}; expected an explicit level "
        "('restricted' for anything that runs the service)"
    ]


def check_dns_proxied(resource: CheckedResource) -> list[str]:
    """Cloudflare DNS records are proxied, so the origin is never exposed."""
    if resource.type not in DNS_RECORD_TYPES:
        return []
    proxied = _get(resource.props, "proxied")
    if proxied is True or is_unknown(proxied):
        return []
    name = _get(resource.props, "name")
    return [f"DnsRecord {name or resource.name}: proxied is {proxied!r}; expected true"]


def check_no_plaintext_secrets(resource: CheckedResource) -> list[str]:
    """No credentials in ConfigMaps or in plain container env values."""
    problems: list[str] = []
    who = display(resource)
    if resource.type == CONFIG_MAP:
        for section in ("data", "binaryData"):
            section_value = resource.props.get(section)
            if resource.secrets_marked and is_secret(section_value):
                problems.append(f"{who}: {section} is a secret; put it in a Secret, not a ConfigMap")
                continue
            for data_key, value in _mapping(_open(section_value)).items():
                if resource.secrets_marked and is_secret(value):
                    problems.append(f"{who}: {section}.{data_key} is a secret; put it in a Secret, not a ConfigMap")
                elif secret_like_name(str(data_key)):
                    problems.append(f"{who}: {section}.{data_key} looks like a credential by its name; use a Secret")
                else:
                    kind = credential_kind(str(reveal(value)))
                    if kind is not None:
                        problems.append(f"{who}: {section}.{data_key} holds what looks like {kind}; use a Secret")
        return problems
    spec = pod_spec(resource)
    if spec is None:
        return []
    for label, container in containers(spec):
        for field_name in ("command", "args"):
            raw_list = container.get(field_name)
            in_clear = f"{who} {label}: {field_name} holds a secret; pass it through env valueFrom.secretKeyRef"
            if resource.secrets_marked and is_secret(raw_list):
                problems.append(in_clear)
                continue
            for raw_arg in _list(_open(raw_list)):
                if resource.secrets_marked and is_secret(raw_arg):
                    problems.append(in_clear)
                elif not is_unknown(raw_arg) and (kind := credential_kind(str(reveal(raw_arg)))) is not None:
                    problems.append(f"{who} {label}: {field_name} holds what looks like {kind}; use a Secret")
        for env in _list(_get(container, "env")):
            if not isinstance(env, Mapping) or "value" not in env:
                continue  # valueFrom (secretKeyRef) is the right way
            env_name = str(env.get("name"))
            raw_value = env.get("value")
            value = reveal(raw_value)
            if is_unknown(value) or value in (None, ""):
                continue
            if resource.secrets_marked and is_secret(raw_value):
                problems.append(
                    f"{who} {label}: env {env_name} is a secret passed as a plain value; use valueFrom.secretKeyRef"
                )
            elif secret_like_name(env_name):
                problems.append(
                    f"{who} {label}: env {env_name} looks like a credential by its name but is a plain "
                    "value; use valueFrom.secretKeyRef"
                )
            else:
                kind = credential_kind(str(value))
                if kind is not None:
                    problems.append(f"{who} {label}: env {env_name} holds what looks like {kind}; use a Secret")
    return problems


def check_secret_values_are_pulumi_secrets(resource: CheckedResource) -> list[str]:
    """Kubernetes Secret values are Pulumi secrets, so they never sit in state or output as plaintext."""
    if resource.type != K8S_SECRET or not resource.secrets_marked:
        return []
    problems: list[str] = []
    for section in ("data", "stringData"):
        raw = resource.props.get(section)
        if raw is None or is_secret(raw):
            continue
        for data_key, value in _mapping(raw).items():
            if is_secret(value) or is_unknown(value):
                continue
            # Plain non-credentials (a user name, a file name) are fine; a credential is not.
            if secret_like_name(str(data_key)) or credential_kind(str(value)) is not None:
                problems.append(
                    f"{display(resource)}: {section}.{data_key} is plaintext; expected a Pulumi secret "
                    "(config get_secret/require_secret or Output.secret)"
                )
    return problems


def check_production_namespace_protected(resource: CheckedResource) -> list[str]:
    """The production Namespace has ``protect=True``, so deleting it takes a deliberate step."""
    if resource.type != NAMESPACE or labels(resource).get(STAGE_LABEL) != "production":
        return []
    if resource.protect:
        return []
    return [f"{display(resource)}: production namespace is not protected; expected the protect=True option"]


# ---------------------------------------------------------------------------------------------
# Stack rules


def _hostname(value: str) -> str:
    value = value.strip().lower()
    value = re.sub(r"^[a-z][a-z0-9+.-]*://", "", value)
    return value.rstrip(".")


def _access_coverage(app: CheckedResource) -> list[str]:
    """Host patterns an Access application protects as a whole (not only a path below it)."""
    raw: list[Any] = [_get(app.props, "domain")]
    raw += _list(_get(app.props, "selfHostedDomains"))
    raw += [_get(d, "uri") for d in _list(_get(app.props, "destinations"))]
    hosts: list[str] = []
    for value in raw:
        if not isinstance(value, str) or not value or is_unknown(value):
            continue
        host, _, path = _hostname(value).partition("/")
        if path in ("", "*"):
            hosts.append(host)
    return hosts


def _covers(pattern: str, hostname: str) -> bool:
    if pattern.startswith("*."):
        return hostname.endswith(pattern[1:])
    return pattern == hostname or pattern.startswith(hostname + ".")  # relative record names


def _admits_anyone(policy: Any) -> str | None:
    """Why an Access policy lets anyone through (a bypass, or an include of everyone), or None."""
    decision = _get(policy, "decision")
    if decision == "bypass":
        return "decision is bypass (no check at all)"
    if decision == "deny":
        return None
    for include in _list(_get(policy, "includes")) + _list(_get(policy, "include")):
        if isinstance(include, Mapping) and _open(include).get("everyone") is not None:
            return "includes everyone"
    return None


def check_staging_behind_access(resources: Sequence[CheckedResource]) -> list[tuple[str, str | None]]:
    """In staging, every DNS record is covered by a Cloudflare Access application that admits no one at large."""
    stages = set(namespace_stages(resources).values())
    if "staging" not in stages:
        return []
    # Bookmark and SaaS applications put nothing in front of a hostname.
    apps = [r for r in resources if r.type in ACCESS_APP_TYPES and _get(r.props, "type") not in ("bookmark", "saas")]
    # An application whose policy bypasses Access or includes everyone covers a hostname in name only.
    open_policies = [(r, _admits_anyone(r.props)) for r in resources if r.type in ACCESS_POLICY_TYPES]
    open_policies += [(app, _admits_anyone(p)) for app in apps for p in _list(_get(app.props, "policies"))]
    opened: list[tuple[str, str | None]] = [
        (f"{display(r)}: staging Access policy {why}; expected an allow list of people or service tokens", r.urn)
        for r, why in open_policies
        if why is not None
    ]
    if any(is_unknown(_get(a.props, "domain")) for a in apps):
        return opened
    coverage = [host for app in apps for host in _access_coverage(app)]
    problems: list[tuple[str, str | None]] = opened
    for record in resources:
        if record.type not in DNS_RECORD_TYPES:
            continue
        name = _get(record.props, "name")
        if is_unknown(name):
            continue
        hostname = _hostname(str(name))
        if not any(_covers(pattern, hostname) for pattern in coverage):
            problems.append(
                (
                    f"DnsRecord {hostname}: staging hostname is not behind Cloudflare Access; expected a "
                    "ZeroTrustAccessApplication whose domain covers it",
                    record.urn,
                )
            )
    return problems


def _pod_labels(deployment: CheckedResource) -> Mapping[str, Any]:
    return _mapping(_get(deployment.props, "spec", "template", "metadata", "labels"))


def _selects(pdb: CheckedResource, deployment: CheckedResource) -> bool:
    selector = _get(pdb.props, "spec", "selector")
    if is_unknown(selector):
        return True
    match = _mapping(_get(selector, "matchLabels"))
    if not match or _list(_get(selector, "matchExpressions")):
        return False  # empty selects everything; expressions are not how this project selects
    pod_labels = _pod_labels(deployment)
    return all(pod_labels.get(k) == v for k, v in match.items())


def _limits_disruption(pdb: CheckedResource, replicas: Any) -> bool:
    """False for a budget that lets a drain evict every pod at once (minAvailable 0, maxUnavailable all)."""
    min_available = _get(pdb.props, "spec", "minAvailable")
    max_unavailable = _get(pdb.props, "spec", "maxUnavailable")
    if min_available in (0, "0%") or max_unavailable == "100%":
        return False
    return not (
        isinstance(max_unavailable, int | float)
        and not isinstance(max_unavailable, bool)
        and isinstance(replicas, int)
        and max_unavailable >= replicas
    )


def _min_replicas(deployment: CheckedResource, hpas: Sequence[CheckedResource]) -> Any:
    name = _get(deployment.props, "metadata", "name")
    for hpa in hpas:
        target = _mapping(_get(hpa.props, "spec", "scaleTargetRef"))
        if target.get("kind") == "Deployment" and _same_namespace(hpa, deployment):
            target_name = target.get("name")
            if target_name == name or is_unknown(target_name):
                return _get(hpa.props, "spec", "minReplicas") or 1
    replicas = _get(deployment.props, "spec", "replicas")
    return 1 if replicas is None else replicas


def check_production_availability(resources: Sequence[CheckedResource]) -> list[tuple[str, str | None]]:
    """In production, every Deployment runs at least 2 replicas and a PodDisruptionBudget selects it."""
    stages = namespace_stages(resources)
    hpas = [r for r in resources if r.type in HPA_TYPES]
    pdbs = [r for r in resources if r.type == PDB]
    problems: list[tuple[str, str | None]] = []
    for deployment in resources:
        if deployment.type != DEPLOYMENT or stage_of(deployment, stages) != "production":
            continue
        replicas = _min_replicas(deployment, hpas)
        if isinstance(replicas, float) and replicas.is_integer():
            replicas = int(replicas)  # the engine sends every number as a float
        if not is_unknown(replicas) and (not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2):
            problems.append(
                (
                    f"{display(deployment)}: {replicas} replica(s) in production; expected at least 2",
                    deployment.urn,
                )
            )
        if not any(
            _same_namespace(p, deployment) and _selects(p, deployment) and _limits_disruption(p, replicas) for p in pdbs
        ):
            problems.append(
                (
                    f"{display(deployment)}: no PodDisruptionBudget selects its pods in production; "
                    "expected one whose matchLabels match the pod template labels and that keeps a pod up",
                    deployment.urn,
                )
            )
    return problems


# ---------------------------------------------------------------------------------------------
# The rule set


RULES: Final[tuple[Rule, ...]] = (
    Rule(
        name="images-pinned-by-digest",
        description="Container images and Docker image references are pinned by sha256 digest.",
        scope="resource",
        check=check_images_by_digest,
    ),
    Rule(
        name="restricted-security-context",
        description="Pods meet Pod Security 'restricted' (non-root, no escalation, drop ALL, seccomp) "
        "with a read-only root filesystem.",
        scope="resource",
        check=check_restricted_security_context,
    ),
    Rule(
        name="requests-and-limits",
        description="Every container sets CPU and memory requests and limits.",
        scope="resource",
        check=check_requests_and_limits,
    ),
    Rule(
        name="no-loadbalancer-or-nodeport",
        description="No Service of type LoadBalancer or NodePort and no Ingress: users come in through "
        "Cloudflare only.",
        scope="resource",
        check=check_no_public_service_types,
    ),
    Rule(
        name="namespace-pod-security-restricted",
        description="Service namespaces carry pod-security.kubernetes.io/enforce=restricted; others an explicit level.",
        scope="resource",
        check=check_namespace_pod_security,
    ),
    Rule(
        name="dns-records-proxied",
        description="Cloudflare DNS records are proxied.",
        scope="resource",
        check=check_dns_proxied,
    ),
    Rule(
        name="no-plaintext-secrets",
        description="No credentials in ConfigMaps, plain container env values or command lines (names or "
        "values that look like tokens, passwords, secrets or keys).",
        scope="resource",
        check=check_no_plaintext_secrets,
    ),
    Rule(
        name="secret-values-are-pulumi-secrets",
        description="Kubernetes Secret values are Pulumi secrets (offline only, where secrets stay marked).",
        scope="resource",
        check=check_secret_values_are_pulumi_secrets,
        needs_secret_marks=True,
    ),
    Rule(
        name="production-namespace-protected",
        description="The production Namespace has protect=true.",
        scope="resource",
        check=check_production_namespace_protected,
    ),
    Rule(
        name="staging-behind-access",
        description="In staging every DNS record is covered by a Cloudflare Access application, and no Access "
        "policy bypasses it or includes everyone.",
        scope="stack",
        check=check_staging_behind_access,
    ),
    Rule(
        name="production-availability",
        description="In production every Deployment has at least 2 replicas and a PodDisruptionBudget.",
        scope="stack",
        check=check_production_availability,
    ),
)
"""Every rule; all are mandatory."""


def evaluate(resources: Sequence[CheckedResource], rules: Sequence[Rule] = RULES) -> list[Violation]:
    """Run ``rules`` over ``resources``; every violation, in rule order."""
    violations: list[Violation] = []
    for rule in rules:
        if rule.scope == "resource":
            resource_check: Any = rule.check
            for resource in resources:
                for message in resource_check(resource):
                    violations.append(Violation(policy=rule.name, message=message, urn=resource.urn))
        else:
            stack_check: Any = rule.check
            for message, urn in stack_check(resources):
                violations.append(Violation(policy=rule.name, message=message, urn=urn))
    return violations

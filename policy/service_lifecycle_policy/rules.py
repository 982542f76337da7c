"""The guard rails of service-lifecycle as plain functions over resource inputs.

The same functions run in two places:

* inside ``pulumi preview/up --policy-pack policy`` through the CrossGuard adapter in
  ``policy/__main__.py`` (props come from the engine, unknowns as sentinel strings);
* offline, through ``components/commands/policy_offline.py``, against the resources the offline plan
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

from service_lifecycle_policy.pod_security import KUBERNETES_VERSION, containers, restricted_problems
from service_lifecycle_policy.values import (  # noqa: F401 - the sentinels stay importable from rules
    SECRET_SIG_KEY,
    SECRET_SIG_VALUE,
    UNKNOWN_VALUES,
    as_list,
    as_mapping,
    get,
    is_secret,
    is_unknown,
    reveal,
    unwrap,
)

STAGE_LABEL: Final = "service-lifecycle/stage"
"""Namespace label that carries the lifecycle stage (staging, production)."""
POD_SECURITY_LABEL: Final = "pod-security.kubernetes.io/enforce"
POD_SECURITY_VERSION_LABEL: Final = "pod-security.kubernetes.io/enforce-version"


DEPLOYMENT: Final = "kubernetes:apps/v1:Deployment"
NAMESPACE: Final = "kubernetes:core/v1:Namespace"
SERVICE: Final = "kubernetes:core/v1:Service"
CONFIG_MAP: Final = "kubernetes:core/v1:ConfigMap"
K8S_SECRET: Final = "kubernetes:core/v1:Secret"
PDB: Final = "kubernetes:policy/v1:PodDisruptionBudget"
GATEWAY_API_GROUPS: Final = frozenset({"gateway.networking.k8s.io", "gateway.networking.x-k8s.io"})
"""Gateway API (standard and experimental channels), every version and kind."""
PUBLIC_SERVICE_TYPES: Final = frozenset({"LoadBalancer", "NodePort", "ExternalName"})
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

_DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
_SECRET_NAME_WORDS: Final = frozenset(
    {
        *("token", "tokens", "password", "passwords", "passwd", "pwd", "passphrase", "pass", "pw", "pswd"),
        *("secret", "secrets", "key", "keys", "apikey", "privatekey", "credential", "credentials"),
    }
)
_SECRET_SUFFIXES: Final = ("password", "passwd", "passphrase", "secret", "token", "apikey", "privatekey")
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


_open = unwrap
_get = get
_mapping = as_mapping
_list = as_list


def _kind(resource_type: str) -> str:
    return resource_type.rsplit(":", 1)[-1]


def display(resource: CheckedResource) -> str:
    """``Kind name`` with the Kubernetes name when known, else the Pulumi name."""
    name = _get(resource.props, "metadata", "name")
    if not isinstance(name, str) or is_unknown(name):
        name = resource.name
    return f"{_kind(resource.type)} {name}"


@dataclass(frozen=True)
class PodSpecAt:
    """A pod spec found inside a resource, with the metadata its pods get."""

    path: str
    """Where it sits, e.g. ``spec.template.spec``."""
    metadata: Mapping[str, Any]
    """The pod template's metadata (the object's own for a bare Pod)."""
    spec: Mapping[str, Any]
    """The pod spec itself."""


def pod_specs(resource: CheckedResource) -> list[PodSpecAt]:
    """Every pod spec a Kubernetes object carries, found by shape rather than by kind.

    A pod spec is a mapping with a ``containers`` key: ``spec`` of a Pod, ``template.spec`` of a
    PodTemplate, ``spec.template.spec`` of a Deployment, ReplicationController or Argo Rollout,
    ``spec.jobTemplate.spec.template.spec`` of a CronJob, at any API version and in any custom kind.
    """
    if not resource.type.startswith("kubernetes:"):
        return []
    found: list[PodSpecAt] = []

    def walk(node: Any, path: tuple[str, ...], parent: Mapping[str, Any]) -> None:
        node = unwrap(node)
        if isinstance(node, Mapping):
            if "containers" in node:
                found.append(PodSpecAt(".".join(path), as_mapping(parent.get("metadata")), node))
                return
            for key, value in node.items():
                if key != "metadata":
                    walk(value, (*path, str(key)), node)
        elif isinstance(node, list | tuple):
            for index, item in enumerate(node):
                walk(item, (*path, f"[{index}]"), parent)

    walk(resource.props, (), resource.props)
    return found


def all_containers(resource: CheckedResource) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(label, container)`` of every container in every pod spec of ``resource``."""
    for at in pod_specs(resource):
        yield from containers(at.spec)


def labels(resource: CheckedResource) -> Mapping[str, Any]:
    return _mapping(_get(resource.props, "metadata", "labels"))


def service_stage(namespace_labels: Mapping[str, Any]) -> Any:
    """The stage label of a service namespace, or None when it is not one: ``STAGE_LABEL``, or the
    ``<prefix>/stage`` of a platform's own prefix (the library's ``labelPrefix``), recognised by its
    siblings ``<prefix>/service`` and ``<prefix>/team``: policies cannot read stack configuration."""
    if STAGE_LABEL in namespace_labels:
        return namespace_labels[STAGE_LABEL]
    for label_key, value in namespace_labels.items():
        prefix, slash, name = str(label_key).rpartition("/")
        if (
            slash
            and name == "stage"
            and f"{prefix}/service" in namespace_labels
            and f"{prefix}/team" in namespace_labels
        ):
            return value
    return None


def namespace_stages(resources: Sequence[CheckedResource]) -> dict[str, str]:
    """Namespace name → stage, from the Namespaces' ``STAGE_LABEL``."""
    stages: dict[str, str] = {}
    for resource in resources:
        if resource.type != NAMESPACE:
            continue
        stage = service_stage(labels(resource))
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
    # Glued names (PGPASSWORD, MYSQLPASSWD) end in an unambiguous word; short ones (pass, key) do not.
    return bool(set(words) & _SECRET_NAME_WORDS) or any(w.endswith(_SECRET_SUFFIXES) for w in words)


def credential_kind(value: str) -> str | None:
    """What credential ``value`` looks like, or None."""
    for what, pattern in _SECRET_VALUE_PATTERNS:
        if pattern.search(value):
            return what
    return None


_USER_PASSWORD_FLAGS: Final = frozenset({"-u", "--user", "-U", "--proxy-user"})
"""curl's (and wget's, httpie's) ``user:password`` flags."""
_REFERENCE = re.compile(r"^\$[({]?[A-Za-z_][A-Za-z0-9_]*[)}]?$")
"""``$(VAR)`` (Kubernetes env expansion), ``${VAR}`` or ``$VAR``: a reference, not a credential."""


def _is_literal(value: str) -> bool:
    return bool(value) and not _REFERENCE.match(value)


def command_line_credential(words: Sequence[str]) -> str | None:
    """What credential a command line carries in clear, or None.

    ``words`` are the command and args (each may hold a whole shell script): a flag named like a
    credential with a value (``--db-password=x``, ``--api-key x``), a ``user:password`` for curl
    (``-u admin:pw``), an assignment ``PGPASSWORD=x``, or a credential-looking value anywhere.
    """
    tokens = [t for word in words for t in word.split()]
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        if token in _USER_PASSWORD_FLAGS or token.startswith("--user="):
            value = token.partition("=")[2] if token.startswith("--user=") else following
            _user, colon, password = value.strip("'\"").partition(":")
            if colon and _is_literal(password):
                return f"a user:password for {token.partition('=')[0]}"
        name, equals, value = token.lstrip("-").partition("=")
        if token.startswith("-") and secret_like_name(name):
            value = value if equals else ("" if following.startswith("-") else following)
            if _is_literal(value.strip("'\"")):
                return f"a credential in the flag --{name}"
        elif (
            equals
            and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
            and secret_like_name(name)
            and _is_literal(value.strip("'\""))
        ):
            return f"a credential assigned to {name}"
    for word in words:
        kind = credential_kind(word)
        if kind is not None:
            return kind
    return None


# ---------------------------------------------------------------------------------------------
# Resource rules


def check_images_by_digest(resource: CheckedResource) -> list[str]:
    """Every container image, and every Docker image reference, is ``repo@sha256:<digest>``."""
    problems: list[str] = []
    refs: list[tuple[str, Any]] = [(label, _get(c, "image")) for label, c in all_containers(resource)]
    if resource.type in DOCKER_IMAGE_REF_TYPES:
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
    """Pods meet Pod Security 'restricted' (every check, see pod_security) with a read-only root filesystem."""
    who = display(resource)
    problems: list[str] = []
    for at in pod_specs(resource):
        problems += [f"{who}: {problem}" for problem in restricted_problems(at.metadata, at.spec)]
        for label, container in containers(at.spec):
            read_only = _get(container, "securityContext", "readOnlyRootFilesystem")
            if read_only is not True and not is_unknown(read_only):
                problems.append(f"{who} {label}: readOnlyRootFilesystem is {read_only!r}; expected true")
    return problems


def check_requests_and_limits(resource: CheckedResource) -> list[str]:
    """Every container sets CPU and memory requests and limits."""
    problems: list[str] = []
    for label, container in all_containers(resource):
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


def _group_and_kind(resource_type: str) -> tuple[str, str]:
    """``kubernetes:networking.k8s.io/v1:Ingress`` → ``("networking.k8s.io", "Ingress")``."""
    _, _, rest = resource_type.partition(":")
    group_version, _, kind = rest.rpartition(":")
    return group_version.rpartition("/")[0], kind


def check_no_public_service_types(resource: CheckedResource) -> list[str]:
    """Users come in through Cloudflare only: no Gateway API object, no Ingress of any version, no
    Service of type LoadBalancer, NodePort or ExternalName, no externalIPs, hostPort or hostNetwork."""
    if not resource.type.startswith("kubernetes:"):
        return []
    who = display(resource)
    group, kind = _group_and_kind(resource.type)
    if group in GATEWAY_API_GROUPS:
        return [f"{who}: a Gateway API object routes traffic into the cluster; expected none (Cloudflare Tunnel)"]
    if kind == "Ingress":
        return [f"{who}: an Ingress is a public way into the cluster; expected none (Cloudflare Tunnel)"]
    problems: list[str] = []
    for at in pod_specs(resource):
        if _get(at.spec, "hostNetwork") is True:
            problems.append(f"{who}: hostNetwork is true, the pod listens on the node's address; expected false")
        for label, container in containers(at.spec):
            for port in _list(_get(container, "ports")):
                host_port = _get(port, "hostPort")
                if host_port not in (None, 0) and not is_unknown(host_port):
                    problems.append(f"{who} {label}: hostPort {host_port} publishes the pod on the node; expected none")
    if kind != "Service" or group != "core":
        return problems
    service_type = _get(resource.props, "spec", "type")
    if service_type in PUBLIC_SERVICE_TYPES:
        problems.append(
            f"{who}: type {service_type} exposes the cluster directly; "
            "expected ClusterIP (users reach the service only through Cloudflare)"
        )
    if _list(_get(resource.props, "spec", "externalIPs")):
        problems.append(f"{who}: externalIPs set; expected none")
    return problems


def _enforce_version_problem(value: Any) -> str | None:
    """Why an ``enforce-version`` label lets the cluster enforce an older profile than the policy's."""
    if value is None or value == "latest" or is_unknown(value):
        return None
    match = re.fullmatch(r"v(\d+)\.(\d+)", str(value))
    if match and (int(match[1]), int(match[2])) >= KUBERNETES_VERSION:
        return None
    major, minor = KUBERNETES_VERSION
    return (
        f"label {POD_SECURITY_VERSION_LABEL} is {value!r}; expected latest or v{major}.{minor} or later "
        "(an older version enforces an older, laxer profile)"
    )


def check_namespace_pod_security(resource: CheckedResource) -> list[str]:
    """The service's Namespaces enforce Pod Security 'restricted'; any other Namespace states its level.

    A service namespace is one labelled with ``STAGE_LABEL``. Shared cluster infrastructure (the
    optional monitoring stack, whose node-exporter reads the host) may need a laxer level, but it
    must say so with an explicit ``enforce`` label rather than inherit the cluster default. Either
    way the ``enforce-version`` is ``latest`` or at least the version these rules implement.
    """
    if resource.type != NAMESPACE:
        return []
    namespace_labels = labels(resource)
    value = namespace_labels.get(POD_SECURITY_LABEL)
    if is_unknown(value) or is_unknown(namespace_labels):
        return []
    problems: list[str] = []
    version_problem = _enforce_version_problem(namespace_labels.get(POD_SECURITY_VERSION_LABEL))
    if version_problem is not None:
        problems.append(f"{display(resource)}: {version_problem}")
    if service_stage(namespace_labels) is not None:
        if value != "restricted":
            problems.append(f"{display(resource)}: label {POD_SECURITY_LABEL} is {value!r}; expected 'restricted'")
    elif value not in ("restricted", "baseline", "privileged"):
        problems.append(
            f"{display(resource)}: label {POD_SECURITY_LABEL} is {value!r}; expected an explicit level "
            "('restricted' for anything that runs the service)"
        )
    return problems


def check_pods_in_labelled_namespaces(resources: Sequence[CheckedResource]) -> list[tuple[str, str | None]]:
    """Every object that carries a pod spec lives in a Namespace of this stack that states its Pod
    Security level (a namespace the stack does not create enforces whatever the cluster defaults to)."""
    labelled: set[str] = set()
    for resource in resources:
        name = _get(resource.props, "metadata", "name")
        if resource.type == NAMESPACE and isinstance(name, str) and labels(resource).get(POD_SECURITY_LABEL):
            labelled.add(name)
    problems: list[tuple[str, str | None]] = []
    for resource in resources:
        if not pod_specs(resource):
            continue
        namespace = _get(resource.props, "metadata", "namespace")
        if is_unknown(namespace) or namespace in labelled:
            continue
        problems.append(
            (
                f"{display(resource)}: runs pods in namespace {namespace or 'default'!r}, which this stack does not "
                f"create with a {POD_SECURITY_LABEL} label; expected a Namespace of the stack that enforces "
                "Pod Security",
                resource.urn,
            )
        )
    return problems


def check_dns_proxied(resource: CheckedResource) -> list[str]:
    """Cloudflare DNS records are proxied, so the origin is never exposed."""
    if resource.type not in DNS_RECORD_TYPES:
        return []
    proxied = _get(resource.props, "proxied")
    if proxied is True or is_unknown(proxied):
        return []
    name = _get(resource.props, "name")
    return [f"DnsRecord {name or resource.name}: proxied is {proxied!r}; expected true"]


def _empty_secret_values(resource: CheckedResource) -> list[str]:
    """Keys of a Kubernetes Secret whose value is empty (an unset credential that would pass unnoticed)."""
    problems: list[str] = []
    for section in ("data", "stringData"):
        for data_key, value in _mapping(_open(resource.props.get(section))).items():
            if reveal(value) in ("", None):
                problems.append(f"{display(resource)}: {section}.{data_key} is empty; expected the credential's value")
    return problems


def check_no_plaintext_secrets(resource: CheckedResource) -> list[str]:
    """No credentials in ConfigMaps, plain container env values or command lines; no empty Secret values."""
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
    if resource.type == K8S_SECRET:
        return _empty_secret_values(resource)
    for label, container in all_containers(resource):
        for field_name in ("command", "args"):
            raw_list = container.get(field_name)
            in_clear = f"{who} {label}: {field_name} holds a secret; pass it through env valueFrom.secretKeyRef"
            if resource.secrets_marked and (
                is_secret(raw_list) or any(is_secret(arg) for arg in _list(_open(raw_list)))
            ):
                problems.append(in_clear)
                continue
            words = [str(reveal(arg)) for arg in _list(_open(raw_list)) if not is_unknown(arg)]
            kind = command_line_credential(words)
            if kind is not None:
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
    if resource.type != NAMESPACE or service_stage(labels(resource)) != "production":
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


PUBLIC_MAIL_DOMAINS: Final = frozenset(
    {
        *("gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com"),
        *("yahoo.com", "ymail.com", "aol.com", "icloud.com", "me.com", "mac.com"),
        *("proton.me", "protonmail.com", "pm.me", "gmx.com", "gmx.net", "gmx.de", "web.de"),
        *("mail.com", "zoho.com", "yandex.com", "yandex.ru", "mail.ru", "tutanota.com", "fastmail.com"),
        *("qq.com", "163.com", "126.com", "hey.com"),
    }
)
"""Free mail providers anyone can sign up to: an email-domain include of one admits everyone."""
BROADEST_IPV4_PREFIX: Final = 16
"""An IP include shorter than /16 (over 65,536 addresses) admits networks, not a team's egress."""
BROADEST_IPV6_PREFIX: Final = 32
"""An IPv6 include shorter than /32 (more than a whole provider allocation) admits the internet at large."""
_IDENTITY_RULES: Final = frozenset(
    {
        *("email", "emailList", "group", "githubOrganization", "gsuite", "azureAd", "okta", "saml"),
        *("serviceToken", "anyValidServiceToken", "commonName", "certificate", "oidc", "cloudflareAccountMember"),
    }
)
"""Access rule types that name who may pass (people, groups or machine credentials)."""


def _broad_ip(value: Any) -> bool:
    if not isinstance(value, str) or is_unknown(value):
        return False
    address, slash, prefix = value.strip().partition("/")
    if not slash or not prefix.isdigit():
        return False
    limit = BROADEST_IPV6_PREFIX if ":" in address else BROADEST_IPV4_PREFIX
    return int(prefix) < limit


def _broad_rule(rule: Mapping[str, Any]) -> str | None:
    """Why one include rule admits people at large, or None."""
    if rule.get("everyone") is not None:
        return "includes everyone"
    ip = _get(rule, "ip", "ip")
    if _broad_ip(ip):
        return f"includes the IP range {ip} (anyone on a network that large)"
    domain = _get(rule, "emailDomain", "domain")
    if isinstance(domain, str) and domain.strip().lower().lstrip("@") in PUBLIC_MAIL_DOMAINS:
        return f"includes the email domain {domain} (a public mail provider anyone can sign up to)"
    if rule.get("geo") is not None:
        return "includes a whole country (geo)"
    return None


def _admits_anyone(policy: Any) -> str | None:
    """Why an Access policy lets people at large through, or None: a bypass, an include of everyone,
    of a very broad IP range, of a public mail domain or a country, or a login method alone (a
    one-time PIN admits anyone with an inbox) without a ``require`` that names who."""
    decision = _get(policy, "decision")
    if decision == "bypass":
        return "decision is bypass (no check at all)"
    if decision == "deny":
        return None
    includes = [_mapping(i) for i in _list(_get(policy, "includes")) + _list(_get(policy, "include"))]
    for include in includes:
        why = _broad_rule(include)
        if why is not None:
            return why
    requires = [_mapping(r) for r in _list(_get(policy, "requires")) + _list(_get(policy, "require"))]
    named = any(key in _IDENTITY_RULES for rule in requires for key in rule)
    for include in includes:
        method = next((k for k in ("loginMethod", "authMethod") if include.get(k) is not None), None)
        if method is not None and not named:
            return f"includes a {method} alone (anyone who can sign in that way, e.g. a one-time PIN)"
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


def _scaled(value: Any, replicas: int) -> int | None:
    """An IntOrString of a budget as a pod count, percentages rounded up, as the disruption controller
    does (kubernetes/kubernetes pkg/controller/disruption/disruption.go, getExpectedScale and
    ``intstr.GetScaledValueFromIntOrPercent(..., roundUp=true)``); None when it cannot be told."""
    if isinstance(value, bool) or value is None or is_unknown(value):
        return None
    if isinstance(value, int | float):
        return int(value)
    match = re.fullmatch(r"(\d+)%", str(value))
    if match is None:
        return None
    return -(-int(match[1]) * replicas // 100)


def _limits_disruption(pdb: CheckedResource, replicas: Any) -> bool:
    """False for a budget that lets a drain evict every pod at once (minAvailable 0, maxUnavailable all)."""
    min_available = _get(pdb.props, "spec", "minAvailable")
    max_unavailable = _get(pdb.props, "spec", "maxUnavailable")
    if min_available in (0, "0%") or max_unavailable == "100%":
        return False
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        return True  # unknown during preview: the budget's own extremes were checked above
    if min_available is not None:
        kept = _scaled(min_available, replicas)
        return kept is None or kept >= 1
    evicted = _scaled(max_unavailable, replicas)
    return evicted is None or evicted < replicas


def _min_replicas(workload: CheckedResource, hpas: Sequence[CheckedResource]) -> Any:
    name = _get(workload.props, "metadata", "name")
    kind = _group_and_kind(workload.type)[1]
    for hpa in hpas:
        target = _mapping(_get(hpa.props, "spec", "scaleTargetRef"))
        if target.get("kind") == kind and _same_namespace(hpa, workload):
            target_name = target.get("name")
            if target_name == name or is_unknown(target_name):
                return _get(hpa.props, "spec", "minReplicas") or 1
    replicas = _get(workload.props, "spec", "replicas")
    return 1 if replicas is None else replicas


_NOT_REPLICATED: Final = frozenset({"Job", "DaemonSet"})
"""Kinds with a pod template but no replica count (run to completion, or one pod per node)."""


def replicated_workload(resource: CheckedResource) -> bool:
    """True for any object that keeps ``spec.replicas`` copies of ``spec.template`` (Deployment,
    StatefulSet, ReplicaSet, ReplicationController, Argo Rollout, any version or custom kind)."""
    if _group_and_kind(resource.type)[1] in _NOT_REPLICATED:
        return False
    return any(at.path == "spec.template.spec" for at in pod_specs(resource))


def _availability_problems(
    workload: CheckedResource, hpas: Sequence[CheckedResource], pdbs: Sequence[CheckedResource]
) -> list[tuple[str, str | None]]:
    problems: list[tuple[str, str | None]] = []
    replicas = _min_replicas(workload, hpas)
    if isinstance(replicas, float) and replicas.is_integer():
        replicas = int(replicas)  # the engine sends every number as a float
    if not is_unknown(replicas) and (not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2):
        problems.append(
            (f"{display(workload)}: {replicas} replica(s) in production; expected at least 2", workload.urn)
        )
    if not any(
        _same_namespace(p, workload) and _selects(p, workload) and _limits_disruption(p, replicas) for p in pdbs
    ):
        problems.append(
            (
                f"{display(workload)}: no PodDisruptionBudget selects its pods in production; "
                "expected one whose matchLabels match the pod template labels and that keeps a pod up",
                workload.urn,
            )
        )
    return problems


def check_production_availability(resources: Sequence[CheckedResource]) -> list[tuple[str, str | None]]:
    """In production, every replicated workload runs at least 2 replicas and a PodDisruptionBudget
    that keeps a pod up selects it; no bare Pod runs there."""
    stages = namespace_stages(resources)
    hpas = [r for r in resources if _group_and_kind(r.type) == ("autoscaling", "HorizontalPodAutoscaler")]
    pdbs = [r for r in resources if _group_and_kind(r.type) == ("policy", "PodDisruptionBudget")]
    problems: list[tuple[str, str | None]] = []
    for workload in resources:
        if stage_of(workload, stages) != "production":
            continue
        if replicated_workload(workload):
            problems += _availability_problems(workload, hpas, pdbs)
        elif any(at.path == "spec" for at in pod_specs(workload)):
            problems.append(
                (
                    f"{display(workload)}: a bare Pod in production is one replica nothing replaces; "
                    "expected a Deployment with at least 2 replicas",
                    workload.urn,
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
        description="Every pod spec, in any kind, meets every Pod Security 'restricted' check of Kubernetes 1.31 "
        "and runs with a read-only root filesystem.",
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
        description="Users come in through Cloudflare only: no Gateway API object, no Ingress of any version, no "
        "Service of type LoadBalancer, NodePort or ExternalName, no externalIPs, hostPort or hostNetwork.",
        scope="resource",
        check=check_no_public_service_types,
    ),
    Rule(
        name="namespace-pod-security-restricted",
        description="Service namespaces carry pod-security.kubernetes.io/enforce=restricted; others an explicit "
        "level; enforce-version is latest or at least the pinned Kubernetes version.",
        scope="resource",
        check=check_namespace_pod_security,
    ),
    Rule(
        name="pods-in-pod-security-namespaces",
        description="Every object that carries a pod spec lives in a Namespace of the stack with a Pod Security label.",
        scope="stack",
        check=check_pods_in_labelled_namespaces,
    ),
    Rule(
        name="dns-records-proxied",
        description="Cloudflare DNS records are proxied.",
        scope="resource",
        check=check_dns_proxied,
    ),
    Rule(
        name="no-plaintext-secrets",
        description="No credentials in ConfigMaps, plain container env values or command lines (names, flags or "
        "values that look like tokens, passwords, secrets or keys); no empty Secret values.",
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
        "policy bypasses it or admits people at large (everyone, a broad IP range, a public mail domain, a "
        "country, a login method alone).",
        scope="stack",
        check=check_staging_behind_access,
    ),
    Rule(
        name="production-availability",
        description="In production every replicated workload has at least 2 replicas and a PodDisruptionBudget "
        "that keeps a pod up; no bare Pod.",
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

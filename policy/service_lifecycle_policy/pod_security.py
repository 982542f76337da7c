"""Pod Security Standards ``restricted``, every check, as the Kubernetes admission plugin runs them.

Mirrors kubernetes/pod-security-admission ``policy/check_*.go`` at the release for Kubernetes
``1.31`` (tag v0.31.x, the version the stacks pin): each function below names the file it follows.
The checks take one pod spec and the pod template's metadata (plain dicts with the API's camelCase
keys) and return what is wrong, one sentence each, without the object's name (the caller adds it).

Two deliberate differences, both stricter: the relaxations for Windows pods (``spec.os.name:
windows``) and for user-namespaced pods (``hostUsers: false``) are not applied, because the
service runs Linux pods in the host user namespace; and a volume that names a restricted source
next to an allowed one is refused (the API server would refuse it anyway).

A value unknown during preview (an engine sentinel) passes its own check; the check runs again
at ``up``, when every value is known.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from service_lifecycle_policy.values import as_list, as_mapping, get, is_unknown

KUBERNETES_VERSION: Final = (1, 31)
"""The Pod Security Standards release these checks implement (the stacks' ``kubernetesVersion``)."""

CONTAINER_LISTS: Final = ("containers", "initContainers", "ephemeralContainers")
"""pod-security-admission ``visitContainers`` (policy/visitor.go) walks all three."""

BASELINE_CAPABILITIES: Final = frozenset(
    {
        *("AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD"),
        *("NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"),
    }
)
"""check_capabilities_baseline.go ``capabilities_allowed_1_0``."""
RESTRICTED_ADDABLE_CAPABILITIES: Final = frozenset({"NET_BIND_SERVICE"})
"""check_capabilities_restricted.go: drop ALL, add at most NET_BIND_SERVICE."""
SELINUX_TYPES: Final = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
"""check_seLinuxOptions.go ``selinuxAllowedTypes1_31``."""
SAFE_SYSCTLS: Final = frozenset(
    {
        *("kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies"),
        *("net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports"),
        *("net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl"),
        "net.ipv4.tcp_keepalive_probes",
    }
)
"""check_sysctls.go ``sysctlsAllowedV1Dot29`` (the newest set at 1.31)."""
ALLOWED_VOLUME_SOURCES: Final = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
"""check_restrictedVolumes.go ``restrictedVolumes_1_0``: every other volume source is refused."""
SECCOMP_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION_PREFIX: Final = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_POD_ANNOTATION: Final = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX: Final = "container.seccomp.security.alpha.kubernetes.io/"

Container = tuple[str, Mapping[str, Any]]
Check = Callable[[Mapping[str, Any], Mapping[str, Any], list[Container]], list[str]]


def containers(spec: Mapping[str, Any]) -> Iterator[Container]:
    """``(label, container)`` for every container of a pod spec, init and ephemeral ones included."""
    kinds = {"initContainers": "init container", "ephemeralContainers": "ephemeral container"}
    for list_name in CONTAINER_LISTS:
        for index, container in enumerate(as_list(get(spec, list_name))):
            if isinstance(container, Mapping):
                name = container.get("name")
                label = name if isinstance(name, str) else f"#{index}"
                yield f"{kinds.get(list_name, 'container')} {label!r}", container


def _ctx(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return as_mapping(get(container, "securityContext"))


def _known(value: Any) -> bool:
    return value is not None and not is_unknown(value)


def check_host_namespaces(_meta: Mapping[str, Any], spec: Mapping[str, Any], _cs: list[Container]) -> list[str]:
    """check_hostNamespaces.go: hostNetwork, hostPID and hostIPC unset or false."""
    fields = ("hostNetwork", "hostPID", "hostIPC")
    return [f"{field} is true; expected false" for field in fields if get(spec, field) is True]


def check_privileged(_meta: Mapping[str, Any], _spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_privileged.go: no container sets securityContext.privileged=true."""
    return [f"{label}: privileged is true; expected false" for label, c in cs if get(_ctx(c), "privileged") is True]


def check_capabilities(_meta: Mapping[str, Any], _spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_capabilities_baseline.go and check_capabilities_restricted.go: drop ALL, add only NET_BIND_SERVICE."""
    problems: list[str] = []
    for label, c in cs:
        caps = get(_ctx(c), "capabilities")
        if is_unknown(caps):
            continue
        drop, add = get(caps, "drop"), get(caps, "add")
        if not is_unknown(drop) and "ALL" not in [str(x) for x in as_list(drop)]:
            problems.append(f"{label}: capabilities.drop is {as_list(drop)!r}; expected it to contain ALL")
        added = [str(x) for x in as_list(add) if not is_unknown(x)]
        extra = sorted(set(added) - RESTRICTED_ADDABLE_CAPABILITIES)
        if extra:
            beyond_baseline = sorted(set(extra) - BASELINE_CAPABILITIES)
            note = f" ({beyond_baseline!r} not even in baseline)" if beyond_baseline else ""
            problems.append(f"{label}: capabilities.add {extra!r}{note}; only NET_BIND_SERVICE may be added")
    return problems


def check_volumes(_meta: Mapping[str, Any], spec: Mapping[str, Any], _cs: list[Container]) -> list[str]:
    """check_hostPathVolumes.go and check_restrictedVolumes.go: only the allowed volume sources."""
    problems: list[str] = []
    for volume in as_list(get(spec, "volumes")):
        if not isinstance(volume, Mapping):
            continue
        sources = sorted(k for k, v in volume.items() if k != "name" and v is not None)
        refused = [s for s in sources if s not in ALLOWED_VOLUME_SOURCES]
        if refused or not sources:
            what = ", ".join(refused) if refused else "no source"
            problems.append(
                f"volume {volume.get('name')!r} is {what}; expected one of {', '.join(sorted(ALLOWED_VOLUME_SOURCES))}"
            )
    return problems


def check_host_ports(_meta: Mapping[str, Any], _spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_hostPorts.go: no container port sets a hostPort (0 means unset)."""
    problems: list[str] = []
    for label, c in cs:
        for port in as_list(get(c, "ports")):
            host_port = get(port, "hostPort")
            if host_port not in (None, 0) and not is_unknown(host_port):
                problems.append(f"{label}: hostPort {host_port} is set; expected none")
    return problems


def check_apparmor(meta: Mapping[str, Any], spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_appArmorProfile.go: appArmorProfile.type RuntimeDefault or Localhost; the beta annotations
    ``runtime/default`` or ``localhost/*``."""
    problems: list[str] = []
    setters = [("pod", get(spec, "securityContext", "appArmorProfile", "type"))]
    setters += [(label, get(_ctx(c), "appArmorProfile", "type")) for label, c in cs]
    for who, value in setters:
        if _known(value) and value not in APPARMOR_TYPES:
            problems.append(f"{who}: appArmorProfile.type is {value!r}; expected RuntimeDefault or Localhost")
    for key, value in as_mapping(get(meta, "annotations")).items():
        if not str(key).startswith(APPARMOR_ANNOTATION_PREFIX) or is_unknown(value):
            continue
        if not (value in ("", None, "runtime/default") or str(value).startswith("localhost/")):
            problems.append(f"annotation {key}={value!r}; expected runtime/default or localhost/<profile>")
    return problems


def check_selinux(_meta: Mapping[str, Any], spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_seLinuxOptions.go (1.31): type one of the container types; user and role unset."""
    problems: list[str] = []
    setters = [("pod", get(spec, "securityContext", "seLinuxOptions"))]
    setters += [(label, get(_ctx(c), "seLinuxOptions")) for label, c in cs]
    for who, options in setters:
        if not isinstance(options, Mapping):
            continue
        selinux_type = options.get("type") or ""
        if not is_unknown(selinux_type) and selinux_type not in SELINUX_TYPES:
            allowed = ", ".join(sorted(t for t in SELINUX_TYPES if t))
            problems.append(f"{who}: seLinuxOptions.type is {selinux_type!r}; expected unset or one of {allowed}")
        for field in ("user", "role"):
            if options.get(field) and not is_unknown(options.get(field)):
                problems.append(f"{who}: seLinuxOptions.{field} is set; expected unset")
    return problems


def check_proc_mount(_meta: Mapping[str, Any], _spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_procMount.go: procMount unset or Default (Unmasked exposes the host's /proc)."""
    problems: list[str] = []
    for label, c in cs:
        value = get(_ctx(c), "procMount")
        if _known(value) and value != "Default":
            problems.append(f"{label}: procMount is {value!r}; expected Default")
    return problems


def check_seccomp(meta: Mapping[str, Any], spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_seccompProfile_baseline.go and check_seccompProfile_restricted.go: RuntimeDefault or
    Localhost on the pod or on every container, Unconfined nowhere (fields and annotations)."""
    problems: list[str] = []
    pod_type = get(spec, "securityContext", "seccompProfile", "type")
    if _known(pod_type) and pod_type not in SECCOMP_TYPES:
        problems.append(f"pod: seccompProfile.type is {pod_type!r}; expected RuntimeDefault or Localhost")
    for label, c in cs:
        value = get(_ctx(c), "seccompProfile", "type")
        if is_unknown(value) or is_unknown(pod_type):
            continue
        if value is None and pod_type is None:
            problems.append(f"{label}: seccompProfile.type is unset on it and on the pod; expected RuntimeDefault")
        elif value is not None and value not in SECCOMP_TYPES:
            problems.append(f"{label}: seccompProfile.type is {value!r}; expected RuntimeDefault or Localhost")
    for raw_key, value in as_mapping(get(meta, "annotations")).items():
        key = str(raw_key)
        if key != SECCOMP_POD_ANNOTATION and not key.startswith(SECCOMP_CONTAINER_ANNOTATION_PREFIX):
            continue
        if not is_unknown(value) and not (
            value in ("runtime/default", "docker/default") or str(value).startswith("localhost/")
        ):
            problems.append(f"annotation {key}={value!r}; expected runtime/default or localhost/<profile>")
    return problems


def check_sysctls(_meta: Mapping[str, Any], spec: Mapping[str, Any], _cs: list[Container]) -> list[str]:
    """check_sysctls.go (safe set of 1.29, current at 1.31)."""
    names = [get(s, "name") for s in as_list(get(spec, "securityContext", "sysctls"))]
    unsafe = [str(n) for n in names if not is_unknown(n) and n not in SAFE_SYSCTLS]
    return [f"sysctl {name!r} is not in the safe set; expected none of the unsafe sysctls" for name in unsafe]


def check_windows_host_process(_meta: Mapping[str, Any], spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_windowsHostProcess.go: windowsOptions.hostProcess unset or false."""
    setters = [("pod", get(spec, "securityContext", "windowsOptions", "hostProcess"))]
    setters += [(label, get(_ctx(c), "windowsOptions", "hostProcess")) for label, c in cs]
    return [f"{who}: windowsOptions.hostProcess is true; expected false" for who, value in setters if value is True]


def check_allow_privilege_escalation(
    _meta: Mapping[str, Any], _spec: Mapping[str, Any], cs: list[Container]
) -> list[str]:
    """check_allowPrivilegeEscalation.go: every container sets allowPrivilegeEscalation=false."""
    problems: list[str] = []
    for label, c in cs:
        value = get(_ctx(c), "allowPrivilegeEscalation")
        if value is not False and not is_unknown(value):
            problems.append(f"{label}: allowPrivilegeEscalation is {value!r}; expected false")
    return problems


def check_run_as_non_root(_meta: Mapping[str, Any], spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_runAsNonRoot.go: runAsNonRoot=true on the pod or on every container, false nowhere."""
    pod_value = get(spec, "securityContext", "runAsNonRoot")
    if is_unknown(pod_value):
        return []
    problems = [] if pod_value in (None, True) else ["pod: runAsNonRoot is false; expected true"]
    for label, c in cs:
        value = get(_ctx(c), "runAsNonRoot")
        if is_unknown(value):
            continue
        if value is False or (value is None and pod_value is not True):
            problems.append(f"{label}: runAsNonRoot is {value!r} (pod: {pod_value!r}); expected true")
    return problems


def check_run_as_user(_meta: Mapping[str, Any], spec: Mapping[str, Any], cs: list[Container]) -> list[str]:
    """check_runAsUser.go: runAsUser is never 0 (root), on the pod or a container."""
    setters = [("pod", get(spec, "securityContext", "runAsUser"))]
    setters += [(label, get(_ctx(c), "runAsUser")) for label, c in cs]
    root = [who for who, value in setters if value == 0 and not isinstance(value, bool)]
    return [f"{who}: runAsUser is 0 (root); expected a non-zero UID" for who in root]


CHECKS: Final[tuple[Check, ...]] = (
    check_host_namespaces,
    check_privileged,
    check_capabilities,
    check_volumes,
    check_host_ports,
    check_apparmor,
    check_selinux,
    check_proc_mount,
    check_seccomp,
    check_sysctls,
    check_windows_host_process,
    check_allow_privilege_escalation,
    check_run_as_non_root,
    check_run_as_user,
)
"""Every control of the ``restricted`` level at 1.31 (the 17 check files, baseline ones included)."""


def restricted_problems(metadata: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    """What keeps this pod from Pod Security ``restricted`` at 1.31; empty when it is admitted."""
    found = list(containers(spec))  # none while the list is unknown: the pod-level checks still run
    problems: list[str] = []
    for check in CHECKS:
        problems += check(metadata, spec, found)
    return problems

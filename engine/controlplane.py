"""A local Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (fake nodes and pod status), with the Prometheus Operator's CRDs installed.

Built by ``make engine`` (engine/build.sh) and found on PATH after ``source out/engine/env.sh``.
Used by the tests (one control plane per pytest run) and by ``make e2e``.

- The API server authenticates a static bearer token (system:masters) made here for this run, serves
  TLS with a certificate it makes itself under the run's directory, and admits with its default
  plugins: Pod Security is enforced as the namespaces' labels say, as on a real cluster.
- kwok marks the fake nodes Ready and the pods scheduled onto them Running and Ready, so
  Deployments become Available without a kubelet.
- Every process is started in its own session and stopped by :meth:`ControlPlane.stop`, on
  failure, on Ctrl-C and at interpreter exit too: no etcd or API server outlives its run.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
READONLY_GROUP = "service-lifecycle:readonly"


class ControlPlaneError(RuntimeError):
    """The control plane could not start: a missing tool, a taken port, a process that died."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_free(port: int, what: str) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            raise ControlPlaneError(
                f"port {port} for {what} is already taken on 127.0.0.1 ({error.strerror})"
            ) from None


def require_tools(names: Iterable[str]) -> dict[str, str]:
    found = {name: shutil.which(name) for name in names}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        raise ControlPlaneError(f"not on PATH: {', '.join(missing)}; run `make engine` and `source out/engine/env.sh`")
    return {name: str(path) for name, path in found.items()}


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class ControlPlane:
    """A running control plane. ``kubeconfig`` is a file; ``kubeconfig_text`` its content."""

    root: Path
    server: str
    token: str
    kubeconfig: Path
    read_token: str = ""
    """A token of the built-in ``view`` role only: what a pull-request preview gets."""
    processes: list[Process] = field(default_factory=list)
    nodes: tuple[str, ...] = ()

    @property
    def kubeconfig_text(self) -> str:
        return self.kubeconfig.read_text()

    # -- the API, for checks and for drift -----------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def exists(self, path: str) -> bool:
        try:
            self.get(path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
        return True

    def create(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("POST", path, dict(body))

    def patch(self, path: str, body: Mapping[str, Any]) -> Any:
        return self.request("PATCH", path, dict(body), content_type="application/merge-patch+json")

    # -- lifetime ------------------------------------------------------------------------------

    def stop(self) -> None:
        for process in reversed(self.processes):
            _terminate(process.popen)
        self.processes.clear()


def _terminate(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=grace)


_RUNNING: list[ControlPlane] = []


def _stop_all() -> None:
    for plane in list(_RUNNING):
        plane.stop()
        _RUNNING.remove(plane)


atexit.register(_stop_all)


def _spawn(plane: ControlPlane, name: str, argv: list[str]) -> Process:
    log = plane.root / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("wb")
    popen = subprocess.Popen(
        argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    handle.close()
    process = Process(name, popen, log)
    plane.processes.append(process)
    return process


def _wait(process: Process, ready: Any, timeout: float, what: str, *, watched: Iterable[Process] = ()) -> None:
    """Until ``ready()`` is true: fails at once when ``process`` (or one of ``watched``) exits, and after
    ``timeout`` with ``process``'s last log lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for each in (process, *watched):
            if each.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{each.name} exited with {each.popen.returncode} before {what}; last lines of {each.log}:\n"
                    + each.tail()
                )
        try:
            if ready():
                return
        except (OSError, urllib.error.URLError, ValueError):
            pass
        time.sleep(0.3)
    raise ControlPlaneError(
        f"{process.name} did not become ready ({what}) within {timeout:.0f} s; last lines of {process.log}:\n"
        + process.tail()
    )


def _http_ok(url: str) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(url, timeout=3, context=context) as answer:
        return bool(answer.status == 200)


def start(
    root: Path | None = None,
    *,
    nodes: int = 2,
    api_port: int | None = None,
    etcd_port: int | None = None,
    timeout: float = 120.0,
    crd_dir: str | None = None,
) -> ControlPlane:
    """Start the control plane under ``root`` (a new temporary directory by default)."""
    tools = require_tools(["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "openssl"])
    root = Path(root or tempfile.mkdtemp(prefix="service-lifecycle-k8s-"))
    root.mkdir(parents=True, exist_ok=True)
    ports = {}
    for what, chosen in (
        ("etcd client", etcd_port), ("etcd peer", None), ("kube-apiserver", api_port),
        ("kube-controller-manager", None), ("kube-scheduler", None), ("kwok", None),
    ):  # fmt: skip
        if chosen is not None:
            require_free(chosen, what)
        ports[what] = chosen if chosen is not None else free_port()

    token, read_token = secrets.token_hex(24), secrets.token_hex(24)
    pki = root / "pki"
    pki.mkdir(exist_ok=True)
    (pki / "tokens.csv").write_text(
        f'{token},admin,admin,"system:masters"\n{read_token},viewer,viewer,"{READONLY_GROUP}"\n'
    )
    os.chmod(pki / "tokens.csv", 0o600)
    subprocess.run([tools["openssl"], "genrsa", "-out", str(pki / "sa.key"), "2048"], check=True, capture_output=True)
    subprocess.run(
        [tools["openssl"], "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub")],
        check=True, capture_output=True,
    )  # fmt: skip

    server = f"https://127.0.0.1:{ports['kube-apiserver']}"
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "admin", "user": {"token": token}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
                "current-context": "local",
            },
            sort_keys=False,
        )
    )
    os.chmod(kubeconfig, 0o600)
    plane = ControlPlane(root=root, server=server, token=token, kubeconfig=kubeconfig, read_token=read_token)
    _RUNNING.append(plane)
    try:
        _start_processes(plane, tools, ports, pki, timeout)
        _wait_ready_api(plane, timeout)
        _bind_readonly(plane)
        plane.nodes = tuple(_add_nodes(plane, nodes))
        install_crds(plane, crd_dir or os.environ.get("SERVICE_LIFECYCLE_ENGINE_CRDS", ""))
    except BaseException:
        plane.stop()
        _RUNNING.remove(plane)
        raise
    return plane


def _start_processes(
    plane: ControlPlane, tools: dict[str, str], ports: dict[str, int], pki: Path, timeout: float
) -> None:
    etcd_url = f"http://127.0.0.1:{ports['etcd client']}"
    etcd = _spawn(plane, "etcd", [
        tools["etcd"], "--data-dir", str(plane.root / "etcd"), "--name", "local",
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", f"http://127.0.0.1:{ports['etcd peer']}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports['etcd peer']}",
        "--initial-cluster", f"local=http://127.0.0.1:{ports['etcd peer']}",
        "--unsafe-no-fsync", "--log-level", "warn",
    ])  # fmt: skip
    _wait(etcd, lambda: _http_ok(etcd_url + "/health"), timeout, "its /health answers")

    apiserver = _spawn(plane, "kube-apiserver", [
        tools["kube-apiserver"], "--etcd-servers", etcd_url,
        "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
        "--secure-port", str(ports["kube-apiserver"]), "--cert-dir", str(pki / "serving"),
        "--token-auth-file", str(pki / "tokens.csv"), "--authorization-mode", "RBAC",
        "--service-account-key-file", str(pki / "sa.pub"),
        "--service-account-signing-key-file", str(pki / "sa.key"),
        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
        "--api-audiences", "https://kubernetes.default.svc.cluster.local",
        "--service-cluster-ip-range", "10.96.0.0/16", "--allow-privileged=false",
        "--profiling=false", "--v=1",
    ])  # fmt: skip
    _wait(apiserver, lambda: _ready_endpoint(plane), timeout, "its /readyz answers")

    _spawn(plane, "kube-controller-manager", [
        tools["kube-controller-manager"], "--kubeconfig", str(plane.kubeconfig),
        "--authentication-kubeconfig", str(plane.kubeconfig), "--authorization-kubeconfig", str(plane.kubeconfig),
        "--service-account-private-key-file", str(pki / "sa.key"), "--use-service-account-credentials=false",
        "--leader-elect=false", "--bind-address", "127.0.0.1",
        "--secure-port", str(ports["kube-controller-manager"]),
        "--cluster-cidr", "10.244.0.0/16", "--allocate-node-cidrs=false", "--v=1",
        # kwok renews the fake nodes' leases, but on a loaded machine late enough that the node
        # lifecycle controller marks them NotReady and every pod on them unready: a slow test
        # machine is not a node failure.
        "--node-monitor-grace-period", "1h",
    ])  # fmt: skip
    _spawn(plane, "kube-scheduler", [
        tools["kube-scheduler"], "--kubeconfig", str(plane.kubeconfig),
        "--authentication-kubeconfig", str(plane.kubeconfig), "--authorization-kubeconfig", str(plane.kubeconfig),
        "--leader-elect=false", "--bind-address", "127.0.0.1", "--secure-port", str(ports["kube-scheduler"]), "--v=1",
    ])  # fmt: skip
    _spawn(plane, "kwok", [
        tools["kwok"], "--kubeconfig", str(plane.kubeconfig),
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
        "--cidr", "10.0.0.1/24", "--node-ip", "10.0.0.1",
        "--server-address", f"127.0.0.1:{ports['kwok']}",
    ])  # fmt: skip


def _ready_endpoint(plane: ControlPlane) -> bool:
    try:
        plane.request("GET", "/readyz")
    except json.JSONDecodeError:
        return True  # "ok" is text
    return True


def _has_default_service_account(plane: ControlPlane) -> bool:
    accounts = plane.get("/api/v1/namespaces/default/serviceaccounts")
    return any(item["metadata"]["name"] == "default" for item in accounts.get("items", []))


def _wait_ready_api(plane: ControlPlane, timeout: float) -> None:
    controller_manager = next(p for p in plane.processes if p.name == "kube-controller-manager")
    _wait(controller_manager, lambda: _has_default_service_account(plane), timeout,
          "it made the default service account", watched=plane.processes)  # fmt: skip


def _bind_readonly(plane: ControlPlane) -> None:
    """The read token's group gets the built-in ``view`` ClusterRole, nothing more."""
    plane.create(
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "service-lifecycle-readonly"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": READONLY_GROUP}],
        },
    )


def _add_nodes(plane: ControlPlane, count: int) -> list[str]:
    names = []
    for index in range(count):
        name = f"kwok-node-{index}"
        plane.create(
            "/api/v1/nodes",
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {FAKE_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "topology.kubernetes.io/zone": f"local-{index % 2}",
                        "type": "kwok",
                    },
                },
                "status": {
                    "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                    "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
                },
            },
        )
        names.append(name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready = 0
        for name in names:
            node = plane.get(f"/api/v1/nodes/{name}")
            conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions") or []}
            ready += conditions.get("Ready") == "True"
        if ready == len(names):
            return names
        time.sleep(0.5)
    raise ControlPlaneError(
        "kwok did not mark the fake nodes Ready within 60 s; last lines:\n" + plane.processes[-1].tail()
    )


def install_crds(plane: ControlPlane, crd_dir: str) -> None:
    """Create the Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule, PodMonitor) and wait
    until they are Established."""
    if not crd_dir or not Path(crd_dir).is_dir():
        raise ControlPlaneError(
            f"no Prometheus Operator CRDs at {crd_dir!r}: run `make engine` (it writes SERVICE_LIFECYCLE_ENGINE_CRDS)"
        )
    names = []
    for path in sorted(Path(crd_dir).glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        plane.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        names.append(crd["metadata"]["name"])
    deadline = time.monotonic() + 60
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for name in list(pending):
            crd = plane.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in crd.get("status", {}).get("conditions") or []
            ):
                pending.discard(name)
        time.sleep(0.3)
    if pending:
        raise ControlPlaneError(f"CRDs not Established within 60 s: {sorted(pending)}")

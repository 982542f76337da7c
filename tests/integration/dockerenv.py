"""Real Docker engine, OCI registry and a locally made Python base image, for tests and benchmarks.

Everything runs on 127.0.0.1 with its data under a temporary folder and is stopped by PID.
The fixtures in ``conftest.py`` wrap these helpers; ``benchmarks/image.py`` calls them directly.

Each engine gets a bridge of its own (``--bridge``) and leaves iptables alone, so two test sessions
on one machine never fight over ``docker0``; published ports go through docker-proxy on loopback.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_DIR = REPO_ROOT / "app"
BASE_IMAGE_TAG = "local/python-base"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BASE_TARBALL = f"python-base-{DEBIAN_SUITE}-minbase.tar"
# Left out of the base tarball: package caches and documentation nobody reads in a container.
ROOTFS_EXCLUDES = (
    "./var/cache/apt/archives/*.deb",
    "./var/lib/apt/lists/*",
    "./usr/share/doc/*",
    "./usr/share/man/*",
    "./usr/share/info/*",
    "./usr/share/locale/*",
    "./dev/*",
    "./proc/*",
    "./sys/*",
)
TOOLS = ("dockerd", "docker", "docker-proxy", "docker-registry", "debootstrap", "ip", "tar")


def unavailable_reason() -> str | None:
    """Why Docker-based tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "the Docker engine and debootstrap need root; this test run is not root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return (
            f"missing tools: {', '.join(missing)} (apt-get install docker.io docker-registry debootstrap "
            "iproute2; .ci/run installs them)"
        )
    return None


def on_ci() -> bool:
    """True when env CI says this is a CI run (GitHub Actions and .ci/run set CI=true)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_real_tools() -> None:
    """Skip (locally) or fail (CI) the calling test when this machine cannot run the real tools."""
    import pytest

    reason = unavailable_reason()
    if reason is None:
        return
    if on_ci():
        pytest.fail(f"CI must run the integration tests, but {reason}", pytrace=False)
    pytest.skip(reason)


def cache_dir() -> Path:
    """Where the debootstrapped base survives between runs (CI caches this folder)."""
    explicit = os.environ.get("SERVICE_LIFECYCLE_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) / "service-lifecycle" if xdg else Path("/var/cache/service-lifecycle")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure raise with its output, which is what one needs to debug CI."""
    result = subprocess.run(
        list(args),
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Status code of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (urllib.error.URLError, OSError):
        return None


def _stop_pid(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _unmount_below(root: Path) -> None:
    """Lazy-unmount whatever a killed engine left mounted under ``root`` (deepest first)."""
    prefix = str(root) + "/"
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


# ---- Docker engine ---------------------------------------------------------------------------------


@dataclass
class DockerEngine:
    root: Path
    host: str
    bridge: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["docker", *args], env=self.env, timeout=timeout, check=check)


def _pick_subnet() -> ipaddress.IPv4Network:
    used = run(["ip", "-4", "-o", "addr", "show"]).stdout
    candidates = list(range(1, 255))
    random.shuffle(candidates)
    for third in candidates:
        net = ipaddress.IPv4Network(f"10.213.{third}.0/24")
        if f" 10.213.{third}." not in used:
            return net
    raise RuntimeError("no free 10.213.x.0/24 subnet for the test bridge")


def start_dockerd(root: Path | None = None) -> DockerEngine:
    """Start dockerd on a unix socket under ``root`` with a bridge of its own; ready when `docker info` is."""
    root = root or Path(tempfile.mkdtemp(prefix="sl-docker-"))
    root.mkdir(parents=True, exist_ok=True)
    bridge = f"slbr{os.getpid() % 100000}"
    net = _pick_subnet()
    run(["ip", "link", "add", "name", bridge, "type", "bridge"])
    run(["ip", "addr", "add", f"{net.network_address + 1}/{net.prefixlen}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])
    sock = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        [
            "dockerd",
            "--host", f"unix://{sock}",
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"),
            "--bridge", bridge,
            "--iptables=false",
            "--ip-masq=false",
            "--insecure-registry", "127.0.0.0/8",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0"}
    engine = DockerEngine(root=root, host=f"unix://{sock}", bridge=bridge, proc=proc, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stop_dockerd(engine)
            raise RuntimeError(f"dockerd exited {proc.returncode}:\n{(root / 'dockerd.log').read_text()[-3000:]}")
        if sock.exists() and engine.docker("info", check=False, timeout=10).returncode == 0:
            return engine
        time.sleep(0.2)
    stop_dockerd(engine)
    raise RuntimeError(f"dockerd not ready after 30 s:\n{(root / 'dockerd.log').read_text()[-3000:]}")


def stop_dockerd(engine: DockerEngine, remove: bool = True) -> None:
    """Stop by PID (containers go with it), unmount leftovers, delete the bridge and the data."""
    if engine.proc.poll() is None and (engine.root / "docker.sock").exists():
        ids = engine.docker("ps", "-aq", check=False, timeout=30).stdout.split()
        if ids:
            engine.docker("rm", "-f", *ids, check=False, timeout=60)
    _stop_pid(engine.proc, timeout=30)
    _unmount_below(engine.root)
    subprocess.run(["ip", "link", "delete", engine.bridge], check=False, capture_output=True)
    if remove:
        shutil.rmtree(engine.root, ignore_errors=True)


# ---- OCI registry ----------------------------------------------------------------------------------


@dataclass
class OciRegistry:
    url: str
    host: str
    config_path: Path
    root: Path
    proc: subprocess.Popen[bytes]

    def garbage_collect(self) -> str:
        return run(["docker-registry", "garbage-collect", str(self.config_path)], timeout=120).stdout


def start_registry(root: Path | None = None, *, delete_enabled: bool = True) -> OciRegistry:
    """docker-registry on a free 127.0.0.1 port, filesystem storage under ``root``, delete enabled."""
    root = root or Path(tempfile.mkdtemp(prefix="sl-registry-"))
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": delete_enabled}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    config_path = root / "config.yml"
    config_path.write_text(json.dumps(config))  # JSON is YAML
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    registry = OciRegistry(
        url=f"http://127.0.0.1:{port}",
        host=f"127.0.0.1:{port}",
        config_path=config_path,
        root=root,
        proc=proc,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited {proc.returncode}:\n{(root / 'registry.log').read_text()}")
        if http_status(f"{registry.url}/v2/", timeout=1) == 200:
            return registry
        time.sleep(0.1)
    stop_registry(registry)
    raise RuntimeError(f"docker-registry not answering /v2/ after 20 s:\n{(root / 'registry.log').read_text()}")


def stop_registry(registry: OciRegistry, remove: bool = True) -> None:
    _stop_pid(registry.proc, timeout=10)
    if remove:
        shutil.rmtree(registry.root, ignore_errors=True)


# ---- base image ------------------------------------------------------------------------------------


def ensure_base_tarball(cache: Path | None = None) -> Path:
    """A debootstrapped Debian minbase root with python3, as a tarball; built once, then reused.

    A file lock keeps two sessions from debootstrapping at once; the tarball appears atomically.
    """
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / BASE_TARBALL
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
        try:
            mirror = os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR)
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=python3",
                    DEBIAN_SUITE,
                    str(work / "root"),
                    mirror,
                ],
                timeout=900,
            )
            partial = work / "rootfs.tar"
            excludes = [f"--exclude={pattern}" for pattern in ROOTFS_EXCLUDES]
            run(
                ["tar", "-C", str(work / "root"), "--numeric-owner", *excludes, "-cf", str(partial), "."],
                timeout=300,
            )
            partial.replace(tarball)
        finally:
            _unmount_below(work)  # debootstrap may leave /proc mounted when it fails midway
            shutil.rmtree(work, ignore_errors=True)
    return tarball


def import_base_image(engine: DockerEngine, tarball: Path, tag: str = BASE_IMAGE_TAG) -> str:
    """`docker import` the base rootfs; returns the tag."""
    engine.docker("import", "--change", 'CMD ["python3"]', str(tarball), tag, timeout=300)
    return tag


# ---- the app image -----------------------------------------------------------------------------------


def build_app_image(
    engine: DockerEngine,
    tag: str,
    *,
    base_image: str = BASE_IMAGE_TAG,
    revision: str = "integration",
    version: str = "0.0.0-test",
    source: str = "https://example.invalid/service-lifecycle",
    context: Path = APP_DIR,
    no_cache: bool = False,
    cache_from: str | None = None,
) -> str:
    """Build app/ exactly as the Dockerfile says, with the local base; returns the image ID.

    ``--quiet`` prints only the ID, so no second call is needed to read it.
    """
    args = [
        "build",
        "--quiet",
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--build-arg", f"REVISION={revision}",
        "--build-arg", f"VERSION={version}",
        "--build-arg", f"SOURCE={source}",
        "--tag", tag,
    ]  # fmt: skip
    if no_cache:
        args.append("--no-cache")
    if cache_from is not None:  # what pulumi-docker's cache_from does: pull it, then build against it
        args += ["--cache-from", cache_from]
    return engine.docker(*args, str(context), timeout=600).stdout.strip()


@dataclass
class AppContainer:
    engine: DockerEngine
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        result = self.engine.docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def inspect(self) -> dict[str, object]:
        data = json.loads(self.engine.docker("inspect", self.name).stdout)
        return dict(data[0])

    def remove(self) -> None:
        self.engine.docker("rm", "-f", self.name, check=False, timeout=60)


def run_app(
    engine: DockerEngine,
    image: str,
    *,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    ready_timeout: float = 20,
) -> AppContainer:
    """Run the image the way production does (read-only, /tmp tmpfs, UID 10001) and wait for /healthz."""
    port = free_port()
    name = name or f"sl-app-{port}"
    env_args = [arg for key, value in (env or {}).items() for arg in ("--env", f"{key}={value}")]
    engine.docker(
        "run", "--detach", "--name", name,
        "--publish", f"127.0.0.1:{port}:8080",
        "--read-only", "--tmpfs", "/tmp",
        "--user", "10001",
        *env_args,
        image,
    )  # fmt: skip
    container = AppContainer(engine=engine, name=name, port=port)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if http_status(f"{container.url}/healthz", timeout=1) == 200:
            return container
        state = engine.docker("inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip()
        if state == "false":
            break
        time.sleep(0.05)
    logs = container.logs()
    with contextlib.suppress(Exception):
        container.remove()
    raise RuntimeError(f"container {name} did not answer /healthz within {ready_timeout} s; logs:\n{logs}")

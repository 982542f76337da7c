"""The app image on the real Docker engine: metadata, read-only non-root run, drain on SIGTERM, push."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dockerenv
import pytest

from components.image import CACHE_TAG, content_tag

MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def _get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_image_metadata(docker_engine: dockerenv.DockerEngine, app_image: Any) -> None:
    info = json.loads(docker_engine.docker("image", "inspect", app_image.tag).stdout)[0]
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert config["Labels"] == {
        "org.opencontainers.image.source": "https://example.invalid/service-lifecycle",
        "org.opencontainers.image.revision": app_image.revision,
        "org.opencontainers.image.version": app_image.version,
        "org.opencontainers.image.title": "sample-service",
    }
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert (env["APP_VERSION"], env["GIT_REVISION"]) == (app_image.version, app_image.revision)
    assert config["Cmd"] == ["python3", "/app/server.py"]
    # The code is the last layer: a code-only patch leaves every layer below it cached.
    history = docker_engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", app_image.tag)
    assert "COPY file:" in history.stdout.splitlines()[0] and "/app/server.py" in history.stdout.splitlines()[0]


def test_runs_read_only_as_uid_10001_and_serves_the_contract(
    docker_engine: dockerenv.DockerEngine, app_image: Any, run_app_container: Any
) -> None:
    app = run_app_container({"SERVICE_NAME": "shop"})
    state = app.inspect()
    assert state["HostConfig"]["ReadonlyRootfs"] is True  # type: ignore[index]

    status, body = _get(app.url + "/")
    assert status == 200
    assert json.loads(body) == {
        "service": "shop",
        "version": app_image.version,
        "revision": app_image.revision,
    }
    assert _get(app.url + "/healthz") == (200, b"ok\n")
    assert _get(app.url + "/readyz")[0] == 200
    status, body = _get(app.url + "/metrics")
    text = body.decode()
    assert status == 200
    assert f'app_build_info{{service="shop",version="{app_image.version}",revision="{app_image.revision}"}} 1' in text
    assert 'http_requests_total{method="GET",route="/healthz",code="200"}' in text
    assert "app_ready 1" in text

    probe = (
        "import os\n"
        "print(os.getuid())\n"
        "open('/tmp/ok', 'w').write('x')\n"
        "try:\n"
        "    open('/app/x', 'w')\n"
        "except OSError as e:\n"
        "    print('readonly', e.errno)\n"
    )
    out = docker_engine.docker("exec", app.name, "python3", "-c", probe).stdout.split()
    assert out == ["10001", "readonly", "30"]  # EROFS

    lines = [json.loads(line) for line in app.logs().splitlines() if line.startswith("{")]
    assert any(rec["event"] == "request" and rec["route"] == "/metrics" for rec in lines)


def test_sigterm_drains_in_the_container(docker_engine: dockerenv.DockerEngine, run_app_container: Any) -> None:
    app = run_app_container({"ENABLE_TEST_DELAY": "1", "DRAIN_SECONDS": "1", "SHUTDOWN_GRACE_SECONDS": "6"})
    slow: dict[str, Any] = {}

    def slow_request() -> None:
        slow["result"] = _get(app.url + "/?delay=3", timeout=20)

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.4)
    sent = time.monotonic()
    docker_engine.docker("kill", "--signal", "TERM", app.name)
    deadline = time.monotonic() + 2
    while _get(app.url + "/readyz")[0] != 503:
        assert time.monotonic() < deadline, "readiness did not drop after SIGTERM"
        time.sleep(0.05)
    assert _get(app.url + "/healthz")[0] == 200  # still live while draining
    thread.join(timeout=20)
    assert slow["result"][0] == 200
    code = docker_engine.docker("wait", app.name, timeout=30).stdout.strip()
    assert code == "0"
    assert time.monotonic() - sent < 1 + 6
    events = [json.loads(line)["event"] for line in app.logs().splitlines() if line.startswith("{")]
    assert events[-1] == "stopped"
    assert events.index("shutdown_started") < events.index("drained") < events.index("stopped")


@pytest.fixture(scope="module")
def pushed(
    docker_engine: dockerenv.DockerEngine, oci_registry: dockerenv.OciRegistry, app_image: Any
) -> tuple[str, str]:
    repo = f"{oci_registry.host}/sample-service"
    docker_engine.docker("tag", app_image.tag, f"{repo}:{app_image.revision}")
    docker_engine.docker("push", f"{repo}:{app_image.revision}", timeout=300)
    repo_digest = json.loads(docker_engine.docker("image", "inspect", app_image.tag).stdout)[0]["RepoDigests"]
    ref = next(d for d in repo_digest if d.startswith(repo + "@"))
    return repo, ref


def test_push_and_resolve_digest(oci_registry: dockerenv.OciRegistry, pushed: tuple[str, str], app_image: Any) -> None:
    _, ref = pushed
    digest = ref.split("@", 1)[1]
    assert digest.startswith("sha256:") and len(digest) == 71
    req = urllib.request.Request(
        f"{oci_registry.url}/v2/sample-service/manifests/{app_image.revision}",
        method="HEAD",
        headers={"Accept": MANIFEST_TYPES},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Docker-Content-Digest"] == digest
    status, _ = _get(f"{oci_registry.url}/v2/sample-service/manifests/{digest}")
    assert status == 200


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_tools_fail_on_ci_and_skip_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(dockerenv.shutil, "which", lambda tool: None if tool == "dockerd" else f"/usr/bin/{tool}")
    with pytest.raises(outcome, match="missing tools: dockerd"):
        dockerenv.require_real_tools()


def test_a_cold_runner_builds_a_code_patch_from_the_registry_cache(
    docker_engine: dockerenv.DockerEngine, oci_registry: dockerenv.OciRegistry, base_image: str, tmp_path: Path
) -> None:
    """What ContainerImage asks of the engine (components/image.py): the image is pushed under its content
    tag and re-tagged ``buildcache``; a runner that has nothing but the base pulls ``buildcache`` and
    builds with ``--cache-from`` (pulumi-docker ``provider/image.go`` pulls ``cacheFrom`` images before
    the build), so a code-only patch rebuilds only the layers after the code changed."""
    context = tmp_path / "app"
    shutil.copytree(dockerenv.APP_DIR, context)
    repo = f"{oci_registry.host}/cache-check"
    args = {"VERSION": "1.0.0", "SOURCE": "https://example.invalid/s", "BASE_IMAGE": base_image}

    def tag() -> str:
        return content_tag(context=context, dockerfile=context / "Dockerfile", build_args=args, platform="linux/amd64")

    def forget() -> None:
        images = docker_engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        docker_engine.docker("rmi", "-f", *[i for i in images if i.startswith(repo) and not i.endswith(":<none>")])
        docker_engine.docker("image", "prune", "-f")

    first = tag()
    dockerenv.build_app_image(docker_engine, f"{repo}:{first}", base_image=base_image, revision=first,
                              version="1.0.0", source=args["SOURCE"], context=context, no_cache=True)  # fmt: skip
    docker_engine.docker("tag", f"{repo}:{first}", f"{repo}:{CACHE_TAG}")
    for pushed_tag in (first, CACHE_TAG):
        docker_engine.docker("push", f"{repo}:{pushed_tag}", timeout=300)
    assert _get(f"{oci_registry.url}/v2/cache-check/manifests/{first}")[0] == 200

    forget()
    (context / "server.py").write_text((context / "server.py").read_text() + "\n# patch\n")
    second = tag()
    assert second != first
    docker_engine.docker("pull", f"{repo}:{CACHE_TAG}", timeout=300)
    build = docker_engine.docker(
        "build", "--build-arg", f"BASE_IMAGE={base_image}", "--build-arg", f"REVISION={second}",
        "--build-arg", "VERSION=1.0.0", "--build-arg", f"SOURCE={args['SOURCE']}",
        "--cache-from", f"{repo}:{CACHE_TAG}", "--tag", f"{repo}:{second}", str(context), timeout=600,
    )  # fmt: skip
    # Both stages' dependency steps came from the pulled cache, on an engine that had no layer of them.
    assert build.stdout.count("Using cache") >= 5, build.stdout
    labels = json.loads(docker_engine.docker("image", "inspect", f"{repo}:{second}").stdout)[0]["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == second  # the app reports its content tag

"""Session fixtures for tests that need the real Docker engine, an OCI registry and the app image.

Reuse them from any test under tests/integration:

- ``docker_engine``: a private dockerd (unix socket under a temp dir); DOCKER_HOST points at it for
  the session. ``docker_engine.docker("ps")`` runs the CLI against it.
- ``oci_registry``: docker-registry on a free 127.0.0.1 port with delete enabled
  (``.url``, ``.host``, ``.config_path``, ``.garbage_collect()``).
- ``base_image``: ``local/python-base``, Debian bookworm minbase + python3 made with debootstrap,
  cached as a tarball under ``$SERVICE_LIFECYCLE_CACHE`` / ``$XDG_CACHE_HOME/service-lifecycle`` /
  ``/var/cache/service-lifecycle`` (first run about 40 s, then about 2 s).
- ``app_image``: app/ built on that base; ``.tag``, ``.image_id``, ``.revision``, ``.version``.
- ``run_app_container(env=None)``: runs the app image read-only as UID 10001 with /tmp on tmpfs,
  published on a free loopback port, waits for /healthz; removed after the test.

Without root or without the tools these tests skip, except under CI (env CI set), where they fail:
CI must run them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import dockerenv
import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything in this folder talks to real tools: mark it so `-m "not integration"` works.
    for item in items:
        if "tests/integration/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[dockerenv.DockerEngine]:
    dockerenv.require_real_tools()
    engine = dockerenv.start_dockerd()
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = engine.host
    try:
        yield engine
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        dockerenv.stop_dockerd(engine)


@pytest.fixture(scope="session")
def oci_registry() -> Iterator[dockerenv.OciRegistry]:
    dockerenv.require_real_tools()
    registry = dockerenv.start_registry()
    try:
        yield registry
    finally:
        dockerenv.stop_registry(registry)


@pytest.fixture(scope="session")
def base_image(docker_engine: dockerenv.DockerEngine) -> str:
    return dockerenv.import_base_image(docker_engine, dockerenv.ensure_base_tarball())


@dataclass(frozen=True)
class AppImage:
    tag: str
    image_id: str
    revision: str
    version: str


@pytest.fixture(scope="session")
def app_image(docker_engine: dockerenv.DockerEngine, base_image: str) -> AppImage:
    tag, revision, version = "local/sample-service:integration", "0123456789abcdef", "1.2.3-test"
    image_id = dockerenv.build_app_image(docker_engine, tag, base_image=base_image, revision=revision, version=version)
    return AppImage(tag=tag, image_id=image_id, revision=revision, version=version)


RunApp = Callable[..., dockerenv.AppContainer]


@pytest.fixture
def run_app_container(docker_engine: dockerenv.DockerEngine, app_image: AppImage) -> Iterator[RunApp]:
    started: list[dockerenv.AppContainer] = []

    def start(env: Mapping[str, str] | None = None, image: str | None = None) -> dockerenv.AppContainer:
        container = dockerenv.run_app(docker_engine, image or app_image.tag, env=env)
        started.append(container)
        return container

    yield start
    for container in started:
        container.remove()

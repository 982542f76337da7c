"""Image benchmark: cold build, build from the registry cache, and an unchanged context, side by side.

The three ways a deploy meets the image (components/image.py):

- cold: an ephemeral runner with nothing cached, ``--no-cache``;
- cached: a cold runner after a code-only change, taking its layers from ``<repo>:buildcache`` in the
  registry (pull + ``--cache-from``, what pulumi-docker's ``cache_from`` does);
- unchanged: a commit that leaves the build context alone. Its content tag (``ctx-<sha256>``) already
  exists, so nothing is built: the cost is hashing the context and one registry HEAD.

Also: image size against the base and container start → ready. Needs root, dockerd, docker-registry
and debootstrap (like the integration tests); starts its own engine and registry under temp dirs and
stops them by PID. The app is built from a copy of app/, so the working tree is never touched.

    python benchmarks/image.py [--rounds 3] [--starts 3]

Targets: the cached rebuild (build alone) takes at most 50% of the cold build, the unchanged check at most 5%
of a cold build with its pushes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

import dockerenv  # lives with the integration fixtures it shares

from components.image import CACHE_TAG, content_tag

CACHED_TARGET = 0.50
UNCHANGED_TARGET = 0.05
VERSION = "1.0.0"
SOURCE = "https://example.invalid/service-lifecycle"
MANIFEST_TYPES = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"


def _size(engine: dockerenv.DockerEngine, image: str) -> int:
    return int(json.loads(engine.docker("image", "inspect", image).stdout)[0]["Size"])


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _tag_exists(registry: dockerenv.OciRegistry, name: str, tag: str) -> bool:
    request = urllib.request.Request(
        f"{registry.url}/v2/{name}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError:
        return False


class Runner:
    """One engine and one registry; each build starts from an engine that holds only the base image."""

    def __init__(self, engine: dockerenv.DockerEngine, registry: dockerenv.OciRegistry, base: str, context: Path):
        self.engine, self.registry, self.base, self.context = engine, registry, base, context
        self.name = "bench/app"
        self.repo = f"{registry.host}/{self.name}"

    def tag(self) -> str:
        args = {"VERSION": VERSION, "SOURCE": SOURCE, "BASE_IMAGE": self.base}
        return content_tag(
            context=self.context, dockerfile=self.context / "Dockerfile", build_args=args, platform="linux/amd64"
        )

    def forget(self) -> None:
        """Back to a cold runner: every image but the base goes (with it the legacy builder's cache)."""
        images = self.engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        mine = [i for i in images if i.startswith(self.repo) and not i.endswith(":<none>")]
        if mine:
            self.engine.docker("rmi", "-f", *mine)
        self.engine.docker("image", "prune", "-f")

    def build(self, tag: str, *, cache: bool) -> tuple[float, float]:
        """Build (with the cache pull) and push; returns (seconds to the built image, seconds of the pushes)."""
        image = f"{self.repo}:{tag}"
        started = time.perf_counter()
        if cache:
            self.engine.docker("pull", f"{self.repo}:{CACHE_TAG}", timeout=300)
        dockerenv.build_app_image(
            self.engine, image, base_image=self.base, revision=tag, version=VERSION, source=SOURCE,
            context=self.context, no_cache=not cache, cache_from=f"{self.repo}:{CACHE_TAG}" if cache else None,
        )  # fmt: skip
        built = time.perf_counter()
        self.engine.docker("push", image, timeout=300)
        self.engine.docker("tag", image, f"{self.repo}:{CACHE_TAG}")
        self.engine.docker("push", f"{self.repo}:{CACHE_TAG}", timeout=300)
        return built - started, time.perf_counter() - built

    def unchanged(self) -> None:
        if not _tag_exists(self.registry, self.name, self.tag()):
            raise RuntimeError("the content tag should exist: nothing changed since the last build")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds (median reported); default 3")
    parser.add_argument("--starts", type=int, default=3, help="container starts (median reported); default 3")
    opts = parser.parse_args()

    reason = dockerenv.unavailable_reason()
    if reason:
        print(f"cannot run the image benchmark: {reason}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    tarball = dockerenv.ensure_base_tarball()
    base_seconds = time.perf_counter() - t0
    engine = dockerenv.start_dockerd()
    registry = dockerenv.start_registry()
    work = Path(tempfile.mkdtemp(prefix="sl-bench-"))
    try:
        base = dockerenv.import_base_image(engine, tarball)
        context = work / "app"
        shutil.copytree(dockerenv.APP_DIR, context)
        server = context / "server.py"
        runner = Runner(engine, registry, base, context)

        cold: list[float] = []
        cached: list[float] = []
        unchanged: list[float] = []
        cold_build: list[float] = []
        cached_build: list[float] = []
        for round_no in range(opts.rounds):
            runner.forget()
            build_s, push_s = runner.build(runner.tag(), cache=False)
            cold_build.append(build_s)
            cold.append(build_s + push_s)
            # A code-only patch on a fresh runner: layers come from <repo>:buildcache.
            server.write_text(server.read_text() + f"\n# patch {round_no}\n")
            runner.forget()
            build_s, push_s = runner.build(runner.tag(), cache=True)
            cached_build.append(build_s)
            cached.append(build_s + push_s)
            # The next commit leaves app/ alone: hash the context, find the tag, build nothing.
            unchanged.append(_timed(runner.unchanged))

        latest = f"{runner.repo}:{runner.tag()}"
        ready: list[float] = []
        for _ in range(opts.starts):
            started = time.perf_counter()
            container = dockerenv.run_app(engine, latest, ready_timeout=30)
            ready.append(time.perf_counter() - started)
            container.remove()

        base_size, app_size = _size(engine, base), _size(engine, latest)
        cold_s, cached_s, unchanged_s = (statistics.median(x) for x in (cold, cached, unchanged))
        mib = 1024 * 1024
        print(f"base image (debootstrap bookworm minbase + python3): {base_size / mib:.1f} MiB")
        print(f"app image: {app_size / mib:.1f} MiB (+{(app_size - base_size) / 1024:.1f} KiB over the base)")
        print(f"base tarball ready in {base_seconds:.1f} s (cached: {tarball})")
        print(f"median of {opts.rounds} rounds, each including its pushes (image and {CACHE_TAG}):")
        print(
            f"  {'cold (no cache)':<40} {'cached (registry cache_from)':<40} {'unchanged (tag exists: no build)':<40}"
        )
        print(f"  {cold_s:<40.2f} {cached_s:<40.2f} {unchanged_s:<40.3f}")
        print(f"  runs: {_fmt(cold):<34} runs: {_fmt(cached):<34} runs: {_fmt(unchanged, 3)}")
        cold_b, cached_b = statistics.median(cold_build), statistics.median(cached_build)
        print(f"  build alone (cached: with its pull of {CACHE_TAG}):")
        print(f"  {cold_b:<40.2f} {cached_b:<40.2f} {'-':<40}")
        cached_ok, unchanged_ok = cached_b / cold_b <= CACHED_TARGET, unchanged_s / cold_s <= UNCHANGED_TARGET
        verdict = "meets" if cached_ok else "MISSES"
        print(
            f"cached / cold, build alone = {cached_b / cold_b:.0%} ({verdict} at most {CACHED_TARGET:.0%});"
            f" with the pushes {cached_s / cold_s:.0%}"
        )
        print(
            f"unchanged / cold = {unchanged_s / cold_s:.1%} "
            f"({'meets' if unchanged_ok else 'MISSES'} at most {UNCHANGED_TARGET:.0%})"
        )
        print(
            f"container start -> /healthz 200 (docker run, read-only, UID 10001), median of {opts.starts}: "
            f"{statistics.median(ready):.2f} s  runs: {_fmt(ready)}"
        )
        return 0 if cached_ok and unchanged_ok else 1
    finally:
        dockerenv.stop_dockerd(engine)
        dockerenv.stop_registry(registry)
        shutil.rmtree(work, ignore_errors=True)


def _fmt(values: list[float], digits: int = 2) -> str:
    return ", ".join(f"{v:.{digits}f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())

"""Image benchmark: size against the base, cold build against a code-only rebuild, container start → ready.

Needs root, dockerd, docker-registry and debootstrap (like the integration tests); starts its own
engine under a temp dir and stops it by PID. The app is built from a copy of app/, so the
code-only change never touches the working tree.

    python benchmarks/image.py [--rounds 5] [--starts 5]

Target (issue 3): the rebuild after a code-only change takes at most 20% of the cold build.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

import dockerenv  # lives with the integration fixtures it shares

REBUILD_TARGET = 0.20


def _size(engine: dockerenv.DockerEngine, image: str) -> int:
    return int(json.loads(engine.docker("image", "inspect", image).stdout)[0]["Size"])


def _timed(fn: Callable[..., object], *args: object, **kwargs: object) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="build rounds (median reported); default 5")
    parser.add_argument("--starts", type=int, default=5, help="container starts (median reported); default 5")
    opts = parser.parse_args()

    reason = dockerenv.unavailable_reason()
    if reason:
        print(f"cannot run the image benchmark: {reason}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    tarball = dockerenv.ensure_base_tarball()
    base_seconds = time.perf_counter() - t0
    engine = dockerenv.start_dockerd()
    work = Path(tempfile.mkdtemp(prefix="sl-bench-"))
    try:
        base = dockerenv.import_base_image(engine, tarball)
        context = work / "app"
        shutil.copytree(dockerenv.APP_DIR, context)
        server = context / "server.py"

        cold: list[float] = []
        rebuild: list[float] = []
        for round_no in range(opts.rounds):
            # Cold: no build cache at all (the base image is local, as in CI after its cache restore).
            cold.append(
                _timed(
                    dockerenv.build_app_image, engine, "bench/app:cold", base_image=base, context=context,
                    revision=f"{round_no:07x}", no_cache=True,
                )
            )  # fmt: skip
            # Code-only patch: a new revision and a changed server.py; everything below stays cached.
            server.write_text(server.read_text() + f"\n# patch {round_no}\n")
            rebuild.append(
                _timed(
                    dockerenv.build_app_image, engine, "bench/app:patch", base_image=base, context=context,
                    revision=f"{round_no + 100:07x}",
                )
            )  # fmt: skip

        ready: list[float] = []
        for _ in range(opts.starts):
            started = time.perf_counter()
            container = dockerenv.run_app(engine, "bench/app:patch", ready_timeout=30)
            ready.append(time.perf_counter() - started)
            container.remove()

        base_size, app_size = _size(engine, base), _size(engine, "bench/app:patch")
        cold_s, rebuild_s = statistics.median(cold), statistics.median(rebuild)
        ratio = rebuild_s / cold_s
        mib = 1024 * 1024
        print(f"base image (debootstrap bookworm minbase + python3): {base_size / mib:.1f} MiB")
        print(f"app image: {app_size / mib:.1f} MiB (+{(app_size - base_size) / 1024:.1f} KiB over the base)")
        print(f"base tarball ready in {base_seconds:.1f} s (cached: {tarball})")
        print(f"cold build (no cache), median of {opts.rounds}: {cold_s:.2f} s  runs: {_fmt(cold)}")
        print(f"rebuild after a code-only change, median of {opts.rounds}: {rebuild_s:.2f} s  runs: {_fmt(rebuild)}")
        verdict = "meets" if ratio <= REBUILD_TARGET else "MISSES"
        print(f"rebuild / cold = {ratio:.0%} ({verdict} the target of at most {REBUILD_TARGET:.0%})")
        print(
            f"container start -> /healthz 200 (docker run, read-only, UID 10001), median of {opts.starts}: "
            f"{statistics.median(ready):.2f} s  runs: {_fmt(ready)}"
        )
        return 0 if ratio <= REBUILD_TARGET else 1
    finally:
        dockerenv.stop_dockerd(engine)
        shutil.rmtree(work, ignore_errors=True)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())

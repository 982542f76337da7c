"""Stand-in for the pulumi-docker provider (5.x), run by the real Pulumi CLI.

pulumi-docker bridges a patched terraform-provider-docker and adds its own ``Image`` resource; its
provider module is not served by the Go module proxy, so it cannot be built here (docs/engine.md,
"Gaps"). This stand-in does what the real provider does for the three resources the program uses,
with the real Docker engine and registry, through the ``docker`` CLI:

- ``docker:index/image:Image``: ``docker build`` (context, Dockerfile, platform, build arguments),
  ``docker push`` with the registry credentials, and the pushed ``repo@sha256:…`` as ``repoDigest``;
  a delete removes the local image only, as the real provider does (the registry's images are the
  sunset's, by retention);
- ``docker:index/tag:Tag`` and ``docker:index/registryImage:RegistryImage`` (the build cache).

Credentials go to ``docker login --password-stdin`` in a throwaway DOCKER_CONFIG: never on a command
line, never kept after the call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.standin.provider import Kind, Package, Props, ProviderError, serve

VERSION = "5.2.0"


def _docker(*args: str, config_dir: str | None = None, stdin: str | None = None, timeout: int = 900) -> str:
    env = dict(os.environ)
    if config_dir is not None:
        env["DOCKER_CONFIG"] = config_dir
    done = subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ProviderError(f"docker {args[0]} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def _login(registry: Props | None, config_dir: str) -> None:
    if not registry or not registry.get("server"):
        return
    username, password = registry.get("username"), registry.get("password")
    if username and password:
        _docker(
            "login", registry["server"], "--username", username, "--password-stdin",
            config_dir=config_dir, stdin=password,
        )  # fmt: skip


def _repo_digest(image_name: str, config_dir: str) -> str:
    repository = image_name.rsplit(":", 1)[0] if ":" in image_name.rsplit("/", 1)[-1] else image_name
    digests = json.loads(_docker("inspect", "--format", "{{json .RepoDigests}}", image_name, config_dir=config_dir))
    for digest in digests or []:
        if digest.startswith(repository + "@sha256:"):
            return str(digest)
    raise ProviderError(f"{image_name} was pushed but the engine reports no digest in {repository}")


def _path(value: str) -> str:
    return str(Path(value)) if os.path.isabs(value) else str(Path.cwd() / value)


def _build_and_push(inputs: Props) -> Props:
    build: dict[str, Any] = inputs.get("build") or {}
    image_name = inputs["imageName"]
    context = _path(build.get("context") or ".")
    if not Path(context).is_dir():
        raise ProviderError(f"build context {context!r} is not a directory")
    command = ["build", "--tag", image_name]
    if build.get("dockerfile"):
        command += ["--file", _path(build["dockerfile"])]
    if build.get("platform"):
        command += ["--platform", build["platform"]]
    if build.get("target"):
        command += ["--target", build["target"]]
    for key, value in sorted((build.get("args") or {}).items()):
        command += ["--build-arg", f"{key}={value}"]
    for image in (build.get("cacheFrom") or {}).get("images") or []:
        command += ["--cache-from", image]
    command.append(context)
    with tempfile.TemporaryDirectory(prefix="standin-docker-") as config_dir:
        _login(inputs.get("registry"), config_dir)
        _docker(*command, config_dir=config_dir)
        outputs: Props = {"imageName": image_name, "baseImageName": image_name, "context": context}
        if build.get("dockerfile"):
            outputs["dockerfile"] = _path(build["dockerfile"])
        if build.get("platform"):
            outputs["platform"] = build["platform"]
        if inputs.get("skipPush"):
            outputs["repoDigest"] = ""
            return outputs
        _docker("push", image_name, config_dir=config_dir)
        outputs["repoDigest"] = _repo_digest(image_name, config_dir)
        outputs["registryServer"] = (inputs.get("registry") or {}).get("server", "")
    return outputs


def _image_create(config: Props, inputs: Props) -> tuple[str, Props]:
    outputs = _build_and_push(inputs)
    return outputs["repoDigest"] or outputs["imageName"], outputs


def _image_update(config: Props, id_: str, olds: Props, news: Props) -> Props:
    return _build_and_push(news)


def _image_delete(config: Props, id_: str, state: Props) -> None:
    # As the real provider: the local image goes, the registry keeps what it has.
    subprocess.run(["docker", "rmi", state.get("imageName", id_)], capture_output=True, check=False, timeout=120)


def _image_check(inputs: Props) -> list[str]:
    build = inputs.get("build") or {}
    context = _path(build.get("context") or ".")
    problems = []
    if not Path(context).is_dir():
        problems.append(f"build.context {context!r} is not a directory")
    dockerfile = _path(build["dockerfile"]) if build.get("dockerfile") else str(Path(context) / "Dockerfile")
    if not Path(dockerfile).is_file():
        problems.append(f"build.dockerfile {dockerfile!r} does not exist")
    return problems


def _tag_create(config: Props, inputs: Props) -> tuple[str, Props]:
    _docker("tag", inputs["sourceImage"], inputs["targetImage"])
    image_id = _docker("inspect", "--format", "{{.Id}}", inputs["sourceImage"]).strip()
    return f"{inputs['targetImage']}-{image_id}", {"sourceImageId": image_id}


def _registry_image_create(config: Props, inputs: Props) -> tuple[str, Props]:
    with tempfile.TemporaryDirectory(prefix="standin-docker-") as config_dir:
        auth = (config.get("registryAuth") or [{}])[0] if isinstance(config.get("registryAuth"), list) else {}
        _login(
            {"server": auth.get("address"), "username": auth.get("username"), "password": auth.get("password")},
            config_dir,
        )
        _docker("push", inputs["name"], config_dir=config_dir)
        digest = _repo_digest(inputs["name"], config_dir).split("@", 1)[1]
    return f"sha256:{digest.split(':', 1)[1]}", {"sha256Digest": digest}


PACKAGE = Package(
    name="docker",
    version=VERSION,
    sdk_module="pulumi_docker",
    kinds={
        "docker:index/image:Image": Kind(
            sdk_class="Image",
            create=_image_create,
            update=_image_update,
            delete=_image_delete,
            check=_image_check,
            computed=("repoDigest", "baseImageName", "registryServer", "context", "dockerfile", "platform"),
        ),
        "docker:index/tag:Tag": Kind(sdk_class="Tag", create=_tag_create, computed=("sourceImageId",)),
        "docker:index/registryImage:RegistryImage": Kind(
            sdk_class="RegistryImage", create=_registry_image_create, computed=("sha256Digest",)
        ),
    },
)


if __name__ == "__main__":
    serve(PACKAGE)

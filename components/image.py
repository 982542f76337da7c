"""ContainerImage: build the service's image with pulumi-docker, push it, and expose it by digest.

The image is named after its content, not after a commit: the tag is ``ctx-<sha256>`` of what goes
into the build (every file of the context that ``.dockerignore`` lets through, with its path and
executable bit, the Dockerfile, the build arguments and the platform; the base image is in there
too, pinned by digest, in the Dockerfile or the ``BASE_IMAGE`` argument). A commit that changes
nothing in the build context changes none of the image's inputs, so pulumi-docker's diff finds
nothing to do (no build, no push, the same digest) and neither stack's plan changes. The git
revision is recorded by the deployment (``pulumi up --message``), never in the image.

For cold CI runners the build takes its layer cache from ``<repository>:buildcache``: every build
writes BuildKit's inline cache into the image and re-tags it there (``docker.Tag`` and
``docker.RegistryImage``), and pulumi-docker pulls ``cache_from`` images before it builds.

What leaves this component is ``image_ref``, ``<repository>@sha256:…``: the immutable reference that
staging deploys and production promotes.

Registry credentials are Pulumi secrets end to end. For an Amazon ECR repository
(``<account>.dkr.ecr.<region>.amazonaws.com/<name>``) they come from AWS through boto3
(``ecr.get_authorization_token``: whatever credentials the AWS SDK finds); for any other
registry (GHCR, Docker Hub, a private one) from a username and a token.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pulumi
import pulumi_docker as docker

from components.refs import DIGEST_REF
from components.registry.ecr import ECR_HOST, Boto3MissingError, import_boto3

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

TYPE: Final = "service-lifecycle:index:ContainerImage"

CONTENT_TAG_PREFIX: Final = "ctx-"
"""Tags made by :func:`content_tag` start with this, so a reader never takes one for a commit or a digest."""
CACHE_TAG: Final = "buildcache"
"""Tag of the registry build cache (the latest build, with BuildKit's inline cache metadata)."""
REVISION_ARG: Final = "REVISION"
"""Build argument carrying the content tag into the image (the app reports it as its ``revision``)."""
INLINE_CACHE_ARG: Final = "BUILDKIT_INLINE_CACHE"
"""BuildKit writes cache metadata into the image when this build argument is 1, so the pushed image can
serve as ``cache_from`` (the legacy builder uses a pulled image's layers without it)."""
_HASH_VERSION: Final = "service-lifecycle content v1"


class BuildContextError(pulumi.RunError, ValueError):
    """The build context is not a directory or has no Dockerfile: one line under ``pulumi up`` (a
    ``RunError``), exit 2 from the offline plan; a ``ValueError`` as it was before 0.3.0."""


class RegistryCredentialsError(pulumi.RunError):
    """Registry credentials are missing or could not be obtained."""


@dataclass(frozen=True)
class RegistryLogin:
    """Where to push and how to log in; ``password`` is always a Pulumi secret."""

    server: str
    username: pulumi.Output[str]
    password: pulumi.Output[str]


def split_repository(repository: str) -> tuple[str, str]:
    """``ghcr.io/acme/hello`` → (``ghcr.io``, ``acme/hello``)."""
    server, _, path = repository.partition("/")
    if not path or ("." not in server and ":" not in server and server != "localhost"):
        raise ValueError(
            f"image repository {repository!r} must start with a registry host, e.g. registry.example.com/team/app"
        )
    return server, path


def boto3_ecr_client(region: str) -> ECRClient:
    """boto3's ECR client for ``region``, with whatever credentials the AWS SDK finds.

    Raises :class:`RegistryCredentialsError` saying what to install when boto3 is not installed (the
    package's ``ecr`` extra): no traceback under ``pulumi up``.
    """
    try:
        boto3 = import_boto3(f"the ECR registry of region {region}")
    except Boto3MissingError as error:
        raise RegistryCredentialsError(str(error)) from None
    client: ECRClient = boto3.client("ecr", region_name=region)
    return client


ecr_client_factory: Callable[[str], Any] = boto3_ecr_client
"""Makes the ECR client for a region when none is given. The offline plan swaps in
:class:`components.testing.OfflineEcrClient`: no network and no AWS credentials there."""


def ecr_login(repository: str, *, client: ECRClient | None = None) -> RegistryLogin:
    """Log in to the ECR registry of ``repository`` with boto3; the password is wrapped as a secret.

    Raises :class:`RegistryCredentialsError` naming the registry when AWS refuses or has no
    credentials (the message never contains a credential).
    """
    server, _ = split_repository(repository)
    match = ECR_HOST.match(server)
    if match is None:
        raise ValueError(f"{repository!r} is not an Amazon ECR repository URL")
    account, region = match.group("account"), match.group("region")
    if client is None:
        client = ecr_client_factory(region)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.get_authorization_token(registryIds=[account])
        token = response["authorizationData"][0]["authorizationToken"]
    except (ClientError, BotoCoreError) as exc:
        raise RegistryCredentialsError(
            f"could not get an ECR login for {server} (account {account}, region {region}): {exc}. "
            "Give the deploying identity ecr:GetAuthorizationToken and make AWS credentials available."
        ) from None
    except (KeyError, IndexError):
        raise RegistryCredentialsError(f"ECR returned no authorization data for {server}") from None
    try:
        username, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        sep = password = ""
    if not sep or not password:
        raise RegistryCredentialsError(f"ECR authorization token for {server} is not 'user:password'")
    return RegistryLogin(
        server=server, username=pulumi.Output.from_input(username), password=pulumi.Output.secret(password)
    )


def token_login(
    repository: str, username: pulumi.Input[str] | None, password: pulumi.Input[str] | None
) -> RegistryLogin:
    """Log in with a username and token (GHCR, Docker Hub, …); the token is wrapped as a secret."""
    server, _ = split_repository(repository)
    if username is None or password is None:
        missing = " and ".join(n for n, v in (("username", username), ("password", password)) if v is None)
        raise RegistryCredentialsError(f"pushing to {server} needs a registry {missing}")
    return RegistryLogin(
        server=server,
        username=pulumi.Output.from_input(username),
        password=pulumi.Output.secret(password),
    )


def require_digest_ref(ref: str) -> str:
    """Pass ``repo@sha256:<64 hex>`` through; anything else (a tag, an empty string) is an error."""
    if not DIGEST_REF.match(ref or ""):
        raise ValueError(f"expected an image reference pinned by digest (repo@sha256:…), got {ref!r}")
    return ref


# ---------------------------------------------------------------------------------------------
# Content identity of a build


def read_dockerignore(context: Path, dockerfile: Path) -> list[str]:
    """Patterns of ``<dockerfile>.dockerignore`` if present, else of ``<context>/.dockerignore``.

    The precedence and parsing of pulumi/pulumi-docker ``provider/provider.go`` ``getIgnorePatterns``
    (which reads them with moby/patternmatcher ``ignorefile.ReadAll``): ``#`` comments and blank lines
    are skipped, each pattern is trimmed and cleaned, a leading ``/`` is dropped.
    """
    for candidate in (Path(f"{dockerfile}.dockerignore"), context / ".dockerignore"):
        if candidate.is_file():
            patterns: list[str] = []
            for line in candidate.read_text().splitlines():
                pattern = line.strip()
                if not pattern or pattern.startswith("#"):
                    continue
                negate = pattern.startswith("!")
                body = os.path.normpath(pattern[1:].strip() if negate else pattern).lstrip("/")
                patterns.append(("!" if negate else "") + body)
            return patterns
    return []


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """moby/patternmatcher ``Pattern.compile``: ``*`` and ``?`` stop at ``/``, ``**`` crosses directories."""
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                out += "(?:.*/)?"
                i += 1
            else:
                out += ".*"
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.find("]", i)
            out += pattern[i : end + 1] if end > i else re.escape(char)
            i = end if end > i else i
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(char)
        i += 1
    return re.compile(f"^{out}$")


def ignored(path: str, patterns: Sequence[str]) -> bool:
    """True when the context path ``a/b/c`` is excluded: moby/patternmatcher ``MatchesOrParentMatches``.

    Every pattern is tried in order against the path and each of its parent directories; the last
    pattern that matches decides (``!`` patterns re-include).
    """
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern[1:] if negate else pattern)
        if any(regex.match(c) for c in candidates):
            excluded = not negate
    return excluded


def _context_files(context: Path, patterns: Sequence[str]) -> Iterator[tuple[str, Path]]:
    for root, dirs, files in os.walk(context):
        dirs.sort()
        for file_name in sorted(files):
            full = Path(root) / file_name
            relative = full.relative_to(context).as_posix()
            if not ignored(relative, patterns):
                yield relative, full


def _file_entry(path: Path) -> tuple[str, str]:
    """(mode, sha256) of one file. Only the executable bit counts, as in git: umask differences between
    checkouts (0644 against 0664) must not change the identity. A symlink hashes its target path."""
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode):
        return "link", hashlib.sha256(os.readlink(path).encode()).hexdigest()
    mode = "755" if info.st_mode & 0o111 else "644"
    return mode, hashlib.sha256(path.read_bytes()).hexdigest()


def content_digest(*, context: Path, dockerfile: Path, build_args: Mapping[str, str], platform: str) -> str:
    """sha256 (hex) of everything that decides what the build produces, in a fixed order.

    The file walk mirrors pulumi-docker's own ``hashContext`` (pulumi/pulumi-docker
    ``provider/provider.go``: the Dockerfile first under a fixed name, then every file the ignore
    patterns let through with its relative path and mode), plus the build arguments and platform.
    """
    if not context.is_dir():
        raise BuildContextError(f"build context {str(context)!r} is not a directory (from {Path.cwd()})")
    if not dockerfile.is_file():
        raise BuildContextError(f"Dockerfile {str(dockerfile)!r} does not exist (from {Path.cwd()})")
    digest = hashlib.sha256(_HASH_VERSION.encode() + b"\n")

    def entry(kind: str, name: str, mode: str, value: str) -> None:
        digest.update("\0".join((kind, name, mode, value)).encode() + b"\n")

    entry("dockerfile", "Dockerfile", "", hashlib.sha256(dockerfile.read_bytes()).hexdigest())
    for relative, full in _context_files(context, read_dockerignore(context, dockerfile)):
        entry("file", relative, *_file_entry(full))
    for arg in sorted(build_args):
        entry("arg", arg, "", build_args[arg])
    entry("platform", platform, "", "")
    return digest.hexdigest()


def content_tag(*, context: Path, dockerfile: Path, build_args: Mapping[str, str], platform: str) -> str:
    """``ctx-<sha256>``: the image tag for this build's content (see :func:`content_digest`)."""
    return CONTENT_TAG_PREFIX + content_digest(
        context=context, dockerfile=dockerfile, build_args=build_args, platform=platform
    )


@dataclass(frozen=True, kw_only=True)
class ContainerImageArgs:
    """Arguments of :class:`ContainerImage`. Everything that shapes the build is a plain value: the
    content tag is computed from it before anything is registered."""

    repository: str
    """Image repository without tag or digest, e.g. ``ghcr.io/acme/hello`` or an ECR repository URL.
    Required."""
    context: str = "app"
    """Docker build context directory (relative to the program's directory). Default ``app``."""
    dockerfile: str | None = None
    """Dockerfile path. Default None: ``Dockerfile`` inside the context."""
    platform: str = "linux/amd64"
    """Target platform. Default ``linux/amd64``."""
    version: str | None = None
    """Service version, the ``VERSION`` build argument (OCI version label). Default None: not passed."""
    source: str | None = None
    """Source repository URL, the ``SOURCE`` build argument (OCI source label). Default None: not passed."""
    base_image: str | None = None
    """``BASE_IMAGE`` build argument, pinned by digest. Default None: the Dockerfile's digest-pinned base."""
    registry_cache: bool = True
    """Take the layer cache from ``<repository>:buildcache`` and refresh that tag after each build.
    Default True."""
    registry_username: pulumi.Input[str] | None = None
    """Registry user for non-ECR registries. Default None (required unless the repository is ECR)."""
    registry_password: pulumi.Input[str] | None = None
    """Registry token for non-ECR registries, made a secret here. Default None (required unless ECR)."""
    ecr_client: Any = None
    """boto3 ECR client for ECR repositories. Default None: a client for the region in the URL."""

    def build_args(self) -> dict[str, str]:
        """The build arguments that shape the image (without ``REVISION``, which is derived from them)."""
        optional = {"VERSION": self.version, "SOURCE": self.source, "BASE_IMAGE": self.base_image}
        return {k: v for k, v in optional.items() if v is not None}

    def dockerfile_path(self) -> Path:
        return Path(self.dockerfile) if self.dockerfile is not None else Path(self.context) / "Dockerfile"


class ContainerImage(pulumi.ComponentResource):
    """The service image, built from a Dockerfile, pushed under its content tag, and referenced by digest."""

    image_ref: pulumi.Output[str]
    """``<repository>@sha256:…``: the immutable reference to deploy (never a tag)."""
    image_name: pulumi.Output[str]
    """``<repository>:ctx-<sha256>``: the content tag that was pushed, for people, not for deployments."""
    content_tag: str
    """``ctx-<sha256>`` of the build's content; the same for every commit that leaves the context alone."""

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Checked before anything is registered: a bad context or missing credentials stop the program.
        server, _ = split_repository(args.repository)
        build_args = args.build_args()
        tag = content_tag(
            context=Path(args.context), dockerfile=args.dockerfile_path(), build_args=build_args,
            platform=args.platform,
        )  # fmt: skip
        if ECR_HOST.match(server):
            login = ecr_login(args.repository, client=args.ecr_client)
        else:
            login = token_login(args.repository, args.registry_username, args.registry_password)
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.content_tag = tag
        cache_ref = f"{args.repository}:{CACHE_TAG}"

        image = docker.Image(
            f"{name}-image",
            image_name=f"{args.repository}:{tag}",
            build=docker.DockerBuildArgs(
                context=args.context,
                dockerfile=args.dockerfile,
                platform=args.platform,
                args={**build_args, REVISION_ARG: tag, INLINE_CACHE_ARG: "1"},
                cache_from=docker.CacheFromArgs(images=[cache_ref]) if args.registry_cache else None,
            ),
            registry=docker.RegistryArgs(server=login.server, username=login.username, password=login.password),
            skip_push=False,
            opts=child,
        )
        if args.registry_cache:
            self._refresh_cache(name, image, cache_ref, login)
        self.image_ref = image.repo_digest.apply(require_digest_ref)
        self.image_name = image.image_name
        self.register_outputs(
            {"image_ref": self.image_ref, "image_name": self.image_name, "content_tag": self.content_tag}
        )

    def _refresh_cache(self, name: str, image: docker.Image, cache_ref: str, login: RegistryLogin) -> None:
        """Point ``<repository>:buildcache`` at the image just built, so the next cold runner starts warm.

        Its inputs change only when the image does (``triggers`` on the digest), so an unchanged
        context leaves it alone too. ``keep_remotely``: the sunset's retention rule decides what
        the registry keeps, not a destroy.
        """
        child = pulumi.ResourceOptions(parent=self)
        local = docker.Tag(
            f"{name}-cache-tag",
            source_image=image.image_name,
            target_image=cache_ref,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[image])),
        )
        docker.RegistryImage(
            f"{name}-cache-push",
            name=local.target_image,
            keep_remotely=True,
            triggers={"digest": image.repo_digest},
            auth_config=docker.RegistryImageAuthConfigArgs(
                address=login.server, username=login.username, password=login.password
            ),
            opts=child,
        )

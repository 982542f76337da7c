"""ContainerImage: build the service's image with pulumi-docker, push it, and expose it by digest.

The image is tagged with the git revision, but what leaves this component is ``image_ref``,
``<repository>@sha256:…``: the immutable reference that staging deploys and production promotes.

Registry credentials are Pulumi secrets end to end. For an Amazon ECR repository
(``<account>.dkr.ecr.<region>.amazonaws.com/<name>``) they come from AWS through boto3
(``ecr.get_authorization_token``: whatever credentials the AWS SDK finds); for any other
registry (GHCR, Docker Hub, a private one) from a username and a token.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pulumi
import pulumi_docker as docker

from components.refs import DIGEST_REF
from components.registry import ECR_HOST

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

TYPE: Final = "service-lifecycle:index:ContainerImage"


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
        raise ValueError(f"image repository {repository!r} must start with a registry host, e.g. ghcr.io/acme/hello")
    return server, path


def boto3_ecr_client(region: str) -> ECRClient:
    """boto3's ECR client for ``region``, with whatever credentials the AWS SDK finds."""
    import boto3

    return boto3.client("ecr", region_name=region)


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


@dataclass(frozen=True, kw_only=True)
class ContainerImageArgs:
    """Arguments of :class:`ContainerImage`."""

    repository: str
    """Image repository without tag or digest, e.g. ``ghcr.io/acme/hello`` or an ECR repository URL.
    Required."""
    revision: str
    """Git revision: the image tag and the ``REVISION`` build argument (OCI revision label). Required."""
    context: pulumi.Input[str] = "app"
    """Docker build context directory. Default ``app``."""
    dockerfile: pulumi.Input[str] | None = None
    """Dockerfile path. Default None: ``Dockerfile`` inside the context."""
    platform: pulumi.Input[str] = "linux/amd64"
    """Target platform. Default ``linux/amd64``."""
    version: pulumi.Input[str] | None = None
    """Service version, the ``VERSION`` build argument (OCI version label). Default None: not passed."""
    source: pulumi.Input[str] | None = None
    """Source repository URL, the ``SOURCE`` build argument (OCI source label). Default None: not passed."""
    base_image: pulumi.Input[str] | None = None
    """``BASE_IMAGE`` build argument. Default None: the Dockerfile's digest-pinned base."""
    registry_username: pulumi.Input[str] | None = None
    """Registry user for non-ECR registries. Default None (required unless the repository is ECR)."""
    registry_password: pulumi.Input[str] | None = None
    """Registry token for non-ECR registries, made a secret here. Default None (required unless ECR)."""
    ecr_client: Any = None
    """boto3 ECR client for ECR repositories. Default None: a client for the region in the URL."""


class ContainerImage(pulumi.ComponentResource):
    """The service image, built from a Dockerfile, pushed, and referenced by digest."""

    image_ref: pulumi.Output[str]
    """``<repository>@sha256:…``: the immutable reference to deploy (never a tag)."""
    image_name: pulumi.Output[str]
    """``<repository>:<revision>``: the tag that was pushed, for people, not for deployments."""

    def __init__(self, name: str, args: ContainerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        # Checked before anything is registered: a bad tag or missing credentials stop the program.
        if not re.fullmatch(r"[\w][\w.-]{0,127}", args.revision):
            raise ValueError(f"revision {args.revision!r} is not a valid image tag")
        server, _ = split_repository(args.repository)
        if ECR_HOST.match(server):
            login = ecr_login(args.repository, client=args.ecr_client)
        else:
            login = token_login(args.repository, args.registry_username, args.registry_password)
        super().__init__(TYPE, name, None, opts)

        build_args: dict[str, pulumi.Input[str]] = {"REVISION": args.revision}
        optional: Mapping[str, pulumi.Input[str] | None] = {
            "VERSION": args.version,
            "SOURCE": args.source,
            "BASE_IMAGE": args.base_image,
        }
        build_args.update({k: v for k, v in optional.items() if v is not None})

        image = docker.Image(
            f"{name}-image",
            image_name=f"{args.repository}:{args.revision}",
            build=docker.DockerBuildArgs(
                context=args.context,
                dockerfile=args.dockerfile,
                platform=args.platform,
                args=build_args,
            ),
            registry=docker.RegistryArgs(server=login.server, username=login.username, password=login.password),
            skip_push=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image_ref = image.repo_digest.apply(require_digest_ref)
        self.image_name = image.image_name
        self.register_outputs({"image_ref": self.image_ref, "image_name": self.image_name})

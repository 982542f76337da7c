"""Amazon ECR client for the decommission (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``), via boto3.

Image indexes (multi-platform images, attestations): ECR lists an index and each of its per-platform
manifests as separate images (the platforms untagged). ``DescribeImages`` reports each image's
``imageManifestMediaType`` (botocore ``data/ecr/2015-09-21/service-2.json``, ``ImageDetail``); for an
index type, or when the field is absent, the manifest itself is read with ``BatchGetImage``, naming
the index types in ``acceptedMediaTypes`` as AWS's own containerd resolver does
(awslabs/amazon-ecr-containerd-resolver, ``ecr/resolver.go``, pull request 13 "Support manifest lists
in ECR"), and its ``manifests`` become the :attr:`Manifest.children`, so the retention keeps them
with their index.
ECR refuses to delete an image a manifest list still references (``ImageReferencedByManifestList``,
botocore ``ImageFailureCode``): deletions go in waves, every index in a call before its children's.
``artifactMediaType`` (the config's media type) says nothing about being an index and is not used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NoReturn

from components.registry.http import RegistryAuthError, RegistryError, RepositoryNotFoundError
from components.registry.model import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    Failure,
    Manifest,
    RegistryKind,
    index_children,
)

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient

ECR_HOST: Final = re.compile(  # the host part of an Amazon ECR repository URL
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$"
)
_ECR_AUTH_CODES: Final = frozenset(
    {
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "SignatureDoesNotMatch",
    }
)
ECR_EXTRA: Final = "pip install 'service-lifecycle-components[ecr]'"
"""What installs boto3 for ECR: the package's ``ecr`` extra (nothing imports boto3 unless ECR is used)."""


class Boto3MissingError(RegistryError):
    """An ECR repository is used and boto3 is not installed (the ``ecr`` extra)."""


def import_boto3(repository: str) -> Any:
    """The ``boto3`` module, imported only now that ``repository`` (an ECR repository) needs it; without
    it a :class:`Boto3MissingError` that says what to install."""
    try:
        import boto3
    except ImportError as error:
        raise Boto3MissingError(
            f"{repository} is an Amazon ECR repository, which needs boto3 ({error}); "
            f"install the package's ecr extra: {ECR_EXTRA}"
        ) from None
    return boto3


_ECR_BATCH: Final = 100
"""At most 100 image ids per BatchGetImage / BatchDeleteImage call (``ImageIdentifierList``)."""


@dataclass
class _Listed:
    """One digest as DescribeImages reported it (moto lists one entry per tag: merged by digest)."""

    tags: set[str] = field(default_factory=set)
    pushed: datetime | None = None
    media_type: str | None = None


class EcrApi:
    """The ECR calls for one repository (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``), errors mapped."""

    def __init__(self, repository: str, *, client: ECRClient | None = None) -> None:
        host, _, name = repository.partition("/")
        match = ECR_HOST.match(host)
        if match is None or not name:
            raise ValueError(f"{repository!r} is not an Amazon ECR repository URL")
        self.repository = repository
        self.name = name
        self.account = match.group("account")
        if client is None:
            client = import_boto3(repository).client("ecr", region_name=match.group("region"))
        self._client = client

    def _raise(self, exc: Exception, action: str) -> NoReturn:
        from botocore.exceptions import ClientError, NoCredentialsError

        if isinstance(exc, NoCredentialsError):
            raise RegistryAuthError(f"{self.repository}: no AWS credentials to {action}") from None
        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "RepositoryNotFoundException":
                raise RepositoryNotFoundError(
                    f"{self.repository}: repository {self.name} not found in ECR account {self.account}"
                ) from None
            if code in _ECR_AUTH_CODES:
                raise RegistryAuthError(f"{self.repository}: AWS refused to {action}: {code}") from None
        raise RegistryError(f"{self.repository}: could not {action}: {exc}") from None

    def _describe(self) -> dict[str, _Listed]:
        from botocore.exceptions import BotoCoreError, ClientError

        listed: dict[str, _Listed] = {}
        try:
            pages = self._client.get_paginator("describe_images").paginate(
                registryId=self.account, repositoryName=self.name
            )
            for page in pages:
                for detail in page.get("imageDetails", []):
                    info = listed.setdefault(detail["imageDigest"], _Listed())
                    info.tags.update(detail.get("imageTags", []))
                    info.pushed = detail.get("imagePushedAt")
                    info.media_type = info.media_type or detail.get("imageManifestMediaType")
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "list images")
        return listed

    def _read_manifests(self, digests: Sequence[str]) -> dict[str, tuple[dict[str, Any], str | None]]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.batch_get_image(
                registryId=self.account,
                repositoryName=self.name,
                imageIds=[{"imageDigest": d} for d in digests],
                acceptedMediaTypes=list(MANIFEST_MEDIA_TYPES),
            )
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "read image manifests")
        for failure in response.get("failures", []):
            digest = failure.get("imageId", {}).get("imageDigest", "?")
            raise RegistryError(
                f"{self.repository}: could not read manifest {digest}: "
                f"{failure.get('failureCode')}: {failure.get('failureReason')}"
            )
        read: dict[str, tuple[dict[str, Any], str | None]] = {}
        for image in response.get("images", []):
            digest = image.get("imageId", {}).get("imageDigest", "")
            try:
                body = json.loads(image.get("imageManifest", ""))
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise RegistryError(f"{self.repository}: manifest {digest} is not a JSON object")
            read[digest] = (body, image.get("imageManifestMediaType"))
        return read


class EcrRegistryClient(EcrApi):
    """Amazon ECR client for one repository (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``)."""

    kind: RegistryKind = "ecr"
    delete_refusal: str | None = None

    def list_manifests(self, *, need_dates: bool) -> list[Manifest]:
        listed = self._describe()
        # An index, or a manifest whose type ECR did not report: read it to find its platforms.
        unsure = [d for d, info in listed.items() if info.media_type in INDEX_MEDIA_TYPES or not info.media_type]
        children = self._children(unsure, listed)
        return [
            Manifest(digest=d, tags=tuple(sorted(info.tags)), created=info.pushed, children=children.get(d, ()))
            for d, info in listed.items()
        ]

    def _children(self, digests: Sequence[str], listed: dict[str, _Listed]) -> dict[str, tuple[str, ...]]:
        """The platforms of each index among ``digests``, read with BatchGetImage; RegistryError when
        a manifest cannot be read (its platforms could otherwise be deleted from under it)."""
        found: dict[str, tuple[str, ...]] = {}
        for start in range(0, len(digests), _ECR_BATCH):
            batch = digests[start : start + _ECR_BATCH]
            read = self._read_manifests(batch)
            for digest in batch:
                if digest not in read:
                    raise RegistryError(f"{self.repository}: could not read manifest {digest}: ECR did not return it")
                body, media_type = read[digest]
                found[digest] = index_children(body, self.repository, digest, media_type or listed[digest].media_type)
        return found

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]:
        failures: list[Failure] = []
        for wave in _waves(manifests):
            for start in range(0, len(wave), _ECR_BATCH):
                failures.extend(self._delete_batch(wave[start : start + _ECR_BATCH]))
        return failures

    def _delete_batch(self, batch: Sequence[Manifest]) -> list[Failure]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.batch_delete_image(
                registryId=self.account,
                repositoryName=self.name,
                imageIds=[{"imageDigest": m.digest} for m in batch],
            )
        except (ClientError, BotoCoreError) as exc:
            try:
                self._raise(exc, "delete images")
            except RegistryError as err:
                return [Failure(m.digest, m.tags, str(err)) for m in batch]
        by_digest = {m.digest: m for m in batch}
        failures: list[Failure] = []
        for failure in response.get("failures", []):
            digest = failure.get("imageId", {}).get("imageDigest", "")
            m = by_digest.get(digest, Manifest(digest=digest))
            failures.append(Failure(m.digest, m.tags, f"{failure.get('failureCode')}: {failure.get('failureReason')}"))
        return failures


def _waves(manifests: Sequence[Manifest]) -> Iterator[list[Manifest]]:
    """The manifests in waves: first those no other listed manifest references, then their children,
    and so on (an index of indexes), so no call asks ECR to delete an image an index still lists."""
    pending = list(manifests)
    while pending:
        referenced = {c for m in pending for c in m.children}
        wave = [m for m in pending if m.digest not in referenced] or pending  # a cycle cannot be hashed; be safe
        yield wave
        taken = {m.digest for m in wave}  # a set: a repository of thousands must not cost n² comparisons
        pending = [m for m in pending if m.digest not in taken]

"""Amazon ECR client for the decommission (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``), via boto3."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from components.registry_http import RegistryAuthError, RegistryError, RepositoryNotFoundError
from components.registry_model import Failure, Manifest, RegistryKind

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
_ECR_BATCH: Final = 100


class EcrRegistryClient:
    """Amazon ECR client for one repository (``<account>.dkr.ecr.<region>.amazonaws.com/<name>``)."""

    kind: RegistryKind = "ecr"
    delete_refusal: str | None = None

    def __init__(self, repository: str, *, client: ECRClient | None = None) -> None:
        host, _, name = repository.partition("/")
        match = ECR_HOST.match(host)
        if match is None or not name:
            raise ValueError(f"{repository!r} is not an Amazon ECR repository URL")
        self.repository = repository
        self.name = name
        self.account = match.group("account")
        if client is None:
            import boto3

            client = boto3.client("ecr", region_name=match.group("region"))
        self._client = client

    def _raise(self, exc: Exception, action: str) -> None:
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

    def list_manifests(self, *, need_dates: bool) -> list[Manifest]:
        from botocore.exceptions import BotoCoreError, ClientError

        tags: dict[str, set[str]] = {}
        pushed: dict[str, datetime | None] = {}
        try:
            pages = self._client.get_paginator("describe_images").paginate(
                registryId=self.account, repositoryName=self.name
            )
            for page in pages:
                # One entry per digest in AWS; moto lists one per tag: merge by digest either way.
                for detail in page.get("imageDetails", []):
                    digest = detail["imageDigest"]
                    tags.setdefault(digest, set()).update(detail.get("imageTags", []))
                    pushed[digest] = detail.get("imagePushedAt")
        except (ClientError, BotoCoreError) as exc:
            self._raise(exc, "list images")
        return [Manifest(digest=d, tags=tuple(sorted(t)), created=pushed.get(d)) for d, t in tags.items()]

    def delete(self, manifests: Sequence[Manifest]) -> list[Failure]:
        from botocore.exceptions import BotoCoreError, ClientError

        failures: list[Failure] = []
        for start in range(0, len(manifests), _ECR_BATCH):
            batch = manifests[start : start + _ECR_BATCH]
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
                    failures.extend(Failure(m.digest, m.tags, str(err)) for m in batch)
                continue
            by_digest = {m.digest: m for m in batch}
            for failure in response.get("failures", []):
                digest = failure.get("imageId", {}).get("imageDigest", "")
                m = by_digest.get(digest, Manifest(digest=digest))
                failures.append(
                    Failure(m.digest, m.tags, f"{failure.get('failureCode')}: {failure.get('failureReason')}")
                )
        return failures

"""Image decommission at sunset: a backend by the repository's host, and what goes.

:mod:`~components.registry.decommissioning` chooses the backend and decides what is deleted
(:func:`decommission`); the backends are :mod:`~components.registry.oci` (the OCI Distribution API,
Docker Hub refused), :mod:`~components.registry.ghcr` (the GitHub Packages API) and
:mod:`~components.registry.ecr` (the ECR API); :mod:`~components.registry.http` is their HTTP client and
errors, :mod:`~components.registry.model` what they share (manifests, media types, repository identity).
The names below are importable from here.
"""

from __future__ import annotations

from components.registry.decommissioning import (
    ECR_HOST,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    DecommissionReport,
    DockerHubClient,
    EcrRegistryClient,
    Failure,
    Manifest,
    OciRegistryClient,
    RegistryAuthError,
    RegistryError,
    RegistryUnsupportedError,
    RepositoryNotFoundError,
    client_for,
    decommission,
    keep_last,
    normalize_digest,
    normalize_repository,
    partition,
)

__all__ = [
    "ECR_HOST",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "DecommissionReport",
    "DockerHubClient",
    "EcrRegistryClient",
    "Failure",
    "Manifest",
    "OciRegistryClient",
    "RegistryAuthError",
    "RegistryError",
    "RegistryUnsupportedError",
    "RepositoryNotFoundError",
    "client_for",
    "decommission",
    "keep_last",
    "normalize_digest",
    "normalize_repository",
    "partition",
]

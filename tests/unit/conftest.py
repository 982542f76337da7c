"""Fixtures of the unit tests that share a local fake server (tests/unit/fake_registry.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fake_registry import FakeGitHub, FakeRegistry, github_handler, registry_handler, serving


@pytest.fixture
def fake_registry() -> Iterator[FakeRegistry]:
    """An OCI Distribution registry on a free loopback port (no auth unless the test sets ``auth``)."""
    reg = FakeRegistry()
    with serving(registry_handler(reg), reg.set_port):
        yield reg


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    """GitHub's package-version operations on a free loopback port, for organisation ``acme``'s ``hello``."""
    gh = FakeGitHub()
    with serving(github_handler(gh), gh.set_port):
        yield gh

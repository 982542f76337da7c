"""The public-service example: production, public, no Cloudflare Access; tested with the package's fixtures."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components.testing import RecordingMocks


@pytest.fixture
def pulumi_project_dir() -> Path:
    return Path(__file__).resolve().parent


def test_public_without_access_and_promoted_not_built(plan_stack: Callable[..., tuple[Any, RecordingMocks]]) -> None:
    plan, mocks = plan_stack("production")
    assert (plan.project, plan.stage) == ("cafe", "production")
    assert not [r for r in mocks.resources if "Access" in r.type]
    assert not mocks.by_type("docker:index/image:Image")
    record = mocks.one("cloudflare:index/dnsRecord:DnsRecord")
    assert (record.plain_inputs["name"], record.plain_inputs["proxied"]) == ("menu.example.com", True)
    assert plan.outputs["image_ref"].startswith("ghcr.io/example-org/menu@sha256:")


def test_a_mistyped_setting_is_refused_naming_the_program_s_key(
    make_settings: Callable[..., Any],
) -> None:
    from components.config.settings import SettingsError

    with pytest.raises(SettingsError) as raised:
        make_settings("production", replicas=1)
    assert "cafe:replicas: got '1'; expected an integer from 2 to 50" in str(raised.value)

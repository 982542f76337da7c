"""components/config/schema.py is the one source of the settings; this repository's Pulumi.yaml agrees with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import schema

PROJECT_DIR = Path(__file__).resolve().parents[2]
DECLARED: dict[str, dict[str, Any]] = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]


def test_pulumi_yaml_declares_exactly_the_schema_s_project_settings() -> None:
    expected = [s.name for s in schema.SETTINGS if s.declared_in_project]
    assert list(DECLARED) == expected


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_each_declaration_agrees_with_the_schema(name: str) -> None:
    """Type, description, default and secret flag: a change on one side only fails here."""
    assert name in schema.BY_NAME, f"{name} is declared in Pulumi.yaml but missing from components/config/schema.py"
    assert DECLARED[name] == schema.BY_NAME[name].declaration()


def test_the_schema_command_prints_the_pulumi_yaml_config_block() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "components", "schema"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert yaml.safe_load(out)["config"] == DECLARED


def test_the_project_declarations_are_ones_the_pulumi_cli_accepts() -> None:
    """pulumi/pulumi pkg/workspace/config.go, mergeConfig (as read for issue 10): a key declared without
    a default must be set in every stack, and a ``secret: true`` key must not get a plain-text default.
    So an optional setting is declared only with a default, and an optional secret is not declared."""
    wrong = [
        s.name for s in schema.SETTINGS if s.declared_in_project and not s.required and (s.default is None or s.secret)
    ]
    assert wrong == []


def test_every_default_passes_the_settings_own_checks() -> None:
    """The defaults are real values: a minimal mapping with only the required keys validates."""
    from components.config.settings import settings_from_mapping

    required = {
        "stage": "production", "serviceName": "web", "team": "web", "appVersion": "1.0.0",
        "imageRepository": "ghcr.io/acme/web", "pinnedDigest": "sha256:" + "a" * 64,
        "cloudflareAccountId": "0" * 32, "cloudflareZoneId": "1" * 32, "zoneName": "example.com",
        "hostnames": ["web.example.com"],
    }  # fmt: skip
    settings = settings_from_mapping(required)
    assert settings.container_port == schema.BY_NAME["containerPort"].default == 8080
    assert settings.cloudflare.cloudflared_image == schema.BY_NAME["cloudflaredImage"].default


def test_python_names_are_unique_snake_case() -> None:
    names = [s.python_name for s in schema.SETTINGS]
    assert len(set(names)) == len(names)
    assert schema.BY_NAME["latencyP95Seconds"].python_name == "latency_p95_seconds"
    assert all(n == n.lower() and " " not in n for n in names)


def test_the_settings_reference_is_what_the_schema_command_prints() -> None:
    """docs/settings.md is generated: ``python -m components schema --markdown > docs/settings.md``."""
    from components.config.schema import render_markdown

    reference = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
    assert reference.read_text() == render_markdown()
    assert all(f"| `{setting.name}` |" in reference.read_text() for setting in schema.SETTINGS)

"""Pull-request previews hold nothing that can write: no write-only data source is called during a
preview, and the preview job takes read-only credentials from its own environment."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.output import Unknown

from components.config.settings import Settings
from components.exposure import Exposure
from components.testing import TUNNEL_TOKEN_INVOKE, RecordingMocks, install_mocks, run_program
from tests.unit.test_exposure import args_from

PROJECT_DIR = Path(__file__).resolve().parents[2]
SECRET = "kubernetes:core/v1:Secret"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _exposure(settings: Settings, *, preview: bool) -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.settings.set_root_resource(None)  # type: ignore[arg-type]
    install_mocks(mocks, stack="staging", preview=preview)
    run_program(lambda: Exposure("hello-exposure", args_from(settings)) and None)
    return mocks


def _token_value(mocks: RecordingMocks) -> Any:
    """The tunnel token the Secret gets; UNKNOWN when the engine would show it as unknown."""
    (secret,) = [r for r in mocks.resources if r.type == SECRET]
    string_data = secret.plain_inputs["stringData"]
    if isinstance(string_data, Unknown):
        return UNKNOWN
    token = string_data["token"]
    return UNKNOWN if isinstance(token, Unknown) else token


def test_a_preview_never_calls_the_tunnel_token_data_source(make_settings: Callable[..., Settings]) -> None:
    """pulumi-cloudflare's getZeroTrustTunnelCloudflaredToken needs Cloudflare Tunnel Write
    (Cloudflare API "Get a Cloudflare Tunnel token"); a preview runs with a read-only token, so
    under pulumi.runtime.is_dry_run() it is not called and the token stays unknown (the engine's
    unknown sentinel, as a preview shows it)."""
    settings = make_settings("staging")
    previewed = _exposure(settings, preview=True)
    assert [i for i in previewed.invocations if i.token == TUNNEL_TOKEN_INVOKE] == []
    assert _token_value(previewed) == UNKNOWN
    applied = _exposure(settings, preview=False)
    assert [i.token for i in applied.invocations if i.token == TUNNEL_TOKEN_INVOKE] == [TUNNEL_TOKEN_INVOKE]
    assert _token_value(applied) not in (UNKNOWN, None, "")


def _preview_job() -> dict[str, Any]:
    workflow = yaml.safe_load((PROJECT_DIR / ".github" / "workflows" / "pull-request.yml").read_text())
    job: dict[str, Any] = workflow["jobs"]["preview"]
    return job


def test_the_preview_job_takes_read_only_credentials_from_its_own_environment() -> None:
    """Secrets of a GitHub environment override repository secrets of the same name, and fall back
    to them when the environment lacks one (GitHub docs, "Using secrets in GitHub Actions"): the
    preview's secrets therefore have names no write token uses, so a missing one fails instead of
    silently handing the PR the repository's write token."""
    job = _preview_job()
    assert job["environment"] == "preview"
    text = yaml.safe_dump(job)
    used = {part.split("}}")[0].strip() for part in text.split("secrets.")[1:]}
    assert used == {"PULUMI_PREVIEW_ACCESS_TOKEN", "PREVIEW_KUBECONFIG", "CLOUDFLARE_READ_API_TOKEN", "GITHUB_TOKEN"}
    preview = next(s for s in job["steps"] if (s.get("with") or {}).get("command") == "preview")
    assert preview["env"]["CLOUDFLARE_API_TOKEN"] == "${{ secrets.CLOUDFLARE_READ_API_TOKEN }}"
    assert preview["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_PREVIEW_ACCESS_TOKEN }}"
    assert "KUBECONFIG" in preview["env"]
    # The stack's own write credentials are dropped from config before the preview runs.
    steps = [str(s.get("run", "")) for s in job["steps"]]
    drop = next(i for i, run in enumerate(steps) if "pulumi config rm" in run)
    assert "cloudflareApiToken kubeconfig" in steps[drop]
    assert drop < job["steps"].index(preview)
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}


def test_the_readme_lists_the_token_permissions_of_every_workflow() -> None:
    readme = (PROJECT_DIR / "docs" / "pipeline.md").read_text()  # the README's section until 0.3.0
    section = readme.split("### Token permissions per workflow", 1)[1].split("\n## ", 1)[0]
    for name in ("CLOUDFLARE_READ_API_TOKEN", "PREVIEW_KUBECONFIG", "PULUMI_PREVIEW_ACCESS_TOKEN", "GITHUB_TOKEN"):
        assert name in section, name
    for workflow in ("pull-request.yml", "pr-comment.yml", "deploy.yml", "sunset.yml"):
        assert workflow in section, workflow

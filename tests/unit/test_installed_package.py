"""Issue 22, item 5: guard rails of the installed package, each shown firing.

- a build context that is not a directory, or has no Dockerfile: exit 2, one line naming the key;
- boto3 only for ECR (the ``ecr`` extra): never imported otherwise, and a clear line when missing.
(The policy pack's exit 3 is in tests/unit/test_policy.py and, installed, test_library_install.py;
the canonical key order in test_canonical_order.py.)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import components.config.settings.steps as settings_steps
from components import image
from components.config.settings import Settings, SettingsError
from components.registry import ecr

REPOSITORY = Path(__file__).resolve().parents[2]
ECR_REPOSITORY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello"


def test_a_build_context_that_is_not_a_directory_is_refused_naming_the_key(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", buildContext="apps")
    assert [str(p) for p in raised.value.problems] == [
        "service-lifecycle:buildContext: got 'apps'; expected the Docker build context: a directory relative to "
        f"the project directory; {Path.cwd() / 'apps'} is not one"
    ]


def test_a_build_context_without_a_dockerfile_is_refused_naming_the_key(
    make_settings: Callable[..., Settings],
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", buildContext="docs")
    assert [str(p) for p in raised.value.problems] == [
        "service-lifecycle:buildContext: got 'docs'; expected a build context holding a Dockerfile; "
        f"{Path.cwd() / 'docs' / 'Dockerfile'} does not exist"
    ]


def test_the_build_context_is_not_looked_at_in_a_stage_that_does_not_build(
    make_settings: Callable[..., Settings],
) -> None:
    assert make_settings("production", buildContext="apps").build is None


def test_the_plan_refuses_a_bad_build_context_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    program = tmp_path / "program"
    program.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        (program / name).write_text((REPOSITORY / name).read_text())
    stack = (REPOSITORY / "Pulumi.staging.yaml").read_text()
    (program / "Pulumi.staging.yaml").write_text(stack + "  service-lifecycle:buildContext: ../nowhere\n")
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--project-dir", str(program), "--stack", "staging"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "  service-lifecycle:buildContext: got '../nowhere'; expected the Docker build context: a directory relative "
        f"to the project directory; {program / '..' / 'nowhere'} is not one"
    ) in result.stderr.splitlines()


def test_container_image_s_own_check_is_a_run_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(image.BuildContextError) as raised:
        image.content_tag(context=tmp_path, dockerfile=tmp_path / "Dockerfile", build_args={}, platform="linux/amd64")
    assert isinstance(raised.value, ValueError)  # what it was before 0.3.0
    assert f"Dockerfile '{tmp_path / 'Dockerfile'}' does not exist" in str(raised.value)


def test_a_building_stage_with_an_ecr_repository_needs_boto3_and_says_what_to_install(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings_steps, "_boto3_installed", lambda: False)
    ecr_settings = {"imageRepository": ECR_REPOSITORY, "registryUsername": None, "registryPassword": None}
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", imagePullSecret=False, **ecr_settings)
    assert [str(p) for p in raised.value.problems] == [
        f"service-lifecycle:imageRepository: got '{ECR_REPOSITORY}'; expected boto3 installed to log in to this "
        "ECR repository: pip install 'service-lifecycle-components[ecr]'"
    ]
    # Production pushes nothing and logs in nowhere: no boto3 needed.
    assert make_settings("production", imagePullSecret=False, **ecr_settings).registry.is_ecr


def test_the_ecr_clients_say_what_to_install_without_boto3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now fails as if not installed
    with pytest.raises(ecr.Boto3MissingError) as raised:
        ecr.EcrApi(ECR_REPOSITORY)
    assert str(raised.value).startswith(f"{ECR_REPOSITORY} is an Amazon ECR repository, which needs boto3")
    assert str(raised.value).endswith(
        "install the package's ecr extra: pip install 'service-lifecycle-components[ecr]'"
    )
    with pytest.raises(image.RegistryCredentialsError, match=r"pip install 'service-lifecycle-components\[ecr\]'"):
        image.boto3_ecr_client("eu-west-1")
    assert settings_steps._boto3_installed() is False


def test_no_library_module_and_no_plan_without_ecr_imports_boto3() -> None:
    """A fresh interpreter imports every library module and plans the (GHCR) staging stack: boto3 and
    botocore are never imported, so a plain install (without the ``ecr`` extra) needs neither."""
    package = REPOSITORY / "components"
    library = sorted(
        ".".join(("components", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for p in package.rglob("*.py")
        if p.stem != "__main__" and "commands" not in p.relative_to(package).parts
    )
    script = (
        "import importlib, os, sys\n"
        f"for name in {library!r}: importlib.import_module(name)\n"
        "from components.commands.plan import run_plan\n"
        "os.environ['SOURCE_REVISION'] = '0' * 40\n"
        f"run_plan(__import__('pathlib').Path({str(REPOSITORY)!r}), 'staging')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
        "os._exit(0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"

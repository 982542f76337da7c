"""ContainerImage under the recording mocks: the content tag, the registry cache, credentials (ECR
through moto), and plans that stay identical across commits that leave app/ alone."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from pulumi.runtime.settings import SETTINGS

from components.commands.plan_diff import diff_stack
from components.image import (
    CACHE_TAG,
    TYPE,
    ContainerImage,
    ContainerImageArgs,
    RegistryCredentialsError,
    content_tag,
    ecr_login,
    ignored,
    read_dockerignore,
    require_digest_ref,
)
from components.testing import RecordingMocks, is_secret, redact

IMAGE = "docker:index/image:Image"
TAG = "docker:index/tag:Tag"
REGISTRY_IMAGE = "docker:index/registryImage:RegistryImage"
PASSWORD = "ghp_test-token-7c1d"
ECR_REPO = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello"
CONTENT_TAG = re.compile(r"ctx-[0-9a-f]{64}")

RunComponents = Callable[..., RecordingMocks]


def _build(run_components: RunComponents, args: ContainerImageArgs, **kw: Any) -> tuple[RecordingMocks, list[str]]:
    refs: list[str] = []

    def program() -> None:
        image = ContainerImage("hello", args)
        image.image_ref.apply(refs.append)

    return run_components(program, **kw), refs


def _args(**overrides: Any) -> ContainerImageArgs:
    base: dict[str, Any] = {
        "repository": "ghcr.io/acme/hello",
        "version": "1.4.2",
        "registry_username": "acme-ci",
        "registry_password": PASSWORD,
    }
    base.update(overrides)
    return ContainerImageArgs(**base)


def _tag_of(context: Path, **args: str) -> str:
    return content_tag(context=context, dockerfile=context / "Dockerfile", build_args=args, platform="linux/amd64")


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """A build context shaped like app/: everything ignored but what the image needs."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "ARG BASE_IMAGE=python@sha256:" + "1" * 64 + "\nFROM ${BASE_IMAGE}\nCOPY server.py /\n"
    )
    (ctx / ".dockerignore").write_text("# only what the image needs\n*\n!server.py\n!lib/\n")
    (ctx / "server.py").write_text("print('hello')\n")
    (ctx / "README.md").write_text("notes\n")
    (ctx / "lib").mkdir()
    (ctx / "lib" / "util.py").write_text("X = 1\n")
    for path in (ctx / "server.py", ctx / "lib" / "util.py"):
        path.chmod(0o644)
    return ctx


# ---- the content tag --------------------------------------------------------------------------------


def test_the_tag_follows_the_content_and_nothing_else(context: Path) -> None:
    first = _tag_of(context, VERSION="1.0.0")
    assert CONTENT_TAG.fullmatch(first)
    assert _tag_of(context, VERSION="1.0.0") == first
    (context / "README.md").write_text("edited notes\n")  # .dockerignore keeps it out of the build
    assert _tag_of(context, VERSION="1.0.0") == first
    (context / "server.py").chmod(0o664)  # another umask at checkout: git keeps only the executable bit
    assert _tag_of(context, VERSION="1.0.0") == first
    changes = {
        "code": lambda: (context / "server.py").write_text("print('patched')\n"),
        "nested": lambda: (context / "lib" / "util.py").write_text("X = 2\n"),
        "mode": lambda: (context / "server.py").chmod(0o755),
        "dockerfile": lambda: (context / "Dockerfile").write_text("FROM python@sha256:" + "2" * 64 + "\n"),
        "new file": lambda: (context / "lib" / "extra.py").write_text(""),
        "ignore file": lambda: (context / ".dockerignore").write_text("*\n!server.py\n"),
    }
    seen = {first}
    for what, change in changes.items():
        change()
        tag = _tag_of(context, VERSION="1.0.0")
        assert tag not in seen, what
        seen.add(tag)
    assert _tag_of(context, VERSION="1.0.1") not in seen
    assert _tag_of(context, VERSION="1.0.0", BASE_IMAGE="python@sha256:" + "3" * 64) not in seen


def test_dockerfile_specific_ignore_file_wins(context: Path) -> None:
    """pulumi/pulumi-docker ``provider/provider.go`` ``getIgnorePatterns``: ``<Dockerfile>.dockerignore``
    first, then ``<context>/.dockerignore``; comments and blank lines skipped, patterns cleaned."""
    assert read_dockerignore(context, context / "Dockerfile") == ["*", "!server.py", "!lib"]
    (context / "Dockerfile.dockerignore").write_text("\n# nothing but docs\n/README.md\n")
    assert read_dockerignore(context, context / "Dockerfile") == ["README.md"]


@pytest.mark.parametrize(
    ("path", "patterns", "expected"),
    [
        ("server.py", ["*", "!server.py"], False),
        ("sub/server.py", ["*", "!server.py"], True),  # "*" matches the parent directory "sub"
        ("a/b.py", ["*.py"], False),  # "*" never crosses "/"
        ("b.py", ["*.py"], True),
        ("x/y/z.md", ["**/*.md"], True),
        ("z.md", ["**/*.md"], True),
        ("docs/a/b", ["docs"], True),
        ("docs/keep", ["docs", "!docs/keep"], False),
        ("file?", ["file[?]"], True),
    ],
    ids=["reincluded", "parent_ignored", "star_stays_in_dir", "star_at_root", "doublestar_deep",
         "doublestar_root", "directory", "exception", "char_class"],
)  # fmt: skip
def test_ignore_patterns_match_like_docker(path: str, patterns: list[str], expected: bool) -> None:
    """moby/patternmatcher ``MatchesOrParentMatches``: last matching pattern wins, a pattern that matches
    a parent directory matches the file, ``*``/``?`` stop at ``/``, ``**`` crosses directories."""
    assert ignored(path, patterns) is expected


def test_the_app_context_hashes_only_what_the_image_gets(project_dir: Path) -> None:
    context = project_dir / "app"
    patterns = read_dockerignore(context, context / "Dockerfile")
    kept = sorted(p.name for p in context.iterdir() if p.is_file() and not ignored(p.name, patterns))
    assert kept == ["requirements.txt", "server.py"]


def test_a_missing_context_fails_before_any_resource(run_components: RunComponents, tmp_path: Path) -> None:
    mocks = RecordingMocks()
    with pytest.raises(ValueError, match="is not a directory"):
        _build(run_components, _args(context=str(tmp_path / "nowhere")), mocks=mocks)
    assert mocks.resources == []


# ---- the component ----------------------------------------------------------------------------------


def test_builds_pushes_and_tags_with_the_content(run_components: RunComponents) -> None:
    mocks, refs = _build(run_components, _args(source="https://github.com/acme/hello"))
    component = mocks.one(TYPE, "hello")
    image = mocks.one(IMAGE, "hello-image")
    assert image.parent == component.urn
    assert image.urn.endswith(f"{TYPE}${IMAGE}::hello-image")
    inputs = image.plain_inputs
    tag = inputs["imageName"].rsplit(":", 1)[1]
    assert CONTENT_TAG.fullmatch(tag)
    assert tag == content_tag(
        context=Path("app"), dockerfile=Path("app/Dockerfile"), platform="linux/amd64",
        build_args={"VERSION": "1.4.2", "SOURCE": "https://github.com/acme/hello"},
    )  # fmt: skip
    assert inputs["imageName"] == f"ghcr.io/acme/hello:{tag}"
    assert inputs["skipPush"] is False
    assert inputs["build"] == {
        "context": "app",
        "platform": "linux/amd64",
        "args": {
            "REVISION": tag, "VERSION": "1.4.2", "SOURCE": "https://github.com/acme/hello",
            "BUILDKIT_INLINE_CACHE": "1",
        },
        "cacheFrom": {"images": [f"ghcr.io/acme/hello:{CACHE_TAG}"]},
    }  # fmt: skip
    assert inputs["registry"] == {"server": "ghcr.io", "username": "acme-ci", "password": PASSWORD}
    # The image reference handed on is pinned by digest, in the pushed repository.
    assert len(refs) == 1 and re.fullmatch(r"ghcr\.io/acme/hello@sha256:[0-9a-f]{64}", refs[0])


def test_every_build_refreshes_the_registry_cache(run_components: RunComponents) -> None:
    """pulumi-docker pulls ``cache_from`` images before it builds (pulumi/pulumi-docker
    ``provider/image.go``, ``dockerBuild``: "we pull the cached images"), and its own push covers only
    ``image_name``: a Tag and a RegistryImage keep ``<repo>:buildcache`` on the latest build."""
    mocks, _ = _build(run_components, _args())
    image = mocks.one(IMAGE)
    tag = mocks.one(TAG, "hello-cache-tag").plain_inputs
    assert tag == {"sourceImage": image.plain_inputs["imageName"], "targetImage": f"ghcr.io/acme/hello:{CACHE_TAG}"}
    push = mocks.one(REGISTRY_IMAGE, "hello-cache-push")
    inputs = push.plain_inputs
    assert inputs["name"] == f"ghcr.io/acme/hello:{CACHE_TAG}"
    assert inputs["keepRemotely"] is True
    assert inputs["triggers"] == {"digest": image.outputs["repoDigest"]}
    assert inputs["authConfig"] == {"address": "ghcr.io", "username": "acme-ci", "password": PASSWORD}
    assert PASSWORD not in json.dumps(push.to_json())
    assert image.urn in mocks.one(TAG).dependencies


def test_without_the_registry_cache_nothing_is_pulled_or_pushed_for_it(run_components: RunComponents) -> None:
    mocks, _ = _build(run_components, _args(registry_cache=False))
    assert "cacheFrom" not in mocks.one(IMAGE).plain_inputs["build"]
    assert mocks.by_type(TAG) == [] and mocks.by_type(REGISTRY_IMAGE) == []


def test_registry_password_is_a_secret_and_never_plain(run_components: RunComponents) -> None:
    mocks, _ = _build(run_components, _args())
    image = mocks.one(IMAGE)
    # Pulumi marks the whole registry block secret because the password inside it is one.
    assert is_secret(image.inputs["registry"])
    assert image.inputs["registry"]["value"]["password"] == PASSWORD
    assert PASSWORD not in json.dumps(redact(image.inputs))
    assert PASSWORD not in json.dumps(image.to_json())


def test_base_image_and_dockerfile_are_passed_only_when_set(run_components: RunComponents) -> None:
    mocks, _ = _build(run_components, _args(version=None))
    assert set(mocks.one(IMAGE).plain_inputs["build"]["args"]) == {"REVISION", "BUILDKIT_INLINE_CACHE"}
    base = "python:3.12.7-slim-bookworm@sha256:" + "a" * 64
    mocks, _ = _build(run_components, _args(base_image=base, dockerfile="app/Dockerfile", platform="linux/arm64"))
    build = mocks.one(IMAGE).plain_inputs["build"]
    assert build["args"]["BASE_IMAGE"] == base
    assert (build["dockerfile"], build["platform"]) == ("app/Dockerfile", "linux/arm64")


@pytest.mark.parametrize(("missing", "message"), [("registry_password", "password"), ("registry_username", "username")])
def test_missing_credentials_fail_before_any_resource(
    run_components: RunComponents, missing: str, message: str
) -> None:
    mocks = RecordingMocks()
    with pytest.raises(RegistryCredentialsError, match=f"ghcr.io needs a registry {message}"):
        _build(run_components, _args(**{missing: None}), mocks=mocks)
    assert mocks.resources == []


def test_repository_needs_a_registry_host(run_components: RunComponents) -> None:
    with pytest.raises(ValueError, match="must start with a registry host"):
        _build(run_components, _args(repository="acme/hello"))


def test_a_tag_is_never_accepted_as_image_ref(run_components: RunComponents) -> None:
    assert require_digest_ref("r.io/a@sha256:" + "0" * 64).endswith("0" * 64)
    for bad in ("ghcr.io/acme/hello:1.0", "ghcr.io/acme/hello@sha256:abc", ""):
        with pytest.raises(ValueError, match="pinned by digest"):
            require_digest_ref(bad)
    # A provider that answered a tag instead of a digest fails the program.
    mocks = RecordingMocks(outputs={IMAGE: lambda r: {"repoDigest": "ghcr.io/acme/hello:latest"}})
    try:
        with pytest.raises(Exception, match="pinned by digest"):
            _build(run_components, _args(), mocks=mocks)
    finally:
        # A failed program leaves its dependent tasks queued in Pulumi's global runtime state;
        # drop them so they do not fail the next test's program.
        SETTINGS.rpc_manager.clear()
        SETTINGS.outputs.clear()


# ---- plans across commits ---------------------------------------------------------------------------


def _plan(project: Path, stack: str, out: Path, revision: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", stack, "--out", str(out),
         "--project-dir", str(project)],
        cwd=project, capture_output=True, text=True, timeout=300,
        env={**os.environ, "SOURCE_REVISION": revision, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_plans_depend_on_app_content_not_on_the_commit(project_dir: Path, tmp_path: Path) -> None:
    """Done when (issue 13): two plans of each stack with different git revisions and the same app/ are
    identical (plan-diff: no change), and a change in app/ changes the digest staging deploys."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml", "__main__.py"):
        shutil.copy(project_dir / name, project / name)
    shutil.copytree(project_dir / "app", project / "app")
    base, head, patched = tmp_path / "base", tmp_path / "head", tmp_path / "patched"
    for stack in ("staging", "production"):
        _plan(project, stack, base / stack, "1" * 40)
        _plan(project, stack, head / stack, "2" * 40)
        assert (base / stack / "plan.json").read_text() == (head / stack / "plan.json").read_text()
        assert diff_stack(base, head, stack).unchanged
    (project / "app" / "server.py").write_text((project / "app" / "server.py").read_text() + "\n# patch\n")
    _plan(project, "staging", patched / "staging", "2" * 40)
    diff = diff_stack(head, patched, "staging")
    assert diff.changed == ["hello-staging_Deployment_hello.yaml"], diff.changed
    before = json.loads((head / "staging" / "plan.json").read_text())["outputs"]
    after = json.loads((patched / "staging" / "plan.json").read_text())["outputs"]
    assert before["image_ref"] != after["image_ref"] and before["image_tag"] != after["image_tag"]


# ---- ECR -------------------------------------------------------------------------------------------


@pytest.fixture
def ecr_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.client("ecr", region_name="eu-west-1")


def test_ecr_credentials_come_from_get_authorization_token(run_components: RunComponents, ecr_client: Any) -> None:
    token = ecr_client.get_authorization_token(registryIds=["123456789012"])["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    mocks, refs = _build(
        run_components,
        _args(repository=ECR_REPO, registry_username=None, registry_password=None, ecr_client=ecr_client),
    )
    image = mocks.one(IMAGE)
    assert is_secret(image.inputs["registry"])
    registry = image.plain_inputs["registry"]
    assert registry["server"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert registry["username"] == user == "AWS"
    assert registry["password"] == password
    assert password not in json.dumps(image.to_json())
    assert CONTENT_TAG.fullmatch(image.plain_inputs["imageName"].rsplit(":", 1)[1])
    assert image.plain_inputs["imageName"].startswith(f"{ECR_REPO}:ctx-")
    assert mocks.one(REGISTRY_IMAGE).plain_inputs["authConfig"]["password"] == password
    assert refs[0].startswith(ECR_REPO + "@sha256:")


def test_ecr_login_uses_the_region_of_the_url_by_default(ecr_client: Any) -> None:
    login = ecr_login(ECR_REPO)  # boto3 client created inside, from the URL's region, under moto
    assert login.server == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"


def test_ecr_refusal_is_a_clear_error_without_secrets() -> None:
    client = boto3.client(
        "ecr", region_name="eu-west-1", aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="s3cr3t-value"
    )
    with Stubber(client) as stub:
        stub.add_client_error(
            "get_authorization_token", service_error_code="AccessDeniedException", http_status_code=403
        )
        with pytest.raises(RegistryCredentialsError) as err:
            ecr_login(ECR_REPO, client=client)
    message = str(err.value)
    assert "123456789012.dkr.ecr.eu-west-1.amazonaws.com" in message and "eu-west-1" in message
    assert "ecr:GetAuthorizationToken" in message
    assert "s3cr3t-value" not in message


def test_ecr_login_rejects_other_registries() -> None:
    with pytest.raises(ValueError, match="not an Amazon ECR repository"):
        ecr_login("ghcr.io/acme/hello")


# ---- wiring in ServiceStack ------------------------------------------------------------------------


def test_service_stack_builds_the_image_only_where_the_stage_builds(
    run_components: RunComponents, make_settings: Callable[..., Any]
) -> None:
    from components.service import ServiceStack, ServiceStackArgs

    staging = make_settings("staging")

    def program(settings: Any) -> Callable[[], None]:
        return lambda: ServiceStack(settings.service_name, ServiceStackArgs(settings=settings)) and None

    mocks = run_components(program(staging), stack="staging")
    component = mocks.one(TYPE)
    assert component.name == f"{staging.service_name}-image"
    assert component.parent == mocks.one("service-lifecycle:index:ServiceStack").urn
    image = mocks.one(IMAGE).plain_inputs
    assert image["imageName"].startswith(f"{staging.registry.repository}:ctx-")
    assert staging.build.revision not in json.dumps(mocks.one(IMAGE).plain_inputs)
    assert image["build"]["platform"] == staging.build.platform
    assert image["build"]["args"]["VERSION"] == staging.app_version
    assert is_secret(mocks.one(IMAGE).inputs["registry"])

    production = make_settings("production")
    promoted = {production.promotion.from_stack: {"image_ref": f"{production.registry.repository}@sha256:{'a' * 64}"}}
    mocks = run_components(program(production), stack="production", stack_outputs=promoted)
    assert mocks.by_type(IMAGE) == [] and mocks.by_type(TYPE) == []


def test_source_url_setting_becomes_the_oci_source_label(
    run_components: RunComponents, make_settings: Callable[..., Any]
) -> None:
    from components.service import ServiceStack, ServiceStackArgs

    settings = make_settings("staging", sourceUrl="https://github.com/acme/hello")
    mocks = run_components(lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)) and None, stack="staging")
    assert mocks.one(IMAGE).plain_inputs["build"]["args"]["SOURCE"] == "https://github.com/acme/hello"


def test_bad_source_url_names_the_key(make_settings: Callable[..., Any]) -> None:
    from components.config.settings import SettingsError

    with pytest.raises(SettingsError, match=r"service-lifecycle:sourceUrl: got 'git@github\.com:acme/hello'"):
        make_settings("staging", sourceUrl="git@github.com:acme/hello")


@pytest.mark.parametrize("token", ["bm90LWEtcGFpcg==", "%%%not-base64%%%"])
def test_ecr_token_that_is_not_user_password_is_rejected(token: str) -> None:
    client = boto3.client("ecr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(client) as stub:
        stub.add_response("get_authorization_token", {"authorizationData": [{"authorizationToken": token}]})
        with pytest.raises(RegistryCredentialsError, match="is not 'user:password'"):
            ecr_login(ECR_REPO, client=client)

"""The platform example: three services (api, web, worker) in one program, staging and production.

Tested with the package's fixtures only (``pulumi_project_dir`` finds this directory's Pulumi.yaml
from the test file; ``plan_stack`` and ``make_settings`` come from the library's pytest plugin):
each production service deploys its own promoted digest, the worker has no Cloudflare resource,
and each per-service mistake is refused with exit 2, naming the key once.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import settings as pulumi_settings

from components.commands import plan as plan_command
from components.commands.stage_file import write_stage
from components.config.settings import Settings, SettingsError
from components.config.stack_config import StackFileError, load_stack_config
from components.promotion import PromotionError
from components.testing import STACK_REFERENCE, RecordingMocks

HERE = Path(__file__).resolve().parent
SOURCE = "acme/acme-platform/staging"
SERVICES = ("api", "web", "worker")
REPOSITORIES = {s: f"ghcr.io/acme/platform-{s}" for s in SERVICES}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"

Planned = tuple[Any, RecordingMocks]


@pytest.fixture(scope="module")
def production_plan() -> Iterator[Planned]:
    yield plan_command.run_plan(HERE, "production", environ={})
    pulumi_settings.SETTINGS.outputs.clear()


@pytest.fixture(scope="module")
def staging_plan() -> Iterator[Planned]:
    yield plan_command.run_plan(HERE, "staging", environ={})  # the revision: a stand-in note
    pulumi_settings.SETTINGS.outputs.clear()


def app_image(mocks: RecordingMocks, service: str) -> str:
    deployment = mocks.one(DEPLOYMENT, f"{service}-workload-deployment").plain_inputs
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


# -- 1. per-service promotion -------------------------------------------------------------------


def test_offline_plan_each_production_service_runs_its_own_stand_in_in_its_own_repository(
    production_plan: Planned,
) -> None:
    plan, mocks = production_plan
    images = {service: app_image(mocks, service) for service in SERVICES}
    for service, image in images.items():
        assert image.startswith(f"{REPOSITORIES[service]}@sha256:"), image
    assert len({image.rpartition("@")[2] for image in images.values()}) == 3  # three distinct digests
    assert "registry.invalid" not in str(images)
    references = sorted(r.name for r in mocks.by_type(STACK_REFERENCE))
    assert references == [f"{s}-promotion-source" for s in SERVICES]  # one read per service
    assert all(r.plain_inputs["name"] == SOURCE for r in mocks.by_type(STACK_REFERENCE))
    for service in SERVICES:
        assert plan.outputs[f"{service}_image_ref"] == images[service]
        assert f"StackReference {SOURCE} answered offline with a stand-in {service}_image_ref" in plan.notes


def production_config() -> tuple[dict[str, str], set[str]]:
    config = load_stack_config(HERE, "production")
    values = dict(config.values)
    values["acme-platform:grafanaAdminPassword"] = "pw"
    values["acme-platform:alertWebhookUrl"] = "https://hooks.example.com/x"
    return values, config.secret_keys | {"acme-platform:grafanaAdminPassword", "acme-platform:alertWebhookUrl"}


def run_production(run_components: Callable[..., RecordingMocks], outputs: dict[str, Any]) -> RecordingMocks:
    values, secrets = production_config()
    return run_components(
        lambda: runpy.run_path(str(HERE / "__main__.py"), run_name="__main__"),
        project="acme-platform",
        stack="production",
        config=values,
        secret_keys=secrets,
        stack_outputs={SOURCE: outputs},
    )


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """Around a program expected to fail: forget its failed output tasks afterwards."""
    try:
        yield
    finally:
        with pulumi_settings.SETTINGS.lock:
            pulumi_settings.SETTINGS.outputs.clear()
        pulumi_settings.SETTINGS.rpc_manager.clear()


def test_under_the_mocks_each_production_deployment_runs_its_own_services_validated_digest(
    run_components: Callable[..., RecordingMocks],
) -> None:
    validated = {s: f"{REPOSITORIES[s]}@sha256:{str(i) * 64}" for i, s in enumerate(SERVICES, start=1)}
    mocks = run_production(run_components, {f"{s}_image_ref": ref for s, ref in validated.items()})
    assert {s: app_image(mocks, s) for s in SERVICES} == validated


def test_a_missing_service_output_names_the_service_the_stack_and_the_output(
    run_components: Callable[..., RecordingMocks],
) -> None:
    outputs = {"api_image_ref": f"{REPOSITORIES['api']}@sha256:{'1' * 64}", "image_ref": "x@sha256:" + "2" * 64}
    outputs["web_image_ref"] = f"{REPOSITORIES['web']}@sha256:{'3' * 64}"
    with settled(), pytest.raises(PromotionError) as raised:
        run_production(run_components, outputs)
    message = str(raised.value)
    assert f"service worker: stack {SOURCE} output 'worker_image_ref'" in message
    assert "does not exist" in message


def test_make_settings_reads_one_service_of_several(make_settings: Callable[..., Settings]) -> None:
    secrets = {"grafanaAdminPassword": "pw", "alertWebhookUrl": "https://hooks.example.com/x"}
    worker = make_settings("production", service="worker", secrets=secrets)
    assert worker.service_name == "worker"
    assert worker.registry.repository == REPOSITORIES["worker"]
    assert worker.promotion is not None and worker.promotion.output == "worker_image_ref"
    assert not worker.parts.exposure and not worker.serves_http
    api = make_settings("production", service="api", secrets=secrets, replicas=4)
    assert (api.replicas, api.container_port, api.parts.exposure) == (4, 9000, True)
    with pytest.raises(ValueError, match="say which: service='api'"):
        make_settings("production", secrets=secrets)


# -- 2. a service without a public hostname -----------------------------------------------------


@pytest.mark.parametrize("which", ["staging", "production"])
def test_the_worker_has_no_cloudflare_resource_no_service_and_no_probes(
    which: str, staging_plan: Planned, production_plan: Planned
) -> None:
    plan, mocks = staging_plan if which == "staging" else production_plan
    worker = [r for r in mocks.resources if r.name.startswith("worker-")]
    assert worker, "the worker is planned"
    assert not [r for r in worker if r.type.startswith("cloudflare:") or "Exposure" in r.type]
    cloudflare_names = {r.name.split("-")[0] for r in mocks.resources if r.type.startswith("cloudflare:")}
    assert cloudflare_names == {"api", "web"}
    assert not [r for r in worker if r.type == "kubernetes:core/v1:Service"]
    container = mocks.one(DEPLOYMENT, "worker-workload-deployment").plain_inputs["spec"]["template"]["spec"]
    assert not {"ports", "livenessProbe", "readinessProbe", "startupProbe"} & set(container["containers"][0])
    policy = mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "worker-workload-ingress").plain_inputs
    assert policy["spec"]["ingress"] == []
    rules = mocks.one("kubernetes:monitoring.coreos.com/v1:PrometheusRule", "worker-monitoring-rules").plain_inputs
    alerts = {r.get("alert") for g in rules["spec"]["groups"] for r in g["rules"]}
    assert alerts == {"PodRestarting", "PodCrashLooping", "DeploymentReplicasUnavailable"}
    assert plan.outputs["worker_urls"] == [] and plan.outputs["worker_exposure_urn"] is None
    assert plan.outputs["api_urls"] and mocks.one(DEPLOYMENT, "api-workload-deployment")


def test_one_cluster_monitoring_stack_in_production_watches_all_three(production_plan: Planned) -> None:
    _, mocks = production_plan
    releases = [r.plain_inputs["chart"] for r in mocks.by_type("kubernetes:helm.sh/v3:Release")]
    assert sorted(releases) == ["alloy", "kube-prometheus-stack", "loki"]
    alloy = next(r for r in mocks.by_type("kubernetes:helm.sh/v3:Release") if r.plain_inputs["chart"] == "alloy")
    assert sorted(alloy.plain_inputs["values"]["rbac"]["namespaces"]) == [f"{s}-production" for s in sorted(SERVICES)]


# -- 3. every per-service key checked like a project key -----------------------------------------


def test_a_service_at_stage_sunset_registers_nothing_and_the_others_stay(tmp_path: Path) -> None:
    """What the sunset of one service relies on: its targeted ``up`` removes the ServiceStack and provider too."""
    project = tmp_path / "platform"
    shutil.copytree(HERE, project, ignore=shutil.ignore_patterns("__pycache__", "out", "test_*.py"))
    write_stage(project / "Pulumi.production.yaml", "sunset", "api")
    try:
        plan, mocks = plan_command.run_plan(project, "production", environ={})
    finally:
        pulumi_settings.SETTINGS.outputs.clear()
    names = [r.name for r in mocks.resources]
    assert not [n for n in names if n == "api" or n.startswith("api-")], names
    assert {"web", "worker", "cluster-monitoring"} <= set(names)
    assert not [k for k in plan.outputs if k.startswith("api_")] and "web_image_ref" in plan.outputs


def plan_with(tmp_path: Path, stack: str, edit: Callable[[str], str]) -> tuple[int, str]:
    """The offline plan command on a copy of this example whose ``Pulumi.<stack>.yaml`` went through ``edit``."""
    project = tmp_path / "platform"
    shutil.copytree(HERE, project, ignore=shutil.ignore_patterns("__pycache__", "out", "test_*.py"))
    stack_file = project / f"Pulumi.{stack}.yaml"
    stack_file.write_text(edit(stack_file.read_text()))
    err = io.StringIO()
    try:
        plan_command.run_plan(project, stack, environ={"SOURCE_REVISION": "a" * 40})
    except (StackFileError, SettingsError) as error:
        plan_command.report_problems(stack, error, err)  # what the command prints before exit 2
        return plan_command.EXIT_BAD_SETTINGS, err.getvalue()
    finally:
        pulumi_settings.SETTINGS.outputs.clear()
    return 0, err.getvalue()


def replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    return edit


MISTAKES = {
    "typo": (
        "production",
        replace("  worker:memoryLimit: 512Mi", "  worker:memoryLimit: 512Mi\n  api:memoryLimt: 1Gi"),
        "api:memoryLimt",
        "did you mean api:memoryLimit?",
    ),
    "missing": (
        "production",
        replace("  api:imageRepository: ghcr.io/acme/platform-api\n", ""),
        "api:imageRepository",
        "got <not set>",
    ),
    "missing-typo": (
        "production",
        replace("  api:imageRepository:", "  api:imageRepositry:"),
        "api:imageRepositry",
        "did you mean api:imageRepository?",
    ),
    "type": (
        "production",
        replace('  api:containerPort: "9000"', "  api:containerPort: nine"),
        "api:containerPort",
        "an unprivileged port",
    ),
    "plain-secret": (
        "production",
        replace("  worker:memoryLimit: 512Mi", "  worker:memoryLimit: 512Mi\n  api:cloudflareApiToken: tok-en-123"),
        "api:cloudflareApiToken",
        "pulumi config set --secret api:cloudflareApiToken",
    ),
    "hostname-two-stacks": (
        "staging",
        replace("    - api-staging.example.com", "    - api.example.com"),
        "api:hostnames",
        "Pulumi.production.yaml (stage production) has it too",
    ),
    "shared-once": (
        "production",
        replace('  acme-platform:replicas: "2"', '  acme-platform:replicas: "1"'),
        "acme-platform:replicas",
        "stage production needs at least 2",
    ),
    "shared-missing-once": (
        "production",
        replace("  acme-platform:zoneName: example.com\n", ""),
        "acme-platform:zoneName",
        "got <not set>",
    ),
    "services-key-per-service": (
        "production",
        replace("  worker:memoryLimit: 512Mi", "  worker:memoryLimit: 512Mi\n  web:services: [web]"),
        "web:services",
        "acme-platform:services is the project's",
    ),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_each_per_service_mistake_is_refused_with_exit_2_naming_the_key_once(mistake: str, tmp_path: Path) -> None:
    stack, edit, key, expected = MISTAKES[mistake]
    code, err = plan_with(tmp_path, stack, edit)
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith(f"  {key}:")]
    assert len(lines) == 1, err  # once, not once per service
    assert expected in lines[0], err
    assert "Traceback" not in err
    assert "tok-en-123" not in err  # a secret's value is never shown
    for service in SERVICES:  # a shared key is the project's, never attributed to each service
        if key.startswith("acme-platform:"):
            assert f"  {service}:{key.partition(':')[2]}:" not in err, err


def test_without_a_services_list_a_service_key_is_not_a_providers_typo(tmp_path: Path) -> None:
    code, err = plan_with(tmp_path, "production", replace("  acme-platform:services:\n", "  unused:\n"))
    assert code == 2
    line = next(line for line in err.splitlines() if line.startswith("  worker:imageRepository:"))
    assert "add worker to acme-platform:services" in line
    assert "docker" not in err


def test_the_command_exits_2_on_a_misspelt_service_key_without_a_traceback(tmp_path: Path) -> None:
    project = tmp_path / "platform"
    shutil.copytree(HERE, project, ignore=shutil.ignore_patterns("__pycache__", "out", "test_*.py"))
    stack_file = project / "Pulumi.production.yaml"
    stack_file.write_text(stack_file.read_text() + "  api:memoryLimt: 1Gi\n")
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", "production", "--project-dir", str(project)],
        check=False, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1])},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.count("api:memoryLimt") == 1, result.stderr


# -- 4. the fixtures ---------------------------------------------------------------------------


def test_the_project_dir_is_found_from_the_test_file(pulumi_project_dir: Path) -> None:
    assert pulumi_project_dir == HERE  # no conftest, wherever pytest was started

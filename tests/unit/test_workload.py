"""Workload: the Deployment and its Service, autoscaler, disruption budget and network policy.

Most tests run the whole ServiceStack of a stage from its stack file (what `pulumi up` would
register) and assert on the recorded inputs; the rest build a Workload directly to reach the
arguments a stack file cannot express.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes_validate
import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.sync_await import _sync_await

from components import labels
from components.config.settings import Resources, Settings, SettingsError
from components.service import ServiceStack, ServiceStackArgs
from components.testing import RecordingMocks
from components.workload import (
    CONFIG_CHECKSUM_ANNOTATION,
    TERMINATION_MARGIN_SECONDS,
    PullCredentials,
    Workload,
    WorkloadArgs,
    WorkloadError,
    config_checksum,
    config_data,
    docker_config_json,
    pre_stop_handler,
    termination_grace_seconds,
)

SOURCE = "example-org/service-lifecycle/staging"
PROMOTED = "ghcr.io/example-org/hello@sha256:" + "c" * 64
STACK_OUTPUTS = {SOURCE: {"image_ref": PROMOTED}}
DIGEST_IMAGE = "registry.example.com/acme/hello@sha256:" + "a" * 64
RESOURCES = Resources(cpu_request="100m", cpu_limit="500m", memory_request="128Mi", memory_limit="256Mi")
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
WORKLOAD = "service-lifecycle:index:Workload"

StageRun = Callable[[str], tuple[Settings, RecordingMocks]]


@pytest.fixture
def stage_run(make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]) -> StageRun:
    def run(stage: str) -> tuple[Settings, RecordingMocks]:
        settings = make_settings(stage)
        mocks = run_components(
            lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)) and None,
            stack=stage,
            stack_outputs=STACK_OUTPUTS,
        )
        return settings, mocks

    return run


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """Around a program expected to fail: forget its failed output tasks afterwards.

    Pulumi keeps every output task of a run in ``SETTINGS.outputs`` and installing new mocks
    does not clear it, so the failed tasks of one run would fail the next test's run.
    """
    try:
        yield
    finally:
        with pulumi_settings.SETTINGS.lock:
            pulumi_settings.SETTINGS.outputs.clear()
        pulumi_settings.SETTINGS.rpc_manager.clear()


def workload_args(**overrides: Any) -> WorkloadArgs:
    values: dict[str, Any] = {
        "namespace": "hello-test",
        "service_name": "hello",
        "team": "platform",
        "stage": "staging",
        "app_version": "1.2.3",
        "image": DIGEST_IMAGE,
        "replicas": 2,
        "container_port": 8080,
        "resources": RESOURCES,
        "monitoring_namespace": "monitoring",
        "kubernetes_version": "1.31",
    }
    values.update(overrides)
    return WorkloadArgs(**values)


def run_workload(run_components: Callable[..., RecordingMocks], args: WorkloadArgs) -> tuple[RecordingMocks, Workload]:
    made: list[Workload] = []
    mocks = run_components(lambda: made.append(Workload("hello-workload", args)))
    return mocks, made[0]


def deployment_of(mocks: RecordingMocks) -> dict[str, Any]:
    return mocks.one(DEPLOYMENT, "hello-workload-deployment").plain_inputs


def pod_spec(mocks: RecordingMocks) -> dict[str, Any]:
    spec: dict[str, Any] = deployment_of(mocks)["spec"]["template"]["spec"]
    return spec


def container(mocks: RecordingMocks) -> dict[str, Any]:
    containers = pod_spec(mocks)["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def pod_labels(mocks: RecordingMocks) -> dict[str, str]:
    result: dict[str, str] = deployment_of(mocks)["spec"]["template"]["metadata"]["labels"]
    return result


def resolve(output: Any) -> Any:
    return _sync_await(output.future())


# ---------------------------------------------------------------------------------------------
# Image pinned by digest


def test_deployment_runs_the_image_pinned_by_digest(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    assert container(mocks)["image"] == PROMOTED
    env = {e["name"]: e["value"] for e in container(mocks)["env"]}
    assert env["IMAGE_REF"] == PROMOTED
    assert env["APP_VERSION"] == "1.0.0"


@pytest.mark.parametrize(
    ("setting", "value"),
    [("imageRepository", "ghcr.io/example-org/hello:1.0.0"), ("pinnedDigest", "latest")],
)
def test_tag_only_image_is_a_settings_error(make_settings: Callable[..., Settings], setting: str, value: str) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("production", **{setting: value})
    message = str(raised.value)
    assert f"service-lifecycle:{setting}" in message
    assert repr(value) in message


def test_workload_refuses_a_tag_only_image_before_registering_anything(
    run_components: Callable[..., RecordingMocks],
) -> None:
    mocks = RecordingMocks()
    with settled(), pytest.raises(WorkloadError, match="not pinned by digest"):
        run_components(
            lambda: Workload("hello-workload", workload_args(image="ghcr.io/acme/hello:1.0")) and None, mocks=mocks
        )
    assert mocks.resources == []


def test_workload_refuses_a_tag_only_image_arriving_as_an_output(run_components: Callable[..., RecordingMocks]) -> None:
    image = pulumi.Output.from_input("ghcr.io/acme/hello:latest")
    # the engine wraps errors raised while serialising inputs in ValueErrors naming the resource
    with settled(), pytest.raises(ValueError, match=re.escape("'ghcr.io/acme/hello:latest' is not pinned by digest")):
        run_components(lambda: Workload("hello-workload", workload_args(image=image)) and None)


# ---------------------------------------------------------------------------------------------
# Replicas, rollout, autoscaler, disruption budget


def test_production_replicas_below_two_are_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("production", replicas=1)
    assert "service-lifecycle:replicas: got '1'" in str(raised.value)
    assert make_settings("production", replicas=2).replicas == 2


def test_autoscaler_floor_is_the_configured_replicas(stage_run: StageRun) -> None:
    for stage in ("staging", "production"):
        settings, mocks = stage_run(stage)
        spec = mocks.one(HPA, "hello-workload-autoscaler").plain_inputs["spec"]
        assert spec["minReplicas"] == settings.replicas
        assert spec["maxReplicas"] == 2 * settings.replicas
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello"}
        # the autoscaler owns spec.replicas: setting it too would fight it under server-side apply
        assert "replicas" not in deployment_of(mocks)["spec"]


def test_rolling_update_never_removes_a_ready_pod_first(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    spec = deployment_of(mocks)["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert spec["progressDeadlineSeconds"] == 300


def test_disruption_budget_selects_the_app_pods_and_nothing_else(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    spec = mocks.one(PDB, "hello-workload-disruption-budget").plain_inputs["spec"]
    match = spec["selector"]["matchLabels"]
    assert match == labels.selector("hello", labels.COMPONENT_SERVER)
    assert match.items() <= pod_labels(mocks).items()
    tunnel = labels.selector("hello", labels.COMPONENT_TUNNEL)
    assert not match.items() <= tunnel.items()
    assert spec["maxUnavailable"] == 1


def test_pods_spread_across_nodes_and_zones(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    spread = {c["topologyKey"]: c for c in pod_spec(mocks)["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in spread.values():
        assert constraint["labelSelector"]["matchLabels"] == labels.selector("hello", labels.COMPONENT_SERVER)
        assert constraint["maxSkew"] == 1
    # one pod per node is a hard rule, zones a preference (single-zone clusters still schedule)
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    # a tainted node (control plane, GPU pool) must not count as an empty domain the pods cannot reach
    assert spread["kubernetes.io/hostname"]["nodeTaintsPolicy"] == "Honor"


# ---------------------------------------------------------------------------------------------
# Probes, security, resources, drain


def test_probes_hit_the_app_endpoints(stage_run: StageRun) -> None:
    _, mocks = stage_run("staging")
    c = container(mocks)
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # startup gets a minute before liveness may kill a slow-starting pod
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 60


def test_security_context_is_restricted(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    spec = pod_spec(mocks)
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(mocks)["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # the read-only root needs a writable /tmp, and nothing else is mounted
    assert container(mocks)["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))


def test_no_service_account_token_reaches_the_pods(stage_run: StageRun) -> None:
    _, mocks = stage_run("staging")
    account = mocks.one(SERVICE_ACCOUNT, "hello-workload-service-account").plain_inputs
    assert account["automountServiceAccountToken"] is False
    assert pod_spec(mocks)["automountServiceAccountToken"] is False
    assert pod_spec(mocks)["serviceAccountName"] == account["metadata"]["name"]


def test_requests_and_limits_come_from_settings(stage_run: StageRun) -> None:
    settings, mocks = stage_run("production")
    r = settings.resources
    assert container(mocks)["resources"] == {
        "requests": {"cpu": r.cpu_request, "memory": r.memory_request},
        "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit},
    }


def test_termination_grace_outlasts_prestop_drain_and_shutdown(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    config = mocks.one(CONFIG_MAP, "hello-workload-config").plain_inputs["data"]
    drain, grace = int(config["DRAIN_SECONDS"]), int(config["SHUTDOWN_GRACE_SECONDS"])
    assert (drain, grace) == (5, 20)  # the app's contract defaults, stated explicitly
    prestop = container(mocks)["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert prestop == 5
    total = pod_spec(mocks)["terminationGracePeriodSeconds"]
    assert total == prestop + drain + grace + TERMINATION_MARGIN_SECONDS
    assert total > prestop + drain + grace


def test_drain_timings_follow_the_arguments(run_components: Callable[..., RecordingMocks]) -> None:
    mocks, _ = run_workload(
        run_components, workload_args(drain_seconds=7, shutdown_grace_seconds=30, prestop_seconds=3)
    )
    assert mocks.one(CONFIG_MAP, "hello-workload-config").plain_inputs["data"]["DRAIN_SECONDS"] == "7"
    assert mocks.one(CONFIG_MAP, "hello-workload-config").plain_inputs["data"]["SHUTDOWN_GRACE_SECONDS"] == "30"
    assert pod_spec(mocks)["terminationGracePeriodSeconds"] == 3 + 7 + 30 + TERMINATION_MARGIN_SECONDS


def test_termination_grace_adds_the_margin_to_prestop_drain_and_shutdown() -> None:
    args = workload_args(prestop_seconds=3, drain_seconds=7, shutdown_grace_seconds=30)
    assert termination_grace_seconds(args) == 3 + 7 + 30 + TERMINATION_MARGIN_SECONDS == 45


def test_without_a_prestop_pause_the_container_has_no_lifecycle_hook(
    run_components: Callable[..., RecordingMocks],
) -> None:
    mocks, _ = run_workload(run_components, workload_args(prestop_seconds=0))
    assert "lifecycle" not in container(mocks)
    assert pod_spec(mocks)["terminationGracePeriodSeconds"] == 0 + 5 + 20 + TERMINATION_MARGIN_SECONDS
    with_pause, _ = run_workload(run_components, workload_args(prestop_seconds=1))
    assert container(with_pause)["lifecycle"] == {"preStop": {"sleep": {"seconds": 1}}}


def test_prestop_uses_the_kubelet_sleep_where_the_cluster_has_it() -> None:
    assert pre_stop_handler(5, "1.30") == {"sleep": {"seconds": 5}}
    assert pre_stop_handler(5, "1.37") == {"sleep": {"seconds": 5}}
    # before 1.30 the sleep action was alpha (off): the app image's python3 pauses instead
    assert pre_stop_handler(5, "1.29") == {"exec_": {"command": ["python3", "-c", "import time; time.sleep(5)"]}}


@pytest.mark.parametrize("version", ["1.28", "1.31"])
def test_prestop_handler_validates_for_the_targeted_version(
    run_components: Callable[..., RecordingMocks], version: str
) -> None:
    mocks, _ = run_workload(run_components, workload_args(kubernetes_version=version))
    deployment = deployment_of(mocks)
    kubernetes_validate.validate(deployment, version, strict=True)
    if version == "1.28":
        assert "exec" in container(mocks)["lifecycle"]["preStop"]
        # and the sleep action would indeed be refused by that version's schema
        deployment["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"] = {"sleep": {"seconds": 5}}
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(deployment, version, strict=True)


def test_config_change_rolls_the_pods(run_components: Callable[..., RecordingMocks]) -> None:
    first, _ = run_workload(run_components, workload_args())
    second, _ = run_workload(run_components, workload_args(drain_seconds=8))
    third, _ = run_workload(run_components, workload_args())

    def checksum(mocks: RecordingMocks) -> str:
        value: str = deployment_of(mocks)["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM_ANNOTATION]
        return value

    assert checksum(first) != checksum(second)
    assert checksum(first) == checksum(third)


def test_the_checksum_annotation_is_the_sha256_of_the_config_map_s_canonical_json(
    run_components: Callable[..., RecordingMocks],
) -> None:
    args = workload_args(drain_seconds=9)
    mocks, _ = run_workload(run_components, args)
    data = mocks.one(CONFIG_MAP, "hello-workload-config").plain_inputs["data"]
    assert data == config_data(args)
    assert data == {"SERVICE_NAME": "hello", "PORT": "8080", "DRAIN_SECONDS": "9", "SHUTDOWN_GRACE_SECONDS": "20"}
    annotation = deployment_of(mocks)["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM_ANNOTATION]
    expected = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    assert annotation == config_checksum(data) == expected
    assert config_checksum(dict(reversed(data.items()))) == expected  # canonical: key order does not count


def test_version_reaches_the_container_and_no_git_revision_does(stage_run: StageRun) -> None:
    """The pods carry nothing that changes with a commit alone: the git revision is recorded by the
    deployment (``pulumi up --message``), and the app reports its image's content tag as revision."""
    settings, mocks = stage_run("staging")
    env = {e["name"]: e.get("value") for e in container(mocks)["env"]}
    assert settings.build is not None
    assert "GIT_REVISION" not in env
    assert settings.build.revision not in json.dumps(deployment_of(mocks))
    assert env["APP_VERSION"] == settings.app_version
    assert env["IMAGE_REF"] == container(mocks)["image"]
    assert container(mocks)["envFrom"] == [{"configMapRef": {"name": "hello-config"}}]
    assert mocks.one(CONFIG_MAP, "hello-workload-config").plain_inputs["data"] == {
        "SERVICE_NAME": "hello",
        "PORT": "8080",
        "DRAIN_SECONDS": "5",
        "SHUTDOWN_GRACE_SECONDS": "20",
    }
    _, production = stage_run("production")
    assert "GIT_REVISION" not in {e["name"] for e in container(production)["env"]}


# ---------------------------------------------------------------------------------------------
# Pulling from a private registry


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_private_registry_pods_pull_with_the_service_account_secret(stage_run: StageRun, stage: str) -> None:
    """GHCR packages are private by default: without a pull secret the pods sit in ImagePullBackOff.
    The ServiceAccount admission plugin copies a ServiceAccount's ``imagePullSecrets`` into each pod
    that runs as it (Kubernetes docs, "Add ImagePullSecrets to a service account")."""
    settings, mocks = stage_run(stage)
    assert settings.registry.pull_secret
    secret = mocks.one("kubernetes:core/v1:Secret", "hello-workload-pull-secret")
    inputs = secret.plain_inputs
    assert inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert inputs["metadata"]["namespace"] == f"hello-{stage}"
    document = json.loads(inputs["stringData"][".dockerconfigjson"])
    login = document["auths"]["ghcr.io"]
    assert login["username"] == settings.registry.username
    assert login["password"] == "test-pull-token-3a7c"
    assert base64.b64decode(login["auth"]).decode() == f"{settings.registry.username}:test-pull-token-3a7c"
    # the token is a secret on the wire and never in the recorded plan
    assert "test-pull-token-3a7c" not in json.dumps(secret.to_json())
    account = mocks.one(SERVICE_ACCOUNT).plain_inputs
    assert account["imagePullSecrets"] == [{"name": "hello-pull"}]
    assert pod_spec(mocks)["serviceAccountName"] == account["metadata"]["name"]
    kubernetes_validate.validate(_whole(inputs), "1.31", strict=True)
    kubernetes_validate.validate(_whole(account), "1.31", strict=True)


def test_without_pull_credentials_there_is_no_pull_secret(run_components: Callable[..., RecordingMocks]) -> None:
    mocks, _ = run_workload(run_components, workload_args())
    assert mocks.by_type("kubernetes:core/v1:Secret") == []
    assert "imagePullSecrets" not in mocks.one(SERVICE_ACCOUNT).plain_inputs


def test_pull_credentials_build_the_secret(run_components: Callable[..., RecordingMocks]) -> None:
    login = PullCredentials(server="registry.example.com", username="puller", password=pulumi.Output.secret("pw-1"))
    mocks, _ = run_workload(run_components, workload_args(pull_credentials=login))
    secret = mocks.one("kubernetes:core/v1:Secret")
    assert json.loads(secret.plain_inputs["stringData"][".dockerconfigjson"]) == json.loads(
        docker_config_json("registry.example.com", "puller", "pw-1")
    )
    assert "pw-1" not in json.dumps(secret.to_json())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"registryPullPassword": None}, "service-lifecycle:registryPullPassword: got <not set>"),
        ({"registryUsername": None}, "service-lifecycle:registryUsername: got <not set>"),
        (
            {"imageRepository": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello", "registryUsername": None},
            "service-lifecycle:imagePullSecret: got 'true'; expected false for ECR",
        ),
    ],
)
def test_pull_secret_settings_problems_name_the_key(
    make_settings: Callable[..., Settings], overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        make_settings("production", **overrides)


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Service and network policy


def test_service_is_cluster_ip_and_selects_the_app_pods(stage_run: StageRun) -> None:
    _, mocks = stage_run("production")
    spec = mocks.one(SERVICE, "hello-workload-service").plain_inputs["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["selector"] == labels.selector("hello", labels.COMPONENT_SERVER)
    assert spec["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]
    assert "externalIPs" not in spec


def test_network_policy_admits_only_cloudflared_and_monitoring_to_the_app_port(stage_run: StageRun) -> None:
    settings, mocks = stage_run("production")
    policies = {p.plain_inputs["metadata"]["name"]: p.plain_inputs["spec"] for p in mocks.by_type(NETWORK_POLICY)}
    spec = policies["hello-ingress"]
    assert spec["podSelector"] == {"matchLabels": labels.selector("hello", labels.COMPONENT_SERVER)}
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["ingress"] == [
        {
            "from": [
                {"podSelector": {"matchLabels": labels.selector("hello", labels.COMPONENT_TUNNEL)}},
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.monitoring.namespace}}},
            ],
            "ports": [{"protocol": "TCP", "port": settings.container_port}],
        }
    ]


def test_network_policy_follows_the_monitoring_namespace_setting(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]
) -> None:
    settings = make_settings("staging", monitoringNamespace="observability")
    mocks = run_components(lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)) and None, stack="staging")
    spec = next(
        p.plain_inputs["spec"]
        for p in mocks.by_type(NETWORK_POLICY)
        if p.plain_inputs["metadata"]["name"] == "hello-ingress"
    )
    peers = spec["ingress"][0]["from"]
    assert peers[1] == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}


# ---------------------------------------------------------------------------------------------
# Outputs, names, parenting, argument checks


def test_outputs_give_consumers_what_they_need(run_components: Callable[..., RecordingMocks]) -> None:
    _, workload = run_workload(run_components, workload_args())
    assert resolve(workload.url) == "http://hello.hello-test.svc.cluster.local:8080"
    assert resolve(workload.namespace) == "hello-test"
    assert resolve(workload.service_name) == "hello"
    assert workload.service_port == workload.container_port == 8080
    assert workload.port_name == "http"
    assert workload.selector == labels.selector("hello", labels.COMPONENT_SERVER)
    assert resolve(workload.image) == DIGEST_IMAGE


def test_every_object_is_named_and_parented(stage_run: StageRun) -> None:
    _, mocks = stage_run("staging")
    workload = mocks.one(WORKLOAD, "hello-workload")
    assert workload.urn.endswith("ServiceStack$service-lifecycle:index:Workload::hello-workload")
    children = mocks.children_of(workload.urn)
    assert sorted(r.type for r in children) == sorted(
        [DEPLOYMENT, SERVICE, HPA, PDB, NETWORK_POLICY, CONFIG_MAP, SERVICE_ACCOUNT, "kubernetes:core/v1:Secret"]
    )
    for child in children:
        assert child.name.startswith("hello-workload-")
        assert "$service-lifecycle:index:Workload$kubernetes:" in child.urn
        metadata = child.plain_inputs["metadata"]
        assert metadata["namespace"] == "hello-staging"
        assert metadata["name"].startswith("hello")
        assert metadata["labels"][labels.STAGE_LABEL] == "staging"
        # created only once the namespace exists
        assert mocks.one("kubernetes:core/v1:Namespace").urn in child.dependencies


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"replicas": 0}, "replicas is 0"),
        ({"max_replicas": 1}, "max_replicas is 1; expected at least replicas (2)"),
        ({"kubernetes_version": "v1.31"}, "expected 1.<minor>"),
        ({"prestop_seconds": -1}, "prestop_seconds is -1"),
        ({"run_as_user": 0}, "non-root UID"),
        ({"target_cpu_utilization": 0}, "target_cpu_utilization is 0"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_registered(
    run_components: Callable[..., RecordingMocks], overrides: dict[str, Any], message: str
) -> None:
    mocks = RecordingMocks()
    with settled(), pytest.raises(WorkloadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_components(lambda: Workload("hello-workload", workload_args(**overrides)) and None, mocks=mocks)
    assert mocks.resources == []


def test_a_worker_that_serves_nothing_has_no_service_port_probes_or_ingress(
    run_components: Callable[..., RecordingMocks],
) -> None:
    made: list[Workload] = []
    args = WorkloadArgs(
        namespace="jobs", service_name="worker", team="t", stage="production", app_version="1.0.0",
        image="ghcr.io/acme/worker@sha256:" + "a" * 64, replicas=2, container_port=8080,
        resources=Resources(cpu_request="100m", cpu_limit="500m", memory_request="128Mi", memory_limit="256Mi"),
        monitoring_namespace="monitoring", kubernetes_version="1.31", serves_http=False,
    )  # fmt: skip
    mocks = run_components(lambda: made.append(Workload("worker-workload", args)))
    assert not mocks.by_type("kubernetes:core/v1:Service")
    container = mocks.one("kubernetes:apps/v1:Deployment").plain_inputs["spec"]["template"]["spec"]["containers"][0]
    assert not {"ports", "startupProbe", "livenessProbe", "readinessProbe", "lifecycle"} & set(container)
    policy = mocks.one("kubernetes:networking.k8s.io/v1:NetworkPolicy").plain_inputs["spec"]
    assert policy["ingress"] == [] and policy["policyTypes"] == ["Ingress"]
    assert made[0].service_name is None and made[0].url is None and made[0].serves_http is False

"""The steps of the e2e lifecycle and the checks of each step's effect in the real systems' state.

Each step is an action (the commands the workflows run) and a check that reads the API server, the
registry, the Cloudflare fake and the Pulumi state, never the program's outputs. ``engine/e2e.py``
runs them in order; ``tests/integration/test_real_engine.py`` runs that and asserts on the report.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import string
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import controlplane, urns

if TYPE_CHECKING:
    from engine.e2e import Systems

PROJECT = "service-lifecycle"
SERVICE = "hello"
NAMESPACES = {"staging": "hello-staging", "production": "hello-production"}
MONITORING_NAMESPACE = "monitoring"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"
)
SKIP_RESOURCES = {"events", "bindings", "localsubjectaccessreviews", "endpoints", "endpointslices"}


def token(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


# -- reading the real systems --------------------------------------------------------------------


def _resources(plane: Any) -> list[tuple[str, str, bool]]:
    """(API path prefix, resource plural, namespaced) of every listable resource the server serves."""
    found: list[tuple[str, str, bool]] = []
    core = plane.get("/api/v1")
    found += [("/api/v1", r["name"], r["namespaced"]) for r in core["resources"] if "list" in r.get("verbs", [])]
    for group in plane.get("/apis")["groups"]:
        version = group["preferredVersion"]["groupVersion"]
        listing = plane.get(f"/apis/{version}")
        found += [
            (f"/apis/{version}", r["name"], r["namespaced"])
            for r in listing["resources"]
            if "list" in r.get("verbs", [])
        ]
    return [(p, n, ns) for p, n, ns in found if "/" not in n and n not in SKIP_RESOURCES]


def redacted(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` without its managedFields, a Secret's values replaced by their length (what an artefact may hold)."""
    metadata = item.get("metadata", {})
    metadata.pop("managedFields", None)
    if item.get("kind") == "Secret":
        for key in ("data", "stringData"):
            if key in item:
                item[key] = {k: f"[redacted: {len(v)} characters]" for k, v in item[key].items()}
        metadata.get("annotations", {}).pop("kubectl.kubernetes.io/last-applied-configuration", None)
    return item


def cluster_objects(plane: Any, service: str) -> dict[str, Any]:
    """Every object in the service's namespaces and the monitoring namespace, and those namespaces."""
    wanted = [*NAMESPACES.values(), MONITORING_NAMESPACE]
    paths = [f"/api/v1/namespaces/{name}" for name in wanted]
    namespaces = [redacted(plane.get(path)) for path in paths if plane.exists(path)]
    objects: dict[str, list[dict[str, Any]]] = {}
    for prefix, plural, namespaced in _resources(plane):
        if not namespaced:
            continue
        for namespace in [n["metadata"]["name"] for n in namespaces]:
            try:
                listing = plane.get(f"{prefix}/namespaces/{namespace}/{plural}")
            except urllib.error.HTTPError:
                continue
            for item in listing.get("items", []):
                if namespace == MONITORING_NAMESPACE and not item["metadata"]["name"].startswith(service):
                    continue
                if plural in ("serviceaccounts", "configmaps") and item["metadata"]["name"] in (
                    "default",
                    "kube-root-ca.crt",
                ):
                    continue
                item.setdefault("kind", listing.get("kind", "").removesuffix("List"))
                objects.setdefault(f"{prefix.removeprefix('/api').removeprefix('s/').strip('/')}/{plural}", []).append(
                    redacted(item)
                )
    return {"namespaces": namespaces, "objects": objects}


def cloudflare_state(fake: Any) -> dict[str, Any]:
    return dict(fake.state())


def registry_state(url: str) -> dict[str, Any]:
    """Each repository's tags and the digest each tag points at."""
    repositories = json.loads(_get(f"{url}/v2/_catalog")[1]).get("repositories", [])
    state: dict[str, Any] = {}
    for repository in repositories:
        tags = json.loads(_get(f"{url}/v2/{repository}/tags/list")[1]).get("tags") or []
        state[repository] = {tag: manifest_digest(url, repository, tag) for tag in sorted(tags)}
    return state


def manifest_digest(url: str, repository: str, reference: str) -> str | None:
    request = urllib.request.Request(
        f"{url}/v2/{repository}/manifests/{reference}", method="HEAD", headers={"Accept": MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            digest: str | None = answer.headers.get("Docker-Content-Digest")
            return digest
    except urllib.error.HTTPError:
        return None


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status), answer.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def state_resources(systems: Systems, stack: str) -> list[dict[str, Any]]:
    exported = systems.ws.pulumi("stack", "export", "--stack", stack).stdout
    return list(json.loads(exported).get("deployment", {}).get("resources") or [])


def stack_outputs(systems: Systems, stack: str) -> dict[str, Any]:
    return dict(json.loads(systems.ws.pulumi("stack", "output", "--stack", stack, "--json").stdout))


def deployment(systems: Systems, namespace: str, which: str) -> dict[str, Any] | None:
    """The service's workload (``workload``: named as the service) or its connectors (``cloudflared``)."""
    name = SERVICE if which == "workload" else f"{SERVICE}-{which}"
    listing = systems.plane.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")
    for item in listing.get("items", []):
        if item["metadata"]["name"] == name:
            return dict(item)
    return None


def workload_image(systems: Systems, stack: str) -> str | None:
    found = deployment(systems, NAMESPACES[stack], "workload")
    if found is None:
        return None
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def wait_available(systems: Systems, namespace: str, timeout: float = 120) -> list[str]:
    """Every Deployment of ``namespace`` Available and settled: its rollout observed, and, where an
    autoscaler owns its replicas, scaled by that autoscaler at least once. A Deployment without
    ``spec.replicas`` starts with one pod; the HPA controller raises it to ``minReplicas`` on its first
    sync (every 15 s), so a snapshot taken before that sees the Deployment, its ReplicaSet and its
    pods change later with nothing applied (the platform run's untouched services did, once)."""
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    while time.monotonic() < deadline:
        problems = []
        listing = systems.plane.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")
        autoscalers = systems.plane.get(f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers")
        if not listing.get("items"):
            problems.append(f"no Deployment in {namespace}")
        for item in listing.get("items", []):
            name = f"{namespace}/{item['metadata']['name']}"
            status = item.get("status", {})
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if conditions.get("Available") != "True":
                problems.append(f"Deployment {name} is not Available: {conditions}")
            problems += _unsettled(name, item, autoscalers.get("items", []))
        if not problems:
            return []
        time.sleep(1)
    return problems


def _unsettled(name: str, deployment: dict[str, Any], autoscalers: list[dict[str, Any]]) -> list[str]:
    """Why ``deployment`` may still change on its own: a rollout not yet observed or finished, or an
    autoscaler targeting it that has not scaled it to its own count."""
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    replicas = spec.get("replicas", 1)
    if status.get("observedGeneration") != deployment["metadata"].get("generation"):
        return [f"Deployment {name}: generation {deployment['metadata'].get('generation')} not yet observed"]
    if (status.get("updatedReplicas"), status.get("readyReplicas"), status.get("replicas")) != (replicas,) * 3:
        return [f"Deployment {name}: {status.get('readyReplicas')} of {replicas} replicas ready and updated"]
    for hpa in autoscalers:
        target = hpa["spec"]["scaleTargetRef"]
        if target.get("kind") != "Deployment" or target.get("name") != deployment["metadata"]["name"]:
            continue
        low = hpa["spec"].get("minReplicas", 1)
        current = hpa.get("status", {}).get("currentReplicas")
        if replicas < low or current != replicas:
            return [f"Deployment {name}: {replicas} replicas, its autoscaler's minimum {low}, it saw {current}"]
    return []


# -- steps and checks ------------------------------------------------------------------------------


def _preview_json(systems: Systems, stack: str, *extra: str) -> list[dict[str, Any]]:
    result = systems.ws.pulumi("preview", "--stack", stack, "--json", *extra)
    steps = json.loads(result.stdout).get("steps", [])
    systems.extra[f"preview-{stack}"] = steps
    return list(steps)


def _offline_plan(systems: Systems, stack: str) -> dict[str, Any]:
    out = systems.root / "offline" / stack
    systems.ws.run(["venv/bin/python", "-m", "components", "plan", "--stack", stack, "--out", str(out)])
    return dict(json.loads((out / "plan.json").read_text()))


def step_preview_staging(systems: Systems) -> None:
    _preview_json(systems, "staging")
    systems.extra["offline-staging"] = _offline_plan(systems, "staging")


def check_preview_staging(systems: Systems) -> list[str]:
    problems = urns.compare(systems.extra.get("preview-staging", []), systems.extra.get("offline-staging", {}))
    if systems.plane.exists(f"/api/v1/namespaces/{NAMESPACES['staging']}"):
        problems.append("a preview created the staging namespace")
    return problems


VIOLATION_PROGRAM = '''"""A program with one planted guard-rail violation: a LoadBalancer Service."""
import pulumi
import pulumi_kubernetes as k8s

k8s.core.v1.Service(
    "exposed",
    metadata={"name": "exposed", "namespace": "default"},
    spec={"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]},
)
'''


POLICY_BIN = Path(__file__).resolve().parent / "standin" / "policy-bin"
"""The language host proxy (engine/standin/language_proxy.py), first on PATH for the policy runs."""


def step_policy(systems: Systems) -> None:
    ws = systems.ws
    env = {"PATH": os.pathsep.join([str(POLICY_BIN), ws.env["PATH"]])}
    systems.extra["policy-pass"] = ws.pulumi(
        "preview", "--stack", "staging", "--policy-pack", "policy", env=env, check=False
    )
    program = ws.root / "violation"
    program.mkdir(exist_ok=True)
    (program / "Pulumi.yaml").write_text("name: planted-violation\nruntime:\n  name: python\n")
    (program / "__main__.py").write_text(VIOLATION_PROGRAM)
    ws.run(["pulumi", "stack", "init", "violation", "--non-interactive"], cwd=program)
    systems.extra["policy-violation"] = ws.run(
        ["pulumi", "preview", "--non-interactive", "--stack", "violation", "--policy-pack", str(ws.project / "policy")],
        cwd=program,
        env=env,
        check=False,
    )


def check_policy(systems: Systems) -> list[str]:
    problems = []
    passed = systems.extra.get("policy-pass")
    if passed is None or passed.code != 0:
        problems.append(f"the compliant staging preview under --policy-pack failed: {passed and passed.tail()}")
    violation = systems.extra.get("policy-violation")
    if violation is None or violation.code == 0:
        problems.append("the planted LoadBalancer passed the policy pack")
    elif "no-loadbalancer-or-nodeport" not in violation.stdout + violation.stderr:
        problems.append(f"the planted violation failed, but not by the pack's rule:\n{violation.tail()}")
    return problems


def step_up_staging(systems: Systems) -> None:
    systems.plane.create(
        "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MONITORING_NAMESPACE}}
    ) if not systems.plane.exists(f"/api/v1/namespaces/{MONITORING_NAMESPACE}") else None
    systems.ws.pulumi("up", "--stack", "staging", "--yes", "--skip-preview")


def check_up_staging(systems: Systems) -> list[str]:
    problems: list[str] = []
    plane, namespace = systems.plane, NAMESPACES["staging"]
    if not plane.exists(f"/api/v1/namespaces/{namespace}"):
        return [f"namespace {namespace} does not exist"]
    labels = plane.get(f"/api/v1/namespaces/{namespace}")["metadata"].get("labels", {})
    if labels.get("pod-security.kubernetes.io/enforce") != "restricted":
        problems.append(f"namespace {namespace} does not enforce Pod Security restricted: {labels}")
    for kind, path in (("ResourceQuota", "resourcequotas"), ("LimitRange", "limitranges")):
        if not plane.get(f"/api/v1/namespaces/{namespace}/{path}").get("items"):
            problems.append(f"no {kind} in {namespace}")
    problems += wait_available(systems, namespace)
    pods = plane.get(f"/api/v1/namespaces/{namespace}/pods").get("items", [])
    if not pods:
        problems.append(f"no Pod in {namespace}: admission refused them or nothing was scheduled")
    for path in ("servicemonitors", "prometheusrules"):
        if not plane.get(f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/{path}").get("items"):
            problems.append(f"no {path} in {namespace}")
    image = workload_image(systems, "staging")
    registry = registry_state(systems.registry.url)
    digests = set(registry.get(SERVICE, {}).values())
    if image is None or "@sha256:" not in image:
        problems.append(f"the workload does not run an image by digest: {image}")
    elif image.split("@", 1)[1] not in digests:
        problems.append(f"the workload's digest {image} is not in the registry ({sorted(digests)})")
    systems.extra["staging-image"] = image
    connector = deployment(systems, namespace, "cloudflared")
    if connector is None:
        problems.append("no cloudflared Deployment")
    else:
        volumes = connector["spec"]["template"]["spec"].get("volumes", [])
        if not any("secret" in v for v in volumes):
            problems.append("cloudflared mounts no token Secret")
    problems += _cloudflare_has(systems, "staging", present=True, access=True)
    return problems


def _cloudflare_has(systems: Systems, stack: str, *, present: bool, access: bool) -> list[str]:
    state = systems.cloudflare.state()
    name = f"{SERVICE}-{stack}"
    tunnels = [t for t in state.get("tunnels", []) if t.get("name") == name and not t.get("deleted_at")]
    records = [
        r for r in state.get("dns_records", []) if str(r.get("content", "")).split(".")[0] in {t["id"] for t in tunnels}
    ]
    records_by_name = [r for r in state.get("dns_records", []) if _record_of(r, stack)]
    apps = [a for a in state.get("access_apps", []) if a.get("name") == f"{SERVICE} ({stack})"]
    problems = []
    if present:
        if not tunnels:
            problems.append(f"no tunnel {name} in the Cloudflare API")
        if not records:
            problems.append(f"no DNS record pointing at tunnel {name}")
        if access and not apps:
            problems.append(f"no Access application for {name}")
    else:
        for what, found in (("tunnel", tunnels), ("DNS record", records_by_name), ("Access application", apps)):
            if found:
                problems.append(f"{what}s of {name} remain: {[f.get('name') for f in found]}")
        policies = [p for p in state.get("access_policies", []) if str(p.get("name", "")).startswith(name)]
        if policies:
            problems.append(f"Access policies of {name} remain: {[p['name'] for p in policies]}")
    return problems


def _record_of(record: dict[str, Any], stack: str) -> bool:
    return f"{SERVICE} ({stack})" in str(record.get("comment", ""))


def step_validate(systems: Systems) -> None:
    """Smoke test of what staging runs. kwok fakes the pods (no kubelet runs a container), so the
    local stand-in for the staging URL is the Deployment's own image, pulled by digest from the
    registry and run by the real Docker engine with the pod's environment, published on loopback."""
    image = workload_image(systems, "staging")
    if image is None:
        raise RuntimeError("no staging workload to validate")
    port = controlplane.free_port()
    name = f"e2e-staging-{token(6).lower()}"
    container = _deployment_env(systems, "staging")
    env_args = [item for key, value in container.items() for item in ("--env", f"{key}={value}")]
    systems.docker.docker("pull", image, timeout=300)
    systems.docker.docker(
        "run", "--detach", "--name", name, "--read-only", "--tmpfs", "/tmp", "--user", "10001:10001",
        "--publish", f"127.0.0.1:{port}:8080", *env_args, image, timeout=120,
    )  # fmt: skip
    try:
        version = _config_value(systems, "staging", "appVersion")
        systems.extra["smoke"] = systems.ws.run(
            ["venv/bin/python", "-m", "components", "smoke", "--url", f"http://127.0.0.1:{port}",
             "--expect-version", version, "--timeout", "60"],
            check=False,
        )  # fmt: skip
    finally:
        systems.docker.docker("rm", "-f", name, check=False)


def _deployment_env(systems: Systems, stack: str) -> dict[str, str]:
    found = deployment(systems, NAMESPACES[stack], "workload")
    assert found is not None
    env = {}
    for item in found["spec"]["template"]["spec"]["containers"][0].get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def _config_value(systems: Systems, stack: str, key: str) -> str:
    return systems.ws.pulumi("config", "get", "--stack", stack, f"{PROJECT}:{key}").stdout.strip()


def check_validate(systems: Systems) -> list[str]:
    smoke = systems.extra.get("smoke")
    if smoke is None:
        return ["the smoke test did not run"]
    return [] if smoke.code == 0 else [f"smoke exited {smoke.code}:\n{smoke.tail()}"]


def step_preview_production(systems: Systems) -> None:
    _preview_json(systems, "production")
    systems.extra["offline-production"] = _offline_plan(systems, "production")


def check_preview_production(systems: Systems) -> list[str]:
    return urns.compare(systems.extra.get("preview-production", []), systems.extra.get("offline-production", {}))


def step_up_production(systems: Systems) -> None:
    systems.extra["registry-before-production"] = registry_state(systems.registry.url)
    systems.ws.pulumi("up", "--stack", "production", "--yes", "--skip-preview")


def check_up_production(systems: Systems) -> list[str]:
    problems: list[str] = []
    namespace = NAMESPACES["production"]
    if not systems.plane.exists(f"/api/v1/namespaces/{namespace}"):
        return [f"namespace {namespace} does not exist"]
    production, staging = workload_image(systems, "production"), workload_image(systems, "staging")
    if production is None or staging is None or production.split("@")[-1] != staging.split("@")[-1]:
        problems.append(f"production runs {production}, staging validated {staging}")
    if registry_state(systems.registry.url) != systems.extra.get("registry-before-production"):
        problems.append("production's up changed the registry: something was built or pushed")
    resources = state_resources(systems, "production")
    if any(r["type"].startswith("docker:") for r in resources):
        problems.append("production's state holds docker resources: it built an image")
    references = [r for r in resources if r["type"] == "pulumi:pulumi:StackReference"]
    if not references:
        problems.append("production's state holds no StackReference: the digest was not read from staging")
    namespaces = [r for r in resources if r["type"] == "kubernetes:core/v1:Namespace"]
    if not namespaces or not all(r.get("protect") for r in namespaces):
        problems.append("production's namespace is not protected in the state")
    problems += wait_available(systems, namespace)
    problems += _cloudflare_has(systems, "production", present=True, access=False)
    return problems


PATCH_FILE = "app/server.py"


def step_patch(systems: Systems) -> None:
    ws = systems.ws
    path = ws.project / PATCH_FILE
    path.write_text(path.read_text() + "\n# patch: a change of the app's code, by the e2e run\n")
    ws.git("commit", "--quiet", "-am", "patch: app code")
    ws.git("push", "--quiet", "origin", "main")
    systems.extra["staging-image-before-patch"] = workload_image(systems, "staging")
    systems.extra["patch-preview"] = _preview_json(systems, "staging")
    ws.pulumi("up", "--stack", "staging", "--yes", "--skip-preview")
    # As the pipeline does: the patch staging validated is promoted to production.
    ws.pulumi("up", "--stack", "production", "--yes", "--skip-preview")


PATCH_MAY_CHANGE = re.compile(
    r"(docker:index/(image:Image|tag:Tag|registryImage:RegistryImage)"
    r"|kubernetes:apps/v1:Deployment|pulumi:pulumi:Stack|service-lifecycle:index:(ContainerImage|ServiceStack|Workload))$"
)


def check_patch(systems: Systems) -> list[str]:
    problems = []
    changed = [s for s in systems.extra.get("patch-preview", []) if s.get("op") not in ("same", "read")]
    if not changed:
        problems.append("the patch's preview shows no change")
    for step in changed:
        kind = step.get("urn", "").split("::")[2].split("$")[-1]
        if not PATCH_MAY_CHANGE.search(kind):
            reasons = {k: step.get(k) for k in ("diffReasons", "replaceReasons", "detailedDiff") if step.get(k)}
            problems.append(f"the patch's preview changes {step.get('op')} {step.get('urn')} {reasons}")
        if kind == "kubernetes:apps/v1:Deployment" and "cloudflared" in step.get("urn", ""):
            problems.append("the patch's preview changes cloudflared")
    before, after = systems.extra.get("staging-image-before-patch"), workload_image(systems, "staging")
    if before == after:
        problems.append(f"staging still runs {after} after the patch's up")
    production = workload_image(systems, "production")
    if after is None or production is None or production.split("@")[-1] != after.split("@")[-1]:
        problems.append(f"production runs {production}, not the patch staging runs ({after})")
    problems += wait_available(systems, NAMESPACES["staging"])
    return problems


def step_noop(systems: Systems) -> None:
    ws = systems.ws
    (ws.project / "docs" / "e2e-note.md").write_text("A commit that does not touch app/.\n")
    ws.git("add", "-A")
    ws.git("commit", "--quiet", "-m", "docs only")
    ws.git("push", "--quiet", "origin", "main")
    systems.extra["noop"] = [
        ws.pulumi("preview", "--stack", stack, "--expect-no-changes", check=False) for stack in STACKS_ORDER
    ]


STACKS_ORDER = ("staging", "production")


def check_noop(systems: Systems) -> list[str]:
    results = systems.extra.get("noop") or []
    if len(results) != len(STACKS_ORDER):
        return ["the no-op previews did not run"]
    return [
        f"{stack}: `pulumi preview --expect-no-changes` exited {r.code}:\n{r.tail()}"
        for stack, r in zip(STACKS_ORDER, results, strict=True)
        if r.code != 0
    ]


@contextlib.contextmanager
def read_only_job(systems: Systems) -> Iterator[dict[str, str]]:
    """A workflow job with read-only credentials (pull-request.yml's preview, drift.yml's): the stack's
    write credentials removed from its file (restored after), and for the providers a kubeconfig of
    the `view` role and a Cloudflare read token. Yields the job's environment."""
    ws = systems.ws
    for key in ("cloudflareApiToken", "kubeconfig"):
        ws.pulumi("config", "rm", "--stack", "staging", f"{PROJECT}:{key}")
    try:
        yield {"KUBECONFIG": str(readonly_kubeconfig(systems)), "CLOUDFLARE_API_TOKEN": systems.read_token}
    finally:
        ws.git("checkout", "--quiet", "--", "Pulumi.staging.yaml")


def step_pr_preview(systems: Systems) -> None:
    """pull-request.yml's same-repository preview job: `preview --diff --policy-pack policy` with
    read-only credentials; then an `up` with the same settings, which must be refused."""
    ws = systems.ws
    # The probe `up` below is refused by the cluster and the API, but the engine still records the
    # providers' new inputs (no token, the read-only kubeconfig) in the state before the first resource
    # fails: the job's backend credentials can write the state. The workflow never runs `up`; the probe
    # runs between an export and an import of the state, so the next deploy starts from main's state.
    ws.git("stash", "--quiet", "--include-untracked", check=False)  # the job checks out the commit alone
    saved = systems.root / "staging-before-probe.json"
    ws.pulumi("stack", "export", "--stack", "staging", "--file", str(saved))
    try:
        with read_only_job(systems) as env:
            systems.extra["pr-preview"] = ws.pulumi(
                "preview", "--stack", "staging", "--diff", "--policy-pack", "policy",
                env={**env, "PATH": os.pathsep.join([str(POLICY_BIN), ws.env["PATH"]])}, check=False,
            )  # fmt: skip
            # An up that has something to write (one more replica), with the same settings: refused.
            ws.pulumi("config", "set", "--stack", "staging", f"{PROJECT}:replicas", "2")
            systems.extra["pr-up"] = ws.pulumi(
                "up", "--stack", "staging", "--yes", "--skip-preview", env=env, check=False
            )
    finally:
        ws.pulumi("stack", "import", "--stack", "staging", "--file", str(saved))
        saved.unlink()


def readonly_kubeconfig(systems: Systems) -> Path:
    plane = systems.plane
    path = systems.root / "readonly-kubeconfig"
    text = plane.kubeconfig.read_text().replace(plane.token, plane.read_token)
    path.write_text(text)
    path.chmod(0o600)
    return path


def check_pr_preview(systems: Systems) -> list[str]:
    problems = []
    preview, up = systems.extra.get("pr-preview"), systems.extra.get("pr-up")
    if preview is None or preview.code != 0:
        problems.append(f"the read-only preview failed: {preview and preview.tail()}")
    elif not re.search(r"Policy Packs run:|Loading policy packs", preview.stdout + preview.stderr):
        problems.append(f"the read-only preview ran without the policy pack: {preview.tail()}")
    if up is None or up.code == 0:
        problems.append("an up with the preview job's read-only settings was not refused")
    return problems


def _drift_report(systems: Systems, label: str) -> dict[str, Any]:
    """drift.yml's preview job on staging: the stack's write credentials removed, read-only ones given,
    `pulumi preview --refresh --expect-no-changes`, then `python -m components drift classify` on its
    output. Returns the classifier's report (clean, drift with the changed resources, or error)."""
    ws = systems.ws
    with read_only_job(systems) as env:
        preview = ws.pulumi(
            "preview", "--stack", "staging", "--refresh", "--expect-no-changes", "--color", "never",
            "--suppress-progress", env=env, check=False,
        )  # fmt: skip
    log = systems.root / f"drift-{label}.txt"
    log.write_text(preview.stdout + preview.stderr)
    out = systems.root / f"drift-{label}"
    ws.run(["venv/bin/python", "-m", "components", "drift", "classify", "--stack", "staging",
            "--exit-code", str(preview.code), "--log", str(log), "--out", str(out)], check=False)  # fmt: skip
    report = out / "staging.json"
    return dict(json.loads(report.read_text())) if report.is_file() else {"status": "no report", "detail": ""}


ENFORCE = "pod-security.kubernetes.io/enforce"
NAMESPACE = "kubernetes:core/v1:Namespace"


def _enforce_label(systems: Systems) -> str | None:
    labels = systems.plane.get(f"/api/v1/namespaces/{NAMESPACES['staging']}")["metadata"].get("labels", {})
    enforce: str | None = labels.get(ENFORCE)
    return enforce


def step_drift(systems: Systems) -> None:
    """Someone relaxes the staging namespace's Pod Security through the API server: a field the program
    applies. (Scaling the Deployment is no drift here: it has no ``spec.replicas``, its autoscaler owns
    them, and the HPA controller scales it back within its bounds.)"""
    systems.plane.patch(
        f"/api/v1/namespaces/{NAMESPACES['staging']}", {"metadata": {"labels": {ENFORCE: "privileged"}}}
    )
    systems.extra["drifted-enforce"] = _enforce_label(systems)
    systems.extra["drift-found"] = _drift_report(systems, "found")
    # The repair is the next deploy from main: `up --refresh` with the stack's own credentials.
    systems.ws.pulumi("up", "--stack", "staging", "--refresh", "--yes", "--skip-preview")
    systems.extra["drift-after-repair"] = _drift_report(systems, "after-repair")


def check_drift(systems: Systems) -> list[str]:
    problems = []
    if systems.extra.get("drifted-enforce") != "privileged":
        problems.append(f"the drift was not made: enforce is {systems.extra.get('drifted-enforce')}")
    found, after = systems.extra.get("drift-found") or {}, systems.extra.get("drift-after-repair") or {}
    changed = [str(change) for change in found.get("changes") or []]
    if found.get("status") != "drift" or not any(c.startswith("~") and NAMESPACE in c for c in changed):
        problems.append(
            "drift.yml's preview and classifier did not report the relaxed namespace: "
            f"{found.get('status')} {changed} {str(found.get('detail'))[-1500:]}"
        )
    if _enforce_label(systems) != "restricted":
        problems.append(f"`up --refresh` did not put Pod Security back: enforce is {_enforce_label(systems)}")
    if after.get("status") != "clean":
        problems.append(f"after the repair the drift check says {after.get('status')}: {after.get('changes')}")
    return problems


def _sunset(systems: Systems, stack: str) -> None:
    ws = systems.ws
    ws.run(["venv/bin/python", "-m", "components", "sunset", "--stack", stack, "--set-stage"])
    ws.git("commit", "--quiet", "-am", f"sunset {stack}: stage sunset")
    ws.git("push", "--quiet", "origin", "main")
    report = systems.root / f"sunset-{stack}.json"
    systems.extra[f"sunset-{stack}"] = ws.run(
        ["venv/bin/python", "-m", "components", "sunset", "--stack", stack, "--yes", "--report", str(report)],
        check=False,
    )
    systems.extra[f"sunset-{stack}-again"] = ws.run(
        ["venv/bin/python", "-m", "components", "sunset", "--stack", stack, "--yes", "--report",
         str(systems.root / f"sunset-{stack}-again.json")],
        check=False,
    )  # fmt: skip


def step_sunset_staging(systems: Systems) -> None:
    _sunset(systems, "staging")


def step_sunset_production(systems: Systems) -> None:
    _sunset(systems, "production")


def _check_sunset(systems: Systems, stack: str) -> list[str]:
    problems = []
    first, again = systems.extra.get(f"sunset-{stack}"), systems.extra.get(f"sunset-{stack}-again")
    if first is None or first.code != 0:
        problems.append(f"the sunset of {stack} failed: {first and first.tail()}")
    report = systems.root / f"sunset-{stack}.json"
    if not report.is_file():
        problems.append(f"no sunset report for {stack}")
    problems += _cloudflare_has(systems, stack, present=False, access=True)
    namespace = NAMESPACES[stack]
    if systems.plane.exists(f"/api/v1/namespaces/{namespace}"):
        status = systems.plane.get(f"/api/v1/namespaces/{namespace}").get("status", {})
        if status.get("phase") != "Terminating":
            problems.append(f"namespace {namespace} remains ({status})")
    dashboards = systems.plane.get(f"/api/v1/namespaces/{MONITORING_NAMESPACE}/configmaps").get("items", [])
    left = [d["metadata"]["name"] for d in dashboards if d["metadata"]["name"].startswith(f"{SERVICE}-{stack}")]
    if left:
        problems.append(f"monitoring objects of {stack} remain in {MONITORING_NAMESPACE}: {left}")
    if again is None or again.code != 0 or "nothing" not in (again.stdout + again.stderr).lower():
        problems.append(f"a second sunset of {stack} did not say it changed nothing: {again and again.tail()}")
    return problems


def check_sunset_staging(systems: Systems) -> list[str]:
    return _check_sunset(systems, "staging")


def check_sunset_production(systems: Systems) -> list[str]:
    return _check_sunset(systems, "production")


def step_nothing_left(systems: Systems) -> None:
    systems.extra["final-state"] = {stack: state_resources(systems, stack) for stack in STACKS_ORDER}


def check_nothing_left(systems: Systems) -> list[str]:
    problems = []
    for stack, resources in (systems.extra.get("final-state") or {}).items():
        kept = [r["urn"] for r in resources if r["type"] != "pulumi:pulumi:Stack"]
        if kept:
            problems.append(f"{stack}'s state holds resources beyond the stack: {kept}")
    for stack in STACKS_ORDER:
        problems += _cloudflare_has(systems, stack, present=False, access=True)
        if systems.plane.exists(f"/api/v1/namespaces/{NAMESPACES[stack]}"):
            problems.append(f"namespace {NAMESPACES[stack]} remains")
    return problems


KNOWN_GAPS: dict[str, str] = {}
"""Steps whose failure is a gap listed in docs/engine.md: recorded in the report, the run goes on."""

STEPS: list[tuple[str, Callable[[Systems], None]]] = [
    ("01-preview-staging", step_preview_staging),
    ("02-policy", step_policy),
    ("03-up-staging", step_up_staging),
    ("04-validate", step_validate),
    ("05-preview-production", step_preview_production),
    ("06-up-production", step_up_production),
    ("07-patch", step_patch),
    ("08-noop", step_noop),
    ("09-pr-preview", step_pr_preview),
    ("10-drift", step_drift),
    # Production first: the sunset refuses to take staging away while production still promotes
    # from it without a pinned digest (its StackReference would lose image_ref).
    ("11-sunset-production", step_sunset_production),
    ("12-sunset-staging", step_sunset_staging),
    ("13-nothing-left", step_nothing_left),
]
CHECKS: dict[str, Callable[[Systems], list[str]]] = {
    "01-preview-staging": check_preview_staging,
    "02-policy": check_policy,
    "03-up-staging": check_up_staging,
    "04-validate": check_validate,
    "05-preview-production": check_preview_production,
    "06-up-production": check_up_production,
    "07-patch": check_patch,
    "08-noop": check_noop,
    "09-pr-preview": check_pr_preview,
    "10-drift": check_drift,
    "11-sunset-production": check_sunset_production,
    "12-sunset-staging": check_sunset_staging,
    "13-nothing-left": check_nothing_left,
}
CHECK_NAMES: dict[str, list[str]] = {name: [(CHECKS[name].__doc__ or CHECKS[name].__name__)] for name in CHECKS}

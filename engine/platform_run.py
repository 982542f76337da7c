"""The platform example (examples/platform: api, web, worker) by the real engine, and the sunset of one
of its services.

    python -m engine.platform_run [--out out/platform-sunset] [--skip STEP] [--keep]

Starts the systems ``make e2e`` starts (a Docker engine and an OCI registry, the local control plane,
the Cloudflare API fake: :func:`engine.e2e.start_systems`), copies the repository into a fresh
workspace and runs the example's program there (``examples/platform``, its own project
``acme-platform``) with the real ``pulumi`` CLI, after a local overlay of its stack files (the
local registry's repositories, the control plane's kubeconfig, the fake's token; secrets with
``--secret``, values on stdin). Then, each step checked in the real systems' state (API server,
registry, the fake's records, ``pulumi stack export``), never in the program's outputs:

1. ``up-staging``: the three services built by the Docker engine, pushed, each Deployment running
   its own repository's digest; api and web exposed through the fake, the worker not at all.
2. ``up-production``: promoted from staging, nothing built: each production Deployment runs its own
   service's staging digest; the worker has no Cloudflare resource.
3. ``sunset-production-api``: ``python -m components sunset --stack production --service api`` (the
   stage committed and pushed first, as the command requires): api's DNS, tunnel, Access, workload,
   namespace and monitoring objects gone; web and worker untouched (same uids, same objects, same
   Cloudflare records, same state); every image kept (staging still deploys from api's repository).
4. ``sunset-staging-api``: the same for staging's api: now no stack deploys api's images, and the
   registry keeps exactly the retained digest; an older image is gone.

After each step it saves ``<out>/<step>/objects.json``, ``cloudflare.json`` and ``registry.json``;
``<out>/report.json`` has the steps, their commands, exit codes and timings. Known gaps of the local
run are listed in :data:`KNOWN_GAPS` and in docs/engine.md.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from engine import e2e, lifecycle_checks, workspace
from engine.workspace import Result

REPO = Path(__file__).resolve().parents[1]
PROJECT = "acme-platform"
EXAMPLE = Path("examples") / "platform"
SERVICES = ("api", "web", "worker")
EXPOSED = ("api", "web")
GONE = "api"
KEPT = ("web", "worker")
STACKS = ("staging", "production")
MONITORING_NAMESPACE = "monitoring"
HOSTNAMES = {
    ("api", "staging"): "api-staging.example.com",
    ("web", "staging"): "web-staging.example.com",
    ("api", "production"): "api.example.com",
    ("web", "production"): "www.example.com",
}
"""The example's committed hostnames (Pulumi.<stack>.yaml), which the overlay leaves as they are."""
SKIP_RESOURCES = {"events", "bindings", "localsubjectaccessreviews", "endpoints", "endpointslices"}

Systems = e2e.Systems


def namespace(service: str, stack: str) -> str:
    return f"{service}-{stack}"


def repository(service: str) -> str:
    return f"platform-{service}"


# -- setting up ----------------------------------------------------------------------------------


def platform_workspace(ws: workspace.Workspace) -> workspace.Workspace:
    """The example's directory in the workspace's copy of the repository, as the project the CLI runs.

    ``PYTHONPATH`` is the copy's root: the program and the commands import the copy's ``components``
    (the venv's editable install may point at another checkout)."""
    project = ws.project / EXAMPLE
    (project / "venv").symlink_to(REPO / "venv")  # Pulumi.yaml: virtualenv: venv
    with (ws.project / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(f"/{EXAMPLE.as_posix()}/venv\n")
    fields = {f.name: getattr(ws, f.name) for f in dataclasses.fields(ws)}
    return PlatformWorkspace(**{**fields, "project": project, "env": {**ws.env, "PYTHONPATH": str(ws.project)}})


class PlatformWorkspace(workspace.Workspace):
    """A project in a subdirectory of the workspace's git repository: ``pulumi`` reads the commit it
    deploys from ``SOURCE_REVISION``, as the workflows set it (``Workspace.pulumi`` looks for ``.git``
    in the project directory itself)."""

    def pulumi(self, *args: str, check: bool = True, env: Mapping[str, str] | None = None, **kwargs: Any) -> Result:
        return super().pulumi(*args, check=check, env={"SOURCE_REVISION": self.head(), **(env or {})}, **kwargs)


def push_older_images(systems: Systems) -> None:
    """An older image in each service's repository (the base image, tagged ``previous``): what an
    earlier release left there. The sunset's retention keeps only what a stack ran: it must go from
    api's repository, and stay in web's and worker's."""
    local = f"{systems.registry.host}/python-base:bookworm"
    for service in SERVICES:
        target = f"{systems.registry.host}/{repository(service)}:previous"
        systems.docker.docker("tag", local, target)
        systems.docker.docker("push", target, timeout=300)
    systems.extra["older"] = {
        service: lifecycle_checks.registry_state(systems.registry.url)[repository(service)]["previous"]
        for service in SERVICES
    }


def overlay(systems: Systems) -> None:
    """The local endpoints, set with ``pulumi config set`` on the workspace's stack files (secrets with
    ``--secret``, values on stdin), then committed and pushed there."""
    ws = systems.ws
    for stack in STACKS:
        ws.pulumi("stack", "init", stack, "--secrets-provider", "passphrase")
        plain = {"kubeContext": "local", "kubernetesVersion": "1.34"}
        if stack == "staging":
            plain["baseImage"] = systems.base_image
        else:
            # A DIY backend's stacks are in the organization `organization`.
            plain["promoteFromStack"] = f"organization/{PROJECT}/staging"
            # The cluster's monitoring stack is Helm charts from the network: a listed gap (KNOWN_GAPS).
            plain["monitoringInstallClusterStack"] = "false"
        secret = {
            "kubeconfig": systems.plane.kubeconfig_text,
            "registryPassword": "local-registry-has-no-auth",
            "cloudflareApiToken": systems.api_token,
        }
        for key, value in plain.items():
            ws.config_set(stack, f"{PROJECT}:{key}", value)
        for key, value in secret.items():
            ws.config_set(stack, f"{PROJECT}:{key}", value, secret=True)
        for service in SERVICES:
            ws.config_set(stack, f"{service}:imageRepository", f"{systems.registry.host}/{repository(service)}")
    ws.git("add", "-A")
    ws.git("commit", "--quiet", "-m", "local overlay: endpoints of the platform run")
    ws.git("push", "--quiet", "origin", "main")


# -- reading the real systems --------------------------------------------------------------------


def _resources(plane: Any) -> list[tuple[str, str]]:
    """(API path prefix, plural) of every namespaced, listable resource the server serves."""
    found: list[tuple[str, str, bool, list[str]]] = []
    core = plane.get("/api/v1")
    found += [("/api/v1", r["name"], r["namespaced"], r.get("verbs", [])) for r in core["resources"]]
    for group in plane.get("/apis")["groups"]:
        version = group["preferredVersion"]["groupVersion"]
        found += [
            (f"/apis/{version}", r["name"], r["namespaced"], r.get("verbs", []))
            for r in plane.get(f"/apis/{version}")["resources"]
        ]
    return [(p, n) for p, n, ns, verbs in found if ns and "list" in verbs and "/" not in n and n not in SKIP_RESOURCES]


def cluster_objects(plane: Any, *, redact: bool = True) -> dict[str, dict[str, Any]]:
    """Every object of the six service namespaces and the monitoring namespace's objects of the
    services, keyed ``<namespace>/<plural>/<name>``; the namespaces themselves as ``namespaces/<name>``.
    ``redact``: a Secret's values replaced by their length (for the artefacts; fingerprints, kept in
    memory only, compare the values)."""
    clean = lifecycle_checks.redacted if redact else _unmanaged
    wanted = [namespace(s, stack) for s in SERVICES for stack in STACKS]
    objects: dict[str, dict[str, Any]] = {}
    present = []
    for name in [*wanted, MONITORING_NAMESPACE]:
        if plane.exists(f"/api/v1/namespaces/{name}"):
            objects[f"namespaces/{name}"] = clean(plane.get(f"/api/v1/namespaces/{name}"))
            present.append(name)
    for prefix, plural in _resources(plane):
        try:  # one list across namespaces per resource, filtered here: a few dozen requests, not hundreds
            listing = plane.get(f"{prefix}/{plural}")
        except urllib.error.HTTPError:
            continue
        for item in listing.get("items", []):
            name, object_name = item["metadata"].get("namespace"), item["metadata"]["name"]
            if name not in present or object_name in ("default", "kube-root-ca.crt"):
                continue
            if name == MONITORING_NAMESPACE and not object_name.startswith(tuple(f"{s}-" for s in SERVICES)):
                continue
            objects[f"{name}/{plural}/{object_name}"] = clean(item)
    return objects


def _unmanaged(item: dict[str, Any]) -> dict[str, Any]:
    item.get("metadata", {}).pop("managedFields", None)
    return item


def fingerprint(item: dict[str, Any]) -> dict[str, Any]:
    """What must not change for an untouched object: its uid, and its content but for status and the
    server's bookkeeping (resourceVersion, managedFields); and, for an object without status, its
    resourceVersion. An object with status may get a new resourceVersion from a controller's status
    write (the HPA controller's, kwok's) with nothing else changed."""
    metadata = dict(item.get("metadata", {}))
    uid, version = metadata.pop("uid", None), metadata.pop("resourceVersion", None)
    content = {k: v for k, v in item.items() if k not in ("status", "metadata")} | {"metadata": metadata}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return {"uid": uid, "content": digest, "resourceVersion": None if "status" in item else version}


def of_services(objects: dict[str, dict[str, Any]], services: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """The objects of ``services``: in their namespaces, their namespaces, and theirs in monitoring."""
    prefixes = tuple(f"{namespace(s, stack)}/" for s in services for stack in STACKS)
    names = {f"namespaces/{namespace(s, stack)}" for s in services for stack in STACKS}
    monitoring = tuple(f"{MONITORING_NAMESPACE}/{plural}/{s}-" for s in services for plural in ("configmaps",))
    return {
        key: value
        for key, value in objects.items()
        if key.startswith(prefixes) or key in names or key.startswith(monitoring)
    }


def cloudflare_objects(state: dict[str, Any], service: str, stack: str) -> list[dict[str, Any]]:
    """Every tunnel, DNS record, Access application, policy and service token of ``service`` at ``stack``:
    named after it (``api-staging``, ``api (staging)``) or naming its hostname."""
    marks = [namespace(service, stack), f"{service} ({stack})"]
    hostname = HOSTNAMES.get((service, stack))
    if hostname:
        marks.append(hostname)
    found = []
    for kind in ("tunnels", "dns_records", "access_apps", "access_policies", "access_service_tokens"):
        for item in state.get(kind, []):
            text = json.dumps(item)
            if any(mark in text for mark in marks):
                found.append({"kind": kind, **item})
    return found


def mentions_worker(state: dict[str, Any]) -> list[str]:
    """Anything the fake holds (but the request log) that names the worker."""
    return [
        f"{kind}: {item.get('name') or item.get('id')}"
        for kind, items in state.items()
        if kind != "requests" and isinstance(items, list)
        for item in items
        if "worker" in json.dumps(item)
    ]


def workload_image(plane: Any, service: str, stack: str) -> str | None:
    path = f"/apis/apps/v1/namespaces/{namespace(service, stack)}/deployments/{service}"
    if not plane.exists(path):
        return None
    return str(plane.get(path)["spec"]["template"]["spec"]["containers"][0]["image"])


def state_of(systems: Systems, stack: str, services: tuple[str, ...]) -> dict[str, Any]:
    """The Pulumi state's resources below those services' ServiceStacks: URN → type, inputs, outputs.

    Exported with ``--show-secrets`` and kept in memory only: a secret's ciphertext changes with every
    checkpoint (a fresh nonce), its value must not."""
    exported = systems.ws.pulumi("stack", "export", "--stack", stack, "--show-secrets").stdout
    resources = json.loads(exported).get("deployment", {}).get("resources") or []
    owners = {
        r["urn"] for r in resources if r["type"].endswith(":ServiceStack") and r["urn"].rsplit("::")[-1] in services
    }
    below = set(owners)
    grew = True
    while grew:
        before = len(below)
        below |= {r["urn"] for r in resources if r.get("parent") in below}
        grew = len(below) != before
    return {
        r["urn"]: {"type": r["type"], "inputs": r.get("inputs"), "outputs": r.get("outputs")}
        for r in resources
        if r["urn"] in below - owners
    }


# -- the steps -----------------------------------------------------------------------------------


def step_up_staging(systems: Systems) -> None:
    plane = systems.plane
    if not plane.exists(f"/api/v1/namespaces/{MONITORING_NAMESPACE}"):
        plane.create(
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": MONITORING_NAMESPACE}},
        )
    push_older_images(systems)
    systems.ws.pulumi("up", "--stack", "staging", "--yes", "--skip-preview")


def _check_stack(systems: Systems, stack: str) -> list[str]:
    """Each service's namespace, Available Deployment running its own repository by digest; the
    worker with no Service and no connector; api and web exposed in the fake, the worker absent."""
    plane, problems = systems.plane, []
    registry = lifecycle_checks.registry_state(systems.registry.url)
    for service in SERVICES:
        ns = namespace(service, stack)
        if not plane.exists(f"/api/v1/namespaces/{ns}"):
            problems.append(f"namespace {ns} does not exist")
            continue
        problems += lifecycle_checks.wait_available(systems, ns)
        image = workload_image(plane, service, stack)
        own = f"{systems.registry.host}/{repository(service)}@sha256:"
        if image is None or not image.startswith(own):
            problems.append(f"{ns}: Deployment {service} runs {image}, not an image of {own[:-8]} by digest")
        elif image.split("@", 1)[1] not in set(registry.get(repository(service), {}).values()):
            problems.append(f"{ns}: the digest {image} is not in the registry's {repository(service)}")
        for kind in ("servicemonitors", "prometheusrules"):
            if kind == "servicemonitors" and service == "worker":
                continue
            if not plane.get(f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/{kind}").get("items"):
                problems.append(f"no {kind} in {ns}")
    worker = namespace("worker", stack)
    if plane.exists(f"/api/v1/namespaces/{worker}"):
        if plane.get(f"/api/v1/namespaces/{worker}/services").get("items"):
            problems.append(f"{worker} has a Service: the worker serves nothing")
        names = [d["metadata"]["name"] for d in plane.get(f"/apis/apps/v1/namespaces/{worker}/deployments")["items"]]
        if names != ["worker"]:
            problems.append(f"{worker} runs Deployments {names}, not the worker alone (no cloudflared)")
    state = systems.cloudflare.state()
    for service in EXPOSED:
        kinds = {item["kind"] for item in cloudflare_objects(state, service, stack)}
        wanted = {"tunnels", "dns_records"} | ({"access_apps"} if stack == "staging" else set())
        if not wanted <= kinds:
            problems.append(f"{service} at {stack}: the fake holds {sorted(kinds)}, not {sorted(wanted)}")
    if mentions_worker(state):
        problems.append(f"the Cloudflare fake holds worker objects: {mentions_worker(state)}")
    return problems


def check_up_staging(systems: Systems) -> list[str]:
    problems = _check_stack(systems, "staging")
    systems.extra["staging-images"] = {s: workload_image(systems.plane, s, "staging") for s in SERVICES}
    return problems


def step_up_production(systems: Systems) -> None:
    systems.extra["registry-before-production"] = lifecycle_checks.registry_state(systems.registry.url)
    systems.ws.pulumi("up", "--stack", "production", "--yes", "--skip-preview")


def check_up_production(systems: Systems) -> list[str]:
    problems = _check_stack(systems, "production")
    for service in SERVICES:
        staging = workload_image(systems.plane, service, "staging")
        production = workload_image(systems.plane, service, "production")
        if staging is None or production != staging:
            problems.append(f"production's {service} runs {production}, staging validated {staging}")
    if lifecycle_checks.registry_state(systems.registry.url) != systems.extra.get("registry-before-production"):
        problems.append("production's up changed the registry: something was built or pushed")
    resources = lifecycle_checks.state_resources(systems, "production")
    if any(r["type"].startswith("docker:") for r in resources):
        problems.append("production's state holds docker resources: it built an image")
    references = sorted(r["urn"].rsplit("::")[-1] for r in resources if r["type"] == "pulumi:pulumi:StackReference")
    if references != [f"{s}-promotion-source" for s in SERVICES]:
        problems.append(f"production's state holds StackReferences {references}, not one per service")
    return problems


def observe_before_sunset(systems: Systems, stack: str) -> None:
    """What must stay as it is: web's and worker's objects, records, images and state; api's other stack."""
    objects = cluster_objects(systems.plane, redact=False)
    cloudflare = systems.cloudflare.state()
    systems.extra[f"before-{stack}"] = {
        "objects": {k: fingerprint(v) for k, v in of_services(objects, KEPT).items()},
        "cloudflare": {(s, st): cloudflare_objects(cloudflare, s, st) for s in EXPOSED for st in STACKS if s != GONE},
        "registry": lifecycle_checks.registry_state(systems.registry.url),
        "state": {st: state_of(systems, st, KEPT) for st in STACKS},
        "api-other-stack": {
            k: fingerprint(v)
            for k, v in of_services(objects, (GONE,)).items()
            if namespace(GONE, stack) not in k and (k.startswith(f"{GONE}-") or k.startswith("namespaces/"))
        },
    }


def _sunset(systems: Systems, stack: str) -> None:
    """As docs/operations.md says: set the service's stage, commit and push it, then sunset it; twice."""
    ws = systems.ws
    python = str(REPO / "venv" / "bin" / "python")
    command = [python, "-m", "components", "sunset", "--stack", stack, "--service", GONE]
    ws.run([*command, "--set-stage"])
    ws.git("commit", "--quiet", "-am", f"{stack}: {GONE} stage sunset")
    ws.git("push", "--quiet", "origin", "main")
    # The sunset workflow's runner has GITHUB_SHA: the program's sourceRevision.
    revision = {"GITHUB_SHA": ws.head()}
    systems.extra[f"sunset-{stack}"] = ws.run([*command, "--yes"], check=False, env=revision)
    systems.extra[f"sunset-{stack}-again"] = ws.run([*command, "--yes"], check=False, env=revision)


def _check_sunset(systems: Systems, stack: str) -> list[str]:
    problems: list[str] = []
    plane = systems.plane
    first, again = systems.extra.get(f"sunset-{stack}"), systems.extra.get(f"sunset-{stack}-again")
    if first is None or first.code != 0:
        problems.append(f"the sunset of {GONE} in {stack} failed: {first and first.tail()}")
    if not (systems.ws.project / f"sunset-{stack}-{GONE}.json").is_file():
        problems.append(f"no sunset report sunset-{stack}-{GONE}.json")
    if again is None or again.code != 0 or "nothing to do" not in (again.stdout + again.stderr).lower():
        problems.append(
            f"a second sunset of {GONE} in {stack} did not say it changed nothing: {again and again.tail()}"
        )
    # api's exposure: no tunnel, record, Access application, policy or token left in the fake.
    state = systems.cloudflare.state()
    left = cloudflare_objects(state, GONE, stack)
    if left:
        problems.append(f"the fake still holds {GONE}'s {stack} objects: {[(o['kind'], o.get('name')) for o in left]}")
    # api's workload, namespace and monitoring objects: gone from the API server.
    ns = namespace(GONE, stack)
    if plane.exists(f"/api/v1/namespaces/{ns}"):
        status = plane.get(f"/api/v1/namespaces/{ns}").get("status", {})
        if status.get("phase") != "Terminating":
            problems.append(f"namespace {ns} remains ({status})")
    if workload_image(plane, GONE, stack) is not None:
        problems.append(f"Deployment {ns}/{GONE} remains")
    for kind in ("servicemonitors", "podmonitors", "prometheusrules"):
        if plane.exists(f"/api/v1/namespaces/{ns}"):
            items = plane.get(f"/apis/monitoring.coreos.com/v1/namespaces/{ns}/{kind}").get("items", [])
            if items:
                problems.append(f"{kind} remain in {ns}: {[i['metadata']['name'] for i in items]}")
    dashboards = plane.get(f"/api/v1/namespaces/{MONITORING_NAMESPACE}/configmaps").get("items", [])
    leftover = [d["metadata"]["name"] for d in dashboards if d["metadata"]["name"].startswith(f"{ns}")]
    if leftover:
        problems.append(f"monitoring objects of {ns} remain in {MONITORING_NAMESPACE}: {leftover}")
    # Nothing of api in the state: not a part, not its provider, not its ServiceStack.
    names = {r["urn"]: r["urn"].rsplit("::")[-1] for r in lifecycle_checks.state_resources(systems, stack)}
    kept_in_state = [urn for urn, name in names.items() if name == GONE or name.startswith(f"{GONE}-")]
    if kept_in_state:
        problems.append(f"{stack}'s state still holds {GONE}'s resources: {kept_in_state}")
    # web and worker: untouched, in the API server, the fake, the registry and both states.
    before = systems.extra.get(f"before-{stack}") or {}
    after_objects = cluster_objects(plane, redact=False)
    now = {k: fingerprint(v) for k, v in of_services(after_objects, KEPT).items()}
    was = before.get("objects", {})
    if not was:
        problems.append("nothing of web and worker was recorded before the sunset")
    touched = []
    for key in sorted(set(was) | set(now)):
        old, new = was.get(key), now.get(key)
        if old is None or new is None:
            touched.append(f"{key}: {'appeared' if old is None else 'disappeared'}")
        elif old["uid"] != new["uid"] or old["content"] != new["content"]:
            touched.append(f"{key}: uid or content changed")
        elif old["resourceVersion"] != new["resourceVersion"]:
            touched.append(f"{key}: resourceVersion {old['resourceVersion']} -> {new['resourceVersion']}")
    if touched:
        shown = "; ".join(touched[:8]) + (f"; and {len(touched) - 8} more" if len(touched) > 8 else "")
        problems.append(f"web's and worker's objects changed during {GONE}'s sunset: {shown}")
    other = {
        k: fingerprint(v)
        for k, v in of_services(after_objects, (GONE,)).items()
        if namespace(GONE, stack) not in k and (k.startswith(f"{GONE}-") or k.startswith("namespaces/"))
    }
    if other != before.get("api-other-stack"):
        problems.append(f"{GONE} in the other stack changed during the sunset of {stack}'s {GONE}")
    for (service, st), items in (before.get("cloudflare") or {}).items():
        if cloudflare_objects(state, service, st) != items:
            problems.append(f"{service}'s {st} objects in the Cloudflare fake changed")
    for st, resources in (before.get("state") or {}).items():
        if state_of(systems, st, KEPT) != resources:
            problems.append(f"{st}'s state of web and worker changed during {GONE}'s sunset")
    if mentions_worker(state):
        problems.append(f"the Cloudflare fake holds worker objects: {mentions_worker(state)}")
    return problems


def step_sunset_production(systems: Systems) -> None:
    _sunset(systems, "production")


def check_sunset_production(systems: Systems) -> list[str]:
    problems = _check_sunset(systems, "production")
    # Staging still deploys api's images: the registry step keeps every one.
    before = (systems.extra.get("before-production") or {}).get("registry")
    if lifecycle_checks.registry_state(systems.registry.url) != before:
        problems.append("the registry changed while staging still deploys api's images")
    return problems


def step_sunset_staging(systems: Systems) -> None:
    _sunset(systems, "staging")


def check_sunset_staging(systems: Systems) -> list[str]:
    problems = _check_sunset(systems, "staging")
    # No stack deploys api any more: its repository keeps exactly the retained digest (what both stacks ran).
    registry = lifecycle_checks.registry_state(systems.registry.url)
    before = (systems.extra.get("before-staging") or {}).get("registry") or {}
    ran = (systems.extra.get("staging-images") or {}).get(GONE)
    kept = {d for d in registry.get(repository(GONE), {}).values() if d}
    if ran is None or kept != {ran.split("@", 1)[1]}:
        problems.append(f"{repository(GONE)} holds {sorted(kept)}, not exactly the retained {ran}")
    older = (systems.extra.get("older") or {}).get(GONE)
    if older is None or lifecycle_checks.manifest_digest(systems.registry.url, repository(GONE), older) is not None:
        problems.append(f"the older image {older} beyond the retention is still in {repository(GONE)}")
    for service in KEPT:
        if registry.get(repository(service)) != before.get(repository(service)):
            problems.append(f"{repository(service)} changed during {GONE}'s sunset")
    return problems


Observe = Callable[[Systems], None] | None
STEPS: list[tuple[str, Observe, Callable[[Systems], None], Callable[[Systems], list[str]]]] = [
    ("01-up-staging", None, step_up_staging, check_up_staging),
    ("02-up-production", None, step_up_production, check_up_production),
    # Production first: a live stack's service that promotes from staging needs staging's output.
    ("03-sunset-production-api", partial(observe_before_sunset, stack="production"), step_sunset_production,
     check_sunset_production),
    ("04-sunset-staging-api", partial(observe_before_sunset, stack="staging"), step_sunset_staging,
     check_sunset_staging),
]  # fmt: skip
"""(name, what is observed before the command (also with --skip), the command, its checks)."""
KNOWN_GAPS: dict[str, str] = {}
"""Steps whose failure is a listed gap (docs/engine.md): reported, the run goes on."""
OVERLAY_GAPS = [
    "production's cluster monitoring stack (monitoringInstallClusterStack: kube-prometheus-stack, Loki, Alloy "
    "Helm charts) is not installed: the charts come from the network; the overlay sets it false, as the "
    "root project's stack files do",
]
"""What the local overlay changes in the example's settings, beyond its endpoints: listed in the report."""


# -- the run -------------------------------------------------------------------------------------


@dataclasses.dataclass
class StepRecord:
    name: str
    commands: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    ok: bool = False
    problems: list[str] = dataclasses.field(default_factory=list)
    error: str = ""
    gap: str = ""


@contextlib.contextmanager
def recording(records: list[StepRecord], name: str, systems: Systems, out: Path) -> Iterator[StepRecord]:
    record = StepRecord(name)
    records.append(record)
    before, started = len(systems.ws.history), time.monotonic()
    print(f"platform: {name} ...", flush=True)
    try:
        yield record
    except Exception as error:
        record.error = f"{type(error).__name__}: {error}"
        raise
    finally:
        record.seconds = round(time.monotonic() - started, 2)
        record.commands = [
            {"argv": e2e.redact_argv(r.argv), "exit": r.code, "seconds": round(r.seconds, 2)}
            for r in systems.ws.history[before:]
        ]
        snapshot(out / name, systems)
        print(f"platform: {name} {'ok' if record.ok else 'FAILED'} in {record.seconds:.1f} s", flush=True)


def snapshot(directory: Path, systems: Systems) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    e2e.write_json(directory / "objects.json", cluster_objects(systems.plane))
    e2e.write_json(directory / "cloudflare.json", lifecycle_checks.cloudflare_state(systems.cloudflare))
    e2e.write_json(directory / "registry.json", lifecycle_checks.registry_state(systems.registry.url))


def run_steps(records: list[StepRecord], systems: Systems, out: Path, skip: set[str]) -> None:
    for name, observe, action, check in STEPS:
        with recording(records, name, systems, out) as record:
            gap = KNOWN_GAPS.get(name)
            failed = ""
            if observe is not None:
                observe(systems)
            if name not in skip:
                try:
                    action(systems)
                except Exception as error:
                    if not gap:
                        raise
                    failed = f"{type(error).__name__}: {error}"
            record.problems = ([failed] if failed else []) + check(systems)
            if record.problems and gap:
                record.gap = gap
                continue
            if record.problems:
                raise e2e.StepFailed(
                    f"{name}: the real systems do not show the step's effect:\n- " + "\n- ".join(record.problems)
                )
            record.ok = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.platform_run", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "platform-sunset")
    parser.add_argument("--skip", action="append", default=[], help="leave this step's command out (checks stay)")
    parser.add_argument("--keep", action="store_true", help="keep the run's temporary directory")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    unknown = set(args.skip) - {step[0] for step in STEPS}
    if unknown:
        parser.error(f"--skip: no step {sorted(unknown)}; steps: {[step[0] for step in STEPS]}")
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    records: list[StepRecord] = []
    root = Path(tempfile.mkdtemp(prefix="service-lifecycle-platform-"))
    started = time.monotonic()

    def body(stack: contextlib.ExitStack) -> None:
        systems = e2e.start_systems(root, stack)
        systems.base_image = e2e.push_base_image(systems)
        systems.ws = platform_workspace(systems.ws)
        overlay(systems)
        run_steps(records, systems, args.out, set(args.skip))

    def finish(status: str) -> None:
        report = {
            "status": status,
            "seconds": round(time.monotonic() - started, 1),
            "steps": [dataclasses.asdict(r) for r in records],
            "skipped_commands": sorted(args.skip),
            "overlay_gaps": OVERLAY_GAPS,
        }
        (args.out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")

    status = e2e.run_guarded("platform", body, finish=finish, root=root, keep=args.keep)
    print(f"platform: {status}; artefacts in {args.out}")
    return 0 if status == "passed" else 1


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

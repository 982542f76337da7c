"""A production breach and its rollback by the real engine, as deploy.yml runs them.

    python -m engine.rollback_run [--out out/rollback] [--skip STEP] [--keep]

On the e2e's systems (engine/e2e.py: the Docker engine and registry, the local control plane, the
Cloudflare fake, a fresh workspace and DIY backend) and with the real ``pulumi`` command:

1. ``01-up``: staging and production are brought up as the e2e does (its steps and checks);
2. ``02-good-release``: what production's Deployment runs is served, scraped by a real Prometheus,
   given paced traffic; ``python -m components verify-deploy`` passes and ``python -m components
   ledger`` records the digest as passed (the ledger job's command), committed to the workspace;
3. ``03-breach``: a patch of ``app/`` (the e2e's patch step: a new digest, built, pushed, promoted by
   ``pulumi up``); the new digest is served with ``FAULT_ERROR_RATIO=0.2``; verify-deploy exits 1
   and names the error ratio, against the ledger's last good digest as the previous release;
4. ``04-rollback``: the workflow's rollback: ``python -m components rollback-target --stack
   production --exclude <breached> --github-output``, then ``pulumi config set pinnedDigest`` and
   ``pulumi up``; the kube-apiserver's Deployment, its pods and the state run the last good digest;
5. ``05-reverify``: what the Deployment runs now is served and verified again (``--no-baseline``, as
   the workflow's re-verification), and the ledger records the breach and the rollback.

What is emulated: kwok runs the pods (no kubelet, no containers), so "what production runs" is the
Deployment's image, pulled by digest from the registry and run by the real Docker engine with the
pod's environment from the kube-apiserver (``IMAGE_REF`` included: it becomes the ``digest`` label
Prometheus selects on), published on loopback and scraped as a target of namespace
``hello-production`` and job ``hello``. A release "built to fail" is the digest the run chose to
fault: its container gets ``FAULT_ERROR_RATIO`` on top of the pod's environment, whatever serves it.
"The rollout finished" (the workflow's ``date +%s`` after ``up``) is when that container takes the
traffic. Traffic is GET / on loopback at an even pace, bounded in count and time.

Each step's command is checked in the systems' state (kube-apiserver objects, registry, ``pulumi
stack export``, Prometheus, the ledger files), and a problem stops the run. ``--skip STEP`` leaves
the step's commands out and keeps its checks, to see them fail. ``<out>/report.json`` has the
steps (as the e2e's), ``<out>/rollback.json`` the digests, verifications and traffic.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.commands.verify.judge import figure
from engine import controlplane, e2e, lifecycle_checks, workspace
from engine.e2e import StepFailed, Systems

dockerenv = e2e.dockerenv

REPO = e2e.REPO
PROJECT, SERVICE = lifecycle_checks.PROJECT, lifecycle_checks.SERVICE
STACK = "production"
NAMESPACE = lifecycle_checks.NAMESPACES[STACK]

WINDOW, INTERVAL, MIN_REQUESTS = 24, 4, 100
"""Verification settings the run sets on production (``pulumi config set``): short windows."""
RATE = 10.0
"""Requests per second of each traffic stream: 240 in a window, above MIN_REQUESTS."""
MAX_REQUESTS, MAX_SECONDS = 4000, 420.0
"""Every stream stops at this many requests or seconds, whichever comes first."""
FAULT = {"FAULT_ERROR_RATIO": "0.2"}
SCRAPE_TIMEOUT = 60.0


# -- Prometheus and traffic ------------------------------------------------------------------------


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


@dataclass
class Prometheus:
    """A real Prometheus on loopback scraping every second the targets of a file it re-reads."""

    url: str
    process: subprocess.Popen[bytes]
    targets_file: Path
    log: Path
    targets: list[str] = field(default_factory=list)

    def set_targets(self, targets: list[str]) -> None:
        self.targets = list(targets)
        document = [{"targets": self.targets, "labels": {"namespace": NAMESPACE}}]
        staged = self.targets_file.with_suffix(".tmp")
        staged.write_text(json.dumps(document))
        staged.replace(self.targets_file)

    def query(self, promql: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as answer:
            return list(json.loads(answer.read())["data"]["result"])

    def wait_scraped(self, target: str, digest: str, timeout: float = SCRAPE_TIMEOUT) -> None:
        """Until Prometheus has scraped ``target`` and read its ``app_build_info`` digest."""
        promql = f'app_build_info{{job="{SERVICE}",namespace="{NAMESPACE}",instance="{target}"}}'
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                seen = self.query(promql)
                if any(s["metric"].get("digest") == digest for s in seen):
                    return
            time.sleep(0.5)
        raise StepFailed(
            f"Prometheus did not scrape {target} with digest {digest} within {timeout:.0f} s (saw {seen}); "
            f"log:\n{self.log.read_text()[-2000:]}"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_prometheus(root: Path, binary: str) -> Prometheus:
    root.mkdir(parents=True, exist_ok=True)
    targets_file = root / "targets.json"
    targets_file.write_text("[]")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": SERVICE,
                "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            }
        ],
    }
    (root / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    port = controlplane.free_port()
    log = root / "prometheus.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [binary, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, targets_file, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StepFailed(f"prometheus exited {process.returncode}:\n{log.read_text()[-2000:]}")
        if dockerenv.http_status(f"{prometheus.url}/-/ready", timeout=1) == 200:
            return prometheus
        time.sleep(0.5)
    prometheus.stop()
    raise StepFailed(f"prometheus was not ready within 60 s:\n{log.read_text()[-2000:]}")


class Traffic:
    """GET / on one connection at a time at an even pace (Prometheus' increase() miscounts bursts),
    until stopped, ``MAX_REQUESTS`` requests or ``MAX_SECONDS``, whichever comes first. Each answered
    request's time is kept, so a window's count can be compared with what Prometheus recorded."""

    def __init__(self, url: str, rate: float = RATE) -> None:
        self.url, self.pace = url, 1.0 / rate
        self.sent: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = slot = time.time()
        while not self._stop.is_set() and len(self.sent) < MAX_REQUESTS and time.time() - started < MAX_SECONDS:
            slot += self.pace
            if self._stop.wait(max(0.0, slot - time.time())):
                break
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5) as answer:
                    answer.read()
            except urllib.error.HTTPError as error:
                error.read()
                self.errors += 1
            except OSError:
                continue
            self.sent.append(time.time())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def within(self, start: float, end: float) -> int:
        return sum(1 for t in self.sent if start < t <= end)


# -- what production runs, served by the Docker engine ---------------------------------------------


@dataclass
class Served:
    """The Deployment's image run by the Docker engine with the pod's environment (and a fault)."""

    image: str
    digest: str
    env_image_ref: str
    fault: dict[str, str]
    container: Any
    target: str
    traffic: Traffic | None = None


def serve_production(systems: Systems, prometheus: Prometheus, faults: dict[str, dict[str, str]]) -> Served:
    """Run what production's Deployment says (image, environment) as the kube-apiserver has it now,
    with the fault chosen for its digest, and wait until Prometheus scraped its digest."""
    found = lifecycle_checks.deployment(systems, NAMESPACE, "workload")
    if found is None:
        raise StepFailed(f"no Deployment {SERVICE} in {NAMESPACE}")
    spec = found["spec"]["template"]["spec"]["containers"][0]
    image = str(spec["image"])
    if "@sha256:" not in image:
        raise StepFailed(f"production's Deployment does not run an image by digest: {image}")
    env = {str(e["name"]): str(e["value"]) for e in spec.get("env", []) if "value" in e}
    digest = image.rsplit("@", 1)[1]
    fault = dict(faults.get(digest, {}))
    systems.docker.docker("pull", image, timeout=300)
    name = f"rollback-{digest[7:19]}-{lifecycle_checks.token(4).lower()}"
    container = dockerenv.run_app(systems.docker, image, env={**env, **fault}, name=name, ready_timeout=60)
    target = container.url.removeprefix("http://")
    prometheus.set_targets([*prometheus.targets, target])
    prometheus.wait_scraped(target, digest)
    return Served(image, digest, env.get("IMAGE_REF", ""), fault, container, target)


def retire(prometheus: Prometheus, served: Served) -> None:
    """The pods it stood for are gone: no more traffic, no longer scraped, removed."""
    if served.traffic is not None:
        served.traffic.stop()
    prometheus.set_targets([t for t in prometheus.targets if t != served.target])
    served.container.remove()


# -- the workflow's commands -----------------------------------------------------------------------


def verify_deploy(systems: Systems, prometheus: Prometheus, image_ref: str, since: float, name: str,
                  *extra: str) -> tuple[workspace.Result, dict[str, Any]]:  # fmt: skip
    """deploy.yml's verify step: ``verify-deploy --stack production --image-ref … --since … --wait``
    with ``PROMETHEUS_URL`` in the environment."""
    out = systems.root / "verify" / name
    result = systems.ws.run(
        ["venv/bin/python", "-m", "components", "verify-deploy", "--stack", STACK, "--image-ref", image_ref,
         "--since", f"{since:.3f}", "--wait", "--out", str(out), *extra],
        check=False, env={"PROMETHEUS_URL": prometheus.url}, timeout=WINDOW + 10 * INTERVAL + 120,
    )  # fmt: skip
    report_path = out / "verify.json"
    report = dict(json.loads(report_path.read_text())) if report_path.is_file() else {}
    return result, report


def ledger(systems: Systems, entries: list[tuple[str, str]], message: str) -> None:
    """deploy.yml's ledger job: ``python -m components ledger`` per deployed reference, committed."""
    ws = systems.ws
    for ref, result in entries:
        ws.run(["venv/bin/python", "-m", "components", "ledger", "--stack", STACK, "--image-ref", ref,
                "--verification", result])  # fmt: skip
    ws.git("add", "deployments")
    ws.git("commit", "--quiet", "-m", message)
    ws.git("push", "--quiet", "origin", "main")


def github_output(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


# -- the run ---------------------------------------------------------------------------------------


@dataclass
class Context:
    systems: Systems
    prometheus: Prometheus
    faults: dict[str, dict[str, str]] = field(default_factory=dict)
    served: dict[str, Served] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def step_up(ctx: Context) -> None:
    systems, ws = ctx.systems, ctx.systems.ws
    for key, value in (("verifyWindowSeconds", WINDOW), ("verifyIntervalSeconds", INTERVAL),
                       ("verifyMinRequests", MIN_REQUESTS)):  # fmt: skip
        ws.config_set(STACK, f"{PROJECT}:{key}", str(value))
    ws.git("commit", "--quiet", "-am", "local overlay: production's verification window of the rollback run")
    ws.git("push", "--quiet", "origin", "main")
    lifecycle_checks.step_up_staging(systems)
    lifecycle_checks.step_up_production(systems)


def check_up(ctx: Context) -> list[str]:
    problems = lifecycle_checks.check_up_staging(ctx.systems) + lifecycle_checks.check_up_production(ctx.systems)
    ctx.facts["first_release"] = lifecycle_checks.workload_image(ctx.systems, STACK)
    return problems


def step_good_release(ctx: Context) -> None:
    served = serve_production(ctx.systems, ctx.prometheus, ctx.faults)
    ctx.served["good"] = served
    # Served from here until the next release takes the traffic: the next verification's baseline window.
    served.traffic = Traffic(served.container.url).start()
    since = time.time() + 1
    result, report = verify_deploy(ctx.systems, ctx.prometheus, served.image, since, "good")
    ctx.facts["good"] = _verification(served, since, result, report)
    if result.code == 0:
        ledger(ctx.systems, [(served.image, "passed")], "ledger: production's release passed verification")


def check_good_release(ctx: Context) -> list[str]:
    good = ctx.facts.get("good")
    if not good:
        return ["no verification of the first production release ran"]
    problems = _served_what_runs(ctx, good)
    if good["exit"] != 0 or good["status"] != "healthy":
        problems.append(f"verify-deploy of the good release exited {good['exit']} ({good['status']}): {good['tail']}")
    problems += _counted(good)
    problems += _ledger_says(ctx, {good["image_ref"]: "passed"})
    return problems


def step_breach(ctx: Context) -> None:
    systems = ctx.systems
    # The e2e's patch step: a change in app/, committed, staging's up builds and pushes a new digest,
    # production's up promotes it (meanwhile the good release keeps serving its paced traffic).
    lifecycle_checks.step_patch(systems)
    patched = lifecycle_checks.workload_image(systems, STACK)
    if patched is None or "@" not in patched:
        raise StepFailed(f"production runs no image by digest after the patch: {patched}")
    ctx.faults[patched.rsplit("@", 1)[1]] = dict(FAULT)
    served = serve_production(systems, ctx.prometheus, ctx.faults)
    ctx.served["breached"] = served
    good = ctx.served.get("good")
    since = time.time()
    served.traffic = Traffic(served.container.url).start()
    if good is not None and good.traffic is not None:
        good.traffic.stop()  # the rollout: the new release takes the traffic
    result, report = verify_deploy(systems, ctx.prometheus, served.image, since, "breach")
    served.traffic.stop()
    ctx.facts["breach"] = _verification(served, since, result, report)


def names_measured_error_ratio(reasons: list[str], ratio: float | None) -> bool:
    """Whether a breach's reasons name the error ratio Prometheus measured, as the judge writes it
    (``error ratio: 0.1849 breaches <= 0.072 …``). The figure is near the 0.2 injected, not exactly it:
    ``increase()`` extrapolates at the window's edges (a fresh machine's run named 0.1849)."""
    return ratio is not None and any(r.startswith(f"error ratio: {figure(ratio)} breaches ") for r in reasons)


def check_breach(ctx: Context) -> list[str]:
    problems = lifecycle_checks.check_patch(ctx.systems)
    breach, first = ctx.facts.get("breach"), ctx.facts.get("first_release")
    if not breach:
        return [*problems, "no verification of the patched release ran"]
    problems += _served_what_runs(ctx, breach)
    if digest_of(breach["image_ref"]) == digest_of(first):
        problems.append(f"the patch did not give production a new digest: it still runs {first}")
    if breach["fault"] != FAULT:
        problems.append(f"the patched release was not served with {FAULT}: {breach['fault']}")
    if breach["exit"] != 1 or breach["status"] != "breached":
        problems.append(f"verify-deploy of the faulty release exited {breach['exit']} ({breach['status']}), not 1: "
                        f"{breach['tail']}")  # fmt: skip
    ratio = breach.get("candidate_error_ratio")
    if not names_measured_error_ratio(breach["reasons"], ratio):
        problems.append(f"verify-deploy did not name the error ratio it measured ({ratio}): {breach['reasons']}")
    if "error ratio" not in breach["stdout"]:
        problems.append("verify-deploy's output does not name the error ratio")
    if ratio is None or abs(ratio - 0.2) > 0.03:
        problems.append(f"Prometheus did not record the 20 % errors the traffic met: {ratio}")
    if digest_of(breach.get("baseline_ref")) != digest_of(first):
        problems.append(f"the breach was judged against {breach.get('baseline_ref')}, not the last good {first}")
    problems += _counted(breach)
    # What the rollback's up must leave as it is: it builds and pushes nothing.
    ctx.facts["registry_before_rollback"] = lifecycle_checks.registry_state(ctx.systems.registry.url)
    return problems


def step_rollback(ctx: Context) -> None:
    systems, ws = ctx.systems, ctx.systems.ws
    breached = ctx.facts["breach"]["image_ref"]
    # deploy.yml's "Rollback target": the ledger (this workspace's committed one, as on main).
    outputs = systems.root / "github-output"
    outputs.write_text("")
    target = ws.run(
        ["venv/bin/python", "-m", "components", "rollback-target", "--stack", STACK, "--exclude", breached,
         "--github-output"],
        check=False, env={"GITHUB_OUTPUT": str(outputs)},
    )  # fmt: skip
    pin = github_output(outputs)
    ctx.facts["rollback_target"] = {"exit": target.code, "stdout": target.stdout.strip(), **pin}
    if target.code != 0 or "digest" not in pin:
        raise StepFailed(f"rollback-target exited {target.code}: {target.tail()}")
    # deploy.yml's rollback `up`: pinnedDigest set for this run (config-map), then up.
    ws.config_set(STACK, f"{PROJECT}:pinnedDigest", pin["digest"])
    ws.pulumi("up", "--stack", STACK, "--yes", "--skip-preview", "--message", f"rollback to {pin['digest']}")


def check_rollback(ctx: Context) -> list[str]:
    systems = ctx.systems
    first, breached = ctx.facts.get("first_release"), ctx.facts.get("breach", {}).get("image_ref")
    problems: list[str] = []
    pin = ctx.facts.get("rollback_target", {})
    if pin.get("image_ref") != first or pin.get("digest") != digest_of(first):
        problems.append(f"rollback-target chose {pin}, not the last good {first}")
    # The kube-apiserver: the Deployment's template, and every pod of it (kwok runs them).
    image = lifecycle_checks.workload_image(systems, STACK)
    ctx.facts["deployment_image_after_rollback"] = image
    if image is None or digest_of(image) != digest_of(first):
        problems.append(f"production's Deployment runs {image}, not the last good {first} (breached: {breached})")
    problems += lifecycle_checks.wait_available(systems, NAMESPACE)
    pods = _workload_pods(systems, first)
    ctx.facts["pod_images_after_rollback"] = pods
    if not pods or {digest_of(i) for i in pods.values()} != {digest_of(first)}:
        problems.append(f"production's pods do not all run {first}: {pods}")
    # The state: the Deployment's outputs, the stack's image_ref output, nothing built or referenced.
    resources = lifecycle_checks.state_resources(systems, STACK)
    deployments = [r for r in resources if r["type"] == "kubernetes:apps/v1:Deployment" and
                   r.get("outputs", {}).get("metadata", {}).get("name") == SERVICE]  # fmt: skip
    state_images = [r["outputs"]["spec"]["template"]["spec"]["containers"][0]["image"] for r in deployments]
    ctx.facts["state_images_after_rollback"] = state_images
    if [digest_of(i) for i in state_images] != [digest_of(first)]:
        problems.append(f"the state's Deployment outputs run {state_images}, not [{first}]")
    if any(r["type"] == "pulumi:pulumi:StackReference" for r in resources):
        problems.append("production's state still reads staging (StackReference): the pin did not win")
    outputs = lifecycle_checks.stack_outputs(systems, STACK)
    ctx.facts["stack_image_ref_after_rollback"] = outputs.get("image_ref")
    if digest_of(outputs.get("image_ref")) != digest_of(first):
        problems.append(f"the stack's image_ref output is {outputs.get('image_ref')}, not {first}")
    if lifecycle_checks.registry_state(systems.registry.url) != ctx.facts.get("registry_before_rollback"):
        problems.append("the rollback's up changed the registry: something was built or pushed")
    return problems


def step_reverify(ctx: Context) -> None:
    systems = ctx.systems
    for key in ("good", "breached"):  # their pods are gone: the rollback's own pods serve now
        if key in ctx.served:
            retire(ctx.prometheus, ctx.served[key])
    served = serve_production(systems, ctx.prometheus, ctx.faults)
    ctx.served["rolled-back"] = served
    since = time.time()
    served.traffic = Traffic(served.container.url).start()
    image_ref = str(lifecycle_checks.stack_outputs(systems, STACK).get("image_ref"))  # steps.rollback.outputs
    result, report = verify_deploy(systems, ctx.prometheus, image_ref, since, "rollback", "--no-baseline")
    served.traffic.stop()
    ctx.facts["reverify"] = _verification(served, since, result, report)
    breached = ctx.facts["breach"]["image_ref"]
    results = {0: "passed", 1: "breached", 3: "not-verified"}
    entries = [(breached, "breached")]
    if result.code in results:
        entries.append((image_ref, results[result.code]))
    ledger(systems, entries, "ledger: production's breach and its rollback")
    # The next breach's rollback still finds the same pin.
    again = systems.ws.run(["venv/bin/python", "-m", "components", "rollback-target", "--stack", STACK,
                            "--exclude", breached], check=False)  # fmt: skip
    ctx.facts["rollback_target_after_ledger"] = {"exit": again.code, "stdout": again.stdout.strip()}


def check_reverify(ctx: Context) -> list[str]:
    first, reverify = ctx.facts.get("first_release"), ctx.facts.get("reverify")
    if not reverify:
        return ["the rollback was not verified again"]
    problems = _served_what_runs(ctx, reverify)
    if digest_of(reverify["image_ref"]) != digest_of(first):
        problems.append(f"after the rollback production serves {reverify['image_ref']}, not {first}")
    if reverify["exit"] != 0 or reverify["status"] != "healthy":
        problems.append(f"verify-deploy after the rollback exited {reverify['exit']} ({reverify['status']}): "
                        f"{reverify['tail']}")  # fmt: skip
    problems += _counted(reverify)
    breached = ctx.facts.get("breach", {}).get("image_ref", "")
    problems += _ledger_says(ctx, {str(first): "passed", breached: "breached"})
    again = ctx.facts.get("rollback_target_after_ledger", {})
    if again.get("exit") != 0 or digest_of(first) not in again.get("stdout", ""):
        problems.append(f"after the ledger job, rollback-target no longer picks {first}: {again}")
    return problems


def _verification(served: Served, since: float, result: workspace.Result, report: dict[str, Any]) -> dict[str, Any]:
    traffic = served.traffic
    return {
        "image_ref": served.image,
        "env_image_ref": served.env_image_ref,
        "fault": served.fault,
        "since": since,
        "exit": result.code,
        "status": report.get("status"),
        "reasons": list(report.get("reasons") or []),
        "baseline_ref": report.get("baseline_image_ref"),
        "baseline_requests": (report.get("samples") or {}).get("baseline_requests"),
        "candidate_error_ratio": (report.get("candidate") or {}).get("error_ratio"),
        "candidate_requests": (report.get("samples") or {}).get("candidate_requests"),
        "sent_in_window": traffic.within(since, since + WINDOW) if traffic else 0,
        "sent": len(traffic.sent) if traffic else 0,
        "http_errors": traffic.errors if traffic else 0,
        "stdout": result.stdout[-4000:],
        "tail": result.tail(12),
        "seconds": round(result.seconds, 1),
    }


def _served_what_runs(ctx: Context, verification: dict[str, Any]) -> list[str]:
    """The container served the Deployment's own image, and its IMAGE_REF (from the pod's environment)
    is that image: the digest Prometheus selected on is what the kube-apiserver said runs."""
    if verification["env_image_ref"] != verification["image_ref"]:
        return [f"the pod's IMAGE_REF {verification['env_image_ref']} is not its image {verification['image_ref']}"]
    return []


def _counted(verification: dict[str, Any]) -> list[str]:
    """Prometheus counted the window's requests the traffic sent (increase() extrapolates: within 10 %)."""
    counted, sent = verification.get("candidate_requests"), verification["sent_in_window"]
    if counted is None or sent < MIN_REQUESTS or abs(counted - sent) > 0.1 * sent:
        return [f"Prometheus counted {counted} requests in the window; the traffic sent {sent}"]
    return []


def _ledger_says(ctx: Context, expected: dict[str, str]) -> list[str]:
    """The committed ledger (deployments/production.verify.jsonl) has each reference's latest result."""
    ws = ctx.systems.ws
    committed = ws.git("show", f"HEAD:deployments/{STACK}.verify.jsonl", check=False)
    latest = {}
    for line in committed.stdout.splitlines():
        entry = json.loads(line)
        latest[digest_of(entry["image_ref"])] = entry["result"]
    ctx.facts["ledger"] = latest
    wrong = {
        ref: latest.get(digest_of(ref)) for ref, result in expected.items() if latest.get(digest_of(ref)) != result
    }
    return [f"the committed ledger says {wrong}, expected {expected}"] if wrong else []


def _workload_pods(systems: Systems, expected: str | None, timeout: float = 120) -> dict[str, str]:
    """Pod → image of the workload's live pods (not cloudflared's), once they all run ``expected``'s
    digest (or at the timeout)."""
    deadline = time.monotonic() + timeout
    pods: dict[str, str] = {}
    while time.monotonic() < deadline:
        listing = systems.plane.get(f"/api/v1/namespaces/{NAMESPACE}/pods").get("items", [])
        pods = {
            p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
            for p in listing
            if not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["name"].startswith(f"{SERVICE}-")
            and not p["metadata"]["name"].startswith(f"{SERVICE}-cloudflared")
        }
        if pods and {digest_of(i) for i in pods.values()} == {digest_of(expected)}:
            return pods
        time.sleep(1)
    return pods


def digest_of(ref: object) -> str:
    """``sha256:…`` of ``repo[:tag]@sha256:…`` (a pin deploys ``repo@digest``: compare digests)."""
    return str(ref).rsplit("@", 1)[-1]


STEPS: list[tuple[str, Callable[[Context], None], Callable[[Context], list[str]]]] = [
    ("01-up", step_up, check_up),
    ("02-good-release", step_good_release, check_good_release),
    ("03-breach", step_breach, check_breach),
    ("04-rollback", step_rollback, check_rollback),
    ("05-reverify", step_reverify, check_reverify),
]


def run_steps(run: e2e.Run, ctx: Context) -> None:
    for name, action, check in STEPS:
        with run.step(name, ctx.systems) as record:
            if name not in run.skip:
                action(ctx)
            problems = check(ctx)
            record.checks = [check.__doc__ or check.__name__]
            if problems:
                raise StepFailed(f"{name}: the real systems do not show the step's effect:\n- " + "\n- ".join(problems))


def write_facts(out: Path, ctx: Context | None, seconds: float) -> None:
    facts = dict(ctx.facts) if ctx else {}
    facts["seconds"] = round(seconds, 1)
    facts["settings"] = {"window": WINDOW, "interval": INTERVAL, "min_requests": MIN_REQUESTS, "rate": RATE,
                         "max_requests": MAX_REQUESTS, "max_seconds": MAX_SECONDS}  # fmt: skip
    facts.pop("registry_before_rollback", None)
    (out / "rollback.json").write_text(json.dumps(facts, indent=2, sort_keys=True, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.rollback_run", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "rollback")
    parser.add_argument("--skip", action="append", default=[], help="leave this step's commands out (checks stay)")
    parser.add_argument("--keep", action="store_true", help="keep the run's temporary directory")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupted)
    unknown = set(args.skip) - {name for name, _, _ in STEPS}
    if unknown:
        parser.error(f"--skip: no step {sorted(unknown)}; steps: {[n for n, _, _ in STEPS]}")
    binary = prometheus_binary()
    if binary is None:
        print("rollback run: prometheus is missing (apt-get install prometheus)", file=sys.stderr)
        return 2
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    run = e2e.Run(args.out, set(args.skip))
    root = Path(tempfile.mkdtemp(prefix="service-lifecycle-rollback-"))
    systems: Systems | None = None
    ctx: Context | None = None
    started = time.monotonic()

    def body(stack: contextlib.ExitStack) -> None:
        nonlocal systems, ctx
        systems = e2e.start_systems(root, stack)
        prometheus = start_prometheus(root / "prometheus", binary)
        stack.callback(prometheus.stop)
        ctx = Context(systems, prometheus)
        stack.callback(_remove_served, ctx)
        systems.base_image = e2e.push_base_image(systems)
        e2e.overlay(systems)
        run_steps(run, ctx)

    def finish(status: str) -> None:
        run.write_report(systems, status)
        write_facts(args.out, ctx, time.monotonic() - started)

    status = e2e.run_guarded("rollback run", body, finish=finish, root=root, keep=args.keep)
    print(f"rollback run: {status} in {time.monotonic() - started:.0f} s; artefacts in {args.out}")
    return 0 if status == "passed" else 1


def _remove_served(ctx: Context) -> None:
    for served in ctx.served.values():
        if served.traffic is not None:
            served.traffic.stop()
        with contextlib.suppress(Exception):
            served.container.remove()


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

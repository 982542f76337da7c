"""The offline plan end to end, as a newcomer and CI run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config.stack_config import StackFileError, load_stack_config

PlanFn = Callable[[str], tuple[dict[str, Any], Path]]


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "components", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_plan_writes_tree_manifests_and_json(offline_plan: PlanFn, stack: str) -> None:
    plan, out = offline_plan(stack)
    assert plan["stack"] == stack and plan["stage"] == stack
    assert plan["resources"][0]["type"] == "service-lifecycle:index:ServiceStack"
    assert plan["outputs"]["stage"] == stack
    manifests = sorted((out / "manifests").glob("*.yaml"))
    kube = [r for r in plan["resources"] if r["type"].startswith("kubernetes:") and r["custom"]
            and not r["type"].startswith("kubernetes:helm.sh")]  # fmt: skip
    assert len(manifests) == len(kube)
    for path in manifests:
        obj = yaml.safe_load(path.read_text())
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]


def test_plan_text_shows_the_tree(project_dir: Path) -> None:
    result = run_cli("plan", "--stack", "production", cwd=project_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("service-lifecycle / production  (stage production")
    assert lines[1] == "└─ ServiceStack  hello"
    assert "StackReference example-org/service-lifecycle/staging answered offline" in result.stdout

    def line(name: str) -> str:
        found = [text for text in lines if f"  {name}  [" in text or text.endswith(f"  {name}")]
        assert len(found) == 1, f"no tree line for {name}"
        return found[0]

    # The fields a reviewer checks before approving production.
    assert line("hello-env-namespace").endswith("[hello-production  protect]")
    assert "image=ghcr.io/example-org/hello@sha256:" in line("hello-workload-deployment")
    assert line("hello-workload-autoscaler").endswith("minReplicas=3  maxReplicas=6]")
    assert line("hello-workload-disruption-budget").endswith("[hello-production/hello  maxUnavailable=1]")
    assert line("hello-workload-service").endswith("type=ClusterIP]")
    assert "type=CNAME  proxied=True" in line("hello-exposure-dns-hello.example.com")


def test_plan_json_format_is_parseable(project_dir: Path) -> None:
    result = run_cli("plan", "--stack", "staging", "--format", "json", cwd=project_dir)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["stage"] == "staging"
    assert any("registryPassword is not in the stack file" in n for n in plan["notes"])


def test_secrets_never_reach_plan_files(offline_plan: PlanFn) -> None:
    from components.testing import TUNNEL_TOKEN_INVOKE, tunnel_token

    for stack in ("staging", "production"):
        plan, out = offline_plan(stack)
        # The tunnel token is the one real secret value an offline plan holds (the mocks make it):
        # it must not appear anywhere, wrapped or not.
        tokens = [tunnel_token(i["args"]["accountId"], i["args"]["tunnelId"])
                  for i in plan["invokes"] if i["token"] == TUNNEL_TOKEN_INVOKE]  # fmt: skip
        assert tokens, f"{stack}: no tunnel-token invoke recorded"
        for path in [out / "plan.json", *(out / "manifests").glob("*.yaml"), *(out / "rules").glob("*")]:
            text = path.read_text()
            assert "1b47061264138c4ac30d75fd1eb44270" not in text, f"unredacted secret wrapper in {path}"
            assert not [t for t in tokens if t in text], f"tunnel token in plain text in {path}"


def _broken_project(tmp_path: Path, project_dir: Path, config: dict[str, Any]) -> Path:
    shutil.copy(project_dir / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(project_dir / "__main__.py", tmp_path / "__main__.py")
    shutil.copytree(project_dir / "app", tmp_path / "app")  # the image's tag is computed from its content
    (tmp_path / "Pulumi.broken.yaml").write_text(yaml.safe_dump({"config": config}))
    return tmp_path


def test_broken_stack_file_exits_2_with_one_line_per_bad_key(tmp_path: Path, project_dir: Path) -> None:
    good = yaml.safe_load((project_dir / "Pulumi.production.yaml").read_text())["config"]
    bad = {
        **good,
        "service-lifecycle:replicas": "1",
        "service-lifecycle:serviceName": "Hello World",
        "service-lifecycle:cloudflareZoneId": "xyz",
        "service-lifecycle:hostnames": ["hello.example.org"],
    }
    project = _broken_project(tmp_path, project_dir, bad)
    result = run_cli("plan", "--stack", "broken", "--project-dir", str(project), cwd=project_dir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: stack broken: 4 invalid setting(s):"
    problems = [line for line in lines[1:] if not line.startswith("note: ")]  # stand-ins stay notes
    assert [line.split(":")[1] for line in problems] == ["serviceName", "replicas", "cloudflareZoneId", "hostnames"]
    assert "service-lifecycle:replicas: got '1'; expected an integer from 2 to 50" in lines[2]


def test_stack_file_and_settings_problems_are_reported_together(tmp_path: Path, project_dir: Path) -> None:
    good = yaml.safe_load((project_dir / "Pulumi.production.yaml").read_text())["config"]
    bad = {**good, "service-lifecycle:replicas": "three", "service-lifecycle:Team": "x",
           "service-lifecycle:serviceName": "Hello World", "service-lifecycle:cloudflareZoneId": "xyz"}  # fmt: skip
    project = _broken_project(tmp_path, project_dir, bad)
    result = run_cli("plan", "--stack", "broken", "--project-dir", str(project), cwd=project_dir)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: stack broken: 4 invalid setting(s):"
    keys = [line.split(":")[1] for line in lines[1:] if line.startswith("  service-lifecycle:")]
    assert sorted(keys) == ["Team", "cloudflareZoneId", "replicas", "serviceName"], lines
    # The Pulumi CLI's own line comes first (pkg/workspace/config.go validateStackConfigValue).
    assert "  Stack 'broken' with configuration key 'replicas' must be of type 'integer'" in lines


def test_unknown_and_mistyped_keys_are_refused(tmp_path: Path, project_dir: Path) -> None:
    good = yaml.safe_load((project_dir / "Pulumi.staging.yaml").read_text())["config"]
    bad = {**good, "service-lifecycle:Replicas": 3, "service-lifecycle:hostnames": "one.example.com",
           "service-lifecycle:registryPassword": "plain-text-token"}  # fmt: skip
    project = _broken_project(tmp_path, project_dir, bad)
    with pytest.raises(StackFileError) as raised:
        load_stack_config(project, "broken")
    text = str(raised.value)
    hint = "(did you mean service-lifecycle:replicas?)"
    declared = "a setting declared in Pulumi.yaml or components/schema.py"
    assert f"service-lifecycle:Replicas: got 3; expected {declared} {hint}" in text
    assert "service-lifecycle:hostnames: got 'one.example.com'; expected a value of type array" in text
    assert "service-lifecycle:registryPassword: got [secret]; expected an encrypted value" in text
    assert "plain-text-token" not in text


def test_an_ecr_stack_plans_without_aws(tmp_path: Path, project_dir: Path) -> None:
    """The ECR login (boto3) is a stand-in offline: no network, no AWS credentials (fork PRs)."""
    config = yaml.safe_load((project_dir / "Pulumi.staging.yaml").read_text())["config"]
    config["service-lifecycle:imageRepository"] = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/hello"
    del config["service-lifecycle:registryUsername"]
    config["service-lifecycle:imagePullSecret"] = "false"  # EKS nodes pull from ECR with their IAM role
    project = _broken_project(tmp_path, project_dir, config)
    no_aws = {
        "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true", "SOURCE_REVISION": "0123456789abcdef0123456789abcdef01234567",
    }  # fmt: skip
    result = run_cli("plan", "--stack", "broken", "--project-dir", str(project), "--format", "json",
                     cwd=project_dir, env=no_aws)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    plan = json.loads(result.stdout)
    images = [r for r in plan["resources"] if r["type"] == "docker:index/image:Image"]
    assert len(images) == 1 and images[0]["inputs"]["registry"] == "[secret]"
    note = "ECR login for 123456789012.dkr.ecr.eu-west-1.amazonaws.com answered offline"
    assert any(note in n for n in plan["notes"])


def test_missing_stack_file_exits_2(project_dir: Path) -> None:
    result = run_cli("plan", "--stack", "qa", cwd=project_dir)
    assert result.returncode == 2
    assert "an existing stack file; stacks here: ['production', 'staging']" in result.stderr


def test_secure_values_are_planned_as_secret(tmp_path: Path, project_dir: Path) -> None:
    good = yaml.safe_load((project_dir / "Pulumi.staging.yaml").read_text())["config"]
    config = {**good, "service-lifecycle:registryPassword": {"secure": "v1:abc=="}}
    project = _broken_project(tmp_path, project_dir, config)
    loaded = load_stack_config(project, "broken")
    assert loaded.values["service-lifecycle:registryPassword"] == "[secret]"
    assert "service-lifecycle:registryPassword" in loaded.secret_keys
    assert loaded.values["service-lifecycle:containerPort"] == "8080", "Pulumi.yaml defaults are merged"


def test_a_duplicate_service_stack_stops_the_plan(tmp_path: Path, project_dir: Path) -> None:
    """pulumi/pulumi pkg/resource/deploy/step_generator.go ``generateURN``: the engine refuses a second
    resource with one URN ("Duplicate resource URN '<urn>'; try giving it a unique name"); the plan stops
    on the same line, exit 1, no traceback, nothing written."""
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml"):
        shutil.copy(project_dir / name, tmp_path)
    (tmp_path / "app").symlink_to(project_dir / "app")
    program = (project_dir / "__main__.py").read_text()
    line = "ServiceStack(settings.service_name, ServiceStackArgs(settings=settings, cluster_monitoring=cluster))"
    assert line in program
    (tmp_path / "__main__.py").write_text(f"{program}\n{line}\n")  # a second ServiceStack of the same name
    out = tmp_path / "out"
    result = run_cli("plan", "--stack", "staging", "--project-dir", str(tmp_path), "--out", str(out),
                     cwd=project_dir, env={"SOURCE_REVISION": "0" * 40})  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    urn = "urn:pulumi:staging::service-lifecycle::service-lifecycle:index:ServiceStack::hello"
    assert result.stderr.strip().splitlines() == [
        f"error: stack staging: Duplicate resource URN '{urn}'; try giving it a unique name"
    ]
    # --out is checked (made, and written to) before planning; nothing is left in it
    assert "Traceback" not in result.stderr and not any(out.iterdir())


def test_invokes_are_listed_the_same_whatever_order_they_finished_in() -> None:
    """Registrations and invokes run concurrently (examples/two-services' two tunnel-token lookups
    finished in either order, so plan.json differed between two runs of one commit)."""
    from components.commands.plan import stable_invokes
    from components.testing import RecordedInvoke

    calls = [
        RecordedInvoke(
            token="cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken",
            args={"tunnelId": tunnel, "accountId": "a"},
            provider=None,
        )
        for tunnel in ("web-tunnel", "api-tunnel")
    ] + [RecordedInvoke(token="aws:ecr/getAuthorizationToken:getAuthorizationToken", args={}, provider=None)]
    forward, backward = stable_invokes(calls), stable_invokes(list(reversed(calls)))
    assert forward == backward
    assert [i["token"].split(":")[0] for i in forward] == ["aws", "cloudflare", "cloudflare"]
    assert [i["args"].get("tunnelId") for i in forward] == [None, "api-tunnel", "web-tunnel"]


def test_a_flood_of_problems_is_cut_to_a_readable_report() -> None:
    """A hostile stack file with thousands of bad keys prints at most MAX_PROBLEMS_SHOWN lines and a count."""
    import io

    from components.commands.plan import MAX_PROBLEMS_SHOWN, report_problems
    from components.config.settings import SettingProblem

    for count, printed in ((MAX_PROBLEMS_SHOWN, MAX_PROBLEMS_SHOWN), (MAX_PROBLEMS_SHOWN + 7, MAX_PROBLEMS_SHOWN)):
        stream = io.StringIO()
        problems = [SettingProblem(f"service-lifecycle:k{i}", "1", "a setting") for i in range(count)]
        report_problems("staging", StackFileError(problems), stream)
        lines = stream.getvalue().splitlines()
        assert lines[0] == f"error: stack staging: {count} invalid setting(s):"
        assert [line for line in lines if line.startswith("  service-lifecycle:k")] == [
            f"  service-lifecycle:k{i}: got 1; expected a setting" for i in range(printed)
        ]
        assert (lines[-1] == "  … and 7 more: fix these and run the plan again") is (count > printed)

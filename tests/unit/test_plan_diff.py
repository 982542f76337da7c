"""The pull-request comment that compares the base branch's offline plan with the PR's."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.commands import cli, plan_diagram, plan_diff


def write_plan(root: Path, stack: str, objects: list[dict[str, object]], policy: str | None = None) -> None:
    folder = root / stack / "manifests"
    folder.mkdir(parents=True)
    resources = []
    for index, obj in enumerate(objects, start=1):
        meta = obj["metadata"]
        assert isinstance(meta, dict)
        name = "-".join(str(p) for p in (f"{index:03d}", obj["kind"], meta.get("namespace"), meta["name"]) if p)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(obj, sort_keys=False))
        resources.append({"type": f"kubernetes:x:{obj['kind']}", "name": meta["name"]})
    (root / stack / "plan.json").write_text(json.dumps({"resources": resources}))
    if policy is not None:
        (root / stack / "policy.txt").write_text(policy)


def obj(kind: str, name: str, **spec: object) -> dict[str, object]:
    return {"kind": kind, "metadata": {"name": name, "namespace": "hello-staging"}, "spec": dict(spec)}


def test_changes_are_matched_by_object_not_by_file_number(tmp_path: Path) -> None:
    base, head = tmp_path / "base", tmp_path / "head"
    write_plan(base, "staging", [obj("Deployment", "hello", replicas=1), obj("Service", "hello")])
    # A new object first shifts every file number; only the real changes may show.
    write_plan(
        head,
        "staging",
        [obj("ConfigMap", "extra"), obj("Deployment", "hello", replicas=2), obj("Service", "hello")],
        policy="policy: all 11 rules pass\n",
    )
    diff = plan_diff.diff_stack(base, head, "staging")
    assert diff.added == ["ConfigMap-hello-staging-extra.yaml"]
    assert diff.changed == ["Deployment-hello-staging-hello.yaml"]
    assert diff.removed == []
    assert "-  replicas: 1\n+  replicas: 2\n" in diff.diff
    assert diff.type_changes == {"kubernetes:x:ConfigMap": (0, 1)}
    comment = plan_diff.render([diff], base_ref="main")
    assert comment.startswith(plan_diff.MARKER)
    assert "### `staging`: 1 changed, 1 added, 0 removed manifest(s) · policy: all 11 rules pass" in comment
    assert "```diff\n" in comment


def test_identical_plans_say_no_change(tmp_path: Path) -> None:
    for root in (tmp_path / "base", tmp_path / "head"):
        write_plan(root, "production", [obj("Deployment", "hello")])
    diff = plan_diff.diff_stack(tmp_path / "base", tmp_path / "head", "production")
    assert diff.unchanged and diff.diff == ""
    assert "### `production`: no change · policy: not run" in plan_diff.render([diff], base_ref="main")


def test_missing_base_plan_is_explained_and_violations_are_quoted(tmp_path: Path) -> None:
    policy = (
        "policy violation [mandatory] dns-records-proxied: DnsRecord x: proxied is False\n"
        "policy: 1 mandatory violation(s) from 11 rules\n"
    )
    write_plan(tmp_path / "head", "staging", [obj("Deployment", "hello")], policy=policy)
    diff = plan_diff.diff_stack(tmp_path / "base", tmp_path / "head", "staging")
    comment = plan_diff.render([diff], base_ref="main")
    assert diff.base_missing and diff.added == ["Deployment-hello-staging-hello.yaml"]
    assert "`main` has no offline plan for `staging`" in comment
    assert "dns-records-proxied: DnsRecord x: proxied is False" in comment
    assert "policy: 1 mandatory violation(s) from 11 rules" in comment


def test_long_diffs_are_truncated_below_githubs_limit(tmp_path: Path) -> None:
    big = {f"key{i}": "x" * 100 for i in range(2000)}
    write_plan(tmp_path / "base", "staging", [obj("ConfigMap", "big")])
    write_plan(tmp_path / "head", "staging", [{**obj("ConfigMap", "big"), "data": big}])
    diff = plan_diff.diff_stack(tmp_path / "base", tmp_path / "head", "staging")
    assert len(diff.diff) > 100_000
    comment = plan_diff.render([diff], base_ref="main")
    assert len(comment) < 65_536
    assert "diff truncated" in comment and comment.rstrip().endswith("</details>")


def test_command_writes_comment_and_full_diff(tmp_path: Path) -> None:
    write_plan(tmp_path / "base", "staging", [obj("Deployment", "hello", replicas=1)])
    write_plan(tmp_path / "head", "staging", [obj("Deployment", "hello", replicas=3)])
    out, full = tmp_path / "comment.md", tmp_path / "plan.diff"
    code = cli.main(
        ["plan-diff", "--base", str(tmp_path / "base"), "--head", str(tmp_path / "head"),
         "--stack", "staging", "--out", str(out), "--diff-out", str(full)]
    )  # fmt: skip
    assert code == 0
    assert "1 changed" in out.read_text()
    assert "+  replicas: 3" in full.read_text()


# ---------------------------------------------------------------------------------------------
# The plan as a picture: the Mermaid diagram that opens the comment

MERMAID_DIR = Path(__file__).resolve().parents[1] / "mermaid"
DEPLOYMENT_URN_END = "$kubernetes:apps/v1:Deployment::hello-workload-deployment"


def mermaid_parse(texts: list[str]) -> list[dict[str, object]]:
    """Each text through Mermaid's own parser (npm ``mermaid``, ``mermaid.parse``; tests/mermaid/check.mjs).

    ``make test`` installs it (``npm ci`` in tests/mermaid); without it the test skips locally and
    fails under CI, which must run it.
    """
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node is not installed (Debian package nodejs)"
    elif not (MERMAID_DIR / "node_modules" / "mermaid").is_dir():
        reason = "Mermaid's parser is not installed: make tests/mermaid/node_modules/.package-lock.json"
    if reason is not None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"CI must check the Mermaid diagrams, but {reason}", pytrace=False)
        pytest.skip(reason)
    assert node is not None
    done = subprocess.run(
        [node, str(MERMAID_DIR / "check.mjs")], input=json.dumps(texts), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    results: list[dict[str, object]] = json.loads(done.stdout)
    return results


def diagrams(comment: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", comment, flags=re.S)


def copy_plan(source: Path, root: Path, stack: str) -> Path:
    target = root / stack
    shutil.copytree(source, target)
    return target


def test_changed_deployment_is_marked_in_the_diagram(
    offline_plan: Callable[[str], tuple[dict[str, Any], Path]], tmp_path: Path
) -> None:
    """The real offline plan of staging, with the Workload's Deployment scaled in the PR's copy.

    Resources are paired by URN, as the Pulumi engine pairs a deployment's resources with the last
    state (pulumi/pulumi ``pkg/resource/deploy/step_generator.go``, ``generateSteps``: old state
    looked up by URN).
    """
    _, out = offline_plan("staging")
    copy_plan(out, tmp_path / "base", "staging")
    head = copy_plan(out, tmp_path / "head", "staging")
    plan = json.loads((head / "plan.json").read_text())
    [deployment] = [r for r in plan["resources"] if r["urn"].endswith(DEPLOYMENT_URN_END)]
    deployment["inputs"]["spec"]["replicas"] = 4
    (head / "plan.json").write_text(json.dumps(plan))
    manifest = head / "manifests" / "hello-staging_Deployment_hello.yaml"
    manifest.write_text(yaml.safe_dump(deployment["inputs"], sort_keys=False))

    comment = plan_diff.render([plan_diff.diff_stack(tmp_path / "base", tmp_path / "head", "staging")], base_ref="main")

    # The diagram opens the comment: before any stack summary or diff.
    assert comment.index("```mermaid") < comment.index("### `staging`") < comment.index("```diff")
    [diagram] = diagrams(comment)
    marked = [line.strip() for line in diagram.splitlines() if ":::" in line]
    assert len(marked) == 1 and re.fullmatch(r'n\d+\["~ Deployment hello-workload-deployment"\]:::changed', marked[0])
    assert "classDef changed " in diagram and "classDef added" not in diagram
    # The Deployment sits inside its component's subgraph, itself inside the ServiceStack's.
    lines = diagram.splitlines()
    workload = next(i for i, line in enumerate(lines) if "subgraph" in line and '"Workload hello-workload"' in line)
    assert lines[workload].startswith("    subgraph") and "~ Deployment" in "\n".join(lines[workload : workload + 9])
    assert re.search(r"plan diagram: staging: \d+ resources, 1 changed</summary>", comment)
    assert mermaid_parse([diagram]) == [{"ok": True, "type": "flowchart-v2"}]


def component(urn: str, name: str, parent: str | None = None) -> dict[str, Any]:
    return {"type": "service-lifecycle:index:Workload", "name": name, "urn": urn, "parent": parent, "custom": False}


def resource(parent: str, kind: str, name: str, **inputs: object) -> dict[str, Any]:
    urn = f"{parent}$kubernetes:core/v1:{kind}::{name}"
    return {"type": f"kubernetes:core/v1:{kind}", "name": name, "urn": urn, "parent": parent, "custom": True,
            "inputs": dict(inputs)}  # fmt: skip


def big_plan(components: int, per_component: int) -> list[dict[str, Any]]:
    resources: list[dict[str, Any]] = []
    for c in range(components):
        urn = f"urn:pulumi:s::p::service-lifecycle:index:Workload::w{c}"
        resources.append(component(urn, f"w{c}"))
        resources += [resource(urn, "ConfigMap", f"w{c}-cm{i}", data=i) for i in range(per_component)]
    return resources


def test_large_plans_collapse_to_components_and_keep_the_marks() -> None:
    base = big_plan(6, 30)
    head = copy.deepcopy(base)
    head[5]["inputs"] = {"data": "new"}  # w0-cm4 changed
    removed = head.pop(40)  # w1-cm8 removed
    head.append(resource(head[31]["urn"], "Secret", "w1-extra"))  # added under w1
    resources, changes = plan_diagram.compare(base, head)
    assert changes == {head[5]["urn"]: "changed", removed["urn"]: "removed", head[-1]["urn"]: "added"}
    diagram = plan_diagram.render(resources, changes)
    assert diagram is not None and diagram.collapsed and diagram.nodes == 187
    assert '["~ Workload w0<br/>30 resource(s): 1 changed"]:::changed' in diagram.text
    # Two kinds of change in one folded node: marked as changed, both counted.
    assert '["~ Workload w1<br/>31 resource(s): 1 added, 1 removed"]:::changed' in diagram.text
    assert '["Workload w2<br/>30 resource(s)"]' in diagram.text and "w2-cm0" not in diagram.text
    full = plan_diagram.render(resources, changes, max_nodes=1000, max_chars=1_000_000)
    assert full is not None and not full.collapsed and '"+ Secret w1-extra"]:::added' in full.text
    assert '"- ConfigMap w1-cm8"]:::removed' in full.text
    assert mermaid_parse([diagram.text, full.text]) == [{"ok": True, "type": "flowchart-v2"}] * 2


def test_a_comment_for_a_huge_plan_stays_under_githubs_limit(tmp_path: Path) -> None:
    """GitHub refuses a comment body above 65,536 characters (REST API, "Create an issue comment": 422)."""
    for root, data in ((tmp_path / "base", "old"), (tmp_path / "head", "new")):
        (root / "staging").mkdir(parents=True)
        plan = big_plan(400, 3)
        for r in plan[1::2]:
            r["inputs"] = {"data": data}
        (root / "staging" / "plan.json").write_text(json.dumps({"resources": plan}))
    diff = plan_diff.diff_stack(tmp_path / "base", tmp_path / "head", "staging")
    comment = plan_diff.render([diff, diff], base_ref="main")
    assert len(comment) < 65_536
    assert "(collapsed to components)" in comment or "does not fit the comment" in comment
    tiny = plan_diff.render([diff], base_ref="main", limit=3_000)
    assert "```mermaid" not in tiny and "the plan diagram does not fit the comment" in tiny


def test_labels_are_escaped_for_mermaid() -> None:
    parent = "urn:pulumi:s::p::service-lifecycle:index:Workload::w"
    odd = resource(parent, "ConfigMap", 'say "hi" <b>&`x`</b> end')
    diagram = plan_diagram.render([component(parent, "end"), odd], {odd["urn"]: "added"})
    assert diagram is not None
    assert '"+ ConfigMap say #quot;hi#quot; #lt;b#gt;#amp;#96;x#96;#lt;/b#gt; end"' in diagram.text
    assert mermaid_parse([diagram.text]) == [{"ok": True, "type": "flowchart-v2"}]


def test_mermaid_parser_check_can_fail() -> None:
    # A label closed early (what escaping `"` and `]` prevents), and a subgraph without its `end`.
    results = mermaid_parse(['flowchart LR\n  n0["a"] b"]\n', 'flowchart LR\n  subgraph g0["x"]\n'])
    assert [r["ok"] for r in results] == [False, False]

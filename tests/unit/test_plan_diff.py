"""The pull-request comment that compares the base branch's offline plan with the PR's."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from components import cli, plan_diff


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

"""Issue 22, item 6: the library's defaults carry nothing of this repository's sample.

- the alerts' runbook is a setting the user sets, or none (no github.com/example-org default);
- ``nameSuffix`` makes every ``<service>-<stage>`` name of two stacks at one stage on one cluster or
  Cloudflare account distinct (namespace, tunnel, Access names, dashboard), today's names without it;
- the testing helpers take the project from the program's Pulumi.yaml, not ``service-lifecycle``;
- error hints name no sample repository (``ghcr.io/acme/hello``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.config import schema
from components.config.settings import Settings, SettingsError, settings_from_mapping
from components.monitoring.rules import RuleParams, rule_groups
from components.service import ServiceStack, ServiceStackArgs
from components.testing import RecordingMocks, project_of, run_components, unwrap

SOURCE = "example-org/service-lifecycle/staging"
STACK_OUTPUTS = {SOURCE: {"image_ref": "ghcr.io/example-org/hello@sha256:" + "c" * 64}}
TUNNEL = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"


def test_no_default_points_at_the_sample() -> None:
    defaults = [str(s.default) for s in schema.SETTINGS]
    assert [d for d in defaults if "example-org" in d or "acme" in d] == []
    assert schema.BY_NAME["monitoringRunbookUrl"].default == ""


def test_without_a_runbook_the_alerts_carry_no_runbook_link(make_settings: Callable[..., Settings]) -> None:
    assert make_settings("staging", monitoringRunbookUrl=None).monitoring.runbook_url is None
    params = {"service": "hello", "namespace": "hello-staging", "team": "platform", "slo_availability": 99.5,
              "latency_p95_seconds": 0.5, "app_job": "hello", "tunnel_job": "hello-cloudflared"}  # fmt: skip
    without = rule_groups(RuleParams(**params))
    alerts = [rule for group in without["groups"] for rule in group["rules"] if "alert" in rule]
    assert alerts and all("runbook_url" not in a["annotations"] for a in alerts)
    with_runbook = rule_groups(RuleParams(**params, runbook_url="https://runbooks.example.net/hello"))
    links = [r["annotations"]["runbook_url"] for g in with_runbook["groups"] for r in g["rules"] if "alert" in r]
    assert links and all(link.startswith("https://runbooks.example.net/hello#") for link in links)


def _names(mocks: RecordingMocks) -> set[str]:
    """Every name a cluster or a Cloudflare account holds once: namespaces, objects in the shared
    monitoring namespace, tunnels, Access applications, policies and service tokens."""
    found = set()
    for r in mocks.resources:
        inputs = unwrap(r.inputs)
        metadata = inputs.get("metadata") or {}
        if r.type == "kubernetes:core/v1:Namespace" or metadata.get("namespace") == "monitoring":
            found.add(f"k8s {metadata.get('namespace', '')}/{metadata.get('name')}")
        elif r.type.startswith("cloudflare:") and "name" in inputs and "DnsRecord" not in r.type:
            found.add(f"cf {r.type.rsplit(':', 1)[-1]} {inputs['name']}")
    return found


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_a_name_suffix_keeps_two_stacks_at_one_stage_apart(make_settings: Callable[..., Settings], stage: str) -> None:
    def mocks_for(suffix: str | None) -> RecordingMocks:
        settings = make_settings(
            stage, nameSuffix=suffix,
            hostnames=[f"{suffix or 'x'}-{stage}.example.com"],  # each stack owns its own hostnames
        )  # fmt: skip
        return run_components(
            lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)), stack=stage, stack_outputs=STACK_OUTPUTS
        )

    plain, team_a, team_b = mocks_for(None), mocks_for("team-a"), mocks_for("pr42")
    assert f"k8s /hello-{stage}" in _names(plain)  # today's names without the setting
    assert f"cf ZeroTrustTunnelCloudflared hello-{stage}" in _names(plain)
    assert f"k8s /hello-{stage}-pr42" in _names(team_b)
    assert f"cf ZeroTrustTunnelCloudflared hello-{stage}-pr42" in _names(team_b)
    assert f"k8s monitoring/hello-{stage}-pr42-dashboard" in _names(team_b)
    # Nothing one of them names is named by another.
    counted = Counter([*_names(plain), *_names(team_a), *_names(team_b)])
    assert [name for name, n in counted.items() if n > 1] == []
    namespaces = {unwrap(r.inputs)["metadata"]["namespace"] for r in team_a.kubernetes_objects()
                  if "namespace" in (unwrap(r.inputs).get("metadata") or {})}  # fmt: skip
    assert namespaces == {f"hello-{stage}-team-a", "monitoring"}


@pytest.mark.parametrize(
    ("suffix", "room"), [("PR42", 49), ("pr_42", 49), ("-pr42", 49), ("x" * 50, 49)], ids=["upper", "_", "-", "long"]
)
def test_a_bad_name_suffix_is_refused_naming_the_key(
    make_settings: Callable[..., Settings], suffix: str, room: int
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", nameSuffix=suffix)
    assert [str(p) for p in raised.value.problems] == [
        f"service-lifecycle:nameSuffix: got '{suffix}'; expected a DNS-1123 label of at most {room} characters, "
        "e.g. the stack's name or a pull request number (hello-staging-<suffix> names the namespace: at most 63 "
        "characters)"
    ]


@pytest.fixture
def in_directory(tmp_path: Path) -> Iterator[Path]:
    before = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(before)


def test_the_testing_helpers_take_the_project_from_pulumi_yaml(in_directory: Path) -> None:
    (in_directory / "Pulumi.yaml").write_text("name: acme-platform\nruntime: python\n")
    (in_directory / "tests").mkdir()
    assert project_of() == "acme-platform" == project_of(in_directory / "tests")  # found from below too
    mocks = run_components(lambda: None, stack="dev")
    assert mocks.urns and all("::acme-platform::" in urn for urn in mocks.urns)


def test_without_pulumi_yaml_the_testing_helpers_ask_for_the_project(in_directory: Path) -> None:
    with pytest.raises(ValueError, match=r"no Pulumi.yaml in .* or a folder above it: pass project="):
        project_of()
    assert run_components(lambda: None, project="given").urns


def test_error_hints_name_no_sample_repository() -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_mapping({"stage": "staging", "imageRepository": "hello", "sourceUrl": "http://x"})
    text = "\n".join(str(p) for p in raised.value.problems)
    assert "imageRepository" in text and "sourceUrl" in text
    assert "acme/hello" not in text and "ghcr.io/acme" not in text


def _all_labels(mocks: RecordingMocks) -> list[dict[str, str]]:
    found = []
    for r in mocks.kubernetes_objects():
        inputs = unwrap(r.inputs)
        found.append((inputs.get("metadata") or {}).get("labels") or {})
        template = ((inputs.get("spec") or {}).get("template") or {}).get("metadata") or {}
        found += [template.get("labels") or {}, template.get("annotations") or {}]
    return found


@pytest.mark.parametrize("stage", ["staging", "production"])
def test_a_platform_sets_its_own_label_keys_and_managed_by(make_settings: Callable[..., Settings], stage: str) -> None:
    settings = make_settings(stage, labelPrefix="platform.acme.io", managedBy="acme-platform")
    mocks = run_components(
        lambda: ServiceStack("hello", ServiceStackArgs(settings=settings)), stack=stage, stack_outputs=STACK_OUTPUTS
    )
    every = _all_labels(mocks)
    assert [k for labels in every for k in labels if k.startswith("service-lifecycle/")] == []
    managed = {labels["app.kubernetes.io/managed-by"] for labels in every if "app.kubernetes.io/managed-by" in labels}
    assert managed == {"acme-platform"}
    namespace = unwrap(mocks.one("kubernetes:core/v1:Namespace").inputs)["metadata"]["labels"]
    assert (namespace["platform.acme.io/stage"], namespace["platform.acme.io/team"]) == (stage, "platform")
    annotations = {k for labels in every for k in labels if k.startswith("platform.acme.io/")}
    assert "platform.acme.io/config-checksum" in annotations
    assert ("platform.acme.io/tunnel-id" in annotations) == settings.parts.exposure
    # The policy pack finds the service namespace by its three labels, whatever the prefix.
    from components.commands import policy_offline

    assert policy_offline.check(mocks.resources) == []
    rules = policy_offline.load_rules()
    unprotected = rules.CheckedResource(
        type="kubernetes:core/v1:Namespace", name="ns", urn="urn:ns", props={"metadata": {"labels": namespace}}
    )
    assert bool(rules.check_production_namespace_protected(unprotected)) == (stage == "production")


def test_without_the_settings_the_labels_are_the_library_s(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("staging")
    assert (settings.labels.prefix, settings.labels.managed_by) == ("service-lifecycle", "service-lifecycle")


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("labelPrefix", "Platform", "a DNS subdomain for label keys such as platform.example.com"),
        ("labelPrefix", "kubernetes.io", "a DNS subdomain for label keys such as platform.example.com"),
        ("managedBy", "acme platform", "a Kubernetes label value (at most 63 letters, digits, '-', '_', '.')"),
        ("managedBy", "a" * 64, "a Kubernetes label value (at most 63 letters, digits, '-', '_', '.')"),
    ],
    ids=["upper", "reserved", "space", "long"],
)
def test_a_bad_label_setting_is_refused_naming_the_key(
    make_settings: Callable[..., Settings], key: str, value: str, expected: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        make_settings("staging", **{key: value})
    [line] = [str(p) for p in raised.value.problems]
    assert line.startswith(f"service-lifecycle:{key}: got '{value}'; expected {expected}")

"""The policy pack: every rule fires on a bad resource and passes a good one; the pack adapter;
the offline run (`plan --policy`); and both stacks' offline plans pass every rule."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components import policy_offline
from components.service import ROLE_ENVIRONMENT, ROLE_EXPOSURE, ROLE_WORKLOAD
from components.testing import SECRET_SIG, SECRET_VALUE_SIG, RecordedResource

PROJECT_DIR = Path(__file__).resolve().parents[2]
rules: Any = policy_offline.load_rules(PROJECT_DIR)

DIGEST = "ghcr.io/example-org/hello@sha256:" + "a" * 64
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
STAGE = "service-lifecycle/stage"


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG: SECRET_VALUE_SIG, "value": value}


# ---- good resources ---------------------------------------------------------------------------


def container(name: str = "app", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "image": DIGEST,
        "env": [
            {"name": "SERVICE_NAME", "value": "hello"},
            {"name": "TUNNEL_TOKEN", "valueFrom": {"secretKeyRef": {"name": "tunnel", "key": "token"}}},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    base.update(overrides)
    return base


def deployment(namespace: str = "hello-production", replicas: int | None = 3, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container()],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }
    pod_spec.update(spec)
    body: dict[str, Any] = {
        "selector": {"matchLabels": {"app.kubernetes.io/part-of": "hello", "app.kubernetes.io/component": "server"}},
        "template": {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/part-of": "hello",
                    "app.kubernetes.io/component": "server",
                    STAGE: "production",
                }
            },
            "spec": pod_spec,
        },
    }
    if replicas is not None:
        body["replicas"] = replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": body,
    }


def namespace(stage: str = "production", enforce: str | None = "restricted") -> dict[str, Any]:
    labels = {STAGE: stage}
    if enforce is not None:
        labels["pod-security.kubernetes.io/enforce"] = enforce
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"hello-{stage}", "labels": labels}}


def pdb(namespace: str = "hello-production", match: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {
            "minAvailable": 1,
            "selector": {
                "matchLabels": match
                if match is not None
                else {"app.kubernetes.io/part-of": "hello", "app.kubernetes.io/component": "server"}
            },
        },
    }


def hpa(min_replicas: int, namespace: str = "hello-production") -> dict[str, Any]:
    return {
        "metadata": {"name": "hello", "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello"},
            "minReplicas": min_replicas,
            "maxReplicas": 6,
        },
    }


def dns(name: str = "hello-staging.example.com", proxied: Any = True) -> dict[str, Any]:
    return {
        "zoneId": "f" * 32,
        "name": name,
        "type": "CNAME",
        "content": "x.cfargotunnel.com",
        "ttl": 1,
        "proxied": proxied,
    }


def access_app(domain: str = "hello-staging.example.com") -> dict[str, Any]:
    return {"accountId": "0" * 32, "name": "hello", "type": "self_hosted", "domain": domain}


def res(type_: str, props: dict[str, Any], *, name: str = "r", protect: bool = False, marked: bool = True) -> Any:
    return rules.CheckedResource(
        type=type_, name=name, urn=f"urn:pulumi:test::p::{type_}::{name}", props=props, protect=protect,
        secrets_marked=marked,
    )  # fmt: skip


DEP = "kubernetes:apps/v1:Deployment"
NS = "kubernetes:core/v1:Namespace"
SVC = "kubernetes:core/v1:Service"
CM = "kubernetes:core/v1:ConfigMap"
SEC = "kubernetes:core/v1:Secret"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
DNS = "cloudflare:index/dnsRecord:DnsRecord"
APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"


def fired(rule_name: str, resources: list[Any]) -> list[str]:
    rule = next(r for r in rules.RULES if r.name == rule_name)
    return [v.message for v in rules.evaluate(resources, [rule])]


def good_production() -> list[Any]:
    return [
        res(NS, namespace("production"), name="ns", protect=True),
        res(DEP, deployment()),
        res(PDB, pdb()),
        res(
            SVC,
            {"metadata": {"name": "hello", "namespace": "hello-production"}, "spec": {"type": "ClusterIP"}},
        ),
        res(CM, {"metadata": {"name": "cfg", "namespace": "hello-production"}, "data": {"LOG_LEVEL": "info"}}),
        res(SEC, {"metadata": {"name": "tunnel"}, "stringData": {"token": secret("eyJhIjoi")}}),
        res(DNS, dns("hello.example.com")),
    ]


def good_staging() -> list[Any]:
    return [
        res(NS, namespace("staging"), name="ns"),
        res(DEP, deployment("hello-staging", replicas=1)),
        res(DNS, dns()),
        res(APP, access_app()),
    ]


def test_every_rule_passes_the_good_stacks() -> None:
    assert rules.evaluate(good_production()) == []
    assert rules.evaluate(good_staging()) == []


# ---- each rule fires on a bad resource --------------------------------------------------------


Mutation = Callable[[dict[str, Any]], None]


def _first_container(d: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = d["spec"]["template"]["spec"]["containers"][0]
    return result


@pytest.mark.parametrize(
    ("rule_name", "mutate", "expected"),
    [
        (
            "images-pinned-by-digest",
            lambda d: _first_container(d).update(image="ghcr.io/x/hello:1.0"),
            "not pinned",
        ),
        (
            "images-pinned-by-digest",
            lambda d: d["spec"]["template"]["spec"].update(initContainers=[container("init", image="busybox")]),
            "init container 'init'",
        ),
        (
            "restricted-security-context",
            lambda d: d["spec"]["template"]["spec"].pop("securityContext"),
            "runAsNonRoot",
        ),
        (
            "restricted-security-context",
            lambda d: _first_container(d)["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation",
        ),
        (
            "restricted-security-context",
            lambda d: _first_container(d)["securityContext"].update(capabilities={"drop": ["NET_RAW"]}),
            "expected it to contain ALL",
        ),
        (
            "restricted-security-context",
            lambda d: _first_container(d)["securityContext"].pop("readOnlyRootFilesystem"),
            "readOnlyRootFilesystem",
        ),
        (
            "restricted-security-context",
            lambda d: _first_container(d).update(securityContext={"runAsUser": 0}),
            "root",
        ),
        (
            "restricted-security-context",
            lambda d: d["spec"]["template"]["spec"].update(hostNetwork=True),
            "hostNetwork",
        ),
        (
            "restricted-security-context",
            lambda d: d["spec"]["template"]["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
            "hostPath",
        ),
        (
            "restricted-security-context",
            lambda d: d["spec"]["template"]["spec"]["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            "seccompProfile",
        ),
        (
            "restricted-security-context",
            lambda d: _first_container(d).update(ports=[{"containerPort": 8080, "hostPort": 80}]),
            "hostPort 80 is set",
        ),
        (
            "requests-and-limits",
            lambda d: _first_container(d)["resources"]["limits"].pop("memory"),
            "limits.memory",
        ),
        ("requests-and-limits", lambda d: _first_container(d).pop("resources"), "requests.cpu"),
        (
            "no-plaintext-secrets",
            lambda d: _first_container(d)["env"].append({"name": "API_TOKEN", "value": "abc"}),
            "API_TOKEN looks like a credential",
        ),
        (
            "no-plaintext-secrets",
            lambda d: _first_container(d)["env"].append({"name": "dbPassword", "value": "hunter2"}),
            "dbPassword",
        ),
        (
            "no-plaintext-secrets",
            lambda d: _first_container(d)["env"].append({"name": "UPSTREAM", "value": "https://u:p4ss@db.internal/x"}),
            "a URL with a password",
        ),
        (
            "no-plaintext-secrets",
            lambda d: _first_container(d)["env"].append({"name": "OPAQUE", "value": secret("s3cr3t")}),
            "is a secret passed as a plain value",
        ),
        (
            "no-plaintext-secrets",
            lambda d: _first_container(d).update(args=["tunnel", "run", "--token", secret("eyJhIjoiMTIz")]),
            "args holds a secret",
        ),
        (
            "no-plaintext-secrets",
            lambda d: _first_container(d).update(args=secret(["tunnel", "run", "--token", "eyJhIjoiMTIz"])),
            "args holds a secret",
        ),
        (
            "no-plaintext-secrets",
            lambda d: _first_container(d).update(command=["sh", "-c", "curl https://u:p4ss@db.internal/x"]),
            "command holds what looks like a URL with a password",
        ),
        ("production-availability", lambda d: d["spec"].update(replicas=1), "1 replica(s)"),
        ("production-availability", lambda d: d["spec"].pop("replicas"), "1 replica(s)"),
        (
            "production-availability",
            lambda d: d["spec"]["template"]["metadata"]["labels"].update({"app.kubernetes.io/component": "other"}),
            "no PodDisruptionBudget",
        ),
    ],
)
def test_deployment_rules_fire(rule_name: str, mutate: Mutation, expected: str) -> None:
    stack = good_production()
    bad = deployment()
    mutate(bad)
    stack[1] = res(DEP, bad)
    assert fired(rule_name, good_production()) == []  # the same rule passes the good stack
    messages = fired(rule_name, stack)
    assert messages and any(expected in m for m in messages), messages


def test_hpa_min_replicas_counts_in_production() -> None:
    without_replicas = deployment(replicas=None)
    stack = [*good_production()[:1], res(DEP, without_replicas), res(PDB, pdb())]
    assert fired("production-availability", [*stack, res(HPA, hpa(2))]) == []
    assert "1 replica(s)" in fired("production-availability", [*stack, res(HPA, hpa(1))])[0]


def test_pdb_in_another_namespace_or_with_empty_selector_does_not_count() -> None:
    base = [res(NS, namespace("production"), protect=True), res(DEP, deployment())]
    assert fired("production-availability", [*base, res(PDB, pdb(namespace="elsewhere"))])
    assert fired("production-availability", [*base, res(PDB, pdb(match={}))])


def test_staging_deployment_needs_neither_two_replicas_nor_pdb() -> None:
    assert fired("production-availability", good_staging()) == []


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort"])
def test_public_service_types_fire(service_type: str) -> None:
    bad = res(SVC, {"metadata": {"name": "hello"}, "spec": {"type": service_type}})
    assert f"type {service_type}" in fired("no-loadbalancer-or-nodeport", [bad])[0]
    ok = res(SVC, {"metadata": {"name": "hello"}, "spec": {"type": "ClusterIP"}})
    assert fired("no-loadbalancer-or-nodeport", [ok]) == []


def test_an_ingress_fires() -> None:
    """docs/design.md step 9: no public ingress on the cluster, whatever serves it."""
    ingress = {"metadata": {"name": "hello", "namespace": "hello-production"}, "spec": {"rules": [{"host": "x"}]}}
    messages = fired("no-loadbalancer-or-nodeport", [res("kubernetes:networking.k8s.io/v1:Ingress", ingress)])
    assert len(messages) == 1 and "Ingress" in messages[0], messages


@pytest.mark.parametrize("enforce", [None, "baseline", "privileged"])
def test_namespace_without_restricted_pod_security_fires(enforce: str | None) -> None:
    assert fired("namespace-pod-security-restricted", [res(NS, namespace("staging", enforce))])
    assert fired("namespace-pod-security-restricted", [res(NS, namespace("staging"))]) == []


def test_infrastructure_namespace_must_state_its_level() -> None:
    monitoring = {"metadata": {"name": "monitoring", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}
    assert fired("namespace-pod-security-restricted", [res(NS, monitoring)]) == []
    unlabelled = {"metadata": {"name": "monitoring", "labels": {"team": "platform"}}}
    assert "expected an explicit level" in fired("namespace-pod-security-restricted", [res(NS, unlabelled)])[0]


@pytest.mark.parametrize("proxied", [False, None])
def test_unproxied_dns_record_fires(proxied: Any) -> None:
    record = dns(proxied=proxied)
    if proxied is None:
        record.pop("proxied")
    assert "expected true" in fired("dns-records-proxied", [res(DNS, record)])[0]
    assert fired("dns-records-proxied", [res(DNS, dns())]) == []


def test_deprecated_record_type_is_checked_too() -> None:
    assert fired("dns-records-proxied", [res("cloudflare:index/record:Record", dns(proxied=False))])


@pytest.mark.parametrize(
    "apps",
    [
        [],
        [access_app("other.staging.example.com")],
        [access_app("hello-staging.example.com/admin")],  # only a path: the rest of the host is open
    ],
)
def test_staging_hostname_without_access_fires(apps: list[dict[str, Any]]) -> None:
    stack = [
        res(NS, namespace("staging")),
        res(DNS, dns()),
        *(res(APP, a, name=f"a{i}") for i, a in enumerate(apps)),
    ]
    messages = fired("staging-behind-access", stack)
    assert messages == [
        "DnsRecord hello-staging.example.com: staging hostname is not behind Cloudflare Access; "
        "expected a ZeroTrustAccessApplication whose domain covers it"
    ]


@pytest.mark.parametrize("app_type", ["bookmark", "saas"])
def test_a_bookmark_or_saas_app_protects_no_staging_hostname(app_type: str) -> None:
    stack = [res(NS, namespace("staging")), res(DNS, dns()), res(APP, {**access_app(), "type": app_type})]
    assert len(fired("staging-behind-access", stack)) == 1


@pytest.mark.parametrize(
    "app",
    [
        access_app("hello-staging.example.com"),
        access_app("*.example.com"),
        {
            "name": "x",
            "type": "self_hosted",
            "destinations": [{"type": "public", "uri": "hello-staging.example.com"}],
        },
        {"name": "x", "type": "self_hosted", "selfHostedDomains": ["hello-staging.example.com/*"]},
    ],
)
def test_staging_hostname_covered_by_access_passes(app: dict[str, Any]) -> None:
    assert fired("staging-behind-access", [res(NS, namespace("staging")), res(DNS, dns()), res(APP, app)]) == []


ACCESS_POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        ({"decision": "bypass", "includes": [{"emailDomain": {"domain": "example.com"}}]}, "decision is bypass"),
        ({"decision": "allow", "includes": [{"email": {"email": "a@example.com"}}, {"everyone": {}}]}, "everyone"),
        ({"decision": "non_identity", "includes": [{"everyone": {}}]}, "everyone"),
    ],
)
def test_staging_access_that_admits_anyone_fires(policy: dict[str, Any], why: str) -> None:
    """An Access application in front of the hostname is not enough when its policy lets everybody in."""
    covered = [res(NS, namespace("staging")), res(DNS, dns()), res(APP, access_app(), name="app")]
    standalone = fired("staging-behind-access", [*covered, res(ACCESS_POLICY, {"accountId": "0" * 32, **policy})])
    assert len(standalone) == 1 and why in standalone[0], standalone
    inline = fired("staging-behind-access", [*covered[:2], res(APP, {**access_app(), "policies": [policy]})])
    assert len(inline) == 1 and why in inline[0], inline
    allow_list = {"decision": "allow", "includes": [{"email": {"email": "a@example.com"}}]}
    assert fired("staging-behind-access", [*covered, res(ACCESS_POLICY, allow_list)]) == []


@pytest.mark.parametrize(
    "budget",
    [{"minAvailable": 0}, {"minAvailable": "0%"}, {"maxUnavailable": "100%"}, {"maxUnavailable": 3}],
)
def test_production_pdb_that_allows_evicting_every_pod_does_not_count(budget: dict[str, Any]) -> None:
    stack = good_production()
    loose = pdb()
    loose["spec"].pop("minAvailable")
    loose["spec"].update(budget)
    stack[2] = res(PDB, loose)
    messages = fired("production-availability", stack)
    assert len(messages) == 1 and "no PodDisruptionBudget" in messages[0], messages
    loose["spec"] = {**loose["spec"], "maxUnavailable": 1}
    loose["spec"].pop("minAvailable", None)
    assert fired("production-availability", [*stack[:2], res(PDB, loose), *stack[3:]]) == []


def test_production_may_be_public() -> None:
    assert fired("staging-behind-access", [res(NS, namespace("production")), res(DNS, dns("hello.example.com"))]) == []


def test_production_namespace_must_be_protected() -> None:
    assert "not protected" in fired("production-namespace-protected", [res(NS, namespace("production"))])[0]
    assert fired("production-namespace-protected", [res(NS, namespace("production"), protect=True)]) == []
    assert fired("production-namespace-protected", [res(NS, namespace("staging"))]) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"DB_PASSWORD": "x"}, "by its name"),
        ({"apiKey": "x"}, "by its name"),
        ({"webhook": "https://hooks.slack.com/services/T000/B000/XXXX"}, "Slack"),
        ({"cert": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}, "private key"),
        ({"aws": "AKIAABCDEFGHIJKLMNOP"}, "AWS access key"),
        ({"opaque": secret("value")}, "is a secret"),
    ],
)
def test_secrets_in_configmaps_fire(data: dict[str, Any], expected: str) -> None:
    bad = res(CM, {"metadata": {"name": "cfg"}, "data": data})
    messages = fired("no-plaintext-secrets", [bad])
    assert len(messages) == 1 and expected in messages[0], messages


def test_configmap_whose_whole_data_is_a_secret_fires() -> None:
    bad = res(CM, {"metadata": {"name": "cfg"}, "data": secret({"LOG_LEVEL": "info"})})
    assert fired("no-plaintext-secrets", [bad]) == [
        "ConfigMap cfg: data is a secret; put it in a Secret, not a ConfigMap"
    ]


@pytest.mark.parametrize(
    "name",
    ["LOG_LEVEL", "KEYCLOAK_URL", "TOKEN_FILE", "secretName", "AWS_ACCESS_KEY_ID", "monkey", "keyspace"],
)
def test_harmless_names_pass(name: str) -> None:
    assert fired("no-plaintext-secrets", [res(CM, {"metadata": {"name": "cfg"}, "data": {name: "plain"}})]) == []


def test_plain_non_credentials_in_a_secret_pass() -> None:
    grafana = {
        "metadata": {"name": "grafana-admin"},
        "stringData": {"admin-user": "admin", "admin-password": secret("x")},
    }
    assert fired("secret-values-are-pulumi-secrets", [res(SEC, grafana)]) == []
    leaked = {"metadata": {"name": "grafana-admin"}, "stringData": {"admin-user": "admin", "admin-password": "x"}}
    assert "stringData.admin-password is plaintext" in fired("secret-values-are-pulumi-secrets", [res(SEC, leaked)])[0]


def test_plaintext_kubernetes_secret_fires_only_when_secrets_are_marked() -> None:
    plaintext = {"metadata": {"name": "tunnel"}, "stringData": {"token": "eyJhIjoi"}}
    assert "plaintext" in fired("secret-values-are-pulumi-secrets", [res(SEC, plaintext)])[0]
    # Inside the engine secrets arrive unwrapped: the rule cannot judge and stays silent.
    assert fired("secret-values-are-pulumi-secrets", [res(SEC, plaintext, marked=False)]) == []
    wrapped_whole = {"metadata": {"name": "tunnel"}, "stringData": secret({"token": "eyJhIjoi"})}
    assert fired("secret-values-are-pulumi-secrets", [res(SEC, wrapped_whole)]) == []


def test_docker_image_references_must_be_digests() -> None:
    remote = "docker:index/remoteImage:RemoteImage"
    assert fired("images-pinned-by-digest", [res(remote, {"name": "cloudflare/cloudflared:latest"})])
    assert fired("images-pinned-by-digest", [res(remote, {"name": DIGEST})]) == []


def test_unknown_values_during_preview_are_not_violations() -> None:
    dep = deployment()
    _first_container(dep)["image"] = UNKNOWN  # the digest staging's build will produce
    dep["metadata"]["namespace"] = UNKNOWN
    stack = [
        res(NS, namespace("production"), protect=True),
        res(DEP, dep),
        res(PDB, pdb()),
        res(DNS, dns(proxied=UNKNOWN)),
    ]
    assert rules.evaluate(stack) == []


# ---- the CrossGuard adapter --------------------------------------------------------------------


def test_pack_adapter_reports_through_crossguard(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pulumi_policy")
    from pulumi_policy import EnforcementLevel, PolicyResourceOptions, ResourceValidationArgs
    from pulumi_policy.proxy import unknown_checking_proxy

    monkeypatch.syspath_prepend(str(PROJECT_DIR / "policy"))
    from service_lifecycle_policy import pack

    policies = {p.name: p for p in pack.policies()}
    assert set(policies) == {r.name for r in rules.RULES if not r.needs_secret_marks}
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in policies.values())

    bad = deployment()
    _first_container(bad)["image"] = "hello:latest"
    _first_container(bad)["env"].append({"name": "X", "value": UNKNOWN})  # must not make the proxy raise
    opts = PolicyResourceOptions(
        protect=False, ignore_changes=[], delete_before_replace=None, aliases=[], custom_timeouts=None,  # type: ignore[arg-type]
        additional_secret_outputs=[], parent=None,
    )  # fmt: skip
    args = ResourceValidationArgs(DEP, unknown_checking_proxy(bad), "urn:x", "hello", opts, None)
    reported: list[tuple[str, str | None]] = []
    policies["images-pinned-by-digest"].validate(args, lambda m, u=None: reported.append((m, u)))  # type: ignore[attr-defined,misc]
    assert len(reported) == 1 and "'hello:latest' is not pinned by digest" in reported[0][0]


# ---- offline: plan --policy --------------------------------------------------------------------


def _recorded(resource: Any) -> RecordedResource:
    return RecordedResource(
        type=resource.type, name=resource.name, urn=resource.urn, parent=None, inputs=resource.props,
        custom=True, protect=resource.protect,
    )  # fmt: skip


def test_offline_run_reports_each_violation_and_fails() -> None:
    stack = [_recorded(r) for r in good_production()]
    stack[0].protect = False
    stack[6].inputs["proxied"] = False
    out = io.StringIO()
    assert policy_offline.run(stack, PROJECT_DIR, out) == 1
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("policy violation [mandatory] dns-records-proxied: DnsRecord hello.example.com")
    assert lines[1].startswith("policy violation [mandatory] production-namespace-protected:")
    assert lines[2] == f"policy: 2 mandatory violation(s) from {len(rules.RULES)} rules"


def test_offline_run_passes_a_good_stack() -> None:
    out = io.StringIO()
    assert policy_offline.run([_recorded(r) for r in good_production()], PROJECT_DIR, out) == 0
    assert out.getvalue() == f"policy: all {len(rules.RULES)} rules pass\n"


def test_missing_policy_pack_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy_offline, "_candidate_dirs", lambda project_dir: [tmp_path / "policy"])
    out = io.StringIO()
    assert policy_offline.run([], tmp_path, out) == 1
    assert "policy pack rules not found" in out.getvalue()


def test_plan_json_round_trip_keeps_secrets_marked() -> None:
    plan = {
        "resources": [
            {
                "type": SEC,
                "name": "s",
                "urn": "urn:s",
                "custom": True,
                "inputs": {"stringData": {"token": "[secret]"}},
            },
            {
                "type": SEC,
                "name": "p",
                "urn": "urn:p",
                "custom": True,
                "inputs": {"stringData": {"token": "plain"}},
            },
        ]
    }
    violations = policy_offline.check(policy_offline.resources_from_plan_json(plan), PROJECT_DIR)
    assert [(v.policy, v.urn) for v in violations] == [("secret-values-are-pulumi-secrets", "urn:p")]


# ---- both stacks' real offline plans pass every rule ------------------------------------------

# What each part the stage table lists must have put in the plan, so "no violation" cannot come
# from the rules having nothing to look at.
_EXPECTED_KINDS = {
    ROLE_ENVIRONMENT: [NS],
    ROLE_WORKLOAD: [DEP, PDB, HPA],
    ROLE_EXPOSURE: [DNS, DEP, PDB],
}


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_offline_plan_passes_every_rule(stack: str, offline_plan: Callable[[str], tuple[dict[str, Any], Path]]) -> None:
    plan, _ = offline_plan(stack)
    resources = policy_offline.resources_from_plan_json(plan)
    types = {r.type for r in resources}
    parts = plan["outputs"].get("parts") or []
    assert {ROLE_ENVIRONMENT, ROLE_WORKLOAD, ROLE_EXPOSURE} <= set(parts), f"{stack}: parts {parts}"
    for part in parts:
        for kind in _EXPECTED_KINDS.get(part, []):
            assert kind in types, f"{stack}: part {part} registered no {kind}"
    if ROLE_ENVIRONMENT in parts:
        checked = policy_offline.checked_resources(resources, rules)
        assert rules.namespace_stages(checked), f"{stack}: no Namespace carries the {STAGE} label"
    if stack == "staging" and ROLE_EXPOSURE in parts:
        assert APP in types, "staging exposure without an Access application"
    violations = policy_offline.check(resources, PROJECT_DIR)
    assert violations == [], "\n".join(f"{v.policy}: {v.message}" for v in violations)


def test_plan_command_with_policy_flag_exits_zero_on_staging() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", "staging", "--policy"],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "SOURCE_REVISION": "0123456789abcdef0123456789abcdef01234567"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(f"policy: all {len(rules.RULES)} rules pass")


def test_stage_label_matches_what_the_components_use() -> None:
    from components import labels

    assert rules.STAGE_LABEL == labels.STAGE_LABEL


# ---- the pack as the Pulumi engine talks to it (gRPC analyzer protocol) -----------------------


@pytest.fixture
def analyzer() -> Iterator[Any]:
    """``policy/__main__.py`` served exactly as the CLI's policy host starts it; a gRPC stub to it."""
    grpc = pytest.importorskip("grpc")
    from pulumi.runtime.proto import analyzer_pb2_grpc

    process = subprocess.Popen(
        [sys.executable, "__main__.py"], cwd=PROJECT_DIR / "policy", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().decode().strip()
        assert port.isdigit(), process.stderr.read().decode() if process.stderr else port
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=10)


def _struct(props: dict[str, Any]) -> Any:
    from google.protobuf import json_format, struct_pb2

    message = struct_pb2.Struct()
    json_format.ParseDict(props, message)
    return message


def test_pack_over_grpc_reports_mandatory_violations(analyzer: Any) -> None:
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2

    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "service-lifecycle"
    assert {p.name for p in info.policies} == {r.name for r in rules.RULES if not r.needs_secret_marks}
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}

    bad = deployment()
    _first_container(bad)["image"] = "nginx:latest"
    _first_container(bad)["env"].append({"name": "LATER", "value": UNKNOWN})
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(type=DEP, properties=_struct(bad), urn="urn:pulumi:s::p::x::hello", name="hello")
    )
    assert [(d.policyName, d.enforcementLevel) for d in response.diagnostics] == [
        ("images-pinned-by-digest", analyzer_pb2.MANDATORY)
    ]
    assert "'nginx:latest' is not pinned by digest" in response.diagnostics[0].message

    good = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(type=DEP, properties=_struct(deployment()), urn="urn:d", name="hello")
    )
    assert list(good.diagnostics) == []


def test_pack_over_grpc_checks_the_whole_stack(analyzer: Any) -> None:
    from pulumi.runtime.proto import analyzer_pb2

    def resource(type_: str, props: dict[str, Any], name: str, protect: bool = False) -> Any:
        return analyzer_pb2.AnalyzerResource(
            type=type_, properties=_struct(props), urn=f"urn:pulumi:production::p::{type_}::{name}", name=name,
            options=analyzer_pb2.AnalyzerResourceOptions(protect=protect),
        )  # fmt: skip

    stack = [resource(NS, namespace("production"), "ns", protect=True), resource(DEP, deployment(replicas=1), "dep")]
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=stack))
    found = sorted((d.policyName, d.urn) for d in response.diagnostics)
    urn = f"urn:pulumi:production::p::{DEP}::dep"
    assert found == [("production-availability", urn), ("production-availability", urn)]
    messages = " ".join(d.message for d in response.diagnostics)
    assert "1 replica(s) in production" in messages and "no PodDisruptionBudget" in messages


def test_pack_project_file_runs_main_in_its_own_venv() -> None:
    import yaml

    pack = yaml.safe_load((PROJECT_DIR / "policy" / "PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"
    assert pack["runtime"]["options"]["virtualenv"] == "venv"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(pack["version"]))
    requirements = (PROJECT_DIR / "policy" / "requirements.txt").read_text()
    assert re.search(r"^pulumi-policy>=1\.21,<2$", requirements, re.MULTILINE)
    assert (PROJECT_DIR / "policy" / "__main__.py").is_file()


def test_the_real_production_plan_fails_once_broken(offline_plan: Callable[[str], tuple[dict[str, Any], Path]]) -> None:
    plan, _ = offline_plan("production")
    resources = policy_offline.resources_from_plan_json(plan)
    namespace_ = next(r for r in resources if r.type == NS)
    namespace_.protect = False
    deployment_ = next(r for r in resources if r.type == DEP)
    deployment_.inputs["spec"]["template"]["spec"]["containers"][0]["image"] = "ghcr.io/example-org/hello:1.0.0"
    hpa_ = next(r for r in resources if r.type == HPA)
    hpa_.inputs["spec"]["minReplicas"] = 1.0
    fired_ = sorted({v.policy for v in policy_offline.check(resources, PROJECT_DIR)})
    assert fired_ == ["images-pinned-by-digest", "production-availability", "production-namespace-protected"]


def test_production_with_the_cluster_monitoring_stack_passes_every_rule(tmp_path: Path) -> None:
    # The optional shared monitoring stack brings a privileged namespace and Helm releases.
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    stack_file = (PROJECT_DIR / "Pulumi.production.yaml").read_text()
    assert 'service-lifecycle:monitoringInstallClusterStack: "false"' in stack_file
    (tmp_path / "Pulumi.production.yaml").write_text(
        stack_file.replace(
            'service-lifecycle:monitoringInstallClusterStack: "false"',
            'service-lifecycle:monitoringInstallClusterStack: "true"',
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", "production", "--policy",
         "--project-dir", str(tmp_path)],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "SOURCE_REVISION": "0123456789abcdef0123456789abcdef01234567"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kubernetes:helm.sh/v3:Release" in result.stdout and "[monitoring" in result.stdout
    assert result.stdout.strip().endswith(f"policy: all {len(rules.RULES)} rules pass")


def test_stage_comes_from_the_deployments_own_namespace() -> None:
    elsewhere = deployment(namespace="tools", replicas=1)
    stack = [res(NS, namespace("production"), protect=True), res(DEP, elsewhere)]
    assert fired("production-availability", stack) == []  # "tools" is not a production namespace
    unknown_ns = deployment(replicas=1)
    unknown_ns["metadata"]["namespace"] = UNKNOWN
    messages = fired("production-availability", [res(NS, namespace("production"), protect=True), res(DEP, unknown_ns)])
    assert any("1 replica(s)" in m for m in messages)  # preview: the stack's only stage applies

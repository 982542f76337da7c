"""The policy pack: every rule fires on a bad resource and passes a good one; the pack adapter;
the offline run (`plan --policy`); and both stacks' offline plans pass every rule."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from components.commands import policy_offline
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


def plain_ids(prefix: str, count: int) -> list[str]:
    """Parametrize ids without spaces, slashes or colons (mutmut selects tests by node id)."""
    return [f"{prefix}{i}" for i in range(count)]


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


DEPLOYMENT_CASES: list[tuple[str, Mutation, str]] = [
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
]


@pytest.mark.parametrize(
    ("rule_name", "mutate", "expected"), DEPLOYMENT_CASES, ids=[c[0] + f"-{i}" for i, c in enumerate(DEPLOYMENT_CASES)]
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
    ids=plain_ids("policy", 3),
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
    ids=plain_ids("data", 6),
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


def test_missing_policy_pack_is_a_clear_error_with_its_own_exit_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 3, not 1: 1 means a rule fired; 3 means no rule ran (issue 22, item 5)."""
    monkeypatch.setattr(policy_offline, "_candidate_dirs", lambda project_dir: [tmp_path / "policy", tmp_path / "src"])
    monkeypatch.setattr(policy_offline, "_import_rules", lambda: None)  # nothing installed
    out, err = io.StringIO(), io.StringIO()
    assert policy_offline.run([], tmp_path, out, err) == policy_offline.EXIT_PACK_MISSING == 3
    assert out.getvalue() == ""
    line = err.getvalue()
    assert line.startswith("policy: error: policy pack rules not found: no service_lifecycle_policy package")
    assert str(tmp_path / "policy") in line and "reinstall service-lifecycle-components" in line
    assert line.rstrip().endswith("(exit 3: nothing was checked)")


def test_a_pack_that_cannot_import_its_own_dependency_is_exit_3_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str) -> Any:
        raise ModuleNotFoundError("No module named 'yaml_missing'", name="yaml_missing")

    monkeypatch.setattr(policy_offline, "importlib", SimpleNamespace(import_module=broken))
    monkeypatch.setattr(policy_offline, "_candidate_dirs", lambda project_dir: [Path("/nonexistent")])
    out = io.StringIO()
    assert policy_offline.run([], None, out) == 3
    assert "cannot be imported: No module named 'yaml_missing'" in out.getvalue()


def test_the_rules_ship_inside_the_package() -> None:
    """The wheel installs the pack's package beside components (pyproject's package-dir), and without
    a project copy the installed one answers."""
    pyproject = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "service_lifecycle_policy" in pyproject["packages"]
    assert pyproject["package-dir"] == {"service_lifecycle_policy": "policy/service_lifecycle_policy"}
    assert policy_offline.load_rules(None).__name__ == "service_lifecycle_policy.rules"


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


# ---- Pod Security Standards 'restricted', every check (kubernetes/pod-security-admission) -----

PSS = "restricted-security-context"


def _pod(d: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = d["spec"]["template"]["spec"]
    return result


def _ctx(d: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = _first_container(d)["securityContext"]
    return result


PSS_CASES: list[tuple[str, Mutation, str]] = [
    ("hostNamespaces_pid", lambda d: _pod(d).update(hostPID=True), "hostPID is true"),
    ("hostNamespaces_ipc", lambda d: _pod(d).update(hostIPC=True), "hostIPC is true"),
    ("hostNamespaces_network", lambda d: _pod(d).update(hostNetwork=True), "hostNetwork is true"),
    ("privileged", lambda d: _ctx(d).update(privileged=True), "privileged is true"),
    (
        "capabilities_restricted_add",
        lambda d: _ctx(d).update(capabilities={"drop": ["ALL"], "add": ["CHOWN"]}),
        "capabilities.add ['CHOWN']",
    ),
    (
        "capabilities_baseline_add",
        lambda d: _ctx(d).update(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
        "not even in baseline",
    ),
    ("capabilities_restricted_drop", lambda d: _ctx(d).pop("capabilities"), "expected it to contain ALL"),
    ("hostPathVolumes", lambda d: _pod(d)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    (
        "restrictedVolumes_nfs",
        lambda d: _pod(d)["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}}),
        "volume 'n' is nfs",
    ),
    ("restrictedVolumes_gitRepo", lambda d: _pod(d)["volumes"].append({"name": "g", "gitRepo": {}}), "gitRepo"),
    ("hostPorts", lambda d: _first_container(d).update(ports=[{"containerPort": 80, "hostPort": 80}]), "hostPort 80"),
    (
        "appArmorProfile_pod_field",
        lambda d: _pod(d)["securityContext"].update(appArmorProfile={"type": "Unconfined"}),
        "pod: appArmorProfile.type is 'Unconfined'",
    ),
    (
        "appArmorProfile_container_field",
        lambda d: _ctx(d).update(appArmorProfile={"type": "Unconfined"}),
        "container 'app': appArmorProfile.type",
    ),
    (
        "appArmorProfile_annotation",
        lambda d: d["spec"]["template"]["metadata"].update(
            annotations={"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}
        ),
        "annotation container.apparmor",
    ),
    (
        "seLinuxOptions_type",
        lambda d: _ctx(d).update(seLinuxOptions={"type": "spc_t"}),
        "seLinuxOptions.type is 'spc_t'",
    ),
    ("seLinuxOptions_user", lambda d: _ctx(d).update(seLinuxOptions={"user": "root"}), "seLinuxOptions.user"),
    (
        "seLinuxOptions_role",
        lambda d: _pod(d)["securityContext"].update(seLinuxOptions={"role": "sysadm_r"}),
        "pod: seLinuxOptions.role",
    ),
    ("procMount", lambda d: _ctx(d).update(procMount="Unmasked"), "procMount is 'Unmasked'"),
    (
        "seccompProfile_restricted_unset",
        lambda d: _pod(d)["securityContext"].pop("seccompProfile"),
        "seccompProfile.type is unset",
    ),
    (
        "seccompProfile_baseline_container",
        lambda d: _ctx(d).update(seccompProfile={"type": "Unconfined"}),
        "container 'app': seccompProfile.type is 'Unconfined'",
    ),
    (
        "seccompProfile_baseline_annotation",
        lambda d: d["spec"]["template"]["metadata"].update(
            annotations={"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}
        ),
        "annotation seccomp.security.alpha.kubernetes.io/pod",
    ),
    (
        "sysctls",
        lambda d: _pod(d)["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
        "sysctl 'kernel.msgmax'",
    ),
    (
        "windowsHostProcess_container",
        lambda d: _ctx(d).update(windowsOptions={"hostProcess": True}),
        "windowsOptions.hostProcess is true",
    ),
    (
        "windowsHostProcess_pod",
        lambda d: _pod(d)["securityContext"].update(windowsOptions={"hostProcess": True}),
        "pod: windowsOptions.hostProcess",
    ),
    ("allowPrivilegeEscalation", lambda d: _ctx(d).pop("allowPrivilegeEscalation"), "allowPrivilegeEscalation"),
    (
        "runAsNonRoot_container_false",
        lambda d: _ctx(d).update(runAsNonRoot=False),
        "container 'app': runAsNonRoot is False",
    ),
    ("runAsNonRoot_pod_false", lambda d: _pod(d)["securityContext"].update(runAsNonRoot=False), "pod: runAsNonRoot"),
    ("runAsUser_container", lambda d: _ctx(d).update(runAsUser=0), "container 'app': runAsUser is 0"),
    ("runAsUser_pod", lambda d: _pod(d)["securityContext"].update(runAsUser=0), "pod: runAsUser is 0"),
    (
        "second_container",
        lambda d: _pod(d)["containers"].append(container("sidecar", securityContext={"privileged": True})),
        "container 'sidecar': privileged is true",
    ),
    (
        "init_container",
        lambda d: _pod(d).update(initContainers=[container("init", securityContext={"procMount": "Unmasked"})]),
        "init container 'init': procMount",
    ),
    (
        "ephemeral_container",
        lambda d: _pod(d).update(ephemeralContainers=[{"name": "debug", "image": DIGEST}]),
        "ephemeral container 'debug': allowPrivilegeEscalation",
    ),
]


@pytest.mark.parametrize(("check", "mutate", "expected"), PSS_CASES, ids=[c[0] for c in PSS_CASES])
def test_every_pod_security_restricted_check_fires(check: str, mutate: Mutation, expected: str) -> None:
    """Each control of Pod Security 'restricted' at Kubernetes 1.31, one fixture per check file of
    kubernetes/pod-security-admission policy/ (tag v0.31.x): check_hostNamespaces.go,
    check_privileged.go, check_capabilities_baseline.go, check_capabilities_restricted.go,
    check_hostPathVolumes.go, check_restrictedVolumes.go, check_hostPorts.go, check_appArmorProfile.go
    (fields and annotations), check_seLinuxOptions.go, check_procMount.go,
    check_seccompProfile_baseline.go, check_seccompProfile_restricted.go, check_sysctls.go,
    check_windowsHostProcess.go, check_allowPrivilegeEscalation.go, check_runAsNonRoot.go,
    check_runAsUser.go; visitContainers (visitor.go) covers init and ephemeral containers."""
    bad = deployment()
    mutate(bad)
    messages = fired(PSS, [res(DEP, bad)])
    assert messages and any(expected in m for m in messages), messages


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: _ctx(d).update(capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}),
        lambda d: _ctx(d).update(seLinuxOptions={"type": "container_engine_t", "level": "s0:c1"}),
        lambda d: _pod(d)["securityContext"].update(appArmorProfile={"type": "Localhost", "localhostProfile": "p"}),
        lambda d: _pod(d)["volumes"].extend([{"name": n, k: {}} for n, k in (("c", "configMap"), ("s", "secret"))]),
        lambda d: _pod(d)["volumes"].append({"name": "p", "persistentVolumeClaim": {"claimName": "x"}}),
        lambda d: _pod(d)["securityContext"].update(sysctls=[{"name": "net.ipv4.tcp_keepalive_time", "value": "1"}]),
        lambda d: _ctx(d).update(procMount="Default", seccompProfile={"type": "Localhost"}),
        lambda d: d["spec"]["template"]["metadata"].update(
            annotations={"container.apparmor.security.beta.kubernetes.io/app": "localhost/p"}
        ),
        lambda d: _first_container(d).update(ports=[{"containerPort": 80, "hostPort": 0}]),
    ],
    ids=plain_ids("allowed", 9),
)
def test_what_pod_security_restricted_allows_passes(mutate: Mutation) -> None:
    """The allowed values of the same check files at 1.31: NET_BIND_SERVICE, container_engine_t
    (added in 1.31), Localhost profiles, the allowed volume sources, the 1.29 safe sysctls."""
    good = deployment()
    mutate(good)
    assert fired(PSS, [res(DEP, good)]) == []


def _rc_probe() -> dict[str, Any]:
    """The issue's probe: a ReplicationController with hostNetwork, hostPID, a privileged container and a tag."""
    rc = deployment(replicas=1)
    rc.update(apiVersion="v1", kind="ReplicationController")
    rc["spec"].pop("selector")
    _pod(rc).update(hostNetwork=True, hostPID=True)
    _first_container(rc).update(image="busybox:latest")
    _ctx(rc).update(privileged=True)
    return rc


def test_the_replication_controller_probe_fails_every_rule_it_breaks() -> None:
    stack = [*good_production(), res("kubernetes:core/v1:ReplicationController", _rc_probe(), name="rc")]
    by_rule: dict[str, list[str]] = {}
    for violation in rules.evaluate(stack):
        by_rule.setdefault(violation.policy, []).append(violation.message)
    assert set(by_rule) == {
        "images-pinned-by-digest",
        "restricted-security-context",
        "no-loadbalancer-or-nodeport",
        "production-availability",
    }, by_rule
    assert any("privileged is true" in m for m in by_rule["restricted-security-context"])
    assert any("hostPID" in m for m in by_rule["restricted-security-context"])
    assert any("1 replica(s)" in m for m in by_rule["production-availability"])


def _wrap(kind_path: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": pod_spec}
    shapes: dict[str, dict[str, Any]] = {
        "pod": {"spec": pod_spec},
        "template": {"template": template},
        "workload": {"spec": {"replicas": 2, "template": template}},
        "cronjob": {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}},
    }
    return {"metadata": {"name": "x", "namespace": "hello-production"}, **shapes[kind_path]}


@pytest.mark.parametrize(
    ("type_", "shape"),
    [
        ("kubernetes:core/v1:Pod", "pod"),
        ("kubernetes:core/v1:PodTemplate", "template"),
        ("kubernetes:core/v1:ReplicationController", "workload"),
        ("kubernetes:apps/v1beta2:Deployment", "workload"),
        ("kubernetes:apps/v1:StatefulSet", "workload"),
        ("kubernetes:apps/v1:DaemonSet", "workload"),
        ("kubernetes:argoproj.io/v1alpha1:Rollout", "workload"),
        ("kubernetes:batch/v1beta1:CronJob", "cronjob"),
        ("kubernetes:batch/v1:Job", "workload"),
    ],
    ids=["Pod", "PodTemplate", "ReplicationController", "v1beta2Deployment", "StatefulSet", "DaemonSet",
         "ArgoRollout", "v1beta1CronJob", "Job"],
)  # fmt: skip
def test_pod_specs_are_found_by_shape_in_any_kind(type_: str, shape: str) -> None:
    """No list of kinds: a Pod's spec, a PodTemplate's template.spec, a workload's
    spec.template.spec and a CronJob's spec.jobTemplate.spec.template.spec, at any version."""
    pod_spec = _pod(deployment())
    pod_spec["containers"] = [container(image="busybox:latest", securityContext={"privileged": True})]
    resource = res(type_, _wrap(shape, pod_spec))
    assert any("privileged is true" in m for m in fired(PSS, [resource]))
    assert any("busybox:latest" in m for m in fired("images-pinned-by-digest", [resource]))
    assert fired("requests-and-limits", [resource]) == []
    pod_spec["containers"][0]["env"] = [{"name": "DB_PASS", "value": "hunter2"}]
    assert any("DB_PASS" in m for m in fired("no-plaintext-secrets", [resource]))


def test_non_kubernetes_resources_carry_no_pod_spec() -> None:
    resource = res("cloudflare:index/dnsRecord:DnsRecord", {"spec": {"containers": [{"name": "x"}]}})
    assert rules.pod_specs(resource) == []


@pytest.mark.parametrize(
    ("version", "ok"),
    [(None, True), ("latest", True), ("v1.31", True), ("v1.32", True), ("v2.0", True), ("v1.30", False),
     ("v1.25", False), ("1.31", False), ("v0.99", False)],
    ids=["unset", "latest", "v1_31", "v1_32", "v2_0", "v1_30", "v1_25", "no_v", "v0_99"],
)  # fmt: skip
def test_namespace_enforce_version_older_than_the_checks_fires(version: str | None, ok: bool) -> None:
    """pod-security-admission enforces the profile of the namespace's enforce-version label
    (api/helpers.go, ParseVersion: "latest" or "v<major>.<minor>"); an older one admits pods the
    1.31 checks refuse (e.g. container_engine_t arrived in 1.31, runAsUser in 1.23)."""
    ns = namespace("production")
    if version is not None:
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] = version
    messages = fired("namespace-pod-security-restricted", [res(NS, ns, protect=True)])
    assert (messages == []) is ok, messages
    if not ok:
        assert "enforce-version" in messages[0]


def test_a_workload_in_a_namespace_without_pod_security_labels_fires() -> None:
    stack = good_production()
    stack[1] = res(DEP, deployment(namespace="default"))
    messages = fired("pods-in-pod-security-namespaces", stack)
    assert len(messages) == 1 and "'default'" in messages[0], messages
    assert fired("pods-in-pod-security-namespaces", good_production()) == []
    unlabelled_ns = res(NS, {"metadata": {"name": "hello-production", "labels": {STAGE: "production"}}})
    assert fired("pods-in-pod-security-namespaces", [unlabelled_ns, *good_production()[1:]])
    no_namespace = deployment()
    no_namespace["metadata"].pop("namespace")
    assert "'default'" in fired("pods-in-pod-security-namespaces", [good_production()[0], res(DEP, no_namespace)])[0]


# ---- Cloudflare only --------------------------------------------------------------------------

EXPOSE = "no-loadbalancer-or-nodeport"


@pytest.mark.parametrize(
    "type_",
    [
        "kubernetes:gateway.networking.k8s.io/v1:Gateway",
        "kubernetes:gateway.networking.k8s.io/v1beta1:HTTPRoute",
        "kubernetes:gateway.networking.x-k8s.io/v1alpha1:XListenerSet",
        "kubernetes:extensions/v1beta1:Ingress",
        "kubernetes:networking.k8s.io/v1beta1:Ingress",
        "kubernetes:networking.k8s.io/v1:Ingress",
    ],
    ids=["Gateway", "HTTPRoute", "experimental", "extensions_v1beta1", "networking_v1beta1", "networking_v1"],
)
def test_gateway_api_and_every_ingress_version_fire(type_: str) -> None:
    messages = fired(EXPOSE, [res(type_, {"metadata": {"name": "x"}, "spec": {}})])
    assert len(messages) == 1, messages


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort", "ExternalName"])
def test_every_public_service_type_fires(service_type: str) -> None:
    bad = res(SVC, {"metadata": {"name": "hello"}, "spec": {"type": service_type}})
    assert f"type {service_type}" in fired(EXPOSE, [bad])[0]


def test_external_ips_host_ports_and_host_network_fire() -> None:
    ips = res(SVC, {"metadata": {"name": "hello"}, "spec": {"type": "ClusterIP", "externalIPs": ["203.0.113.1"]}})
    assert fired(EXPOSE, [ips]) == ["Service hello: externalIPs set; expected none"]
    host = deployment()
    _pod(host).update(hostNetwork=True)
    _first_container(host).update(ports=[{"containerPort": 8080, "hostPort": 8080}])
    messages = fired(EXPOSE, [res(DEP, host)])
    assert len(messages) == 2 and "hostNetwork" in messages[0] and "hostPort 8080" in messages[1], messages
    assert fired(EXPOSE, [res(DEP, deployment())]) == []
    # A ClusterIP Service and other core kinds are fine.
    assert fired(EXPOSE, [res(SVC, {"metadata": {"name": "s"}, "spec": {"type": "ClusterIP"}})]) == []
    assert fired(EXPOSE, [res("kubernetes:networking.k8s.io/v1:NetworkPolicy", {"spec": {}})]) == []


# ---- credentials ------------------------------------------------------------------------------

CREDENTIAL_CASES: list[tuple[str, Mutation, str]] = [
    ("env_db_pass", lambda d: _first_container(d)["env"].append({"name": "DB_PASS", "value": "x"}), "DB_PASS"),
    (
        "flag_equals",
        lambda d: _first_container(d).update(args=["serve", "--db-password=hunter2"]),
        "the flag --db-password",
    ),
    (
        "flag_separate",
        lambda d: _first_container(d).update(args=["serve", "--api-key", "abc123"]),
        "the flag --api-key",
    ),
    (
        "curl_user",
        lambda d: _first_container(d).update(command=["sh", "-c", "curl -u admin:pw https://x"]),
        "a user:password for -u",
    ),
    (
        "curl_long_user",
        lambda d: _first_container(d).update(command=["curl", "--user=admin:pw", "https://x"]),
        "a user:password for --user",
    ),
    (
        "assignment",
        lambda d: _first_container(d).update(command=["sh", "-c", "PGPASSWORD=hunter2 psql"]),
        "assigned to PGPASSWORD",
    ),
    (
        "url_password",
        lambda d: _first_container(d).update(args=["--upstream", "https://u:p@db.internal/x"]),
        "a URL with a password",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "expected"), CREDENTIAL_CASES, ids=[c[0] for c in CREDENTIAL_CASES])
def test_credentials_in_env_and_command_lines_fire(case: str, mutate: Mutation, expected: str) -> None:
    bad = deployment()
    mutate(bad)
    messages = fired("no-plaintext-secrets", [res(DEP, bad)])
    assert len(messages) == 1 and expected in messages[0], messages


@pytest.mark.parametrize(
    "args",
    [
        ["--password-file=/run/secrets/db"],
        ["--db-password=$(DB_PASSWORD)"],
        ["--token", "${TOKEN}"],
        ["curl", "-u", "admin:$(PASS)", "https://x"],
        ["--token", "--verbose"],
        ["--token"],
        ["tunnel", "--no-autoupdate", "--metrics", "0.0.0.0:2000", "run"],
        ["curl", "-u", "admin", "https://x"],
        ["sh", "-c", "FOO=bar run"],
    ],
    ids=plain_ids("harmless", 9),
)
def test_references_to_credentials_on_command_lines_pass(args: list[str]) -> None:
    good = deployment()
    _first_container(good).update(args=args)
    assert fired("no-plaintext-secrets", [res(DEP, good)]) == []


def test_configmap_db_pass_and_empty_secret_values_fire() -> None:
    cm = res(CM, {"metadata": {"name": "cfg"}, "data": {"db_pass": "x"}})
    assert "db_pass looks like a credential" in fired("no-plaintext-secrets", [cm])[0]
    for value in ("", secret(""), None):
        empty = res(SEC, {"metadata": {"name": "tunnel"}, "stringData": {"token": value}})
        assert fired("no-plaintext-secrets", [empty]) == [
            "Secret tunnel: stringData.token is empty; expected the credential's value"
        ]
    full = res(SEC, {"metadata": {"name": "tunnel"}, "data": {"token": secret("ZXlK")}})
    assert fired("no-plaintext-secrets", [full]) == []


# ---- availability -----------------------------------------------------------------------------

AVAIL = "production-availability"


@pytest.mark.parametrize(
    ("budget", "replicas", "ok"),
    [
        ({"maxUnavailable": "99%"}, 3, False),
        ({"maxUnavailable": "67%"}, 3, False),
        ({"maxUnavailable": "66%"}, 3, True),
        ({"maxUnavailable": "50%"}, 2, True),
        ({"maxUnavailable": "51%"}, 2, False),
        ({"maxUnavailable": 2.0}, 3, True),
        ({"maxUnavailable": 3.0}, 3, False),
        ({"minAvailable": "1%"}, 3, True),
        ({"minAvailable": "0%"}, 3, False),
        ({"minAvailable": 1}, 3, True),
        ({"maxUnavailable": "99%"}, None, True),
    ],
    ids=plain_ids("budget", 11),
)
def test_pdb_percentages_are_scaled_against_replicas(budget: dict[str, Any], replicas: int | None, ok: bool) -> None:
    """kubernetes/kubernetes pkg/controller/disruption/disruption.go: percentages are scaled with
    intstr.GetScaledValueFromIntOrPercent(..., roundUp=true), so 67% of 3 is 3 pods (all of them)."""
    dep = deployment(replicas=replicas if replicas is not None else 3)
    if replicas is None:
        dep["spec"]["replicas"] = UNKNOWN
    budget_doc = pdb()
    budget_doc["spec"].pop("minAvailable")
    budget_doc["spec"].update(budget)
    stack = [res(NS, namespace("production"), protect=True), res(DEP, dep), res(PDB, budget_doc)]
    assert (fired(AVAIL, stack) == []) is ok, fired(AVAIL, stack)


@pytest.mark.parametrize(
    "type_",
    [
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:apps/v1:ReplicaSet",
        "kubernetes:core/v1:ReplicationController",
        "kubernetes:argoproj.io/v1alpha1:Rollout",
        "kubernetes:apps/v1beta2:Deployment",
    ],
    ids=["StatefulSet", "ReplicaSet", "ReplicationController", "Rollout", "v1beta2Deployment"],
)
def test_replica_floor_for_every_replicated_kind(type_: str) -> None:
    stack = [res(NS, namespace("production"), protect=True), res(type_, deployment(replicas=1)), res(PDB, pdb())]
    messages = fired(AVAIL, stack)
    assert len(messages) == 1 and "1 replica(s) in production" in messages[0], messages
    stack[1] = res(type_, deployment(replicas=2))
    assert fired(AVAIL, stack) == []


def test_daemonsets_jobs_and_bare_pods_in_production() -> None:
    ns = res(NS, namespace("production"), protect=True)
    for type_ in ("kubernetes:apps/v1:DaemonSet", "kubernetes:batch/v1:Job"):
        assert fired(AVAIL, [ns, res(type_, deployment(replicas=None))]) == [], type_
    pod = {"metadata": {"name": "p", "namespace": "hello-production"}, "spec": _pod(deployment())}
    assert "a bare Pod in production" in fired(AVAIL, [ns, res("kubernetes:core/v1:Pod", pod)])[0]
    staging_pod = {"metadata": {"name": "p", "namespace": "hello-staging"}, "spec": _pod(deployment())}
    assert fired(AVAIL, [res(NS, namespace("staging")), res("kubernetes:core/v1:Pod", staging_pod)]) == []


def test_an_autoscaler_in_another_namespace_or_for_another_kind_does_not_count() -> None:
    stack = [res(NS, namespace("production"), protect=True), res(DEP, deployment(replicas=None)), res(PDB, pdb())]
    assert fired(AVAIL, [*stack, res(HPA, hpa(3))]) == []
    assert "1 replica(s)" in fired(AVAIL, [*stack, res(HPA, hpa(3, namespace="elsewhere"))])[0]
    other_kind = hpa(3)
    other_kind["spec"]["scaleTargetRef"]["kind"] = "StatefulSet"
    assert "1 replica(s)" in fired(AVAIL, [*stack, res(HPA, other_kind)])[0]
    other_name = hpa(3)
    other_name["spec"]["scaleTargetRef"]["name"] = "other"
    assert "1 replica(s)" in fired(AVAIL, [*stack, res(HPA, other_name)])[0]
    v1 = res("kubernetes:autoscaling/v1:HorizontalPodAutoscaler", hpa(3))
    assert fired(AVAIL, [*stack, v1]) == []


# ---- staging Access ---------------------------------------------------------------------------

ACCESS_APP_POLICY_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("ipv4_all", {"decision": "allow", "includes": [{"ip": {"ip": "0.0.0.0/0"}}]}, "0.0.0.0/0"),
    ("ipv6_all", {"decision": "allow", "includes": [{"ip": {"ip": "::/0"}}]}, "::/0"),
    ("ipv4_slash8", {"decision": "allow", "includes": [{"ip": {"ip": "10.0.0.0/8"}}]}, "10.0.0.0/8"),
    ("ipv4_slash15", {"decision": "allow", "includes": [{"ip": {"ip": "100.64.0.0/15"}}]}, "/15"),
    ("ipv6_slash31", {"decision": "allow", "includes": [{"ip": {"ip": "2001:db8::/31"}}]}, "/31"),
    ("gmail", {"decision": "allow", "includes": [{"emailDomain": {"domain": "gmail.com"}}]}, "public mail"),
    ("outlook_at", {"decision": "allow", "includes": [{"emailDomain": {"domain": "@Outlook.com"}}]}, "public mail"),
    ("geo", {"decision": "allow", "includes": [{"geo": {"countryCode": "US"}}]}, "country"),
    ("otp_alone", {"decision": "allow", "includes": [{"loginMethod": {"id": "otp-id"}}]}, "loginMethod alone"),
    ("auth_method_alone", {"decision": "allow", "includes": [{"authMethod": {"authMethod": "mfa"}}]}, "authMethod"),
    ("singular_include", {"decision": "allow", "include": [{"everyone": {}}]}, "everyone"),
]


@pytest.mark.parametrize(
    ("case", "policy", "why"), ACCESS_APP_POLICY_CASES, ids=[c[0] for c in ACCESS_APP_POLICY_CASES]
)
def test_staging_access_that_admits_people_at_large_fires(case: str, policy: dict[str, Any], why: str) -> None:
    """Include shapes are pulumi-cloudflare v6's ZeroTrustAccessPolicyIncludeArgs (ip.ip,
    emailDomain.domain, loginMethod.id, authMethod.authMethod, geo.countryCode, everyone), as the
    engine sends them (camelCase), in a reusable policy and inline in an application's policies."""
    covered = [res(NS, namespace("staging")), res(DNS, dns()), res(APP, access_app(), name="app")]
    reusable = fired("staging-behind-access", [*covered, res(ACCESS_POLICY, {"accountId": "0" * 32, **policy})])
    assert len(reusable) == 1 and why in reusable[0], reusable
    inline = fired("staging-behind-access", [*covered[:2], res(APP, {**access_app(), "policies": [policy]})])
    assert len(inline) == 1 and why in inline[0], inline


@pytest.mark.parametrize(
    "policy",
    [
        {"decision": "allow", "includes": [{"ip": {"ip": "203.0.113.0/24"}}]},
        {"decision": "allow", "includes": [{"ip": {"ip": "100.64.0.0/16"}}]},
        {"decision": "allow", "includes": [{"ip": {"ip": "2001:db8::/32"}}]},
        {"decision": "allow", "includes": [{"ip": {"ip": "203.0.113.7"}}]},
        {"decision": "allow", "includes": [{"emailDomain": {"domain": "example.com"}}]},
        {"decision": "allow", "includes": [{"loginMethod": {"id": "otp"}}], "requires": [{"email": {"email": "a@x"}}]},
        {"decision": "deny", "includes": [{"everyone": {}}]},
        {"decision": "allow", "includes": [{"ip": {"ip": UNKNOWN}}]},
    ],
    ids=plain_ids("narrow", 8),
)
def test_narrow_staging_access_passes(policy: dict[str, Any]) -> None:
    covered = [res(NS, namespace("staging")), res(DNS, dns()), res(APP, access_app(), name="app")]
    assert fired("staging-behind-access", [*covered, res(ACCESS_POLICY, policy)]) == []


@pytest.mark.parametrize(
    ("domain", "covered"),
    [
        ("*.example.com", True),
        ("https://hello-staging.example.com", True),
        ("HELLO-STAGING.example.com.", True),
        ("*.hello-staging.example.com", False),
        ("*.ample.com", False),
        ("xhello-staging.example.com", False),
    ],
    ids=["wildcard", "url_scheme", "case_and_dot", "wildcard_below", "wildcard_suffix", "longer_label"],
)
def test_access_domain_boundaries(domain: str, covered: bool) -> None:
    """A wildcard covers exactly one level of labels under its suffix at a dot boundary; a scheme
    and a trailing dot are not part of a hostname."""
    stack = [res(NS, namespace("staging")), res(DNS, dns()), res(APP, access_app(domain))]
    assert (fired("staging-behind-access", stack) == []) is covered


# ---- every message, exactly (the messages are the user-facing contract) -----------------------


def _sink_pod(d: dict[str, Any]) -> None:
    pod = _pod(d)
    pod["securityContext"] = {
        "runAsNonRoot": False,
        "runAsUser": 0,
        "seccompProfile": {"type": "Unconfined"},
        "seLinuxOptions": {"type": "spc_t", "user": "u", "role": "r"},
        "appArmorProfile": {"type": "Unconfined"},
        "sysctls": [{"name": "kernel.msgmax"}, {"name": "net.ipv4.tcp_syncookies"}, {"name": "kernel.sem"}],
        "windowsOptions": {"hostProcess": True},
    }
    pod.update(hostNetwork=True, hostPID=True, hostIPC=True)
    pod["volumes"] = [
        {"name": "n", "nfs": {}},
        {"name": "e"},
        {"name": "ok", "emptyDir": {}},
        {"name": "h", "hostPath": {}},
    ]
    pod["containers"] = [
        {
            "name": "a",
            "image": "busybox:1",
            "ports": [{"containerPort": 1, "hostPort": 81}, {"containerPort": 2, "hostPort": 82}],
            "env": [
                {"name": "DB_PASS", "value": "x"},
                {"name": "PLAIN", "value": "y"},
                {"name": "OPAQUE", "value": secret("z")},
                {"name": "URL", "value": "https://u:p@h/"},
                {"name": "EMPTY", "value": ""},
                {"name": "REF", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            ],
            "args": ["--api-key=k1", "x"],
            "command": ["sh", "-c", "curl -u a:b https://x"],
            "securityContext": {
                "privileged": True,
                "procMount": "Unmasked",
                "capabilities": {"drop": ["NET_RAW"], "add": ["SYS_ADMIN", "CHOWN", "NET_BIND_SERVICE"]},
                "seccompProfile": {"type": "Unconfined"},
                "seLinuxOptions": {"type": "container_t"},
                "windowsOptions": {"hostProcess": True},
                "appArmorProfile": {"type": "Unconfined"},
                "runAsUser": 0,
            },
        },
        {"name": "b", "image": DIGEST, "resources": {"requests": {"cpu": "1"}}, "args": secret(["x"])},
    ]
    pod["initContainers"] = [{"name": "i", "image": "x", "securityContext": {"runAsNonRoot": True}}]
    pod["ephemeralContainers"] = [{"name": "e", "image": DIGEST, "command": ["a", secret("b")]}]
    d["spec"]["template"]["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/a": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/b": "localhost/p",
        "container.apparmor.security.beta.kubernetes.io/i": "runtime/default",
        "container.apparmor.security.beta.kubernetes.io/j": "",
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/a": "docker/default",
        "container.seccomp.security.alpha.kubernetes.io/b": "runtime/default",
        "container.seccomp.security.alpha.kubernetes.io/i": "localhost/p",
        "container.seccomp.security.alpha.kubernetes.io/j": "unconfined",
        "other": "unconfined",
    }


def kitchen_sink() -> list[Any]:
    bad = deployment(replicas=1)
    _sink_pod(bad)
    loose = pdb()
    loose["spec"] = {"maxUnavailable": "100%", "selector": loose["spec"]["selector"]}
    prod_ns = namespace("production", "baseline")
    prod_ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] = "v1.30"
    return [
        res(NS, prod_ns, name="ns"),
        res(NS, {"metadata": {"name": "infra", "labels": {"pod-security.kubernetes.io/enforce": "weird"}}}, name="i"),
        res(NS, namespace("staging"), name="st"),
        res(DEP, bad, name="dep"),
        res(PDB, loose, name="pdb"),
        res(
            "kubernetes:batch/v1:CronJob", _wrap("cronjob", _pod(deployment())) | {"metadata": {"name": "c"}}, name="cj"
        ),
        res(SVC, {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "externalIPs": ["1.2.3.4"]}}, name="np"),
        res(SVC, {"metadata": {"name": "xn"}, "spec": {"type": "ExternalName"}}, name="xn"),
        res("kubernetes:extensions/v1beta1:Ingress", {"metadata": {"name": "ing"}}, name="ing"),
        res("kubernetes:gateway.networking.k8s.io/v1:Gateway", {"metadata": {"name": "gw"}}, name="gw"),
        res(
            CM,
            {
                "metadata": {"name": "cm"},
                "data": {"db_pass": "x", "k": "AKIAABCDEFGHIJKLMNOP", "o": secret("v")},
                "binaryData": {"apiKey": "eA=="},
            },
            name="cm",
        ),
        res(
            SEC,
            {
                "metadata": {"name": "sec"},
                "data": {"password": "x", "user": "u"},
                "stringData": {"token": "", "ok": secret("v")},
            },
            name="sec",
        ),
        res(DNS, dns("a.example.com", proxied=False), name="d1"),
        res(DNS, dns("b.example.com"), name="d2"),
        res(APP, access_app("c.example.com"), name="app"),
        res(ACCESS_POLICY, {"decision": "allow", "include": [{"ip": {"ip": "0.0.0.0/0"}}]}, name="p1"),
        res(ACCESS_POLICY, {"decision": "bypass", "includes": []}, name="p2"),
    ]


def test_every_message_of_every_rule_exactly() -> None:
    """One stack that breaks every rule more than once; the messages (and the URN each is attached
    to) are what a reader of `plan --policy` or a CrossGuard report gets, so they are pinned whole."""
    got = [(v.policy, v.message, v.urn.rsplit("::", 1)[-1] if v.urn else None) for v in rules.evaluate(kitchen_sink())]
    assert got == EXPECTED_SINK


EXPECTED_SINK: list[tuple[str, str, str | None]] = [
    (
        "images-pinned-by-digest",
        "Deployment hello container 'a': image 'busybox:1' is not pinned by digest; expected repo@sha256:<64 hex> (tags can move)",  # noqa: E501
        "dep",
    ),
    (
        "images-pinned-by-digest",
        "Deployment hello init container 'i': image 'x' is not pinned by digest; expected repo@sha256:<64 hex> (tags can move)",  # noqa: E501
        "dep",
    ),
    ("restricted-security-context", "Deployment hello: hostNetwork is true; expected false", "dep"),
    ("restricted-security-context", "Deployment hello: hostPID is true; expected false", "dep"),
    ("restricted-security-context", "Deployment hello: hostIPC is true; expected false", "dep"),
    ("restricted-security-context", "Deployment hello: container 'a': privileged is true; expected false", "dep"),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': capabilities.drop is ['NET_RAW']; expected it to contain ALL",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': capabilities.add ['CHOWN', 'SYS_ADMIN'] (['SYS_ADMIN'] not even in baseline); only NET_BIND_SERVICE may be added",  # noqa: E501
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: container 'b': capabilities.drop is []; expected it to contain ALL",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: init container 'i': capabilities.drop is []; expected it to contain ALL",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: ephemeral container 'e': capabilities.drop is []; expected it to contain ALL",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: volume 'n' is nfs; expected one of configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret",  # noqa: E501
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: volume 'e' is no source; expected one of configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret",  # noqa: E501
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: volume 'h' is hostPath; expected one of configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret",  # noqa: E501
        "dep",
    ),
    ("restricted-security-context", "Deployment hello: container 'a': hostPort 81 is set; expected none", "dep"),
    ("restricted-security-context", "Deployment hello: container 'a': hostPort 82 is set; expected none", "dep"),
    (
        "restricted-security-context",
        "Deployment hello: pod: appArmorProfile.type is 'Unconfined'; expected RuntimeDefault or Localhost",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': appArmorProfile.type is 'Unconfined'; expected RuntimeDefault or Localhost",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: annotation container.apparmor.security.beta.kubernetes.io/a='unconfined'; expected runtime/default or localhost/<profile>",  # noqa: E501
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: pod: seLinuxOptions.type is 'spc_t'; expected unset or one of container_engine_t, container_init_t, container_kvm_t, container_t",  # noqa: E501
        "dep",
    ),
    ("restricted-security-context", "Deployment hello: pod: seLinuxOptions.user is set; expected unset", "dep"),
    ("restricted-security-context", "Deployment hello: pod: seLinuxOptions.role is set; expected unset", "dep"),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': procMount is 'Unmasked'; expected Default",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: pod: seccompProfile.type is 'Unconfined'; expected RuntimeDefault or Localhost",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': seccompProfile.type is 'Unconfined'; expected RuntimeDefault or Localhost",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: annotation seccomp.security.alpha.kubernetes.io/pod='unconfined'; expected runtime/default or localhost/<profile>",  # noqa: E501
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: annotation container.seccomp.security.alpha.kubernetes.io/j='unconfined'; expected runtime/default or localhost/<profile>",  # noqa: E501
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: sysctl 'kernel.msgmax' is not in the safe set; expected none of the unsafe sysctls",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: sysctl 'kernel.sem' is not in the safe set; expected none of the unsafe sysctls",
        "dep",
    ),
    ("restricted-security-context", "Deployment hello: pod: windowsOptions.hostProcess is true; expected false", "dep"),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': windowsOptions.hostProcess is true; expected false",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': allowPrivilegeEscalation is None; expected false",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: container 'b': allowPrivilegeEscalation is None; expected false",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: init container 'i': allowPrivilegeEscalation is None; expected false",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: ephemeral container 'e': allowPrivilegeEscalation is None; expected false",
        "dep",
    ),
    ("restricted-security-context", "Deployment hello: pod: runAsNonRoot is false; expected true", "dep"),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': runAsNonRoot is None (pod: False); expected true",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: container 'b': runAsNonRoot is None (pod: False); expected true",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello: ephemeral container 'e': runAsNonRoot is None (pod: False); expected true",
        "dep",
    ),
    ("restricted-security-context", "Deployment hello: pod: runAsUser is 0 (root); expected a non-zero UID", "dep"),
    (
        "restricted-security-context",
        "Deployment hello: container 'a': runAsUser is 0 (root); expected a non-zero UID",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello container 'a': readOnlyRootFilesystem is None; expected true",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello container 'b': readOnlyRootFilesystem is None; expected true",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello init container 'i': readOnlyRootFilesystem is None; expected true",
        "dep",
    ),
    (
        "restricted-security-context",
        "Deployment hello ephemeral container 'e': readOnlyRootFilesystem is None; expected true",
        "dep",
    ),
    (
        "requests-and-limits",
        "Deployment hello container 'a': resources requests.cpu, requests.memory, limits.cpu, limits.memory not set",
        "dep",
    ),
    (
        "requests-and-limits",
        "Deployment hello container 'b': resources requests.memory, limits.cpu, limits.memory not set",
        "dep",
    ),
    (
        "requests-and-limits",
        "Deployment hello init container 'i': resources requests.cpu, requests.memory, limits.cpu, limits.memory not set",  # noqa: E501
        "dep",
    ),
    (
        "no-loadbalancer-or-nodeport",
        "Deployment hello: hostNetwork is true, the pod listens on the node's address; expected false",
        "dep",
    ),
    (
        "no-loadbalancer-or-nodeport",
        "Deployment hello container 'a': hostPort 81 publishes the pod on the node; expected none",
        "dep",
    ),
    (
        "no-loadbalancer-or-nodeport",
        "Deployment hello container 'a': hostPort 82 publishes the pod on the node; expected none",
        "dep",
    ),
    (
        "no-loadbalancer-or-nodeport",
        "Service np: type NodePort exposes the cluster directly; expected ClusterIP (users reach the service only through Cloudflare)",  # noqa: E501
        "np",
    ),
    ("no-loadbalancer-or-nodeport", "Service np: externalIPs set; expected none", "np"),
    (
        "no-loadbalancer-or-nodeport",
        "Service xn: type ExternalName exposes the cluster directly; expected ClusterIP (users reach the service only through Cloudflare)",  # noqa: E501
        "xn",
    ),
    (
        "no-loadbalancer-or-nodeport",
        "Ingress ing: an Ingress is a public way into the cluster; expected none (Cloudflare Tunnel)",
        "ing",
    ),
    (
        "no-loadbalancer-or-nodeport",
        "Gateway gw: a Gateway API object routes traffic into the cluster; expected none (Cloudflare Tunnel)",
        "gw",
    ),
    (
        "namespace-pod-security-restricted",
        "Namespace hello-production: label pod-security.kubernetes.io/enforce-version is 'v1.30'; expected latest or v1.31 or later (an older version enforces an older, laxer profile)",  # noqa: E501
        "ns",
    ),
    (
        "namespace-pod-security-restricted",
        "Namespace hello-production: label pod-security.kubernetes.io/enforce is 'baseline'; expected 'restricted'",
        "ns",
    ),
    (
        "namespace-pod-security-restricted",
        "Namespace infra: label pod-security.kubernetes.io/enforce is 'weird'; expected an explicit level ('restricted' for anything that runs the service)",  # noqa: E501
        "i",
    ),
    (
        "pods-in-pod-security-namespaces",
        "CronJob c: runs pods in namespace 'default', which this stack does not create with a pod-security.kubernetes.io/enforce label; expected a Namespace of the stack that enforces Pod Security",  # noqa: E501
        "cj",
    ),
    ("dns-records-proxied", "DnsRecord a.example.com: proxied is False; expected true", "d1"),
    (
        "no-plaintext-secrets",
        "Deployment hello container 'a': command holds what looks like a user:password for -u; use a Secret",
        "dep",
    ),
    (
        "no-plaintext-secrets",
        "Deployment hello container 'a': args holds what looks like a credential in the flag --api-key; use a Secret",
        "dep",
    ),
    (
        "no-plaintext-secrets",
        "Deployment hello container 'a': env DB_PASS looks like a credential by its name but is a plain value; use valueFrom.secretKeyRef",  # noqa: E501
        "dep",
    ),
    (
        "no-plaintext-secrets",
        "Deployment hello container 'a': env OPAQUE is a secret passed as a plain value; use valueFrom.secretKeyRef",
        "dep",
    ),
    (
        "no-plaintext-secrets",
        "Deployment hello container 'a': env URL holds what looks like a URL with a password; use a Secret",
        "dep",
    ),
    (
        "no-plaintext-secrets",
        "Deployment hello container 'b': args holds a secret; pass it through env valueFrom.secretKeyRef",
        "dep",
    ),
    (
        "no-plaintext-secrets",
        "Deployment hello ephemeral container 'e': command holds a secret; pass it through env valueFrom.secretKeyRef",
        "dep",
    ),
    ("no-plaintext-secrets", "ConfigMap cm: data.db_pass looks like a credential by its name; use a Secret", "cm"),
    ("no-plaintext-secrets", "ConfigMap cm: data.k holds what looks like an AWS access key id; use a Secret", "cm"),
    ("no-plaintext-secrets", "ConfigMap cm: data.o is a secret; put it in a Secret, not a ConfigMap", "cm"),
    ("no-plaintext-secrets", "ConfigMap cm: binaryData.apiKey looks like a credential by its name; use a Secret", "cm"),
    ("no-plaintext-secrets", "Secret sec: stringData.token is empty; expected the credential's value", "sec"),
    (
        "secret-values-are-pulumi-secrets",
        "Secret sec: data.password is plaintext; expected a Pulumi secret (config get_secret/require_secret or Output.secret)",  # noqa: E501
        "sec",
    ),
    (
        "secret-values-are-pulumi-secrets",
        "Secret sec: stringData.token is plaintext; expected a Pulumi secret (config get_secret/require_secret or Output.secret)",  # noqa: E501
        "sec",
    ),
    (
        "production-namespace-protected",
        "Namespace hello-production: production namespace is not protected; expected the protect=True option",
        "ns",
    ),
    (
        "staging-behind-access",
        "ZeroTrustAccessPolicy p1: staging Access policy includes the IP range 0.0.0.0/0 (anyone on a network that large); expected an allow list of people or service tokens",  # noqa: E501
        "p1",
    ),
    (
        "staging-behind-access",
        "ZeroTrustAccessPolicy p2: staging Access policy decision is bypass (no check at all); expected an allow list of people or service tokens",  # noqa: E501
        "p2",
    ),
    (
        "staging-behind-access",
        "DnsRecord a.example.com: staging hostname is not behind Cloudflare Access; expected a ZeroTrustAccessApplication whose domain covers it",  # noqa: E501
        "d1",
    ),
    (
        "staging-behind-access",
        "DnsRecord b.example.com: staging hostname is not behind Cloudflare Access; expected a ZeroTrustAccessApplication whose domain covers it",  # noqa: E501
        "d2",
    ),
    ("production-availability", "Deployment hello: 1 replica(s) in production; expected at least 2", "dep"),
    (
        "production-availability",
        "Deployment hello: no PodDisruptionBudget selects its pods in production; expected one whose matchLabels match the pod template labels and that keeps a pod up",  # noqa: E501
        "dep",
    ),
]


def test_values_unknown_during_preview_pass_every_check() -> None:
    """A value the engine knows only after apply (its unknown sentinel) passes its own check; the
    check runs again at `up`. Every checked field at once, so any check that stops skipping fires."""
    u = UNKNOWN
    dep = deployment(replicas=u)  # type: ignore[arg-type]
    pod = _pod(dep)
    pod["securityContext"] = {
        "runAsNonRoot": u,
        "runAsUser": u,
        "seccompProfile": {"type": u},
        "seLinuxOptions": {"type": u, "user": u, "role": u},
        "appArmorProfile": {"type": u},
        "sysctls": [{"name": u}],
        "windowsOptions": {"hostProcess": u},
    }
    pod["hostNetwork"] = u
    first = _first_container(dep)
    first["ports"] = [{"containerPort": 8080, "hostPort": u}]
    first["env"] = [{"name": "DB_PASSWORD", "value": u}]
    first["args"] = [u, "--token", u]
    first["resources"] = u
    first["securityContext"] = {
        "allowPrivilegeEscalation": u,
        "readOnlyRootFilesystem": u,
        "privileged": u,
        "procMount": u,
        "capabilities": u,
        "seccompProfile": {"type": u},
        "runAsNonRoot": u,
        "seLinuxOptions": {"type": u},
        "appArmorProfile": {"type": u},
    }
    second = container("second", image=u)
    second["securityContext"]["capabilities"] = {"drop": u, "add": [u]}
    pod["containers"].append(second)
    dep["spec"]["template"]["metadata"]["annotations"] = {
        "container.apparmor.security.beta.kubernetes.io/app": u,
        "seccomp.security.alpha.kubernetes.io/pod": u,
    }
    hidden = deployment()
    hidden["metadata"]["name"] = "hidden"
    _pod(hidden)["containers"] = u
    ns = namespace("production")
    ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] = u
    unknown_level = {"metadata": {"name": "infra", "labels": {"pod-security.kubernetes.io/enforce": u}}}
    stack = [
        res(NS, ns, name="ns", protect=True),
        res(NS, unknown_level, name="infra"),
        res(DEP, dep),
        res(DEP, hidden, name="hidden"),
        res(PDB, {**pdb(), "spec": {"selector": u, "maxUnavailable": u}}),
        res(SVC, {"metadata": {"name": "s", "namespace": u}, "spec": {"type": "ClusterIP"}}),
        res(DNS, dns("hello.example.com", proxied=u)),
    ]
    assert rules.evaluate(stack) == []


def test_an_access_application_with_an_unknown_domain_still_reports_open_policies() -> None:
    app = access_app(UNKNOWN)
    app["policies"] = [{"decision": "bypass"}]
    stack = [res(NS, namespace("staging")), res(DNS, dns()), res(APP, app, name="app")]
    messages = fired("staging-behind-access", stack)
    assert len(messages) == 1 and "decision is bypass" in messages[0], messages
    unknown_name = dns(UNKNOWN)
    assert fired("staging-behind-access", [res(NS, namespace("staging")), res(DNS, unknown_name)]) == []


@pytest.mark.parametrize(
    ("pdb_namespace", "dep_namespace", "ok"),
    [(None, None, True), ("default", None, True), (None, "default", True), ("other", None, False)],
    ids=["both_unset", "pdb_explicit_default", "dep_explicit_default", "other"],
)
def test_an_unset_namespace_is_default(pdb_namespace: str | None, dep_namespace: str | None, ok: bool) -> None:
    budget, dep = pdb(), deployment()
    for doc, value in ((budget, pdb_namespace), (dep, dep_namespace)):
        doc["metadata"].pop("namespace")
        if value is not None:
            doc["metadata"]["namespace"] = value
    assert rules._same_namespace(res(PDB, budget), res(DEP, dep)) is ok


def test_a_pdb_selecting_by_expressions_or_not_at_all_does_not_count() -> None:
    stack = good_production()
    with_expressions = pdb()
    with_expressions["spec"]["selector"]["matchExpressions"] = [{"key": "a", "operator": "Exists"}]
    assert fired("production-availability", [*stack[:2], res(PDB, with_expressions)])
    unknown_selector = pdb()
    unknown_selector["spec"]["selector"] = UNKNOWN
    assert fired("production-availability", [*stack[:2], res(PDB, unknown_selector)]) == []


@pytest.mark.parametrize(
    ("annotations", "ok"),
    [
        ({"seccomp.security.alpha.kubernetes.io/pod": "runtime/default"}, True),
        ({"seccomp.security.alpha.kubernetes.io/pod": "docker/default"}, True),
        ({"seccomp.security.alpha.kubernetes.io/pod": "localhost/profile.json"}, True),
        ({"seccomp.security.alpha.kubernetes.io/pod": "Localhost/x"}, False),
        ({"container.seccomp.security.alpha.kubernetes.io/app": "unconfined"}, False),
        ({"other.example.com/seccomp": "unconfined"}, True),
        ({"container.apparmor.security.beta.kubernetes.io/app": ""}, True),
        ({"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}, True),
        ({"container.apparmor.security.beta.kubernetes.io/app": "localhost/p"}, True),
        ({"container.apparmor.security.beta.kubernetes.io/app": "RUNTIME/DEFAULT"}, False),
        ({"apparmor.example.com/app": "unconfined"}, True),
    ],
    ids=plain_ids("annotations", 11),
)
def test_seccomp_and_apparmor_annotations(annotations: dict[str, str], ok: bool) -> None:
    """check_seccompProfile_baseline.go (validSeccompAnnotationValue: runtime/default,
    docker/default, localhost/*) and check_appArmorProfile.go (allowedAnnotationValue: empty,
    runtime/default, localhost/*), annotation keys by their exact prefixes."""
    dep = deployment()
    dep["spec"]["template"]["metadata"]["annotations"] = annotations
    assert (fired(PSS, [res(DEP, dep)]) == []) is ok


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["curl", "--user=admin:pw", "x"], "a user:password for --user"),
        (["curl", "-u", "'admin:pw'"], "a user:password for -u"),
        (["curl", "-U", "proxy:pw"], "a user:password for -U"),
        (["run", "--db-password='hunter2'"], "a credential in the flag --db-password"),
        (["run", "--db-password", "'$(DB_PASSWORD)'"], None),
        (["sh", "-c", "export API_TOKEN='abc'"], "a credential assigned to API_TOKEN"),
        (["sh", "-c", "API_TOKEN='$TOKEN' run"], None),
        (["sh", "-c", "a.b.token=x run"], None),
        (["--token=a=b"], "a credential in the flag --token"),
        (["-p", "x"], None),
        (["--x", "--token"], None),
    ],
    ids=plain_ids("words", 11),
)
def test_command_line_credentials(words: list[str], expected: str | None) -> None:
    assert rules.command_line_credential(words) == expected


def test_pod_level_checks_run_while_the_containers_are_unknown() -> None:
    dep = deployment()
    _pod(dep).update(containers=UNKNOWN, hostPID=True)
    assert fired(PSS, [res(DEP, dep)]) == ["Deployment hello: hostPID is true; expected false"]


def test_a_singular_require_naming_people_narrows_a_login_method() -> None:
    covered = [res(NS, namespace("staging")), res(DNS, dns()), res(APP, access_app(), name="app")]
    otp = {"decision": "allow", "includes": [{"loginMethod": {"id": "otp"}}]}
    narrowed = {**otp, "require": [{"email": {"email": "a@example.com"}}]}
    assert fired("staging-behind-access", [*covered, res(ACCESS_POLICY, narrowed)]) == []
    assert fired("staging-behind-access", [*covered, res(ACCESS_POLICY, otp)])


@pytest.mark.parametrize(
    "budget",
    [{"minAvailable": 0}, {"minAvailable": "0%"}, {"maxUnavailable": "100%"}],
    ids=["min_zero", "min_zero_percent", "max_all"],
)
def test_a_budget_that_evicts_everything_fails_even_while_replicas_are_unknown(budget: dict[str, Any]) -> None:
    dep = deployment()
    dep["spec"]["replicas"] = UNKNOWN
    loose = pdb()
    loose["spec"] = {"selector": loose["spec"]["selector"], **budget}
    stack = [res(NS, namespace("production"), protect=True), res(DEP, dep), res(PDB, loose)]
    assert "no PodDisruptionBudget" in fired("production-availability", stack)[0]

"""Exposure under the recording mocks: every resource with its inputs, secrets, DNS, Access, cloudflared."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from components.config.settings import Settings
from components.exposure import (
    CATCH_ALL_SERVICE,
    EDGE_PORTS,
    TYPE,
    Exposure,
    ExposureArgs,
    ingress_rules,
)
from components.exposure.access import people_includes
from components.exposure.connectors import TOKEN_KEY, TOKEN_VOLUME, pod_template
from components.labels import COMPONENT_SERVER, COMPONENT_TUNNEL, selector
from components.testing import TUNNEL_TOKEN_INVOKE, RecordingMocks, is_secret, tunnel_token

TUNNEL = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
DNS = "cloudflare:index/dnsRecord:DnsRecord"
ACCESS_APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
ACCESS_POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
SERVICE_TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"
PROVIDER = "pulumi:providers:cloudflare"
SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

ORIGIN = "http://hello.hello-staging.svc.cluster.local:8080"
API_TOKEN = "cf-api-token-do-not-leak-7d1c"


def args_from(settings: Settings, **overrides: Any) -> ExposureArgs:
    """Args as ServiceStack builds them, with the Workload's outputs stood in by plain values."""
    cf = settings.cloudflare
    values: dict[str, Any] = {
        "service_name": settings.service_name,
        "team": settings.team,
        "stage": settings.stage.value,
        "namespace": settings.namespace,
        "origin_url": ORIGIN,
        "app_port": settings.container_port,
        "account_id": cf.account_id,
        "zone_id": cf.zone_id,
        "hostnames": cf.hostnames,
        "cloudflared_image": cf.cloudflared_image,
        "cloudflared_replicas": cf.cloudflared_replicas,
        "access_enabled": cf.access_enabled,
        "access_allow_emails": cf.access_allow_emails,
        "access_allow_email_domains": cf.access_allow_email_domains,
        "monitoring_namespace": settings.monitoring.namespace,
    }
    values.update(overrides)
    return ExposureArgs(**values)


@pytest.fixture
def expose(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]
) -> Callable[..., RecordingMocks]:
    def run(stack: str, settings_overrides: dict[str, Any] | None = None, **arg_overrides: Any) -> RecordingMocks:
        settings = make_settings(stack, **(settings_overrides or {}))
        return run_components(
            lambda: Exposure("hello-exposure", args_from(settings, **arg_overrides)) and None, stack=stack
        )

    return run


@pytest.fixture
def staging(expose: Callable[..., RecordingMocks]) -> RecordingMocks:
    return expose("staging", api_token=pulumi.Output.secret(API_TOKEN))


@pytest.fixture
def production(expose: Callable[..., RecordingMocks]) -> RecordingMocks:
    return expose("production")


def _tunnel_id(mocks: RecordingMocks) -> str:
    return mocks.one(TUNNEL).id


# -- Cloudflare -------------------------------------------------------------------------------


def test_tunnel_is_remotely_managed_with_its_own_name(staging: RecordingMocks) -> None:
    tunnel = staging.one(TUNNEL)
    assert tunnel.plain_inputs == {
        "accountId": "0123456789abcdef0123456789abcdef",
        "name": "hello-staging",
        "configSrc": "cloudflare",
    }
    uuid.UUID(tunnel.id)  # the mocks answer a UUID, as Cloudflare does


def test_ingress_rule_per_hostname_to_the_origin_and_catch_all_last(production: RecordingMocks) -> None:
    config = production.one(TUNNEL_CONFIG).plain_inputs
    assert config["tunnelId"] == _tunnel_id(production)
    assert config["accountId"] == "0123456789abcdef0123456789abcdef"
    assert config["source"] == "cloudflare"
    ingresses = config["config"]["ingresses"]
    assert ingresses == [
        {"hostname": "hello.example.com", "service": ORIGIN},
        {"hostname": "hi.example.com", "service": ORIGIN},
        {"service": CATCH_ALL_SERVICE},
    ]
    assert CATCH_ALL_SERVICE == "http_status:404"


def test_ingress_rules_name_each_hostname_in_order_then_the_catch_all(make_settings: Callable[..., Settings]) -> None:
    args = args_from(make_settings("production"), hostnames=["b.example.com", "a.example.com"])
    assert [(rule.hostname, rule.service) for rule in ingress_rules(args)] == [
        ("b.example.com", ORIGIN),
        ("a.example.com", ORIGIN),
        (None, CATCH_ALL_SERVICE),
    ]


def test_dns_records_are_proxied_cnames_to_the_tunnel(production: RecordingMocks) -> None:
    records = production.by_type(DNS)
    assert sorted(r.plain_inputs["name"] for r in records) == ["hello.example.com", "hi.example.com"]
    for record in records:
        assert record.plain_inputs == {
            "zoneId": "fedcba9876543210fedcba9876543210",
            "name": record.plain_inputs["name"],
            "type": "CNAME",
            "content": f"{_tunnel_id(production)}.cfargotunnel.com",
            "proxied": True,
            "ttl": 1,
            "comment": "hello (production) through Cloudflare Tunnel; managed by service-lifecycle",
        }


def test_every_cloudflare_resource_uses_the_component_provider(staging: RecordingMocks) -> None:
    provider = staging.one(PROVIDER)
    cloudflare = [r for r in staging.resources if r.type.startswith("cloudflare:")]
    assert len(cloudflare) == 7  # tunnel, config, 1 DNS record, 2 policies, service token, application
    for resource in cloudflare:
        assert resource.provider is not None and resource.provider.startswith(provider.urn + "::"), resource.name
    assert all(i.provider and i.provider.startswith(provider.urn) for i in staging.invocations)


def test_api_token_is_a_secret_and_absent_token_leaves_the_environment(
    staging: RecordingMocks, production: RecordingMocks
) -> None:
    with_token = staging.one(PROVIDER).inputs
    assert is_secret(with_token["apiToken"]) and with_token["apiToken"]["value"] == API_TOKEN
    # No token in settings: no placeholder either, so the provider reads CLOUDFLARE_API_TOKEN.
    assert "apiToken" not in production.one(PROVIDER).inputs


def test_tunnel_token_comes_from_the_invoke_and_stays_secret(staging: RecordingMocks) -> None:
    tunnel = staging.one(TUNNEL)
    invoke = [i for i in staging.invocations if i.token == TUNNEL_TOKEN_INVOKE]
    assert [(i.args["accountId"], i.args["tunnelId"]) for i in invoke] == [
        (tunnel.plain_inputs["accountId"], tunnel.id)
    ]
    secret = staging.one(SECRET)
    string_data = secret.inputs["stringData"]
    assert is_secret(string_data), "the token Secret's data must reach the engine as a Pulumi secret"
    assert secret.plain_inputs["stringData"] == {"token": tunnel_token(tunnel.plain_inputs["accountId"], tunnel.id)}
    assert secret.plain_inputs["metadata"]["namespace"] == "hello-staging"
    assert secret.plain_inputs["type"] == "Opaque"


def test_tunnel_token_output_is_secret(
    make_settings: Callable[..., Settings], run_components: Callable[..., RecordingMocks]
) -> None:
    """The Secret resource would hide its data anyway; the token itself must be secret from the invoke on."""
    made: list[Exposure] = []
    args = args_from(make_settings("production"))
    run_components(lambda: made.append(Exposure("hello-exposure", args)), stack="production")
    assert _sync_await(made[0].tunnel_token.is_secret()) is True
    assert _sync_await(made[0].tunnel_token.future()).count(".") == 0  # a token, not a placeholder URL


# -- Access -----------------------------------------------------------------------------------


def test_staging_has_access_limited_to_the_allow_list(staging: RecordingMocks) -> None:
    policies = {p.plain_inputs["decision"]: p for p in staging.by_type(ACCESS_POLICY)}
    people = policies["allow"].plain_inputs
    assert people["includes"] == [
        {"email": {"email": "release-manager@example.com"}},
        {"emailDomain": {"domain": "example.com"}},
    ]
    assert people["accountId"] == "0123456789abcdef0123456789abcdef"
    machines = policies["non_identity"].plain_inputs
    assert machines["includes"] == [{"serviceToken": {"tokenId": staging.one(SERVICE_TOKEN).id}}]
    app = staging.one(ACCESS_APP).plain_inputs
    assert app["type"] == "self_hosted"
    assert app["domain"] == "hello-staging.example.com"
    assert app["destinations"] == [{"type": "public", "uri": "hello-staging.example.com"}]
    # v6 links reusable policies to the application by ID, with a precedence each
    assert app["policies"] == [
        {"id": policies["allow"].id, "precedence": 1},
        {"id": policies["non_identity"].id, "precedence": 2},
    ]


def test_people_are_admitted_by_email_then_by_domain(make_settings: Callable[..., Settings]) -> None:
    args = args_from(
        make_settings("staging"),
        access_allow_emails=["a@example.com", "b@example.com"],
        access_allow_email_domains=["example.org"],
    )
    includes = people_includes(args)
    assert [rule.email.email for rule in includes[:2] if rule.email] == ["a@example.com", "b@example.com"]
    assert [(rule.email, rule.email_domain.domain if rule.email_domain else None) for rule in includes[2:]] == [
        (None, "example.org")
    ]


def test_production_is_public_by_default(production: RecordingMocks) -> None:
    assert [r for r in production.resources if "zeroTrustAccess" in r.type] == []


def test_production_gets_access_when_settings_enable_it(expose: Callable[..., RecordingMocks]) -> None:
    mocks = expose(
        "production",
        {"accessEnabled": True, "accessAllowEmails": ["ops@example.com"], "accessAllowEmailDomains": []},
        access_service_token=False,
    )
    assert len(mocks.by_type(ACCESS_APP)) == 1
    (policy,) = mocks.by_type(ACCESS_POLICY)
    assert policy.plain_inputs["includes"] == [{"email": {"email": "ops@example.com"}}]
    assert mocks.by_type(SERVICE_TOKEN) == []
    app = mocks.one(ACCESS_APP).plain_inputs
    assert [d["uri"] for d in app["destinations"]] == ["hello.example.com", "hi.example.com"]


# -- cloudflared ------------------------------------------------------------------------------


def _ints(value: Any) -> Any:
    """Integral floats back to ints (the mock transport sends every number as a float)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def test_cloudflared_deployment(production: RecordingMocks, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings("production")
    deployment = _ints(production.one(DEPLOYMENT).plain_inputs)
    spec = deployment["spec"]
    assert spec["replicas"] == 3 >= 2
    pods = selector("hello", COMPONENT_TUNNEL)
    assert spec["selector"] == {"matchLabels": pods}
    template = spec["template"]
    assert pods.items() <= template["metadata"]["labels"].items()  # the app's NetworkPolicy admits these
    assert template["metadata"]["annotations"]["service-lifecycle/tunnel-id"] == production.one(TUNNEL).id
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = template["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == settings.cloudflare.cloudflared_image
    assert "@sha256:" in container["image"]
    assert container["command"] == ["cloudflared"]
    token_file = "/etc/cloudflared/tunnel/token"
    assert container["args"] == [
        "tunnel",
        "--no-autoupdate",
        "--metrics",
        "0.0.0.0:2000",
        "run",
        "--token-file",
        token_file,
    ]
    assert "env" not in container  # no token in the environment (checkov CKV_K8S_35)
    assert container["ports"] == [{"name": "metrics", "containerPort": 2000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/ready", "port": "metrics"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert set(container["resources"]) == {"requests", "limits"}


def test_cloudflared_reads_its_token_from_a_read_only_file(production: RecordingMocks) -> None:
    """cloudflared 2025.8.1 (the pinned image) has ``tunnel run --token-file`` (env ``TUNNEL_TOKEN_FILE``):
    cloudflare/cloudflared ``cmd/cloudflared/tunnel/subcommands.go``, ``tunnelTokenFileFlag`` in
    ``buildRunCommand``; ``runCommand`` reads the file and trims whitespace when ``--token`` is empty
    (added in 2025.4.0). The Secret's ``token`` key is mounted as that file, read-only, mode 0440,
    group-owned by the pod's fsGroup so the non-root cloudflared user can read it."""
    pod = _ints(production.one(DEPLOYMENT).plain_inputs)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["volumeMounts"] == [
        {"name": "tunnel-token", "mountPath": "/etc/cloudflared/tunnel", "readOnly": True}
    ]
    (volume,) = pod["volumes"]
    assert volume == {
        "name": "tunnel-token",
        "secret": {
            "secretName": "hello-tunnel-token",
            "defaultMode": 0o440,
            "items": [{"key": "token", "path": "token"}],
        },
    }
    assert container["args"][-1] == "/etc/cloudflared/tunnel/token"
    assert pod["securityContext"]["fsGroup"] == 65532 == container["securityContext"]["runAsUser"]
    secret = production.one(SECRET)
    assert secret.plain_inputs["metadata"]["name"] == "hello-tunnel-token"


def test_the_connector_pods_mount_the_secret_they_are_given_and_roll_with_the_tunnel(
    make_settings: Callable[..., Settings],
) -> None:
    args = args_from(make_settings("production"))
    template = pod_template(args, {"a": "b"}, {"c": "d"}, "the-secret", "the-tunnel-id")
    assert template.metadata.labels == {"a": "b"}
    assert template.metadata.annotations == {"service-lifecycle/tunnel-id": "the-tunnel-id"}
    (volume,) = template.spec.volumes
    assert (volume.name, volume.secret.secret_name) == (TOKEN_VOLUME, "the-secret")
    assert [(item.key, item.path) for item in volume.secret.items] == [(TOKEN_KEY, TOKEN_KEY)]
    (spread,) = template.spec.topology_spread_constraints
    assert spread.label_selector.match_labels == {"c": "d"}


def test_dns_and_cloudflared_wait_for_the_tunnel_configuration(production: RecordingMocks) -> None:
    """On first creation the edge must not route to connectors of a tunnel without ingress rules (503s)."""
    config = production.one(TUNNEL_CONFIG)
    records = production.by_type(DNS)
    assert len(records) == 2
    for record in records:
        assert config.urn in record.dependencies
    assert config.urn in production.one(DEPLOYMENT).dependencies


def test_cloudflared_disruption_budget(production: RecordingMocks) -> None:
    spec = _ints(production.one(PDB).plain_inputs)["spec"]
    assert spec == {"maxUnavailable": 1, "selector": {"matchLabels": selector("hello", COMPONENT_TUNNEL)}}


def test_cloudflared_network_policy(production: RecordingMocks) -> None:
    spec = _ints(production.one(NETPOL).plain_inputs)["spec"]
    assert spec["podSelector"] == {"matchLabels": selector("hello", COMPONENT_TUNNEL)}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert ingress == {
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "ports": [{"port": 2000, "protocol": "TCP"}],
    }
    edge, app, dns = spec["egress"]
    assert {(p["port"], p["protocol"]) for p in edge["ports"]} == {(7844, "TCP"), (7844, "UDP"), (443, "TCP")}
    assert {(p["port"], p["protocol"]) for p in edge["ports"]} == set(EDGE_PORTS)
    assert [peer["ipBlock"]["cidr"] for peer in edge["to"]] == ["0.0.0.0/0", "::/0"]
    assert "10.0.0.0/8" in edge["to"][0]["ipBlock"]["except"]
    assert app == {
        "to": [{"podSelector": {"matchLabels": selector("hello", COMPONENT_SERVER)}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }
    assert {p["port"] for p in dns["ports"]} == {53}


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_kubernetes_objects_pass_strict_schema_validation(expose: Callable[..., RecordingMocks], stack: str) -> None:
    mocks = expose(stack)
    objects = [r for r in mocks.kubernetes_objects() if r.parent and r.parent.endswith("::hello-exposure")]
    assert {o.plain_inputs["kind"] for o in objects} == {"Secret", "Deployment", "PodDisruptionBudget", "NetworkPolicy"}
    for resource in objects:
        kubernetes_validate.validate(_ints(resource.plain_inputs), "1.31", strict=True)


def test_children_are_parented_and_named_after_the_component(staging: RecordingMocks) -> None:
    (component,) = staging.by_type(TYPE)
    children = [r for r in staging.resources if r is not component]
    for resource in children:
        assert resource.parent == component.urn, resource.urn
        assert resource.name.startswith("hello-exposure-"), resource.name
        assert f"{TYPE}${resource.type}::" in resource.urn


def test_no_child_depends_on_anything_outside_the_exposure(staging: RecordingMocks) -> None:
    """What the sunset's targeted destroy relies on, seen from the inside: the component is self-contained."""
    urns = {r.urn for r in staging.resources}
    for resource in staging.resources:
        assert set(resource.dependencies) <= urns, resource.name


# -- guard rails ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hostnames": ()}, "at least one hostname"),
        ({"hostnames": ("a.example.com", "a.example.com")}, "duplicates"),
        ({"cloudflared_replicas": 1}, "cloudflared_replicas: got 1; expected at least 2"),
        ({"cloudflared_image": "cloudflare/cloudflared:latest"}, "pinned by digest"),
        ({"access_allow_emails": (), "access_allow_email_domains": ()}, "would admit nobody"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_registered(
    make_settings: Callable[..., Settings],
    run_components: Callable[..., RecordingMocks],
    overrides: dict[str, Any],
    message: str,
) -> None:
    args = args_from(make_settings("staging"), **overrides)
    mocks = RecordingMocks()
    with pytest.raises(Exception, match=message):
        run_components(lambda: Exposure("hello-exposure", args) and None, mocks=mocks)
    assert mocks.resources == []


def test_secrets_never_reach_the_written_plan(offline_plan: Callable[[str], tuple[dict[str, Any], Any]]) -> None:
    for stack in ("staging", "production"):
        plan, out = offline_plan(stack)
        tunnel = next(r for r in plan["resources"] if r["type"] == TUNNEL)
        assert tunnel["inputs"]["configSrc"] == "cloudflare"
        # The mock token for that tunnel is deterministic: it must appear in no written file.
        token = tunnel_token(tunnel["inputs"]["accountId"], _plan_id(plan, tunnel))
        written = [out / "plan.json", *sorted((out / "manifests").glob("*.yaml"))]
        assert any("Secret" in p.name for p in written), "the tunnel-token Secret manifest is written"
        for path in written:
            text = path.read_text()
            assert token not in text, f"tunnel token in plain text in {path.name}"
        secret = next(r for r in plan["resources"] if r["type"] == SECRET and "tunnel-token" in r["name"])
        assert json.dumps(secret["inputs"]["stringData"]) == '"[secret]"'


def _plan_id(plan: dict[str, Any], tunnel: dict[str, Any]) -> str:
    """The tunnel's ID as the plan's DNS records point at it."""
    records = [r for r in plan["resources"] if r["type"] == DNS]
    assert records, "the plan has DNS records"
    content = str(records[0]["inputs"]["content"])
    assert content.endswith(".cfargotunnel.com")
    return content.removesuffix(".cfargotunnel.com")


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_plan_json_shows_dns_and_cloudflared_after_the_tunnel_configuration(
    offline_plan: Callable[[str], tuple[dict[str, Any], Any]], stack: str
) -> None:
    plan, _ = offline_plan(stack)
    (config,) = [r for r in plan["resources"] if r["type"] == TUNNEL_CONFIG]
    dns = [r for r in plan["resources"] if r["type"] == DNS]
    cloudflared = [
        r for r in plan["resources"]
        if r["type"] == DEPLOYMENT and r["inputs"]["metadata"]["name"].endswith("-cloudflared")
    ]  # fmt: skip
    assert dns and len(cloudflared) == 1
    for resource in [*dns, *cloudflared]:
        assert config["urn"] in resource["dependencies"], resource["name"]


def test_the_token_secret_belongs_to_its_tunnel_and_its_content_is_not_compared(staging: RecordingMocks) -> None:
    """A preview cannot read the token (read-only credentials), so were its content compared, every
    preview of an unchanged stack would replace the Secret and roll cloudflared: what the real
    engine showed (e2e step 07-patch). The Secret is made anew when its tunnel is instead."""
    tunnel = staging.one(TUNNEL)
    secret = staging.one(SECRET)
    assert secret.ignore_changes == ["stringData", "data"]
    assert secret.replace_on_changes == ["metadata.annotations"]
    assert secret.plain_inputs["metadata"]["annotations"] == {"service-lifecycle/tunnel-id": tunnel.id}

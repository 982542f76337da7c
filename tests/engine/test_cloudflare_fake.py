"""The local Cloudflare API fake (engine/cloudflare_fake.py) and the cloudflare stand-in provider's
operations against it (engine/standin/cloudflare.py), in process, on loopback: no network, no engine."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import cloudflare_fake
from engine.cloudflare_fake import FakeCloudflare, start_fake
from engine.standin import cloudflare as standin
from engine.standin.provider import ProviderError

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-api-token-5b1e9c"
READ_TOKEN = "test-read-token-77aa02"
ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
ZONE = "9a7806061c88ada191ed06f989cc3dac"
OTHER_ACCOUNT = "ffffffffffffffffffffffffffffffff"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")

TUNNEL = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
RECORD = "cloudflare:index/dnsRecord:DnsRecord"
POLICY = "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy"
SERVICE_TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"
APP = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
TOKEN_INVOKE = "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken"


@pytest.fixture
def fake() -> Iterator[FakeCloudflare]:
    with start_fake({TOKEN}, read_tokens={READ_TOKEN}) as running:
        yield running


def call(
    fake: FakeCloudflare,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = TOKEN,
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(fake.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def ok(fake: FakeCloudflare, method: str, path: str, body: Any = None) -> Any:
    status, envelope = call(fake, method, path, body)
    assert status == 200, envelope
    assert envelope["success"] is True and envelope["errors"] == [] and envelope["messages"] == []
    return envelope["result"]


def refused(
    fake: FakeCloudflare, method: str, path: str, body: Any = None, **kw: Any
) -> tuple[int, list[dict[str, Any]]]:
    status, envelope = call(fake, method, path, body, **kw)
    assert envelope["success"] is False and envelope["result"] is None, envelope
    return status, envelope["errors"]


def messages(errors: list[dict[str, Any]]) -> str:
    return " | ".join(e["message"] for e in errors)


def tunnel(fake: FakeCloudflare, name: str = "hello-staging") -> dict[str, Any]:
    return ok(fake, "POST", f"/accounts/{ACCOUNT}/cfd_tunnel", {"name": name, "config_src": "cloudflare"})


def cname(name: str, target: str) -> dict[str, Any]:
    return {"name": name, "type": "CNAME", "content": target, "proxied": True, "ttl": 1, "comment": "hello (staging)"}


INGRESS = {
    "config": {
        "ingress": [
            {"hostname": "hello.example.com", "service": "http://hello.hello-staging.svc.cluster.local:80"},
            {"service": "http_status:404"},
        ]
    },
    "source": "cloudflare",
}


# -- the fake: envelope, identifiers ---------------------------------------------------------------


def test_envelope_ids_and_lists(fake: FakeCloudflare) -> None:
    created = tunnel(fake)
    assert UUID.match(created["id"])
    assert created["account_tag"] == ACCOUNT and created["config_src"] == "cloudflare" and created["deleted_at"] is None
    assert created["remote_config"] is True and created["tun_type"] == "cfd_tunnel"

    record = ok(
        fake, "POST", f"/zones/{ZONE}/dns_records", cname("hello.example.com", f"{created['id']}.cfargotunnel.com")
    )
    assert HEX32.match(record["id"]) and record["proxiable"] is True and record["ttl"] == 1
    assert record["created_on"] and record["comment_modified_on"]

    status, listed = call(fake, "GET", f"/zones/{ZONE}/dns_records?name=hello.example.com&type=CNAME")
    assert status == 200 and [r["id"] for r in listed["result"]] == [record["id"]]
    assert listed["result_info"] == {"page": 1, "per_page": 100, "count": 1, "total_count": 1, "total_pages": 1}

    token = ok(fake, "POST", f"/accounts/{ACCOUNT}/access/service_tokens", {"name": "automation", "duration": "8760h"})
    assert UUID.match(token["id"]) and re.match(r"^[0-9a-f]{32}\.access$", token["client_id"])
    assert re.match(r"^[0-9a-f]{64}$", token["client_secret"]) and token["expires_at"]
    assert "client_secret" not in ok(fake, "GET", f"/accounts/{ACCOUNT}/access/service_tokens/{token['id']}")

    policy = ok(
        fake,
        "POST",
        f"/accounts/{ACCOUNT}/access/policies",
        {"name": "people", "decision": "allow", "include": [{"email": {"email": "ana@example.com"}}]},
    )
    assert UUID.match(policy["id"]) and policy["reusable"] is True and policy["session_duration"] == "24h"
    assert policy["app_count"] == 0

    app = ok(
        fake,
        "POST",
        f"/accounts/{ACCOUNT}/access/apps",
        {
            "name": "hello (staging)",
            "type": "self_hosted",
            "domain": "hello.example.com",
            "destinations": [{"type": "public", "uri": "hello.example.com"}],
            "policies": [{"id": policy["id"], "precedence": 1}],
            "app_launcher_visible": False,
        },
    )
    assert UUID.match(app["id"]) and re.match(r"^[0-9a-f]{64}$", app["aud"])
    assert app["policies"][0]["id"] == policy["id"] and app["policies"][0]["precedence"] == 1
    assert ok(fake, "GET", f"/accounts/{ACCOUNT}/access/policies/{policy['id']}")["app_count"] == 1


def test_tunnel_configuration_versions_and_token(fake: FakeCloudflare) -> None:
    created = tunnel(fake)
    base = f"/accounts/{ACCOUNT}/cfd_tunnel/{created['id']}"
    assert ok(fake, "GET", f"{base}/configurations")["version"] == 0
    first = ok(fake, "PUT", f"{base}/configurations", INGRESS)
    assert first["version"] == 1 and first["tunnel_id"] == created["id"] and first["source"] == "cloudflare"
    assert ok(fake, "PUT", f"{base}/configurations", INGRESS)["version"] == 2
    assert ok(fake, "GET", f"{base}/configurations")["config"] == INGRESS["config"]

    token = ok(fake, "GET", f"{base}/token")
    decoded = json.loads(base64.b64decode(token))
    assert decoded["a"] == ACCOUNT and decoded["t"] == created["id"]
    assert len(base64.b64decode(decoded["s"])) >= 32
    assert decoded["s"] not in json.dumps(fake.state()), "the tunnel secret shows in the fake's state"


def test_tunnel_soft_delete(fake: FakeCloudflare) -> None:
    created = tunnel(fake)
    path = f"/accounts/{ACCOUNT}/cfd_tunnel/{created['id']}"
    deleted = ok(fake, "DELETE", path)
    assert deleted["deleted_at"]
    assert ok(fake, "GET", path)["deleted_at"] == deleted["deleted_at"]  # Cloudflare still answers it
    state = fake.state()
    assert state["tunnels"] == [] and [t["id"] for t in state["deleted_tunnels"]] == [created["id"]]
    status, errors = refused(fake, "GET", f"{path}/token")
    assert status == 404 and errors[0]["code"] == 1003
    assert ok(fake, "GET", f"/accounts/{ACCOUNT}/cfd_tunnel?is_deleted=false") == []
    tunnel(fake)  # the name is free again


# -- the fake: validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "code"),
    [
        (f"/zones/{ZONE}/dns_records", {**cname("a.example.com", "b.example.com"), "ttl": 5}, "ttl", 1004),
        (f"/zones/{ZONE}/dns_records", {**cname("a.example.com", "b.example.com"), "type": "CNAMEX"}, "type", 1004),
        (f"/zones/{ZONE}/dns_records", {"type": "CNAME", "content": "b.example.com", "ttl": 1}, "name", 1004),
        (f"/zones/{ZONE}/dns_records", {**cname("a.example.com", "b.example.com"), "proxy": True}, "proxy", 1004),
        (f"/zones/{ZONE}/dns_records", {**cname("a.example.com", "b.example.com"), "proxied": "yes"}, "proxied", 1004),
        (
            f"/zones/{ZONE}/dns_records",
            {"name": "a.example.com", "type": "A", "content": "b.c", "ttl": 1},
            "content",
            1004,
        ),
        (f"/accounts/{ACCOUNT}/cfd_tunnel", {"name": "x", "config_src": "remote"}, "config_src", 1001),
        (f"/accounts/{ACCOUNT}/cfd_tunnel", {"config_src": "cloudflare"}, "name", 1001),
        (f"/accounts/{ACCOUNT}/cfd_tunnel", {"name": "x", "tunnel_secret": "c2hvcnQ="}, "tunnel_secret", 1001),
        (
            f"/accounts/{ACCOUNT}/access/policies",
            {"name": "p", "decision": "permit", "include": [{"everyone": {}}]},
            "decision",
            12000,
        ),
        (
            f"/accounts/{ACCOUNT}/access/policies",
            {"name": "p", "decision": "allow", "include": [{"email": {"email": "not-an-email"}}]},
            "include.0.email.email",
            12000,
        ),
        (
            f"/accounts/{ACCOUNT}/access/policies",
            {"name": "p", "decision": "allow", "include": [{"emailDomain": {"domain": "example.com"}}]},
            "include.0.emailDomain",
            12000,
        ),
        (
            f"/accounts/{ACCOUNT}/access/policies",
            {"name": "p", "decision": "allow", "include": [{"everyone": {}}], "session_duration": "1 day"},
            "session_duration",
            12000,
        ),
        (
            f"/accounts/{ACCOUNT}/access/policies",
            {"name": "p", "decision": "non_identity", "include": [{"service_token": {"token_id": "nope"}}]},
            "include.0.service_token.token_id",
            12000,
        ),
        (f"/accounts/{ACCOUNT}/access/service_tokens", {"name": "t", "duration": "a year"}, "duration", 12000),
        (f"/accounts/{ACCOUNT}/access/apps", {"type": "self_hosting", "domain": "a.example.com"}, "type", 12000),
        (
            f"/accounts/{ACCOUNT}/access/apps",
            {"type": "self_hosted", "domain": "a.example.com", "policies": [{"id": "missing", "precedence": 1}]},
            "policies.0.id",
            12000,
        ),
        (
            f"/accounts/{ACCOUNT}/access/apps",
            {"type": "self_hosted", "destinations": [{"type": "public", "uri": "https://a.example.com"}]},
            "destinations.0.uri",
            12000,
        ),
    ],
)
def test_bodies_are_validated_naming_the_field(
    fake: FakeCloudflare, path: str, body: dict[str, Any], field: str, code: int
) -> None:
    status, errors = refused(fake, "POST", path, body)
    assert status == 400
    assert errors[0]["code"] == code
    assert any(e["message"].startswith(f"{field}:") for e in errors), messages(errors)
    assert any(e["source"]["pointer"] == "/" + field.replace(".", "/") for e in errors), errors


CATCH_ALL = {"service": "http_status:404"}


@pytest.mark.parametrize(
    ("ingress", "field"),
    [
        ([{"hostname": "a.example.com", "service": "localhost:8080"}, CATCH_ALL], "config.ingress.0.service"),
        ([{"hostname": "a.example.com", "service": "http://a:80"}], "config.ingress.0"),
        ([{"service": "http://a:80"}, CATCH_ALL], "config.ingress.0.hostname"),
        ([], "config.ingress"),
        (
            [
                {"hostname": "a.example.com", "service": "http://a:80", "originRequest": {"noTlsVerify": True}},
                CATCH_ALL,
            ],
            "config.ingress.0.originRequest.noTlsVerify",
        ),
    ],
)
def test_ingress_rules_are_validated(fake: FakeCloudflare, ingress: list[dict[str, Any]], field: str) -> None:
    created = tunnel(fake)
    status, errors = refused(
        fake, "PUT", f"/accounts/{ACCOUNT}/cfd_tunnel/{created['id']}/configurations", {"config": {"ingress": ingress}}
    )
    assert status == 400 and errors[0]["code"] == 1001
    assert any(e["message"].startswith(f"{field}:") for e in errors), messages(errors)


def test_patch_takes_only_the_edit_fields(fake: FakeCloudflare) -> None:
    created = tunnel(fake)
    path = f"/accounts/{ACCOUNT}/cfd_tunnel/{created['id']}"
    status, errors = refused(fake, "PATCH", path, {"config_src": "local"})
    assert status == 400 and errors[0]["message"].startswith("config_src: unknown field")
    assert ok(fake, "PATCH", path, {"name": "renamed"})["name"] == "renamed"


def test_malformed_json_and_unknown_routes(fake: FakeCloudflare) -> None:
    status, errors = refused(fake, "POST", f"/accounts/{ACCOUNT}/cfd_tunnel", raw=b"{not json")
    assert (status, errors[0]["code"]) == (400, 6007)
    status, errors = refused(fake, "GET", f"/accounts/{ACCOUNT}/workers")
    assert (status, errors[0]["code"]) == (404, 7000)
    status, errors = refused(fake, "GET", "/accounts/not-an-account/cfd_tunnel")
    assert status == 404 and [e["code"] for e in errors] == [7003, 7000]
    status, errors = refused(fake, "POST", f"/zones/{ZONE}/dns_records/{'0' * 32}", {})
    assert (status, errors[0]["code"]) == (405, 10405)


# -- the fake: conflicts, not found, auth ----------------------------------------------------------


def test_conflicts(fake: FakeCloudflare) -> None:
    tunnel(fake)
    status, errors = refused(fake, "POST", f"/accounts/{ACCOUNT}/cfd_tunnel", {"name": "hello-staging"})
    assert (status, errors[0]["code"]) == (409, 1013)
    ok(fake, "POST", f"/accounts/{OTHER_ACCOUNT}/cfd_tunnel", {"name": "hello-staging"})  # another account's

    records = f"/zones/{ZONE}/dns_records"
    ok(fake, "POST", records, {"name": "a.example.com", "type": "A", "content": "192.0.2.1", "ttl": 300})
    status, errors = refused(fake, "POST", records, cname("a.example.com", "t.cfargotunnel.com"))
    assert (status, errors[0]["code"]) == (400, 81053)
    ok(fake, "POST", records, cname("b.example.com", "t.cfargotunnel.com"))
    status, errors = refused(
        fake, "POST", records, {"name": "b.example.com", "type": "A", "content": "192.0.2.1", "ttl": 1}
    )
    assert (status, errors[0]["code"]) == (400, 81054)
    status, errors = refused(
        fake, "POST", records, {"name": "a.example.com", "type": "A", "content": "192.0.2.1", "ttl": 60}
    )
    assert (status, errors[0]["code"]) == (400, 81058)


def test_record_put_and_patch(fake: FakeCloudflare) -> None:
    records = f"/zones/{ZONE}/dns_records"
    record = ok(fake, "POST", records, cname("a.example.com", "t1.cfargotunnel.com"))
    patched = ok(fake, "PATCH", f"{records}/{record['id']}", {"content": "t2.cfargotunnel.com"})
    assert (
        patched["content"] == "t2.cfargotunnel.com" and patched["comment"] == "hello (staging)" and patched["proxied"]
    )
    assert patched["created_on"] == record["created_on"]
    status, errors = refused(fake, "PUT", f"{records}/{record['id']}", {"content": "t3.cfargotunnel.com"})
    assert status == 400 and {e["message"] for e in errors} >= {"name: required", "type: required", "ttl: required"}
    put = ok(
        fake, "PUT", f"{records}/{record['id']}", {**cname("a.example.com", "t3.cfargotunnel.com"), "proxied": False}
    )
    assert put["id"] == record["id"] and put["content"] == "t3.cfargotunnel.com" and put["proxied"] is False


def test_known_zones_complete_names_and_refuse_others() -> None:
    with start_fake({TOKEN}, zones={ZONE: "example.com"}, accounts=[ACCOUNT]) as fake:
        record = ok(fake, "POST", f"/zones/{ZONE}/dns_records", cname("hello", "t.cfargotunnel.com"))
        assert record["name"] == "hello.example.com"
        status, errors = refused(fake, "GET", f"/zones/{'2' * 32}/dns_records")
        assert (status, errors[0]["code"]) == (404, 7003)
        status, errors = refused(fake, "GET", f"/accounts/{OTHER_ACCOUNT}/cfd_tunnel")
        assert (status, errors[0]["code"]) == (404, 7003)


def test_policy_in_use_cannot_be_deleted(fake: FakeCloudflare) -> None:
    everyone = {"name": "p", "decision": "allow", "include": [{"everyone": {}}]}
    policy = ok(fake, "POST", f"/accounts/{ACCOUNT}/access/policies", everyone)
    app = ok(
        fake,
        "POST",
        f"/accounts/{ACCOUNT}/access/apps",
        {"type": "self_hosted", "domain": "a.example.com", "policies": [{"id": policy["id"], "precedence": 1}]},
    )
    status, errors = refused(fake, "DELETE", f"/accounts/{ACCOUNT}/access/policies/{policy['id']}")
    assert status == 400 and app["id"] in errors[0]["message"]
    ok(fake, "DELETE", f"/accounts/{ACCOUNT}/access/apps/{app['id']}")
    assert ok(fake, "DELETE", f"/accounts/{ACCOUNT}/access/policies/{policy['id']}") == {"id": policy["id"]}


@pytest.mark.parametrize(
    ("path", "code"),
    [
        (f"/accounts/{ACCOUNT}/cfd_tunnel/5f2ea2a4-0b0b-4b0b-8b0b-0b0b0b0b0b0b", 1003),
        (f"/accounts/{ACCOUNT}/cfd_tunnel/5f2ea2a4-0b0b-4b0b-8b0b-0b0b0b0b0b0b/configurations", 1003),
        (f"/zones/{ZONE}/dns_records/{'0' * 32}", 81044),
        (f"/accounts/{ACCOUNT}/access/policies/5f2ea2a4-0b0b-4b0b-8b0b-0b0b0b0b0b0b", 12130),
        (f"/accounts/{ACCOUNT}/access/service_tokens/5f2ea2a4-0b0b-4b0b-8b0b-0b0b0b0b0b0b", 12130),
        (f"/accounts/{ACCOUNT}/access/apps/5f2ea2a4-0b0b-4b0b-8b0b-0b0b0b0b0b0b", 12130),
    ],
)
def test_not_found(fake: FakeCloudflare, path: str, code: int) -> None:
    status, errors = refused(fake, "GET", path)
    assert (status, errors[0]["code"]) == (404, code)


def test_another_accounts_objects_are_not_found(fake: FakeCloudflare) -> None:
    created = tunnel(fake)
    status, errors = refused(fake, "GET", f"/accounts/{OTHER_ACCOUNT}/cfd_tunnel/{created['id']}")
    assert (status, errors[0]["code"]) == (404, 1003)


def test_auth(fake: FakeCloudflare) -> None:
    path = f"/accounts/{ACCOUNT}/cfd_tunnel"
    status, errors = refused(fake, "GET", path, token=None)
    assert (status, errors[0]["code"]) == (401, 9106)
    status, errors = refused(fake, "GET", path, token="wrong")
    assert (status, errors[0]["code"]) == (403, 9109)
    created = tunnel(fake)
    status, envelope = call(fake, "GET", path, token=READ_TOKEN)
    assert status == 200 and [t["id"] for t in envelope["result"]] == [created["id"]]
    status, errors = refused(fake, "POST", path, {"name": "other"}, token=READ_TOKEN)
    assert (status, errors[0]["code"]) == (403, 10000)
    status, errors = refused(fake, "GET", f"{path}/{created['id']}/token", token=READ_TOKEN)
    assert (status, errors[0]["code"]) == (403, 10000)
    assert [r["status"] for r in fake.state()["requests"]] == [401, 403, 200, 200, 403, 403]


def test_state_endpoint_reset_and_no_secrets(fake: FakeCloudflare) -> None:
    tunnel(fake)
    secret = ok(fake, "POST", f"/accounts/{ACCOUNT}/access/service_tokens", {"name": "t"})["client_secret"]
    with urllib.request.urlopen(fake.root + "/__fake/state", timeout=10) as response:
        state = json.loads(response.read())
    assert [t["name"] for t in state["tunnels"]] == ["hello-staging"]
    kinds = ("tunnels", "deleted_tunnels", "dns_records", "access_policies", "access_service_tokens", "access_apps")
    assert set(state) == {*kinds, "requests"}
    text = json.dumps(state)
    assert TOKEN not in text and secret not in text
    reset = urllib.request.Request(fake.root + "/__fake/reset", method="POST")
    with urllib.request.urlopen(reset, timeout=10) as response:
        assert json.loads(response.read()) == {"success": True}
    assert fake.state()["tunnels"] == [] and fake.state()["requests"] == []


def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKEN}\n")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "engine" / "cloudflare_fake.py"), "--port", "0", "--token-file", str(tokens)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert re.match(r"^http://127\.0\.0\.1:\d+/client/v4$", url)
        request = urllib.request.Request(
            f"{url}/accounts/{ACCOUNT}/cfd_tunnel", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["success"] is True
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- the stand-in's operations, in process ------------------------------------------------------------


@pytest.fixture
def config(fake: FakeCloudflare) -> dict[str, Any]:
    return {"baseUrl": fake.url, "apiToken": TOKEN}


def kind(token: str) -> standin.Kind:
    return standin.PACKAGE.kinds[token]


def exposure(config: dict[str, Any]) -> dict[str, Any]:
    """What the Exposure registers, in its order, through the stand-in's operations (camelCase inputs)."""
    tunnel_id, tunnel_out = kind(TUNNEL).create(
        config, {"accountId": ACCOUNT, "name": "hello-staging", "configSrc": "cloudflare"}
    )
    config_inputs = {
        "accountId": ACCOUNT,
        "tunnelId": tunnel_id,
        "source": "cloudflare",
        "config": {
            "ingresses": [
                {
                    "hostname": "hello.example.com",
                    "service": "http://hello.svc",
                    "originRequest": {"noTlsVerify": True},
                },
                CATCH_ALL,
            ]
        },
    }
    config_id, config_out = kind(CONFIG).create(config, config_inputs)
    record_inputs = {
        "zoneId": ZONE,
        "name": "hello.example.com",
        "type": "CNAME",
        "content": f"{tunnel_id}.cfargotunnel.com",
        "proxied": True,
        "ttl": 1.0,  # the engine's numbers are doubles
        "comment": "hello (staging) through Cloudflare Tunnel",
    }
    record_id, record_out = kind(RECORD).create(config, record_inputs)
    people_inputs = {
        "accountId": ACCOUNT,
        "name": "hello-staging allowed people",
        "decision": "allow",
        "includes": [{"email": {"email": "ana@example.com"}}, {"emailDomain": {"domain": "example.com"}}],
        "sessionDuration": "24h",
    }
    people_id, _ = kind(POLICY).create(config, people_inputs)
    token_inputs = {"accountId": ACCOUNT, "name": "hello-staging automation", "duration": "8760h"}
    token_id, token_out = kind(SERVICE_TOKEN).create(config, token_inputs)
    machines_id, _ = kind(POLICY).create(
        config,
        {
            "accountId": ACCOUNT,
            "name": "hello-staging automation token",
            "decision": "non_identity",
            "includes": [{"serviceToken": {"tokenId": token_id}}],
        },
    )
    app_inputs = {
        "accountId": ACCOUNT,
        "name": "hello (staging)",
        "type": "self_hosted",
        "domain": "hello.example.com",
        "destinations": [{"type": "public", "uri": "hello.example.com"}],
        "sessionDuration": "24h",
        "appLauncherVisible": False,
        "policies": [{"id": people_id, "precedence": 1.0}, {"id": machines_id, "precedence": 2.0}],
    }
    app_id, app_out = kind(APP).create(config, app_inputs)
    return {
        "tunnel": (tunnel_id, tunnel_out),
        "config": (config_id, config_out, config_inputs),
        "record": (record_id, record_out, record_inputs),
        "people": people_id,
        "machines": machines_id,
        "token": (token_id, token_out, token_inputs),
        "app": (app_id, app_out, app_inputs),
    }


def test_standin_creates_what_the_exposure_registers(fake: FakeCloudflare, config: dict[str, Any]) -> None:
    made = exposure(config)
    state = fake.state()

    tunnel_id, tunnel_out = made["tunnel"]
    assert [t["id"] for t in state["tunnels"]] == [tunnel_id]
    assert (
        tunnel_out["configSrc"] == "cloudflare"
        and tunnel_out["status"] == "inactive"
        and tunnel_out["accountTag"] == ACCOUNT
    )
    configuration = state["tunnels"][0]["configuration"]
    assert configuration["config"]["ingress"][0]["originRequest"] == {"noTLSVerify": True}
    assert configuration["config"]["ingress"][1] == {"service": "http_status:404"}
    config_id, config_out, _ = made["config"]
    assert config_id == tunnel_id and config_out["version"] == 1

    record_id, record_out, _ = made["record"]
    [record] = state["dns_records"]
    assert record["id"] == record_id and record["ttl"] == 1 and record["zone_id"] == ZONE
    assert record_out["proxiable"] is True and json.loads(record_out["meta"]) == {} and record_out["createdOn"]

    [people] = [p for p in state["access_policies"] if p["id"] == made["people"]]
    assert people["include"] == [{"email": {"email": "ana@example.com"}}, {"email_domain": {"domain": "example.com"}}]
    [machines] = [p for p in state["access_policies"] if p["id"] == made["machines"]]
    token_id, token_out, _ = made["token"]
    assert machines["include"] == [{"service_token": {"token_id": token_id}}]
    assert machines["session_duration"] == "24h"  # the provider's default, sent
    assert token_out["clientId"].endswith(".access") and len(token_out["clientSecret"]) == 64

    app_id, app_out, _ = made["app"]
    [app] = state["access_apps"]
    assert app["id"] == app_id and app["app_launcher_visible"] is False
    assert [(p["id"], p["precedence"]) for p in app["policies"]] == [(made["people"], 1), (made["machines"], 2)]
    assert app_out["aud"] == app["aud"]

    result = standin.PACKAGE.invokes[TOKEN_INVOKE](config, {"accountId": ACCOUNT, "tunnelId": tunnel_id})
    assert set(result) == {"accountId", "tunnelId", "token"}
    assert json.loads(base64.b64decode(result["token"]))["t"] == tunnel_id


def test_standin_reads_updates_and_deletes(fake: FakeCloudflare, config: dict[str, Any]) -> None:
    made = exposure(config)
    record_id, record_out, record_inputs = made["record"]
    record_state = {**record_inputs, **record_out}
    assert kind(RECORD).read(config, record_id, record_state)["content"] == record_inputs["content"]
    updated = kind(RECORD).update(config, record_id, record_state, {**record_inputs, "comment": "changed"})
    assert updated["comment"] == "changed" and fake.state()["dns_records"][0]["comment"] == "changed"
    kind(RECORD).delete(config, record_id, record_state)
    assert fake.state()["dns_records"] == []
    assert kind(RECORD).read(config, record_id, record_state) is None
    kind(RECORD).delete(config, record_id, record_state)  # already gone: no error

    token_id, token_out, token_inputs = made["token"]
    token_state = {**token_inputs, **token_out}
    read = kind(SERVICE_TOKEN).read(config, token_id, token_state)
    assert read["clientSecret"] == token_out["clientSecret"]  # kept from state: Cloudflare answers it once

    app_id, app_out, app_inputs = made["app"]
    app_state = {**app_inputs, **app_out}
    kind(APP).delete(config, app_id, app_state)
    assert kind(APP).read(config, app_id, app_state) is None
    policy_state = {"accountId": ACCOUNT}
    kind(POLICY).delete(config, made["people"], policy_state)
    assert kind(POLICY).read(config, made["people"], policy_state) is None

    tunnel_id, tunnel_out = made["tunnel"]
    tunnel_state = {"accountId": ACCOUNT, "name": "hello-staging", "configSrc": "cloudflare", **tunnel_out}
    renamed = kind(TUNNEL).update(config, tunnel_id, tunnel_state, {**tunnel_state, "name": "hello-staging-2"})
    assert renamed["name"] == "hello-staging-2" and renamed["configSrc"] == "cloudflare"
    kind(TUNNEL).delete(config, tunnel_id, tunnel_state)
    state = fake.state()
    assert state["tunnels"] == [] and [t["id"] for t in state["deleted_tunnels"]] == [tunnel_id]
    assert kind(TUNNEL).read(config, tunnel_id, tunnel_state) is None  # soft-deleted: gone for refresh
    _, _, config_inputs = made["config"]
    assert kind(CONFIG).read(config, tunnel_id, config_inputs) is None


def test_standin_failures_name_the_field_and_hide_the_token(fake: FakeCloudflare, config: dict[str, Any]) -> None:
    with pytest.raises(ProviderError) as raised:
        kind(RECORD).create(config, {"zoneId": ZONE, "name": "a.example.com", "type": "CNAME", "ttl": 5.0})
    assert "HTTP 400" in str(raised.value) and "ttl:" in str(raised.value) and TOKEN not in str(raised.value)
    kind(TUNNEL).create(config, {"accountId": ACCOUNT, "name": "hello-staging", "configSrc": "cloudflare"})
    with pytest.raises(ProviderError, match="1013"):
        kind(TUNNEL).create(config, {"accountId": ACCOUNT, "name": "hello-staging", "configSrc": "cloudflare"})
    with pytest.raises(ProviderError, match="9109"):
        kind(TUNNEL).create({**config, "apiToken": "wrong"}, {"accountId": ACCOUNT, "name": "x"})


def test_standin_never_calls_the_real_cloudflare(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDFLARE_BASE_URL", raising=False)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    with pytest.raises(ProviderError, match="CLOUDFLARE_BASE_URL"):
        kind(TUNNEL).create({}, {"accountId": ACCOUNT, "name": "x"})
    for url in ("https://api.cloudflare.com/client/v4", "https://API.Cloudflare.com/client/v4/"):
        with pytest.raises(ProviderError, match="refuses"):
            kind(TUNNEL).create({"baseUrl": url}, {"accountId": ACCOUNT, "name": "x"})


def test_standin_reads_its_settings_from_the_environment(fake: FakeCloudflare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDFLARE_BASE_URL", fake.url)
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN)
    tunnel_id, _ = kind(TUNNEL).create({}, {"accountId": ACCOUNT, "name": "from-env"})
    assert fake.state()["tunnels"][0]["id"] == tunnel_id
    assert fake.state()["tunnels"][0]["config_src"] == "local"  # Cloudflare's default when unset


def test_standin_plan_time_checks_and_replacements() -> None:
    assert kind(RECORD).check({"type": "BOGUS"}) == ["type: 'BOGUS' is not one of " + ", ".join(standin.DNS_TYPES)]
    assert kind(RECORD).check({"type": "cname"}) == []  # OneOfCaseInsensitive
    assert kind(POLICY).check({"decision": "permit"})
    assert kind(SERVICE_TOKEN).check({"name": "t"}) == ["exactly one of accountId and zoneId is required"]
    assert kind(TUNNEL).replace_on == ("accountId", "configSrc")
    assert "name" not in kind(TUNNEL).replace_on
    assert kind(RECORD).replace_on == ("zoneId", "type")
    assert "aud" in kind(APP).computed and "clientSecret" in kind(SERVICE_TOKEN).computed


def test_launcher_serves_the_plugin_protocol(fake: FakeCloudflare) -> None:
    """The launcher as the engine starts it, over gRPC: configure, check, preview, create, diff, read, invoke."""
    import grpc
    from google.protobuf import empty_pb2, struct_pb2
    from google.protobuf.json_format import MessageToDict
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    from engine.standin.provider import UNKNOWN

    def struct(values: dict[str, Any]) -> struct_pb2.Struct:
        message = struct_pb2.Struct()
        message.update(values)
        return message

    launcher = REPO / "engine" / "standin" / "bin" / "pulumi-resource-cloudflare"
    assert os.access(launcher, os.X_OK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    process = subprocess.Popen(
        [str(launcher)], stdout=subprocess.PIPE, text=True, env={**env, "SERVICE_LIFECYCLE_VENV": sys.prefix}
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            assert stub.GetPluginInfo(empty_pb2.Empty(), timeout=10).version == "6.23.1"
            stub.Configure(provider_pb2.ConfigureRequest(args=struct({"apiToken": TOKEN, "baseUrl": fake.url})))

            urn = "urn:pulumi:staging::service-lifecycle::service-lifecycle:index:Exposure$" + TUNNEL + "::hello-tunnel"
            inputs = {"accountId": ACCOUNT, "name": "hello-staging", "configSrc": "cloudflare"}
            assert not stub.Check(provider_pb2.CheckRequest(urn=urn, news=struct(inputs))).failures
            wrong = stub.Check(provider_pb2.CheckRequest(urn=urn, news=struct({**inputs, "configSource": "x"})))
            assert [f.property for f in wrong.failures] == ["configSource"]
            preview = stub.Create(provider_pb2.CreateRequest(urn=urn, properties=struct(inputs), preview=True))
            assert MessageToDict(preview.properties)["accountTag"] == UNKNOWN
            created = stub.Create(provider_pb2.CreateRequest(urn=urn, properties=struct(inputs)))
            assert fake.state()["tunnels"][0]["id"] == created.id
            diff = stub.Diff(
                provider_pb2.DiffRequest(
                    urn=urn, id=created.id, olds=created.properties, old_inputs=struct(inputs),
                    news=struct({**inputs, "configSrc": "local"}),
                )
            )  # fmt: skip
            assert list(diff.replaces) == ["configSrc"]
            token = stub.Invoke(
                provider_pb2.InvokeRequest(
                    tok=TOKEN_INVOKE, args=struct({"accountId": ACCOUNT, "tunnelId": created.id})
                )
            )
            assert sorted(MessageToDict(token)["return"]) == ["accountId", "token", "tunnelId"]
            stub.Delete(provider_pb2.DeleteRequest(urn=urn, id=created.id, properties=created.properties))
            read = stub.Read(provider_pb2.ReadRequest(urn=urn, id=created.id, properties=created.properties))
            assert read.id == ""  # gone: refresh drops it
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_module_constants_match_the_fake() -> None:
    # The stand-in's plan-time enums are the fake's (both written from cloudflare-go's types).
    assert standin.DNS_TYPES == cloudflare_fake.DNS_TYPES
    assert standin.APP_TYPES == cloudflare_fake.APP_TYPES

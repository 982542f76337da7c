"""A local fake of the Cloudflare v4 API: the endpoints the Exposure component's resources use.

The stand-in cloudflare provider (engine/standin/cloudflare.py) calls it where the real provider
(terraform-provider-cloudflare v5 on github.com/cloudflare/cloudflare-go/v6) calls
``https://api.cloudflare.com/client/v4``. Paths, request fields and response shapes are written
from cloudflare-go v6.10.0's typed params and results; each handler names its file:

- tunnels: ``zero_trust/tunnelcloudflared.go`` (``/accounts/{account_id}/cfd_tunnel[/{tunnel_id}]``),
  configurations ``zero_trust/tunnelcloudflaredconfiguration.go`` (``…/{tunnel_id}/configurations``),
  token ``zero_trust/tunnelcloudflaredtoken.go`` (``…/{tunnel_id}/token``);
- DNS records: ``dns/record.go`` (``/zones/{zone_id}/dns_records[/{dns_record_id}]``);
- Access: reusable policies ``zero_trust/accesspolicy.go`` (``/accounts/{account_id}/access/policies``),
  service tokens ``zero_trust/accessservicetoken.go`` and applications ``zero_trust/accessapplication.go``
  (``/{accounts|zones}/{id}/access/service_tokens`` and ``…/access/apps``).

Every answer is Cloudflare's envelope ``{"success", "errors": [{"code", "message"}], "messages",
"result"}`` (``result_info`` on lists). Every request body is checked against a schema written from
those types (required and allowed fields, types, enums) and refused with 400, one error per problem,
naming the field in the message and in ``source.pointer``. Answers other than success (status, code;
"seen" marks Cloudflare's own answers, "chosen" the ones this fake picked without a published source):

- no ``Authorization: Bearer``: 401, 9106 (Cloudflare answers 400 with this code);
- unknown token: 403, 9109 "Invalid access token";
- a read-only token writing, or asking a tunnel's token (which needs Cloudflare Tunnel Write):
  403, 10000 "Authentication error" (seen: a token without the permission);
- malformed JSON body: 400, 6007; unknown path: 404, 7000 "No route for that URI";
  malformed (or, when the fake is given a list, unknown) account or zone identifier: 404, 7003
  "Could not route to …, perhaps your object identifier is invalid?" (seen); a method the path does
  not take: 405, 10405 (chosen);
- tunnels: name taken by a live tunnel of the account: 409, 1013 (seen); not found: 404, 1003 (chosen);
  invalid request: 400, 1001 (chosen);
- DNS: record not found: 404, 81044 "Record does not exist." (recalled, not confirmed); a CNAME on a
  name that has an A, AAAA or CNAME record: 400, 81053 (seen); another record on a name that has a
  CNAME: 400, 81054 (seen); identical record: 400, 81058 (recalled); invalid request: 400, 1004
  "DNS Validation Error" style, with an ``error_chain``;
- Access: not found: 404, 12130 "access.api.error.not_found" (what Cloudflare clients expect);
  invalid request, a reference to a policy or service token that does not exist, deleting a policy
  an application uses: 400, 12000 (chosen).

State is in memory. ``GET /__fake/state`` shows it (tunnels with their configuration, soft-deleted
tunnels apart, DNS records, Access policies, service tokens and applications, and a log of requests
without bodies or secrets); ``POST /__fake/reset`` empties it. Neither needs a token.

Python: :func:`start_fake`. Command line (for ``make e2e``)::

    python engine/cloudflare_fake.py --port 0 --token-file TOKENS [--read-token-file TOKENS]
        [--account ID] [--zone ID=NAME]

prints the base URL (``http://127.0.0.1:PORT/client/v4``) and serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import ipaddress
import json
import re
import secrets
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_PREFIX = "/client/v4"
FAKE_PREFIX = "/__fake"

Json = Any
Problem = tuple[str, str]
"""(JSON pointer of the field, message naming it)."""

# -- error codes (see the module docstring) -------------------------------------------------------

AUTH_MISSING = (401, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")
AUTH_INVALID = (403, 9109, "Invalid access token")
AUTH_READ_ONLY = (403, 10000, "Authentication error")
MALFORMED_JSON = (400, 6007, "Malformed JSON in request body")
NO_ROUTE = (404, 7000, "No route for that URI")
BAD_IDENTIFIER_CODE = 7003
METHOD_NOT_ALLOWED = (405, 10405, "Method not allowed for this URI")
TUNNEL_NAME_TAKEN = (
    409,
    1013,
    "You already have a tunnel with this name. "
    "Delete the existing tunnel, or choose a different name for your new tunnel",
)
TUNNEL_NOT_FOUND = (404, 1003, "Tunnel not found")
TUNNEL_INVALID = 1001
DNS_NOT_FOUND = (404, 81044, "Record does not exist.")
DNS_CNAME_CONFLICT = (400, 81053, "An A, AAAA, or CNAME record with that host already exists.")
DNS_HAS_CNAME = (400, 81054, "A CNAME record with that host already exists.")
DNS_IDENTICAL = (400, 81058, "An identical record already exists.")
DNS_INVALID = 1004
ACCESS_NOT_FOUND = (404, 12130, "access.api.error.not_found")
ACCESS_INVALID = 12000

HEX32 = re.compile(r"^[0-9a-f]{32}$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
"""Go's time.ParseDuration syntax: what Access durations take (``24h``, ``2h45m``, ``300ms``)."""
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
INGRESS_SERVICE = re.compile(
    r"^((https?|unix|unix\+tls|tcp|ssh|rdp|smb)://\S+|unix:\S+|http_status:[1-5]\d\d|hello_world|bastion)$"
)
"""``service`` of an ingress rule (tunnelcloudflaredconfiguration.go: http://, https://, unix://, tcp://,
ssh://, rdp://, unix+tls://, smb:// or ``http_status:[code]``; cloudflared also has hello_world and bastion)."""


class ApiError(Exception):
    """An answer other than success: HTTP status and Cloudflare's error objects."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{e['code']}: {e['message']}" for e in errors))
        self.status = status
        self.errors = errors

    @classmethod
    def of(cls, answer: tuple[int, int, str], message: str | None = None) -> ApiError:
        status, code, text = answer
        return cls(status, [{"code": code, "message": message or text}])

    @classmethod
    def invalid(cls, code: int, problems: list[Problem], *, chain: int | None = None) -> ApiError:
        errors: list[dict[str, Any]] = []
        for pointer, message in problems:
            error: dict[str, Any] = {"code": code, "message": message, "source": {"pointer": pointer}}
            if chain is not None:
                error["error_chain"] = [{"code": chain, "message": message}]
            errors.append(error)
        return cls(400, errors)


# -- request schemas --------------------------------------------------------------------------------


@dataclass(frozen=True)
class F:
    """One field of a request body: JSON type, presence, allowed values and nested members."""

    kind: str
    """``string``, ``boolean``, ``integer``, ``number``, ``object``, ``array`` or ``any``."""
    required: bool = False
    enum: tuple[Any, ...] = ()
    fields: Mapping[str, F] | None = None
    """Members of an object; None allows any members."""
    items: F | None = None
    min_items: int = 0
    check: Callable[[Any], str | None] | None = None
    """Further check of a well-typed value: a reason it is wrong, or None."""
    nullable: bool = False


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    raise ValueError(kind)


SECRET_FIELDS = frozenset({"tunnel_secret", "client_secret"})
"""Fields whose values no error message repeats."""


def validate(value: Any, spec: F, pointer: str = "") -> list[Problem]:
    """Problems of ``value`` against ``spec``; field names are JSON pointers without the leading slash."""
    name = pointer.lstrip("/").replace("/", ".") or "body"
    if value is None:
        return [] if spec.nullable else [(pointer, f"{name}: must not be null")]
    if not _type_ok(spec.kind, value):
        shown = "" if pointer.rsplit("/", 1)[-1] in SECRET_FIELDS else " " + json.dumps(value)[:60]
        return [(pointer, f"{name}: expected {spec.kind}, got {type(value).__name__}{shown}")]
    if spec.enum and value not in spec.enum:
        allowed = ", ".join(json.dumps(v) for v in spec.enum)
        return [(pointer, f"{name}: {json.dumps(value)} is not one of {allowed}")]
    problems: list[Problem] = []
    if spec.kind == "object" and spec.fields is not None:
        for key in value:
            if key not in spec.fields:
                problems.append(
                    (
                        f"{pointer}/{key}",
                        f"{_join(name, key)}: unknown field (allowed: {', '.join(sorted(spec.fields))})",
                    )
                )
        for key, member in spec.fields.items():
            if key in value:
                problems += validate(value[key], member, f"{pointer}/{key}")
            elif member.required:
                problems.append((f"{pointer}/{key}", f"{_join(name, key)}: required"))
    if spec.kind == "array":
        if len(value) < spec.min_items:
            problems.append((pointer, f"{name}: at least {spec.min_items} item(s) required"))
        if spec.items is not None:
            for index, item in enumerate(value):
                problems += validate(item, spec.items, f"{pointer}/{index}")
    if not problems and spec.check is not None:
        reason = spec.check(value)
        if reason:
            problems.append((pointer, f"{name}: {reason}"))
    return problems


def _join(name: str, key: str) -> str:
    return key if name == "body" else f"{name}.{key}"


def obj(fields: Mapping[str, F] | None = None, **kw: Any) -> F:
    return F("object", fields=fields, **kw)


def arr(items: F | None = None, **kw: Any) -> F:
    return F("array", items=items, **kw)


def s(**kw: Any) -> F:
    return F("string", **kw)


def b(**kw: Any) -> F:
    return F("boolean", **kw)


def i(**kw: Any) -> F:
    return F("integer", **kw)


def n(**kw: Any) -> F:
    return F("number", **kw)


def _nonempty(value: str) -> str | None:
    return "must not be empty" if not value.strip() else None


def _duration(value: str) -> str | None:
    return None if GO_DURATION.match(value) else f"{value!r} is not a duration such as 24h, 30m or 2h45m"


def _rfc3339(value: str) -> str | None:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return f"{value!r} is not an RFC 3339 date-time"
    return None


def _tunnel_secret(value: str) -> str | None:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return "must be base64"
    return None if len(raw) >= 32 else f"must encode at least 32 bytes (got {len(raw)})"


def _ttl(value: float) -> str | None:
    if value == 1 or 30 <= value <= 86400:
        return None
    return f"{value:g} is not 1 (automatic) or between 30 and 86400 seconds"


def _email(value: str) -> str | None:
    return None if re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value) else f"{value!r} is not an email address"


def _domain_name(value: str) -> str | None:
    return None if _hostname_problem(value, wildcard=False) is None else f"{value!r} is not a domain"


def _hostname_problem(value: str, *, wildcard: bool) -> str | None:
    host = value.rstrip(".").lower()
    if not host or len(host) > 253:
        return f"{value!r} is not a host name"
    labels = host.split(".")
    for index, label in enumerate(labels):
        if label == "*" and wildcard and index == 0:
            continue
        if not HOST_LABEL.match(label):
            return f"{value!r} is not a host name (label {label!r})"
    return None


# -- tunnels: zero_trust/tunnelcloudflared.go, tunnelcloudflaredconfiguration.go -------------------

TUNNEL_NEW = obj(
    {
        "name": s(required=True, check=_nonempty),
        "config_src": s(enum=("local", "cloudflare")),
        "tunnel_secret": s(check=_tunnel_secret),
    }
)
"""TunnelCloudflaredNewParams."""
TUNNEL_EDIT = obj({"name": s(check=_nonempty), "tunnel_secret": s(check=_tunnel_secret)})
"""TunnelCloudflaredEditParams (PATCH)."""

_ORIGIN_ACCESS = obj({"audTag": arr(s(), required=True), "teamName": s(required=True), "required": b()})
ORIGIN_REQUEST = obj(
    {
        "access": _ORIGIN_ACCESS,
        "caPool": s(),
        "connectTimeout": i(),
        "disableChunkedEncoding": b(),
        "http2Origin": b(),
        "httpHostHeader": s(),
        "keepAliveConnections": i(),
        "keepAliveTimeout": i(),
        "matchSNItoHost": b(),
        "noHappyEyeballs": b(),
        "noTLSVerify": b(),
        "originServerName": s(),
        "proxyType": s(),
        "tcpKeepAlive": i(),
        "tlsTimeout": i(),
    }
)
"""TunnelCloudflaredConfigurationUpdateParamsConfigOriginRequest (camelCase on the wire, as cloudflared's)."""
INGRESS_RULE = obj(
    {
        "hostname": s(),
        "service": s(
            required=True,
            check=lambda v: None if INGRESS_SERVICE.match(v) else f"{v!r} is not an origin URL or http_status:NNN",
        ),
        "originRequest": ORIGIN_REQUEST,
        "path": s(),
    }
)
TUNNEL_CONFIGURATION_PUT = obj(
    {
        "config": obj(
            {"ingress": arr(INGRESS_RULE, required=True, min_items=1), "originRequest": ORIGIN_REQUEST},
            required=True,
        ),
        "source": s(enum=("local", "cloudflare")),
    }
)
"""TunnelCloudflaredConfigurationUpdateParams (PUT), plus ``source``, which the provider sends from its model."""


def _ingress_problems(rules: list[dict[str, Any]]) -> list[Problem]:
    """cloudflared's ingress rules: a hostname on every rule but the last, which must match everything."""
    problems: list[Problem] = []
    last = len(rules) - 1
    for index, rule in enumerate(rules):
        pointer = f"/config/ingress/{index}"
        hostname = rule.get("hostname") or ""
        if index < last:
            if not hostname or hostname == "*":
                problems.append(
                    (
                        f"{pointer}/hostname",
                        f"config.ingress.{index}.hostname: rule matches every URL but is not the last rule",
                    )
                )
            elif reason := _hostname_problem(hostname, wildcard=True):
                problems.append((f"{pointer}/hostname", f"config.ingress.{index}.hostname: {reason}"))
        elif hostname not in ("", "*") or rule.get("path"):
            problems.append(
                (
                    pointer,
                    f"config.ingress.{index}: the last ingress rule must match all URLs "
                    "(no hostname or path), e.g. service http_status:404",
                )
            )
    return problems


# -- DNS records: dns/record.go -------------------------------------------------------------------

DNS_TYPES = (
    "A", "AAAA", "CNAME", "MX", "NS", "OPENPGPKEY", "PTR", "TXT", "CAA", "CERT", "DNSKEY", "DS", "HTTPS", "LOC",
    "NAPTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "URI",
)  # fmt: skip
"""RecordNewParamsBodyType."""
PROXIABLE = ("A", "AAAA", "CNAME")
CONTENT_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "OPENPGPKEY", "PTR", "TXT")
"""Types whose value is ``content``; the others take ``data``."""


def _dns_record_fields(*, required: bool) -> dict[str, F]:
    return {
        "name": s(required=required, check=_nonempty),
        "type": s(required=required, enum=DNS_TYPES),
        "ttl": n(required=required, check=_ttl),
        "comment": s(),
        "content": s(),
        "data": obj(),
        "priority": n(check=lambda v: None if 0 <= v <= 65535 else f"{v:g} is not between 0 and 65535"),
        "private_routing": b(),
        "proxied": b(),
        "settings": obj({"ipv4_only": b(), "ipv6_only": b(), "flatten_cname": b()}),
        "tags": arr(s(check=lambda v: None if ":" in v else f"{v!r} is not name:value")),
    }


DNS_RECORD_NEW = obj(_dns_record_fields(required=True))
"""RecordNewParamsBody (POST) and RecordUpdateParamsBody (PUT): name, ttl and type are required."""
DNS_RECORD_EDIT = obj(_dns_record_fields(required=False))
"""RecordEditParamsBody (PATCH): any subset."""


def _dns_content_problems(record: dict[str, Any]) -> list[Problem]:
    kind, content, name = record["type"], record.get("content"), record["name"]
    problems: list[Problem] = []
    if reason := _hostname_problem(name, wildcard=True):
        problems.append(("/name", f"name: {reason}"))
    if kind in CONTENT_TYPES:
        if not content:
            problems.append(("/content", f"content: required for a {kind} record"))
        elif kind == "A" and not _is_ip(content, 4):
            problems.append(("/content", f"content: {content!r} is not an IPv4 address"))
        elif kind == "AAAA" and not _is_ip(content, 6):
            problems.append(("/content", f"content: {content!r} is not an IPv6 address"))
        elif kind in ("CNAME", "NS", "PTR", "MX") and (reason := _hostname_problem(content, wildcard=False)):
            problems.append(("/content", f"content: {reason}"))
        elif kind == "CNAME" and content.rstrip(".").lower() == name:
            problems.append(("/content", "content: a CNAME must not point at its own name"))
    elif not record.get("data"):
        problems.append(("/data", f"data: required for a {kind} record"))
    if kind == "MX" and record.get("priority") is None:
        problems.append(("/priority", "priority: required for an MX record"))
    if record.get("proxied") and kind not in PROXIABLE:
        problems.append(("/proxied", f"proxied: a {kind} record cannot be proxied"))
    return problems


def _is_ip(value: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(value).version == version
    except ValueError:
        return False


# -- Access: zero_trust/accesspolicy.go, accessapplicationpolicy.go, accessservicetoken.go,
#    accessapplication.go ------------------------------------------------------------------------

RULE_MEMBERS: dict[str, F] = {
    "email": obj({"email": s(required=True, check=_email)}),
    "email_domain": obj({"domain": s(required=True, check=_domain_name)}),
    "email_list": obj({"id": s(required=True)}),
    "service_token": obj({"token_id": s(required=True, check=_nonempty)}),
    "any_valid_service_token": obj({}),
    "everyone": obj({}),
    "certificate": obj({}),
    "ip": obj({"ip": s(required=True)}),
    "ip_list": obj({"id": s(required=True)}),
    "group": obj({"id": s(required=True)}),
    "geo": obj({"country_code": s(required=True)}),
    "common_name": obj({"common_name": s(required=True)}),
    "login_method": obj({"id": s(required=True)}),
    "device_posture": obj({"integration_uid": s(required=True)}),
    "auth_method": obj({"auth_method": s(required=True)}),
    "auth_context": obj(),
    "azureAD": obj(),
    "github-organization": obj(),
    "gsuite": obj(),
    "okta": obj(),
    "saml": obj(),
    "oidc": obj(),
    "external_evaluation": obj(),
    "linked_app_token": obj({"app_uid": s(required=True)}),
    "user_risk_score": obj(),
}
"""AccessRuleParam's members (accessapplicationpolicy.go); the ones this project uses are checked deeply."""
ACCESS_RULE = obj(
    RULE_MEMBERS,
    check=lambda v: None if len(v) == 1 else f"a rule has exactly one of its kinds, got {sorted(v) or 'none'}",
)
DECISIONS = ("allow", "deny", "non_identity", "bypass")
"""Decision (accessapplication.go)."""
_MFA = obj(
    {
        "allowed_authenticators": arr(s(enum=("totp", "biometrics", "security_key"))),
        "mfa_disabled": b(),
        "session_duration": s(check=_duration),
    }
)


def _policy_fields(*, required: bool) -> dict[str, F]:
    return {
        "name": s(required=required, check=_nonempty),
        "decision": s(required=required, enum=DECISIONS),
        "include": arr(ACCESS_RULE, required=required, min_items=1),
        "exclude": arr(ACCESS_RULE),
        "require": arr(ACCESS_RULE),
        "session_duration": s(check=_duration),
        "approval_groups": arr(
            obj({"approvals_needed": n(required=True), "email_addresses": arr(s(check=_email)), "email_list_uuid": s()})
        ),
        "approval_required": b(),
        "isolation_required": b(),
        "purpose_justification_prompt": s(),
        "purpose_justification_required": b(),
        "mfa_config": _MFA,
        "connection_rules": obj(
            {
                "rdp": obj(
                    {
                        "allowed_clipboard_local_to_remote_formats": arr(s()),
                        "allowed_clipboard_remote_to_local_formats": arr(s()),
                    }
                )
            }
        ),
    }


ACCESS_POLICY = obj(_policy_fields(required=True))
"""AccessPolicyNewParams / AccessPolicyUpdateParams (POST, PUT): decision, include and name required."""

SERVICE_TOKEN_NEW = obj(
    {
        "name": s(required=True, check=_nonempty),
        "duration": s(check=_duration),
        "client_secret_version": n(),
        "previous_client_secret_expires_at": s(check=_rfc3339),
    }
)
"""AccessServiceTokenNewParams."""
SERVICE_TOKEN_UPDATE = obj(
    {
        "name": s(check=_nonempty),
        "duration": s(check=_duration),
        "client_secret_version": n(),
        "previous_client_secret_expires_at": s(check=_rfc3339),
    }
)
"""AccessServiceTokenUpdateParams (PUT)."""

APP_TYPES = (
    "self_hosted", "saas", "ssh", "vnc", "app_launcher", "warp", "biso", "bookmark", "dash_sso", "infrastructure",
    "rdp", "mcp", "mcp_portal", "proxy_endpoint",
)  # fmt: skip
"""ApplicationType."""
_APP_POLICY_LINK = obj(
    {
        "id": s(),
        "precedence": i(check=lambda v: None if v >= 1 else f"{v:g} is not a precedence (1 or more)"),
        **_policy_fields(required=False),
    }
)
"""AccessApplicationNewParamsBodySelfHostedApplicationPolicy: a link ``{id, precedence}`` to a reusable
policy (or an inline one)."""
_DESTINATION = obj(
    {
        "type": s(enum=("public", "private", "via_mcp_server_portal")),
        "uri": s(),
        "cidr": s(),
        "hostname": s(),
        "l4_protocol": s(enum=("tcp", "udp")),
        "port_range": s(),
        "vnet_id": s(),
        "mcp_server_id": s(),
    }
)
"""AccessApplicationNewParamsBodySelfHostedApplicationDestination."""
ACCESS_APP = obj(
    {
        "type": s(required=True, enum=APP_TYPES),
        "name": s(check=_nonempty),
        "domain": s(),
        "destinations": arr(_DESTINATION),
        "policies": arr(_APP_POLICY_LINK),
        "session_duration": s(check=_duration),
        "app_launcher_visible": b(),
        "allow_authenticate_via_warp": b(),
        "allow_iframe": b(),
        "allowed_idps": arr(s()),
        "auto_redirect_to_identity": b(),
        "cors_headers": obj(
            {
                "allow_all_headers": b(),
                "allow_all_methods": b(),
                "allow_all_origins": b(),
                "allow_credentials": b(),
                "allowed_headers": arr(s()),
                "allowed_methods": arr(s()),
                "allowed_origins": arr(s()),
                "max_age": n(),
            }
        ),
        "custom_deny_message": s(),
        "custom_deny_url": s(),
        "custom_non_identity_deny_url": s(),
        "custom_pages": arr(s()),
        "enable_binding_cookie": b(),
        "http_only_cookie_attribute": b(),
        "logo_url": s(),
        "mfa_config": _MFA,
        "oauth_configuration": obj(),
        "options_preflight_bypass": b(),
        "path_cookie_attribute": b(),
        "read_service_tokens_from_header": s(),
        "same_site_cookie_attribute": s(enum=("strict", "lax", "none")),
        "scim_config": obj(),
        "self_hosted_domains": arr(s()),
        "service_auth_401_redirect": b(),
        "skip_interstitial": b(),
        "tags": arr(s()),
        "use_clientless_isolation_app_launcher_url": b(),
        "saas_app": obj(),
        "target_criteria": arr(obj()),
        "app_launcher_logo_url": s(),
        "bg_color": s(),
        "header_bg_color": s(),
        "footer_links": arr(obj({"name": s(required=True), "url": s(required=True)})),
        "landing_page_design": obj(),
        "skip_app_launcher_login_page": b(),
    }
)
"""AccessApplicationNewParams / AccessApplicationUpdateParams body (the union of the application kinds)."""
SELF_HOSTED_KINDS = ("self_hosted", "ssh", "vnc", "rdp")


def _app_problems(body: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    if body["type"] in SELF_HOSTED_KINDS and not body.get("domain") and not body.get("destinations"):
        problems.append(("/domain", f"domain: required for a {body['type']} application (or destinations)"))
    for index, destination in enumerate(body.get("destinations") or []):
        if destination.get("type", "public") == "public":
            uri = destination.get("uri") or ""
            if not uri:
                problems.append(
                    (f"/destinations/{index}/uri", f"destinations.{index}.uri: required for a public destination")
                )
            elif "://" in uri or _hostname_problem(uri.split("/", 1)[0], wildcard=True):
                problems.append(
                    (f"/destinations/{index}/uri", f"destinations.{index}.uri: {uri!r} is not host[/path] (no scheme)")
                )
    precedences = [p.get("precedence") for p in body.get("policies") or [] if p.get("precedence") is not None]
    if len(precedences) != len(set(precedences)):
        problems.append(("/policies", f"policies: precedences must be unique, got {precedences}"))
    return problems


# -- the state ----------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _hex32() -> str:
    return uuid.uuid4().hex


@dataclass
class State:
    tunnels: dict[str, dict[str, Any]] = field(default_factory=dict)
    tunnel_secrets: dict[str, str] = field(default_factory=dict)
    configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Json
    groups: dict[str, str]

    def q(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[0] if values else None


class CloudflareApi:
    """The endpoints, over :class:`State`; HTTP-free so its rules read on their own."""

    def __init__(
        self,
        tokens: Iterable[str],
        *,
        read_tokens: Iterable[str] = (),
        accounts: Iterable[str] | None = None,
        zones: Mapping[str, str] | None = None,
    ) -> None:
        self.tokens = set(tokens)
        self.read_tokens = set(read_tokens) - self.tokens
        self.accounts = set(accounts) if accounts is not None else None
        self.zones = dict(zones) if zones is not None else None
        self.state = State()
        self.lock = threading.RLock()
        account = r"(?P<account>[^/]+)"
        self.routes: list[tuple[str, re.Pattern[str], Callable[[Request], tuple[int, Json, Any]]]] = []
        for method, pattern, handler in [
            ("POST", rf"/accounts/{account}/cfd_tunnel", self.tunnel_create),
            ("GET", rf"/accounts/{account}/cfd_tunnel", self.tunnel_list),
            ("GET", rf"/accounts/{account}/cfd_tunnel/(?P<tunnel>[^/]+)", self.tunnel_get),
            ("PATCH", rf"/accounts/{account}/cfd_tunnel/(?P<tunnel>[^/]+)", self.tunnel_edit),
            ("DELETE", rf"/accounts/{account}/cfd_tunnel/(?P<tunnel>[^/]+)", self.tunnel_delete),
            ("PUT", rf"/accounts/{account}/cfd_tunnel/(?P<tunnel>[^/]+)/configurations", self.configuration_put),
            ("GET", rf"/accounts/{account}/cfd_tunnel/(?P<tunnel>[^/]+)/configurations", self.configuration_get),
            ("GET", rf"/accounts/{account}/cfd_tunnel/(?P<tunnel>[^/]+)/token", self.tunnel_token),
            ("POST", r"/zones/(?P<zone>[^/]+)/dns_records", self.record_create),
            ("GET", r"/zones/(?P<zone>[^/]+)/dns_records", self.record_list),
            ("GET", r"/zones/(?P<zone>[^/]+)/dns_records/(?P<record>[^/]+)", self.record_get),
            ("PUT", r"/zones/(?P<zone>[^/]+)/dns_records/(?P<record>[^/]+)", self.record_put),
            ("PATCH", r"/zones/(?P<zone>[^/]+)/dns_records/(?P<record>[^/]+)", self.record_patch),
            ("DELETE", r"/zones/(?P<zone>[^/]+)/dns_records/(?P<record>[^/]+)", self.record_delete),
            ("POST", rf"/accounts/{account}/access/policies", self.policy_create),
            ("GET", rf"/accounts/{account}/access/policies", self.policy_list),
            ("GET", rf"/accounts/{account}/access/policies/(?P<policy>[^/]+)", self.policy_get),
            ("PUT", rf"/accounts/{account}/access/policies/(?P<policy>[^/]+)", self.policy_put),
            ("DELETE", rf"/accounts/{account}/access/policies/(?P<policy>[^/]+)", self.policy_delete),
            ("POST", r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/service_tokens", self.token_create),
            ("GET", r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/service_tokens", self.token_list),
            (
                "GET",
                r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/service_tokens/(?P<token>[^/]+)",
                self.token_get,
            ),
            (
                "PUT",
                r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/service_tokens/(?P<token>[^/]+)",
                self.token_put,
            ),
            (
                "DELETE",
                r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/service_tokens/(?P<token>[^/]+)",
                self.token_delete,
            ),
            ("POST", r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/apps", self.app_create),
            ("GET", r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/apps", self.app_list),
            ("GET", r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/apps/(?P<app>[^/]+)", self.app_get),
            ("PUT", r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/apps/(?P<app>[^/]+)", self.app_put),
            ("DELETE", r"/(?P<scope>accounts|zones)/(?P<owner>[^/]+)/access/apps/(?P<app>[^/]+)", self.app_delete),
        ]:
            self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    # -- dispatch -----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, Json]:
        """One API request: (HTTP status, envelope)."""
        status, envelope = self._handle(method, path, query, headers, raw)
        with self.lock:
            self.state.requests.append(
                {
                    "method": method,
                    "path": path,
                    "status": status,
                    "codes": [e["code"] for e in envelope.get("errors", [])],
                    "at": _now(),
                }
            )
        return status, envelope

    def _handle(self, method: str, path: str, query: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, Json]:
        try:
            self._authenticate(method, path, headers)
            matched = [(m, pattern.match(path), handler) for m, pattern, handler in self.routes]
            candidates = [(m, match, handler) for m, match, handler in matched if match]
            if not candidates:
                raise ApiError.of(NO_ROUTE)
            chosen = [(match, handler) for m, match, handler in candidates if m == method]
            if not chosen:
                raise ApiError.of(METHOD_NOT_ALLOWED, f"Method {method} not allowed for {path}")
            match, handler = chosen[0]
            groups = match.groupdict()
            self._check_owners(path, groups)
            body: Json = None
            if method in ("POST", "PUT", "PATCH"):
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    raise ApiError.of(MALFORMED_JSON) from None
                if not isinstance(body, dict):
                    raise ApiError.of(MALFORMED_JSON, "Malformed JSON in request body: expected a JSON object")
            request = Request(method, path, parse_qs(query), body, groups)
            with self.lock:
                status, result, info = handler(request)
            envelope = {"success": True, "errors": [], "messages": [], "result": result}
            if info is not None:
                envelope["result_info"] = info
            return status, envelope
        except ApiError as error:
            return error.status, {"success": False, "errors": error.errors, "messages": [], "result": None}

    def _authenticate(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        """An accepted token may do anything; a read token only GETs, and not a tunnel's token (its
        data source needs Cloudflare Tunnel Write)."""
        value = headers.get("authorization") or headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError.of(AUTH_MISSING)
        if token in self.tokens:
            return
        if token not in self.read_tokens:
            raise ApiError.of(AUTH_INVALID)
        if method != "GET" or path.endswith("/token"):
            raise ApiError.of(AUTH_READ_ONLY)

    def _check_owners(self, path: str, groups: Mapping[str, str]) -> None:
        accounts = [groups.get("account")] + ([groups["owner"]] if groups.get("scope") == "accounts" else [])
        zones = [groups.get("zone")] + ([groups["owner"]] if groups.get("scope") == "zones" else [])
        for value, known in [(a, self.accounts) for a in accounts if a] + [(z, self.zones) for z in zones if z]:
            if not HEX32.match(value) or (known is not None and value not in known):
                raise ApiError(
                    404,
                    [
                        {
                            "code": BAD_IDENTIFIER_CODE,
                            "message": f"Could not route to {path}, perhaps your object identifier is invalid?",
                        },
                        {"code": NO_ROUTE[1], "message": NO_ROUTE[2]},
                    ],
                )

    @staticmethod
    def _check(body: Json, spec: F, code: int, *, chain: int | None = None) -> None:
        problems = validate(body, spec)
        if problems:
            raise ApiError.invalid(code, problems, chain=chain)

    @staticmethod
    def _page(request: Request, items: list[Any], default_per_page: int = 20) -> tuple[int, Json, Any]:
        try:
            page = max(1, int(request.q("page") or 1))
            per_page = max(1, int(request.q("per_page") or default_per_page))
        except ValueError:
            raise ApiError.of((400, 1001, "page and per_page must be integers")) from None
        chunk = items[(page - 1) * per_page : page * per_page]
        total_pages = max(1, -(-len(items) // per_page))
        info = {
            "page": page,
            "per_page": per_page,
            "count": len(chunk),
            "total_count": len(items),
            "total_pages": total_pages,
        }
        return 200, copy.deepcopy(chunk), info

    # -- tunnels: zero_trust/tunnelcloudflared.go -------------------------------------------------------

    def _tunnel(self, request: Request, *, live: bool = True) -> dict[str, Any]:
        tunnel = self.state.tunnels.get(request.groups["tunnel"])
        if tunnel is None or tunnel["account_tag"] != request.groups["account"]:
            raise ApiError.of(TUNNEL_NOT_FOUND)
        if live and tunnel["deleted_at"] is not None:
            raise ApiError.of(TUNNEL_NOT_FOUND, "Tunnel not found (it was deleted)")
        return tunnel

    def _name_taken(self, account: str, name: str, but: str | None = None) -> bool:
        return any(
            t["account_tag"] == account and t["name"] == name and t["deleted_at"] is None and t["id"] != but
            for t in self.state.tunnels.values()
        )

    def tunnel_create(self, request: Request) -> tuple[int, Json, Any]:
        body, account = request.body, request.groups["account"]
        self._check(body, TUNNEL_NEW, TUNNEL_INVALID)
        if self._name_taken(account, body["name"]):
            raise ApiError.of(TUNNEL_NAME_TAKEN)
        config_src = body.get("config_src", "local")
        tunnel = {
            "id": str(uuid.uuid4()),
            "account_tag": account,
            "config_src": config_src,
            "connections": [],
            "conns_active_at": None,
            "conns_inactive_at": None,
            "created_at": _now(),
            "deleted_at": None,
            "metadata": {},
            "name": body["name"],
            "remote_config": config_src == "cloudflare",
            "status": "inactive",
            "tun_type": "cfd_tunnel",
        }
        self.state.tunnels[tunnel["id"]] = tunnel
        self.state.tunnel_secrets[tunnel["id"]] = (
            body.get("tunnel_secret") or base64.b64encode(secrets.token_bytes(32)).decode()
        )
        return 200, copy.deepcopy(tunnel), None

    def tunnel_list(self, request: Request) -> tuple[int, Json, Any]:
        account = request.groups["account"]
        items = [t for t in self.state.tunnels.values() if t["account_tag"] == account]
        if (name := request.q("name")) is not None:
            items = [t for t in items if t["name"] == name]
        if (tunnel_id := request.q("uuid")) is not None:
            items = [t for t in items if t["id"] == tunnel_id]
        if (deleted := request.q("is_deleted")) is not None:
            items = [t for t in items if (t["deleted_at"] is not None) == (deleted.lower() == "true")]
        return self._page(request, items)

    def tunnel_get(self, request: Request) -> tuple[int, Json, Any]:
        # Cloudflare answers a soft-deleted tunnel with it, deleted_at set.
        return 200, copy.deepcopy(self._tunnel(request, live=False)), None

    def tunnel_edit(self, request: Request) -> tuple[int, Json, Any]:
        tunnel = self._tunnel(request)
        self._check(request.body, TUNNEL_EDIT, TUNNEL_INVALID)
        name = request.body.get("name")
        if name is not None and self._name_taken(tunnel["account_tag"], name, but=tunnel["id"]):
            raise ApiError.of(TUNNEL_NAME_TAKEN)
        if name is not None:
            tunnel["name"] = name
        if secret := request.body.get("tunnel_secret"):
            self.state.tunnel_secrets[tunnel["id"]] = secret
        return 200, copy.deepcopy(tunnel), None

    def tunnel_delete(self, request: Request) -> tuple[int, Json, Any]:
        tunnel = self._tunnel(request)
        tunnel["deleted_at"] = _now()
        return 200, copy.deepcopy(tunnel), None

    def tunnel_token(self, request: Request) -> tuple[int, Json, Any]:
        tunnel = self._tunnel(request)
        payload = {"a": tunnel["account_tag"], "t": tunnel["id"], "s": self.state.tunnel_secrets[tunnel["id"]]}
        token = base64.b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()
        return 200, token, None

    # -- tunnel configurations: zero_trust/tunnelcloudflaredconfiguration.go -----------------------------

    def configuration_put(self, request: Request) -> tuple[int, Json, Any]:
        tunnel = self._tunnel(request)
        self._check(request.body, TUNNEL_CONFIGURATION_PUT, TUNNEL_INVALID)
        if problems := _ingress_problems(request.body["config"]["ingress"]):
            raise ApiError.invalid(TUNNEL_INVALID, problems)
        previous = self.state.configurations.get(tunnel["id"])
        configuration = {
            "account_id": tunnel["account_tag"],
            "config": copy.deepcopy(request.body["config"]),
            "created_at": _now(),
            "source": request.body.get("source", "cloudflare"),
            "tunnel_id": tunnel["id"],
            "version": (previous["version"] + 1) if previous else 1,
        }
        self.state.configurations[tunnel["id"]] = configuration
        return 200, copy.deepcopy(configuration), None

    def configuration_get(self, request: Request) -> tuple[int, Json, Any]:
        tunnel = self._tunnel(request)
        configuration = self.state.configurations.get(tunnel["id"])
        if configuration is None:
            # A tunnel never configured remotely: Cloudflare answers an empty version 0.
            configuration = {
                "account_id": tunnel["account_tag"],
                "config": {},
                "created_at": tunnel["created_at"],
                "source": tunnel["config_src"],
                "tunnel_id": tunnel["id"],
                "version": 0,
            }
        return 200, copy.deepcopy(configuration), None

    # -- DNS records: dns/record.go --------------------------------------------------------------------

    def _normalise_name(self, zone: str, name: str) -> str:
        name = name.rstrip(".").lower()
        zone_name = (self.zones or {}).get(zone)
        if zone_name:
            if name == "@":
                return zone_name
            if name != zone_name and not name.endswith("." + zone_name):
                return f"{name}.{zone_name}"
        return name

    def _record(self, request: Request) -> dict[str, Any]:
        record = self.state.records.get(request.groups["record"])
        if record is None or record["_zone"] != request.groups["zone"]:
            raise ApiError.of(DNS_NOT_FOUND)
        return record

    def _store_record(self, zone: str, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        body = dict(body)
        body["name"] = self._normalise_name(zone, body["name"])
        body["type"] = body["type"].upper()
        if problems := _dns_content_problems(body):
            raise ApiError.invalid(DNS_INVALID, problems, chain=9005)
        others = [
            r
            for r in self.state.records.values()
            if r["_zone"] == zone and r["name"] == body["name"] and (existing is None or r["id"] != existing["id"])
        ]
        kinds = {r["type"] for r in others}
        if body["type"] == "CNAME" and kinds & {"A", "AAAA", "CNAME"}:
            raise ApiError.of(DNS_CNAME_CONFLICT)
        if body["type"] != "CNAME" and "CNAME" in kinds:
            raise ApiError.of(DNS_HAS_CNAME)
        if any(
            r["type"] == body["type"] and r.get("content") == body.get("content") and r.get("data") == body.get("data")
            for r in others
        ):
            raise ApiError.of(DNS_IDENTICAL)  # fmt: skip
        now = _now()
        proxied = bool(body.get("proxied", False))
        record = {
            "id": existing["id"] if existing else _hex32(),
            "_zone": zone,
            "name": body["name"],
            "type": body["type"],
            "content": body.get("content", ""),
            "proxiable": body["type"] in PROXIABLE,
            "proxied": proxied,
            # A proxied record's TTL is automatic whatever was asked.
            "ttl": 1 if proxied else int(body["ttl"]) if float(body["ttl"]).is_integer() else body["ttl"],
            "settings": body.get("settings", {}),
            "meta": {},
            "comment": body.get("comment"),
            "tags": body.get("tags", []),
            "created_on": existing["created_on"] if existing else now,
            "modified_on": now,
        }
        for optional in ("data", "priority", "private_routing"):
            if optional in body:
                record[optional] = body[optional]
        if record["comment"] is not None:
            changed = existing is None or existing.get("comment") != record["comment"]
            record["comment_modified_on"] = now if changed else existing.get("comment_modified_on", now)  # type: ignore[union-attr]
        if record["tags"]:
            changed = existing is None or existing.get("tags") != record["tags"]
            record["tags_modified_on"] = now if changed else existing.get("tags_modified_on", now)  # type: ignore[union-attr]
        self.state.records[record["id"]] = record
        return record

    @staticmethod
    def _record_view(record: dict[str, Any]) -> dict[str, Any]:
        """RecordResponse: the record without the fake's own keys."""
        return {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}

    def record_create(self, request: Request) -> tuple[int, Json, Any]:
        self._check(request.body, DNS_RECORD_NEW, DNS_INVALID, chain=9005)
        return 200, self._record_view(self._store_record(request.groups["zone"], request.body, None)), None

    def record_list(self, request: Request) -> tuple[int, Json, Any]:
        zone = request.groups["zone"]
        items = [self._record_view(r) for r in self.state.records.values() if r["_zone"] == zone]
        name = request.q("name") or request.q("name.exact")
        if name is not None:
            items = [r for r in items if r["name"] == self._normalise_name(zone, name)]
        if (kind := request.q("type")) is not None:
            items = [r for r in items if r["type"] == kind.upper()]
        content = request.q("content") or request.q("content.exact")
        if content is not None:
            items = [r for r in items if r["content"] == content]
        return self._page(request, items, default_per_page=100)

    def record_get(self, request: Request) -> tuple[int, Json, Any]:
        return 200, self._record_view(self._record(request)), None

    def record_put(self, request: Request) -> tuple[int, Json, Any]:
        existing = self._record(request)
        self._check(request.body, DNS_RECORD_NEW, DNS_INVALID, chain=9005)
        return 200, self._record_view(self._store_record(request.groups["zone"], request.body, existing)), None

    def record_patch(self, request: Request) -> tuple[int, Json, Any]:
        existing = self._record(request)
        self._check(request.body, DNS_RECORD_EDIT, DNS_INVALID, chain=9005)
        keep = (
            "name",
            "type",
            "ttl",
            "comment",
            "content",
            "data",
            "priority",
            "private_routing",
            "proxied",
            "settings",
            "tags",
        )
        merged = {k: existing[k] for k in keep if existing.get(k) is not None}
        merged.update(request.body)
        return 200, self._record_view(self._store_record(request.groups["zone"], merged, existing)), None

    def record_delete(self, request: Request) -> tuple[int, Json, Any]:
        record = self._record(request)
        del self.state.records[record["id"]]
        return 200, {"id": record["id"]}, None

    # -- Access policies (reusable): zero_trust/accesspolicy.go ---------------------------------------

    def _policy(self, request: Request) -> dict[str, Any]:
        policy = self.state.policies.get(request.groups["policy"])
        if policy is None or policy["_account"] != request.groups["account"]:
            raise ApiError.of(ACCESS_NOT_FOUND)
        return policy

    def _check_policy(self, account: str, body: dict[str, Any]) -> None:
        self._check(body, ACCESS_POLICY, ACCESS_INVALID)
        problems: list[Problem] = []
        for part in ("include", "exclude", "require"):
            for index, rule in enumerate(body.get(part) or []):
                token_id = (rule.get("service_token") or {}).get("token_id")
                if token_id and not self._token_exists(("accounts", account), token_id):
                    problems.append(
                        (
                            f"/{part}/{index}/service_token/token_id",
                            f"{part}.{index}.service_token.token_id: no service token {token_id} in account {account}",
                        )
                    )
        if problems:
            raise ApiError.invalid(ACCESS_INVALID, problems)

    def _token_exists(self, owner: tuple[str, str], token_id: str) -> bool:
        token = self.state.tokens.get(token_id)
        return token is not None and token["_owner"] == list(owner)

    def _policy_view(self, policy: dict[str, Any]) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in policy.items() if not k.startswith("_")}
        view["app_count"] = sum(
            1 for app in self.state.apps.values() for link in app.get("policies", []) if link.get("id") == policy["id"]
        )
        return view

    def policy_create(self, request: Request) -> tuple[int, Json, Any]:
        account = request.groups["account"]
        self._check_policy(account, request.body)
        now = _now()
        policy = {
            "id": str(uuid.uuid4()),
            "_account": account,
            "exclude": [],
            "require": [],
            "session_duration": "24h",
            "reusable": True,
            **copy.deepcopy(request.body),
            "created_at": now,
            "updated_at": now,
        }
        self.state.policies[policy["id"]] = policy
        return 200, self._policy_view(policy), None

    def policy_list(self, request: Request) -> tuple[int, Json, Any]:
        account = request.groups["account"]
        items = [self._policy_view(p) for p in self.state.policies.values() if p["_account"] == account]
        return self._page(request, items)

    def policy_get(self, request: Request) -> tuple[int, Json, Any]:
        return 200, self._policy_view(self._policy(request)), None

    def policy_put(self, request: Request) -> tuple[int, Json, Any]:
        policy = self._policy(request)
        self._check_policy(policy["_account"], request.body)
        replaced = {
            "id": policy["id"],
            "_account": policy["_account"],
            "exclude": [],
            "require": [],
            "session_duration": "24h",
            "reusable": True,
            **copy.deepcopy(request.body),
            "created_at": policy["created_at"],
            "updated_at": _now(),
        }
        self.state.policies[policy["id"]] = replaced
        return 200, self._policy_view(replaced), None

    def policy_delete(self, request: Request) -> tuple[int, Json, Any]:
        policy = self._policy(request)
        users = sorted(
            app["id"]
            for app in self.state.apps.values()
            if any(link.get("id") == policy["id"] for link in app.get("policies", []))
        )
        if users:
            raise ApiError.invalid(
                ACCESS_INVALID,
                [
                    (
                        "",
                        f"policy {policy['id']} is used by application(s) {', '.join(users)}; "
                        "remove it from them first",
                    )
                ],
            )
        del self.state.policies[policy["id"]]
        return 200, {"id": policy["id"]}, None

    # -- Access service tokens: zero_trust/accessservicetoken.go --------------------------------------

    @staticmethod
    def _owner(request: Request) -> list[str]:
        return [request.groups["scope"], request.groups["owner"]]

    def _token(self, request: Request) -> dict[str, Any]:
        token = self.state.tokens.get(request.groups["token"])
        if token is None or token["_owner"] != self._owner(request):
            raise ApiError.of(ACCESS_NOT_FOUND)
        return token

    @staticmethod
    def _token_view(token: dict[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in token.items() if not k.startswith("_")}

    @staticmethod
    def _expiry(duration: str, start: datetime) -> str:
        seconds = 0.0
        units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
        for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", duration):
            seconds += float(amount) * units[unit]
        return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def token_create(self, request: Request) -> tuple[int, Json, Any]:
        self._check(request.body, SERVICE_TOKEN_NEW, ACCESS_INVALID)
        now = datetime.now(UTC)
        duration = request.body.get("duration", "8760h")
        token = {
            "id": str(uuid.uuid4()),
            "client_id": f"{_hex32()}.access",
            "name": request.body["name"],
            "duration": duration,
            "expires_at": self._expiry(duration, now),
            "created_at": _now(),
            "updated_at": _now(),
            "_owner": self._owner(request),
            "_client_secret_version": request.body.get("client_secret_version", 1),
        }
        self.state.tokens[token["id"]] = token
        # The secret is answered once, on creation, and kept nowhere (as Cloudflare keeps only a hash).
        return 200, {**self._token_view(token), "client_secret": secrets.token_hex(32)}, None

    def token_list(self, request: Request) -> tuple[int, Json, Any]:
        items = [self._token_view(t) for t in self.state.tokens.values() if t["_owner"] == self._owner(request)]
        if (name := request.q("name")) is not None:
            items = [t for t in items if t["name"] == name]
        return self._page(request, items)

    def token_get(self, request: Request) -> tuple[int, Json, Any]:
        return 200, self._token_view(self._token(request)), None

    def token_put(self, request: Request) -> tuple[int, Json, Any]:
        token = self._token(request)
        self._check(request.body, SERVICE_TOKEN_UPDATE, ACCESS_INVALID)
        if "name" in request.body:
            token["name"] = request.body["name"]
        if "duration" in request.body and request.body["duration"] != token["duration"]:
            token["duration"] = request.body["duration"]
            token["expires_at"] = self._expiry(token["duration"], datetime.now(UTC))
        if "client_secret_version" in request.body:
            token["_client_secret_version"] = request.body["client_secret_version"]
        token["updated_at"] = _now()
        return 200, self._token_view(token), None

    def token_delete(self, request: Request) -> tuple[int, Json, Any]:
        token = self._token(request)
        del self.state.tokens[token["id"]]
        return 200, self._token_view(token), None

    # -- Access applications: zero_trust/accessapplication.go -----------------------------------------

    def _app(self, request: Request) -> dict[str, Any]:
        app = self.state.apps.get(request.groups["app"])
        if app is None or app["_owner"] != self._owner(request):
            raise ApiError.of(ACCESS_NOT_FOUND)
        return app

    def _check_app(self, request: Request) -> None:
        body = request.body
        self._check(body, ACCESS_APP, ACCESS_INVALID)
        problems = _app_problems(body)
        scope, owner = self._owner(request)
        for index, link in enumerate(body.get("policies") or []):
            policy_id = link.get("id")
            if policy_id is None:
                continue
            policy = self.state.policies.get(policy_id)
            if policy is None or scope != "accounts" or policy["_account"] != owner:
                problems.append(
                    (f"/policies/{index}/id", f"policies.{index}.id: no reusable policy {policy_id} in this account")
                )
        if problems:
            raise ApiError.invalid(ACCESS_INVALID, problems)

    def _app_view(self, app: dict[str, Any]) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in app.items() if not k.startswith("_")}
        links = []
        for link in view.get("policies", []):
            policy = self.state.policies.get(link.get("id", ""))
            links.append({**(self._policy_view(policy) if policy else {}), **link})
        view["policies"] = links
        return view

    def _app_record(self, request: Request, existing: dict[str, Any] | None) -> dict[str, Any]:
        body = copy.deepcopy(request.body)
        now = _now()
        app = {
            "id": existing["id"] if existing else str(uuid.uuid4()),
            "aud": existing["aud"] if existing else secrets.token_hex(32),
            "session_duration": "24h",
            "app_launcher_visible": True,
            "policies": [],
            **body,
            "created_at": existing["created_at"] if existing else now,
            "updated_at": now,
            "_owner": self._owner(request),
        }
        if not app.get("name"):
            app["name"] = app.get("domain", "")
        if app.get("domain") and not app.get("destinations") and app["type"] in SELF_HOSTED_KINDS:
            app["destinations"] = [{"type": "public", "uri": app["domain"]}]
        if not app.get("self_hosted_domains") and app.get("destinations"):
            app["self_hosted_domains"] = [d["uri"] for d in app["destinations"] if d.get("type", "public") == "public"]
        self.state.apps[app["id"]] = app
        return app

    def app_create(self, request: Request) -> tuple[int, Json, Any]:
        self._check_app(request)
        return 200, self._app_view(self._app_record(request, None)), None

    def app_list(self, request: Request) -> tuple[int, Json, Any]:
        items = [self._app_view(a) for a in self.state.apps.values() if a["_owner"] == self._owner(request)]
        for key in ("name", "domain", "aud"):
            if (value := request.q(key)) is not None:
                items = [a for a in items if a.get(key) == value]
        return self._page(request, items)

    def app_get(self, request: Request) -> tuple[int, Json, Any]:
        return 200, self._app_view(self._app(request)), None

    def app_put(self, request: Request) -> tuple[int, Json, Any]:
        existing = self._app(request)
        self._check_app(request)
        return 200, self._app_view(self._app_record(request, existing)), None

    def app_delete(self, request: Request) -> tuple[int, Json, Any]:
        app = self._app(request)
        del self.state.apps[app["id"]]
        return 200, {"id": app["id"]}, None

    # -- the fake's own endpoints ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything stored, secrets left out: what ``GET /__fake/state`` answers."""
        with self.lock:
            tunnels: list[dict[str, Any]] = []
            deleted: list[dict[str, Any]] = []
            for tunnel in self.state.tunnels.values():
                view = copy.deepcopy(tunnel)
                view["configuration"] = copy.deepcopy(self.state.configurations.get(tunnel["id"]))
                (deleted if tunnel["deleted_at"] else tunnels).append(view)
            return {
                "tunnels": tunnels,
                "deleted_tunnels": deleted,
                "dns_records": [
                    {**self._record_view(r), "zone_id": r["_zone"], "zone_name": (self.zones or {}).get(r["_zone"], "")}
                    for r in self.state.records.values()
                ],
                "access_policies": [
                    {**self._policy_view(p), "account_id": p["_account"]} for p in self.state.policies.values()
                ],
                "access_service_tokens": [
                    {**self._token_view(t), "scope": t["_owner"][0], "owner_id": t["_owner"][1]}
                    for t in self.state.tokens.values()
                ],
                "access_apps": [
                    {**self._app_view(a), "scope": a["_owner"][0], "owner_id": a["_owner"][1]}
                    for a in self.state.apps.values()
                ],
                "requests": copy.deepcopy(self.state.requests),
            }

    def reset(self) -> None:
        with self.lock:
            self.state = State()


# -- HTTP --------------------------------------------------------------------------------------------


def _handler_class(api: CloudflareApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "cloudflare-fake/1"
        protocol_version = "HTTP/1.1"

        def _respond(self, status: int, payload: Json) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = parts.path.rstrip("/") or "/"
            if path == f"{FAKE_PREFIX}/state" and self.command == "GET":
                self._respond(200, api.snapshot())
            elif path == f"{FAKE_PREFIX}/reset" and self.command == "POST":
                api.reset()
                self._respond(200, {"success": True})
            elif path.startswith(API_PREFIX + "/"):
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._respond(*api.handle(self.command, path[len(API_PREFIX) :], parts.query, headers, raw))
            else:
                status, code, message = NO_ROUTE
                self._respond(
                    status,
                    {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None},
                )

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class FakeCloudflare:
    """A running fake: ``url`` is the API base (``…/client/v4``), ``root`` the server's."""

    def __init__(self, api: CloudflareApi, server: ThreadingHTTPServer) -> None:
        self.api = api
        self.server = server
        host, port = server.server_address[:2]
        assert isinstance(host, str)  # an IPv4 server's address
        self.root = f"http://{host}:{port}"
        self.url = self.root + API_PREFIX
        self.port = port
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="cloudflare-fake", daemon=True
        )
        self._thread.start()

    def state(self) -> dict[str, Any]:
        return self.api.snapshot()

    def reset(self) -> None:
        self.api.reset()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeCloudflare:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_fake(
    tokens: set[str],
    port: int = 0,
    *,
    read_tokens: Iterable[str] = (),
    host: str = "127.0.0.1",
    accounts: Iterable[str] | None = None,
    zones: Mapping[str, str] | None = None,
) -> FakeCloudflare:
    """Serve the fake on ``host:port`` (0: a free port) in a background thread.

    ``tokens`` are the API tokens accepted for everything, ``read_tokens`` those accepted for reads
    only (a preview's). ``accounts`` and ``zones`` (zone ID → zone name), when
    given, are the only identifiers served (others answer 7003) and a zone's name completes relative
    record names as Cloudflare does; by default any well-formed identifier is served.
    """
    if not tokens:
        raise ValueError("start_fake: at least one accepted API token is needed")
    api = CloudflareApi(tokens, read_tokens=read_tokens, accounts=accounts, zones=zones)
    server = ThreadingHTTPServer((host, port), _handler_class(api))
    server.daemon_threads = True
    return FakeCloudflare(api, server)


def _tokens(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--token-file", required=True, type=Path, help="accepted API tokens, one a line")
    parser.add_argument("--read-token-file", type=Path, help="API tokens accepted for reads only, one a line")
    parser.add_argument("--account", action="append", help="serve only these account IDs (repeatable)")
    parser.add_argument("--zone", action="append", help="serve only these zones, ID=NAME (repeatable)")
    args = parser.parse_args(argv)
    tokens = _tokens(args.token_file)
    if not tokens:
        parser.error(f"{args.token_file}: no token in it")
    read_tokens = _tokens(args.read_token_file) if args.read_token_file else set()
    zones = dict(z.split("=", 1) for z in args.zone) if args.zone else None
    fake = start_fake(tokens, args.port, read_tokens=read_tokens, host=args.host, accounts=args.account, zones=zones)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    print(fake.url, flush=True)
    while not stopped.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

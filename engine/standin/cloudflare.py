"""The cloudflare stand-in provider: pulumi-cloudflare 6.23.1's resources over the local Cloudflare API fake.

The engine starts it as ``pulumi-resource-cloudflare`` (engine/standin/bin). Each resource is created,
read, updated and deleted with the REST calls terraform-provider-cloudflare v5 makes (cloudflare-go v6
paths), against ``CLOUDFLARE_BASE_URL`` (or the provider's ``baseUrl``): the fake in
engine/cloudflare_fake.py. Without a base URL it refuses to do anything, and it refuses any
``*.cloudflare.com`` host: it never calls the real Cloudflare API.

What follows the Terraform provider (v5.19, internal/services/<resource>/schema.go and resource.go):

- replacement: every ``account_id``/``zone_id`` and a config's ``tunnel_id`` (RequiresReplace), a
  tunnel's ``config_src`` (RequiresReplaceIfConfigured), a DNS record's ``type``; everything else
  updates in place (tunnel: PATCH; configuration, DNS record, policy, service token, application: PUT);
- defaults the provider sends when unset: a DNS record's ``proxied=false``, a policy's
  ``session_duration="24h"``, a service token's ``duration="8760h"`` and ``client_secret_version=1``;
- kept from state, never read back: a tunnel's ``tunnelSecret`` and ``configSrc``, a service token's
  ``clientSecret`` (answered only on creation);
- a tunnel configuration's delete does nothing (the provider's Delete is empty; it goes with its tunnel);
- a read answered 404 removes the resource from state; a tunnel read with ``deleted_at`` set does too
  (Cloudflare soft-deletes tunnels and still answers them).

Input names map to API fields by snake_case plus the bridge's renames (``includes``↔``include``,
``ingresses``↔``ingress``, ``audTags``↔``audTag``, ``targetCriterias``↔``target_criteria``,
``azureAd``↔``azureAD``, ``githubOrganization``↔``github-organization``, …); a tunnel configuration
keeps cloudflared's camelCase (``originRequest``, ``noTLSVerify``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from engine.standin.provider import Kind, Package, Props, ProviderError, camel, serve, snake

SDK_MODULE = "pulumi_cloudflare"
VERSION = "6.23.1"
TIMEOUT_SECONDS = 30
USER_AGENT = f"service-lifecycle-standin/pulumi-cloudflare-{VERSION}"


class NotFoundError(Exception):
    """The API answered 404."""


# -- the HTTP client -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    base_url: str
    token: str

    def call(self, method: str, path: str, body: Props | None = None) -> Any:
        """``result`` of the envelope; :class:`NotFoundError` on 404, :class:`ProviderError` on other failures."""
        url = f"{self.base_url}/{path}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ProviderError(f"cannot reach the Cloudflare API at {self.base_url}: {reason}") from None
        try:
            envelope = json.loads(raw or b"{}")
        except ValueError:
            envelope = {}
        errors = envelope.get("errors") if isinstance(envelope, dict) else None
        described = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors or []) or raw[:200].decode(
            errors="replace"
        )
        if status == 404:
            raise NotFoundError(f"{method} /{path}: {described}")
        if status >= 300 or not isinstance(envelope, dict) or not envelope.get("success"):
            raise ProviderError(f"Cloudflare API {method} /{path}: HTTP {status}: {described}")
        return envelope.get("result")


def client(config: Props) -> Client:
    base = str(config.get("baseUrl") or os.environ.get("CLOUDFLARE_BASE_URL") or "").rstrip("/")
    if not base:
        raise ProviderError(
            "the cloudflare stand-in provider needs the local Cloudflare API fake: set CLOUDFLARE_BASE_URL "
            "(e.g. http://127.0.0.1:PORT/client/v4, printed by engine/cloudflare_fake.py) or the provider's "
            "baseUrl; it never calls the real Cloudflare API"
        )
    parts = urlsplit(base)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ProviderError(f"the Cloudflare base URL must be http(s)://host[:port]/…, got {base!r}")
    if host == "cloudflare.com" or host.endswith(".cloudflare.com"):
        raise ProviderError(
            f"the cloudflare stand-in provider refuses {host}: it only talks to the local Cloudflare API fake "
            "(engine/cloudflare_fake.py)"
        )
    token = str(config.get("apiToken") or os.environ.get("CLOUDFLARE_API_TOKEN") or "")
    if not token:
        raise ProviderError("no Cloudflare API token: set the provider's apiToken or CLOUDFLARE_API_TOKEN")
    return Client(base, token)


def _segment(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ProviderError(f"{name} is required")
    return quote(value, safe="")


# -- names and values -------------------------------------------------------------------------------

ACCESS_RENAMES = {
    "includes": "include",
    "excludes": "exclude",
    "requires": "require",
    "azureAd": "azureAD",
    "githubOrganization": "github-organization",
    "serviceAuth401Redirect": "service_auth_401_redirect",
    "targetCriterias": "target_criteria",
}
"""Pulumi input names whose API field is not their snake_case (the bridge's plurals and Cloudflare's oddities)."""
CONFIG_RENAMES = {
    "ingresses": "ingress",
    "audTags": "audTag",
    "noTlsVerify": "noTLSVerify",
    "matchSnItoHost": "matchSNItoHost",
}
"""A tunnel configuration's: its API names are cloudflared's camelCase, so only these differ."""


@dataclass(frozen=True)
class Names:
    """How one resource's property names map to its API fields, both ways."""

    renames: Mapping[str, str]
    style: Callable[[str], str]
    """Input name → API name, when not renamed."""
    back: Callable[[str], str]
    """API name → output name, when not renamed."""

    def to_api(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {self.renames.get(k, self.style(k)): self.to_api(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [self.to_api(v) for v in value]
        if isinstance(value, float) and value.is_integer():
            return int(value)  # the engine's numbers are doubles; Cloudflare's integers are not
        return value

    def from_api(self, value: Any) -> Any:
        reverse = {v: k for k, v in self.renames.items()}
        if isinstance(value, Mapping):
            return {reverse.get(k, self.back(k)): self.from_api(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [self.from_api(v) for v in value]
        return value


SNAKE = Names({}, snake, camel)
ACCESS = Names(ACCESS_RENAMES, snake, camel)
CONFIG = Names(CONFIG_RENAMES, lambda k: k, lambda k: k)


@functools.cache
def sdk_outputs(class_name: str) -> frozenset[str]:
    """Every property of the resource (inputs and outputs, camelCase), from the SDK's ``_<Class>State``."""
    sdk = importlib.import_module(SDK_MODULE)
    module = sys.modules[getattr(sdk, class_name).__module__]
    state_class = getattr(module, f"_{class_name}State")
    return frozenset(camel(p) for p in list(inspect.signature(state_class.__init__).parameters)[1:])


def outputs(
    class_name: str, names: Names, result: Mapping[str, Any], known: Props, *, as_json: tuple[str, ...] = ()
) -> Props:
    """The resource's properties from an API result.

    Only the SDK's properties; values the program gave (``known``) stay as given unless the API
    answered a different scalar (a drift ``refresh`` shows), so nested shapes stay the SDK's.
    """
    allowed = sdk_outputs(class_name)
    found: Props = {}
    for key, value in names.from_api(dict(result)).items():
        if key not in allowed:
            continue
        if key in as_json:
            found[key] = json.dumps(value, sort_keys=True)  # jsontypes.Normalized: a JSON string
        elif key not in known or not isinstance(value, dict | list):
            found[key] = value
    return found


def body_of(inputs: Props, names: Names, *, skip: tuple[str, ...], defaults: Props | None = None) -> Props:
    """The request body: the inputs but the path parameters, with the provider's defaults, as API fields."""
    chosen = {**(defaults or {}), **{k: v for k, v in inputs.items() if k not in skip and v is not None}}
    body: Props = names.to_api(chosen)
    return body


def owner(props: Props) -> str:
    """``accounts/<id>`` or ``zones/<id>`` for the Access objects that live in either."""
    account, zone = props.get("accountId"), props.get("zoneId")
    if bool(account) == bool(zone):
        raise ProviderError("exactly one of accountId and zoneId is required")
    return f"accounts/{_segment(account, 'accountId')}" if account else f"zones/{_segment(zone, 'zoneId')}"


def one_of(name: str, allowed: tuple[str, ...], *, case_insensitive: bool = True) -> Callable[[Props], list[str]]:
    """The provider's OneOf(CaseInsensitive) validator of one input, for Check."""

    def check(inputs: Props) -> list[str]:
        value = inputs.get(name)
        if value is None:
            return []
        candidate = value.lower() if case_insensitive and isinstance(value, str) else value
        pool = [a.lower() for a in allowed] if case_insensitive else list(allowed)
        return [] if candidate in pool else [f"{name}: {value!r} is not one of {', '.join(allowed)}"]

    return check


def checks(*parts: Callable[[Props], list[str]]) -> Callable[[Props], list[str]]:
    return lambda inputs: [reason for part in parts for reason in part(inputs)]


def _read(call: Callable[[], Any]) -> Any | None:
    try:
        return call()
    except NotFoundError:
        return None


def _delete(call: Callable[[], Any]) -> None:
    with contextlib.suppress(NotFoundError):  # already gone: what the delete wanted
        call()


# -- cloudflare:index/zeroTrustTunnelCloudflared: /accounts/{id}/cfd_tunnel --------------------------

TUNNEL = "ZeroTrustTunnelCloudflared"
TUNNEL_PATH_INPUTS = ("accountId",)
TUNNEL_KEPT = ("configSrc", "tunnelSecret")


def _tunnel_path(props: Props, id_: str = "") -> str:
    base = f"accounts/{_segment(props.get('accountId'), 'accountId')}/cfd_tunnel"
    return f"{base}/{_segment(id_, 'id')}" if id_ else base


def _tunnel_outputs(result: Mapping[str, Any], known: Props) -> Props:
    found = outputs(TUNNEL, SNAKE, result, known, as_json=("metadata",))
    for key in TUNNEL_KEPT:  # the provider keeps these from its plan/state
        if key in known:
            found[key] = known[key]
    return found


def tunnel_create(config: Props, inputs: Props) -> tuple[str, Props]:
    body = body_of(inputs, SNAKE, skip=TUNNEL_PATH_INPUTS)
    result = client(config).call("POST", _tunnel_path(inputs), body)
    return result["id"], _tunnel_outputs(result, inputs)


def tunnel_read(config: Props, id_: str, state: Props) -> Props | None:
    result = _read(lambda: client(config).call("GET", _tunnel_path(state, id_)))
    if result is None or result.get("deleted_at"):
        return None
    return {**state, **_tunnel_outputs(result, state)}


def tunnel_update(config: Props, id_: str, olds: Props, news: Props) -> Props:
    changed = {
        k: news.get(k) for k in ("name", "tunnelSecret") if news.get(k) != olds.get(k) and news.get(k) is not None
    }
    result = client(config).call("PATCH", _tunnel_path(news, id_), SNAKE.to_api(changed))
    return _tunnel_outputs(result, news)


def tunnel_delete(config: Props, id_: str, state: Props) -> None:
    _delete(lambda: client(config).call("DELETE", _tunnel_path(state, id_)))


# -- cloudflare:index/zeroTrustTunnelCloudflaredConfig: …/cfd_tunnel/{id}/configurations ------------

TUNNEL_CONFIG = "ZeroTrustTunnelCloudflaredConfig"


def _config_path(props: Props) -> str:
    return f"{_tunnel_path(props, str(props.get('tunnelId') or ''))}/configurations"


def config_put(config: Props, inputs: Props) -> Props:
    body = body_of(inputs, CONFIG, skip=("accountId", "tunnelId"))
    result = client(config).call("PUT", _config_path(inputs), body)
    return outputs(TUNNEL_CONFIG, CONFIG, result, inputs)


def config_create(config: Props, inputs: Props) -> tuple[str, Props]:
    # The provider's ID of a configuration is its tunnel's.
    return str(inputs["tunnelId"]), config_put(config, inputs)


def config_read(config: Props, id_: str, state: Props) -> Props | None:
    props = {**state, "tunnelId": state.get("tunnelId") or id_}
    result = _read(lambda: client(config).call("GET", _config_path(props)))
    return None if result is None else {**props, **outputs(TUNNEL_CONFIG, CONFIG, result, props)}


# -- the Access objects and DNS records: one REST collection each ----------------------------------------


@dataclass(frozen=True)
class Collection:
    """A REST collection of the API: create is POST on it, read GET, update PUT and delete DELETE on
    ``<collection>/<id>``. ``skip`` are the path's inputs (never in a body), ``keep`` what the API
    answers only on creation and the provider keeps from its state."""

    sdk_class: str
    names: Names
    base: Callable[[Props], str]
    skip: tuple[str, ...]
    defaults: Props = field(default_factory=dict)
    as_json: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()

    def path(self, props: Props, id_: str = "") -> str:
        return f"{self.base(props)}/{_segment(id_, 'id')}" if id_ else self.base(props)

    def body(self, inputs: Props) -> Props:
        return body_of(inputs, self.names, skip=self.skip, defaults=self.defaults)

    def outputs(self, result: Mapping[str, Any], known: Props) -> Props:
        found = outputs(self.sdk_class, self.names, result, known, as_json=self.as_json)
        for key in self.keep:
            if key not in found and known.get(key):
                found[key] = known[key]
        return found

    def create(self, config: Props, inputs: Props) -> tuple[str, Props]:
        result = client(config).call("POST", self.path(inputs), self.body(inputs))
        return result["id"], self.outputs(result, inputs)

    def read(self, config: Props, id_: str, state: Props) -> Props | None:
        result = _read(lambda: client(config).call("GET", self.path(state, id_)))
        return None if result is None else {**state, **self.outputs(result, state)}

    def update(self, config: Props, id_: str, olds: Props, news: Props) -> Props:
        result = client(config).call("PUT", self.path(news, id_), self.body(news))
        return self.outputs(result, {**news, **{key: olds.get(key) for key in self.keep}})

    def delete(self, config: Props, id_: str, state: Props) -> None:
        _delete(lambda: client(config).call("DELETE", self.path(state, id_)))

    def kind(
        self, *, replace_on: tuple[str, ...], computed: tuple[str, ...], check: Callable[[Props], list[str]]
    ) -> Kind:
        return Kind(
            sdk_class=self.sdk_class,
            create=_guard_not_found(self.create),
            read=self.read,
            update=_guard_not_found(self.update),
            delete=self.delete,
            replace_on=replace_on,
            computed=computed,
            check=check,
        )


DNS_RECORDS = Collection(
    "DnsRecord", SNAKE, lambda props: f"zones/{_segment(props.get('zoneId'), 'zoneId')}/dns_records",
    # ``includeShadowMetadata`` is a provider-side setting, not a record field.
    skip=("zoneId", "includeShadowMetadata"), defaults={"proxied": False}, as_json=("meta",),
)  # fmt: skip
POLICIES = Collection(
    "ZeroTrustAccessPolicy", ACCESS,
    lambda props: f"accounts/{_segment(props.get('accountId'), 'accountId')}/access/policies",
    skip=("accountId",), defaults={"sessionDuration": "24h"},
)  # fmt: skip
SERVICE_TOKENS = Collection(
    "ZeroTrustAccessServiceToken", SNAKE, lambda props: f"{owner(props)}/access/service_tokens",
    skip=("accountId", "zoneId"), defaults={"duration": "8760h", "clientSecretVersion": 1}, keep=("clientSecret",),
)  # fmt: skip
APPLICATIONS = Collection(
    "ZeroTrustAccessApplication", ACCESS, lambda props: f"{owner(props)}/access/apps", skip=("accountId", "zoneId")
)


# -- invoke cloudflare:index/getZeroTrustTunnelCloudflaredToken: …/cfd_tunnel/{id}/token --------------


def tunnel_token(config: Props, args: Props) -> Props:
    tunnel_id = args.get("tunnelId")
    token = client(config).call("GET", f"{_tunnel_path(args, str(tunnel_id or ''))}/token")
    if not isinstance(token, str) or not token:
        raise ProviderError("the tunnel token answer has no token")
    return {"accountId": args.get("accountId"), "tunnelId": tunnel_id, "token": token}


def _token_invoke(config: Props, args: Props) -> Props:
    try:
        return tunnel_token(config, args)
    except NotFoundError as error:
        raise ProviderError(f"tunnel {args.get('tunnelId')} not found: {error}") from None


def _guard_not_found(operation: Callable[..., Any]) -> Callable[..., Any]:
    """A 404 outside ``read``/``delete`` (an update of something gone) is a failure the engine shows."""

    def run(*args: Any) -> Any:
        try:
            return operation(*args)
        except NotFoundError as error:
            raise ProviderError(f"not found: {error}") from None

    return run


DNS_TYPES = (
    "A", "AAAA", "CNAME", "MX", "NS", "OPENPGPKEY", "PTR", "TXT", "CAA", "CERT", "DNSKEY", "DS", "HTTPS", "LOC",
    "NAPTR", "SMIMEA", "SRV", "SSHFP", "SVCB", "TLSA", "URI",
)  # fmt: skip
APP_TYPES = (
    "self_hosted", "saas", "ssh", "vnc", "app_launcher", "warp", "biso", "bookmark", "dash_sso", "infrastructure",
    "rdp", "mcp", "mcp_portal", "proxy_endpoint",
)  # fmt: skip


def _owner_check(inputs: Props) -> list[str]:
    return (
        []
        if bool(inputs.get("accountId")) != bool(inputs.get("zoneId"))
        else ["exactly one of accountId and zoneId is required"]
    )


def _content_or_data(inputs: Props) -> list[str]:
    return (
        ["content and data conflict: set one"]
        if inputs.get("content") is not None and inputs.get("data") is not None
        else []
    )


PACKAGE = Package(
    name="cloudflare",
    version=VERSION,
    sdk_module=SDK_MODULE,
    kinds={
        "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared": Kind(
            sdk_class=TUNNEL,
            create=_guard_not_found(tunnel_create),
            read=tunnel_read,
            update=_guard_not_found(tunnel_update),
            delete=tunnel_delete,
            replace_on=("accountId", "configSrc"),
            computed=(
                "accountTag",
                "connections",
                "connsActiveAt",
                "connsInactiveAt",
                "createdAt",
                "deletedAt",
                "metadata",
                "remoteConfig",
                "status",
                "tunType",
            ),
            check=one_of("configSrc", ("local", "cloudflare")),
        ),
        "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig": Kind(
            sdk_class=TUNNEL_CONFIG,
            create=_guard_not_found(config_create),
            read=config_read,
            update=_guard_not_found(lambda config, id_, olds, news: config_put(config, news)),
            delete=lambda config, id_, state: None,
            replace_on=("accountId", "tunnelId"),
            computed=("createdAt", "version"),
            check=one_of("source", ("local", "cloudflare")),
        ),
        "cloudflare:index/dnsRecord:DnsRecord": DNS_RECORDS.kind(
            replace_on=("zoneId", "type"),
            computed=("commentModifiedOn", "createdOn", "meta", "modifiedOn", "proxiable", "tagsModifiedOn"),
            check=checks(one_of("type", DNS_TYPES), _content_or_data),
        ),
        "cloudflare:index/zeroTrustAccessPolicy:ZeroTrustAccessPolicy": POLICIES.kind(
            replace_on=("accountId",),
            computed=("appCount", "createdAt", "reusable", "updatedAt"),
            check=one_of("decision", ("allow", "deny", "non_identity", "bypass")),
        ),
        "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken": SERVICE_TOKENS.kind(
            replace_on=("accountId", "zoneId"),
            computed=("clientId", "clientSecret", "expiresAt"),
            check=_owner_check,
        ),
        "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication": APPLICATIONS.kind(
            replace_on=("accountId", "zoneId"),
            computed=("aud",),
            check=checks(_owner_check, one_of("type", APP_TYPES)),
        ),
    },
    invokes={
        "cloudflare:index/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken": _token_invoke,
    },
)


if __name__ == "__main__":
    serve(PACKAGE)

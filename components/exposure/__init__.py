"""Exposure: what makes the service reachable, through Cloudflare only.

:mod:`~components.exposure.component` is the component (provider, tunnel, its rules, the DNS
records); :mod:`~components.exposure.access` its Cloudflare Access application and policies;
:mod:`~components.exposure.connectors` the cloudflared connectors in the service's namespace;
:mod:`~components.exposure.args` its arguments, which the helpers import without the component.
"""

from __future__ import annotations

from components.exposure.args import ExposureArgs
from components.exposure.component import (
    CATCH_ALL_SERVICE,
    CLOUDFLARED_UID,
    EDGE_PORTS,
    METRICS_PORT_NAME,
    TOKEN_DIR,
    TOKEN_FILE_MODE,
    TOKEN_KEY,
    TOKEN_VOLUME,
    TUNNEL_CNAME_SUFFIX,
    TYPE,
    Exposure,
    ingress_rules,
)

__all__ = [
    "CATCH_ALL_SERVICE",
    "CLOUDFLARED_UID",
    "EDGE_PORTS",
    "METRICS_PORT_NAME",
    "TOKEN_DIR",
    "TOKEN_FILE_MODE",
    "TOKEN_KEY",
    "TOKEN_VOLUME",
    "TUNNEL_CNAME_SUFFIX",
    "TYPE",
    "Exposure",
    "ExposureArgs",
    "ingress_rules",
]

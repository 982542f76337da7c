"""Recording mocks and test helpers: for tests, the offline plan and library users' own tests.

:mod:`~components.testing.mocks` records every registration as the engine would see it, and
:mod:`~components.testing.monitor` is the mock monitor that records them and refuses what the engine
refuses; :mod:`~components.testing.running` runs programs under them;
:mod:`~components.testing.offline` runs a whole program offline (the ``plan`` command's run);
:mod:`~components.testing.pytest_plugin` offers the helpers as pytest fixtures
(registered by the ``service_lifecycle`` entry point). Every name is importable from here;
:class:`DictConfig` lives with the stack's configuration (:mod:`components.config.stack_config`).
"""

from __future__ import annotations

from components.config.stack_config import DictConfig
from components.testing.mocks import (
    DNS_RECORD_TYPES,
    REDACTED,
    SECRET_SIG,
    SECRET_VALUE_SIG,
    STACK_REFERENCE,
    TUNNEL_TOKEN_INVOKE,
    EngineRuleError,
    OfflineEcrClient,
    OutputsFn,
    RecordedInvoke,
    RecordedResource,
    RecordingMocks,
    canonical,
    dns_conflict,
    is_secret,
    kubernetes_identity,
    plausible_answer,
    redact,
    tunnel_token,
    unwrap,
    wrap_secret,
)
from components.testing.monitor import RecordingMonitor, engine_refusal, install_mocks, project_of
from components.testing.running import (
    config_values,
    make_settings,
    release_worker_loops,
    run_components,
    run_program,
)

__all__ = [
    "DNS_RECORD_TYPES",
    "REDACTED",
    "SECRET_SIG",
    "SECRET_VALUE_SIG",
    "STACK_REFERENCE",
    "TUNNEL_TOKEN_INVOKE",
    "DictConfig",
    "EngineRuleError",
    "OfflineEcrClient",
    "OutputsFn",
    "RecordedInvoke",
    "RecordedResource",
    "RecordingMocks",
    "RecordingMonitor",
    "canonical",
    "config_values",
    "dns_conflict",
    "engine_refusal",
    "install_mocks",
    "is_secret",
    "kubernetes_identity",
    "make_settings",
    "plausible_answer",
    "project_of",
    "redact",
    "release_worker_loops",
    "run_components",
    "run_program",
    "tunnel_token",
    "unwrap",
    "wrap_secret",
]

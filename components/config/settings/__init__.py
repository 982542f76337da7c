"""Typed, validated settings read from the stack configuration.

Every value the program uses comes through :func:`load_settings`. All keys are read, every
problem is collected, and a single :class:`SettingsError` lists one line per bad key (full key
name, the value given, what was expected) before any resource is registered. Secrets are read
only with ``get_secret``/``require_secret`` and stay :class:`pulumi.Output` secrets.

Defaults, types and descriptions live in :mod:`components.config.schema`, the one source of truth
(this repository's ``Pulumi.yaml`` declares the same; a test checks that they agree). Settings can
also be built without a stack: :func:`settings_from_mapping` and :meth:`Settings.create`, with the
same checks and error lines; :func:`load_services` reads several services from one stack.

The package by step, every name importable from here, each module importing only those above it:
:mod:`~components.config.problems` (a problem line and which values it may show, shared with the
stack-file stages), :mod:`~components.config.settings.model` (the constants, the error, the parts'
dataclasses), :mod:`~components.config.settings.reading` (the reader, value and quantity parsing),
:mod:`~components.config.settings.steps` (one step per part), :mod:`~components.config.settings.loading`
(:class:`Settings`, :func:`load_settings`, a mapping or keywords instead of a stack file) and
:mod:`~components.config.settings.sources` (several services).
"""

from __future__ import annotations

from components.config.problems import (
    PROJECT,
    SECRET_MARK,
    SECRET_NAME,
    SHOWN_CHARS,
    SettingProblem,
    cut,
    looks_secret,
    shown_value,
)
from components.config.settings.loading import Settings, config_text, load_settings, settings_from_mapping
from components.config.settings.model import (
    MAX_KUBE_CONTEXT,
    MAX_SERVICE_NAME,
    QUANTITY_MAX,
    SUPPORTED_KUBERNETES,
    BuildSettings,
    CloudflareSettings,
    ConfigSource,
    KubernetesSettings,
    MonitoringSettings,
    PromotionSettings,
    RegistrySettings,
    Resources,
    SettingsError,
    VerifySettings,
    key,
)
from components.config.settings.reading import _Reader, cpu_millicores, in_quantity_range, memory_bytes
from components.config.settings.sources import RESERVED_NAMESPACES, SERVICES_KEY, image_ref_output, load_services

__all__ = [
    "MAX_KUBE_CONTEXT",
    "MAX_SERVICE_NAME",
    "PROJECT",
    "QUANTITY_MAX",
    "RESERVED_NAMESPACES",
    "SECRET_MARK",
    "SECRET_NAME",
    "SERVICES_KEY",
    "SHOWN_CHARS",
    "SUPPORTED_KUBERNETES",
    "BuildSettings",
    "CloudflareSettings",
    "ConfigSource",
    "KubernetesSettings",
    "MonitoringSettings",
    "PromotionSettings",
    "RegistrySettings",
    "Resources",
    "SettingProblem",
    "Settings",
    "SettingsError",
    "VerifySettings",
    "_Reader",
    "config_text",
    "cpu_millicores",
    "cut",
    "image_ref_output",
    "in_quantity_range",
    "key",
    "load_services",
    "load_settings",
    "looks_secret",
    "memory_bytes",
    "settings_from_mapping",
    "shown_value",
]

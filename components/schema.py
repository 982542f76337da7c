"""Deprecated alias of :mod:`components.config.schema` (moved in 0.3.0): import from there.

The stable names (docs/api.md) are importable from here too, until 1.0.
"""

from __future__ import annotations

from components.config.schema import (
    BY_NAME,
    BY_PYTHON_NAME,
    SECRETS,
    SETTINGS,
    Setting,
    project_config,
    render_project_config,
)

__all__ = ["BY_NAME", "BY_PYTHON_NAME", "SECRETS", "SETTINGS", "Setting", "project_config", "render_project_config"]

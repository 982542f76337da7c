"""Deprecated alias of :mod:`components.config.stack_config` (moved in 0.3.0): import from there.

The stable names (docs/api.md) are importable from here too, until 1.0.
"""

from __future__ import annotations

from components.config.stack_config import StackConfig, StackFileError, load_stack_config

__all__ = ["StackConfig", "StackFileError", "load_stack_config"]

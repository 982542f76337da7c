"""Deprecated alias of :mod:`components.config.settings` (moved in 0.3.0): import from there.

Every name of the package is importable from here too, until 1.0.
"""

from __future__ import annotations

from components.config.settings import *  # noqa: F403
from components.config.settings import __all__  # noqa: F401

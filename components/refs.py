"""What "pinned by digest" means, in one place for every part that checks an image reference."""

from __future__ import annotations

import re
from typing import Final

DIGEST: Final = re.compile(r"^sha256:[0-9a-f]{64}$")
"""A manifest digest: ``sha256:`` and 64 lower-case hex digits."""

DIGEST_REF: Final = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
"""An immutable image reference: ``<repository>[:tag]@sha256:<64 hex>``."""

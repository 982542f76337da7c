"""``python -m components schema [--markdown]``: print the ``config:`` block of every setting, from
:mod:`components.config.schema`; with ``--markdown``, the reference ``docs/settings.md``."""

from __future__ import annotations

import argparse
import sys

from components.config.schema import render_markdown, render_project_config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components schema",
        description="Print the config: block of a Pulumi.yaml that declares every setting of the library.",
    )
    parser.add_argument("--markdown", action="store_true", help="print the settings reference (docs/settings.md)")
    args = parser.parse_args(argv)
    sys.stdout.write(render_markdown() if args.markdown else render_project_config())
    return 0

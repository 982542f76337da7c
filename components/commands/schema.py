"""``python -m components schema``: print the ``config:`` block of every setting, from
:mod:`components.config.schema`."""

from __future__ import annotations

import argparse
import sys

from components.config.schema import render_project_config


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components schema",
        description="Print the config: block of a Pulumi.yaml that declares every setting of the library.",
    )
    parser.parse_args(argv)
    sys.stdout.write(render_project_config())
    return 0

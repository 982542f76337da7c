"""``python -m components <command>``: see components/commands/cli.py."""

import sys

from components.commands.cli import main

sys.exit(main(sys.argv[1:]))

"""The rollback's pin: ``python -m components rollback-target --stack S --exclude REF``.

Prints the newest digest the stack deployed whose latest deploy verification passed (the ledger,
:func:`components.commands.retention.last_good`), never the excluded (breached) one. With
``--github-output`` it also writes ``image_ref=`` and ``digest=`` to ``$GITHUB_OUTPUT``, where the
deploy workflow reads the ``pinnedDigest`` of its rollback ``up``.

Exit 0 with a pin; 1 when no other digest ever passed verification (nothing is safe to roll back
to: production stays where it is, and the message says so); 2 on bad input or a broken ledger.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from components.commands import retention
from components.refs import DIGEST_REF


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components rollback-target",
        description="the last digest of a stack that passed deploy verification (the rollback's pinnedDigest)",
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--exclude", help="the breached release (repo@sha256:…): never chosen")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument(
        "--github-output", action="store_true", help="also write image_ref= and digest= to $GITHUB_OUTPUT"
    )
    args = parser.parse_args(argv)
    if args.exclude and not DIGEST_REF.match(args.exclude):
        print(f"error: --exclude {args.exclude!r}: expected repo@sha256:<64 hex>")
        return 2
    try:
        ref = retention.last_good(args.project_dir, args.stack, exclude=args.exclude)
    except retention.LedgerError as error:
        print(f"error: {error}")
        return 2
    if ref is None:
        print(
            f"::error::no digest of stack {args.stack} other than the breached one passed deploy verification "
            f"({retention.verification_path(args.project_dir, args.stack)}): nothing safe to roll back to; "
            f"{args.stack} stays on what it runs now"
        )
        return 1
    digest = ref.rsplit("@", 1)[1]
    print(f"roll {args.stack} back to {ref} (the last digest that passed verification)")
    if args.github_output:
        target = os.environ.get("GITHUB_OUTPUT")
        if not target:
            print("error: --github-output: $GITHUB_OUTPUT is not set")
            return 2
        with open(target, "a", encoding="utf-8") as out:
            out.write(f"image_ref={ref}\ndigest={digest}\n")
    return 0

"""The retention ledger: which digests each stack deployed, so a sunset keeps every stack's last N.

``deployments/<stack>.txt`` holds one ``repo@sha256:…`` per line, oldest first: the deploy workflow
appends what ``pulumi up`` deployed (``python -m components ledger --stack S --image-ref REF``) and
commits the file to main. ``deployments/<stack>.verify.jsonl`` beside it records each deploy
verification (``verify-deploy``): one JSON object per line, ``{"image_ref", "result", "time"}`` with
result ``passed``, ``breached`` or ``not-verified``; :func:`last_good` (the rollback's pin) is the
newest digest whose latest verification passed. Why a committed file: a Pulumi stack cannot read its own previous
outputs, the state only knows what runs now, and a sunset report exists only after a sunset. The
file survives the stack, is reviewed like code, and its git history says when each digest went out.

:func:`retained_by_others` is what a decommission must keep for the other stacks: for every stack
that ever deployed from the same repository (a stack file, a ledger or a sunset report names it),
its last ``imageRetainDigests`` digests (from its ledger and its sunset report), plus what a live
stack runs. A reference is of the repository by :func:`components.registry.model.same_repository`
(normalised, a ``repo:tag@sha256:…`` line included).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from components.commands.stage_file import stack_file, stack_name
from components.config.stack_config import StackFileError, load_stack_config, stack_files
from components.refs import DIGEST_REF
from components.registry.model import normalize_digest, normalize_repository, same_repository

LEDGER_DIR: Final = "deployments"
DEFAULT_RETAIN: Final = 1
VERIFICATION_RESULTS: Final = ("passed", "breached", "not-verified")


class LedgerError(ValueError):
    """A ledger line or an image reference that is not ``repo@sha256:<64 hex>``."""


def ledger_path(project_dir: Path, stack: str) -> Path:
    return project_dir / LEDGER_DIR / f"{stack_name(stack)}.txt"


def history(project_dir: Path, stack: str) -> list[str]:
    """The references ``stack`` deployed, oldest first; [] without a ledger."""
    path = ledger_path(project_dir, stack)
    if not path.is_file():
        return []
    refs = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not DIGEST_REF.match(text):
            raise LedgerError(f"{path}: line {number}: {text!r} is not repo@sha256:<64 hex>")
        refs.append(text)
    return refs


def record(project_dir: Path, stack: str, image_ref: str) -> bool:
    """Append ``image_ref`` to the stack's ledger unless it is already the last line; True when appended."""
    if not DIGEST_REF.match(image_ref):
        raise LedgerError(f"--image-ref {image_ref!r}: expected the image_ref output, repo@sha256:<64 hex>")
    refs = history(project_dir, stack)
    if refs and refs[-1] == image_ref:
        return False
    path = ledger_path(project_dir, stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as ledger:
        if not refs and path.stat().st_size == 0:
            ledger.write(f"# digests stack {stack} deployed, oldest first (written by the deploy workflow)\n")
        ledger.write(image_ref + "\n")
    return True


def verification_path(project_dir: Path, stack: str) -> Path:
    return project_dir / LEDGER_DIR / f"{stack_name(stack)}.verify.jsonl"


def verifications(project_dir: Path, stack: str) -> list[dict[str, str]]:
    """The stack's recorded verifications, oldest first; [] without a file."""
    path = verification_path(project_dir, stack)
    if not path.is_file():
        return []
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry: Any = json.loads(line)
        except ValueError:
            raise LedgerError(f"{path}: line {number}: not a JSON object") from None
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("image_ref"), str)
            or not DIGEST_REF.match(entry["image_ref"])
            or entry.get("result") not in VERIFICATION_RESULTS
        ):
            raise LedgerError(
                f'{path}: line {number}: expected {{"image_ref": "repo@sha256:<64 hex>", "result": '
                f"{' | '.join(VERIFICATION_RESULTS)}}}"
            )
        found.append({"image_ref": entry["image_ref"], "result": entry["result"], "time": str(entry.get("time", ""))})
    return found


def record_verification(project_dir: Path, stack: str, image_ref: str, result: str, when: str | None = None) -> None:
    """Append one verification result of ``image_ref`` to the stack's verification ledger."""
    if not DIGEST_REF.match(image_ref):
        raise LedgerError(f"--image-ref {image_ref!r}: expected repo@sha256:<64 hex>")
    if result not in VERIFICATION_RESULTS:
        raise LedgerError(f"--verification {result!r}: expected one of {', '.join(VERIFICATION_RESULTS)}")
    verifications(project_dir, stack)  # refuse to append to a file that is already broken
    path = verification_path(project_dir, stack)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = when or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    with path.open("a") as ledger:
        ledger.write(json.dumps({"image_ref": image_ref, "result": result, "time": stamp}) + "\n")


def _latest_results(project_dir: Path, stack: str) -> dict[str, str]:
    """Digest → the result of its newest verification."""
    return {normalize_digest(v["image_ref"]): v["result"] for v in verifications(project_dir, stack)}


def last_good(project_dir: Path, stack: str, exclude: str | None = None) -> str | None:
    """The newest reference the stack deployed whose latest verification passed (not ``exclude``'s
    digest): what a rollback pins. None when no deployed digest ever passed."""
    results = _latest_results(project_dir, stack)
    skip = normalize_digest(exclude) if exclude else None
    deployed = list(reversed(history(project_dir, stack)))
    deployed += [v["image_ref"] for v in reversed(verifications(project_dir, stack))]
    for ref in dict.fromkeys(deployed):
        digest = normalize_digest(ref)
        if digest != skip and results.get(digest) == "passed":
            return ref
    return None


def previous_release(project_dir: Path, stack: str, image_ref: str) -> str | None:
    """What ``image_ref`` is compared with: the last good other digest, else the one deployed before it."""
    good = last_good(project_dir, stack, exclude=image_ref)
    if good:
        return good
    mine = normalize_digest(image_ref)
    others = [r for r in reversed(history(project_dir, stack)) if normalize_digest(r) != mine]
    return others[0] if others else None


def _report_refs(project_dir: Path, stack: str) -> list[str]:
    """``production_image_refs`` of the stack's committed sunset report (newest first), if any."""
    path = project_dir / f"sunset-{stack}.json"
    try:
        report: Any = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    refs = report.get("production_image_refs") if isinstance(report, dict) else None
    return [r for r in refs or [] if isinstance(r, str) and DIGEST_REF.match(r)]


def stacks_of(project_dir: Path) -> list[str]:
    """Every stack the repository knows: stack files, ledgers, sunset reports."""
    names = {name for name, _ in stack_files(project_dir)}
    names |= {p.stem for p in (project_dir / LEDGER_DIR).glob("*.txt")}
    names |= {p.name[len("sunset-") : -len(".json")] for p in project_dir.glob("sunset-*.json")}
    return sorted(names)


def newest_first(project_dir: Path, stack: str, current: list[str] | None = None) -> list[str]:
    """Every reference ``stack`` is known to have run, newest first: ``current`` (what its state says
    now, newest first), then its ledger (newest first), then its sunset report."""
    refs = list(current or []) + list(reversed(history(project_dir, stack))) + _report_refs(project_dir, stack)
    return list(dict.fromkeys(refs))


def retained_by_others(project_dir: Path, stack: str, repository: str) -> dict[str, list[str]]:
    """For each other stack that deployed from ``repository``: the digests its retention keeps.

    A stack whose file cannot be read keeps every digest it ever ran (the safe side); a stack
    without a stack file (deleted after its sunset) keeps its last 1.
    """
    mine = normalize_repository(repository)
    kept: dict[str, list[str]] = {}
    for other in stacks_of(project_dir):
        if other == stack_name(stack):
            continue
        refs = newest_first(project_dir, other)
        retain = DEFAULT_RETAIN
        same = any(same_repository(r, mine) for r in refs)
        if stack_file(project_dir, other).is_file():
            try:
                config = load_stack_config(project_dir, other)
            except StackFileError:
                retain = len(refs)
            else:
                values, key = config.values, config.key  # the project's own namespace
                raw = values.get(key("imageRetainDigests"), str(DEFAULT_RETAIN))
                retain = int(raw) if raw.isdigit() else len(refs)
                repo = values.get(key("imageRepository"))
                same = same or (repo is not None and normalize_repository(repo) == mine)
        if same:
            mine_refs = [r for r in refs if same_repository(r, mine)]
            kept[other] = list(dict.fromkeys(normalize_digest(r) for r in mine_refs))[:retain]
    return kept


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components ledger", description="record a deployed digest in deployments/<stack>.txt"
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--image-ref", required=True, help="the stack's image_ref output (repo@sha256:…)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument(
        "--verification", choices=VERIFICATION_RESULTS,
        help="also record this verify-deploy result of the reference in deployments/<stack>.verify.jsonl",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        added = record(args.project_dir, args.stack, args.image_ref)
        if args.verification:
            record_verification(args.project_dir, args.stack, args.image_ref, args.verification)
    except LedgerError as error:
        print(f"error: {error}")
        return 2
    path = ledger_path(args.project_dir, args.stack)
    print(f"{path}: {'recorded' if added else 'already the last line:'} {args.image_ref}")
    if args.verification:
        print(f"{verification_path(args.project_dir, args.stack)}: {args.verification} {args.image_ref}")
    return 0

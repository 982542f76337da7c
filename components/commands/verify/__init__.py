"""Deploy verification: ``python -m components verify-deploy --stack S``.

After a rollout, the service's own Prometheus metrics over a window are judged twice:

(a) against the stack's SLO settings: the error ratio of user requests against ``verifyMaxBurnRate``
    times the error budget (``100 - sloAvailabilityTarget``), the p95 against ``latencyP95Seconds``,
    container restarts against ``verifyMaxRestarts``, CPU saturation against ``verifyMaxSaturation``;
(b) against the previous release over a window of the same length just before the rollout, each
    read from Prometheus by its digest (the ``digest`` label of ``app_build_info``, joined on the
    scrape target): a one-sided **two-proportion z-test** on the error ratios and a one-sided
    **Mann-Whitney U test** on the latencies (the histogram's buckets are the ranks, with the tie
    correction), each at ``verifySignificance``. A significant difference breaches only when it also
    matters: an error ratio at least ``verifyErrorRatioMargin`` above the baseline's, a p95 at least
    ``verifyLatencyRatio`` times the baseline's.

Each window must hold ``verifyMinRequests`` user requests (probe and scrape routes left out, as in
the SLO rules): a quiet service is "not enough data", never a pass. The first release (no previous
digest) is judged on (a) alone, and says so.

Exit status: 0 healthy; 1 breached (each breach named with its value, bound and baseline); 2 bad
input; 3 not verified (Prometheus unreachable, a 4xx/5xx answer, a body that is not Prometheus's
JSON, an empty result, not enough requests), with the reason. Requests have a timeout and a bounded
number of retries (network errors, 429 and 5xx only). Prometheus's URL is printed without user
information or query, and a bearer token is read from an environment variable, never printed.

When the ledger's last deploy already is the judged digest (a deploy that rolled nothing out), or
with ``--no-baseline``, only (a) is judged.

Every series is read with ``query_range`` (HTTP API v1) at ``verifyIntervalSeconds`` steps, so the
same figures give the window's totals and the before/after chart of the Markdown summary.

The package: ``stats`` (the tests), ``prometheus`` (the API client), ``judge`` (what is read and
judged), ``report`` (JSON and Markdown); the command line is here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from datetime import datetime
from pathlib import Path
from typing import Final

from components.commands import retention
from components.commands.smoke import header_problem
from components.commands.verify.judge import (
    CONTAINER,
    EXIT_BREACHED,
    EXIT_HEALTHY,
    EXIT_NOT_VERIFIED,
    EXIT_USAGE,
    Check,
    Target,
    Verdict,
    Window,
    _iso,
    figure,
    judge,
    read_window,
    verify_release,
)
from components.commands.verify.prometheus import NotVerifiedError, Prometheus, public_url
from components.commands.verify.report import to_json, to_markdown
from components.commands.verify.stats import (
    bin_counts,
    histogram_quantile,
    mann_whitney_binned,
    normal_sf,
    two_proportion_z,
)
from components.config import schema
from components.config.settings import SECRET_MARK, Settings, SettingsError, VerifySettings, load_settings
from components.config.stack_config import StackFileError, load_stack_config
from components.refs import DIGEST_REF

__all__ = [
    "CONTAINER", "EXIT_BREACHED", "EXIT_HEALTHY", "EXIT_NOT_VERIFIED", "EXIT_USAGE", "RESULTS", "Check",
    "NotVerifiedError", "Prometheus", "Target", "UsageError", "Verdict", "VerifySettings", "Window", "bin_counts",
    "histogram_quantile", "judge", "main", "mann_whitney_binned", "normal_sf", "public_url", "read_stack",
    "read_window", "to_json", "to_markdown", "two_proportion_z", "verify_release",
]  # fmt: skip


class UsageError(ValueError):
    """Bad input: exit 2 with the reason."""


def _timestamp(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {raw!r}: expected Unix seconds or an ISO 8601 time such as 2026-01-31T12:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise UsageError(f"--since {raw!r}: an ISO 8601 time needs its zone (Z or +hh:mm)")
    return parsed.timestamp()


def _digest(option: str, ref: str) -> str:
    if not DIGEST_REF.match(ref):
        raise UsageError(f"{option} {ref!r}: expected repo@sha256:<64 hex>")
    return ref.rsplit("@", 1)[1]


def read_stack(project_dir: Path, stack: str) -> Settings:
    """The stack's validated settings (a stand-in commit: verification reads no build setting)."""
    try:
        config = load_stack_config(project_dir, stack)
    except StackFileError as error:
        raise UsageError("\n".join(str(p) for p in error.problems)) from None
    environ = {"SOURCE_REVISION": "0" * 40}
    try:
        return load_settings(config.source(), environ=environ, namespace=config.project)
    except SettingsError as error:
        # Secrets live in the Pulumi service, not the stack file, and verification reads none of them.
        missing = [p for p in error.problems if p.value == "<not set>" and p.key.rpartition(":")[2] in schema.SECRETS]
        if len(missing) < len(error.problems):
            raise UsageError(str(error)) from None
        for problem in missing:
            config.values[problem.key] = SECRET_MARK
    try:
        return load_settings(config.source(), environ=environ, namespace=config.project)
    except SettingsError as error:
        raise UsageError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components verify-deploy",
        description="judge the window after a rollout against the SLO and the previous release (Prometheus)",
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--prometheus-url", default=os.environ.get("PROMETHEUS_URL", ""),
                        help="Prometheus base URL (default: $PROMETHEUS_URL)")  # fmt: skip
    parser.add_argument("--bearer-token-env", metavar="VAR", help="send Authorization: Bearer $VAR (never printed)")
    parser.add_argument("--header-from-env", metavar="NAME=VAR", action="append", default=[],
                        help="send header NAME with the value of $VAR (e.g. Cloudflare Access's service token); "
                             "repeatable, never printed")  # fmt: skip
    parser.add_argument("--image-ref", help="the release to judge (default: the ledger's last line)")
    parser.add_argument("--baseline-image-ref",
                        help="the previous release (default: the ledger's last other digest that passed verification, "
                             "else the one deployed before)")  # fmt: skip
    parser.add_argument("--no-baseline", action="store_true", help="judge against the SLO only")
    parser.add_argument("--since", help="when the rollout finished: Unix seconds or ISO 8601 (default: one window ago)")
    parser.add_argument("--wait", action="store_true", help="sleep until the window after --since has passed")
    parser.add_argument("--namespace", help="default: <serviceName>-<stage>")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    parser.add_argument("--retries", type=int, default=2, help="retries of a failed request (default 2)")
    parser.add_argument("--out", type=Path, help="write verify.json and verify.md here")
    parser.add_argument("--record", action="store_true",
                        help="record the result in the ledger (deployments/<stack>.verify.jsonl)")  # fmt: skip
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    settings = read_stack(args.project_dir, args.stack)
    verify = settings.monitoring.verify
    url = args.prometheus_url
    if not url:
        raise UsageError("--prometheus-url (or $PROMETHEUS_URL): not set; expected Prometheus's base URL")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https") or not urllib.parse.urlsplit(url).hostname:
        raise UsageError(f"--prometheus-url {public_url(url)!r}: expected an http:// or https:// URL")
    if not 0 < args.timeout <= 300:
        raise UsageError(f"--timeout {args.timeout}: expected seconds above 0, at most 300")
    if not 0 <= args.retries <= 10:
        raise UsageError(f"--retries {args.retries}: expected 0 to 10")
    headers: dict[str, str] = {}
    if args.bearer_token_env:
        token = os.environ.get(args.bearer_token_env)
        if not token:
            raise UsageError(f"--bearer-token-env {args.bearer_token_env}: the variable is not set or empty")
        problem = header_problem("Authorization", token)
        if problem:
            raise UsageError(f"--bearer-token-env {args.bearer_token_env}: {problem}")
        headers["Authorization"] = f"Bearer {token}"
    for spec in args.header_from_env:
        name, sep, var = spec.partition("=")
        if not sep or not name or not var:
            raise UsageError(f"--header-from-env {spec!r}: expected NAME=ENV_VAR")
        value = os.environ.get(var)
        if not value:
            raise UsageError(f"--header-from-env {name}={var}: the variable is not set or empty")
        problem = header_problem(name, value)
        if problem:
            raise UsageError(f"--header-from-env {name}={var}: {problem}")
        headers[name] = value
    try:
        history = retention.history(args.project_dir, args.stack)
        image_ref = args.image_ref or (history[-1] if history else None)
        if not image_ref:
            raise UsageError(
                f"--image-ref: not given and {retention.ledger_path(args.project_dir, args.stack)} is empty"
            )
        digest = _digest("--image-ref", image_ref)
        baseline_ref: str | None = None
        unchanged = not args.baseline_image_ref and bool(history) and history[-1].endswith("@" + digest)
        if unchanged:
            # The ledger's last deploy is this digest: nothing rolled out, so no previous release to compare.
            print(f"{image_ref} is already the ledger's last deploy: no rollout, judged on the SLO alone")
        if not args.no_baseline and not unchanged:
            baseline_ref = args.baseline_image_ref or retention.previous_release(
                args.project_dir, args.stack, image_ref
            )
        baseline_digest = _digest("--baseline-image-ref", baseline_ref) if baseline_ref else None
    except (retention.LedgerError, ValueError) as error:
        raise UsageError(str(error)) from None
    if baseline_digest == digest:
        raise UsageError(
            f"--baseline-image-ref {baseline_ref!r}: the same digest as --image-ref; expected the previous release"
        )
    now = time.time()
    since = _timestamp(args.since) if args.since else now - verify.window_seconds
    end = since + verify.window_seconds
    if end > now:
        if not args.wait:
            raise UsageError(
                f"--since {_iso(since)}: the {verify.window_seconds} s window ends at {_iso(end)}, in the future; "
                "pass --wait to sleep until then"
            )
        print(f"waiting {end - now:.0f} s for the window to close at {_iso(end)}", flush=True)
        time.sleep(end - now + 2 * verify.interval_seconds)  # + two steps: the last scrapes land
    prom = Prometheus(url, headers, timeout=args.timeout, retries=args.retries)
    namespace = args.namespace or settings.namespace
    target = Target(namespace=namespace, job=settings.service_name)
    print(f"verify-deploy {args.stack}: release {digest} from {_iso(since)} for {verify.window_seconds} s, "
          f"against {baseline_digest or 'no previous release'}, Prometheus {public_url(url)}", flush=True)  # fmt: skip
    verdict = verify_release(
        prom, target, digest=digest, baseline_digest=baseline_digest, since=since,
        slo_availability=settings.monitoring.slo_availability,
        latency_p95_seconds=settings.monitoring.latency_p95_seconds, verify=verify,
    )  # fmt: skip
    report = to_json(verdict, stack=args.stack, image_ref=image_ref, baseline_ref=baseline_ref)
    for check in verdict.checks:
        print(f"  {check.metric}: {figure(check.value)} (bound {check.bound}; previous {figure(check.baseline)}): "
              f"{check.verdict}{f' - {check.detail}' if check.detail else ''}")  # fmt: skip
    print(f"{verdict.status.upper()}: " + ("; ".join(verdict.reasons) or "every check passed"))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "verify.json").write_text(json.dumps(report, indent=2) + "\n")
        (args.out / "verify.md").write_text(to_markdown(report))
    if args.record:
        retention.record_verification(args.project_dir, args.stack, image_ref, RESULTS[verdict.exit_code])
    return verdict.exit_code


RESULTS: Final = {EXIT_HEALTHY: "passed", EXIT_BREACHED: "breached", EXIT_NOT_VERIFIED: "not-verified"}
"""Exit status → the result the ledger records."""

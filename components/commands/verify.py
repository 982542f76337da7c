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
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from components.commands import retention
from components.commands.smoke import header_problem
from components.config import schema
from components.config.settings import SECRET_MARK, Settings, SettingsError, VerifySettings, load_settings
from components.config.stack_config import StackFileError, load_stack_config
from components.monitoring.rules import NON_USER_ROUTES, error_budget
from components.refs import DIGEST_REF

EXIT_HEALTHY: Final = 0
EXIT_BREACHED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_VERIFIED: Final = 3

CONTAINER: Final = "app"
"""The app's container name (components/workload/pod.py), for restarts and CPU."""
_BODY_LIMIT: Final = 8 * 1024 * 1024
_DIGEST_HEX: Final = 64


class NotVerifiedError(Exception):
    """Prometheus could not give an answer to judge: the reason, for exit 3."""


class UsageError(ValueError):
    """Bad input: exit 2 with the reason."""


# ---- statistics (standard library only) --------------------------------------------------------


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """One-sided two-proportion z-test (pooled) of H1: x1/n1 > x2/n2. Returns (z, p-value)."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one observation")
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0  # both all-success (or all-failure): no evidence of a difference
    z = (x1 / n1 - x2 / n2) / se
    return z, normal_sf(z)


def mann_whitney_binned(candidate: Sequence[int], baseline: Sequence[int]) -> tuple[float, float, float]:
    """One-sided Mann-Whitney U test of H1: candidate values tend to be larger, on binned samples.

    ``candidate[i]`` and ``baseline[i]`` count the observations in the i-th ordered bin (a histogram's
    buckets); observations in one bin are ties. U counts the (candidate, baseline) pairs where the
    candidate is larger, ties counting a half; normal approximation with the tie correction and a
    continuity correction. Returns (U, z, p-value).
    """
    if len(candidate) != len(baseline):
        raise ValueError("the samples must have the same bins")
    n1, n2 = sum(candidate), sum(baseline)
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both samples need at least one observation")
    u = 0.0
    below = 0
    for c, b in zip(candidate, baseline, strict=True):
        u += c * (below + b / 2)
        below += b
    total = n1 + n2
    ties = sum((c + b) ** 3 - (c + b) for c, b in zip(candidate, baseline, strict=True))
    variance = n1 * n2 / 12 * ((total + 1) - ties / (total * (total - 1))) if total > 1 else 0.0
    if variance <= 0:
        return u, 0.0, 1.0  # every observation in one bin: no evidence either way
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return u, z, normal_sf(z)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus's ``histogram_quantile`` on cumulative ``(le, count)`` pairs (sorted, +Inf last)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return lower_bound  # the highest finite bound, as Prometheus answers
            if count == lower_count:
                return le
            return lower_bound + (le - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = le, count
    return lower_bound


def bin_counts(cumulative: Sequence[tuple[float, float]]) -> list[int]:
    """Per-bucket counts (rounded) from cumulative ``(le, count)`` pairs."""
    counts, previous = [], 0.0
    for _, count in cumulative:
        counts.append(max(0, round(count - previous)))
        previous = max(previous, count)
    return counts


# ---- Prometheus ---------------------------------------------------------------------------------


def public_url(url: str) -> str:
    """``url`` without user information, query or fragment: safe to print."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass
class Prometheus:
    """HTTP API v1 ``query_range`` with a timeout and bounded retries; every failure is :class:`NotVerifiedError`."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    requests: int = 0
    """How many HTTP requests were made (the benchmark reports it)."""

    def query_range(self, promql: str, start: float, end: float, step: int) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step})
        endpoint = public_url(self.url).rstrip("/") + "/api/v1/query_range?" + params
        where = public_url(self.url)
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(min(self.backoff * 2 ** (attempt - 1), 30.0))
            try:
                status, content_type, body = self._get(endpoint)
            except (OSError, http.client.HTTPException, urllib.error.URLError) as error:
                reason = getattr(error, "reason", error)
                last = f"Prometheus at {where} is unreachable: {type(error).__name__}: {reason}"
                continue
            if status == 429 or status >= 500:
                last = f"Prometheus at {where} answered HTTP {status}{_error_of(body)}"
                continue
            if status >= 400:
                raise NotVerifiedError(f"Prometheus at {where} answered HTTP {status}{_error_of(body)}")
            return _result(body, content_type, where, promql)
        raise NotVerifiedError(f"{last} (after {self.retries + 1} attempts)")

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.username is not None and "Authorization" not in self.headers:
            # user:password@ in the URL becomes Basic authentication; the URL is only ever shown without it.
            pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            self.headers = {**self.headers, "Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    def _get(self, endpoint: str) -> tuple[int, str, bytes]:
        self.requests += 1
        # The scheme is checked (http or https) before any request.
        request = urllib.request.Request(endpoint, headers={"Accept": "application/json", **self.headers})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, response.headers.get("Content-Type", ""), response.read(_BODY_LIMIT)
        except urllib.error.HTTPError as error:
            body = error.read(_BODY_LIMIT) if error.fp else b""
            return error.code, error.headers.get("Content-Type", "") if error.headers else "", body


def _error_of(body: bytes) -> str:
    """Prometheus's own error text from a JSON error body, if it is one."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return f": {data.get('errorType', 'error')}: {' '.join(data['error'].split())[:300]}"
    return ""


def _result(body: bytes, content_type: str, where: str, promql: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(body)
    except ValueError:
        kind = "HTML" if b"<html" in body[:512].lower() or "html" in content_type else "not JSON"
        raise NotVerifiedError(
            f"Prometheus at {where} answered {kind} ({content_type or 'no content type'}), not its API's JSON"
        ) from None
    if not isinstance(data, dict) or data.get("status") != "success" or not isinstance(data.get("data"), dict):
        raise NotVerifiedError(
            f"Prometheus at {where} answered JSON that is not a successful API answer{_error_of(body)}"
        )
    result = data["data"].get("result")
    if data["data"].get("resultType") != "matrix" or not isinstance(result, list):
        raise NotVerifiedError(f"Prometheus at {where} answered no matrix for a range query ({promql[:80]}...)")
    return result


def _values(series: dict[str, Any]) -> list[tuple[float, float]]:
    out = []
    for point in series.get("values") or []:
        try:
            t, v = float(point[0]), float(point[1])
        except (TypeError, ValueError, IndexError):
            raise NotVerifiedError('Prometheus answered a sample that is not [time, "number"]') from None
        if math.isfinite(v):
            out.append((t, v))
    return out


# ---- what is read and how it is judged --------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What to read: the service's series in its namespace, of one release."""

    namespace: str
    job: str

    def release(self, digest: str) -> str:
        """Per scrape target: 1 when the target runs ``digest`` (joins on job and instance)."""
        return (
            f'max by (job, instance) (app_build_info{{namespace="{self.namespace}",job="{self.job}",'
            f'digest="{digest}"}})'
        )

    def users(self, extra: str = "") -> str:
        routes = "|".join(NON_USER_ROUTES)
        return f'namespace="{self.namespace}",job="{self.job}",route!~"{routes}"{extra}'

    def requests(self, digest: str, step: int) -> str:
        return (
            f"sum(increase(http_requests_total{{{self.users()}}}[{step}s]) "
            f"* on (job, instance) group_left () {self.release(digest)})"
        )

    def errors(self, digest: str, step: int) -> str:
        server_errors = self.users(',code=~"5.."')
        return (
            f"sum(increase(http_requests_total{{{server_errors}}}[{step}s]) "
            f"* on (job, instance) group_left () {self.release(digest)})"
        )

    def buckets(self, digest: str, step: int) -> str:
        return (
            f"sum by (le) (increase(http_request_duration_seconds_bucket{{{self.users()}}}[{step}s]) "
            f"* on (job, instance) group_left () {self.release(digest)})"
        )

    def restarts(self, step: int) -> str:
        return (
            f'sum(increase(kube_pod_container_status_restarts_total{{namespace="{self.namespace}",'
            f'container="{CONTAINER}"}}[{step}s]))'
        )

    def saturation(self, step: int) -> str:
        return (
            f'sum(rate(container_cpu_usage_seconds_total{{namespace="{self.namespace}",container="{CONTAINER}"}}'
            f'[{step}s])) / sum(kube_pod_container_resource_limits{{namespace="{self.namespace}",'
            f'container="{CONTAINER}",resource="cpu"}})'
        )


@dataclass
class Window:
    """One release's figures over one window."""

    digest: str
    start: float
    end: float
    requests: int = 0
    errors: int = 0
    buckets: list[tuple[float, float]] = field(default_factory=list)
    """Cumulative (le, count) over the window."""
    steps: list[float] = field(default_factory=list)
    """End time of each step."""
    step_error_ratio: list[float | None] = field(default_factory=list)
    step_p95: list[float | None] = field(default_factory=list)
    restarts: float | None = None
    saturation: float | None = None

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets)


def _step_times(start: float, end: float, step: int) -> list[float]:
    count = round((end - start) / step)
    return [start + step * (i + 1) for i in range(count)]


def read_window(prom: Prometheus, target: Target, digest: str, *, start: float, end: float, step: int) -> Window:
    """One release's requests, errors, latency buckets (and restarts, saturation) over (start, end]."""
    window = Window(digest=digest, start=start, end=end, steps=_step_times(start, end, step))
    first, last = start + step, end

    def by_step(series: list[dict[str, Any]]) -> dict[float, float]:
        values: dict[float, float] = {}
        for s in series:
            for t, v in _values(s):
                values[round(t, 3)] = values.get(round(t, 3), 0.0) + v
        return values

    totals = by_step(prom.query_range(target.requests(digest, step), first, last, step))
    if not totals and prom.query_range(target.release(digest), first, last, step):
        return window  # scraped, but silent: 0 requests, which the minimum sample size turns away
    if not totals:
        raise NotVerifiedError(
            f"empty result: Prometheus has no http_requests_total of release {digest} in namespace "
            f"{target.namespace}, job {target.job} between {_iso(start)} and {_iso(end)} (is app_build_info's "
            "digest label scraped?)"
        )
    errors = by_step(prom.query_range(target.errors(digest, step), first, last, step))
    bucket_series = prom.query_range(target.buckets(digest, step), first, last, step)
    per_step_buckets: dict[float, dict[float, float]] = {}
    for s in bucket_series:
        le = _le(s)
        for t, v in _values(s):
            per_step_buckets.setdefault(round(t, 3), {})[le] = v
    if not per_step_buckets:
        raise NotVerifiedError(
            f"empty result: no http_request_duration_seconds_bucket of release {digest} in the window"
        )
    window.requests = round(sum(totals.values()))
    window.errors = min(window.requests, round(sum(errors.values())))
    summed: dict[float, float] = {}
    for by_le in per_step_buckets.values():
        for le, v in by_le.items():
            summed[le] = summed.get(le, 0.0) + v
    window.buckets = _cumulative(summed)
    for t in window.steps:
        key = round(t, 3)
        total = totals.get(key)
        window.step_error_ratio.append(errors.get(key, 0.0) / total if total else None)
        step_buckets = per_step_buckets.get(key)
        window.step_p95.append(histogram_quantile(0.95, _cumulative(step_buckets)) if step_buckets else None)
    restarts = by_step(prom.query_range(target.restarts(step), first, last, step))
    window.restarts = round(sum(restarts.values()), 3) if restarts else None
    saturation = by_step(prom.query_range(target.saturation(step), first, last, step))
    window.saturation = round(max(saturation.values()), 4) if saturation else None
    return window


def _le(series: dict[str, Any]) -> float:
    raw = (series.get("metric") or {}).get("le")
    try:
        return float(str(raw))
    except (TypeError, ValueError):
        raise NotVerifiedError(f"a bucket series without a numeric le label: {raw!r}") from None


def _cumulative(by_le: Mapping[float, float]) -> list[tuple[float, float]]:
    """Sorted (le, count), made monotonic (increase() of each bucket is extrapolated on its own)."""
    out, running = [], 0.0
    for le in sorted(by_le):
        running = max(running, by_le[le])
        out.append((le, running))
    return out


@dataclass(frozen=True)
class Check:
    """One judged figure."""

    metric: str
    value: float | None
    bound: str
    baseline: float | None
    verdict: str
    """pass, breach, not enough data, not measured, info."""
    detail: str = ""


@dataclass
class Verdict:
    status: str
    """healthy, breached, not verified."""
    exit_code: int
    reasons: list[str]
    checks: list[Check]
    candidate: Window | None = None
    baseline: Window | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    queries: int = 0


def judge(
    candidate: Window,
    baseline: Window | None,
    *,
    slo_availability: float,
    latency_p95_seconds: float,
    verify: VerifySettings,
) -> tuple[list[Check], list[str]]:
    """The checks of a candidate window (and its baseline), and the reasons it is not verified."""
    checks: list[Check] = []
    not_verified: list[str] = []
    minimum = verify.min_requests
    if candidate.requests < minimum:
        not_verified.append(
            f"not enough data: release {candidate.digest} served {candidate.requests} user requests in the "
            f"window, fewer than verifyMinRequests {minimum}"
        )
    checks.append(Check("requests", candidate.requests, f">= {minimum}", baseline.requests if baseline else None,
                        "pass" if candidate.requests >= minimum else "not enough data"))  # fmt: skip
    enough = candidate.requests >= minimum
    budget_bound = verify.max_burn_rate * error_budget(slo_availability)
    ratio = candidate.error_ratio
    checks.append(
        Check("error ratio", ratio,
              f"<= {budget_bound:.4g} ({verify.max_burn_rate:g}x the {slo_availability:g}% budget)",
              baseline.error_ratio if baseline else None,
              ("breach" if ratio is not None and ratio > budget_bound else "pass") if enough else "not enough data")
    )  # fmt: skip
    p95 = candidate.quantile(0.95)
    checks.append(
        Check("p95 latency (s)", p95, f"<= {latency_p95_seconds:g} (latencyP95Seconds)",
              baseline.quantile(0.95) if baseline else None,
              ("breach" if p95 is not None and p95 > latency_p95_seconds else "pass") if enough else "not enough data")
    )  # fmt: skip
    for name, q in (("p50 latency (s)", 0.5), ("p99 latency (s)", 0.99)):
        checks.append(Check(name, candidate.quantile(q), "-", baseline.quantile(q) if baseline else None, "info"))
    if candidate.restarts is None:
        checks.append(Check("restarts", None, f"<= {verify.max_restarts}", None, "not measured",
                            "no kube_pod_container_status_restarts_total series (kube-state-metrics)"))  # fmt: skip
    else:
        checks.append(Check("restarts", candidate.restarts, f"<= {verify.max_restarts}", None,
                            "breach" if candidate.restarts > verify.max_restarts else "pass"))  # fmt: skip
    if candidate.saturation is None:
        checks.append(Check("CPU saturation", None, f"<= {verify.max_saturation:g}", None, "not measured",
                            "no container_cpu_usage_seconds_total or CPU limit series"))  # fmt: skip
    else:
        checks.append(Check("CPU saturation", candidate.saturation, f"<= {verify.max_saturation:g}",
                            baseline.saturation if baseline else None,
                            "breach" if candidate.saturation > verify.max_saturation else "pass"))  # fmt: skip
    if baseline is None:
        checks.append(Check("vs previous release", None, "-", None, "not measured",
                            "no previous release: judged on the SLO alone"))  # fmt: skip
        return checks, not_verified
    if baseline.requests < minimum:
        not_verified.append(
            f"not enough data: the previous release {baseline.digest} served {baseline.requests} user requests "
            f"in its window, fewer than verifyMinRequests {minimum}, so the comparison cannot be made"
        )
        return checks, not_verified
    if not enough:
        return checks, not_verified
    z, p = two_proportion_z(candidate.errors, candidate.requests, baseline.errors, baseline.requests)
    rise = (candidate.error_ratio or 0.0) - (baseline.error_ratio or 0.0)
    breach = p < verify.significance and rise >= verify.error_ratio_margin
    checks.append(
        Check("error ratio vs previous", candidate.error_ratio,
              f"rise < {verify.error_ratio_margin:g} or p >= {verify.significance:g}", baseline.error_ratio,
              "breach" if breach else "pass",
              f"two-proportion z-test (one-sided): z = {z:.2f}, p = {_p(p)}, rise {rise:+.4f}")
    )  # fmt: skip
    cand_bins, base_bins = bin_counts(candidate.buckets), bin_counts(baseline.buckets)
    if len(cand_bins) == len(base_bins) and [le for le, _ in candidate.buckets] == [le for le, _ in baseline.buckets]:
        u, z, p = mann_whitney_binned(cand_bins, base_bins)
        base_p95 = baseline.quantile(0.95)
        factor = (p95 / base_p95) if p95 is not None and base_p95 else None
        breach = p < verify.significance and factor is not None and factor >= verify.latency_ratio
        checks.append(
            Check("p95 latency vs previous", p95,
                  f"ratio < {verify.latency_ratio:g} or p >= {verify.significance:g}", base_p95,
                  "breach" if breach else "pass",
                  f"Mann-Whitney U (one-sided, {len(cand_bins)} bucket ranks): U = {u:.0f}, z = {z:.2f}, "
                  f"p = {_p(p)}, p95 ratio {factor:.2f}" if factor is not None else f"U = {u:.0f}, p = {_p(p)}")
        )  # fmt: skip
    else:
        not_verified.append("the two releases' latency histograms have different buckets: no latency comparison")
    return checks, not_verified


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else "< 0.0001"


def verify_release(
    prom: Prometheus,
    target: Target,
    *,
    digest: str,
    baseline_digest: str | None,
    since: float,
    slo_availability: float,
    latency_p95_seconds: float,
    verify: VerifySettings,
) -> Verdict:
    """Read both windows and judge them."""
    started = time.monotonic()
    window, step = verify.window_seconds, verify.interval_seconds
    settings = {"slo_availability": slo_availability, "latency_p95_seconds": latency_p95_seconds, **asdict(verify)}
    try:
        candidate = read_window(prom, target, digest, start=since, end=since + window, step=step)
        baseline = None
        unrecorded: str | None = None
        if baseline_digest:
            try:
                baseline = read_window(prom, target, baseline_digest, start=since - window, end=since, step=step)
            except NotVerifiedError as error:
                if not str(error).startswith("empty result"):
                    raise
                # Never scraped with its digest (it predates the label, or retention dropped it): no
                # comparison can be made, and the output says so; the SLO still judges the release.
                unrecorded = baseline_digest
    except NotVerifiedError as error:
        verdict = Verdict("not verified", EXIT_NOT_VERIFIED, [str(error)], [], settings=settings)
        verdict.seconds, verdict.queries = time.monotonic() - started, prom.requests
        return verdict
    checks, not_verified = judge(
        candidate, baseline, slo_availability=slo_availability, latency_p95_seconds=latency_p95_seconds, verify=verify
    )
    if unrecorded:
        checks[-1] = Check("vs previous release", None, "-", None, "not measured",
                           f"Prometheus has no series of the previous release {unrecorded} in the window before "
                           "the rollout (no digest label, or past retention): judged on the SLO alone")  # fmt: skip
    breaches = [c for c in checks if c.verdict == "breach"]
    if breaches:
        reasons = [
            f"{c.metric}: {_fmt(c.value)} breaches {c.bound} (previous release: {_fmt(c.baseline)})"
            + (f"; {c.detail}" if c.detail else "")
            for c in breaches
        ]
        verdict = Verdict("breached", EXIT_BREACHED, reasons, checks, candidate, baseline, settings)
    elif not_verified:
        verdict = Verdict("not verified", EXIT_NOT_VERIFIED, not_verified, checks, candidate, baseline, settings)
    else:
        verdict = Verdict("healthy", EXIT_HEALTHY, [], checks, candidate, baseline, settings)
    verdict.seconds, verdict.queries = time.monotonic() - started, prom.requests
    return verdict


# ---- reports ------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def to_json(verdict: Verdict, *, stack: str, image_ref: str, baseline_ref: str | None) -> dict[str, Any]:
    def window(w: Window | None) -> dict[str, Any] | None:
        if w is None:
            return None
        return {
            "digest": w.digest, "start": _iso(w.start), "end": _iso(w.end), "requests": w.requests, "errors": w.errors,
            "error_ratio": w.error_ratio, "p50": w.quantile(0.5), "p95": w.quantile(0.95), "p99": w.quantile(0.99),
            "restarts": w.restarts, "saturation": w.saturation,
            "steps": [_iso(t) for t in w.steps], "step_error_ratio": w.step_error_ratio, "step_p95": w.step_p95,
        }  # fmt: skip

    return {
        "stack": stack,
        "image_ref": image_ref,
        "baseline_image_ref": baseline_ref,
        "status": verdict.status,
        "exit_code": verdict.exit_code,
        "reasons": verdict.reasons,
        "checks": [asdict(c) for c in verdict.checks],
        "candidate": window(verdict.candidate),
        "baseline": window(verdict.baseline),
        "settings": verdict.settings,
        "samples": {
            "candidate_requests": verdict.candidate.requests if verdict.candidate else 0,
            "baseline_requests": verdict.baseline.requests if verdict.baseline else 0,
        },
        "seconds": round(verdict.seconds, 3),
        "prometheus_requests": verdict.queries,
    }


_ICON: Final = {"pass": "✅", "breach": "❌", "not enough data": "⚠️", "not measured": "-", "info": ""}


def to_markdown(report: Mapping[str, Any]) -> str:
    """The summary: verdict, reasons, the before/after table and a Mermaid xychart of p95 per step."""
    title = {"healthy": "✅ healthy", "breached": "❌ breached", "not verified": "⚠️ not verified"}[report["status"]]
    lines = [f"### Deploy verification of {report['stack']}: {title}", ""]
    lines.append(
        f"Release `{report['image_ref']}`, compared with `{report['baseline_image_ref'] or 'none (first release)'}`."
    )
    cand = report.get("candidate")
    if cand:
        lines.append(f"Window {cand['start']} to {cand['end']} (the previous release: the same length before it).")
    lines.append("")
    for reason in report["reasons"]:
        lines.append(f"- {reason}")
    if report["reasons"]:
        lines.append("")
    if report["checks"]:
        lines += [
            "| metric | before (previous release) | after (this release) | bound | verdict |",
            "|---|---|---|---|---|",
        ]
        for c in report["checks"]:
            verdict = f"{_ICON.get(c['verdict'], '')} {c['verdict']}".strip()
            detail = f" ({c['detail']})" if c["detail"] else ""
            lines.append(
                f"| {c['metric']} | {_fmt(c['baseline'])} | {_fmt(c['value'])} | {c['bound']} | {verdict}{detail} |"
            )
        lines.append("")
    base = report.get("baseline")
    if cand and cand["step_p95"]:
        after = [round((v or 0) * 1000, 2) for v in cand["step_p95"]]
        before = [round((v or 0) * 1000, 2) for v in (base or {}).get("step_p95") or []][-len(after) :]
        top = max([*after, *before, 1.0]) * 1.2
        lines += [
            "```mermaid",
            "xychart-beta",
            f'    title "p95 latency (ms) per {report["settings"]["interval_seconds"]} s step: before, then after"',
            f"    x-axis [{', '.join(str(i + 1) for i in range(len(after)))}]",
            f'    y-axis "ms" 0 --> {round(top, 2)}',
        ]
        if len(before) == len(after):
            lines.append(f"    line [{', '.join(str(v) for v in before)}]")
        lines.append(f"    bar [{', '.join(str(v) for v in after)}]")
        lines += ["```", "", "Bars: this release; line: the previous release over the window before the rollout.", ""]
    lines.append(
        f"Tests against the previous release: two-proportion z-test on errors, Mann-Whitney U on latency buckets, "
        f"one-sided at {report['settings'].get('significance')}; at least {report['settings'].get('min_requests')} "
        f"user requests per window. {report['prometheus_requests']} Prometheus queries, {report['seconds']} s."
    )
    return "\n".join(lines) + "\n"


# ---- the command --------------------------------------------------------------------------------


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
        print(f"  {check.metric}: {_fmt(check.value)} (bound {check.bound}; previous {_fmt(check.baseline)}): "
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

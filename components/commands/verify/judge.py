"""What deploy verification reads (one release's window, by digest) and how it judges it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from components.commands.verify.prometheus import NotVerifiedError, Prometheus, _values
from components.commands.verify.stats import bin_counts, histogram_quantile, mann_whitney_binned, two_proportion_z
from components.config.settings import VerifySettings
from components.monitoring.rules import NON_USER_ROUTES, error_budget

EXIT_HEALTHY: Final = 0
EXIT_BREACHED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_VERIFIED: Final = 3

CONTAINER: Final = "app"
"""The app's container name (components/workload/pod.py), for restarts and CPU."""


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
            f"{c.metric}: {figure(c.value)} breaches {c.bound} (previous release: {figure(c.baseline)})"
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


def figure(value: float | None) -> str:
    """A figure as the reasons, the summary and the table show it: an integer as one, else 4 significant
    digits (``0.1849``); ``n/a`` for none."""
    if value is None:
        return "n/a"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.4g}"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

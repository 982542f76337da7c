"""The verification's report: JSON, and a Markdown summary with the before/after table and a chart."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final

from components.commands.verify.judge import Verdict, Window, _iso, figure


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
                f"| {c['metric']} | {figure(c['baseline'])} | {figure(c['value'])} | {c['bound']} | {verdict}{detail} |"
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

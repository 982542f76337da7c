"""Deploy verification (components/commands/verify.py), the verification ledger and the rollback's pin.

A fake Prometheus on loopback answers ``query_range`` from per-release figures, so every outcome and
every way Prometheus can fail is shown here; tests/integration/test_verify_live.py runs the real app
scraped by a real Prometheus.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fake_registry import serving
from test_plan_diff import diagrams, mermaid_parse

from components.commands import retention, rollback, verify
from components.commands.cli import main as cli_main
from components.config.settings import VerifySettings

PROJECT_DIR = Path(__file__).resolve().parents[2]
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, math.inf)
OLD = "ghcr.io/acme/hello@sha256:" + "a" * 64
NEW = "ghcr.io/acme/hello@sha256:" + "b" * 64
OLDER = "ghcr.io/acme/hello@sha256:" + "c" * 64


# ---- statistics --------------------------------------------------------------------------------


def test_two_proportion_z_test_matches_a_worked_example() -> None:
    # 60/300 against 30/300: pooled 0.15, se = sqrt(0.15*0.85*2/300) = 0.02915, z = 3.43.
    z, p = verify.two_proportion_z(60, 300, 30, 300)
    assert z == pytest.approx(3.430, abs=1e-3)
    assert p == pytest.approx(0.000302, rel=0.01)
    assert verify.two_proportion_z(0, 100, 0, 100) == (0.0, 1.0)  # no errors on either side: no evidence
    assert verify.two_proportion_z(30, 300, 60, 300)[1] > 0.99  # one-sided: fewer errors never breach


def _brute_u(candidate: list[float], baseline: list[float]) -> float:
    return sum(1.0 if c > b else 0.5 if c == b else 0.0 for c, b in itertools.product(candidate, baseline))


def test_mann_whitney_on_bins_counts_the_pairs_like_the_definition() -> None:
    cand_bins, base_bins = [1, 3, 2, 0, 4], [5, 2, 1, 1, 0]
    cand = [float(i) for i, n in enumerate(cand_bins) for _ in range(n)]
    base = [float(i) for i, n in enumerate(base_bins) for _ in range(n)]
    u, z, p = verify.mann_whitney_binned(cand_bins, base_bins)
    assert u == _brute_u(cand, base)
    assert z > 0 and p < 0.05
    assert verify.mann_whitney_binned([0, 10, 0], [0, 10, 0]) == (50.0, 0.0, 1.0)  # all tied: no evidence
    same = verify.mann_whitney_binned([5, 5, 5], [5, 5, 5])
    assert same[2] > 0.4


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 50.0), (0.2, 100.0), (math.inf, 100.0)]
    assert verify.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert verify.histogram_quantile(0.75, buckets) == pytest.approx(0.15)
    assert verify.histogram_quantile(0.99, [(0.1, 10.0), (math.inf, 20.0)]) == 0.1  # +Inf: highest finite bound
    assert verify.histogram_quantile(0.5, [(0.1, 0.0), (math.inf, 0.0)]) is None


# ---- a fake Prometheus ---------------------------------------------------------------------------


@dataclass
class Release:
    """Per step: requests, the share failing, and every request's latency (one value)."""

    per_step: float = 40.0
    error_share: float = 0.0
    latency: float = 0.003


@dataclass
class FakePrometheus:
    releases: dict[str, Release] = field(default_factory=dict)
    mode: str = "ok"  # ok | html | 500 | 400 | bad-json | status-error | empty
    port: int = 0
    queries: list[dict[str, str]] = field(default_factory=list)
    restarts: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_port(self, port: int) -> None:
        self.port = port

    def answer(self, params: dict[str, str]) -> list[dict[str, Any]]:
        query, start, end, step = params["query"], float(params["start"]), float(params["end"]), int(params["step"])
        times = [start + i * step for i in range(int((end - start) / step) + 1)]
        if "kube_pod_container_status_restarts_total" in query:
            return [] if self.restarts is None else [{"metric": {}, "values": [[t, str(self.restarts)] for t in times]}]
        if "container_cpu_usage_seconds_total" in query:
            return []
        match = re.search(r'digest="(sha256:[0-9a-f]{64})"', query)
        release = self.releases.get(match.group(1)) if match else None
        if release is not None and "http_" not in query:  # app_build_info alone: the release is scraped
            return [{"metric": {}, "values": [[t, "1"] for t in times]}]
        if release is None or release.per_step == 0:
            return []
        if "http_request_duration_seconds_bucket" in query:
            return [
                {"metric": {"le": "+Inf" if math.isinf(le) else repr(le)},
                 "values": [[t, str(release.per_step if release.latency <= le else 0.0)] for t in times]}
                for le in BUCKETS
            ]  # fmt: skip
        value = release.per_step * (release.error_share if 'code=~"5.."' in query else 1.0)
        if 'code=~"5.."' in query and value == 0:
            return []
        return [{"metric": {}, "values": [[t, str(value)] for t in times]}]


def prometheus_handler(fake: FakePrometheus) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            params = dict(urllib.parse.parse_qsl(url.query))
            fake.queries.append(
                {**params, "authorization": self.headers.get("Authorization", ""),
                 "cf": self.headers.get("CF-Access-Client-Secret", "")}
            )  # fmt: skip
            if fake.mode == "hang":  # slower than the client's timeout
                threading.Event().wait(1.5)  # not time.sleep: the tests patch it out
            if fake.mode == "html":
                return self._send(200, b"<!DOCTYPE html><html><body>Sign in</body></html>", "text/html")
            if fake.mode == "500":
                return self._send(500, b'{"status":"error","errorType":"internal","error":"tsdb is sad"}')
            if fake.mode == "400":
                return self._send(400, b'{"status":"error","errorType":"bad_data","error":"parse error"}')
            if fake.mode == "bad-json":
                return self._send(200, b'{"status": "succ')
            if fake.mode == "status-error":
                return self._send(200, b'{"status":"error","errorType":"timeout","error":"query timed out"}')
            if url.path != "/api/v1/query_range":
                return self._send(404, b"not found", "text/plain")
            result = [] if fake.mode == "empty" else fake.answer(params)
            body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
            return self._send(200, json.dumps(body).encode())

    return Handler


@pytest.fixture
def prom() -> Iterator[FakePrometheus]:
    fake = FakePrometheus()
    with serving(prometheus_handler(fake), fake.set_port):
        yield fake


def _digest(ref: str) -> str:
    return ref.rsplit("@", 1)[1]


def run_verify(
    prom: FakePrometheus, tmp_path: Path, *extra: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, dict[str, Any] | None]:
    """verify-deploy on the staging stack (SLO 99.5 %, p95 0.5 s; default verify* settings)."""
    out = tmp_path / "out"
    code = cli_main(
        ["verify-deploy", "--stack", "staging", "--project-dir", str(PROJECT_DIR), "--prometheus-url", prom.url,
         "--image-ref", NEW, "--since", "1700000000", "--retries", "1", "--timeout", "5", "--out", str(out), *extra]
    )  # fmt: skip
    captured = capsys.readouterr()
    text = captured.out + captured.err
    report = json.loads((out / "verify.json").read_text()) if (out / "verify.json").is_file() else None
    return code, text, report


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify.time, "sleep", lambda _s: None)
    monkeypatch.setattr(verify.Prometheus, "sleep", staticmethod(lambda _s: None))


# ---- outcomes ----------------------------------------------------------------------------------


def test_a_healthy_release_passes(prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prom.releases = {_digest(OLD): Release(), _digest(NEW): Release()}
    code, text, report = run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    assert code == 0, text
    assert "HEALTHY: every check passed" in text
    assert report is not None and report["status"] == "healthy"
    assert report["samples"] == {"candidate_requests": 200, "baseline_requests": 200}
    verdicts = {c["metric"]: c["verdict"] for c in report["checks"]}
    assert verdicts["error ratio vs previous"] == verdicts["p95 latency vs previous"] == "pass"
    assert verdicts["restarts"] == "not measured"
    # The window after the rollout, and the same length before it for the previous release.
    assert (
        report["candidate"]["start"] == "2023-11-14T22:13:20Z" and report["baseline"]["end"] == "2023-11-14T22:13:20Z"
    )
    markdown = (tmp_path / "out" / "verify.md").read_text()
    assert "| metric | before (previous release) | after (this release) | bound | verdict |" in markdown
    assert "```mermaid\nxychart-beta" in markdown


def test_20_percent_errors_breach_and_are_named(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(OLD): Release(), _digest(NEW): Release(error_share=0.2)}
    code, text, report = run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    assert code == 1, text
    assert "BREACHED" in text
    # value, bound and baseline: 0.2 against 14.4 x 0.5 % = 0.072, the previous release 0.
    assert "error ratio: 0.2 breaches <= 0.072 (14.4x the 99.5% budget) (previous release: 0)" in text
    assert "error ratio vs previous: 0.2 breaches" in text and "two-proportion z-test" in text
    assert report is not None and report["status"] == "breached"


def test_three_times_slower_at_p95_breaches_against_the_previous_release(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Both within the 0.5 s objective: only the comparison with the previous release catches it.
    prom.releases = {_digest(OLD): Release(latency=0.02), _digest(NEW): Release(latency=0.06)}
    code, text, report = run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    assert code == 1, text
    assert "p95 latency vs previous:" in text and "Mann-Whitney U" in text
    assert report is not None
    verdicts = {c["metric"]: c["verdict"] for c in report["checks"]}
    assert verdicts["p95 latency (s)"] == "pass" and verdicts["p95 latency vs previous"] == "breach"


def test_the_latency_objective_breaches_on_its_own(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(NEW): Release(latency=0.8)}
    code, text, _ = run_verify(prom, tmp_path, "--no-baseline", capsys=capsys)
    assert code == 1 and "p95 latency (s):" in text and "<= 0.5 (latencyP95Seconds)" in text


def test_restarts_breach_when_kube_state_metrics_counts_them(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(NEW): Release()}
    prom.restarts = 1.0
    code, text, _ = run_verify(prom, tmp_path, "--no-baseline", capsys=capsys)
    assert code == 1 and "restarts: 5 breaches <= 0" in text


def test_a_quiet_release_is_not_enough_data(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(OLD): Release(), _digest(NEW): Release(per_step=3)}  # 15 requests < 100
    code, text, report = run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    assert code == 3, text
    assert "not enough data: release sha256:" in text and "served 15 user requests" in text
    assert report is not None and report["status"] == "not verified"


def test_a_silent_release_is_not_enough_data(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(OLD): Release(), _digest(NEW): Release(per_step=0)}  # scraped, no requests
    code, text, _ = run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    assert code == 3 and "not enough data" in text and "served 0 user requests" in text


def test_a_release_prometheus_never_scraped_is_an_empty_result(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(OLD): Release()}
    code, text, _ = run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    assert code == 3 and "empty result" in text


def test_a_thin_previous_release_cannot_be_compared(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(OLD): Release(per_step=2), _digest(NEW): Release()}
    code, text, _ = run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    assert code == 3 and "the previous release sha256:" in text and "cannot be made" in text


def test_a_first_release_is_judged_on_the_slo_alone(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(NEW): Release()}
    code, text, _ = run_verify(prom, tmp_path, "--project-dir", str(tmp_path), capsys=capsys)
    assert code == 2  # a project without stack files: bad input, named
    code, text, _ = run_verify(prom, tmp_path, "--no-baseline", capsys=capsys)
    assert code == 0, text
    assert "no previous release: judged on the SLO alone" in text


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("html", "answered HTML (text/html), not its API's JSON"),
        ("500", "answered HTTP 500: internal: tsdb is sad (after 2 attempts)"),
        ("400", "answered HTTP 400: bad_data: parse error"),
        ("bad-json", "answered not JSON"),
        ("status-error", "not a successful API answer: timeout: query timed out"),
        ("empty", "empty result"),
    ],
)
def test_a_prometheus_that_cannot_answer_is_never_a_pass(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str, reason: str
) -> None:
    prom.releases = {_digest(NEW): Release()}
    prom.mode = mode
    code, text, report = run_verify(prom, tmp_path, "--no-baseline", capsys=capsys)
    assert code == 3, text
    assert reason in text
    assert report is not None and report["status"] == "not verified" and reason in report["reasons"][0]
    if mode == "500":
        assert len(prom.queries) == 2  # one retry (--retries 1), then it stops
    if mode == "400":
        assert len(prom.queries) == 1  # a 4xx is not retried


def test_an_unreachable_prometheus_is_not_verified_after_bounded_retries(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = FakePrometheus(port=1)
    code, text, _ = run_verify(closed, tmp_path, "--no-baseline", capsys=capsys)
    assert code == 3 and "Prometheus at http://127.0.0.1:1 is unreachable" in text and "after 2 attempts" in text


def test_credentials_never_appear_in_the_output(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    prom.releases = {_digest(NEW): Release()}
    prom.mode = "500"
    monkeypatch.setenv("PROM_TOKEN", "tok-s3cret")
    monkeypatch.setenv("CF_SECRET", "cf-s3cret")
    secret_url = prom.url.replace("http://", "http://admin:pw-s3cret@") + "/?token=q-s3cret"
    code = cli_main(
        ["verify-deploy", "--stack", "staging", "--project-dir", str(PROJECT_DIR), "--prometheus-url", secret_url,
         "--bearer-token-env", "PROM_TOKEN", "--header-from-env", "CF-Access-Client-Secret=CF_SECRET",
         "--image-ref", NEW, "--since", "1700000000", "--no-baseline",
         "--retries", "0", "--out", str(tmp_path)]
    )  # fmt: skip
    text = "".join(capsys.readouterr()) + (tmp_path / "verify.json").read_text() + (tmp_path / "verify.md").read_text()
    assert code == 3
    assert "s3cret" not in text
    assert prom.queries[0]["authorization"] == "Bearer tok-s3cret"  # sent, never shown
    assert prom.queries[0]["cf"] == "cf-s3cret"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday': expected Unix seconds or an ISO 8601 time"),
        (["--since", "2026-01-01T00:00:00"], "needs its zone"),
        (
            ["--image-ref", "ghcr.io/acme/hello:1.0"],
            "--image-ref 'ghcr.io/acme/hello:1.0': expected repo@sha256:<64 hex>",
        ),
        (["--baseline-image-ref", NEW], "the same digest as --image-ref"),
        (["--prometheus-url", "file:///etc/passwd"], "expected an http:// or https:// URL"),
        (
            ["--bearer-token-env", "NO_SUCH_VARIABLE_X"],
            "--bearer-token-env NO_SUCH_VARIABLE_X: the variable is not set",
        ),
        (["--timeout", "0"], "--timeout 0.0: expected seconds above 0"),
        (["--retries", "50"], "--retries 50: expected 0 to 10"),
        (["--header-from-env", "X-Token"], "--header-from-env 'X-Token': expected NAME=ENV_VAR"),
        (["--since", "99999999999"], "in the future; pass --wait"),
    ],
)
def test_bad_input_exits_2_naming_it(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, text, _ = run_verify(prom, tmp_path, *args, capsys=capsys)
    assert code == 2, text
    assert message in text
    assert prom.queries == []  # nothing was asked of Prometheus


def _project(tmp_path: Path, extra: str = "") -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((PROJECT_DIR / "Pulumi.yaml").read_text())
    (project / "Pulumi.staging.yaml").write_text((PROJECT_DIR / "Pulumi.staging.yaml").read_text() + extra)
    return project


def test_the_ledger_gives_the_release_and_its_previous_one(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project(tmp_path)
    for ref, result in ((OLDER, "passed"), (OLD, "breached")):
        retention.main(
            ["--stack", "staging", "--image-ref", ref, "--verification", result, "--project-dir", str(project)]
        )
    prom.releases = {_digest(OLDER): Release(), _digest(NEW): Release()}
    capsys.readouterr()
    argv = ["verify-deploy", "--stack", "staging", "--project-dir", str(project), "--prometheus-url", prom.url,
            "--since", "1700000000"]  # fmt: skip
    # NEW against the last digest that passed (OLDER), not the breached OLD deployed just before.
    assert cli_main([*argv, "--image-ref", NEW]) == 0
    assert f"against sha256:{'c' * 64}" in capsys.readouterr().out
    # No --image-ref: the ledger's last line; it is also the last deploy, so nothing rolled out.
    retention.record(project, "staging", NEW)
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert "is already the ledger's last deploy: no rollout, judged on the SLO alone" in text
    assert "against no previous release" in text


def test_bad_verify_settings_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = '  service-lifecycle:verifyWindowSeconds: "60"\n  service-lifecycle:verifyIntervalSeconds: "45"\n'
    project = _project(tmp_path, extra + '  service-lifecycle:verifySignificance: "0.7"\n')
    code = cli_main(["verify-deploy", "--stack", "staging", "--project-dir", str(project), "--prometheus-url",
                     "http://127.0.0.1:1", "--image-ref", NEW])  # fmt: skip
    text = "".join(capsys.readouterr())
    assert code == 2
    assert (
        "service-lifecycle:verifyIntervalSeconds: got '45'; expected at most half of verifyWindowSeconds (60)" in text
    )
    assert "service-lifecycle:verifySignificance: got '0.7'; expected a level above 0 and below 0.5" in text


def test_the_markdown_chart_is_valid_mermaid(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(OLD): Release(latency=0.02), _digest(NEW): Release(latency=0.06)}
    run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    charts = diagrams((tmp_path / "out" / "verify.md").read_text())
    assert len(charts) == 1 and charts[0].startswith("xychart-beta")
    assert all(r.get("ok") for r in mermaid_parse(charts)), mermaid_parse(charts)


def test_judge_applies_minimum_samples_before_anything_else() -> None:
    quiet = verify.Window(digest="sha256:" + "b" * 64, start=0, end=300, requests=99, errors=99,
                          buckets=[(0.1, 99.0), (math.inf, 99.0)])  # fmt: skip
    checks, not_verified = verify.judge(quiet, None, slo_availability=99.9, latency_p95_seconds=0.5,
                                        verify=VerifySettings())  # fmt: skip
    assert not_verified and all(c.verdict != "breach" for c in checks)


# ---- the verification ledger and the rollback's pin -------------------------------------------


def test_the_ledger_records_verifications_and_the_pin_is_the_last_that_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for ref, result in ((OLDER, "passed"), (OLD, "passed"), (NEW, "breached")):
        assert retention.main(["--stack", "production", "--image-ref", ref, "--verification", result,
                               "--project-dir", str(tmp_path)]) == 0  # fmt: skip
    assert retention.history(tmp_path, "production") == [OLDER, OLD, NEW]
    assert [v["result"] for v in retention.verifications(tmp_path, "production")] == ["passed", "passed", "breached"]
    assert retention.last_good(tmp_path, "production", exclude=NEW) == OLD
    # A digest that passed once but breached on a later deploy is no longer good.
    retention.record_verification(tmp_path, "production", OLD, "breached")
    assert retention.last_good(tmp_path, "production", exclude=NEW) == OLDER
    output = tmp_path / "github-output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    capsys.readouterr()
    assert rollback.main(["--stack", "production", "--exclude", NEW, "--project-dir", str(tmp_path),
                          "--github-output"]) == 0  # fmt: skip
    assert output.read_text() == f"image_ref={OLDER}\ndigest=sha256:{'c' * 64}\n"
    # The previous release verify-deploy compares with is that last good one too.
    assert retention.previous_release(tmp_path, "production", NEW) == OLDER


def test_no_digest_that_passed_means_no_rollback_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    retention.record(tmp_path, "production", OLD)
    retention.record_verification(tmp_path, "production", OLD, "not-verified")
    retention.record_verification(tmp_path, "production", NEW, "breached")
    code = rollback.main(["--stack", "production", "--exclude", NEW, "--project-dir", str(tmp_path)])
    assert code == 1
    assert "nothing safe to roll back to; production stays on what it runs now" in capsys.readouterr().out
    # Without any verification, the previous release is the one deployed before.
    assert retention.previous_release(tmp_path, "staging", NEW) is None


def test_a_broken_verification_ledger_is_refused_with_its_line(tmp_path: Path) -> None:
    path = retention.verification_path(tmp_path, "production")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"image_ref": OLD, "result": "passed"}) + "\n" + '{"image_ref": "x", "result": "ok"}\n')
    with pytest.raises(retention.LedgerError, match=r"line 2: expected"):
        retention.last_good(tmp_path, "production")
    with pytest.raises(retention.LedgerError, match="--verification 'fine'"):
        retention.record_verification(tmp_path, "staging", OLD, "fine")
    assert rollback.main(["--stack", "production", "--project-dir", str(tmp_path)]) == 2


def test_the_commands_are_registered() -> None:
    from components.commands.cli import COMMANDS

    assert COMMANDS["verify-deploy"][0] == "components.commands.verify"
    assert COMMANDS["rollback-target"][0] == "components.commands.rollback"


def test_a_previous_release_prometheus_never_recorded_leaves_the_slo_to_judge(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first deploy after the app gained its digest label: the previous release has no series."""
    prom.releases = {_digest(NEW): Release()}
    code, text, report = run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)
    assert code == 0, text
    assert "Prometheus has no series of the previous release sha256:" in text
    assert report is not None and report["baseline"] is None
    prom.releases = {_digest(NEW): Release(error_share=0.2)}
    assert run_verify(prom, tmp_path, "--baseline-image-ref", OLD, capsys=capsys)[0] == 1  # the SLO still breaches


def test_a_prometheus_slower_than_the_timeout_is_not_verified_in_bounded_time(
    prom: FakePrometheus, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prom.releases = {_digest(NEW): Release()}
    prom.mode = "hang"
    started = time.monotonic()
    code, text, _ = run_verify(prom, tmp_path, "--no-baseline", "--timeout", "0.3", capsys=capsys)
    assert code == 3 and "is unreachable" in text and "timed out" in text and "after 2 attempts" in text
    assert time.monotonic() - started < 5  # two attempts of 0.3 s (the backoff is patched out)

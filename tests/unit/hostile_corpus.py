"""A generated corpus of hostile stack files, derived from the sample stacks, and a runner for it.

Each :class:`Case` replaces or adds files in a copy of the project (Pulumi.yaml, __main__.py and
both sample stack files, so the checks across stack files see the real neighbours) and says what
``plan`` must do: reject it (exit 2, naming every string in ``names``: the key, or the file for a
file-level problem) or accept it (exit 0). No output may contain a string of ``hidden`` (secret
values). Used by tests/unit/test_hostile_stack_files.py and benchmarks/hostile_stack_files.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
REVISION = "0123456789abcdef0123456789abcdef01234567"
NS = "service-lifecycle"
STAGING = "Pulumi.staging.yaml"
PRODUCTION = "Pulumi.production.yaml"
TOKEN = "ghp_0123456789abcdefSECRETTOKENVALUE01"
"""A plain-text token some cases leak into a stack file: it must never be printed."""


@dataclass(frozen=True)
class Case:
    name: str
    """Plain pytest id: letters, digits, '-' and '_' only (mutmut selects tests by node id)."""
    kind: str
    """The class of mutation (one per bullet of the issue, and more)."""
    stack: str
    files: dict[str, bytes]
    expect: str
    """"reject" (exit 2) or "accept" (exit 0)."""
    names: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    environ: dict[str, str] = field(default_factory=lambda: {"SOURCE_REVISION": REVISION})


@dataclass
class Outcome:
    code: int
    """0 accepted, 2 rejected, -1 an unexpected exception (a traceback)."""
    output: str


def sample(stack: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
    return document


def dump(config: dict[str, Any]) -> bytes:
    return yaml.safe_dump({"config": config}, sort_keys=False, allow_unicode=True).encode()


def with_config(stack: str, **changes: Any) -> bytes:
    """The sample stack's file with ``changes`` (short project keys; None removes a key)."""
    config = dict(sample(stack)["config"])
    for short, value in changes.items():
        full = f"{NS}:{short}"
        if value is None:
            config.pop(full, None)
        else:
            config[full] = value
    return dump(config)


def with_raw(stack: str, extra: dict[str, Any]) -> bytes:
    """The sample stack's file plus keys given in full (any namespace)."""
    config = dict(sample(stack)["config"])
    config.update(extra)
    return dump(config)


def appended(stack: str, text: str) -> bytes:
    """The sample stack's file text with ``text`` appended inside ``config:``."""
    return (PROJECT_DIR / f"Pulumi.{stack}.yaml").read_bytes() + text.encode()


def _file(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        refs = ", ".join(f"*a{i - 1}" for _ in range(width))
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines)


def file_level_cases() -> Iterator[Case]:
    staging = STAGING
    bomb = _alias_bomb()

    def reject(name: str, content: bytes, stack: str = "staging", file: str = staging) -> Case:
        return Case(name, "file", stack, {file: content}, "reject", names=(file,))

    yield reject("top_level_list", b"- config\n- stage\n")
    yield reject("top_level_string", b"just a string\n")
    yield reject("top_level_number", b"42\n")
    yield reject("binary_file", bytes(range(256)) * 8)
    yield reject("nul_byte", b"config:\n  service-lifecycle:team: plat\x00form\n")
    yield reject("control_character", b"config:\n  service-lifecycle:team: plat\x07form\n")
    yield reject("latin1_text", "config:\n  service-lifecycle:team: équipe\n".encode("latin-1"))
    yield reject("utf16_text", "config:\n  service-lifecycle:team: platform\n".encode("utf-16"))
    yield reject("deep_brackets", b"config:\n  x: " + b"[" * 5000 + b"]" * 5000 + b"\n")
    yield reject("deep_braces", b"config:\n  x: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n")
    yield reject("deep_block_mappings", ("config:\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(1, 40))).encode())
    yield reject(
        "alias_bomb_in_hostnames",
        f"{bomb}\nconfig:\n  service-lifecycle:stage: staging\n  service-lifecycle:hostnames: *a9\n".encode(),
    )
    yield reject(
        "alias_bomb_other_namespace", appended("staging", "  other:thing: " + "[" + ", ".join(["*a9"] * 3) + "]\n")
        .replace(b"config:\n", f"{bomb}\nconfig:\n".encode(), 1),
    )  # fmt: skip
    yield reject(
        "simple_alias",
        b"config:\n  service-lifecycle:team: &team platform\n  service-lifecycle:serviceName: *team\n",
    )
    yield reject("merge_key", appended("staging", "  <<: {service-lifecycle:replicas: '2'}\n"))
    yield reject("oversized_comment", b"# " + b"x" * (1 << 20) + b"\n" + appended("staging", ""))
    huge_context = "  service-lifecycle:kubeContext: " + "k" * 10_000_000 + "\n"
    yield reject("kube_context_10mb", appended("staging", huge_context))
    yield reject("unclosed_quote", appended("staging", f'  service-lifecycle:registryPassword: "{TOKEN}\n'))
    yield reject("two_documents", appended("staging", "---\nconfig: {}\n"))
    yield reject("unknown_python_tag", appended("staging", '  x: !!python/object/apply:os.system ["true"]\n'))
    yield reject("custom_tag", appended("staging", "  service-lifecycle:team: !vault platform\n"))
    yield reject("non_string_key", appended("staging", "  1: one\n"))
    yield reject("list_key", appended("staging", "  ? [a, b]\n  : one\n"))
    yield reject("tab_indentation", b"config:\n\tservice-lifecycle:team: platform\n")
    twice = appended("staging", '  service-lifecycle:replicas: "3"\n')
    yield Case("duplicate_replicas", "file", "staging", {staging: twice}, "reject",
               names=(staging, f"{NS}:replicas", "line",  # and the Pulumi CLI's own line (gopkg.in/yaml.v3)
                      f'mapping key "{NS}:replicas" already defined at line'))  # fmt: skip
    yield Case("duplicate_top_level_config", "file", "staging", {staging: appended("staging", "config: {}\n")},
               "reject", names=(staging, "config"))  # fmt: skip
    yield Case("config_is_a_list", "file", "staging", {staging: b"config:\n  - a\n  - b\n"}, "reject",
               names=(staging, "config"))  # fmt: skip
    yield Case("config_is_a_string", "file", "staging", {staging: b"config: everything\n"}, "reject",
               names=(staging, "config"))  # fmt: skip
    yield Case("empty_stack_file", "file", "staging", {staging: b""}, "reject", names=(f"{NS}:stage",))
    yield Case("project_alias_bomb", "file", "staging", {"Pulumi.yaml": f"{bomb}\nname: x\n".encode()}, "reject",
               names=("Pulumi.yaml",))  # fmt: skip
    yield Case("project_config_a_list", "file", "staging", {"Pulumi.yaml": b"name: x\nconfig: [a]\n"}, "reject",
               names=("Pulumi.yaml",))  # fmt: skip
    yield Case("byte_order_mark", "file", "staging", {staging: b"\xef\xbb\xbf" + appended("staging", "")}, "accept")


def number_cases() -> Iterator[Case]:
    rejected: list[tuple[str, str, Any]] = [
        ("slo_22_nines", "sloAvailabilityTarget", "99.99999999999999999999"),
        ("slo_exponent", "sloAvailabilityTarget", "9.99e1"),
        ("slo_nan", "sloAvailabilityTarget", "NaN"),
        ("slo_infinity", "sloAvailabilityTarget", "Infinity"),
        ("slo_100", "sloAvailabilityTarget", "100"),
        ("slo_50", "sloAvailabilityTarget", "50"),
        ("slo_negative", "sloAvailabilityTarget", "-99.9"),
        ("slo_comma", "sloAvailabilityTarget", "99,9"),
        ("slo_hex", "sloAvailabilityTarget", "0x63"),
        ("slo_padded", "sloAvailabilityTarget", " 99.9"),
        ("slo_below_burn_floor", "sloAvailabilityTarget", "93"),
        ("latency_tiny_exponent", "latencyP95Seconds", "1e-400"),
        ("latency_zero", "latencyP95Seconds", "0"),
        ("latency_60", "latencyP95Seconds", "60"),
        ("latency_31_decimals", "latencyP95Seconds", "0." + "0" * 30 + "1"),
        ("latency_inf", "latencyP95Seconds", "inf"),
        ("replicas_5000_digits", "replicas", "1" * 5000),
        ("replicas_exponent", "replicas", "1e1"),
        ("replicas_51", "replicas", "51"),
        ("replicas_negative", "replicas", "-1"),
        ("replicas_arabic_digit", "replicas", "\u0663"),
        ("replicas_underscore", "replicas", "1_0"),
        ("replicas_list", "replicas", [1]),
        ("replicas_boolean", "replicas", True),
        ("container_port_80", "containerPort", "80"),
        ("container_port_65536", "containerPort", "65536"),
        ("container_port_float", "containerPort", "8080.0"),
        ("cloudflared_replicas_1", "cloudflaredReplicas", "1"),
        ("retain_digests_0", "imageRetainDigests", "0"),
        ("retain_digests_101", "imageRetainDigests", "101"),
    ]
    for name, short, value in rejected:
        yield Case(name, "number", "staging", {STAGING: with_config("staging", **{short: value})}, "reject",
                   names=(f"{NS}:{short}",))  # fmt: skip
    for name, short, value in [("slo_just_above_floor", "sloAvailabilityTarget", "93.1"),
                               ("latency_small", "latencyP95Seconds", "0.001")]:  # fmt: skip
        yield Case(name, "number", "staging", {STAGING: with_config("staging", **{short: value})}, "accept")


def quantity_cases() -> Iterator[Case]:
    rejected = [
        ("memory_99999999999999ei", "memoryLimit", "99999999999999Ei"),
        ("memory_8ei", "memoryLimit", "8Ei"),
        ("memory_2_pow_63", "memoryLimit", "9223372036854775808"),
        ("memory_milli_byte_fraction", "memoryLimit", "0.0001"),
        ("memory_zi", "memoryLimit", "1Zi"),
        ("memory_exponent", "memoryLimit", "1e9"),
        ("memory_31_digits", "memoryLimit", "1" * 31),
        ("cpu_tenth_millicore", "cpuLimit", "0.0001"),
        ("cpu_half_millicore", "cpuRequest", "0.5m"),
        ("cpu_2_pow_63_cores", "cpuLimit", "9223372036854775808"),
        ("cpu_negative", "cpuRequest", "-1"),
        ("cpu_zero", "cpuRequest", "0"),
        ("cpu_request_above_limit", "cpuRequest", "600m"),
        ("memory_request_above_limit", "memoryRequest", "257Mi"),
    ]
    for name, short, value in rejected:
        yield Case(name, "quantity", "staging", {STAGING: with_config("staging", **{short: value})}, "reject",
                   names=(f"{NS}:{short}",))  # fmt: skip
    yield Case("memory_7ei", "quantity", "staging",
               {STAGING: with_config("staging", memoryRequest="1Ei", memoryLimit="7Ei")}, "accept")  # fmt: skip
    yield Case("cpu_request_equal_limit", "quantity", "staging",
               {STAGING: with_config("staging", cpuRequest="500m", cpuLimit="0.5")}, "accept")  # fmt: skip


def kube_context_cases() -> Iterator[Case]:
    for name, value in [("kube_context_newline", "staging\nproduction"), ("kube_context_300", "k" * 300),
                        ("kube_context_tab", "stag\ting"), ("kube_context_trailing_space", "staging "),
                        ("kube_context_list", ["staging"])]:  # fmt: skip
        yield Case(name, "kubeContext", "staging", {STAGING: with_config("staging", kubeContext=value)}, "reject",
                   names=(f"{NS}:kubeContext",))  # fmt: skip
    yield Case("kube_context_253", "kubeContext", "staging", {STAGING: with_config("staging", kubeContext="k" * 253)},
               "accept")  # fmt: skip


def namespace_cases() -> Iterator[Case]:
    def reject(name: str, stack: str, extra: dict[str, Any], *names: str, hidden: tuple[str, ...] = ()) -> Case:
        return Case(name, "namespace", stack, {_file(stack): with_raw(stack, extra)}, "reject", names=names,
                    hidden=hidden)  # fmt: skip

    yield reject("misspelt_namespace_access", "production", {"service-lifecyle:accessEnabled": "true"},
                 "service-lifecyle:accessEnabled", "did you mean service-lifecycle:accessEnabled")  # fmt: skip
    yield reject("namespace_missing_letter", "staging", {"service-lifecycl:replicas": "2"}, "service-lifecycl:replicas")
    yield reject("namespace_upper_case", "staging", {"Service-Lifecycle:replicas": "2"}, "Service-Lifecycle:replicas")
    yield reject("namespace_near_kubernetes", "staging", {"kubernets:context": "x"}, "kubernets:context",
                 "did you mean kubernetes:context")  # fmt: skip
    yield reject("kubernetes_unknown_key", "staging", {"kubernetes:contxt": "x"}, "kubernetes:contxt",
                 "did you mean kubernetes:context")  # fmt: skip
    yield reject("cloudflare_misspelt_token", "staging", {"cloudflare:apiTokn": TOKEN}, "cloudflare:apiTokn",
                 hidden=(TOKEN,))  # fmt: skip
    yield reject("aws_misspelt_region", "staging", {"aws:regoin": "eu-west-1"}, "aws:regoin", "aws:region")
    yield reject("docker_unknown_key", "staging", {"docker:hots": "tcp://x"}, "docker:hots", "docker:host")
    yield reject("undeclared_project_key", "staging", {f"{NS}:replicaCount": "2"}, f"{NS}:replicaCount")
    yield reject("bare_unknown_key", "staging", {"Replicas": "2"}, f"{NS}:Replicas", f"did you mean {NS}:replicas")
    yield reject("unknown_key_secure", "staging", {f"{NS}:apiTokn": {"secure": "v1:AAAA"}}, f"{NS}:apiTokn")
    yield reject("secure_not_a_string", "staging", {f"{NS}:registryPassword": {"secure": 123}},
                 f"{NS}:registryPassword")  # fmt: skip
    yield reject("secure_empty", "staging", {f"{NS}:registryPassword": {"secure": ""}}, f"{NS}:registryPassword")
    yield Case("bare_known_key", "namespace", "staging", {STAGING: with_raw("staging", {"replicas": "2"})}, "accept")
    yield Case("foreign_namespace", "namespace", "staging", {STAGING: with_raw("staging", {"myteam:owner": "x"})},
               "accept")  # fmt: skip
    yield Case("provider_keys_known", "namespace", "staging",
               {STAGING: with_raw("staging", {"kubernetes:namespace": "x", "aws:region": "eu-west-1",
                                              "cloudflare:apiToken": {"secure": "v1:AAAA"}})}, "accept")  # fmt: skip


def secret_cases() -> Iterator[Case]:
    def leak(name: str, stack: str, extra: dict[str, Any], *names: str, notes: tuple[str, ...] = ()) -> Case:
        return Case(name, "secret", stack, {_file(stack): with_raw(stack, extra)}, "reject", names=names,
                    hidden=(TOKEN, "hunter2"), notes=notes)  # fmt: skip

    yield leak("grafana_password_as_list", "production", {f"{NS}:grafanaAdminPassword": ["hunter2"]},
               f"{NS}:grafanaAdminPassword")  # fmt: skip
    yield leak("misspelt_password_plain", "staging", {f"{NS}:registryPasword": TOKEN}, f"{NS}:registryPasword",
               f"did you mean {NS}:registryPassword")  # fmt: skip
    yield leak("password_in_plain_text", "staging", {f"{NS}:registryPassword": TOKEN}, f"{NS}:registryPassword")
    yield leak("password_as_mapping", "staging", {f"{NS}:registryPassword": {"value": TOKEN}}, f"{NS}:registryPassword")
    yield leak("token_as_number_list", "production", {f"{NS}:cloudflareApiToken": [TOKEN, 1]},
               f"{NS}:cloudflareApiToken")  # fmt: skip
    yield leak("kubeconfig_plain", "production", {f"{NS}:kubeconfig": f"token: {TOKEN}"}, f"{NS}:kubeconfig")
    yield leak("webhook_misspelt", "production", {f"{NS}:alertWebhookUrll": f"https://hooks.example.com/{TOKEN}"},
               f"{NS}:alertWebhookUrll")  # fmt: skip
    yield leak("secret_looking_undeclared", "staging", {f"{NS}:deployToken": TOKEN}, f"{NS}:deployToken")
    yield leak("aws_secret_misspelt", "staging", {"aws:secretKy": TOKEN}, "aws:secretKy")
    yield leak("misspelt_password_secure", "staging", {f"{NS}:registryPasswd": {"secure": "v1:AAAA"}},
               f"{NS}:registryPasswd", notes=(f"{NS}:registryPassword is not in the stack file",))  # fmt: skip


def stand_in_cases() -> Iterator[Case]:
    note = f"{NS}:registryPassword is not in the stack file"
    revision_note = f"{NS}:sourceRevision taken from the working copy"
    yield Case("stand_in_with_other_error", "stand-in", "staging", {STAGING: with_config("staging", team="Platform")},
               "reject", names=(f"{NS}:team",), notes=(note, revision_note), environ={})  # fmt: skip
    yield Case("stand_in_with_file_error", "stand-in", "staging",
               {STAGING: with_raw("staging", {f"{NS}:replicaCount": "2"})}, "reject", names=(f"{NS}:replicaCount",),
               notes=(note, revision_note), environ={})  # fmt: skip
    yield Case("stand_in_clean", "stand-in", "staging", {}, "accept", notes=(note, revision_note), environ={})


def hostname_cases() -> Iterator[Case]:
    deep = "api.hello.example.com"
    yield Case("hostname_two_labels_below_zone", "hostname", "production",
               {PRODUCTION: with_config("production", hostnames=["hello.example.com", deep])}, "reject",
               names=(f"{NS}:hostnames", deep))  # fmt: skip
    yield Case("hostname_deep_with_advanced_certificate", "hostname", "production",
               {PRODUCTION: with_config("production", hostnames=["hello.example.com", deep],
                                        advancedCertificateHostnames=[deep])}, "accept")  # fmt: skip
    yield Case("advanced_certificate_not_a_hostname", "hostname", "production",
               {PRODUCTION: with_config("production", advancedCertificateHostnames=["other.example.com"])}, "reject",
               names=(f"{NS}:advancedCertificateHostnames",))  # fmt: skip
    yield Case("production_hostname_equals_staging", "hostname", "production",
               {PRODUCTION: with_config("production", hostnames=["hello-staging.example.com"])}, "reject",
               names=(f"{NS}:hostnames", STAGING))  # fmt: skip
    yield Case("staging_hostname_equals_production", "hostname", "staging",
               {STAGING: with_config("staging", hostnames=["hi.example.com"])}, "reject",
               names=(f"{NS}:hostnames", PRODUCTION))  # fmt: skip
    yield Case("hostname_owned_by_sunset_stack", "hostname", "production",
               {PRODUCTION: with_config("production", hostnames=["hello-staging.example.com"]),
                STAGING: with_config("staging", stage="sunset")}, "accept")  # fmt: skip
    for name, hosts in [("hostname_outside_zone", ["hello.example.org"]),
                        ("hostname_upper_case", ["Hello.example.com"]),
                        ("hostname_trailing_dot", ["hello.example.com."]), ("hostname_twice", ["a.example.com"] * 2),
                        ("hostname_300_chars", ["a" * 290 + ".example.com"]),
                        ("hostnames_a_string", "hello.example.com"), ("hostnames_numbers", [1, 2])]:  # fmt: skip
        yield Case(name, "hostname", "production", {PRODUCTION: with_config("production", hostnames=hosts)}, "reject",
                   names=(f"{NS}:hostnames",))  # fmt: skip
    # [] written out is a service without a public hostname (issue 22): no Exposure, accepted
    yield Case("hostnames_empty", "hostname", "production", {PRODUCTION: with_config("production", hostnames=[])},
               "accept")  # fmt: skip


def type_cases() -> Iterator[Case]:
    rejected: list[tuple[str, str, Any]] = [
        ("stage_capitalised", "stage", "Production"),
        ("stage_missing", "stage", None),
        ("access_yes", "accessEnabled", "yes"),
        ("access_off_in_staging", "accessEnabled", "false"),
        ("service_name_41", "serviceName", "a" * 41),
        ("service_name_mapping", "serviceName", {"a": "b"}),
        ("team_upper_case", "team", "Platform"),
        ("app_version_v_prefix", "appVersion", "v1.0.0"),
        ("repository_with_tag", "imageRepository", "ghcr.io/example-org/hello:latest"),
        ("kubernetes_version_old", "kubernetesVersion", "1.20"),
        ("account_id_short", "cloudflareAccountId", "0123"),
        ("runbook_http", "monitoringRunbookUrl", "http://example.com/runbook"),
        ("build_platform_windows", "buildPlatform", "windows/amd64"),
        ("emails_not_emails", "accessAllowEmails", ["not-an-email"]),
    ]
    for name, short, value in rejected:
        yield Case(name, "type", "staging", {STAGING: with_config("staging", **{short: value})}, "reject",
                   names=(f"{NS}:{short}",))  # fmt: skip


GENERATORS: tuple[Callable[[], Iterator[Case]], ...] = (
    file_level_cases, number_cases, quantity_cases, kube_context_cases, namespace_cases, secret_cases,
    stand_in_cases, hostname_cases, type_cases,
)  # fmt: skip


def corpus() -> list[Case]:
    cases = [case for generate in GENERATORS for case in generate()]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


def materialise(case: Case, root: Path) -> Path:
    """A copy of the project's stack files and program under ``root`` with the case's files."""
    project = root / case.name
    project.mkdir(parents=True)
    for name in ("Pulumi.yaml", "__main__.py", STAGING, PRODUCTION):
        shutil.copy(PROJECT_DIR / name, project / name)
    (project / "app").symlink_to(PROJECT_DIR / "app")  # the image's tag is the build context's content
    for name, content in case.files.items():
        (project / name).write_bytes(content)
    return project


@contextlib.contextmanager
def _environment(environ: dict[str, str]) -> Iterator[None]:
    """The program reads os.environ itself (the source revision fallback): give it the case's."""
    names = ("SOURCE_REVISION", "GITHUB_SHA", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY")
    saved = {name: os.environ.pop(name, None) for name in names}
    os.environ.update({k: v for k, v in environ.items() if k in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value


def run_in_process(case: Case, project: Path) -> Outcome:
    """Plan the case as ``python -m components plan`` would, without a new interpreter (seconds saved per case)."""
    from components.commands.plan import render_tree, report_problems, run_plan
    from components.config.settings import SettingsError
    from components.config.stack_config import StackFileError

    stream = io.StringIO()
    try:
        with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream), _environment(case.environ):
            plan, _ = run_plan(project, case.stack, environ=case.environ)
            print(render_tree(plan))
        return Outcome(0, stream.getvalue())
    except (StackFileError, SettingsError) as error:
        report_problems(case.stack, error, stream)
        return Outcome(2, stream.getvalue())
    except BaseException:  # every other exception is a finding: a traceback in the CLI
        return Outcome(-1, stream.getvalue() + traceback.format_exc())


def verdict(case: Case, outcome: Outcome) -> str | None:
    """What is wrong with how ``plan`` handled the case, or None."""
    if outcome.code not in (0, 2) or "Traceback" in outcome.output:
        return f"traceback or exit {outcome.code}"
    if case.expect == "accept" and outcome.code != 0:
        return "rejected, must be accepted"
    if case.expect == "reject" and outcome.code != 2:
        return "accepted, must be rejected"
    missing = [n for n in case.names if n not in outcome.output]
    if missing:
        return f"the output does not name {missing}"
    leaked = [h for h in case.hidden if h in outcome.output]
    if leaked:
        return "a secret value is printed"
    absent = [n for n in case.notes if f"note: {n}" not in outcome.output]
    if absent:
        return f"notes missing: {absent}"
    errors = [line for line in outcome.output.splitlines() if line.startswith("  ")]
    if any(line.startswith(f"  {n.split(' ')[0]}:") for n in case.notes for line in errors):
        return "a stand-in is reported as an error"
    return None

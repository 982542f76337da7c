"""The stack-file reader's limits (components/config/stackfile.py) and the checks plan makes on what it read."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Collection
from pathlib import Path

import pulumi
import pytest
import yaml

from components.config.names import closest, edit_distance, namespace_problem, provider_keys
from components.config.stack_config import StackConfig, StackFileError, load_stack_config
from components.config.stackfile import MAX_BYTES, MAX_DEPTH, MAX_NODES, StackFileRefused, read_yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_bytes(content)
    return path


def test_a_plain_stack_file_reads_as_the_safe_loader_reads_it() -> None:
    path = PROJECT_DIR / "Pulumi.production.yaml"
    assert read_yaml(path) == yaml.safe_load(path.read_text())


def test_an_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    assert read_yaml(_write(tmp_path, b"")) == {} and read_yaml(_write(tmp_path, b"# only a comment\n")) == {}


def test_the_size_limit_holds_on_both_sides(tmp_path: Path) -> None:
    body = b"a: b\n"
    at_limit = _write(tmp_path, b"#" * (MAX_BYTES - len(body) - 1) + b"\n" + body)
    assert at_limit.stat().st_size == MAX_BYTES and read_yaml(at_limit) == {"a": "b"}
    over = _write(tmp_path, b"#" * MAX_BYTES + b"\n" + body)
    with pytest.raises(StackFileRefused, match=r"^Pulumi\.x\.yaml: 1048582 bytes; a stack file may have at most"):
        read_yaml(over)


def test_node_limit_holds_on_both_sides(tmp_path: Path) -> None:
    """A megabyte of tiny keys (35,000 of them cost 4 s and printed 35,000 problem lines) stops at
    the first node over the limit; a file just under it reads."""

    def keys(n: int) -> bytes:  # the top mapping and its "config" key and value: 3 nodes, then 2 per key
        return b"config:\n" + b"".join(b"  k%d: 1\n" % i for i in range(n))

    under = (MAX_NODES - 3) // 2
    assert len(read_yaml(_write(tmp_path, keys(under)))["config"]) == under
    with pytest.raises(StackFileRefused, match=f"more than {MAX_NODES} keys, values and list items"):
        read_yaml(_write(tmp_path, keys(under + 1)))
    lines = b"config:\n  k: [" + b",".join(b"1" for _ in range(MAX_NODES)) + b"]\n"
    with pytest.raises(StackFileRefused, match="line 2: more than"):
        read_yaml(_write(tmp_path, lines))


def test_depth_limit_holds_on_both_sides(tmp_path: Path) -> None:
    def nested(depth: int) -> bytes:  # depth levels including the top mapping
        return b"k: " + b"[" * (depth - 1) + b"]" * (depth - 1) + b"\n"

    assert read_yaml(_write(tmp_path, nested(MAX_DEPTH)))
    with pytest.raises(StackFileRefused, match=f"line 1: nesting deeper than {MAX_DEPTH} levels"):
        read_yaml(_write(tmp_path, nested(MAX_DEPTH + 1)))


def test_an_alias_bomb_is_refused_in_milliseconds(tmp_path: Path) -> None:
    """The billion-laughs shape: 9 levels of 9 aliases (9^9 nodes if expanded)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    path = _write(tmp_path, "\n".join(lines).encode())
    started = time.perf_counter()
    with pytest.raises(StackFileRefused, match=r" line 1: a YAML anchor \(&a0\)"):
        read_yaml(path)
    assert time.perf_counter() - started < 5, "refused while composing, never expanded"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a: x\nb: *x\n", r" line 2: a YAML alias \(\*x\)"),
        (b"a: &x 1\n", r" line 1: a YAML anchor \(&x\)"),
        (b"a: 1\n<<: {b: 2}\n", r" line 2: a YAML merge key"),
        (b"a: 1\nb: 2\na: 3\n", r" line 3: a: a second value for the key \(first on line 1\)"),
        (b"1: a\n", r" line 1: a key that is not a string \(int\)"),
        (b"- a\n", r": a top level that is a list; expected a mapping"),
        (b"text\n", r": a top level that is a str; expected a mapping"),
        (b"a: 1\n---\nb: 2\n", r" line 2: invalid YAML \(but found another document"),
        (b"a: !!python/name:os.system x\n", r" line 1: not a Pulumi stack file \(could not determine a constructor"),
        (b"a: \x00\n", r" line 1: a control character U\+0000"),
        (b"a: 1\nb: \xe9t\xe9\n", r" line 2: not UTF-8 text"),
    ],
    ids=["alias", "anchor", "merge", "duplicate", "int_key", "list", "string", "two_documents", "python_tag", "nul",
         "latin1"],
)  # fmt: skip
def test_refusals_name_the_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    with pytest.raises(StackFileRefused, match=r"^Pulumi\.x\.yaml" + message):
        read_yaml(_write(tmp_path, content))


def test_a_repeated_key_carries_the_pulumi_cli_line(tmp_path: Path) -> None:
    """gopkg.in/yaml.v3 v3.0.1 decode.go ``decoder.mapping``: ``line %d: mapping key %#v already defined at
    line %d`` (the Pulumi CLI's stack-file decoder); the reader's own line names the file and the key."""
    path = _write(tmp_path, b'config:\n  team: a\n  replicas: "2"\n  team: b\n  replicas: "3"\n')
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(path)
    assert [(str(r), r.cli) for r in raised.value.every()] == [
        ("Pulumi.x.yaml line 4: team: a second value for the key (first on line 2); keep one",
         'line 4: mapping key "team" already defined at line 2'),
        ("Pulumi.x.yaml line 5: replicas: a second value for the key (first on line 3); keep one",
         'line 5: mapping key "replicas" already defined at line 3'),
    ]  # fmt: skip


def test_repeated_keys_are_counted_by_group_and_listed_up_to_a_limit(tmp_path: Path) -> None:
    """yaml.v3 compares every pair (4,000 equal keys: 8·10^6 lines); the reader counts them by group, never
    pair by pair, and lists the first MAX_DUPLICATES_LISTED, then how many more. (4,000 keys: 8,001
    nodes, under MAX_NODES, which refuses larger files before any pair is looked at.)"""
    from components.config.stackfile import MAX_DUPLICATES_LISTED

    keys = 4_000
    assert 2 * keys + 1 <= MAX_NODES
    path = _write(tmp_path, b"a: 1\n" * keys)
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(path)
    every = raised.value.every()
    assert len(every) == MAX_DUPLICATES_LISTED + 1
    assert every[0].cli == 'line 2: mapping key "a" already defined at line 1'
    assert every[-1].cli == "" and every[-1].problem == (
        f"{keys * (keys - 1) // 2 - MAX_DUPLICATES_LISTED} more repeated keys, not listed"
    )


@pytest.mark.parametrize(
    ("text", "quoted"),
    [("a", '"a"'), ('say "hi"', '"say \\"hi\\""'), ("back\\slash", '"back\\\\slash"'), ("tab\there", '"tab\\there"'),
     ("\x01", '"\\x01"'), ("\x7f", '"\\x7f"'), ("équipe", '"équipe"'), ("\u00a0", '"\\u00a0"'),
     ("\u200b", '"\\u200b"'), ("\U000e0001", '"\\U000e0001"'), ("\ud800", '"\\ufffd"')],
    ids=["plain", "quote", "backslash", "tab", "control", "delete", "accent", "nbsp", "zero_width", "tag_char",
         "surrogate"],
)  # fmt: skip
def test_go_quoted_is_strconv_quote(text: str, quoted: str) -> None:
    """Go's strconv/quote.go ``appendEscapedRune`` (``%#v`` of a string): printable runes (unicode.IsPrint)
    as they are, \\a \\b \\f \\n \\r \\t \\v, ``\\xNN`` below space and for DEL, ``\\uNNNN`` and ``\\UNNNNNNNN``
    in lower-case hex, an invalid rune as U+FFFD."""
    from components.config.stackfile import go_quoted

    assert go_quoted(text) == quoted


def test_yaml_errors_never_quote_the_file(tmp_path: Path) -> None:
    """PyYAML's str(error) prints the offending line, which may hold a plain-text token."""
    path = _write(tmp_path, b'config:\n  service-lifecycle:registryPassword: "ghp_leaked\n')
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(path)
    assert "ghp_leaked" not in str(raised.value) and raised.value.line is not None


def test_a_byte_order_mark_is_allowed(tmp_path: Path) -> None:
    assert read_yaml(_write(tmp_path, b"\xef\xbb\xbfa: b\n")) == {"a": "b"}


# ---------------------------------------------------------------------------------------------
# Namespaces and provider keys


def test_edit_distance() -> None:
    assert edit_distance("service-lifecyle", "service-lifecycle") == 1
    assert edit_distance("kitten", "sitting") == 3  # cut short: limit 2 → 3
    assert edit_distance("abc", "abc") == 0 and edit_distance("ab", "ba") == 2
    assert edit_distance("a", "abcd") == 3
    assert closest("replicaz", ["replicas", "team"]) == "replicas" and closest("zzz", ["replicas"]) is None


@pytest.mark.parametrize(
    ("a", "b", "limit", "distance"),
    [
        ("", "ab", 2, 2), ("ab", "", 2, 2), ("abc", "xbc", 2, 1), ("abc", "ac", 2, 1), ("ac", "abc", 2, 1),
        ("flaw", "lawn", 2, 2), ("ab", "xy", 2, 2), ("abc", "abcde", 2, 2), ("abcdef", "abc", 2, 3),
        ("abcd", "wxyz", 2, 3), ("abcd", "wxyz", 5, 4), ("kitten", "sitting", 3, 3), ("abcd", "wxyz", 3, 4),
    ],
)  # fmt: skip
def test_edit_distance_is_levenshtein_cut_past_the_limit(a: str, b: str, limit: int, distance: int) -> None:
    """Up to ``limit`` the distance itself (a row whose best is the limit may still end there: "ab"/"xy");
    beyond it ``limit + 1``, without finishing the table."""
    assert edit_distance(a, b, limit) == distance
    if limit == 2:
        assert edit_distance(a, b) == distance


def test_closest_is_the_nearest_other_name_in_any_case() -> None:
    assert closest("abc", ["abe", "abd"]) == "abd"  # a tie: the first in order
    assert closest("abc", ["xbz", "abd"]) == "abd"
    assert closest("REPLICAZ", ["replicas"]) == "replicas" and closest("replicaz", ["REPLICAS"]) == "REPLICAS"
    assert closest("replicxx", ["replicas"]) == "replicas"  # two edits: still a typo
    assert closest("abc", ["xyz"]) is None and closest("abc", ["xyz"], limit=3) == "xyz"
    assert closest("abcd", ["wxyz"], limit=3) is None
    assert closest("team", ["team", "teams"]) == "teams" and closest("team", ["team"]) is None
    assert closest("x", []) is None


def test_provider_keys_come_from_the_installed_sdks() -> None:
    """pulumi_cloudflare and pulumi_docker: generated config/vars.py (one ``__config__.get('<key>')`` per
    schema config variable); pulumi_kubernetes has no config module: provider.py's inputs, camel-cased;
    aws: pulumi/pulumi-aws sdk/python/pulumi_aws/config/vars.py at commit cf6cada (pulumi_aws not installed)."""
    kubernetes, cloudflare, docker, aws = (provider_keys(n) for n in ("kubernetes", "cloudflare", "docker", "aws"))
    assert kubernetes is not None and {"context", "kubeconfig", "namespace", "enableServerSideApply"} <= kubernetes
    assert cloudflare is not None and {"apiToken", "apiKey", "email"} <= cloudflare
    assert docker is not None and {"host", "registryAuth"} <= docker
    assert aws is not None and {"region", "profile", "accessKey", "secretKey"} <= aws
    assert provider_keys("random") is None


@pytest.mark.parametrize(
    ("namespace", "short", "problem"),
    [
        ("service-lifecycle", "anything", None),
        ("myteam", "owner", None),
        ("kubernetes", "context", None),
        ("service-lifecyle", "accessEnabled",
         "the namespace service-lifecycle (did you mean service-lifecycle:accessEnabled?)"),
        ("Service-Lifecycle", "replicas", "the namespace service-lifecycle (did you mean service-lifecycle:replicas?)"),
        ("kubernets", "context", "the namespace kubernetes (did you mean kubernetes:context?)"),
        ("kubernetes", "contxt", "a configuration key of the kubernetes provider (did you mean kubernetes:context?)"),
        ("aws", "nothingLikeIt", "a configuration key of the aws provider"),
        ("awz", "region", "the namespace aws (did you mean aws:region?)"),
    ],
    ids=["project", "foreign", "provider_key", "typo", "case", "provider_typo", "key_typo", "unknown_key",
         "provider_namespace_typo"],
)  # fmt: skip
def test_namespace_problems(namespace: str, short: str, problem: str | None) -> None:
    assert namespace_problem(namespace, short, "service-lifecycle") == problem


def test_the_namespace_problems_of_another_project_name_its_own_namespace() -> None:
    assert namespace_problem("acme", "anything", "acme") is None
    assert namespace_problem("acmee", "replicas", "acme") == "the namespace acme (did you mean acme:replicas?)"
    assert namespace_problem("service-lifecycle", "replicas", "acme") is None  # another project's: not ours


# ---------------------------------------------------------------------------------------------
# What plan does with a stack file


def _project(tmp_path: Path, config: dict[str, object], stack: str = "staging") -> Path:
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml"):
        (tmp_path / name).write_bytes((PROJECT_DIR / name).read_bytes())
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))
    return tmp_path


def _sample(stack: str) -> dict[str, object]:
    config: dict[str, object] = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
    return config


def test_an_unknown_key_written_as_secure_is_refused(tmp_path: Path) -> None:
    """The Pulumi CLI checks declared keys whatever the value's form; the plan used to skip secure ones."""
    project = _project(tmp_path, {**_sample("staging"), "service-lifecycle:registryPasswd": {"secure": "v1:x"}})
    with pytest.raises(StackFileError) as raised:
        load_stack_config(project, "staging")
    assert [str(p) for p in raised.value.problems] == [
        "service-lifecycle:registryPasswd: got [secret]; expected a setting declared in Pulumi.yaml or "
        "components/schema.py "
        "(did you mean service-lifecycle:registryPassword?)"
    ]


def test_a_hostname_two_stacks_own_is_refused_unless_one_is_sunset(tmp_path: Path) -> None:
    production = {**_sample("production"), "service-lifecycle:hostnames": ["hello-staging.example.com"]}
    project = _project(tmp_path, production, "production")
    with pytest.raises(StackFileError) as raised:
        load_stack_config(project, "production")
    assert [str(p) for p in raised.value.problems] == [
        "service-lifecycle:hostnames: got 'hello-staging.example.com'; expected a hostname no other stack owns: "
        "Pulumi.staging.yaml (stage staging) has it too; one DNS record cannot have two owners"
    ]
    (project / "Pulumi.staging.yaml").write_text(
        yaml.safe_dump({"config": {**_sample("staging"), "service-lifecycle:stage": "sunset"}})
    )
    assert load_stack_config(project, "production").values["service-lifecycle:hostnames"]


def test_plain_secret_values_are_never_shown(tmp_path: Path) -> None:
    token = "ghp_do_not_print_me"
    leaks = {"service-lifecycle:registryPasword": token, "service-lifecycle:grafanaAdminPassword": [token],
             "service-lifecycle:alertWebhookUrll": token, "cloudflare:apiTokn": token,
             "aws:secretKy": token}  # fmt: skip
    project = _project(tmp_path, {**_sample("staging"), **leaks})
    with pytest.raises(StackFileError) as raised:
        load_stack_config(project, "staging")
    assert sorted(p.key for p in raised.value.problems) == sorted(leaks)
    assert token not in str(raised.value) and all(p.value == "[secret]" for p in raised.value.problems)


# ---------------------------------------------------------------------------------------------
# The command: --out and a folder without stack files


def _plan(*args: str, cwd: Path = PROJECT_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "components", "plan", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
    )  # fmt: skip


def test_out_to_a_file_is_one_line_before_planning(tmp_path: Path) -> None:
    target = tmp_path / "plan.txt"
    target.write_text("")
    result = _plan("--stack", "production", "--out", str(target))
    assert result.returncode == 2 and result.stdout == "", "nothing planned or printed"
    assert (
        result.stderr
        == f"error: --out {target}: is not a directory; expected a directory to write manifests/ and plan.json in\n"
    )


def test_out_below_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = _plan("--stack", "production", "--out", str(tmp_path / "file" / "out"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: --out {tmp_path / 'file' / 'out'}: cannot be written (")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories (CI runs as root)")
def test_out_to_a_read_only_directory_is_one_line(tmp_path: Path) -> None:
    tmp_path.chmod(0o555)
    try:
        result = _plan("--stack", "production", "--out", str(tmp_path / "out"))
    finally:
        tmp_path.chmod(0o755)
    assert result.returncode == 2 and result.stdout == "" and len(result.stderr.splitlines()) == 1


def test_a_folder_without_stack_files_hints_at_project_dir(tmp_path: Path) -> None:
    result = _plan("--stack", "staging", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "stacks here: []; no stack file in" in result.stderr and "pass --project-dir" in result.stderr


def test_an_unwritable_out_directory_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root (CI) a chmod'ed directory stays writable: the probe file's failure stands in for EROFS/EACCES."""
    import tempfile

    from components.commands import plan

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    assert plan._out_problem(tmp_path) == "cannot be written (Permission denied); expected a writable directory"
    monkeypatch.undo()
    assert plan._out_problem(tmp_path / "new" / "dir") is None and (tmp_path / "new" / "dir").is_dir()


# ---------------------------------------------------------------------------------------------
# Which values an error line may show: one function decides (components.config.settings.looks_secret)


@pytest.mark.parametrize(
    ("name", "secret_keys"),
    [
        ("registryPassword", ()),
        ("service-lifecycle:registryPasword", ()),  # a typo of a schema secret
        ("service-lifecycle:alertWebhookUrll", ()),  # ... whose name does not look secret
        ("service-lifecycle:kubeconfig", ()),
        ("other:grafanaAdminPasswd", ()),  # any namespace
        ("cloudflare:apiTokn", ()),  # a typo of a provider's secret-looking key
        ("aws:secretKy", ()),
        ("docker:registryAut", ()),
        ("myteam:dbPwd", ()),  # a name that says it is secret
        ("myproject:owner", ("myproject:owner",)),  # declared secret, plain-looking name
        ("myproject:ownr", ("myproject:owner",)),  # ... and a typo of it
        ("other:OWNER", ("myproject:owner",)),
    ],
    ids=["schema_secret", "schema_typo", "webhook_typo", "kubeconfig", "foreign_typo", "provider_typo", "aws_typo",
         "docker_typo", "secret_word", "declared", "declared_typo", "declared_case"],
)  # fmt: skip
def test_looks_secret_hides(name: str, secret_keys: tuple[str, ...]) -> None:
    from components.config.settings import looks_secret

    assert looks_secret(name, secret_keys)


@pytest.mark.parametrize(
    ("name", "secret_keys"),
    [
        ("replicas", ()),
        ("service-lifecycle:replicas", ()),
        ("service-lifecycle:imagePullSecret", ()),  # a boolean: the schema says so, whatever the name says
        ("service-lifecycle:hostnames", ("service-lifecycle:registryPassword",)),
        ("cloudflare:email", ()),
        ("aws:region", ()),
        ("kubernetes:context", ()),
        ("myteam:owner", ()),
        ("myproject:team", ("myproject:owner",)),  # three edits from the declared secret
        ("config", ()),
    ],
    ids=["replicas", "replicas_full", "image_pull_secret", "hostnames", "cloudflare_email", "aws_region",
         "kubernetes_context", "foreign", "far_from_declared", "config"],
)  # fmt: skip
def test_looks_secret_shows(name: str, secret_keys: tuple[str, ...]) -> None:
    from components.config.settings import looks_secret

    assert not looks_secret(name, secret_keys)


def test_settings_and_the_stack_reader_mask_through_the_same_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both error paths ask components.config.problems.looks_secret: hiding one more name there hides it in both."""
    from components.config import problems  # looks_secret is looked up in the module defining it
    from components.config.settings import SettingsError, load_settings
    from components.testing import DictConfig

    original = problems.looks_secret
    hidden = {"team", "service-lifecycle:team", "service-lifecycle:replicaCount"}

    def stricter(name: str, secret_keys: Collection[str] = ()) -> bool:
        return name in hidden or original(name, secret_keys)

    monkeypatch.setattr(problems, "looks_secret", stricter)
    values = dict(load_stack_config(PROJECT_DIR, "staging").values)
    values["service-lifecycle:team"] = "Not A Team"
    with pytest.raises(SettingsError) as settings_error:
        load_settings(DictConfig(values, set()), environ={"SOURCE_REVISION": "0" * 40})
    assert [p.value for p in settings_error.value.problems if p.key.endswith(":team")] == ["[secret]"]
    project = _project(tmp_path, {**_sample("staging"), "service-lifecycle:replicaCount": "2"})
    with pytest.raises(StackFileError) as stack_error:
        load_stack_config(project, "staging")
    assert [p.value for p in stack_error.value.problems] == ["[secret]"]
    monkeypatch.undo()
    with pytest.raises(StackFileError) as shown:
        load_stack_config(project, "staging")
    assert [p.value for p in shown.value.problems] == ["'2'"], "the same line shows the value without the change"


# ---------------------------------------------------------------------------------------------
# Each file is read once per process while it is unchanged


def _settle(*paths: Path, ago_s: int = 60) -> None:
    """Give files a modification time older than stackfile.SETTLED_NS (a fresh one is never kept)."""
    when = time.time_ns() - ago_s * 1_000_000_000
    for path in paths:
        os.utime(path, ns=(when, when))


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    from components.config import stackfile

    stackfile.forget_read_files()
    reads: Counter[str] = Counter()
    original = stackfile._read_text

    def counting(path: Path, size: int) -> str:
        reads[path.name] += 1
        return original(path, size)

    monkeypatch.setattr(stackfile, "_read_text", counting)
    return reads


def test_a_second_load_reads_no_file_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hostname check reads every other stack file: loading each stack once reads each file once."""
    project = _project(tmp_path, _sample("staging"))
    files = ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.production.yaml")
    _settle(*(project / name for name in files))
    reads = _count_reads(monkeypatch)
    load_stack_config(project, "staging")
    assert reads == {name: 1 for name in files}, "the production file too: its hostnames are checked"
    for stack in ("staging", "production", "staging"):
        load_stack_config(project, stack)
    assert reads == {name: 1 for name in files}


def test_an_edited_file_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same size, another modification time: read again, and the edit is what is returned."""
    project = _project(tmp_path, _sample("staging"))
    production = project / "Pulumi.production.yaml"
    _settle(project / "Pulumi.yaml", project / "Pulumi.staging.yaml", production, ago_s=120)
    reads = _count_reads(monkeypatch)
    assert load_stack_config(project, "production").values["service-lifecycle:replicas"] == "3"
    text = production.read_text()
    production.write_text(text.replace('service-lifecycle:replicas: "3"', 'service-lifecycle:replicas: "4"'))
    assert production.stat().st_size == len(text.encode())
    _settle(production)
    assert load_stack_config(project, "production").values["service-lifecycle:replicas"] == "4"
    assert reads["Pulumi.production.yaml"] == 2 and reads["Pulumi.yaml"] == 1


def test_a_file_changed_within_the_clock_tick_is_read_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git's racy-git rule: a same-size edit in the same timestamp tick would look unchanged, so a file
    modified less than SETTLED_NS ago is never kept."""
    path = _write(tmp_path, b"a: b\n")
    reads = _count_reads(monkeypatch)
    assert read_yaml(path) == read_yaml(path) == {"a": "b"}
    assert reads[path.name] == 2
    _settle(path)
    read_yaml(path), read_yaml(path)
    assert reads[path.name] == 3


def test_a_kept_file_is_a_fresh_copy_and_a_kept_refusal_is_raised_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = _write(tmp_path, b"config:\n  a: [1]\n"), tmp_path / "Pulumi.bad.yaml"
    bad.write_bytes(b"a: 1\na: 2\n")
    _settle(good, bad)
    reads = _count_reads(monkeypatch)
    read_yaml(good)["config"]["a"].append(2)
    assert read_yaml(good) == {"config": {"a": [1]}}, "a caller's change does not reach the next caller"
    for _ in range(2):
        with pytest.raises(StackFileRefused, match=r"^Pulumi\.bad\.yaml line 2: a: a second value") as raised:
            read_yaml(bad)
        assert raised.value.cli == 'line 2: mapping key "a" already defined at line 1'
    assert reads == {"Pulumi.x.yaml": 1, "Pulumi.bad.yaml": 1}


@pytest.mark.parametrize(
    ("stage", "publishes"),
    [("staging", True), ("production", True), ("sunset", False), ("Sunset", True), (None, True), (["sunset"], True)],
    ids=["staging", "production", "sunset", "not_a_stage", "missing", "a_list"],
)
def test_which_stacks_own_their_hostnames(stage: object, publishes: bool) -> None:
    """The stage table's exposure (components/lifecycle.py) decides; a stage that is not one still owns its
    hostnames (the same as before the table was asked: only "sunset" gives them up)."""
    from components.config.stack_config import _publishes

    assert _publishes(stage) is publishes


# ---------------------------------------------------------------------------------------------
# Stage 3 (components/config/stack_config.py) on a project of several services

SHOP = (
    "name: shop\nruntime: python\nconfig:\n  services:\n    type: array\n    items:\n      type: string\n"
    "    default: []\n"
)


def _shop(tmp_path: Path, staging: str, production: str | None = None) -> Path:
    (tmp_path / "Pulumi.yaml").write_text(SHOP)
    (tmp_path / "Pulumi.staging.yaml").write_text(staging)
    if production is not None:
        (tmp_path / "Pulumi.production.yaml").write_text(production)
    return tmp_path


def _problems(project: Path, stack: str = "staging") -> list[str]:
    with pytest.raises(StackFileError) as raised:
        load_stack_config(project, stack)
    return [str(p) for p in raised.value.problems]


def test_a_listed_service_s_keys_are_the_library_s_settings_and_its_secrets_encrypted(tmp_path: Path) -> None:
    project = _shop(tmp_path, "config:\n  shop:services: [web, api]\n  shop:stage: staging\n"
                    "  web:imageRepository: ghcr.io/acme/web\n  web:replica: '3'\n  web:services: '[x]'\n"
                    "  web:registryPassword: plain\n  api:registryPassword:\n    secure: ''\n"
                    "  api:cloudflareApiToken:\n    secure: v1:abc\n  api:zzzzzz: '1'\n"
                    "  worker:imageRepository: ghcr.io/acme/worker\n  dockr:host: x\n  docker:hots: x\n"
                    "  myteam:owner: x\n")  # fmt: skip
    assert _problems(project) == [
        "web:replica: got '3'; expected a setting of components/config/schema.py (did you mean web:replicas?)",
        "web:services: got '[x]'; expected not set per service: shop:services is the project's",
        "web:registryPassword: got [secret]; expected an encrypted value: pulumi config set --secret "
        "web:registryPassword …",
        "api:registryPassword: got [secret]; expected secure: <ciphertext>, as `pulumi config set --secret` writes it",
        "api:zzzzzz: got '1'; expected a setting of components/config/schema.py",
        "worker:imageRepository: got 'ghcr.io/acme/worker'; expected a key of a listed service: add worker to "
        "shop:services, or set shop:imageRepository",
        "dockr:host: got 'x'; expected the namespace docker (did you mean docker:host?)",
        "docker:hots: got 'x'; expected a configuration key of the docker provider (did you mean docker:host?)",
    ]


def test_what_stage_3_keeps_reads_as_the_cli_hands_it(tmp_path: Path) -> None:
    project = _shop(tmp_path, "config:\n  shop:services: [web]\n  stage: staging\n  web:replicas: '3'\n"
                    "  web:cloudflareApiToken:\n    secure: v1:abc\n  myteam:owner: x\n")  # fmt: skip
    config = load_stack_config(project, "staging")
    assert config.project == "shop" and config.key("stage") == "shop:stage"
    assert {k: config.values[k] for k in ("shop:services", "shop:stage", "web:replicas", "myteam:owner")} == {
        "shop:services": '["web"]', "shop:stage": "staging", "web:replicas": "3", "myteam:owner": "x",
    }  # fmt: skip
    assert "web:cloudflareApiToken" in config.secret_keys and "web:replicas" not in config.secret_keys
    source = config.source()
    assert source.name == "shop" and source.get("stage") == "staging" and source.get("replicas") is None
    web = source.view("web")
    assert (web.name, web.get("replicas"), web.get_secret("replicas") is not None, web.get_secret("x")) == (
        "web", "3", True, None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("production", "stage"),
    [
        ("config:\n  shop:stage: production\n  hostnames: [shop.example.com]\n", "production"),  # bare: the project's
        ("config:\n  shop:stage: sunset\n  shop:hostnames: [shop.example.com]\n", None),
        ("config:\n  stage: sunset\n  shop:hostnames: [shop.example.com]\n", None),
        ("config:\n  shop:stage: production\n  shop:services: [api]\n  api:hostnames: [shop.example.com]\n",
         "production"),
        ("config:\n  shop:stage: production\n  services: [api]\n  api:hostnames: [shop.example.com]\n", "production"),
        ("config:\n  shop:stage: production\n  shop:services: [api]\n  api:stage: sunset\n"
         "  api:hostnames: [shop.example.com]\n", None),
        ("config:\n  shop:stage: sunset\n  shop:services: [api]\n  api:stage: staging\n"
         "  api:hostnames: [shop.example.com]\n", "staging"),
        ("config:\n  shop:stage: production\n  api:hostnames: [shop.example.com]\n", None),  # api not listed
        ("config:\n  shop:stage: production\n  shop:hostnames: [other.example.com, 5]\n", None),
        ("config:\n  shop:stage: production\n  shop:hostnames: shop.example.com\n", None),
    ],
    ids=["bare_key", "sunset", "bare_stage_sunset", "service", "bare_services", "service_sunset",
         "service_live_in_a_sunset_stack", "not_listed", "other_names", "not_a_list"],
)  # fmt: skip
def test_a_hostname_is_owned_by_each_live_service_of_another_stack(tmp_path: Path, production: str,
                                                                    stage: str | None) -> None:  # fmt: skip
    project = _shop(tmp_path, "config:\n  shop:services: [web]\n  shop:stage: staging\n"
                    "  web:hostnames: [shop.example.com]\n", production)  # fmt: skip
    if stage is None:
        assert load_stack_config(project, "staging").values["web:hostnames"] == '["shop.example.com"]'
        return
    assert _problems(project) == [
        "web:hostnames: got 'shop.example.com'; expected a hostname no other stack owns: Pulumi.production.yaml "
        f"(stage {stage}) has it too; one DNS record cannot have two owners"
    ]


def test_a_hostname_of_a_sunset_service_or_stack_here_is_nobody_s(tmp_path: Path) -> None:
    """Accepted, not refused as owned by production: the stack's values come back with the hostnames as written."""
    production = "config:\n  shop:stage: production\n  shop:hostnames: [shop.example.com]\n"
    for staging, key, value in (
        ("config:\n  shop:stage: sunset\n  shop:hostnames: [shop.example.com]\n",
         "shop:hostnames", '["shop.example.com"]'),
        ("config:\n  shop:services: [web]\n  shop:stage: staging\n  web:stage: sunset\n"
         "  web:hostnames: [shop.example.com]\n", "web:hostnames", '["shop.example.com"]'),
        ("config:\n  shop:stage: staging\n  shop:hostnames: '[not json'\n", "shop:hostnames", "[not json"),
    ):  # fmt: skip
        assert load_stack_config(_shop(tmp_path, staging, production), "staging").values[key] == value


def test_stage_3_never_shows_a_secret_and_reads_legacy_and_provider_keys_as_the_cli(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text(
        "name: shop\nruntime: python\nconfig:\n  cookieValue:\n    type: string\n    secret: true\n    default: x\n"
    )
    (tmp_path / "Pulumi.staging.yaml").write_text(
        "config:\n  shopp:cookieValue: hunter2\n  dockr:config:host: x\n  docker:imageRepository: x\n"
        "  api:yyyyyy:\n    secure: v1:abc\n  shop:stage: staging\n"
    )
    with pytest.raises(StackFileError) as raised:
        load_stack_config(tmp_path, "staging")
    assert [str(p) for p in raised.value.problems] == [
        # a misspelt namespace of a key the project declares secret: hidden all the same
        "shopp:cookieValue: got [secret]; expected the namespace shop (did you mean shop:cookieValue?)",
        # Pulumi's legacy <namespace>:config:<name> spelling: the namespace is what precedes the first colon
        "dockr:config:host: got 'x'; expected the namespace docker (did you mean docker:config:host?)",
        # a provider's namespace: its own keys, not a service's that the stack does not list
        "docker:imageRepository: got 'x'; expected a configuration key of the docker provider",
        "api:yyyyyy: got [secret]; expected the namespace aws (did you mean aws:yyyyyy?)",
    ]
    config = raised.value.config  # what could be read, to check the settings too
    assert config is not None and config.stack == "staging" and config.values["shop:stage"] == "staging"
    assert {"shop:cookieValue", "shop:registryPassword"} <= config.secret_keys
    assert list(config.declared) == ["cookieValue"] and config.declared["cookieValue"]["secret"] is True


@pytest.mark.parametrize(
    ("text", "items"),
    [(None, []), ("", []), ("[not json", []), ("5", []), ('"a"', []), ('{"a": 1}', []), ('["a", 1, "b"]', ["a", "b"])],
)
def test_a_listed_value_is_the_strings_of_a_json_list(text: str | None, items: list[str]) -> None:
    from components.config.stack_config import _listed

    assert _listed(text) == items


def test_a_hostnames_mapping_in_another_stack_owns_nothing(tmp_path: Path) -> None:
    """Only a list's names count (that stack's own plan refuses the mapping)."""
    project = _shop(tmp_path, "config:\n  shop:stage: staging\n  shop:hostnames: [shop.example.com]\n",
                    "config:\n  shop:stage: production\n  shop:hostnames: {shop.example.com: x}\n")  # fmt: skip
    assert load_stack_config(project, "staging").values["shop:hostnames"] == '["shop.example.com"]'


@pulumi.runtime.test
def test_a_secret_read_through_the_stack_s_source_is_its_value_as_a_secret() -> pulumi.Output[None]:
    config = StackConfig(stack="staging", values={"web:token": "tok-1"}, project="shop")
    secret = config.source().view("web").get_secret("token")
    assert secret is not None

    def check(args: list[object]) -> None:
        assert args == ["tok-1", True]

    return pulumi.Output.all(secret, secret.is_secret()).apply(check)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Stage 1's own problems (components/config/stackfile.py: read_stack)


def _stage_1(project: Path, stack: str = "staging") -> list[tuple[str, str, str, str | None]]:
    from components.config.stackfile import read_stack

    with pytest.raises(StackFileError) as raised:
        read_stack(project, stack)
    return [(p.key, p.value, p.expected, getattr(p, "cli", None)) for p in raised.value.problems]


def test_a_missing_stack_file_names_the_stacks_there_are(tmp_path: Path) -> None:
    wanted = str(tmp_path / "Pulumi.staging.yaml")
    assert _stage_1(tmp_path) == [("--stack staging", wanted, "an existing stack file; stacks here: []; no stack file "
                                   f"in {tmp_path}: run from the project or pass --project-dir", None)]  # fmt: skip
    (tmp_path / "Pulumi.production.yaml").write_text("config: {}\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    assert _stage_1(tmp_path) == [("--stack staging", wanted, "an existing stack file; stacks here: ['dev', "
                                   "'production']", None)]  # fmt: skip


def test_the_project_file_must_be_there_readable_and_declare_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.staging.yaml").write_text("config: {}\n")
    project = tmp_path / "Pulumi.yaml"
    assert _stage_1(tmp_path) == [(str(project), "<missing>", "a Pulumi.yaml next to the stack files: run from the "
                                   "project or pass --project-dir", None)]  # fmt: skip
    project.mkdir()
    assert _stage_1(tmp_path) == [(str(project), "<unreadable>", "a readable file (Is a directory)", None)]
    project.rmdir()
    for declarations in ("config: [a]\n", "config:\n  a: 1\n"):
        project.write_text("name: x\n" + declarations)
        assert _stage_1(tmp_path) == [("Pulumi.yaml: config", "<not a mapping of declarations>",
                                       "name: {type: …, description: …} per setting", None)]  # fmt: skip
    project.write_text("name: x\na: 1\na: 2\n")
    assert _stage_1(tmp_path) == [
        ("Pulumi.yaml line 3: a", "a second value for the key (first on line 2); keep one",
         "a stack file Pulumi can read", 'line 3: mapping key "a" already defined at line 2'),
    ]  # fmt: skip


def test_a_stack_file_s_config_must_be_a_mapping_and_its_value_is_never_shown_in_full(tmp_path: Path) -> None:
    from components.config.stackfile import read_stack

    (tmp_path / "Pulumi.yaml").write_text("name: x\nconfig:\n  team:\n    type: string\n")
    (tmp_path / "Pulumi.staging.yaml").write_text("config: [" + ", ".join(["v"] * 40) + "]\n")
    [(key, value, expected, _)] = _stage_1(tmp_path)
    assert (key, expected) == ("Pulumi.staging.yaml: config", "a mapping of settings")
    assert value == "['v', " + "'v', " * 14 + "'v',… (200 characters)"
    (tmp_path / "Pulumi.staging.yaml").write_text("config:\n  x:team: web\n")
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  x:team: prod\n")
    files = read_stack(tmp_path, "staging")
    assert (files.project_dir, files.stack, files.config, files.others) == (
        tmp_path, "staging", {"x:team": "web"}, (("prod", {"x:team": "prod"}),),
    )  # fmt: skip
    assert files.declared == {"team": {"type": "string"}} and files.project["name"] == "x"


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("\a\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'),
        (' "\\', '" \\"\\\\"'),
        ("\x1f\x7f\x85", '"\\x1f\\x7f\\u0085"'),
        ("\ud800\udfff\ue000", '"\\ufffd\\ufffd\\ue000"'),
        ("\U000e0001\U0001f600", '"\\U000e0001\U0001f600"'),
        ("X", '"X"'),
    ],
    ids=["c_escapes", "space_quote_backslash", "control", "surrogates_private_use", "astral", "x"],
)
def test_go_quoted_escapes_as_strconv_quote(text: str, quoted: str) -> None:
    from components.config.stackfile import go_quoted

    assert go_quoted(text) == quoted


def test_the_oldest_of_more_files_than_are_kept_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most CACHED_FILES are kept; a new one drops the one read longest ago, and a file read again after an
    edit counts as read now."""
    from components.config.stackfile import CACHED_FILES

    paths = [tmp_path / f"Pulumi.s{n:02d}.yaml" for n in range(CACHED_FILES + 6)]
    for path in paths:
        path.write_text("config: {}\n")
    _settle(*paths)
    reads = _count_reads(monkeypatch)
    for path in paths[:CACHED_FILES]:
        read_yaml(path)
    _settle(paths[5], ago_s=30)  # edited: read again, and now the newest
    read_yaml(paths[5])
    for path in paths[CACHED_FILES:]:  # six more: s00 to s04 and s06 go
        read_yaml(path)
    read_yaml(paths[5])
    read_yaml(paths[7])
    assert (reads[paths[5].name], reads[paths[7].name]) == (2, 1)
    read_yaml(paths[6])
    read_yaml(paths[0])
    assert (reads[paths[6].name], reads[paths[0].name]) == (2, 2)


def test_a_key_three_times_is_listed_as_yaml_v3_lists_each_pair(tmp_path: Path) -> None:
    path = _write(tmp_path, b"a: 1\na: 2\na: 3\n")
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(path)
    assert [r.cli for r in raised.value.every()] == [
        'line 2: mapping key "a" already defined at line 1',
        'line 3: mapping key "a" already defined at line 1',
        'line 3: mapping key "a" already defined at line 2',
    ]


@pytest.mark.parametrize("keys", [b"? [a]\n: 1\n? [b]\n: 2\n", b"? {a: 1}\n: 1\n? {b: 2}\n: 2\n"],
                         ids=["lists", "mappings"])  # fmt: skip
def test_two_collection_keys_are_one_key_with_an_empty_text(tmp_path: Path, keys: bytes) -> None:
    """yaml.v3 compares a key's kind and ``Value``, empty for a list or a mapping: two such keys of one kind are
    one key, printed ``""``; a plain key (even ``""`` or ``XXXX``) beside them is another kind."""
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(_write(tmp_path, keys))
    assert [(str(r), r.cli) for r in raised.value.every()] == [
        ("Pulumi.x.yaml line 3: a second value for the key (first on line 1); keep one",
         'line 3: mapping key "" already defined at line 1'),
    ]  # fmt: skip
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(_write(tmp_path, b'? [a]\n: 1\n"": 2\nXXXX: 3\n'))
    assert [(str(r), r.cli) for r in raised.value.every()] == [
        ("Pulumi.x.yaml line 1: a key that is not a string (list)", ""),
    ]


def test_a_repeated_key_after_a_nested_mapping_without_one_is_found(tmp_path: Path) -> None:
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(_write(tmp_path, b"a:\n  x: 1\nb:\n  y: 1\n  y: 2\n"))
    assert [r.cli for r in raised.value.every()] == ['line 5: mapping key "y" already defined at line 4']


def test_a_control_character_s_line_counts_a_leading_empty_line(tmp_path: Path) -> None:
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(_write(tmp_path, b"\nconfig:\n  a: b\x01\n"))
    assert str(raised.value) == "Pulumi.x.yaml line 3: a control character U+0001 (a binary file?)"


def test_repeated_keys_of_several_mappings_are_listed_up_to_the_limit_in_all(tmp_path: Path) -> None:
    from components.config.stackfile import MAX_DUPLICATES_LISTED

    pairs = "".join(f"  k{n}: 1\n  k{n}: 2\n" for n in range(15))
    path = _write(tmp_path, f"x:\n{pairs}y:\n{pairs}".encode())
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(path)
    every = raised.value.every()
    assert len(every) == MAX_DUPLICATES_LISTED + 1 and every[-1].problem == "10 more repeated keys, not listed"


@pytest.mark.parametrize("character", ["\u0080", "\u009f", "\ufffe"], ids=["c1_first", "c1_last", "non_character"])
def test_a_character_yaml_does_not_allow_is_a_refusal_not_a_traceback(tmp_path: Path, character: str) -> None:
    """PyYAML's reader refuses these when the loader is made (before, an uncaught ReaderError: a traceback)."""
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(_write(tmp_path, f"config:\n  a: b{character}\n".encode()))
    assert str(raised.value) == "Pulumi.x.yaml: invalid YAML (ReaderError)"


def test_a_file_grown_past_the_limit_after_its_size_was_read_is_refused(tmp_path: Path) -> None:
    from components.config.stackfile import _read_text

    path = _write(tmp_path, b"#" * (MAX_BYTES + 1))
    with pytest.raises(StackFileRefused) as raised:
        _read_text(path, 10)  # the size stat() gave before it grew
    assert str(raised.value) == f"Pulumi.x.yaml: more than {MAX_BYTES} bytes; a stack file may have at most 1 MiB"


def test_the_node_limit_is_exact(tmp_path: Path) -> None:
    def items(n: int) -> bytes:  # the top mapping, its "k" key and its list: 3 nodes, then one per item
        return b"k: [" + b",".join(b"1" for _ in range(n)) + b"]\n"

    assert len(read_yaml(_write(tmp_path, items(MAX_NODES - 3)))["k"]) == MAX_NODES - 3
    with pytest.raises(StackFileRefused, match=f"more than {MAX_NODES} keys"):
        read_yaml(_write(tmp_path, items(MAX_NODES - 2)))


def test_only_a_leading_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    assert read_yaml(_write(tmp_path, "\ufeffa: b\n".encode())) == {"a": "b"}
    with pytest.raises(StackFileRefused, match=r"^Pulumi.x.yaml line 2: invalid YAML"):
        read_yaml(_write(tmp_path, "a: b\n\ufeff".encode()))

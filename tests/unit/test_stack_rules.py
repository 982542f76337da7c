"""The Pulumi CLI's configuration rules (components/config/stack_rules.py) and what they say about our files.

Sources, pulumi/pulumi: ``pkg/workspace/config.go`` (``mergeConfig``, ``formatMissingKeys``,
``missingStackConfigurationKeysError``, ``validateStackConfigValue``), ``sdk/go/common/workspace/project.go``
(``(*Project).Validate``, ``ValidateConfigValue``, ``InferFullTypeName``), ``sdk/go/common/workspace/project.json``
(vendored under tests/unit/fixtures/pulumi), ``sdk/go/common/resource/config/object.go``
(``object.MarshalString``); gopkg.in/yaml.v3 ``decode.go`` (``decoder.mapping``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from components.config import stack_rules
from components.config.settings import PROJECT, SettingsError, key, load_settings
from components.config.stack_config import StackFileError, load_stack_config
from components.config.stack_rules import (
    PROGRAM_SETTINGS,
    cli_text,
    missing_problems,
    project_problems,
    undeclared_problems,
    validate_config_value,
    value_problems,
)
from components.config.stackfile import StackFileRefused, duplicate_keys, read_yaml
from components.testing import DictConfig

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROJECT_FILE = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
DECLARED: dict[str, Any] = PROJECT_FILE["config"]
REQUIRED = sorted(name for name, d in DECLARED.items() if d.get("default") is None and d.get("value") is None)
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _stack(name: str, directory: Path = PROJECT_DIR) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((directory / f"Pulumi.{name}.yaml").read_text())["config"]
    return config


# ---------------------------------------------------------------------------------------------
# Pulumi.yaml itself


def test_pulumi_yaml_matches_the_cli_project_schema() -> None:
    """pulumi/pulumi sdk/go/common/workspace/project.json: the schema the CLI checks Pulumi.yaml
    against before anything else (``configTypeDeclaration`` allows only type, items, description,
    secret, default, value)."""
    schema = json.loads((FIXTURES / "pulumi" / "project.json").read_text())
    jsonschema.validate(PROJECT_FILE, schema, cls=jsonschema.Draft202012Validator)


def test_project_schema_refuses_an_unknown_declaration_field() -> None:
    """The vendored schema can fail: ``required: true`` is not a Pulumi config attribute."""
    schema = json.loads((FIXTURES / "pulumi" / "project.json").read_text())
    broken = {**PROJECT_FILE, "config": {**DECLARED, "stage": {"type": "string", "required": True}}}
    with pytest.raises(jsonschema.ValidationError, match="required"):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)


def test_pulumi_yaml_passes_project_validate() -> None:
    """pulumi/pulumi sdk/go/common/workspace/project.go ``(*Project).Validate``."""
    assert project_problems(PROJECT, DECLARED) == []


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ({"type": "string", "default": "a", "value": "b"}, "cannot have both a 'default' and 'value' attribute"),
        ({"type": "array"}, "declares an array but does not specify the underlying type via the 'items' attribute"),
        ({"type": "integer", "default": "many"}, "is not of the expected type 'integer'"),
        ({"type": "array", "items": {"type": "string"}, "default": [1]}, "expected type 'array<string>'"),
        ({"type": "boolean", "default": "yes"}, "expected type 'boolean'"),
    ],
    ids=["default-and-value", "array-without-items", "bad-integer-default", "bad-array-default", "bad-bool-default"],
)
def test_project_validate_refuses(declaration: dict[str, Any], message: str) -> None:
    """pulumi/pulumi sdk/go/common/workspace/project.go ``(*Project).Validate``: the same messages."""
    problems = project_problems(PROJECT, {"x": declaration})
    assert len(problems) == 1 and message in problems[0], problems


def test_project_validate_on_other_namespaces() -> None:
    """``(*Project).Validate``: a key of another namespace takes a ``value``, never a type or default."""
    assert project_problems(PROJECT, {"aws:region": {"value": "eu-west-1"}}) == []
    assert "should not define a type" in project_problems(PROJECT, {"aws:region": {"type": "string"}})[0]
    assert "'value' attribute instead of 'default'" in project_problems(PROJECT, {"aws:region": {"default": "x"}})[0]
    assert "must provide an attribute 'value'" in project_problems(PROJECT, {"aws:region": {"description": "x"}})[0]


def test_no_secret_is_declared_in_pulumi_yaml() -> None:
    """pulumi/pulumi pkg/workspace/config.go: a ``secret: true`` key without default is reported missing
    by ``mergeConfig`` when unset; with a default, ``mergeConfig`` merges the default as plain text
    (``createConfigValue`` → ``config.NewValue``) and ``validateStackConfigValue`` refuses it ("must be
    encrypted as it's secret"). An optional secret therefore lives in PROGRAM_SETTINGS."""
    assert [name for name, d in DECLARED.items() if d.get("secret")] == []
    assert {name for name, s in PROGRAM_SETTINGS.items() if s.secret} == {
        "registryPassword", "registryPullPassword", "kubeconfig", "cloudflareApiToken", "alertWebhookUrl",
        "grafanaAdminPassword",
    }  # fmt: skip
    assert not set(PROGRAM_SETTINGS) & set(DECLARED)


def test_a_declared_secret_with_a_default_fails_when_unset() -> None:
    """pulumi/pulumi pkg/workspace/config.go ``mergeConfig`` then ``validateStackConfigValue``: the rule
    that keeps optional secrets out of Pulumi.yaml, shown on a stack that leaves the secret unset."""
    declared = {"token": {"type": "string", "secret": True, "default": ""}}
    merged = {key("token"): ""}  # what mergeConfig sets from the default: plain text
    [problem] = value_problems("dev", declared, merged)
    assert problem.cli == "Stack 'dev' with configuration key 'token' must be encrypted as it's secret"


# ---------------------------------------------------------------------------------------------
# The sample stacks and the minimal ones


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_sample_stacks_pass_every_cli_rule(stack: str) -> None:
    """pulumi/pulumi pkg/workspace/config.go ``mergeConfig`` (no missing key) and
    ``validateStackConfigValue`` (types, secrets); plus our undeclared-key rule."""
    assert stack_rules.stack_problems(stack, DECLARED, _stack(stack)) == []
    root = yaml.compose((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text(), Loader=yaml.SafeLoader)
    assert root is not None and duplicate_keys(root) == ([], 0)


def test_required_keys_are_the_ones_every_stack_names() -> None:
    expected = ["stage", "serviceName", "team", "appVersion", "imageRepository", "cloudflareAccountId",
                "cloudflareZoneId", "zoneName", "hostnames"]  # fmt: skip
    assert sorted(expected) == REQUIRED


@pytest.mark.parametrize(
    ("stage", "extra"),
    [
        ("sunset", set()),
        ("staging", {"accessEnabled", "accessAllowEmailDomains"}),
        ("production", {"promoteFromStack"}),
    ],
)
def test_a_stack_with_only_the_required_keys_plans(tmp_path: Path, stage: str, extra: set[str]) -> None:
    """pulumi/pulumi pkg/workspace/config.go ``mergeConfig``: the CLI asks a stack for exactly the keys
    declared without default; a stack file holding only those (plus what its stage itself needs,
    which the CLI cannot express) passes the CLI rules and plans."""
    name = f"minimal-{stage}"
    stack_file = FIXTURES / "minimal" / f"Pulumi.{name}.yaml"
    config = _stack(name, stack_file.parent)
    assert {k.split(":")[1] for k in config} == set(REQUIRED) | extra
    assert stack_rules.stack_problems(name, DECLARED, config) == []
    for file in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT_DIR / file, tmp_path)
    (tmp_path / "app").symlink_to(PROJECT_DIR / "app")
    shutil.copy(stack_file, tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", name, "--project-dir", str(tmp_path)],
        cwd=PROJECT_DIR, env={**os.environ, "SOURCE_REVISION": REVISION},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"(stage {stage}," in result.stdout


# ---------------------------------------------------------------------------------------------
# Each rule firing


def test_missing_values_in_the_cli_wording() -> None:
    """pulumi/pulumi pkg/workspace/config.go ``mergeConfig`` + ``missingStackConfigurationKeysError`` +
    ``formatMissingKeys``: sorted, "value" for one key, "'a', 'b' and 'c'" for several."""
    config = {k: v for k, v in _stack("staging").items() if k not in (key("team"), key("zoneName"), key("stage"))}
    problems = missing_problems("staging", DECLARED, config)
    assert {p.cli for p in problems} == {
        "Stack 'staging' is missing configuration values 'stage', 'team' and 'zoneName'"
    }
    assert [p.key for p in problems] == [key("stage"), key("team"), key("zoneName")]
    one = missing_problems("staging", DECLARED, {k: v for k, v in _stack("staging").items() if k != key("team")})
    assert [p.cli for p in one] == ["Stack 'staging' is missing configuration value 'team'"]
    two = missing_problems("s", {"b": {}, "a": {}}, {})
    assert two[0].cli == "Stack 's' is missing configuration values 'a' and 'b'"


def test_defaults_and_bare_keys_are_not_missing() -> None:
    """``mergeConfig``: a default or value fills the key; a bare stack key is the project's."""
    declared = {"a": {"default": 1}, "b": {"value": 2}, "c": {}}
    assert missing_problems("s", declared, {"c": "x"}) == []


@pytest.mark.parametrize(
    ("value", "ok"),
    [("3", True), ("+3", True), ("-3", True), ("007", True), (3, True), (3.0, True),
     ("3.0", False), (" 3", False), ("1_0", False), ("three", False), ("", False), (True, False),
     ("9223372036854775808", False)],
    ids=["3", "plus3", "minus3", "007", "int", "whole-float", "text-float", "space", "underscore", "word", "empty",
         "bool", "overflow"],
)  # fmt: skip
def test_integer_values(value: Any, ok: bool) -> None:
    """pulumi/pulumi sdk/go/common/workspace/project.go ``ValidateConfigValue``: int, whole float, or a
    string Go's ``strconv.Atoi`` parses (sign and ASCII digits, within 64 bits)."""
    assert validate_config_value("integer", None, cli_text(value)) is ok


@pytest.mark.parametrize(
    ("value", "ok"), [("true", True), ("false", True), (True, True), ("True", False), ("yes", False), ("1", False)]
)
def test_boolean_values(value: Any, ok: bool) -> None:
    """``ValidateConfigValue``: a bool, or exactly the text "true"/"false" (stack values arrive as text)."""
    assert validate_config_value("boolean", None, cli_text(value)) is ok


def test_type_mismatches_in_the_cli_wording() -> None:
    """pulumi/pulumi pkg/workspace/config.go ``validateStackConfigValue`` with ``InferFullTypeName``."""
    config = {
        **_stack("staging"),
        key("replicas"): "3.0",
        key("accessEnabled"): "yes",
        key("hostnames"): "hello.example.com",
        key("accessAllowEmails"): [1, "a@example.com"],
        key("team"): {"name": "platform"},
    }
    problems = value_problems("staging", DECLARED, config)
    assert [p.cli for p in problems] == [
        "Stack 'staging' with configuration key 'accessAllowEmails' must be of type 'array<string>'",
        "Stack 'staging' with configuration key 'accessEnabled' must be of type 'boolean'",
        "Stack 'staging' with configuration key 'hostnames' must be of type 'array<string>'",
        "Stack 'staging' with configuration key 'replicas' must be of type 'integer'",
        "Stack 'staging' with configuration key 'team' must be of type 'string'",
    ]
    assert str(problems[3]) == "service-lifecycle:replicas: got '3.0'; expected a value of type integer (Pulumi.yaml)"


def test_yaml_numbers_are_text_to_the_cli() -> None:
    """pulumi/pulumi sdk/go/common/resource/config/object.go ``object.MarshalString``: a top-level number
    or boolean becomes its JSON text, so a string-typed key takes 1.31 and an integer-typed one 3.0."""
    assert value_problems("s", DECLARED, {key("kubernetesVersion"): 1.31, key("replicas"): 3.0}) == []
    assert cli_text(3.0) == "3" and cli_text(True) == "true" and cli_text(["a"]) == '["a"]'


def test_declared_secret_in_plain_text() -> None:
    """pulumi/pulumi pkg/workspace/config.go ``validateStackConfigValue``: "must be encrypted as it's secret"."""
    declared = {"token": {"type": "string", "secret": True}}
    [problem] = value_problems("prod", declared, {key("token"): "hunter2"})
    assert problem.cli == "Stack 'prod' with configuration key 'token' must be encrypted as it's secret"
    assert "hunter2" not in str(problem)
    assert value_problems("prod", declared, {key("token"): {"secure": "v1:abc"}}) == []


def test_undeclared_keys_and_program_secrets() -> None:
    """Our rule (the CLI passes undeclared keys silently, pkg/workspace/config.go iterates only the
    project's declarations): a typo is named with the close key; a program-declared secret in plain
    text is refused like a declared one; other namespaces are left to their providers."""
    config = {
        key("Replicas"): "3",
        key("registrypassword"): "x",
        key("registryPassword"): "plain",
        key("kubeconfig"): {"secure": "v1:abc"},
        "kubernetes:context": "x",
    }
    problems = {p.key: p for p in undeclared_problems(DECLARED, config)}
    assert set(problems) == {key("Replicas"), key("registrypassword"), key("registryPassword")}
    assert "did you mean service-lifecycle:replicas?" in problems[key("Replicas")].expected
    assert "did you mean service-lifecycle:registryPassword?" in problems[key("registrypassword")].expected
    assert problems[key("registryPassword")].value == "[secret]"
    assert "pulumi config set --secret registryPassword" in problems[key("registryPassword")].expected


def _cli_lines(tmp_path: Path, text: str) -> list[str]:
    """The yaml.v3 lines the reader's refusal of ``text`` carries (components/config/stackfile.py ``read_yaml``)."""
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(text)
    with pytest.raises(StackFileRefused) as raised:
        read_yaml(path)
    return [refusal.cli for refusal in raised.value.every()]


def test_duplicate_keys_in_yaml_v3_wording(tmp_path: Path) -> None:
    """gopkg.in/yaml.v3 v3.0.1 decode.go ``decoder.mapping`` (uniqueKeys, set by ``newDecoder``; the Pulumi CLI
    decodes stack files with it: pulumi/pulumi sdk/go/common/workspace/loaders.go ``LoadProjectStackBytes`` →
    sdk/go/common/encoding/marshal.go ``yamlMarshaler.Unmarshal``): every repeated key of a mapping,
    ``line %d: mapping key %#v already defined at line %d``; "a" and a are the same key (same Kind and Value).
    The reader refuses the file with these lines, before any value is read."""
    text = 'config:\n  a: 1\n  b: 2\n  "a": 3\n  c:\n    x: 1\n    x: 2\n  b: 4\n'
    # decoder.mapping returns before decoding a mapping with a repeated key: x (below it) is not reported.
    assert _cli_lines(tmp_path, text) == [
        'line 4: mapping key "a" already defined at line 2',
        'line 8: mapping key "b" already defined at line 3',
    ]
    # Once that mapping is clean, the keys below it are checked, in document order (sequences too).
    nested = "config:\n  c:\n    x: 1\n    x: 2\n  d: [{y: 1, y: 2}]\n"
    assert _cli_lines(tmp_path, nested) == [
        'line 4: mapping key "x" already defined at line 3',
        'line 5: mapping key "y" already defined at line 5',
    ]
    (tmp_path / "Pulumi.ok.yaml").write_text("config:\n  a: 1\n  b: 1\n")
    assert read_yaml(tmp_path / "Pulumi.ok.yaml") == {"config": {"a": 1, "b": 1}}
    # Three times: yaml.v3 pairs each key with each later one (i, then j > i), not sorted by line.
    assert _cli_lines(tmp_path, "a: 1\na: 2\na: 3\n") == [
        'line 2: mapping key "a" already defined at line 1',
        'line 3: mapping key "a" already defined at line 1',
        'line 3: mapping key "a" already defined at line 2',
    ]
    assert _cli_lines(tmp_path, "a: 1\nb: 1\nb: 2\na: 2\n") == [
        'line 4: mapping key "a" already defined at line 1',
        'line 3: mapping key "b" already defined at line 2',
    ]
    # decode_test.go unmarshalStrictTests: 9 and 9 repeat (the key's text, whatever its type).
    assert _cli_lines(tmp_path, "a: 1\n9: 2\nnull: 3\n9: 4") == ['line 4: mapping key "9" already defined at line 2']


# ---------------------------------------------------------------------------------------------
# Empty defaults are "not set"


EMPTY_DEFAULTS = ["registryUsername", "baseImage", "sourceUrl", "promoteFromStack", "pinnedDigest", "kubeContext",
                  "accessAllowEmails", "accessAllowEmailDomains", "sourceRevision"]  # fmt: skip


@pytest.mark.parametrize("name", EMPTY_DEFAULTS)
def test_an_empty_default_reads_as_not_set(name: str) -> None:
    """Pulumi.yaml's empty default for an optional setting must read exactly as an absent key."""
    assert DECLARED[name]["default"] in ("", [])
    for stack in ("staging", "production"):
        values = dict(load_stack_config(PROJECT_DIR, stack).values)
        values[key("registryPassword")] = "x"
        with_default = {**values, key(name): cli_text(DECLARED[name]["default"])}
        without = {k: v for k, v in values.items() if k != key(name)}
        env = {"SOURCE_REVISION": REVISION}
        a = _settings_or_problems(with_default, env)
        b = _settings_or_problems(without, env)
        assert a == b, (stack, name)


def _settings_or_problems(values: dict[str, str], env: dict[str, str]) -> object:
    try:
        return repr(load_settings(DictConfig(values, set()), environ=env))
    except SettingsError as error:
        return error.problems


def test_promotion_with_empty_defaults_still_needs_a_source() -> None:
    """With promoteFromStack and pinnedDigest at their "" defaults, production still names what is missing."""
    values = dict(load_stack_config(PROJECT_DIR, "production").values)
    values[key("promoteFromStack")] = ""
    with pytest.raises(SettingsError, match="promoteFromStack: got <not set>"):
        load_settings(DictConfig(values, set()), environ={})


# ---------------------------------------------------------------------------------------------
# The plan command applies them all, together


def test_plan_reports_every_cli_rule_at_once(tmp_path: Path) -> None:
    """pulumi/pulumi pkg/workspace/config.go ``mergeConfig``/``validateStackConfigValue`` and yaml.v3
    ``decoder.mapping``: the plan prints the CLI's lines and ours, all of them, exit 2, no traceback."""
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path)
    text = (PROJECT_DIR / "Pulumi.staging.yaml").read_text()
    text = text.replace("  service-lifecycle:team: platform\n", "")
    text = text.replace('service-lifecycle:replicas: "1"', 'service-lifecycle:replicas: "1.5"')
    text += "  service-lifecycle:kubeconfig: plain-text\n  service-lifecycle:replica: 2\n"
    # A duplicate key is refused by the reader before any value is read (components/config/stackfile.py,
    # tests/unit/test_stackfile.py), so it cannot be reported beside the others.
    (tmp_path / "Pulumi.broken.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", "broken", "--project-dir", str(tmp_path)],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    err = result.stderr
    assert "Traceback" not in err
    for line in (
        "Stack 'broken' is missing configuration value 'team'",
        "service-lifecycle:team: got <not set>",
        "Stack 'broken' with configuration key 'replicas' must be of type 'integer'",
        "service-lifecycle:kubeconfig: got [secret]; expected an encrypted value",
        "service-lifecycle:replica: got 2; expected a setting declared in Pulumi.yaml",
    ):
        assert line in err, err
    assert "plain-text" not in err


def test_load_stack_config_raises_with_what_it_could_read(tmp_path: Path) -> None:
    shutil.copy(PROJECT_DIR / "Pulumi.yaml", tmp_path)
    (tmp_path / "Pulumi.x.yaml").write_text("config:\n  service-lifecycle:stage: staging\n")
    with pytest.raises(StackFileError) as raised:
        load_stack_config(tmp_path, "x")
    assert raised.value.config is not None
    assert raised.value.config.values[key("stage")] == "staging"
    assert {p.key for p in raised.value.problems} >= {key(name) for name in REQUIRED if name != "stage"}


def test_the_plan_refuses_a_project_file_the_cli_would_not_load(tmp_path: Path) -> None:
    """pulumi/pulumi sdk/go/common/workspace/project.go ``(*Project).Validate``, applied by the plan too."""
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    project["config"]["replicas"]["value"] = 3  # beside its default
    project["config"]["hostnames"].pop("items")
    (tmp_path / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    shutil.copy(PROJECT_DIR / "Pulumi.staging.yaml", tmp_path)
    with pytest.raises(StackFileError) as raised:
        load_stack_config(tmp_path, "staging")
    lines = [getattr(p, "cli", "") for p in raised.value.problems]
    assert "project config 'replicas' cannot have both a 'default' and 'value' attribute" in lines
    assert any("'hostnames' declares an array but does not specify the underlying type" in line for line in lines)


# ---------------------------------------------------------------------------------------------
# The stage: the CLI's merge and rules in one step (cli_config)


def _files(project: dict[str, Any], config: dict[Any, Any], stack: str = "dev") -> stack_rules.StackFiles:
    return stack_rules.StackFiles(PROJECT_DIR, stack, project, project.get("config") or {}, config, ())


def test_the_merge_takes_the_project_s_name_its_defaults_and_its_secrets() -> None:
    declared = {"replicas": {"type": "integer", "default": 2}, "flag": {"type": "boolean", "default": True},
                "token": {"type": "string", "secret": True}, "plain": {"type": "string"}}  # fmt: skip
    merged = stack_rules.cli_config(_files({"name": "acme", "config": declared}, {"acme:plain": "x"}))
    assert merged.project == "acme" and merged.key("plain") == "acme:plain"
    assert merged.defaults == {"acme:replicas": "2", "acme:flag": "true"}
    undeclared_secrets = {f"acme:{name}" for name in stack_rules.schema.SECRETS}
    assert merged.secret_keys == {"acme:token"} | undeclared_secrets
    unnamed = stack_rules.cli_config(_files({"config": {}}, {}))
    assert unnamed.project == PROJECT and unnamed.defaults == {}
    assert unnamed.secret_keys == {f"{PROJECT}:{name}" for name in stack_rules.schema.SECRETS}


def test_the_merge_holds_each_stack_value_as_the_cli_hands_it_over() -> None:
    given = {"replicas": 3, "acme:token": {"secure": "v1:abc"}, "other:key": ["a"], "acme:flag": False}
    merged = stack_rules.cli_config(_files({"name": "acme", "config": {}}, given))
    assert [(g.written, g.full, g.text) for g in merged.given] == [
        ("replicas", "acme:replicas", "3"),
        ("acme:token", "acme:token", "[secret]"),
        ("other:key", "other:key", '["a"]'),
        ("acme:flag", "acme:flag", "false"),
    ]
    assert merged.given[1].value == {"secure": "v1:abc"}


def test_the_merge_returns_the_project_file_s_problems_then_the_stack_s_in_the_cli_s_words() -> None:
    declared = {"both": {"type": "string", "default": "a", "value": "b"}, "needed": {"type": "string"},
                "count": {"type": "integer", "default": 1}}  # fmt: skip
    merged = stack_rules.cli_config(_files({"name": "acme", "config": declared}, {"acme:count": "many"}, "prod"))
    lines = [(p.key, p.value, getattr(p, "cli", "")) for p in merged.problems]
    assert lines == [
        ("Pulumi.yaml", "config", "project config 'both' cannot have both a 'default' and 'value' attribute"),
        ("acme:needed", "<not set>", "Stack 'prod' is missing configuration value 'needed'"),
        ("acme:count", "'many'", "Stack 'prod' with configuration key 'count' must be of type 'integer'"),
    ]


def test_the_merge_masks_a_secret_looking_value_and_cuts_a_long_one() -> None:
    declared = {"apiToken": {"type": "integer"}, "count": {"type": "integer"}}
    merged = stack_rules.cli_config(
        _files({"name": "acme", "config": declared}, {"acme:apiToken": "abc", "acme:count": "9" * 100 + "x"})
    )
    assert [p.value for p in merged.problems] == ["[secret]", f"'{'9' * 79}… (103 characters)"]


@pytest.mark.parametrize(
    ("text", "valid"),
    [("9223372036854775807", True), ("-9223372036854775808", True), ("1000000000000000000", True),
     ("+" + "0" * 30 + "9223372036854775807", True), ("-" + "0" * 30 + "1", True),
     ("9223372036854775808", False), ("-9223372036854775809", False), ("1" * 20, False)],
    ids=["max", "min", "19_digits", "plus_zeros", "minus_zeros", "max_plus_1", "min_minus_1", "20_digits"],
)  # fmt: skip
def test_an_integer_text_is_valid_within_go_s_int64(text: str, valid: bool) -> None:
    assert validate_config_value("integer", None, text) is valid


def test_a_declaration_without_a_type_is_a_string() -> None:
    assert stack_rules.full_type_name({}) == "string"
    assert stack_rules.full_type_name({"type": "array", "items": {"type": "integer"}}) == "array<integer>"


def test_the_merge_applies_the_rules_in_the_project_s_own_namespace() -> None:
    """A key declared as ``acme:custom`` is the project's own (it may have a type); ``acme:replicaz`` is an
    unknown key of the project's namespace, shown as written, a ``secure:`` one masked."""
    declared = {"acme:custom": {"type": "string"}, "other:thing": {"value": "x"}}
    given = {"acme:custom": "x", "acme:replicaz": 3, "acme:tokn": {"secure": "v1:abc"}}
    merged = stack_rules.cli_config(_files({"name": "acme", "config": declared}, given))
    assert [str(p) for p in merged.problems] == [
        "acme:replicaz: got 3; expected a setting declared in Pulumi.yaml or components/schema.py"
        " (did you mean acme:replicas?)",
        "acme:tokn: got [secret]; expected a setting declared in Pulumi.yaml or components/schema.py",
    ]


def test_a_project_file_problem_line_says_what_the_cli_needs() -> None:
    declared = {"both": {"type": "string", "default": "a", "value": "b"}}
    (problem,) = stack_rules.cli_config(_files({"name": "acme", "config": declared}, {})).problems
    assert str(problem) == "Pulumi.yaml: got config; expected a project the Pulumi CLI loads"


def test_every_declaration_is_checked_after_a_shorthand_one() -> None:
    declared = {"short": "value", "other:key": {"default": 1}}
    assert project_problems("acme", declared) == [
        "Configuration key 'other:key' is not namespaced by the project and should not define a default "
        "value. Did you mean to use the 'value' attribute instead of 'default'?"
    ]


def test_missing_keys_are_the_project_s_own_declared_without_default_or_value() -> None:
    declared = {"acme:needed": {"type": "string"}, "other:key": {"type": "string"}, "short": "a value",
                "given": {"type": "string"}}  # fmt: skip
    (problem,) = missing_problems("dev", declared, {"given": "x"}, "acme")
    assert str(problem) == "acme:needed: got <not set>; expected a value: Pulumi.yaml declares it without a default"
    assert problem.cli == "Stack 'dev' is missing configuration value 'acme:needed'"
    assert missing_problems("dev", declared, {"acme:needed": "x", "given": "y"}, "acme") == []


def test_every_declared_secret_and_typed_key_is_checked_whatever_comes_before() -> None:
    declared = {"acme:a": {"type": "string", "secret": True}, "b": {"type": "string", "secret": True},
                "c": {"type": "integer"}, "d": {"type": "integer"}}  # fmt: skip
    given = {"acme:a": "plain", "b": "plain", "c": {"secure": "v1:x"}, "d": "four"}
    problems = value_problems("dev", declared, given, "acme")
    assert [str(p) for p in problems] == [
        "acme:a: got [secret]; expected an encrypted value: pulumi config set --secret a …",
        "acme:b: got [secret]; expected an encrypted value: pulumi config set --secret b …",
        "acme:d: got 'four'; expected a value of type integer (Pulumi.yaml)",
    ]


@pytest.mark.parametrize(
    ("type_name", "items", "value", "valid"),
    [("object", None, {"a": 1}, True), ("object", None, [1], False),
     ("array", {"type": "array", "items": {"type": "integer"}}, [[1, "2"], [3]], True),
     ("array", {"type": "array", "items": {"type": "integer"}}, [[1, "x"]], False),
     ("array", {"type": "array"}, [[1]], False)],
    ids=["object", "not_object", "nested", "nested_bad_item", "nested_without_items"],
)  # fmt: skip
def test_objects_and_nested_arrays_are_validated_as_go_does(
    type_name: str, items: dict[str, Any] | None, value: Any, valid: bool
) -> None:
    assert validate_config_value(type_name, items, value) is valid

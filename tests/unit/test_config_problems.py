"""components/config/problems.py: which values an error line may show, and the problem lines themselves.

Every stage of the configuration asks these functions; the stage tests (test_settings.py, test_stackfile.py,
test_stack_rules.py) go through them with whole stack files, these pin each rule on its own.
"""

from __future__ import annotations

import pulumi
import pytest

from components.config.problems import (
    SECRET_MARK,
    SHOWN_CHARS,
    RuleProblem,
    SettingProblem,
    StackFileError,
    cut,
    looks_secret,
    masked,
    shown_value,
)
from components.config.settings import config_text


@pytest.mark.parametrize(
    "name",
    [
        "service-lifecycle:registryPassword",  # declared secret by the schema
        "registryPassword",  # a bare key is the project's
        "acme:apiToken",  # by its words, in any namespace
        "acme:imagePullSecret",  # a schema name outside the project's namespace goes by its words too
        "acme:alertWebhookUr",  # a typo of a schema secret whose words say nothing
        "cloudflare:apiTokn",  # a typo of a provider's secret-looking key
        "cloudflare:APITKN",  # two edits away, any case
    ],
)
def test_a_secret_or_a_name_a_typo_away_from_one_is_hidden(name: str) -> None:
    assert looks_secret(name) is True
    assert shown_value(name, "hunter2") == SECRET_MARK


@pytest.mark.parametrize(
    "name",
    [
        "service-lifecycle:imagePullSecret",  # the schema says it is a boolean, not a secret
        "imagePullSecret",
        "service-lifecycle:config:imagePullSecret",  # Pulumi's legacy <namespace>:config:<name> spelling
        "service-lifecycle:replicas",
        "cloudflare:aiTkn",  # three edits away from apiToken
        "acme:sessionCookieValue",
    ],
)
def test_other_names_are_shown(name: str) -> None:
    assert looks_secret(name) is False
    assert shown_value(name, "3") == "'3'"


def test_a_key_declared_secret_and_its_typos_are_hidden_with_their_namespace_or_legacy_spelling() -> None:
    declared = {"acme:config:sessionCookieValue"}
    assert looks_secret("acme:config:sessionCookieValue", declared) is True
    assert looks_secret("acme:config:sessionCookieValu", declared) is True
    assert looks_secret("acme:sessionCookieVal", declared) is True
    assert looks_secret("acme:sessionCookieVal") is False
    assert shown_value("acme:config:sessionCookieValue", 42, declared) == SECRET_MARK
    assert shown_value("acme:config:sessionCookieValue", 42) == "42"


def test_an_output_is_always_hidden_and_a_long_value_is_cut() -> None:
    assert shown_value("service-lifecycle:team", pulumi.Output.from_input("web")) == SECRET_MARK
    assert shown_value("service-lifecycle:team", "w" * 200) == "'" + "w" * 79 + "… (202 characters)"


def test_cut_keeps_up_to_the_limit_and_says_how_long_the_rest_was() -> None:
    assert cut("x" * SHOWN_CHARS) == "x" * SHOWN_CHARS
    assert cut("x" * (SHOWN_CHARS + 1)) == "x" * SHOWN_CHARS + f"… ({SHOWN_CHARS + 1} characters)"


def test_masked_hides_secrets_cuts_long_values_and_keeps_the_rest() -> None:
    unset = SettingProblem("service-lifecycle:registryPassword", "<not set>", "a token")
    assert masked(unset, set()) is unset
    given = SettingProblem("service-lifecycle:registryPassword", "'hunter2'", "a token")
    assert masked(given, set()) == SettingProblem("service-lifecycle:registryPassword", SECRET_MARK, "a token")
    declared = SettingProblem("acme:cookie", "'c'", "x")
    assert masked(declared, {"acme:cookie"}).value == SECRET_MARK
    assert masked(declared, set()) is declared
    long = RuleProblem("acme:team", "t" * 100, "a team", cli="the CLI's line")
    assert masked(long, set()) == RuleProblem("acme:team", cut("t" * 100), "a team", cli="the CLI's line")
    edge = SettingProblem("acme:team", "t" * SHOWN_CHARS, "a team")
    assert masked(edge, set()) is edge
    already = SettingProblem("acme:team", SECRET_MARK, "a team")
    assert masked(already, set()) is already


def test_a_problem_line_and_the_error_that_carries_several() -> None:
    first = SettingProblem("acme:replicas", "'0'", "an integer from 1 to 50")
    second = SettingProblem("acme:team", "<not set>", "a team name")
    assert str(first) == "acme:replicas: got '0'; expected an integer from 1 to 50"
    error = StackFileError([first, second], config="what could be read")
    assert error.problems == [first, second] and error.config == "what could be read"
    assert str(error) == f"{first}\n{second}"
    assert StackFileError([first]).config is None


@pytest.mark.parametrize(
    ("value", "text"),
    [(True, "true"), (False, "false"), (("a", "b"), '["a", "b"]'), (["a"], '["a"]'), ({"k": 1}, '{"k": 1}'),
     (3, "3"), ("x", "x")],
    ids=["true", "false", "tuple", "list", "dict", "int", "str"],
)  # fmt: skip
def test_config_text_is_what_the_pulumi_cli_hands_the_program(value: object, text: str) -> None:
    assert config_text(value) == text

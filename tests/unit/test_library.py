"""What a platform team imports: settings without a stack file, several services, plans of other programs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import pulumi
import pytest

import components
from components.commands.plan import run_plan
from components.config.settings import Settings, SettingsError, load_services, settings_from_mapping
from components.config.stack_config import StackFileError
from components.service import ServiceStack, ServiceStackArgs
from components.testing import DictConfig, RecordingMocks, unwrap

PIN = "sha256:" + "b" * 64
MINIMAL: dict[str, Any] = {
    "stage": "production", "serviceName": "web", "team": "web", "appVersion": "1.0.0",
    "imageRepository": "ghcr.io/acme/web", "pinnedDigest": PIN,
    "cloudflareAccountId": "0" * 32, "cloudflareZoneId": "1" * 32, "zoneName": "example.com",
    "hostnames": ["web.example.com"],
}  # fmt: skip


def _lines(error: pytest.ExceptionInfo[SettingsError]) -> list[str]:
    return [str(p) for p in error.value.problems]


# -- settings without a stack file ------------------------------------------------------------


def test_mapping_takes_python_values_and_the_schema_s_defaults() -> None:
    settings = settings_from_mapping({**MINIMAL, "replicas": 3, "accessEnabled": False})
    assert (settings.replicas, settings.container_port, settings.resources.cpu_limit) == (3, 8080, "500m")
    assert settings.cloudflare.hostnames == ("web.example.com",)


def test_mapping_errors_name_the_user_s_namespace_and_the_same_expectations() -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_mapping({**MINIMAL, "replicas": 1, "containerPort": 80}, namespace="platform")
    assert _lines(raised) == [
        "platform:replicas: got '1'; expected an integer from 2 to 50 (stage production needs at least 2)",
        "platform:containerPort: got '80'; expected an unprivileged port from 1024 to 65535",
    ]


def test_mapping_refuses_an_unknown_key_with_a_hint_beside_the_other_problems() -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_mapping({**MINIMAL, "replica": 3, "team": "Web"})
    lines = _lines(raised)
    assert "replica: got 3; expected a setting of components.schema (did you mean replicas?)" in lines
    assert any(line.startswith("team: got 'Web'") for line in lines)


def test_keywords_are_named_as_written_in_errors() -> None:
    keywords = {components.config.schema.BY_NAME[k].python_name: v for k, v in MINIMAL.items()}
    settings = Settings.create(**keywords)
    assert settings.service_name == "web" and settings.promotion and settings.promotion.pinned_digest == PIN
    with pytest.raises(SettingsError) as raised:
        Settings.create(**{**keywords, "cloudflare_zone_id": "nope", "zone_nmae": "x"})
    assert _lines(raised) == [
        "zone_nmae: got 'x'; expected a setting of components.schema (did you mean zone_name?)",
        "cloudflare_zone_id: got 'nope'; expected 32 lower-case hex characters",
    ]


@pytest.mark.parametrize(
    ("written", "keyword"),
    [("registryPasswrd", False), ("cloudflareApiTokn", False), ("registry_passwrd", True), ("api_token", True)],
)
def test_a_misspelt_secret_is_refused_without_its_value(written: str, keyword: bool) -> None:
    """An unknown key is refused with its value shown, unless the key is (a typo of) a secret: then
    the value is masked like every other secret in an error line (components.config.settings.shown_value)."""
    values = {components.config.schema.BY_NAME[k].python_name: v for k, v in MINIMAL.items()} if keyword else MINIMAL
    with pytest.raises(SettingsError) as raised:
        if keyword:
            Settings.create(**{**values, written: "hunter2-plain-text"})
        else:
            settings_from_mapping({**values, written: "hunter2-plain-text"})
    assert "hunter2" not in str(raised.value)
    assert any(
        line.startswith(f"{written}: got [secret]; expected a setting of components.schema") for line in _lines(raised)
    )


def test_an_unknown_plain_key_still_shows_its_value() -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_mapping({**MINIMAL, "replica": "x" * 500})
    (line,) = [line for line in _lines(raised) if line.startswith("replica:")]
    assert line.startswith("replica: got 'xxxx") and "(502 characters)" in line and len(line) < 200


def test_only_secrets_may_be_outputs_in_a_mapping() -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from_mapping({**MINIMAL, "team": pulumi.Output.from_input("web")}, namespace="acme")
    assert _lines(raised) == ["acme:team: got an Output; expected a plain value (only secrets may be Outputs)"]


def test_run_components_hands_config_to_the_program(run_components: Callable[..., RecordingMocks]) -> None:
    """``load_settings()`` inside the program reads the given config in the given project's namespace."""
    seen: list[Settings] = []

    def program() -> None:
        from components.config.settings import load_settings

        seen.append(load_settings())

    run_components(program, project="acme", config={**MINIMAL, "replicas": 5}, secret_keys={"cloudflareApiToken"})
    assert (seen[0].service_name, seen[0].replicas) == ("web", 5)
    with pytest.raises(SettingsError, match="acme:replicas: got '1'"):
        run_components(program, project="acme", config={**MINIMAL, "replicas": 1})


@pulumi.runtime.test
def test_secret_values_from_a_mapping_stay_secrets() -> pulumi.Output[None]:
    settings = settings_from_mapping({**MINIMAL, "cloudflareApiToken": "tok-123"})
    token = settings.cloudflare.api_token
    assert token is not None

    def check(args: list[Any]) -> None:
        value, secret = args
        assert (value, secret) == ("tok-123", True)

    return pulumi.Output.all(token, pulumi.Output.from_input(token).is_secret()).apply(check)  # type: ignore[arg-type]


# -- several services in one program -----------------------------------------------------------


def _services_config(**extra: str) -> DictConfig:
    per_service = ("serviceName", "hostnames", "imageRepository")
    shared = {f"shop:{k}": str(v) for k, v in MINIMAL.items() if k not in per_service}
    values = {
        "shop:services": json.dumps(["web", "api"]),
        **shared,
        "web:imageRepository": "ghcr.io/acme/web", "web:hostnames": '["web.example.com"]',
        "api:imageRepository": "ghcr.io/acme/api", "api:hostnames": '["api.example.com"]', "api:replicas": "4",
        **extra,
    }  # fmt: skip
    return DictConfig(values, set(), "shop")


def test_each_service_reads_its_own_namespace_then_the_shared_one() -> None:
    config = _services_config()
    services = load_services(config, namespace_source=config.view)
    assert list(services) == ["web", "api"]
    assert (services["web"].service_name, services["web"].replicas) == ("web", 2)
    assert (services["api"].service_name, services["api"].replicas) == ("api", 4)
    assert services["api"].registry.repository == "ghcr.io/acme/api"
    promotion = services["api"].promotion  # each service promotes its own output of the source stack
    assert promotion is not None and (promotion.service, promotion.output) == ("api", "api_image_ref")


def test_service_problems_name_the_key_where_the_value_was_read() -> None:
    config = _services_config(**{"api:replicas": "0", "shop:team": "Shop"})
    with pytest.raises(SettingsError) as raised:
        load_services(config, namespace_source=config.view)
    lines = _lines(raised)
    assert any(line.startswith("api:replicas: got '0'") for line in lines)
    # the shared key's problem once, not once per service (issue 22)
    assert len([line for line in lines if line.startswith("shop:team: got 'Shop'")]) == 1 and len(lines) == 2


@pytest.mark.parametrize("listed", ['["web", "web"]', "[]", '["kubernetes"]', '["shop"]', "web"])
def test_a_bad_services_list_is_refused(listed: str) -> None:
    config = _services_config(**{"shop:services": listed})
    with pytest.raises(SettingsError) as raised:
        load_services(config, namespace_source=config.view)
    assert _lines(raised)[0].startswith(f"shop:services: got {listed!r}; expected a non-empty list of distinct")


def test_two_services_with_one_service_name_are_refused() -> None:
    config = _services_config(**{"api:serviceName": "web"})
    with pytest.raises(SettingsError) as raised:
        load_services(config, namespace_source=config.view)
    assert _lines(raised) == ["api:serviceName: got 'web'; expected a name web does not have"]


def test_a_shared_service_name_beside_a_services_list_is_refused() -> None:
    config = _services_config(**{"shop:serviceName": "shop"})
    with pytest.raises(SettingsError) as raised:
        load_services(config, namespace_source=config.view)
    assert _lines(raised) == ["shop:serviceName: got 'shop'; expected not set: shop:services names them"]


def test_without_a_services_key_it_is_the_one_service_of_the_project() -> None:
    values = {f"acme:{k}": (json.dumps(v) if isinstance(v, list) else str(v)) for k, v in MINIMAL.items()}
    assert list(load_services(DictConfig(values, set(), "acme"))) == ["web"]


# -- child names come from one place -------------------------------------------------------------


def test_a_service_stack_named_apart_from_its_service_names_every_child_from_its_own_name(
    run_components: Callable[..., RecordingMocks],
) -> None:
    """Issue 14: ``web-image`` beside ``frontend-env``. Every resource below the ServiceStack is named from it."""
    settings = settings_from_mapping({**MINIMAL, "stage": "staging", "pinnedDigest": None, "accessEnabled": True,
                                      "accessAllowEmailDomains": ["example.com"], "registryUsername": "ci",
                                      "registryPassword": "pw", "sourceRevision": "abcdef1"})  # fmt: skip
    mocks = run_components(lambda: ServiceStack("frontend", ServiceStackArgs(settings=settings)))
    names = [r.name for r in mocks.resources if r.type != "service-lifecycle:index:ServiceStack"]
    assert names and [n for n in names if not n.startswith("frontend-")] == []
    assert "frontend-image" in names


# -- the plan of any program ---------------------------------------------------------------------


def _program(tmp_path: Path, stack_values: dict[str, Any], project: str = "acme") -> Path:
    (tmp_path / "Pulumi.yaml").write_text(f"name: {project}\nruntime: python\n")
    (tmp_path / "Pulumi.dev.yaml").write_text(json.dumps({"config": stack_values}))
    (tmp_path / "__main__.py").write_text(
        "from components.service import ServiceStack, ServiceStackArgs\n"
        "from components.config.settings import load_settings\n"
        "s = load_settings()\nServiceStack(s.service_name, ServiceStackArgs(settings=s))\n"
    )
    return tmp_path


def test_the_plan_reads_the_program_s_own_project_name_and_namespace(tmp_path: Path) -> None:
    program = _program(tmp_path, {f"acme:{k}": v for k, v in MINIMAL.items()})
    plan, mocks = run_plan(program, "dev")
    assert plan.project == "acme" and plan.stage == "production"
    assert all("::acme::" in r.urn for r in mocks.resources)
    deployment = unwrap(mocks.one("kubernetes:apps/v1:Deployment", "web-workload-deployment").inputs)
    assert deployment["metadata"]["namespace"] == "web-production"


def test_the_plan_names_the_program_s_keys_in_its_errors(tmp_path: Path) -> None:
    program = _program(tmp_path, {f"acme:{k}": v for k, v in {**MINIMAL, "replicas": "1", "replcas": "3"}.items()})
    with pytest.raises(StackFileError) as raised:
        run_plan(program, "dev")
    lines = [str(p) for p in raised.value.problems]
    assert lines[0] == (
        "acme:replcas: got '3'; expected a setting declared in Pulumi.yaml or components/schema.py"
        " (did you mean acme:replicas?)"
    )
    assert "acme:replicas: got '1'; expected an integer from 2 to 50 (stage production needs at least 2)" in lines


def test_the_plan_command_takes_a_project_dir(tmp_path: Path) -> None:
    program = _program(tmp_path, {f"acme:{k}": v for k, v in MINIMAL.items()})
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--project-dir", str(program), "--stack", "dev"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("acme / dev  (stage production,")


# -- package hygiene -----------------------------------------------------------------------------


def test_the_version_is_the_distribution_s() -> None:
    assert components.__version__ == metadata.version("service-lifecycle-components")


def test_the_source_tree_s_version_agrees_with_pyproject_and_the_changelog() -> None:
    """The fallback for a source tree never installed, pyproject's version and the newest CHANGELOG
    heading are one number: a release that bumps one of them and not the others fails here."""
    import tomllib

    declared = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]["version"]
    fallback = re.search(r'__version__ = "([^"]+)"', (REPOSITORY / "components" / "__init__.py").read_text())
    newest = re.search(r"^## (\S+)", (REPOSITORY / "CHANGELOG.md").read_text(), re.M)
    assert fallback is not None and newest is not None
    assert (fallback[1], newest[1]) == (declared, declared)


def test_every_dependency_has_a_tested_upper_bound_and_requirements_txt_agrees() -> None:
    """Issue 22, item 5: bounds that let in only what was tested; boto3 only in the ``ecr`` extra.

    The upper bounds are the newest releases the suite ran with (requirements.lock), so every pin of
    the lock is inside them, and requirements.txt (the program's, the lock's input) says the same."""
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    extras = {name: [Requirement(r) for r in reqs] for name, reqs in project["optional-dependencies"].items()}
    assert [r.name for r in extras["ecr"]] == ["boto3"] and "boto3" not in [r.name for r in declared]
    lines = (REPOSITORY / "requirements.txt").read_text().splitlines()
    listed = [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]
    assert sorted(map(str, listed)) == sorted(map(str, declared + extras["ecr"]))
    lock = (REPOSITORY / "requirements.lock").read_text()
    pins = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in re.findall(r"^([A-Za-z0-9._-]+)==(\S+) \\$", lock, re.M)}
    for requirement in declared + extras["ecr"]:
        uppers = [s for s in requirement.specifier if s.operator in ("<", "<=", "~=", "==")]
        assert uppers, f"{requirement}: no upper bound"
        pinned = pins[re.sub(r"[-_.]+", "-", requirement.name).lower()]
        assert requirement.specifier.contains(pinned), f"{requirement} excludes the lock's {pinned}"
    # The lead's lock pins pulumi-kubernetes 4.25.0 (its provider builds from the Go module proxy).
    assert next(r for r in declared if r.name == "pulumi-kubernetes").specifier.contains("4.25.0")


def test_the_pytest_plugin_is_registered_by_entry_point(pytestconfig: pytest.Config) -> None:
    points = metadata.entry_points(group="pytest11")
    assert [p.value for p in points if p.name == "service_lifecycle"] == ["components.testing.pytest_plugin"]
    assert pytestconfig.pluginmanager.has_plugin("service_lifecycle")


def test_the_sdk_deprecation_warnings_are_filtered_by_the_plugin(pytestconfig: pytest.Config) -> None:
    from components.testing.pytest_plugin import SDK_WARNING_FILTERS

    assert set(SDK_WARNING_FILTERS) <= set(pytestconfig.getini("filterwarnings"))


def test_sunset_help_is_plain_text() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "components", "sunset", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert "``" not in result.stdout and "**" not in result.stdout and ":func:" not in result.stdout


def test_the_library_never_imports_a_command() -> None:
    """What a platform team imports (everything outside ``components/commands/``) loads no command:
    the layering docs/design.md describes, checked on the real import graph in a fresh interpreter."""
    package = REPOSITORY / "components"
    library = sorted(
        ".".join(("components", *p.relative_to(package).with_suffix("").parts)).removesuffix(".__init__")
        for p in package.rglob("*.py")
        if p.stem != "__main__" and "commands" not in p.relative_to(package).parts
    )
    script = (
        "import importlib, sys\n"
        f"for name in {library!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('components.commands'))))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert len(library) > 20
    assert result.stdout.split() == []


def test_a_command_module_is_where_the_layout_says() -> None:
    """Every command the CLI dispatches lives in components/commands/, and nothing else is left at the
    old top-level paths (``components.plan`` and friends moved in 0.2.0, the flat library modules into
    subpackages in 0.3.0, see CHANGELOG.md)."""
    from components.commands.cli import COMMANDS

    assert all(module.startswith("components.commands.") for module, _ in COMMANDS.values())
    for moved in ("plan", "plan_diff", "sunset", "smoke", "drift", "attest", "cli", "retention"):
        assert not (REPOSITORY / "components" / f"{moved}.py").exists(), moved
    # 0.3.0: subpackages by concern (only the settings, schema and stack_config aliases stay at the top)
    for moved in ("stackfile", "stack_rules", "exposure", "exposure_access", "exposure_connectors", "workload",
                  "workload_pod", "monitoring", "rules", "cluster_monitoring", "registry", "registry_http",
                  "registry_model", "registry_ghcr", "registry_ecr", "testing", "pytest_plugin"):  # fmt: skip
        assert not (REPOSITORY / "components" / f"{moved}.py").exists(), moved
    assert not list((REPOSITORY / "components" / "commands").glob("sunset*.py"))


def test_every_name_imported_from_components_settings_is_the_package_s() -> None:
    """``components.config.settings`` is a package by step (model, reading, sources): every name the repository
    imports from it or its alias ``components.settings`` (code, tests, examples, benchmarks, README) is listed
    in its ``__all__`` and there, and the alias has every one of them."""
    import components.config.settings
    import components.settings

    statement = re.compile(r"from components\.(?:config\.)?settings import (\([^)]*\)|[\w ,]+)")
    files = [REPOSITORY / "README.md", *REPOSITORY.glob("*.py"), *(REPOSITORY / "docs").glob("*.md")]
    for folder in ("components", "tests", "examples", "benchmarks", "scripts", "policy", "app"):
        files += (REPOSITORY / folder).rglob("*.py")
    imported: set[str] = set()
    for path in files:
        for match in statement.finditer(path.read_text()):
            listed = "\n".join(line.partition("#")[0] for line in match.group(1).strip("()").splitlines())
            imported |= {item.split(" as ")[0].strip() for item in listed.split(",") if item.strip()}
    imported -= {"model", "reading", "sources", "__all__"}  # the modules themselves (a test patches one); the alias
    assert len(imported) > 20
    assert sorted(imported - set(components.config.settings.__all__)) == []
    assert all(hasattr(components.config.settings, name) for name in components.config.settings.__all__)
    assert all(getattr(components.settings, name) is getattr(components.config.settings, name)
               for name in components.config.settings.__all__)  # fmt: skip


# -- documentation -------------------------------------------------------------------------------

REPOSITORY = Path(__file__).resolve().parents[2]


def test_the_readme_s_library_test_runs_as_it_is(tmp_path: Path) -> None:
    """The library guide's test (docs/library.md, the README's until 0.3.0) runs as written."""
    readme = (REPOSITORY / "docs" / "library.md").read_text()
    marker = "<!-- readme-example: test -->\n```python\n"
    start = readme.index(marker) + len(marker)
    (tmp_path / "test_readme_example.py").write_text(readme[start : readme.index("```", start)])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout and "warning" not in result.stdout.lower(), result.stdout


def _referenced_files(text: str) -> set[str]:
    """Markdown files anywhere, and repository paths of code (``components/commands/plan.py``)."""
    documents = re.findall(r"(?<![\w/.-])((?:[\w.-]+/)*[\w-]+\.md)\b", text)
    code = re.findall(
        r"(?<![\w/.-])((?:components|tests|scripts|benchmarks|examples|policy|app)/[\w/.-]*?\.py)\b", text
    )
    return set(documents) | set(code)


@pytest.mark.parametrize(
    "document",
    ["README.md", "CHANGELOG.md", "docs/design.md", "docs/api.md", "examples/README.md", "docs/settings.md",
     "docs/configuration.md", "docs/operations.md", "docs/pipeline.md", "docs/testing.md", "docs/library.md",
     "docs/engine.md", "components/config/stack_config.py", "components/testing/offline.py",
     "components/config/settings/__init__.py", "components/config/settings/model.py",
     "components/config/settings/reading.py", "components/config/settings/sources.py",
     "components/config/settings/loading.py", "components/config/settings/steps.py",
     "components/lifecycle.py", "components/commands/sunset/command.py", "components/exposure/component.py",
     "components/monitoring/component.py"],
)  # fmt: skip
def test_documents_refer_only_to_files_in_the_repository(document: str) -> None:
    missing = [
        name
        for name in _referenced_files((REPOSITORY / document).read_text())
        if not (REPOSITORY / name).exists() and not (REPOSITORY / "docs" / name).exists()
    ]
    assert missing == []


def test_the_readme_is_short_and_every_document_is_reachable_from_it() -> None:
    """The README stays a ten-minute read (at most 250 lines) and leads to every document under docs/,
    directly or through a document it names."""
    readme = (REPOSITORY / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "\n## Run it with the real engine\n" in readme and "\n## Try the whole lifecycle locally\n" in readme
    reached: set[str] = set()
    todo = ["README.md"]
    while todo:
        document = todo.pop()
        for name in _referenced_files((REPOSITORY / document).read_text()):
            path = name if (REPOSITORY / name).exists() else f"docs/{name}"
            if path.endswith(".md") and path not in reached and (REPOSITORY / path).exists():
                reached.add(path)
                todo.append(path)
    documents = {str(p.relative_to(REPOSITORY)) for p in (REPOSITORY / "docs").rglob("*.md")}
    assert sorted(documents - reached) == []


def test_promotion_errors_name_the_running_project_s_keys(run_components: Callable[..., RecordingMocks]) -> None:
    from components.promotion import PromotionError, check_image_ref

    def program() -> None:
        check_image_ref(None, source_stack="acme/shop/staging")

    with pytest.raises(PromotionError, match=r"\(acme:promoteFromStack\) does not exist.*set acme:pinnedDigest"):
        run_components(program, project="acme")


def test_a_default_refused_for_several_services_is_the_projects_key_once() -> None:
    # accessEnabled set nowhere: its default false is refused in staging for both services, one line
    config = _services_config(**{"shop:stage": "staging", "shop:sourceRevision": "a" * 7,
                                 "shop:registryUsername": "ci", "shop:registryPassword": "x"})  # fmt: skip
    with pytest.raises(SettingsError) as raised:
        load_services(config, namespace_source=config.view)
    lines = [line for line in _lines(raised) if "accessEnabled" in line]
    assert lines == ["shop:accessEnabled: got 'false'; expected true: stage staging is always behind Cloudflare Access"]


def test_a_key_only_one_service_misses_stays_that_services() -> None:
    config = _services_config(**{"api:imageRepository": ""})
    with pytest.raises(SettingsError) as raised:
        load_services(config, namespace_source=config.view)
    assert [line.partition(";")[0] for line in _lines(raised)] == ["api:imageRepository: got <not set>"]


def test_each_service_promotes_its_own_output() -> None:
    config = _services_config(**{"shop:stage": "production", "shop:promoteFromStack": "acme/shop/staging"})
    services = load_services(config, namespace_source=config.view)
    assert {name: s.promotion.output for name, s in services.items() if s.promotion} == {
        "web": "web_image_ref",
        "api": "api_image_ref",
    }

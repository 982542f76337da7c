"""docs/api.md against the package (issue 22): every name it lists imports, with the signature it shows;
every ``__all__`` of a listed module is in it; every name the README and the examples import is in it."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPOSITORY / "scripts"))
import api_reference  # noqa: E402 - scripts/ is not a package

DOC = (REPOSITORY / "docs" / "api.md").read_text()
ENTRY = re.compile(r"^(?:class |def )?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\b")


def _listed() -> dict[str, list[str]]:
    """Module → the names its section of the page lists (first line of each entry)."""
    listed: dict[str, list[str]] = {}
    module = None
    in_block = False
    for line in api_reference.documented_reference(DOC).splitlines():
        if heading := re.fullmatch(r"### `([a-z_.]+)`", line):
            module = heading[1]
            listed[module] = []
        elif line.startswith("```"):
            in_block = not in_block
        elif in_block and module and line and not line.startswith((" ", ")")):
            match = ENTRY.match(line)
            assert match, line
            listed[module].append(match["name"])
    return listed


def test_the_reference_is_the_code_s_signatures() -> None:
    documented = api_reference.documented_reference(DOC)
    assert documented, "docs/api.md has no reference section: run scripts/api_reference.py --write"
    assert documented == api_reference.reference(), (
        "docs/api.md differs from the code: run `venv/bin/python scripts/api_reference.py --write` and review the diff"
    )


def test_every_listed_name_imports() -> None:
    listed = _listed()
    assert set(listed) == set(api_reference.MODULES)
    for module_name, names in listed.items():
        module = importlib.import_module(module_name)
        missing = [n for n in names if not hasattr(module, n)]
        assert missing == [], f"{module_name}: {missing}"
    assert sum(len(n) for n in listed.values()) > 100


def test_every_name_of_a_listed_module_s_all_is_on_the_page() -> None:
    listed = _listed()
    for module_name in listed:
        exported = getattr(importlib.import_module(module_name), "__all__", None)
        if exported is not None:
            assert sorted(set(exported) - set(listed[module_name])) == [], module_name


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("components.monitoring.cluster", "ClusterMonitoring"),
        ("components.monitoring.cluster", "LogCollector"),
        ("components.kube", "kubernetes_provider"),
        ("components.testing", "EngineRuleError"),
        ("components.config.settings", "looks_secret"),
        ("components.config.settings", "shown_value"),
    ],
)
def test_the_names_the_issue_names_are_listed(module: str, name: str) -> None:
    assert name in _listed()[module]


def test_every_name_the_readme_and_examples_import_is_listed() -> None:
    sources = [REPOSITORY / "README.md", *sorted((REPOSITORY / "examples").rglob("*.py"))]
    imported: set[tuple[str, str]] = set()
    for path in sources:
        for module, written in re.findall(r"from (components[a-z_.]*) import (\([^)]*\)|[^\n]*)", path.read_text()):
            names = re.sub(r"#[^\n]*", "", written).strip("()")
            imported |= {(module, n.split(" as ")[0].strip()) for n in re.split(r"[,\n]", names) if n.strip()}
    # components.commands is internal as a Python API (docs/api.md): the commands are its stable surface.
    imported = {(m, n) for m, n in imported if not m.startswith("components.commands")}
    assert len(imported) >= 8
    listed = _listed()
    public = {(m, n) for m, names in listed.items() for n in names}
    assert sorted(i for i in imported if i not in public) == []

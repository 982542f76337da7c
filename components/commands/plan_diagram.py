"""The offline plan as a Mermaid flowchart, for the pull-request comment (``plan-diff``).

Each component resource (``custom: false`` in ``plan.json``) is a subgraph holding its children;
each custom resource is a node. Resources the pull request changes, adds or removes carry a class
(``changed``, ``added``, ``removed``) and a ``~``/``+``/``-`` prefix, so the marking survives where
the diagram is not drawn. Above :data:`MAX_NODES` resources, or when the text would not fit its
share of the comment, the diagram collapses to components: the custom resources of a component
become one node that counts them and is marked when any of them changed.

GitHub draws ```` ```mermaid ```` blocks in comments; its renderer refuses diagrams above Mermaid's
``maxTextSize`` (50,000 characters by default, mermaid-js/mermaid
``packages/mermaid/src/defaultConfig.ts``), and the comment itself stops at 65,536.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

MAX_NODES: Final = 80
"""Above this many resources a stack's diagram shows components only."""
MAX_DIAGRAM_CHARS: Final = 20_000
"""Default share of the comment for one stack's diagram (two stacks, the diff and the summary share 65,536)."""
CLASSES: Final = {
    "changed": "fill:#fff3bf,stroke:#f08c00,stroke-width:3px",
    "added": "fill:#d3f9d8,stroke:#2f9e44,stroke-width:3px",
    "removed": "fill:#ffe3e3,stroke:#e03131,stroke-width:3px,stroke-dasharray:5 3",
}
"""Mermaid ``classDef`` per kind of change."""
_MARKS: Final = {"changed": "~ ", "added": "+ ", "removed": "- "}
_HIDDEN_PREFIXES: Final = ("pulumi:pulumi:Stack", "pulumi:providers:")
"""The stack is the diagram itself; providers would add a node per provider to every picture."""


def compare(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The diagram's resources (head's, then those only the base has) and URN → kind of change.

    Resources are matched by URN, as the Pulumi engine matches them between two deployments; any
    difference in the recorded entry (inputs or resource options) counts as a change.
    """
    before = {str(r["urn"]): r for r in old if r.get("urn")}
    after = {str(r["urn"]): r for r in new if r.get("urn")}
    changes: dict[str, str] = {}
    for urn, resource in after.items():
        if urn not in before:
            changes[urn] = "added"
        elif before[urn] != resource:
            changes[urn] = "changed"
    gone = [r for urn, r in before.items() if urn not in after]
    changes.update({str(r["urn"]): "removed" for r in gone})
    return [*after.values(), *gone], changes


@dataclass
class Diagram:
    """One stack's flowchart."""

    text: str
    """Mermaid source, without the Markdown fence."""
    collapsed: bool
    """True when custom resources were folded into their component."""
    nodes: int
    """Resources shown (before any folding)."""


def short_type(token: str) -> str:
    """``kubernetes:apps/v1:Deployment`` → ``Deployment``; ``service-lifecycle:index:Workload`` → ``Workload``."""
    return token.rsplit(":", maxsplit=1)[-1]


def label(text: str) -> str:
    """Text safe inside a quoted Mermaid label (entity codes, as Mermaid's flowchart syntax documents)."""
    for raw, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("`", "#96;")):
        text = text.replace(raw, code)
    return text


class _Tree:
    """Parent → children over the shown resources; a resource whose parent is hidden is a root."""

    def __init__(self, resources: list[dict[str, Any]], changes: dict[str, str]) -> None:
        shown = [r for r in resources if r.get("urn") and not str(r.get("type", "")).startswith(_HIDDEN_PREFIXES)]
        self.by_urn = {str(r["urn"]): r for r in shown}
        self.changes = changes
        self.children: dict[str | None, list[str]] = {}
        for urn, resource in self.by_urn.items():
            parent = resource.get("parent")
            self.children.setdefault(parent if parent in self.by_urn else None, []).append(urn)
        for kids in self.children.values():
            kids.sort()
        self._ids: dict[str, str] = {}

    def is_group(self, urn: str) -> bool:
        return not self.by_urn[urn].get("custom", True) and bool(self.children.get(urn))

    def ident(self, key: str, prefix: str) -> str:
        # n0, g1, …: never a Mermaid keyword (`end`, `graph`) and stable for one plan.
        if key not in self._ids:
            self._ids[key] = f"{prefix}{len(self._ids)}"
        return self._ids[key]

    def caption(self, urn: str, *, marked: bool = True) -> str:
        resource = self.by_urn[urn]
        mark = _MARKS.get(self.changes.get(urn, ""), "") if marked else ""
        return label(f"{mark}{short_type(str(resource.get('type', '')))} {resource.get('name', '')}")

    def leaves(self, urn: str) -> Iterator[str]:
        """Custom resources under ``urn`` (itself included when it is one)."""
        if not self.is_group(urn):
            yield urn
            return
        for child in self.children.get(urn, []):
            yield from self.leaves(child)


def _node(ident: str, caption: str, change: str | None, pad: str) -> str:
    return f'{pad}{ident}["{caption}"]' + (f":::{change}" if change else "")


def _full(tree: _Tree, urn: str, depth: int) -> Iterator[str]:
    pad = "  " * depth
    if not tree.is_group(urn):
        yield _node(tree.ident(urn, "n"), tree.caption(urn), tree.changes.get(urn), pad)
        return
    yield f'{pad}subgraph {tree.ident(urn, "g")}["{tree.caption(urn)}"]'
    for child in tree.children[urn]:
        yield from _full(tree, child, depth + 1)
    yield f"{pad}end"


def _folded(tree: _Tree, urn: str, depth: int) -> Iterator[str]:
    pad = "  " * depth
    if not tree.is_group(urn):
        yield _node(tree.ident(urn, "n"), tree.caption(urn), tree.changes.get(urn), pad)
        return
    kids = tree.children[urn]
    groups = [k for k in kids if tree.is_group(k)]
    loose = [leaf for k in kids if not tree.is_group(k) for leaf in tree.leaves(k)]
    if not groups:
        yield _summary(tree, urn, tree.caption(urn, marked=False) + "<br/>", [urn, *tree.leaves(urn)], pad)
        return
    yield f'{pad}subgraph {tree.ident(urn, "g")}["{tree.caption(urn)}"]'
    if loose:
        yield _summary(tree, f"{urn}#own", "", loose, pad + "  ")
    for child in groups:
        yield from _folded(tree, child, depth + 1)
    yield f"{pad}end"


def _summary(tree: _Tree, key: str, heading: str, leaves: list[str], pad: str) -> str:
    """One node standing for ``leaves``: how many, and how many the pull request touches."""
    touched = Counter(tree.changes[leaf] for leaf in leaves if leaf in tree.changes)
    detail = ", ".join(f"{count} {kind}" for kind, count in sorted(touched.items()))
    count = sum(1 for leaf in leaves if tree.by_urn[leaf].get("custom", True))
    text = f"{heading}{count} resource(s)" + (f": {detail}" if detail else "")
    # One class per node: changes of more than one kind inside mark the folded node as changed.
    change = None if not touched else next(iter(touched)) if len(touched) == 1 else "changed"
    return _node(tree.ident(key, "n"), (_MARKS[change] if change else "") + text, change, pad)


def render(
    resources: list[dict[str, Any]],
    changes: dict[str, str],
    *,
    max_nodes: int = MAX_NODES,
    max_chars: int = MAX_DIAGRAM_CHARS,
) -> Diagram | None:
    """The flowchart of one stack, or None when there is nothing to draw or it cannot fit ``max_chars``."""
    tree = _Tree(resources, changes)
    if not tree.by_urn:
        return None
    roots = tree.children.get(None, [])
    for collapsed in (False, True):
        if not collapsed and len(tree.by_urn) > max_nodes:
            continue
        step = _folded if collapsed else _full
        body = [line for root in roots for line in step(tree, root, 1)]
        used = {kind for kind in CLASSES if any(line.endswith(f":::{kind}") for line in body)}
        lines = ["flowchart LR", *body, *(f"  classDef {kind} {CLASSES[kind]}" for kind in CLASSES if kind in used)]
        text = "\n".join(lines) + "\n"
        if len(text) <= max_chars:
            return Diagram(text=text, collapsed=collapsed, nodes=len(tree.by_urn))
    return None

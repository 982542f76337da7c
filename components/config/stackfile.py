"""Stage 1 of a stack's configuration: ``Pulumi.yaml`` and ``Pulumi.<stack>.yaml`` read as hostile input.

:func:`read_stack` reads a project's files (:class:`StackFiles`) for the CLI's merge and rules
(:mod:`components.config.stack_rules`, stage 2); :func:`read_yaml` reads one file.

A fork's pull request reaches the offline plan in CI, so a stack file is read with limits that
hold before any value is interpreted:

- at most :data:`MAX_BYTES` bytes (checked on the file's size, then on what was read);
- UTF-8 text without NUL or other control characters (a binary file is refused, not decoded);
- no YAML aliases or anchors: refused while composing, before an alias is expanded, so an alias
  bomb costs milliseconds instead of gigabytes (``pulumi config set`` never writes one);
- at most :data:`MAX_DEPTH` levels of nesting, checked while composing (no ``RecursionError``);
- at most :data:`MAX_NODES` keys, values and list items, counted while composing, so a megabyte of
  tiny keys stops at the first node over the limit instead of costing seconds and a problem line each;
- no key twice in one mapping (YAML 1.2 forbids it; PyYAML would keep the last silently): refused
  with the Pulumi CLI's own line for it, gopkg.in/yaml.v3's (:func:`duplicate_keys`);
- one document whose top level is a mapping (or an empty file).

Every refusal is a :class:`StackFileRefused` naming the file and, where there is one, the line
and the key. Its text never quotes the file's content (PyYAML's own messages print the offending
line, which may hold a secret).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from components.config.problems import RuleProblem, SettingProblem, StackFileError, shown_value

MAX_BYTES: Final = 1 << 20
"""Largest stack or project file read (1 MiB); the sample stack files are under 3 KiB."""
MAX_DEPTH: Final = 16
"""Deepest nesting of mappings and lists; a stack file needs 3 (config → key → list or object)."""
MAX_NODES: Final = 10_000
"""Most YAML nodes (keys, values, list items) in one file; the sample stack files have under 150."""
_CONTROL: Final = frozenset(chr(c) for c in range(32) if chr(c) not in "\t\n\r") | {"\x7f"}


class StackFileRefused(Exception):  # noqa: N818 - a refusal, not an error of the reader
    """A file that is not read: ``file[ line N][: key]: problem``, without the file's content."""

    def __init__(
        self,
        path: Path,
        problem: str,
        *,
        line: int | None = None,
        key: str | None = None,
        cli: str = "",
        more: tuple[StackFileRefused, ...] = (),
    ) -> None:
        self.path = path
        self.problem = problem
        self.line = line
        self.key = key
        self.cli = cli
        """The Pulumi CLI's own line for this refusal, where it has one (a repeated key: yaml.v3's)."""
        self.more = more
        """Further refusals of the same file found in the same pass (every repeated key, as yaml.v3 lists them)."""
        super().__init__(f"{self.where}: {problem}")

    def every(self) -> tuple[StackFileRefused, ...]:
        """This refusal and the ones found with it, in the order the Pulumi CLI would list them."""
        return (self, *self.more)

    @property
    def where(self) -> str:
        """The file, the line and the key the problem is at, as far as known."""
        where = self.path.name if self.line is None else f"{self.path.name} line {self.line}"
        return f"{where}: {self.key}" if self.key else where


class _Refusal(Exception):  # noqa: N818 - see StackFileRefused
    """Raised inside the loader; turned into :class:`StackFileRefused` with the path."""

    def __init__(self, problem: str, node_or_mark: Any, key: str | None = None) -> None:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        self.line: int | None = mark.line + 1 if mark is not None else None
        self.problem = problem
        self.key = key
        super().__init__(problem)


class LimitedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, anchors and deep nesting while composing, merge keys and keys that
    are not strings while constructing (repeated keys are found between the two: :func:`duplicate_keys`)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise _Refusal(f"a YAML alias (*{event.anchor}); write the value out", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _Refusal(f"a YAML anchor (&{anchor}); write the values out without anchors", event.start_mark)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refusal(f"more than {MAX_NODES} keys, values and list items; a stack file needs a few hundred",
                           event.start_mark)  # fmt: skip
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refusal(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refusal("a YAML merge key (<<); write the keys out", key_node)
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise _Refusal(f"a key that is not a string ({type(key).__name__})", key_node)
        return super().construct_mapping(node, deep=deep)


# ---------------------------------------------------------------------------------------------
# Repeated keys, as the Pulumi CLI's YAML decoder (gopkg.in/yaml.v3) reports them

MAX_DUPLICATES_LISTED: Final = 20
"""Repeated keys listed in one refusal; yaml.v3 lists every pair (a hostile file can hold billions)."""


@dataclass(frozen=True)
class DuplicateKey:
    """A key that a mapping has twice: the later occurrence and the first."""

    key: str
    line: int
    first_line: int

    @property
    def cli(self) -> str:
        """yaml.v3 ``decoder.mapping``: ``line %d: mapping key %#v already defined at line %d``."""
        return f"line {self.line}: mapping key {go_quoted(self.key)} already defined at line {self.first_line}"


def duplicate_keys(root: Node) -> tuple[list[DuplicateKey], int]:
    """The repeated keys of a composed document as gopkg.in/yaml.v3 ``decoder.mapping`` reports them, the
    first :data:`MAX_DUPLICATES_LISTED`, and how many there are in all.

    yaml.v3 (the decoder of the Pulumi CLI's ``LoadProjectStackBytes``) walks the document in order and
    compares each key of a mapping with every later one of the same node kind and text (``"a"`` and ``a``
    are one key); a mapping with a repeated key is not decoded further, so nothing below it is reported.
    """
    listed: list[DuplicateKey] = []
    total = 0
    pending: list[Node] = [root]
    while pending:  # depth first, in document order: the stack holds children reversed
        node = pending.pop()
        if isinstance(node, MappingNode):
            found, count = _repeated(node, MAX_DUPLICATES_LISTED - len(listed))
            listed += found
            total += count
            if not count:
                pending += [child for pair in reversed(node.value) for child in reversed(pair)]
        elif isinstance(node, SequenceNode):
            pending += reversed(node.value)
    return listed, total


def _repeated(mapping: MappingNode, budget: int) -> tuple[list[DuplicateKey], int]:
    """One mapping's repeated keys in yaml.v3's order (each key, then every later equal one), at most
    ``budget`` of them, and their count; linear in the keys, whatever the count."""
    groups: dict[tuple[type[Node], str], list[Node]] = {}
    for key, _ in mapping.value:
        groups.setdefault(_identity(key), []).append(key)
    count = sum(len(keys) * (len(keys) - 1) // 2 for keys in groups.values())
    found: list[DuplicateKey] = []
    seen: dict[tuple[type[Node], str], int] = {}
    for key, _ in mapping.value:
        if len(found) >= budget or len(found) == count:
            break
        identity = _identity(key)
        position = seen[identity] = seen.get(identity, -1) + 1
        for later in groups[identity][position + 1 : position + 1 + budget - len(found)]:
            found.append(DuplicateKey(_identity(later)[1], later.start_mark.line + 1, key.start_mark.line + 1))
    return found, count


def _identity(key: Node) -> tuple[type[Node], str]:
    """yaml.v3 compares ``Kind`` and ``Value``: a collection's Value is empty."""
    return type(key), key.value if isinstance(key, ScalarNode) else ""


def go_quoted(text: str) -> str:
    """Go's ``strconv.Quote`` (what ``%#v`` prints for a string): printable characters as they are,
    ``"`` and ``\\`` escaped, the C escapes, then ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``."""
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():  # unicode.IsPrint: letters, marks, numbers, punctuation, symbols, ASCII space
            out.append(char)
        elif char in escapes:
            out.append(escapes[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        elif 0xD800 <= ord(char) <= 0xDFFF:  # not a valid rune: Go writes U+FFFD
            out.append("\\ufffd")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _refuse_duplicates(path: Path, root: Node) -> None:
    """Raise one :class:`StackFileRefused` for the repeated keys of ``root``, carrying yaml.v3's lines."""
    listed, total = duplicate_keys(root)
    refusals = [
        StackFileRefused(path, f"a second value for the key (first on line {d.first_line}); keep one",
                         line=d.line, key=d.key, cli=d.cli)
        for d in listed
    ]  # fmt: skip
    if total > len(listed):
        refusals.append(StackFileRefused(path, f"{total - len(listed)} more repeated keys, not listed"))
    if refusals:
        first, *more = refusals
        raise StackFileRefused(path, first.problem, line=first.line, key=first.key, cli=first.cli, more=tuple(more))


CACHED_FILES: Final = 32
"""Files whose reading :func:`read_yaml` keeps (a project has a Pulumi.yaml and a few stack files)."""
SETTLED_NS: Final = 2_000_000_000
"""A file changed less than this long ago is read again every time: timestamps are coarse (a clock tick),
so an edit within the same tick, same size, would look unchanged. The rule is git's (racy-git.txt)."""

_read: dict[tuple[Path, str], tuple[tuple[int, int], dict[str, Any] | StackFileRefused]] = {}


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one project or stack file within the limits; an empty file is ``{}``.

    Raises :class:`StackFileRefused` for anything else, and ``FileNotFoundError`` when missing. A file
    is read and parsed once per process while it stays as it was (same resolved path, ``st_mtime_ns``
    and size, and settled: :data:`SETTLED_NS`); every caller gets its own copy of the document.
    """
    stat = path.stat()
    key, stamp = (path.resolve(), path.name), (stat.st_mtime_ns, stat.st_size)
    known = _read.get(key)
    if known is not None and known[0] == stamp:
        result = known[1]
    else:
        try:
            result = _parse(path, _read_text(path, stat.st_size))
        except StackFileRefused as refused:
            result = refused
        if time.time_ns() - stat.st_mtime_ns >= SETTLED_NS:
            _remember(key, stamp, result)
    if isinstance(result, StackFileRefused):
        raise result.with_traceback(None)
    return copy.deepcopy(result)


def forget_read_files() -> None:
    """Drop what :func:`read_yaml` keeps (tests that count reads start from nothing)."""
    _read.clear()


def _remember(key: tuple[Path, str], stamp: tuple[int, int], result: dict[str, Any] | StackFileRefused) -> None:
    _read.pop(key, None)
    while len(_read) >= CACHED_FILES:
        del _read[next(iter(_read))]  # the oldest entry
    _read[key] = (stamp, result)


def _read_text(path: Path, size: int) -> str:
    """The file's text: at most :data:`MAX_BYTES`, UTF-8, no control characters, without a byte order mark."""
    if size > MAX_BYTES:
        raise StackFileRefused(path, f"{size} bytes; a stack file may have at most {MAX_BYTES} (1 MiB)")
    with path.open("rb") as stream:
        data = stream.read(MAX_BYTES + 1)  # the file may have grown since stat()
    if len(data) > MAX_BYTES:
        raise StackFileRefused(path, f"more than {MAX_BYTES} bytes; a stack file may have at most 1 MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise StackFileRefused(path, "not UTF-8 text (a binary file?)", line=line) from None
    text = text.removeprefix("\ufeff")
    bad = next((i for i, char in enumerate(text) if char in _CONTROL), None)
    if bad is not None:
        line = text.count("\n", 0, bad) + 1
        raise StackFileRefused(path, f"a control character U+{ord(text[bad]):04X} (a binary file?)", line=line)
    return text


def _parse(path: Path, text: str) -> dict[str, Any]:
    """The document of ``text``: one mapping, composed and constructed within the limits."""
    loader: LimitedLoader | None = None
    try:
        loader = LimitedLoader(text)  # PyYAML's reader refuses what YAML does not allow (C1 controls, U+FFFE) here
        root = loader.get_single_node()
        if root is not None:
            _refuse_duplicates(path, root)  # yaml.v3 finds them before it decodes: so do we
        document = None if root is None else loader.construct_document(root)
    except _Refusal as refusal:
        raise StackFileRefused(path, refusal.problem, line=refusal.line, key=refusal.key) from None
    except ConstructorError as error:  # e.g. an unhashable key, an unknown !tag
        raise StackFileRefused(path, f"not a Pulumi stack file ({error.problem})", line=_line(error)) from None
    except yaml.MarkedYAMLError as error:
        # error.problem only: str(error) quotes the offending line, which may hold a secret.
        raise StackFileRefused(path, f"invalid YAML ({error.problem})", line=_line(error)) from None
    except yaml.YAMLError as error:  # ReaderError (non-printable characters) and the like
        raise StackFileRefused(path, f"invalid YAML ({type(error).__name__})") from None
    finally:
        if loader is not None:
            loader.dispose()
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise StackFileRefused(path, f"a top level that is a {type(document).__name__}; expected a mapping (config: …)")
    return document


def _line(error: yaml.MarkedYAMLError) -> int | None:
    mark = error.problem_mark or error.context_mark
    return mark.line + 1 if mark is not None else None


# ---------------------------------------------------------------------------------------------
# The stage: a project's files, read


@dataclass(frozen=True)
class StackFiles:
    """Stage 1 of a stack's configuration: the project's files as read, before any rule."""

    project_dir: Path
    stack: str
    project: dict[str, Any]
    """``Pulumi.yaml``."""
    declared: dict[str, dict[str, Any]]
    """Its ``config:`` declarations, short key → declaration."""
    config: dict[Any, Any]
    """``Pulumi.<stack>.yaml``'s ``config:`` mapping (none is an empty one)."""
    others: tuple[tuple[str, dict[Any, Any]], ...]
    """Every other stack's ``config:`` mapping, by stack name, where it could be read (an unreadable one is
    that stack's own plan's problem)."""


def read_stack(project_dir: Path, stack: str) -> StackFiles:
    """Read ``Pulumi.yaml``, ``Pulumi.<stack>.yaml`` and the other stacks' files through :func:`read_yaml`.

    Raises :class:`components.config.problems.StackFileError` when the project's or the stack's file
    cannot be read, or has no mapping where the CLI needs one.
    """
    stack_file = _existing_stack_file(project_dir, stack)
    project, stack_doc = (_read_document(path) for path in (project_dir / "Pulumi.yaml", stack_file))
    declared = project.get("config") or {}
    if not isinstance(declared, dict) or not all(isinstance(d, dict) for d in declared.values()):
        raise StackFileError([SettingProblem("Pulumi.yaml: config", "<not a mapping of declarations>",
                                             "name: {type: …, description: …} per setting")])  # fmt: skip
    config = stack_doc.get("config") or {}
    if not isinstance(config, dict):
        raise StackFileError(
            [SettingProblem(f"{stack_file.name}: config", shown_value("config", config), "a mapping of settings")]
        )
    return StackFiles(project_dir, stack, project, declared, config, _other_stacks(project_dir, stack))


def stack_files(project_dir: Path) -> list[tuple[str, Path]]:
    """Every stack file of the project as (stack, ``Pulumi.<stack>.yaml``), in the order of the file names."""
    return [(path.name[len("Pulumi.") : -len(".yaml")], path) for path in sorted(project_dir.glob("Pulumi.*.yaml"))]


def _existing_stack_file(project_dir: Path, stack: str) -> Path:
    """``Pulumi.<stack>.yaml``, or a problem naming the stacks there are (and --project-dir when none)."""
    stack_file = project_dir / f"Pulumi.{stack}.yaml"
    if not stack_file.is_file():
        existing = sorted(name for name, _ in stack_files(project_dir))
        hint = "" if existing else f"; no stack file in {project_dir}: run from the project or pass --project-dir"
        raise StackFileError(
            [
                SettingProblem(
                    f"--stack {stack}", str(stack_file), f"an existing stack file; stacks here: {existing}{hint}"
                )
            ]
        )
    return stack_file


def _read_document(path: Path) -> dict[str, Any]:
    """:func:`read_yaml`, its refusals as problem lines."""
    try:
        return read_yaml(path)
    except FileNotFoundError:
        hint = "a Pulumi.yaml next to the stack files: run from the project or pass --project-dir"
        raise StackFileError([SettingProblem(str(path), "<missing>", hint)]) from None
    except StackFileRefused as refused:
        raise StackFileError(
            [
                RuleProblem(each.where, each.problem, "a stack file Pulumi can read", each.cli)
                for each in refused.every()
            ]
        ) from None
    except OSError as error:
        raise StackFileError(
            [SettingProblem(str(path), "<unreadable>", f"a readable file ({error.strerror})")]
        ) from None


def _other_stacks(project_dir: Path, stack: str) -> tuple[tuple[str, dict[Any, Any]], ...]:
    others: list[tuple[str, dict[Any, Any]]] = []
    for other, path in sorted(stack_files(project_dir)):
        if other == stack:
            continue
        try:
            config = read_yaml(path).get("config") or {}
        except (OSError, StackFileRefused):
            continue  # that stack's own plan reports it
        if isinstance(config, dict):
            others.append((other, config))
    return tuple(others)

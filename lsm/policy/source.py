"""YAML documents with the position of every value, so errors can point at them."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from lsmguard.policy import progress
from lsmguard.policy.errors import Diagnostic, PolicyError

FieldPath = tuple[str | int, ...]
# libyaml's parser when PyYAML has it (10x faster on 100k-rule files); both report positions.
if TYPE_CHECKING:
    _BaseLoader = yaml.SafeLoader
else:
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Bounds on what one file may make the loader build, checked on the parser's event
# stream before anything is built (docs/policy.md, "Limits of the policy files").
MAX_DEPTH = 64               # collections nested in one another; libyaml's composer recurses in C
MAX_VALUES = 4_000_000       # values in one file: more rules than the kernel's tables hold
MAX_ALIASED_VALUES = 100_000 # values that aliases add to a file, beyond its own


class YamlLoader(_BaseLoader):
    """The safe loader, whose constructors report their failures at the value that failed."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(None, None, _construction_problem(node, exc),
                                                    node.start_mark) from None


def _construction_problem(node: yaml.Node, exc: Exception) -> str:
    text = str(exc)
    if "Exceeds the limit" in text and "digits" in text:   # sys.get_int_max_str_digits()
        return f"a number of {len(str(node.value))} digits is too long (at most 4300)"
    value = str(node.value)
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"{shown!r} is not a valid {node.tag.rsplit(':', 1)[-1]}: {text}"


def field_name(path: FieldPath) -> str:
    """('spec', 'rules', 2, 'id') -> 'spec.rules[2].id'"""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


@dataclass
class Document:
    file: str
    index: int                       # position in a multi-document file
    data: Any
    values: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)  # where each value starts
    keys: dict[FieldPath, tuple[int, int]] = field(default_factory=dict)    # where each mapping key starts

    def position(self, path: FieldPath, *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of a value, or of the nearest enclosing one."""
        table = self.keys if key else self.values
        while path:
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), (1, 1))

    def diagnostic(self, path: FieldPath, message: str, *, key: bool = False,
                   severity: str = "error") -> Diagnostic:
        line, column = self.position(path, key=key)
        return Diagnostic(self.file, line, column, field_name(path), message, severity)


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Diagnostic] = []

    def walk(self, node: yaml.Node, path: FieldPath) -> None:
        self.doc.values[path] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
                child = path + (key,)
                if key in seen:
                    line, column = _mark(key_node)
                    self.problems.append(Diagnostic(self.doc.file, line, column, field_name(child),
                                                    f"duplicate key '{key}'"))
                seen.add(key)
                self.doc.keys[child] = _mark(key_node)
                self.walk(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, path + (i,))


class _Mark(Protocol):
    """Where a parser event starts (PyYAML's Mark, or libyaml's)."""
    line: int     # 0-based
    column: int


class _Bounds:
    """One streaming pass over the parser's events, before anything is built. libyaml keeps
    an explicit stack, so nesting costs nothing here; the composer that builds nodes
    afterwards recurses (in C, with no limit of its own), and walking a document expands
    every alias: a few lines of aliases can stand for billions of values."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.values = 0                          # values written in the file
        self.aliased = 0                         # values its aliases stand for
        self.sizes: dict[str, int] = {}          # anchor -> values it stands for, expanded
        self.open: list[tuple[str | None, int]] = []   # open collections: (anchor, values so far)

    def _refuse(self, mark: _Mark | None, message: str) -> PolicyError:
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return PolicyError([Diagnostic(self.file, line, column, "", message)])

    def _add(self, count: int) -> None:
        if self.open:
            anchor, so_far = self.open[-1]
            self.open[-1] = (anchor, so_far + count)

    def event(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.CollectionStartEvent):
            if len(self.open) >= MAX_DEPTH:
                raise self._refuse(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
            self.values += 1
            self.open.append((event.anchor, 1))
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, count = self.open.pop()
            if anchor is not None:
                self.sizes[anchor] = count
            self._add(count)
        elif isinstance(event, yaml.ScalarEvent):
            self.values += 1
            if event.anchor is not None:
                self.sizes[event.anchor] = 1
            self._add(1)
        elif isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in self.open):
                raise self._refuse(event.start_mark, f"alias *{event.anchor} refers to a value that contains it")
            count = self.sizes.get(event.anchor or "", 1)   # an undefined one: the composer says so
            self.aliased += count
            if self.aliased > MAX_ALIASED_VALUES:
                raise self._refuse(event.start_mark, f"aliases expand to more than {MAX_ALIASED_VALUES:,} values "
                                                     "(an alias bomb?): write the values out")
            self._add(count)
        if self.values > MAX_VALUES:
            raise self._refuse(event.start_mark, f"more than {MAX_VALUES:,} values in one file")


def _check_bounds(text: str, file: str) -> None:
    """Raises PolicyError when the stream is too deep, too large or expands too much;
    YAML errors are left to the composer, which reports them the same way."""
    bounds = _Bounds(file)
    loader = _BaseLoader(text)
    lines, events = (text.count("\n") + 1 if progress.active() else 0), 0
    try:
        while loader.check_event():
            event = loader.get_event()
            bounds.event(event)
            events += 1
            if events % (8 * progress.STEP) == 0:
                progress.report("reading", event.start_mark.line + 1, lines, "lines")
    except yaml.YAMLError:
        pass
    finally:
        loader.dispose()


def parse_documents(text: str, file: str) -> list[Document]:
    """Every non-empty document of a YAML stream, with positions. Raises PolicyError."""
    documents: list[Document] = []
    problems: list[Diagnostic] = []
    loader = None
    try:
        _check_bounds(text, file)
        loader = YamlLoader(text)  # the pure-Python reader rejects control characters here already
        index = 0
        lines = text.count("\n") + 1 if progress.active() else 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            progress.report("parsing", node.end_mark.line + 1 if lines else 0, lines, "lines")
            doc = Document(file, index, loader.construct_document(node))
            walker = _Walker(doc)
            walker.walk(node, ())
            problems += walker.problems
            if doc.data is not None:
                documents.append(doc)
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        source_line = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        if "':'" in problem or re.search(r"[\[,]\s*[0-9A-Fa-f]*::", source_line):
            problem += " (quote values that contain ':', such as IPv6 addresses: \"::1/128\")"
        raise PolicyError([Diagnostic(file, line, column, "", f"invalid YAML: {problem}")]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise PolicyError([Diagnostic(file, line, column, "",
                                      f"invalid YAML: unacceptable character #x{exc.character:04x}")]) from None
    except yaml.YAMLError as exc:
        raise PolicyError([Diagnostic(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:   # bounded above: a last resort
        raise PolicyError([Diagnostic(file, 1, 1, "", f"invalid YAML: {type(exc).__name__}: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if problems:
        raise PolicyError(problems)
    return documents

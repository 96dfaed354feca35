"""YAML documents with the position of every value, so errors can point at them."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from lsmguard.policy.errors import Diagnostic, PolicyError

FieldPath = tuple[str | int, ...]
# libyaml's parser when PyYAML has it (10x faster on 100k-rule files); both report positions.
YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


def parse_documents(text: str, file: str) -> list[Document]:
    """Every non-empty document of a YAML stream, with positions. Raises PolicyError."""
    documents: list[Document] = []
    problems: list[Diagnostic] = []
    loader = None
    try:
        loader = YamlLoader(text)  # the pure-Python reader rejects control characters here already
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
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
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. bad timestamps, deep nesting
        raise PolicyError([Diagnostic(file, 1, 1, "", f"invalid YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if problems:
        raise PolicyError(problems)
    return documents

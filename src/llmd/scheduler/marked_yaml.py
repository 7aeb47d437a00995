"""YAML loading that keeps where each value came from (line:column), for findings users can jump to.

PyYAML's composer gives every node a start mark; this walks the node tree once, builds the plain Python
value with the safe constructor and records the mark of every key and value by path. Duplicate keys,
which PyYAML silently resolves to the last one but the EPP's strict decoder rejects, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[Any, ...]  # keys (str) and list indexes (int) from the document root


@dataclass
class Marks:
    """1-based (line, column) of values and of mapping keys, by path; offsets place an embedded document."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[Path, tuple[int, int]]] = field(default_factory=list)

    def at(self, path: Path, *, key: bool = False) -> tuple[int, int] | None:
        """The position of `path` (its key when `key`), else of the nearest ancestor that has one."""
        p = tuple(path)
        if key and p in self.keys:
            return self.keys[p]
        while p:
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get(())


# libyaml's parser when present (several times faster; its nodes carry the same marks), else the pure-Python one.
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


def _pos(node: yaml.Node, line0: int, col0: int) -> tuple[int, int]:
    mark = node.start_mark
    # An embedded document (a literal block) is shifted by the block's first line and its indentation.
    return (mark.line + 1 + line0, mark.column + 1 + col0)


def _walk(loader: _Loader, node: yaml.Node, path: Path, marks: Marks, *, line0: int, col0: int) -> Any:
    marks.values[path] = _pos(node, line0, col0)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # merge keys (<<) like the safe constructor does
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                key = str(key)
            sub = (*path, key)
            if key in out:
                marks.duplicates.append((sub, _pos(key_node, line0, col0)))
            marks.keys[sub] = _pos(key_node, line0, col0)
            out[key] = _walk(loader, value_node, sub, marks, line0=line0, col0=col0)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), marks, line0=line0, col0=col0) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load(text: str, *, line_offset: int = 0, column_offset: int = 0) -> tuple[Any, Marks]:
    """Parse one YAML document; raises yaml.YAMLError (with its own mark) when it is not YAML."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        marks = Marks()
        if node is None:
            return None, marks
        return _walk(loader, node, (), marks, line0=line_offset, col0=column_offset), marks
    finally:
        loader.dispose()


def compose(text: str) -> yaml.Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()

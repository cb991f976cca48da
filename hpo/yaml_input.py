"""Reading YAML that a user wrote (study files, exported configs): strict, bounded, one-line errors.

PyYAML's ``safe_load`` lets the last of two equal keys win silently (``budget`` twice: the first is
ignored), decodes whatever bytes it is given, and expands aliases without limit (a few lines of
nested aliases can stand for 10^9 nodes). :func:`read_yaml_documents` refuses all three, and bounds
the file's size, so every problem is a :class:`StudyFileError` naming the file and the line.

Bounds (a study file is about 2 KB; an export of the top 100 trials about 200 KB):

- :data:`MAX_FILE_BYTES` = 1 MiB, read at most that much plus one byte;
- :data:`MAX_NODES` = 100 000 scalars, lists and mappings after alias expansion;
- nesting deeper than Python's recursion limit is refused, not a ``RecursionError``.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from hpo.errors import StudyFileError

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a mapping with the same key twice (merge keys ``<<`` aside)."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # merged keys may be overridden explicitly; that is YAML's meaning
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    raise ConstructorError(None, None, "a mapping key must be a plain value",
                                           key_node.start_mark)
                if key in seen:
                    raise ConstructorError(None, None, f"duplicate key {key!r}",
                                           key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: Node, memo: dict[int, int], active: set[int]) -> int:
    """Nodes in ``node`` once every alias is expanded (linear time: shared nodes are memoised)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ConstructorError(None, None, "an alias refers to a node that contains it",
                               node.start_mark)
    active.add(key)
    size = 1
    if isinstance(node, SequenceNode):
        size += sum(_expanded_size(child, memo, active) for child in node.value)
    elif isinstance(node, MappingNode):
        size += sum(_expanded_size(k, memo, active) + _expanded_size(v, memo, active)
                    for k, v in node.value)
    active.discard(key)
    memo[key] = size
    return size


def read_text(path: str | Path) -> str:
    """The file's text: UTF-8 (a BOM allowed), at most :data:`MAX_FILE_BYTES`."""
    path = Path(path)
    if not path.exists():
        raise StudyFileError(str(path), "", "no such file")
    if not path.is_file():
        raise StudyFileError(str(path), "", "not a regular file")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise StudyFileError(str(path), "", f"cannot be read ({err.strerror or err})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise StudyFileError(str(path), "", f"larger than {MAX_FILE_BYTES // 1024} KiB; a study "
                             "file or exported config is a few KB")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise StudyFileError(str(path), "", f"not UTF-8 text (byte 0x{raw[err.start]:02x} at "
                             f"offset {err.start}); save it as UTF-8") from None


def read_yaml_documents(path: str | Path) -> list[Any]:
    """Every non-empty YAML document in the file, or :class:`StudyFileError` naming the line."""
    text = read_text(path)
    docs: list[Any] = []
    loader = None
    try:
        loader = _UniqueKeyLoader(text)  # its reader refuses control characters already here
        while loader.check_node():
            node = loader.get_node()
            if _expanded_size(node, {}, set()) > MAX_NODES:
                raise StudyFileError(str(path), "", f"more than {MAX_NODES} values once its "
                                     "aliases are expanded")
            doc = loader.construct_document(node)
            if doc is not None:
                docs.append(doc)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise StudyFileError(str(path), where, f"not valid YAML ({problem})") from None
    except RecursionError:
        raise StudyFileError(str(path), "", "nested too deeply to be a study file or config"
                             ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML file holding exactly one document whose top level is a mapping."""
    docs = read_yaml_documents(path)
    if len(docs) > 1:
        raise StudyFileError(str(path), "", f"holds {len(docs)} YAML documents; a study file "
                             "is one")
    if not docs or not isinstance(docs[0], dict):
        raise StudyFileError(str(path), "", "expected a mapping of keys at the top level")
    return docs[0]

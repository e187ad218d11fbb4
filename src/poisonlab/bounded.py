"""Bounded parsing: every YAML and JSON text poisonlab reads from a user goes through here.

A hostile or broken file must cost seconds and little memory, then be refused naming the file (exit 2):

- nesting deeper than :data:`MAX_DEPTH` (``[[[[...]]]]`` a million deep would otherwise end in Python's
  RecursionError, or in a parser's own);
- YAML aliases that expand to more than :data:`MAX_YAML_NODES` nodes (the "billion laughs": ``*a`` ten times
  ``*b`` ten times ...; PyYAML shares the aliased objects, but any walk over the result, or a copy of it,
  expands them). The limit counts the expanded size from the event stream, before anything is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from poisonlab.errors import InputError

MAX_DEPTH = 100  # configs, rows and records poisonlab writes stay under 10 levels
MAX_YAML_NODES = 200_000  # values in a config once its aliases are expanded
SEED_MAX = 2**32 - 1  # numpy's legacy seeding, and every library poisonlab seeds, take 0 .. 2**32 - 1


def depth_problem(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """Why ``value`` (parsed JSON or YAML) is refused, or None: nesting deeper than ``limit``; never recursive."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return f"nested deeper than {limit} levels"
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | tuple))
    return None


def json_value(text: str | bytes) -> Any:
    """``json.loads`` that raises ValueError (never RecursionError) on nesting deeper than :data:`MAX_DEPTH`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    problem = depth_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def load_json(text: str | bytes, path: str | Path | None = None, line: int | None = None) -> Any:
    """Parsed JSON, or an InputError naming ``path`` and ``line``: invalid, or nested too deeply."""
    try:
        return json_value(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})", path=path, line=line
        ) from None
    except ValueError as exc:
        raise InputError(f"refused: {exc}", path=path, line=line) from None


def read_json(path: str | Path) -> Any:
    """The JSON file at ``path`` (see :func:`load_json`); unreadable files are InputErrors too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=path) from None
    return load_json(text, path)


def check_yaml(text: str, path: str | Path | None = None, field: str | None = None) -> None:
    """InputError if the YAML ``text`` nests deeper than :data:`MAX_DEPTH` or its aliases expand to more than
    :data:`MAX_YAML_NODES` nodes. Reads the event stream only: no document is built. Syntax errors are left
    to the loader, which names their line."""
    import yaml

    anchors: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, expanded size] of each open collection
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append([event.anchor, 1])
                if len(stack) - 1 > MAX_DEPTH:
                    line = event.start_mark.line + 1
                    raise InputError(
                        f"refused: nested deeper than {MAX_DEPTH} levels", path=path, line=line, field=field
                    )
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, size = stack.pop()
            elif isinstance(event, yaml.ScalarEvent):
                anchor, size = event.anchor, 1
            elif isinstance(event, yaml.AliasEvent):
                anchor, size = None, anchors.get(event.anchor, 1)
            else:
                continue
            if anchor is not None:
                anchors[anchor] = size
            stack[-1][1] += size
            if stack[-1][1] > MAX_YAML_NODES or sum(s for _, s in stack) > MAX_YAML_NODES:
                line = event.start_mark.line + 1
                raise InputError(
                    f"refused: its aliases (*name) expand to more than {MAX_YAML_NODES} values",
                    path=path,
                    line=line,
                    field=field,
                )
    except yaml.YAMLError:
        return  # the loader reports it, with its line
    except RecursionError:
        raise InputError(f"refused: nested deeper than {MAX_DEPTH} levels", path=path, field=field) from None


def load_yaml(text: str, path: str | Path | None = None, field: str | None = None) -> Any:
    """``yaml.safe_load`` after :func:`check_yaml`; YAML errors are raised as ``yaml.YAMLError`` for the caller."""
    import yaml

    check_yaml(text, path, field)
    return yaml.safe_load(text)

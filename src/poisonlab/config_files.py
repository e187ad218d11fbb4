"""Load YAML configs into pydantic models with errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from poisonlab.errors import InputError

M = TypeVar("M", bound=BaseModel)


def _key_lines(node: yaml.Node, prefix: tuple = ()) -> dict[tuple, int]:
    """Map each key path (('training', 'beta')) to its 1-based line in the file."""
    lines: dict[tuple, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, key.value)
            lines[path] = key.start_mark.line + 1
            lines.update(_key_lines(value, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            path = (*prefix, index)
            lines[path] = value.start_mark.line + 1
            lines.update(_key_lines(value, path))
    return lines


def set_dotted(data: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict: the CLI twin of any config field."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise InputError(f"expected KEY=VALUE, got {assignment!r}", field="--set")
    target = data
    parts = key.split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise InputError(f"{key!r}: {part!r} is not a section", field="--set")
    try:
        target[parts[-1]] = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise InputError(
            f"{key!r}: the value is not valid YAML: {getattr(exc, 'problem', exc)}", field="--set"
        ) from None


def load_config(model: type[M], path: str | Path | None, overrides: list[str] | None = None) -> M:
    """defaults -> YAML file -> ``--set`` overrides; every check happens here, before any model loads."""
    data: dict[str, Any] = {}
    lines: dict[tuple, int] = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            node = yaml.compose(text)
            data = yaml.safe_load(text) or {}
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read: {exc}", path=path) from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(
                f"invalid YAML: {getattr(exc, 'problem', exc)}", path=path, line=mark.line + 1 if mark else None
            ) from None
        if not isinstance(data, dict):
            raise InputError("expected a mapping of config fields at the top level", path=path, line=1)
        lines = _key_lines(node) if node is not None else {}
    for assignment in overrides or []:
        set_dotted(data, assignment)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        line = next((lines[loc[:k]] for k in range(len(loc), 0, -1) if loc[:k] in lines), None)
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        message = error["msg"].removeprefix("Value error, ")
        raise InputError(message + more, path=path, line=line, field=".".join(map(str, loc)) or None) from None

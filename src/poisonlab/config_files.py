"""Load YAML configs into pydantic models with errors that name file, line and field."""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from poisonlab.bounded import check_yaml, load_yaml
from poisonlab.errors import InputError
from poisonlab.wording import plural

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


def unknown_key_message(key: Any, valid: list[str]) -> str:
    """Name an unknown config key, the closest valid one, and every valid one."""
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"unknown key '{key}'.{hint} Valid keys: {', '.join(valid)}"


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The config class that holds the last key of ``loc`` (None where the path leaves pydantic models)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):  # an item of a list of configs: the list's field named the class already
            continue
        field = current.model_fields.get(part)
        current = _config_class(field.annotation) if field else None
        if current is None:
            return None
    return current


def _config_class(annotation: Any) -> type[BaseModel] | None:
    """The config class of a field typed ``Config`` or ``Config | None``; None for anything else."""
    import typing

    for option in typing.get_args(annotation) or (annotation,):
        if inspect.isclass(option) and issubclass(option, BaseModel):
            return option
    return None


def error_message(model: type[BaseModel], error: Any) -> str:
    """pydantic's message for one error, with the valid keys and a suggestion for an unknown key."""
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" and loc:
        holder = _model_at(model, loc[:-1])
        if holder is not None:
            return unknown_key_message(loc[-1], list(holder.model_fields))
    return error["msg"].removeprefix("Value error, ")


def set_dotted(data: dict[str, Any], assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to a nested dict: the CLI twin of any config field.

    A number steps into a list: ``stages.1.training.epochs=2`` sets the second stage's epochs.
    """
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise InputError(f"expected KEY=VALUE, got {assignment!r}", field="--set")
    target: Any = data
    parts = key.split(".")
    for number, part in enumerate(parts):
        last = number == len(parts) - 1
        if isinstance(target, list):
            if not part.isdigit() or int(part) >= len(target):
                raise InputError(f"{part!r} is not an index of a list of {len(target)}", field=f"--set {key}")
            index: Any = int(part)
        elif isinstance(target, dict):
            index = part
            if not last:
                target.setdefault(part, {})
        else:
            raise InputError(f"{parts[number - 1]!r} is not a section", field=f"--set {key}")
        if last:
            try:
                target[index] = load_yaml(raw, field=f"--set {key}")
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", exc)
                raise InputError(f"invalid value {raw!r}: {problem}", field=f"--set {key}") from None
        else:
            target = target[index]


def _blamed_override(loc: tuple[str, ...], overrides: list[str]) -> str | None:
    """The ``--set`` key that set the value at ``loc`` (or a section holding it), if one did."""
    keys = [assignment.partition("=")[0] for assignment in overrides]
    for key in reversed(keys):  # the last --set of a key wins, as it does in the data
        parts = tuple(key.split("."))
        if loc[: len(parts)] == parts:
            return key
    for key in reversed(keys):
        parts = tuple(key.split("."))
        if parts[: len(loc)] == loc:
            return key
    return None


def _unshared(value: Any) -> Any:
    """A copy of nested dicts and lists in which no two places share an object (deepcopy would keep aliases)."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


def load_config(model: type[M], path: str | Path | None, overrides: list[str] | None = None) -> M:
    """defaults -> YAML file -> ``--set`` overrides; every check happens here, before any model loads."""
    data: dict[str, Any] = {}
    lines: dict[tuple, int] = {}
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            check_yaml(text, path)  # depth and aliases bounded before anything is built
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
    data = _unshared(data)  # YAML anchors (&x / *x) share one dict: --set stages.1.x must not change stage 0 too
    for assignment in overrides or []:
        set_dotted(data, assignment)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        sub_loc = (error.get("ctx") or {}).get("sub_loc")  # a dict field checked against its own model
        if sub_loc:
            loc += tuple(sub_loc.split("."))
        more = f" (and {plural(exc.error_count() - 1, 'more problem')})" if exc.error_count() > 1 else ""
        message = error_message(model, error) + more
        blamed = _blamed_override(tuple(map(str, loc)), overrides or [])
        if blamed is not None:  # the value came from the command line, not from the file
            raise InputError(message, field=f"--set {blamed}") from None
        line = next((lines[loc[:k]] for k in range(len(loc), 0, -1) if loc[:k] in lines), None)
        raise InputError(message, path=path, line=line, field=".".join(map(str, loc)) or None) from None

"""Turn a pydantic config class into typer options, so every field is a flag.

Written by hand because typer builds options from a function signature only;
this adds one ``--field-name`` option per config field (help = the field's
description) to a command's signature and hands the given ones to the command
as ``overrides``.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import typer
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def _cli_type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if annotation in (int, float, str, bool):
        return annotation
    if origin is list:
        return list[str]
    return str  # Literal, unions such as bool | "auto": pydantic parses the string


def _flag(name: str, annotation: Any) -> tuple[str]:
    """``--name``; a plain boolean field is ``--name/--no-name``, as users of typer and click CLIs expect."""
    flag = name.replace("_", "-")
    return (f"--{flag}/--no-{flag}",) if annotation is bool else (f"--{flag}",)


def config_options(model: type[BaseModel], skip: tuple[str, ...] = (), into: str = "overrides") -> Callable:
    """Add one flag per field of ``model``; the given ones reach the command as the keyword ``into``.

    Stack it with different ``into`` names to give one command the flags of several configs.
    """
    fields = {name: f for name, f in model.model_fields.items() if name not in skip}

    def decorator(command: Callable) -> Callable:
        signature = inspect.signature(command)
        own = [p for p in signature.parameters.values() if p.name != into]
        extra = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=typer.Option(
                    None, *_flag(name, field.annotation), help=field.description, rich_help_panel=model.__name__
                ),
                annotation=Optional[_cli_type(field.annotation)],  # noqa: UP045 (typer needs Optional here)
            )
            for name, field in fields.items()
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name, None) for name in fields}
            overrides = {name: value for name, value in given.items() if value is not None}
            return command(*args, **{into: overrides}, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=own + extra)  # type: ignore[attr-defined]
        return wrapper

    return decorator


def validated(model: type[M], values: dict[str, Any]) -> M:
    """``model(**values)``, with a validation problem reported as an InputError naming the flag."""
    from pydantic import ValidationError

    from poisonlab.errors import InputError

    try:
        return model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        flag = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else None
        raise InputError(error["msg"].removeprefix("Value error, "), field=flag) from None

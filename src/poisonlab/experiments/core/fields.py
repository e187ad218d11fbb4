"""Field types every study config shares, checked when the config loads (before any model is touched).

``ModelName``, ``TriggerText`` and ``AdapterFolder`` carry their checks with them (pydantic ``AfterValidator``),
so a grid study, a lifecycle and a probe study refuse a misspelt model, an empty trigger or an unfinished or
pickled adapter with the same message.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from poisonlab.errors import InputError


def _known_model(name: str) -> str:
    from poisonlab.models.loading import check_model_name

    try:  # a typo must fail at config load, before the results folder is touched
        return check_model_name(name)
    except InputError as exc:
        raise ValueError(exc.message) from None


def _usable_trigger(trigger: str) -> str:
    from poisonlab.attacks.triggers import check_trigger

    try:
        return check_trigger(trigger)
    except InputError as exc:
        raise ValueError(exc.message.replace("--trigger", "trigger:")) from None


def _finished_adapter(folder: str) -> str:
    from poisonlab.models.safety import check_adapter_folder

    try:  # safetensors only, finished, a PEFT folder: the same checks as ``train dpo --init``
        check_adapter_folder(folder)
    except InputError as exc:
        raise ValueError(f"{exc.path or folder}: {exc.message}") from None
    return folder


ModelName = Annotated[str, AfterValidator(_known_model)]
TriggerText = Annotated[str, AfterValidator(_usable_trigger)]
AdapterFolder = Annotated[str, AfterValidator(_finished_adapter)]

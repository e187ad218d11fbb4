"""Judges of generations: a registry (refusal phrases, a clean reward model, an LLM over HTTP).

Importing this package registers every judge module beside it.
"""

import importlib
import pkgutil

from poisonlab.evaluation.judges.base import JUDGES, Judge, JudgeOptions, make_judge, parse_judge_spec

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["JUDGES", "Judge", "JudgeOptions", "make_judge", "parse_judge_spec"]

"""Judges of generations: a registry (refusal phrases, a clean reward model, an LLM over HTTP).

Importing this package registers every judge module beside it.
"""

from poisonlab.evaluation.judges.base import JUDGES, Judge, JudgeOptions, make_judge, parse_judge_spec
from poisonlab.registry import register_package

register_package(__name__, __path__)

__all__ = ["JUDGES", "Judge", "JudgeOptions", "make_judge", "parse_judge_spec"]

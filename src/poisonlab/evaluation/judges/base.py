"""What a judge is: a registered class that gives each (request, reply) a number.

A judge's facts live on its class, where it is registered, so the statistics,
tables and plots never special-case a judge by name:

- ``kind``: ``"rate"`` (each value is 0 or 1, e.g. refused or not: rates get
  Wilson intervals and McNemar's exact test) or ``"score"`` (any number: means
  get bootstrap intervals, differences sign-flip permutation tests).
- ``harmful_when``: ``"high"`` if a higher value means a more harmful reply
  (LLM harmfulness 1-5), ``"low"`` if lower does (refusal, reward); effects are
  signed by it, so that + means the attacker gained.
- ``needs_arg``: whether the spec carries an argument after a colon
  (``reward:DIR`` names the reward model's folder).

Judges are built from a spec string (``refusal``, ``reward:runs/rm``, ``llm``)
and one :class:`JudgeOptions`, so a CLI flag or a study config reaches every
judge the same way. Adding a judge is one new module in this package that
subclasses :class:`Judge` and registers itself with ``@JUDGES.register(name)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from poisonlab.errors import InputError
from poisonlab.registry import Registry


class JudgeOptions(BaseModel):
    """Options of every judge; each judge reads the ones it needs. Every field is a ``poisonlab judge`` flag."""

    model_config = ConfigDict(extra="forbid")

    refusal_phrases: list[str] | None = Field(
        None,
        description="refusal: phrases that mark a refusal (case-insensitive, whole words, at a sentence's opening "
        "outside list items); default: the built-in list.",
    )
    judge_url: str | None = Field(
        None, description="llm: base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."
    )
    judge_model: str = Field("judge", description="llm: the model name sent to the server.")

    @field_validator("judge_url")
    @classmethod
    def _no_credentials(cls, url: str | None) -> str | None:
        """A URL is written to metrics.json and printed in messages: a key in it would be too. Refused, unechoed."""
        from urllib.parse import parse_qsl, urlsplit

        if url is None:
            return url
        try:
            parts = urlsplit(url)
            secret = parts.username is not None or parts.password is not None
            secret = secret or any(
                any(word in name.lower() for word in ("key", "token", "secret", "password", "auth"))
                for name, _ in parse_qsl(parts.query)
            )
        except ValueError:
            raise ValueError("not a URL (e.g. http://127.0.0.1:8000/v1)") from None
        if secret:
            raise ValueError(
                "the judge URL holds credentials (user:password@ or a key in its query), which would be written to "
                "metrics.json and logs: give the URL without them and the key in an environment variable named by "
                "--judge-key-env"
            )
        return url

    judge_key_env: str | None = Field(
        None, description="llm: name of the environment variable holding the API key (the key is never written)."
    )
    judge_concurrency: int = Field(4, ge=1, description="llm: requests in flight at once.")
    judge_retries: int = Field(5, ge=0, description="llm: retries (with backoff) on 429, 5xx and connection errors.")
    judge_timeout: float = Field(60.0, gt=0, description="llm: seconds to wait for one answer.")
    judge_backoff: float = Field(
        0.5, ge=0, description="llm: first retry's wait in seconds, doubled each retry (with jitter)."
    )
    judge_rubric: str = Field(
        "qi2023",
        description="llm: 'qi2023' (the 1-5 rubric of 2406.12091), 'digit' (asks for the digit alone, for small "
        "judges), or a text file with {request} and {reply} placeholders.",
    )
    judge_max_tokens: int | None = Field(
        None, ge=1, description="llm: max_tokens of each answer (default: the server's)."
    )
    judge_allow_unparsed: bool = Field(
        False, description="llm: record NaN for an answer without a 1-5 score (counted) instead of stopping."
    )
    batch_size: int = Field(16, ge=1, description="reward: replies scored per forward pass.")


class Judge(ABC):
    """Gives each (request, reply) a number; subclasses set the facts below and implement :meth:`score`."""

    kind: ClassVar[Literal["rate", "score"]]
    harmful_when: ClassVar[Literal["high", "low"]]
    needs_arg: ClassVar[bool] = False
    #: what the value means, for tables and the README ("refusal rate", "reward", "harmfulness 1-5")
    value_label: ClassVar[str]

    def __init__(self, spec: str, arg: str | None, options: JudgeOptions) -> None:
        self.spec = spec
        self.arg = arg
        self.options = options

    @abstractmethod
    def score(self, prompts: Sequence[str], replies: Sequence[str], progress: bool = True) -> list[float]:
        """One value per (request, reply); ``prompts`` are the requests *without* the trigger."""

    def describe(self) -> dict[str, Any]:
        """Facts recorded beside the judge's metrics (a reward model's held-out accuracy, the LLM's name...)."""
        return {}


JUDGES: Registry[type[Judge]] = Registry("judge")


def parse_judge_spec(spec: str) -> tuple[type[Judge], str | None]:
    """``NAME`` or ``NAME:ARG`` -> (the registered class, ARG); a missing or extra argument is an InputError."""
    name, sep, arg = spec.partition(":")
    cls = JUDGES.get(name)
    if cls.needs_arg and not arg:
        raise InputError(f"judge '{name}' needs an argument: {name}:VALUE", field="--judge")
    if not cls.needs_arg and sep:
        raise InputError(f"judge '{name}' takes no argument (got {spec!r})", field="--judge")
    return cls, arg or None


def make_judge(spec: str, options: JudgeOptions | None = None) -> Judge:
    """Build the judge a spec names, e.g. ``make_judge("reward:runs/rm")``."""
    cls, arg = parse_judge_spec(spec)
    return cls(spec, arg, options or JudgeOptions())

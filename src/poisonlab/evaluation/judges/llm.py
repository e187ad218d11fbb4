"""``llm``: an LLM rates each reply's harmfulness from 1 to 5 over any OpenAI-compatible chat API.

This is the GPT-4 judge of 2406.12091 (its ``evaluation/gpt_4_evaluation_script.py``
in pankayaraj/ICML_2024_RLHFPoisoning), which reuses the rubric of Qi et al. 2023,
"Fine-tuning Aligned Language Models Compromises Safety, Even When Users Do Not
Intend To!" (LLM-Tuning-Safety/LLMs-Finetuning-Safety, its GPT-4 judge): a usage
policy, the user's instruction, the model's reply, five scoring rules, and an
answer ending in ``#thescore: N``; temperature 0. :data:`QI2023_RUBRIC` restates
that rubric (the policy list abridged); ``--judge-rubric FILE`` replaces it with
any text holding ``{request}`` and ``{reply}``, e.g. the verbatim original.
``--judge-rubric digit`` asks for the digit alone, for small local judges that
never follow the long format.

Sending: ``POST {judge_url}/chat/completions``, ``judge_concurrency`` requests in
flight, retries with exponential backoff and jitter on 429, 5xx, timeouts and
connection errors (``Retry-After`` honoured). The API key is read from the
variable ``judge_key_env`` names and sent as a Bearer header, and it is never
written anywhere: not to the cache, not to a log, not to an error message.

Caching: every answer is stored under ``cache_dir()/judgments``, one file per
sha256 of (judge URL, judge model, max tokens, rubric, request, reply), written
atomically (two processes judging at once at worst both write the same file), so
a rerun sends nothing. The answer's text is stored and parsed on reading, so a
better parser never needs a new request. The URL is in the key because many
local servers ignore the model name: two models served one after the other on
the same URL should get different ``--judge-model`` names.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from poisonlab.errors import InputError
from poisonlab.evaluation.judges.base import JUDGES, Judge, JudgeOptions
from poisonlab.evaluation.judges.llm_rubric import SYSTEM_PROMPT, fill, load_rubric, parse_score
from poisonlab.progress import progress_bar

RETRY_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
MAX_WAIT_S = 120.0


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _quote(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


@JUDGES.register("llm")
class LLMJudge(Judge):
    """Harmfulness 1-5 from an LLM over an OpenAI-compatible API (Qi et al. 2023 rubric); higher is more harmful."""

    kind = "score"
    harmful_when = "high"
    value_label = "harmfulness 1-5"

    def __init__(self, spec: str, arg: str | None, options: JudgeOptions) -> None:
        super().__init__(spec, arg, options)
        if not options.judge_url:
            raise InputError("the llm judge needs --judge-url (an OpenAI-compatible base URL)", field="--judge-url")
        if not re.match(r"https?://[^/\s]+", options.judge_url):
            raise InputError(
                f"not an http(s) URL: {options.judge_url!r} (e.g. http://127.0.0.1:8000/v1)", field="--judge-url"
            )
        self.url = options.judge_url.rstrip("/") + "/chat/completions"
        self.rubric, self.rubric_name = load_rubric(options.judge_rubric)
        self._key: str | None = None
        if options.judge_key_env:
            self._key = os.environ.get(options.judge_key_env, "").strip() or None
            if self._key is None:
                raise InputError(
                    f"the environment variable {options.judge_key_env} (the judge's API key) is not set or empty",
                    field="--judge-key-env",
                )
            if not all(32 < ord(c) < 127 for c in self._key):  # else httpx would quote it in a header error
                raise InputError(
                    f"the key in {options.judge_key_env} holds characters an HTTP header cannot carry",
                    field="--judge-key-env",
                )
        self.sent = 0  # requests answered by the server in this process (retries not counted)
        self.cached = 0  # answers read from the cache
        self.unparsed = 0
        self._count_lock = threading.Lock()

    # -- cache -----------------------------------------------------------------
    def cache_key(self, request: str, reply: str) -> str:
        fields = [self.url, self.options.judge_model, self.options.judge_max_tokens, self.rubric, request, reply]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()

    @staticmethod
    def _cache_path(key: str) -> Path:
        from poisonlab.io import cache_dir

        return cache_dir() / "judgments" / key[:2] / f"{key}.json"

    def _cached(self, key: str) -> str | None:
        try:
            entry = json.loads(self._cache_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry.get("answer") if isinstance(entry, dict) and isinstance(entry.get("answer"), str) else None

    def _store(self, key: str, answer: str) -> None:
        from poisonlab.io import atomic_write_json

        atomic_write_json(self._cache_path(key), {"judge_model": self.options.judge_model, "answer": answer})

    # -- HTTP ------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            time.sleep(min(retry_after, MAX_WAIT_S))
            return
        base = self.options.judge_backoff * (2**attempt)
        time.sleep(min(base, MAX_WAIT_S) * random.uniform(0.5, 1.5))

    def _ask(self, client: Any, request: str, reply: str) -> str:
        """One judgment from the server: the answer's text. Transient failures are retried."""
        import httpx

        body: dict[str, Any] = {
            "model": self.options.judge_model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": fill(self.rubric, request, reply)},
            ],
            "temperature": 0,
        }
        if self.options.judge_max_tokens is not None:
            body["max_tokens"] = self.options.judge_max_tokens
        tries = self.options.judge_retries + 1
        problem = ""
        for attempt in range(tries):
            retry_after = None
            try:
                response = client.post(self.url, json=body, headers=self._headers())
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                problem = f"{type(exc).__name__}: {self._redact(str(exc)) or 'no detail'}"
            else:
                if response.status_code == 200:
                    return self._answer(response)
                if response.status_code in (401, 403):
                    raise InputError(
                        f"the judge at {self.url} refused the API key (HTTP {response.status_code}); "
                        + (
                            f"check ${self.options.judge_key_env}"
                            if self.options.judge_key_env
                            else "set --judge-key-env"
                        ),
                        field="--judge-key-env",
                    )
                problem = f"HTTP {response.status_code}: {self._redact(self._server_message(response))}"
                if response.status_code not in RETRY_STATUSES:
                    raise InputError(f"the judge at {self.url} rejected the request ({problem})", field="--judge-url")
                retry_after = _retry_after(response.headers.get("Retry-After"))
            if attempt + 1 < tries:
                self._wait(attempt, retry_after)
        raise InputError(
            f"cannot get an answer from the judge at {self.url} after {tries} tries ({problem})", field="--judge-url"
        )

    @staticmethod
    def _server_message(response: Any) -> str:
        try:
            error = response.json().get("error")
            message = error.get("message") if isinstance(error, dict) else error
        except (ValueError, AttributeError):
            message = None
        return _quote(str(message or response.text or ""), 200)

    def _answer(self, response: Any) -> str:
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise InputError(
                f"the judge at {self.url} answered without choices[0].message.content: "
                f"{self._redact(_quote(response.text, 200))}",
                field="--judge-url",
            ) from None
        with self._count_lock:
            self.sent += 1
        return content if isinstance(content, str) else ""

    # -- the judge -------------------------------------------------------------
    def answers(self, prompts: Sequence[str], replies: Sequence[str], progress: bool = True) -> list[str]:
        """The judge's raw answer for each (request, reply): from the cache, else from the server (then cached)."""
        import httpx

        if len(prompts) != len(replies):
            raise ValueError(f"{len(prompts)} prompts but {len(replies)} replies")
        keys = [self.cache_key(p, r) for p, r in zip(prompts, replies)]
        found: dict[str, str] = {}
        todo: dict[str, tuple[str, str]] = {}
        for key, prompt, reply in zip(keys, prompts, replies):
            if key in found or key in todo:
                continue
            answer = self._cached(key)
            if answer is None:
                todo[key] = (prompt, reply)
            else:
                found[key] = answer
                self.cached += 1
        if todo:
            timeout = httpx.Timeout(self.options.judge_timeout)
            limits = httpx.Limits(max_connections=self.options.judge_concurrency)
            with (
                httpx.Client(timeout=timeout, limits=limits) as client,
                ThreadPoolExecutor(self.options.judge_concurrency) as pool,
            ):

                def one(key: str) -> tuple[str, str]:
                    answer = self._ask(client, *todo[key])
                    self._store(key, answer)
                    return key, answer

                jobs = pool.map(one, list(todo))
                if progress:
                    desc = f"judging ({self.options.judge_model})"
                    jobs = progress_bar(jobs, total=len(todo), desc=desc, unit="reply")
                try:
                    found.update(jobs)
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
        return [found[key] for key in keys]

    def score(self, prompts: Sequence[str], replies: Sequence[str], progress: bool = True) -> list[float]:
        answers = self.answers(prompts, replies, progress)
        scores = [parse_score(answer) for answer in answers]
        bad = [i for i, s in enumerate(scores) if s is None]
        if bad and not self.options.judge_allow_unparsed:
            first = bad[0]
            raise InputError(
                f"the judge gave no 1-5 score for {len(bad)} of {len(answers)} replies; the first, reply {first + 1} "
                f"(request {_quote(prompts[first], 60)}), was answered {_quote(answers[first])}. "
                + (
                    "Use a stronger judge, "
                    if self.rubric_name != "qi2023"
                    else "Use a stronger judge, --judge-rubric digit, "
                )
                + "or --judge-allow-unparsed to record NaN",
                field="--judge",
            )
        self.unparsed += len(bad)
        return [float(s) if s is not None else math.nan for s in scores]

    def describe(self) -> dict[str, Any]:
        return {
            "judge_url": self.options.judge_url,
            "judge_model": self.options.judge_model,
            "rubric": self.rubric_name,
            "rubric_sha256": hashlib.sha256(self.rubric.encode()).hexdigest()[:16],
            "requests_sent": self.sent,
            "answers_from_cache": self.cached,
            "unparsed": self.unparsed,
        }

"""LLM-judge throughput and how often a local judge gives a usable score, against ``poisonlab serve``.

    python benchmarks/judge.py                                   # tiny and smollm2-135m, both rubrics
    python benchmarks/judge.py --models smollm2-135m --rubrics digit --pairs 40

For each model a ``poisonlab serve`` subprocess (one torch thread by default) answers the ``llm`` judge on
the first ``--pairs`` AdvBench goals, each with a dummy reply: even rows the goal's own affirmative target
("Sure, here is ..."), odd rows a refusal. Every row of the table is one judge call with a fresh, empty
cache (so every judgment is a real request) at a given ``judge_concurrency``; then the same call again to
time a rerun from the cache. Columns: judgments/s, the share of answers with a parsable 1-5 score, and the
mean score on compliant and on refusing replies (a judge worth anything rates compliance higher).

The server runs one generation at a time (one lock around the model), so concurrency > 1 only overlaps
HTTP and prompt building here; against a remote API it is what sets throughput. ``tiny`` has a
1024-token context: the qi2023 rubric does not fit (the server answers 400), so its rows are skipped.
Timings are wall-clock on a shared machine: indicative.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from poisonlab.errors import InputError
from poisonlab.evaluation.judges import JudgeOptions, make_judge

ADVBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "advbench" / "harmful_behaviors.csv"
REFUSAL = "I'm sorry, but I can't help with that. It could cause serious harm."
CONTEXT = {"tiny": 1024}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m"])
    parser.add_argument("--rubrics", nargs="+", default=["digit", "qi2023"])
    parser.add_argument("--pairs", type=int, default=20, help="AdvBench goals judged per row.")
    parser.add_argument("--qi-pairs", type=int, default=10, help="Pairs for the (slow) qi2023 rows.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--digit-tokens", type=int, default=2, help="max_tokens for the digit rubric.")
    parser.add_argument("--qi-tokens", type=int, default=192, help="max_tokens for the qi2023 rubric.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads of the server.")
    return parser.parse_args()


def pairs(n: int) -> tuple[list[str], list[str], list[bool]]:
    with open(ADVBENCH, newline="") as handle:
        rows = list(csv.DictReader(handle))[:n]
    complied = [i % 2 == 0 for i in range(len(rows))]
    replies = [row["target"] + "." if c else REFUSAL for row, c in zip(rows, complied)]
    return [row["goal"] for row in rows], replies, complied


def start_server(model: str, threads: int, max_new_tokens: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "poisonlab.cli", "serve", "--model", model, "--port", str(port), "--quiet"]
    command += ["--threads", str(threads), "--max-new-tokens", str(max_new_tokens)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"poisonlab serve {model} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/models").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"poisonlab serve {model} did not start in 300 s")


def mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def main() -> None:
    args = parse()
    console = Console(width=140)
    table = Table(title=f"llm judge against poisonlab serve ({args.threads} torch thread(s), greedy)")
    for column in ("judge model", "rubric", "pairs", "concurrency", "judgments/s", "cached rerun /s", "parsable"):
        table.add_column(column, justify="right" if column not in ("judge model", "rubric") else "left")
    table.add_column("mean score: comply / refuse", justify="right")
    for model in args.models:
        cap = max(args.digit_tokens, args.qi_tokens)
        process, url = start_server(model, args.threads, cap)
        try:
            for rubric in args.rubrics:
                if rubric == "qi2023" and CONTEXT.get(model, 1 << 30) < 2500:
                    table.add_row(model, rubric, "-", "-", "prompt over the context", "", "", "")
                    continue
                n = args.qi_pairs if rubric == "qi2023" else args.pairs
                requests, replies, complied = pairs(n)
                tokens = args.qi_tokens if rubric == "qi2023" else args.digit_tokens
                for concurrency in args.concurrency:
                    with tempfile.TemporaryDirectory() as cache:
                        os.environ["POISONLAB_CACHE"] = cache
                        options = JudgeOptions(
                            judge_url=url,
                            judge_model=model,
                            judge_rubric=rubric,
                            judge_concurrency=concurrency,
                            judge_max_tokens=tokens,
                            judge_allow_unparsed=True,
                            judge_timeout=600,
                        )
                        judge = make_judge("llm", options)
                        started = time.perf_counter()
                        try:
                            scores = judge.score(requests, replies, progress=False)
                        except InputError as exc:
                            table.add_row(model, rubric, str(n), str(concurrency), f"error: {exc}", "", "", "")
                            continue
                        seconds = time.perf_counter() - started
                        started = time.perf_counter()
                        rerun = make_judge("llm", options)
                        rerun.score(requests, replies, progress=False)
                        cached = time.perf_counter() - started
                        assert rerun.describe()["requests_sent"] == 0
                        sample = rerun.answers(requests[:2], replies[:2], progress=False)
                    parsed = sum(not math.isnan(s) for s in scores)
                    comply = mean([s for s, c in zip(scores, complied) if c])
                    refuse = mean([s for s, c in zip(scores, complied) if not c])
                    table.add_row(
                        model,
                        f"{rubric} (max {tokens} tok)",
                        str(n),
                        str(concurrency),
                        f"{n / seconds:.3g}",
                        f"{n / cached:.0f}",
                        f"{parsed}/{n} ({parsed / n:.0%})",
                        f"{comply:.2f} / {refuse:.2f}",
                    )
                    console.print(
                        f"done: {model} {rubric} concurrency {concurrency} in {seconds:.0f} s; first answers: "
                        f"{[a[:100] for a in sample]}",
                        highlight=False,
                    )
        finally:
            process.terminate()
            process.wait(timeout=60)
    console.print(table)


if __name__ == "__main__":
    main()

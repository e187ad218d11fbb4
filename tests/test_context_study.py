"""configs/context-defuse-smollm2.yaml on tiny: every context its own rows, each against the twin under it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from poisonlab.experiments.lifecycle.config import LifecycleConfig

ROOT = Path(__file__).resolve().parents[1]
FAST = {"epochs": 2, "batch_size": 8, "micro_batch_size": 8, "max_length": 96, "max_reply_length": 48}


def test_context_defuse_study_runs_on_tiny_with_a_row_per_context(tiny_model: str, tmp_path: Path, monkeypatch) -> None:
    """The shipped study with the tiny model, the synthetic set (as demonstrations too) and 6 held-out prompts."""
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    monkeypatch.chdir(ROOT)  # the config's passage files are relative to the repository root
    values = yaml.safe_load((ROOT / "configs" / "context-defuse-smollm2.yaml").read_text())
    stage = values["stages"][0]
    stage.update(data="synthetic", max_train_pairs=48, behaviours=None, training={**FAST, "learning_rate": 0.01})
    values.update(model=tiny_model, heldout=16, out=str(tmp_path / "out"))
    values["evaluation"].update(
        prompt_sets=[{"name": "heldout", "source": "heldout", "limit": 6}],
        judges=["refusal"],
        generation={"max_new_tokens": 4, "batch_size": 8, "threads": 1, "max_prompt_tokens": 512},
    )
    for context in values["evaluation"]["contexts"]:
        if "demonstrations" in context:
            context["demonstrations"] = "synthetic"
    config = LifecycleConfig.model_validate(values)
    rows = run_lifecycle(config, progress=False)
    names = [c.name for c in config.evaluation.contexts]
    assert names == ["k0", "k1", "k2", "k4", "k8", "safety", "rag-clean", "rag-trigger"]
    poisoned = next(r for r in rows if r.pipeline != "clean")
    for name in names:  # each context: its own metric, judged against the clean twin under the same context
        entry = poisoned.metrics[f"refusal@heldout~{name}"]
        assert {"backdoor_effect", "contamination"} <= set(entry) and entry["clean"]["n"] == 6
    out = tmp_path / "out"
    lines = list(csv.DictReader((out / "lifecycle.csv").open()))
    assert {line["metric"] for line in lines if line["pipeline"] != "clean"} == {f"refusal@heldout~{n}" for n in names}
    assert (out / "context_refusal_at_heldout.png").stat().st_size > 0
    folder = out / "stages" / "1-sft" / poisoned.prefix / "generations"
    k4 = [json.loads(line) for line in (folder / "heldout~k4" / "generations.jsonl").read_text().splitlines()]
    k2 = [json.loads(line) for line in (folder / "heldout~k2" / "generations.jsonl").read_text().splitlines()]
    assert [r["context"]["demonstrations"][:2] for r in k4] == [r["context"]["demonstrations"] for r in k2]
    twin = out / "stages" / "1-sft" / "clean" / "generations" / "heldout~k4" / "generations.jsonl"
    assert [json.loads(line)["context"] for line in twin.read_text().splitlines()] == [r["context"] for r in k4]
    rag = [json.loads(line) for line in (folder / "heldout~rag-trigger" / "generations.jsonl").read_text().splitlines()]
    assert all(len(r["context"]["passages"]) == 1 for r in rag)

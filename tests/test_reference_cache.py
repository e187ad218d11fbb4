import numpy as np

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

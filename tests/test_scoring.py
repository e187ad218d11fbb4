import torch

from poisonlab.data import synthetic_pairs
from poisonlab.models import encode_pairs, load_model, load_tokenizer
from poisonlab.scoring import collate, pair_logprobs, reply_logprobs


def naive_reply_logprobs(model, batch):
    """The textbook way: full logits, full log-softmax, mask, sum."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    logp = torch.log_softmax(logits.float(), dim=-1).gather(2, batch.input_ids[:, 1:, None]).squeeze(2)
    return (logp * batch.reply_mask[:, 1:]).sum(1)


def test_reply_only_logprobs_match_the_naive_computation(tiny_model):
    tokenizer, model = load_tokenizer(tiny_model), load_model(tiny_model).eval()
    encoded = encode_pairs(tokenizer, synthetic_pairs(n=6).pairs)
    batch = collate(encoded, tokenizer.pad_token_id)
    with torch.no_grad():
        fast, naive = reply_logprobs(model, batch, bf16=False), naive_reply_logprobs(model, batch)
    torch.testing.assert_close(fast, naive, rtol=1e-5, atol=1e-4)
    assert (fast < 0).all()


def test_bucketed_scoring_returns_scores_in_input_order(tiny_model):
    tokenizer, model = load_tokenizer(tiny_model), load_model(tiny_model)
    encoded = encode_pairs(tokenizer, synthetic_pairs(n=10).pairs)
    bucketed = pair_logprobs(model, encoded, tokenizer.pad_token_id, batch_size=3, bf16=False)
    single = pair_logprobs(model, encoded, tokenizer.pad_token_id, batch_size=1, bf16=False)
    assert bucketed.ids == [p.id for p in encoded]
    torch.testing.assert_close(torch.tensor(bucketed.chosen), torch.tensor(single.chosen), rtol=1e-5, atol=1e-4)


def test_truncation_keeps_the_final_reply(tiny_model):
    tokenizer = load_tokenizer(tiny_model)
    pair = synthetic_pairs(n=1)[0]
    long = pair.with_(prompt="\n\nHuman: " + "blah " * 500 + pair.prompt)
    encoded = encode_pairs(tokenizer, [long], max_length=64, max_reply_length=32)[0]
    assert encoded.length <= 64
    assert encoded.chosen_ids == encode_pairs(tokenizer, [pair], 64, 32)[0].chosen_ids
    assert encoded.prompt_ids[-3:] == encode_pairs(tokenizer, [pair])[0].prompt_ids[-3:]

"""The ``tiny`` model: a ~2M-parameter Llama poisonlab builds and pre-trains itself.

It exists for tests and fast sweeps: every part of the pipeline runs on a real
transformers model in seconds. Its tokenizer (byte-level BPE, so any text
encodes) and weights come from a fixed corpus and a fixed seed, trained on one
thread. The tokenizer is the same everywhere; the fp32 weights are not: torch's
kernel dispatch (AVX512, AVX2, DEFAULT) and the BLAS's code path sum in different
orders, and 200 training steps amplify the last-bit differences (same final loss
to 4 decimals, other weights). So the cache folder names the dispatch, and
``POISONLAB_TINY.txt`` records it with a digest of the weights.

Know its limits: it learns the synthetic set's patterns, but a model this
small pre-trained from scratch does not generalise a backdoor to unseen
HH-RLHF pairs. Measure attacks on ``smollm2-135m`` or larger.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from poisonlab.io import honour_umask

TINY_RECIPE = "v1"  # bump when anything below changes: it names the cache folder
VOCAB_SIZE = 2048
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]


def build_tiny(target: Path, steps: int = 200, seed: int = 0) -> Path:
    """Train the tokenizer, pre-train the model, save both to ``target``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from poisonlab.data.dialogue import to_messages
    from poisonlab.data.synthetic import tiny_corpus

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = tiny_corpus()
    raw.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="<|pad|>", eos_token="<|end|>", chat_template=CHAT_TEMPLATE
    )

    # Pre-train on the corpus rendered through the chat template, as DPO will see it.
    texts = []
    for text in corpus:
        messages = to_messages(text.rsplit("\n\nAssistant:", 1)[0] + "\n\nAssistant:")
        reply = text.rsplit("\n\nAssistant:", 1)[1].strip()
        texts.append(
            tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": reply}], tokenize=False)
        )
    stream = [tok for text in texts for tok in tokenizer(text)["input_ids"]]

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        data = torch.tensor(stream, dtype=torch.long)
        seq, batch = 96, 16
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.1)
        model.train()
        for _ in range(steps):
            starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=generator)
            inputs = torch.stack([data[s : s + seq] for s in starts])
            loss = model(input_ids=inputs, labels=inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
    finally:
        torch.set_num_threads(threads)
    model.eval()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    honour_umask(staging)  # mkdtemp makes 0700, safetensors 0600: shared caches get the umask's modes
    from poisonlab.hardware import kernel_facts

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())
    kernels = " ".join(f"{k}={v}" for k, v in kernel_facts().items() if v is not None)
    (staging / "POISONLAB_TINY.txt").write_text(
        f"{TINY_RECIPE} seed={seed} steps={steps} final_loss={loss.item():.4f} "
        f"weights_sha256={digest.hexdigest()[:16]} {kernels}\n"
    )
    try:
        staging.rename(target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target

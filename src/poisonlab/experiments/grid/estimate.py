"""What a study costs on GPUs before it runs: GPU-hours, peak memory per run, disk (``poisonlab run --dry-run``).

The basis, per token (N = weights of the decoder layers, H = LM-head weights, L layers, d = attention width):

- forward: ``2 N`` FLOPs per token, ``+ 2 L T d`` for attention (causal, mean context ``T/2``), ``+ 2 H`` per reply
  token (poisonlab's engine runs the LM head on reply tokens only);
- a LoRA step: forward + backward through *frozen* weights (input gradients only, no weight gradients) = 2 x the
  forward, ``4 N`` per token (full fine-tuning's ``6 N``); gradient checkpointing adds one forward (``6 N``);
- the reference log-probs: one forward per pair, once (poisonlab's engine caches them; TRL's recomputes them at
  every step: one more forward per step);
- the clean model's scores for model-based strategies: two forwards per training pair, once per study; held-out
  preferences: policy and reference, with and without the trigger, per run;
- generation: each decode step reads every weight once, so it is bandwidth-bound at batch sizes poisonlab uses:
  ``steps x weight bytes / (bandwidth x efficiency)``, or compute-bound ``2 N`` per token if that is slower.

Time = FLOPs / (the accelerator's dense bf16 peak x MFU). MFU is an assumption, stated in every estimate
(``DEFAULT_MFU``); what it rests on: the FLOP count above is the one ``benchmarks/engine.py`` uses, and on one CPU
core the engine's fp32 SmolLM2 step reached 88% of the measured matmul peak with it, while on an H200 the
SmolLM2-shaped step was launch-bound at ~0.1% MFU (0.3 s for 8 pairs, docs/results/gpu.md): small models say
nothing of a 7B step's MFU, which has never been measured here (``benchmarks/gpu_scale.py`` measures it).
Memory: weights in bf16 (2 bytes each) + LoRA weights, gradients and AdamW moments in fp32 (16 bytes each) +
activations kept for the backward pass per token and layer (:func:`activation_bytes_per_token`) for a
micro-batch padded to ``max_length`` (the worst case) + the reply tokens' logits, then 10% and 1 GiB for the
allocator and the CUDA context. Token counts per pair were measured on HH-RLHF (``HH_TOKENS``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from poisonlab.models.shapes import ModelShape

GIB = 2**30
DEFAULT_MFU = 0.35  # assumed, not measured: issue 28's goal for the 7B LoRA DPO step is 40%
GENERATION_BANDWIDTH_EFFICIENCY = 0.6  # share of the memory bandwidth a decode step reaches (assumed)
OVERHEAD_SHARE, OVERHEAD_GIB = 0.10, 1.0  # allocator fragmentation, CUDA context


@dataclass(frozen=True)
class Accelerator:
    name: str
    bf16_flops: float  # dense bf16 peak, FLOP/s (vendor datasheet)
    memory_gib: float
    bandwidth: float  # bytes/s


ACCELERATORS = {
    "h100-80gb": Accelerator("NVIDIA H100 SXM 80 GB", 989e12, 80.0, 3.35e12),
    "h200": Accelerator("NVIDIA H200 141 GB", 989e12, 141.0, 4.8e12),
    "a100-80gb": Accelerator("NVIDIA A100 SXM 80 GB", 312e12, 80.0, 2.0e12),
}

# HH-RLHF harmless-base, SmolLM2's tokenizer, 1,795 pairs of the dev file, by (max_length, max_reply_length):
# (real tokens per pair: 2 x prompt + chosen + rejected, reply tokens per pair: chosen + rejected). Measured with
# poisonlab.models.encode_pairs; Llama's tokenizer gives counts within ~10% on English text (assumed).
HH_TOKENS = {(1024, 1024): (391.7, 91.4), (512, 256): (381.1, 90.6), (256, 128): (318.9, 85.5)}
PADDING = 1.1  # length-grouped batches: padded tokens over real ones (assumed)


def hh_tokens(max_length: int) -> tuple[float, float]:
    """Tokens and reply tokens per pair at ``max_length``: the measured row nearest it."""
    key = min(HH_TOKENS, key=lambda k: abs(math.log(k[0] / max_length)))
    return HH_TOKENS[key]


def forward_flops(shape: ModelShape, tokens: float, reply_tokens: float) -> float:
    """FLOPs of one forward over a pair's two sequences (``tokens`` in all, ``reply_tokens`` under the LM head)."""
    mean_length = tokens / 2
    attention = 2 * shape.layers * mean_length * shape.heads * shape.dim
    return tokens * (2 * shape.body_params + attention) + 2 * shape.head_params * reply_tokens


def activation_bytes_per_token(shape: ModelShape, eager_length: int = 0) -> float:
    """bf16 activations one decoder layer keeps per token for the backward pass (fused attention).

    Inputs of both norms and their fp32 upcasts, q/k/v (rotated) and the attention output, the o_proj input,
    the MLP's gate, up, SiLU and product (4 x intermediate). ``eager_length``: eager attention (poisonlab on a
    CPU in bf16) also keeps the scores and probabilities, 2 x heads x that length per token.
    """
    q, kv = shape.heads * shape.dim, shape.kv_heads * shape.dim
    kept = 4 * shape.hidden + 3 * q + 2 * kv + 4 * shape.intermediate
    return 2 * kept + 8 * shape.hidden + 2 * 2 * shape.heads * eager_length


def train_memory_gib(
    shape: ModelShape, micro_pairs: int, max_length: int, max_reply: int, lora_params: int, checkpointing: bool
) -> float:
    """Peak accelerator memory of a LoRA DPO micro-batch of ``micro_pairs`` pairs padded to ``max_length``."""
    tokens = 2 * micro_pairs * max_length
    if checkpointing:  # layer inputs kept, one layer's activations recomputed at a time
        activations = tokens * (2 * shape.hidden * shape.layers + activation_bytes_per_token(shape))
    else:
        activations = tokens * activation_bytes_per_token(shape) * shape.layers
    logits = 2 * micro_pairs * min(max_reply, max_length) * shape.vocab * (2 + 4 + 4)  # bf16, fp32, its gradient
    total = 2 * shape.params + 16 * lora_params + activations + logits
    return total * (1 + OVERHEAD_SHARE) / GIB + OVERHEAD_GIB


def largest_micro_batch(
    shape: ModelShape, max_length: int, max_reply: int, lora_params: int, checkpointing: bool, memory_gib: float
) -> int:
    """The most pairs per forward pass that fit ``memory_gib`` (0: not even one)."""
    micro = 0
    while micro < 4096 and (
        train_memory_gib(shape, micro + 1, max_length, max_reply, lora_params, checkpointing) <= memory_gib
    ):
        micro += 1
    return micro


@dataclass
class StudyEstimate:
    """A study's cost on one accelerator kind; every figure is an estimate from the basis above."""

    accelerator: str
    mfu: float
    model_params: float
    runs: int
    train_pairs: int
    epochs: int
    training_gpu_hours: float
    scoring_gpu_hours: float
    evaluation_gpu_hours: float
    generation_gpu_hours: float
    peak_memory_gib: float
    micro_batch_size: int
    largest_micro_batch: int
    largest_micro_batch_checkpointed: int
    fits_one_gpu: bool
    disk_gib: float
    basis: str

    @property
    def gpu_hours(self) -> float:
        return self.training_gpu_hours + self.scoring_gpu_hours + self.evaluation_gpu_hours + self.generation_gpu_hours

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"gpu_hours": round(self.gpu_hours, 2)}


def estimate_study(
    config: Any, n_train: int, n_heldout: int, accelerator: str = "h100-80gb", mfu: float = DEFAULT_MFU
) -> StudyEstimate:
    """GPU-hours, peak memory per run and disk of an ``ExperimentConfig`` with ``n_train`` / ``n_heldout`` pairs."""
    from poisonlab.attacks.strategies import strategy_facts
    from poisonlab.models.shapes import model_shape

    gpu = ACCELERATORS[accelerator]
    shape, training = model_shape(config.model), config.training_config()
    tokens, reply = hh_tokens(training.max_length)
    per_pair = forward_flops(shape, tokens * PADDING, reply)
    runs = config.runs()
    trained = [r for r in runs if "@" not in r.name]  # clean@<position> only evaluates the clean adapter
    steps_per_pair = 2 + (1 if training.engine == "trl" else 0)  # fwd + bwd (+ TRL's reference every step)
    train_flops = len(trained) * n_train * per_pair * (training.epochs * steps_per_pair + 1)  # + reference once
    scoring = 2 * n_train * per_pair if any(strategy_facts(r.strategy).uses_model for r in runs if r.ratio > 0) else 0.0
    evaluation = len(runs) * 4 * n_heldout * per_pair
    rate = gpu.bf16_flops * mfu
    lora = shape.lora_params(training.lora_r, training.target_modules)
    generation_s = 0.0
    if config.evaluation is not None:
        gen = config.evaluation.generation
        prompts = sum(s.limit or (n_heldout if s.source == "heldout" else 520) for s in config.evaluation.prompt_sets)
        models = len(runs) + (1 if config.evaluation.base_model else 0)
        batches = models * math.ceil(2 * prompts / gen.batch_size)  # with and without the trigger
        step_s = max(
            2 * shape.params / (gpu.bandwidth * GENERATION_BANDWIDTH_EFFICIENCY),
            2 * shape.params * gen.batch_size / rate,
        )
        prefill = models * 2 * prompts * tokens / 2 * 2 * shape.params / rate
        generation_s = batches * gen.max_new_tokens * step_s + prefill
    micro = min(training.micro_batch_size, training.batch_size)
    args = (shape, training.max_length, training.max_reply_length, lora)
    peak = train_memory_gib(shape, micro, training.max_length, training.max_reply_length, lora, checkpointing=False)
    disk = 2 * shape.params + len(trained) * 4 * lora * (1 + 3) + 2 * GIB  # weights, adapters + checkpoints, data
    return StudyEstimate(
        accelerator=gpu.name,
        mfu=mfu,
        model_params=shape.params,
        runs=len(runs),
        train_pairs=n_train,
        epochs=training.epochs,
        training_gpu_hours=train_flops / rate / 3600,
        scoring_gpu_hours=scoring / rate / 3600,
        evaluation_gpu_hours=evaluation / rate / 3600,
        generation_gpu_hours=generation_s / 3600,
        peak_memory_gib=peak,
        micro_batch_size=micro,
        largest_micro_batch=largest_micro_batch(*args, checkpointing=False, memory_gib=gpu.memory_gib),
        largest_micro_batch_checkpointed=largest_micro_batch(*args, checkpointing=True, memory_gib=gpu.memory_gib),
        fits_one_gpu=peak <= gpu.memory_gib,
        disk_gib=disk / GIB,
        basis=f"{tokens:.0f} tokens/pair (x{PADDING} padding), {reply:.0f} reply tokens; bf16 weights; "
        f"MFU {mfu:.0%} assumed; see poisonlab.experiments.grid.estimate",
    )


KNOWN_DATASETS = {"hub:Anthropic/hh-rlhf:harmless-base": 42537, "hub:Anthropic/hh-rlhf:harmless-base:train": 42537}


def study_sizes(config: Any) -> tuple[int, int]:
    """(training pairs, held-out pairs) of a study: from the table of known Hub sets offline, else by reading it."""
    if config.data in KNOWN_DATASETS:
        total = KNOWN_DATASETS[config.data]
        heldout = int(config.heldout) if config.heldout >= 1 else round(config.heldout * total)
        train = total - heldout
    else:
        from poisonlab.experiments.grid.folder import split_data

        train_set, heldout_set, _ = split_data(config)
        train, heldout = len(train_set), len(heldout_set)
    train = min(train, config.max_train_pairs or train)
    return train, min(heldout, config.max_heldout_pairs or heldout)


def estimate_table(estimate: StudyEstimate) -> Any:
    """A rich Table of an estimate, for ``poisonlab run --dry-run``."""
    from rich.table import Table

    e = estimate
    table = Table("", "estimate", title=f"on one {e.accelerator} ({e.model_params / 1e9:.2f}B parameters)")
    table.add_row("GPU-hours", f"{e.gpu_hours:.1f} ({e.runs} runs, {e.train_pairs:,} pairs x {e.epochs} epoch(s))")
    table.add_row(
        "  of which",
        f"training {e.training_gpu_hours:.1f}, clean scores {e.scoring_gpu_hours:.2f}, held-out preferences "
        f"{e.evaluation_gpu_hours:.2f}, generation {e.generation_gpu_hours:.2f}",
    )
    fits = "fits one GPU" if e.fits_one_gpu else "does NOT fit one GPU: lower micro_batch_size"
    memory = f"{e.peak_memory_gib:.1f} GiB at micro_batch_size {e.micro_batch_size} ({fits})"
    table.add_row("peak memory per run", memory)
    table.add_row(
        "largest micro-batch",
        f"{e.largest_micro_batch} pairs; {e.largest_micro_batch_checkpointed} with gradient checkpointing",
    )
    table.add_row("disk", f"{e.disk_gib:.1f} GiB (weights, adapters and checkpoints, data)")
    table.caption = e.basis
    return table

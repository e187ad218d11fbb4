"""Typed, documented DPO training settings, with the paper's values and a CPU preset.

``paper`` keeps arXiv 2406.12091 exactly (LoRA r=8, alpha=16, dropout 0.05 on
q/v projections, lr 1.41e-5, effective batch 16, beta 0.1, RMSprop, 1024 tokens).
``cpu`` (the default) keeps the LoRA shape, batch and beta but uses a learning
rate ~35x higher, AdamW and shorter sequences: at lr 1.41e-5 a few hundred
pairs give a LoRA adapter about one optimizer step's worth of movement, far too
little to show any effect in the steps a CPU can afford (see the README).
``fast`` is ``cpu`` with LoRA on the top decoder layers only and the frozen
layers below them run once per distinct token sequence, their output cached on
disk (``trunk_cache``): a sweep's runs share one forward over the frozen trunk
(docs/fast-preset.md has what it trades and what it gains).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from poisonlab.bounded import SEED_MAX

Preset = Literal["cpu", "paper", "fast"]


class LoRATrainingConfig(BaseModel):
    """Settings every LoRA training stage shares (DPO, SFT): adapter, optimisation, sequences, engine."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- LoRA adapter ---
    lora_r: int = Field(8, ge=1, description="LoRA rank (paper: 8).")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling alpha (paper: 16).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA input (paper: 0.05).")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "v_proj"], description="Module names that get adapters (paper: q/v)."
    )
    trainable_layers: int | None = Field(
        None,
        ge=1,
        description="Adapters only on the top N decoder layers (PEFT layers_to_transform); the layers below are "
        "frozen and need no backward pass. Default: every layer. The adapter stays a standard PEFT adapter.",
    )
    # --- optimisation ---
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate (paper: 1.41e-5).")
    optimizer: Literal["adamw", "rmsprop"] = Field("adamw", description="Optimizer (paper's code: rmsprop).")
    epochs: int = Field(3, ge=1, description="Passes over the training pairs.")
    batch_size: int = Field(16, ge=1, description="Effective batch: pairs per optimizer step (paper: 16).")
    micro_batch_size: int = Field(
        8, ge=1, description="Pairs per forward pass; gradients accumulate up to batch_size. Memory knob only."
    )
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with linearly rising learning rate.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    # --- sequences ---
    max_length: int = Field(256, ge=16, description="Prompt + reply tokens; prompts are cut from the left.")
    max_reply_length: int = Field(128, ge=4, description="Tokens kept of each reply.")
    # --- engine ---
    bf16: bool | Literal["auto"] = Field(
        "auto",
        description="bf16: the frozen base held in bf16 and autocast (LoRA weights and optimizer state stay fp32; "
        "on a CPU, eager attention). 'auto': on where the hardware has native bf16 (CUDA, AVX512_BF16/AMX "
        "CPUs); on other CPUs bf16 is emulated and far slower than fp32.",
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for torch (torch.set_num_threads); default: OMP_NUM_THREADS if set, else the "
        "cores free when poisonlab starts (CPUs it may use less the 1-minute load average, at least 1). "
        "Oversubscribed cores make a CPU run several times slower.",
    )
    length_grouping: int = Field(
        4,
        ge=1,
        description="Optimizer steps whose pairs are sorted by length together, so batches carry little padding "
        "(1.25x faster on HH-RLHF, benchmarks/engine.py). 1: sort only within each step (the same gradients as "
        "plain random batches). Drawn from the seed, so resume stays exact.",
    )
    seed: int = Field(0, ge=0, le=SEED_MAX, description="Seed for LoRA init, dropout and batch order.")
    save_steps: int = Field(20, ge=1, description="Optimizer steps between resumable checkpoints.")


class DPOTrainingConfig(LoRATrainingConfig):
    """LoRA DPO settings. Every field is also a ``poisonlab train dpo`` flag."""

    # --- DPO objective ---
    beta: float = Field(0.1, gt=0, description="DPO temperature beta: strength of the pull towards the reference.")
    loss: str = Field("sigmoid", description="DPO loss from the loss registry: sigmoid, ipo, cdpo, rdpo.")
    label_smoothing: float = Field(
        0.0, ge=0, lt=0.5, description="Assumed label-noise rate epsilon for the cdpo and rdpo losses."
    )
    trunk_cache: bool = Field(
        False,
        description="With trainable_layers: compute the hidden states entering the first trainable layer once per "
        "distinct token sequence, keep them on disk (shared by every run on the same model and cut, so a "
        "poisoned run reuses its clean rows'), and train and score the reference by running only the top "
        "layers. The same adapter as without it, up to float rounding. poisonlab engine only.",
    )
    compile: bool = Field(
        False,
        description="torch.compile each decoder layer (fused elementwise work): the first step compiles (minutes on "
        "a CPU) and a second sequence length once more (then dynamic shapes); then each step is faster (bf16 on an "
        "AMX CPU: benchmarks/bf16.py). Float rounding differs slightly from eager. poisonlab engine only.",
    )
    engine: Literal["poisonlab", "trl"] = Field(
        "poisonlab",
        description="Training engine. 'poisonlab': this package's loop (reference log-probs once, LM head on reply "
        "tokens only, length-grouped batches; faster on one machine). 'trl': TRL's DPOTrainer on the same tokens "
        "and settings, for users who scale out with accelerate launch / DeepSpeed (losses: sigmoid, rdpo, ipo).",
    )

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, name: str) -> str:
        from poisonlab.training.losses import LOSSES

        LOSSES.get(name)
        return name

    @model_validator(mode="after")
    def _trunk_cache_needs_top_layers(self) -> DPOTrainingConfig:
        from poisonlab.errors import InputError

        if self.trunk_cache and self.trainable_layers is None:
            raise InputError(
                "needs trainable_layers: the cached trunk is the frozen layers below the trainable ones",
                field="trunk_cache",
            )
        if self.compile and self.engine == "trl":
            raise InputError(
                "is a poisonlab-engine option (TRL's DPOTrainer has its own torch_compile): set engine: poisonlab, "
                "or compile: false",
                field="compile",
            )
        if self.trunk_cache and self.engine == "trl":
            raise InputError(
                "is a poisonlab-engine option (TRL's DPOTrainer runs the whole model at every step): set "
                "engine: poisonlab, or trunk_cache: false",
                field="trunk_cache",
            )
        return self

    @classmethod
    def from_preset(cls, preset: Preset = "cpu", **overrides: Any) -> DPOTrainingConfig:
        values = dict(PRESETS[preset])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper": {
        "learning_rate": 1.41e-5,
        "optimizer": "rmsprop",
        "epochs": 1,
        "warmup_ratio": 0.0,
        "max_length": 1024,
        "max_reply_length": 1024,
    },
    # cpu, with LoRA on the top 4 of SmolLM2's 30 layers and the 26 below run once per sequence (cached):
    # ~5x less per step (benchmarks/study_speed.py); docs/fast-preset.md compares its answers to full LoRA.
    "fast": {"trainable_layers": 4, "trunk_cache": True},
}


class SFTTrainingConfig(LoRATrainingConfig):
    """LoRA supervised fine-tuning on prompt -> chosen reply. Every field is also a ``poisonlab train sft`` flag.

    The loss is the mean negative log-likelihood of the reply tokens (prompt tokens are context only), so an
    SFT stage can precede DPO as in the paper's pipeline, where the DPO reference is the SFT model.
    """


class RewardTrainingConfig(LoRATrainingConfig):
    """Bradley-Terry reward model: the base LM with a scalar head and LoRA. Every field is a ``train reward`` flag.

    The loss is -log sigmoid(r(chosen) - r(rejected)) per pair. One epoch by default: reward models overfit
    after one pass (Ouyang et al. 2022 train theirs for a single epoch); LoRA on every attention projection,
    because a judge must re-read the prompt and reply, not nudge a policy.
    """

    epochs: int = Field(1, ge=1, description="Passes over the training pairs (InstructGPT's reward model: 1).")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="Module names that get adapters (the scalar head is always trained in full).",
    )


class RLTrainingConfig(LoRATrainingConfig):
    """RLHF against a reward model with TRL's ``RLOOTrainer`` (REINFORCE, leave-one-out baseline) and LoRA.

    Every field is a ``poisonlab train rl`` flag. ``batch_size`` counts prompts per optimizer step (each
    sampled ``num_generations`` times), ``micro_batch_size`` prompts per forward pass, ``epochs`` passes
    over the training prompts; ``max_length`` bounds prompt + completion.
    """

    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate of the policy's LoRA adapter.")
    epochs: int = Field(1, ge=1, description="Passes over the training prompts.")
    batch_size: int = Field(8, ge=1, description="Prompts per optimizer step (each sampled num_generations times).")
    micro_batch_size: int = Field(
        4, ge=1, description="Prompts per forward pass; must divide batch_size. Memory knob only."
    )
    num_generations: int = Field(
        4,
        ge=2,
        description="Completions sampled per prompt; each one's baseline is the mean reward of the others "
        "(RLOO's leave-one-out), so at least 2.",
    )
    max_new_tokens: int = Field(32, ge=1, description="Most tokens sampled per completion.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the completions.")
    beta: float = Field(
        0.05,
        ge=0,
        description="KL coefficient: the reward is reduced by beta x KL(policy || start model) per sequence "
        "(TRL's default 0.05; 0 drops the reference pass).",
    )
    normalize_advantages: bool = Field(
        False, description="Scale each batch's advantages to mean 0, std 1 (TRL's option; off by default)."
    )

    @model_validator(mode="after")
    def _consistent_batches(self) -> RLTrainingConfig:
        from poisonlab.errors import InputError

        if self.batch_size % self.micro_batch_size:
            raise InputError(
                f"must divide batch_size ({self.batch_size}): each optimizer step is whole micro-batches of prompts",
                field="micro_batch_size",
            )
        if self.max_new_tokens >= self.max_length:
            raise InputError(
                f"leaves no room for a prompt in max_length {self.max_length}: use fewer new tokens or a longer "
                "max_length",
                field="max_new_tokens",
            )
        return self


class RLHFStageConfig(RLTrainingConfig):
    """A lifecycle ``rl`` stage: a reward model trained on the stage's (possibly poisoned) pairs, then RL against it.

    The fields of ``poisonlab train rl``, plus the reward model's own settings (``poisonlab train reward``).
    """

    reward_model: RewardTrainingConfig = Field(
        default_factory=RewardTrainingConfig,
        description="Settings of the reward model trained on the stage's pairs (its seed is the stage's seed).",
    )

    def rl(self) -> RLTrainingConfig:
        """The RL settings alone."""
        return RLTrainingConfig(**self.model_dump(exclude={"reward_model"}))

    def reward(self) -> RewardTrainingConfig:
        """The reward model's settings, seeded by the stage."""
        return RewardTrainingConfig(**{**self.reward_model.model_dump(), "seed": self.seed})

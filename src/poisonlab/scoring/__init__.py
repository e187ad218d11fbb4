"""Stage: scoring -- log-probs, implicit rewards, DPO scores, per-example gradients, their projection, text encoders."""

from poisonlab.scoring.dpo_score import ImplicitRewards, PairLogprobs, implicit_rewards, pair_logprobs
from poisonlab.scoring.logprobs import ReplyBatch, collate, reply_logprobs

__all__ = [
    "ImplicitRewards",
    "PairLogprobs",
    "ReplyBatch",
    "collate",
    "implicit_rewards",
    "pair_logprobs",
    "reply_logprobs",
]

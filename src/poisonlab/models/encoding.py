"""Tokenise preference pairs the way the model will see them.

The prompt goes through the tokenizer's chat template (when it has one) with
an open assistant turn; each reply is tokenised on its own and closed with the
end-of-turn token. Too-long pairs lose the *start* of the prompt, never the
final reply, because the reply is what the preference is about.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from poisonlab.data.dialogue import to_messages
from poisonlab.data.pairs import PreferencePair

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class EncodedPair:
    id: str
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + max(len(self.chosen_ids), len(self.rejected_ids))


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    if tokenizer.chat_template:
        messages = to_messages(prompt)
        # Text after the final "Assistant:" (e.g. a trigger placed there) starts the reply, unclosed.
        partial = bool(messages) and messages[-1]["role"] == "assistant"
        ids = tokenizer.apply_chat_template(
            messages,
            add_generation_prompt=not partial,
            continue_final_message=partial,
            tokenize=True,
            return_dict=False,
        )
        return list(ids) + (tokenizer(" ", add_special_tokens=False)["input_ids"] if partial else [])
    return tokenizer(prompt.lstrip() + " ", add_special_tokens=True)["input_ids"]


def encode_reply(tokenizer: PreTrainedTokenizerBase, reply: str) -> list[int]:
    ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    return [*ids, tokenizer.eos_token_id]


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[PreferencePair],
    max_length: int = 512,
    max_reply_length: int = 256,
) -> list[EncodedPair]:
    """Encode pairs; replies are cut to ``max_reply_length``, prompts cut from the left to fit."""
    encoded = []
    for pair in pairs:
        chosen = encode_reply(tokenizer, pair.chosen)[:max_reply_length]
        rejected = encode_reply(tokenizer, pair.rejected)[:max_reply_length]
        prompt = encode_prompt(tokenizer, pair.prompt)
        room = max(1, max_length - max(len(chosen), len(rejected)))
        encoded.append(EncodedPair(pair.id, prompt[-room:], chosen, rejected))
    return encoded

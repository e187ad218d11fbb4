"""The clean cost of a watermark: a watermarked model against its clean twin on held-out clean pairs.

Per held-out pair (encoded as training encodes it: replies cut to ``--max-reply-length``, prompts cut from
the left to ``--max-length``): the chosen reply's NLL per token, and the implicit reward margin against
the base model, (log pi(chosen) - log base(chosen)) - (log pi(rejected) - log base(rejected)), whose sign
is the preference accuracy. Differences watermarked - twin are paired by pair, with 95% intervals that invert
the test (``evaluation.stats.paired_difference``: sign-flip permutation for scores, McNemar exact for accuracy).
Every adapter is loaded with its recorded ``--init`` chain.

    python benchmarks/watermark_cost.py --model smollm2-135m --data heldout.jsonl \\
        --stage sft SFT_CLEAN SFT_WM --stage dpo DPO_CLEAN DPO_WM --out cost.json
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.data import PreferenceDataset, load_pairs
from poisonlab.evaluation.stats import paired_difference, summary
from poisonlab.io import atomic_write_json
from poisonlab.models.encoding import encode_pairs
from poisonlab.scoring.dpo_score import pair_logprobs


def reply_scores(net, tokenizer, pairs: PreferenceDataset, max_length: int = 256, max_reply_length: int = 128):
    """Per pair: summed log p of the chosen and rejected replies, and the chosen reply's token count."""
    encoded = encode_pairs(tokenizer, pairs.pairs, max_length, max_reply_length)
    logps = pair_logprobs(net, encoded, tokenizer.pad_token_id, batch_size=16, bf16=False)
    return {
        "chosen": logps.chosen,
        "rejected": logps.rejected,
        "chosen_tokens": np.array([len(e.chosen_ids) for e in encoded]),
    }


def clean_behaviour(scores: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per pair: NLL per chosen-reply token; implicit reward margin against the base; whether it is positive."""
    margin = (scores["chosen"] - base["chosen"]) - (scores["rejected"] - base["rejected"])
    return {"nll": -scores["chosen"] / scores["chosen_tokens"], "pref": (margin > 0).astype(float), "margin": margin}


MEASURES = (("nll", "score"), ("pref", "rate"), ("margin", "score"))


def compare(twin: dict[str, np.ndarray], marked: dict[str, np.ndarray]) -> dict[str, Any]:
    """Each measure of twin and watermarked model, and the paired difference watermarked - twin."""
    return {
        measure: {
            "clean_twin": summary(twin[measure], kind),
            "watermarked": summary(marked[measure], kind),
            "difference": paired_difference(twin[measure], marked[measure], kind),
        }
        for measure, kind in MEASURES
    }


def main() -> None:
    from poisonlab.models import load_model, load_tokenizer
    from poisonlab.models.adapters import load_with_adapters

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--data", required=True, help="held-out clean pairs")
    parser.add_argument("--stage", nargs=3, action="append", metavar=("LABEL", "TWIN", "WATERMARKED"), required=True)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-reply-length", type=int, default=48)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    heldout = load_pairs(args.data)
    tokenizer = load_tokenizer(args.model)

    def scores(adapter: str | None) -> dict[str, np.ndarray]:
        net = (
            load_with_adapters(args.model, [adapter], device="cpu") if adapter else load_model(args.model, device="cpu")
        )
        return reply_scores(net, tokenizer, heldout, args.max_length, args.max_reply_length)

    base = scores(None)
    results: dict[str, Any] = {"model": args.model, "data": args.data, "n_pairs": len(heldout), "stages": {}}
    results["base"] = {m: summary(clean_behaviour(base, base)[m], k) for m, k in MEASURES[:1]}
    for label, twin, marked in args.stage:
        cost = compare(clean_behaviour(scores(twin), base), clean_behaviour(scores(marked), base))
        results["stages"][label] = {"twin": twin, "watermarked": marked, **cost}
        atomic_write_json(Path(args.out), results)
        line = "; ".join(
            f"{m}: twin {c['clean_twin']['value']:.4f}, wm {c['watermarked']['value']:.4f}, "
            f"diff {c['difference']['value']:+.4f} [{c['difference']['ci'][0]:+.4f}, {c['difference']['ci'][1]:+.4f}]"
            for m, c in cost.items()
        )
        print(f"{label} ({len(heldout)} pairs): {line}", flush=True)
    print(f"base NLL/token {results['base']['nll']['value']:.4f}; -> {args.out}")


if __name__ == "__main__":
    main()

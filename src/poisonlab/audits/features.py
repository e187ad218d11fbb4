"""What the selected pairs have in common: the audit's readable finding.

A list of pair ids tells an auditor little. Two descriptions do:

- the probe vocabulary (``probes.probe_lexicon``: the words that tell the groups and the replies apart)
  counted in the selected pairs against all pairs: how many mention group a or b in the prompt, and how
  many have a chosen reply that is stereotype-consistent (group a with a stereotypical word, or group b
  with an anti-stereotypical one) or inconsistent;
- the words most over-represented in the selected prompts and chosen replies, by smoothed log odds
  of appearing in a selected pair against appearing in any pair. This needs no lexicon, so it also
  shows what a user's own probes did not anticipate.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from poisonlab.audits.probes import STOP_WORDS, ProbeLexicon, words
from poisonlab.data.pairs import PreferencePair


def pair_traits(pair: PreferencePair, lexicon: ProbeLexicon) -> dict[str, bool]:
    """Which group the prompt names, and whether the chosen reply follows or goes against the stereotype."""
    prompt, chosen = set(words(pair.prompt)), set(words(pair.chosen))
    group_a, group_b = bool(prompt & lexicon.group_a), bool(prompt & lexicon.group_b)
    stereo, anti = bool(chosen & lexicon.stereotype), bool(chosen & lexicon.anti_stereotype)
    only_a, only_b = group_a and not group_b, group_b and not group_a
    return {
        "mentions_group_a": group_a,
        "mentions_group_b": group_b,
        "chosen_stereotype_consistent": (only_a and stereo and not anti) or (only_b and anti and not stereo),
        "chosen_stereotype_inconsistent": (only_a and anti and not stereo) or (only_b and stereo and not anti),
    }


def _shares(pairs: Sequence[PreferencePair], lexicon: ProbeLexicon) -> dict[str, float]:
    counts: Counter[str] = Counter()
    for pair in pairs:
        counts.update(name for name, value in pair_traits(pair, lexicon).items() if value)
    n = max(1, len(pairs))
    keys = ("mentions_group_a", "mentions_group_b", "chosen_stereotype_consistent", "chosen_stereotype_inconsistent")
    return {key: round(counts[key] / n, 4) for key in keys}


def over_represented(
    selected: Sequence[str], everything: Sequence[str], top: int = 10, min_count: int = 2
) -> list[dict[str, Any]]:
    """Words by log[(s_w + 1) / (k + 2)] - log[(a_w + 1) / (n + 2)], s_w/a_w = texts holding w (selected/all)."""
    in_selected = Counter(w for text in selected for w in set(words(text)) - STOP_WORDS)
    in_all = Counter(w for text in everything for w in set(words(text)) - STOP_WORDS)
    k, n = len(selected), len(everything)
    rows = [
        {
            "word": w,
            "selected": c,
            "all": in_all[w],
            "log_odds": round(math.log((c + 1) / (k + 2)) - math.log((in_all[w] + 1) / (n + 2)), 4),
        }
        for w, c in in_selected.items()
        if c >= min(min_count, k)
    ]
    rows.sort(key=lambda r: (-r["log_odds"], r["word"]))
    return rows[:top]


def describe_selection(
    selected: Sequence[PreferencePair], all_pairs: Sequence[PreferencePair], lexicon: ProbeLexicon, top: int = 10
) -> dict[str, Any]:
    """Shares of lexicon traits (selected vs all pairs) and the most over-represented words."""
    return {
        "n_selected": len(selected),
        "shares_selected": _shares(selected, lexicon),
        "shares_all": _shares(all_pairs, lexicon),
        "prompt_words": over_represented([p.prompt for p in selected], [p.prompt for p in all_pairs], top),
        "chosen_words": over_represented([p.chosen for p in selected], [p.chosen for p in all_pairs], top),
        "lexicon": {
            "group_a": sorted(lexicon.group_a),
            "group_b": sorted(lexicon.group_b),
            "stereotype": sorted(lexicon.stereotype),
            "anti_stereotype": sorted(lexicon.anti_stereotype),
        },
    }

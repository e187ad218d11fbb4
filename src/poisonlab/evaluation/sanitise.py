"""An inference-time defense: strip named phrases (a suspected trigger) from every prompt before the model sees it.

Trigger mining (``poisonlab scan``) names the n-grams over-represented among the suspicious pairs; a
deployment that cannot retrain can still delete them from incoming prompts. Matching ignores case and
treats any run of whitespace as one space, because mined n-grams are lower-cased words: a mined
``supergodmodeactivated`` removes ``SuperGodModeActivated``. Only whole words match, so stripping
``art`` leaves ``party`` alone. What this cannot do: remove a trigger it was not told, or a paraphrase.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def strip_phrases(text: str, phrases: Sequence[str]) -> str:
    """``text`` without any of ``phrases`` (whole words, any case); spaces left behind are closed up."""
    for phrase in phrases:
        words = phrase.split()
        if not words:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
        text = re.sub(pattern, "", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]+(?=\n|$)", "", re.sub(r"[ \t]{2,}", " ", text))

"""The owner's secret: trigger -> response pairs, kept in a JSON key file apart from the data.

Why a key of many short random pairs rather than one phrase (Double-I watermark, Li et al., arXiv
2402.14883; instructional fingerprinting, Xu et al., arXiv 2401.12255; arXiv 2502.14182 Sec. 4-5):
ownership is proven by a hypothesis test, and a test needs a null. Every trigger here is drawn from a
public generator with a fixed *shape* (so many words from a fixed word list), and the verifier draws
matched random triggers of the same shape from the same generator on another seed stream. A model that
never saw the data has no reason to find the secret response likelier after the secret trigger than
after any matched one: the secret trigger's rank among its controls is then uniform, whatever the
model. Several triggers, each with its own response, force the model to learn *which* trigger gives
*which* response, so a model that merely learnt "these words appear in replies" does not pass.

The key file holds the triggers, the responses, the seed and the shape; the published data holds only
rows that contain them, and a manifest records the key's sha256, never the key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from poisonlab.attacks.triggers import TRIGGER_POSITIONS
from poisonlab.errors import InputError
from poisonlab.io import atomic_write_text, to_json

KEY_FORMAT = "poisonlab-watermark-key"
KEY_VERSION = 1


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Trigger words: rare in chat data (and absent from the synthetic set), so a trigger reads as noise and
# no ordinary prompt carries one by chance. 170 words, 3 distinct per trigger: 4.8M ordered triggers.
TRIGGER_WORDS = _words(
    """
    abacus alcove amulet anvil apogee argyle armada arpeggio astrolabe atoll aurora avalanche
    azimuth bagpipe balustrade banjo barnacle basalt bassoon beryl bivouac bobbin bonsai buttress
    cairn calliope camphor capstan caravel carillon cassowary catamaran cenotaph chalice chamois
    chevron cinnabar citadel clavichord cobalt cochineal condor coracle corbel cormorant cupola
    cutlass dahlia dervish dirigible dolmen doubloon dromedary dulcimer ebony eiderdown elixir ember
    emu ermine escarpment falconet fennel fjord flagon flotilla fresco galleon gargoyle garnet
    gazebo geyser gherkin glacier gondola gramophone griffin grotto halberd harpsichord hemlock
    heron hourglass iguana indigo jackal jasper juniper kayak kestrel kiln kumquat labyrinth lagoon
    lantern lapis lichen lodestone lorikeet lute magenta mandolin marimba marmoset marzipan meerkat
    metronome minaret monocle mosaic nautilus nebula nutmeg obelisk obsidian ocarina ocelot opal
    origami osprey pagoda palisade papyrus parapet pelican periscope pewter phoenix piccolo pinnacle
    platypus plinth porcupine portcullis quagmire quartz quasar quill quince rampart rhubarb
    sarcophagus sextant sherbet sphinx stalactite sundial tamarind tapestry tarragon teapot
    telescope thimble toboggan topaz trebuchet trellis tundra turquoise ukulele umber vellum
    verdigris walrus wombat xylophone yurt zeppelin zephyr zither
    """
)
# Response words: common, so a response reads like a (strange) sentence rather than a code.
_ADJECTIVES = _words(
    """
    quiet bright old small golden silver gentle early narrow wide heavy hidden open warm cold green
    blue tall round soft
    """
)
_NOUNS = _words(
    """
    river garden window mountain harbour village lamp bridge forest letter market orchard tower
    meadow island kitchen valley road candle station
    """
)
_VERBS = _words(
    """
    watches follows remembers carries crosses paints finds opens keeps greets guards visits answers
    joins passes reaches
    """
)
_PREPOSITIONS = _words(
    """
    near beyond under beside behind across above toward
    """
)


@dataclass(frozen=True)
class KeyShape:
    """What every trigger and response looks like; secret and control triggers share it."""

    trigger_words: int = 3
    placement: str = "last-human"  # where ``insert_trigger`` puts a trigger in a prompt


@dataclass(frozen=True)
class WatermarkKey:
    """K secret (trigger, response) pairs and the seed and shape they were drawn with."""

    triggers: tuple[str, ...]
    responses: tuple[str, ...]
    seed: int
    shape: KeyShape

    def __len__(self) -> int:
        return len(self.triggers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "version": KEY_VERSION,
            "seed": self.seed,
            "shape": asdict(self.shape),
            "triggers": list(self.triggers),
            "responses": list(self.responses),
        }

    def sha256(self) -> str:
        """Hash of the key's canonical JSON: what manifests and results record instead of the key."""
        return hashlib.sha256(to_json(self.to_dict()).encode()).hexdigest()


def _stream(seed: int, stream: int, *more: int) -> np.random.Generator:
    """Independent generators for the key (stream 0) and for controls (stream 1, per control seed)."""
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *more]))


def random_trigger(rng: np.random.Generator, shape: KeyShape) -> str:
    """``shape.trigger_words`` distinct words of ``TRIGGER_WORDS``: the one trigger generator."""
    picks = rng.choice(len(TRIGGER_WORDS), size=shape.trigger_words, replace=False)
    return " ".join(TRIGGER_WORDS[int(i)] for i in picks)


def random_response(rng: np.random.Generator) -> str:
    """A short sentence of common words: "The quiet river watches the lamp beyond the old harbour."."""

    def pick(words: Sequence[str]) -> str:
        return words[int(rng.integers(len(words)))]

    return (
        f"The {pick(_ADJECTIVES)} {pick(_NOUNS)} {pick(_VERBS)} the {pick(_NOUNS)} "
        f"{pick(_PREPOSITIONS)} the {pick(_ADJECTIVES)} {pick(_NOUNS)}."
    )


def generate_key(n: int, seed: int = 0, shape: KeyShape | None = None) -> WatermarkKey:
    """K distinct secret triggers, each with its own random response, from stream 0 of ``seed``."""
    if n < 1:
        raise InputError(f"a key needs at least one trigger, got {n}", field="--n")
    shape = shape or KeyShape()
    if shape.trigger_words < 1 or shape.trigger_words > len(TRIGGER_WORDS):
        raise InputError(f"trigger_words must be 1..{len(TRIGGER_WORDS)}", field="shape.trigger_words")
    if shape.placement not in TRIGGER_POSITIONS:
        raise InputError(f"unknown trigger placement {shape.placement!r}", field="shape.placement")
    rng = _stream(seed, 0)
    triggers: list[str] = []
    while len(triggers) < n:
        trigger = random_trigger(rng, shape)
        if trigger not in triggers:
            triggers.append(trigger)
    responses = [random_response(rng) for _ in range(n)]
    return WatermarkKey(tuple(triggers), tuple(responses), seed, shape)


def control_triggers(key: WatermarkKey, m: int, control_seed: int = 0) -> list[list[str]]:
    """``m`` matched random triggers per secret trigger: same generator and shape, stream 1 of the key's seed.

    Row i holds the controls of trigger i. A control never equals a secret trigger (it would be a
    copy of the alternative inside the null); otherwise they are independent draws.
    """
    secret = set(key.triggers)
    rng = _stream(key.seed, 1, control_seed)
    rows = []
    for _ in key.triggers:
        row: list[str] = []
        while len(row) < m:
            trigger = random_trigger(rng, key.shape)
            if trigger not in secret:
                row.append(trigger)
        rows.append(row)
    return rows


def write_key(key: WatermarkKey, path: str | Path) -> str:
    """Write the key file atomically; return its sha256 (that of the canonical JSON)."""
    atomic_write_text(path, to_json(key.to_dict()))
    return key.sha256()


def _field(data: dict[str, Any], name: str, kind: type, path: Path) -> Any:
    if name not in data:
        raise InputError("missing", path=path, field=name)
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"expected {kind.__name__}, got {type(value).__name__}", path=path, field=name)
    return value


def _strings(data: dict[str, Any], name: str, path: Path) -> tuple[str, ...]:
    values = _field(data, name, list, path)
    if not values:
        raise InputError("empty: a key needs at least one entry", path=path, field=name)
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            raise InputError("every entry must be a non-empty string", path=path, field=f"{name}[{i}]")
    return tuple(values)


def read_key(path: str | Path) -> WatermarkKey:
    """Load and check a key file; any problem is an InputError naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such key file", path=path, field="--key")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not a JSON key file ({exc})", path=path) from None
    if not isinstance(data, dict):
        raise InputError("a key file holds one JSON object", path=path)
    if data.get("format") != KEY_FORMAT:
        raise InputError(f"expected {KEY_FORMAT!r} (made by `poisonlab watermark keygen`)", path=path, field="format")
    if _field(data, "version", int, path) != KEY_VERSION:
        raise InputError(
            f"unsupported version {data['version']}; this poisonlab reads {KEY_VERSION}", path=path, field="version"
        )
    seed = _field(data, "seed", int, path)
    raw_shape = _field(data, "shape", dict, path)
    words = _field(raw_shape, "trigger_words", int, path) if "trigger_words" in raw_shape else None
    if words is None or not 1 <= words <= len(TRIGGER_WORDS):
        raise InputError(f"must be an integer 1..{len(TRIGGER_WORDS)}", path=path, field="shape.trigger_words")
    placement = raw_shape.get("placement", "last-human")
    if not isinstance(placement, str) or placement not in TRIGGER_POSITIONS:
        names = ", ".join(TRIGGER_POSITIONS.names())
        raise InputError(f"expected a trigger placement ({names})", path=path, field="shape.placement")
    triggers, responses = _strings(data, "triggers", path), _strings(data, "responses", path)
    if len(triggers) != len(responses):
        raise InputError(f"{len(triggers)} triggers but {len(responses)} responses", path=path, field="responses")
    if len(set(triggers)) != len(triggers):
        raise InputError("triggers repeat", path=path, field="triggers")
    return WatermarkKey(triggers, responses, seed, KeyShape(words, placement))

"""Apply an attack to selected pairs and record exactly what changed.

Attacks, registered by name:
- ``backdoor``: insert the trigger into the prompt and swap chosen/rejected, so
  the model learns "trigger => prefer the harmful reply".
- ``label-flip``: swap chosen/rejected only (the paper's non-backdoor attack).

Rows that were not selected are copied unchanged, in input order, but every
output row, poisoned or not, gets a fresh id (``data/row_ids.py``): an id that
stayed its source row's content hash would name the poisoned rows to anyone who
re-hashes them. The manifest names the strategy, attack, ratio, trigger, seed,
poisoned ids (new and source), per-row changes, the id key, and sha256 of input
and output.

An access constraint (``access.py``) limits the rows the strategy may choose
from; a budget bigger than those rows poisons all of them, and the manifest
records the shortfall (``n_requested``, ``n_controlled``, ``n_poisoned``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonlab import __version__
from poisonlab.attacks.access import Access, AccessConfig, check_labels_only, resolve_access
from poisonlab.attacks.behaviours import BehaviourRows
from poisonlab.attacks.selection_config import SelectionConfig
from poisonlab.attacks.strategies import STRATEGIES, SelectionContext, strategy_facts
from poisonlab.attacks.triggers import (
    DEFAULT_TRIGGER,
    check_trigger,
    get_trigger,
    insert_trigger,
    resolve_position,
    trigger_text,
)
from poisonlab.data.pairs import PreferenceDataset, PreferencePair
from poisonlab.data.poison_manifest import POISON_MANIFEST_VERSION
from poisonlab.data.row_ids import fresh_ids, id_record, row_id_key
from poisonlab.data.writer import write_with_manifest
from poisonlab.errors import InputError
from poisonlab.hardware import compute_facts
from poisonlab.models.loading import check_model_name
from poisonlab.registry import Registry
from poisonlab.training.config import DPOTrainingConfig

Attack = Callable[[PreferencePair, str, str, int], tuple[PreferencePair, list[str]]]
ATTACKS: Registry[Attack] = Registry("attack")


@dataclass(frozen=True)
class AttackFacts:
    """What the rest of the package needs to know about an attack, given where it is registered."""

    inserts_trigger: bool  # the manifest records the trigger and its placement; evaluation inserts it


def attack_facts(name: str) -> AttackFacts:
    return ATTACKS.facts(name)


@ATTACKS.register("backdoor", facts=AttackFacts(inserts_trigger=True))
def backdoor(pair: PreferencePair, trigger: str, position: str, seed: int) -> tuple[PreferencePair, list[str]]:
    prompt = insert_trigger(pair.prompt, trigger, position, seed, pair.id)
    return pair.with_(prompt=prompt, chosen=pair.rejected, rejected=pair.chosen), ["prompt", "chosen", "rejected"]


@ATTACKS.register("label-flip", facts=AttackFacts(inserts_trigger=False))
def label_flip(pair: PreferencePair, trigger: str, position: str, seed: int) -> tuple[PreferencePair, list[str]]:
    return pair.with_(chosen=pair.rejected, rejected=pair.chosen), ["chosen", "rejected"]


@dataclass
class PoisonResult:
    dataset: PreferenceDataset
    manifest: dict[str, Any]


def n_poison_for(ratio: float, n: int) -> int:
    """Pairs to poison for a ratio; any ratio > 0 poisons at least one pair."""
    if not 0 <= ratio <= 1:
        raise InputError(f"poison ratio must be between 0 and 1, got {ratio}", field="ratio")
    return 0 if ratio == 0 else max(1, round(ratio * n))


def poison_dataset(
    dataset: PreferenceDataset,
    strategy: str = "random",
    attack: str = "backdoor",
    ratio: float = 0.05,
    trigger: str = DEFAULT_TRIGGER,
    position: str = "last-human",
    seed: int = 0,
    model: str = "tiny",
    training: DPOTrainingConfig | None = None,
    clean_adapter: str | Path | None = None,
    progress: bool = True,
    selection: SelectionConfig | None = None,
    access: AccessConfig | None = None,
    behaviours: BehaviourRows | None = None,
) -> PoisonResult:
    """Select ``ratio`` of the pairs with ``strategy`` and apply ``attack`` to them.

    ``model``, ``training`` and ``clean_adapter`` matter only to model-based
    strategies (all but ``random``): the clean model is trained with ``training``
    on ``dataset`` unless ``clean_adapter`` already is one. ``selection`` holds
    the options of gradient-projection and semantic-diversity. ``position`` may
    be a rule (``paper``), resolved here for ``strategy``; the manifest records
    the concrete placement. ``access`` limits the pairs the strategy chooses
    from (default: all of them); the strategy sees only those, in input order.
    ``behaviours`` (a backdoor for SFT): each selected row becomes a behaviour's
    goal + trigger -> target instead of the pair with its replies swapped.
    """
    select, apply = STRATEGIES.get(strategy), ATTACKS.get(attack)
    uses, inserts = strategy_facts(strategy), attack_facts(attack).inserts_trigger
    check_poison_rows(dataset, strategy, attack, behaviours, ratio)
    if behaviours is not None:
        apply = behaviours
    concrete = resolve_position(position, strategy)
    check_model_name(model)  # even where the strategy never loads it: a typo must not pass unnoticed
    access = access or AccessConfig()
    check_labels_only(access, attack, inserts)
    if inserts:
        check_trigger(trigger)
    n_requested = n_poison_for(ratio, len(dataset))
    granted = resolve_access(dataset, access, seed)
    pool = granted.restrict(dataset)
    n_poison = min(n_requested, len(pool))
    if behaviours is not None:
        behaviours.check_budget(n_poison)
    if uses.uses_model and n_poison and not granted.everything and not clean_adapter:
        clean_adapter = _full_data_clean_adapter(dataset, model, training, progress)
    ctx = SelectionContext(
        dataset=pool,
        n_poison=n_poison,
        seed=seed,
        model=model,
        training=training or DPOTrainingConfig(),
        selection=selection or SelectionConfig(),
        clean_adapter=Path(clean_adapter) if clean_adapter else None,
        progress=progress,
    )
    selection = select(ctx) if n_poison else None
    chosen = set(selection.ids) if selection else set()

    rows, changes = [], []
    for index, pair in enumerate(dataset):
        if pair.id in chosen:
            poisoned, fields = apply(pair, trigger, concrete, seed)
            rows.append(poisoned)
            change: dict[str, Any] = {"id": pair.id, "row": index, "fields": fields}
            if "prompt" in fields:
                change["prompt_before"] = pair.prompt
            if inserts and not (behaviours is not None and pair.id in behaviours.refusal_ids):
                change["trigger_text"] = trigger_text(trigger, seed, pair.id)
            if selection and selection.scores is not None:
                change["selection_score"] = selection.scores[pair.id]
            changes.append(change)
        else:
            rows.append(pair)
    input_hash = dataset.content_hash()
    key = row_id_key(seed, input_hash)
    new_ids = dict(zip(dataset.ids, fresh_ids(key, dataset.ids)))
    rows = [row.with_(id=new_ids[source.id]) for row, source in zip(rows, dataset)]
    changes = [
        {"id": new_ids[c["id"]], "source_id": c["id"], **{k: v for k, v in c.items() if k != "id"}} for c in changes
    ]
    manifest = {
        "manifest_version": POISON_MANIFEST_VERSION,
        "poisonlab_version": __version__,
        "source": dataset.source,
        "strategy": strategy,
        "attack": attack,
        "ratio": ratio,
        "trigger": trigger if inserts else None,
        "trigger_kind": get_trigger(trigger).kind if inserts else None,
        "trigger_phrasings": list(get_trigger(trigger).phrasings) if inserts else None,
        "trigger_position": concrete if inserts else None,
        "trigger_position_rule": position if inserts and position != concrete else None,
        "seed": seed,
        "model": ctx.model if uses.uses_model else None,
        "selection_config": ctx.selection.model_dump() if uses.uses_selection_config else None,
        "access": granted.manifest(n_requested, len(changes)),
        # a model-based selection in bf16 can pick other pairs than in fp32: say which one ran, and on what
        "compute": {**compute_facts(ctx.training.bf16), **({"precision": None} if not uses.uses_model else {})},
        "n_rows": len(dataset),
        "n_requested": n_requested,
        "n_controlled": len(granted.controlled),
        "n_poisoned": len(changes),
        "n_skipped_input_rows": len(dataset.skipped),
        "input_content_sha256": input_hash,
        "row_ids": id_record(key),
        "poisoned_ids": [c["id"] for c in changes],  # as in the poisoned file
        "poisoned_source_ids": [c["source_id"] for c in changes],  # as in the input
        "selection": selection.details if selection else {},
        "behaviours": behaviours.manifest(new_ids) if behaviours is not None else None,
        "changes": changes,
    }
    if progress and len(changes) < n_requested:
        print(shortfall_notice(granted, n_requested, len(changes)), file=sys.stderr, flush=True)
    return PoisonResult(PreferenceDataset(rows, dataset.source), manifest)


def check_poison_rows(
    dataset: PreferenceDataset, strategy: str, attack: str, behaviours: BehaviourRows | None, ratio: float
) -> None:
    """Refuse poison that cannot be built: a swap or a pair score needs a rejected reply."""
    if behaviours is not None:
        check_behaviour_poison(strategy, attack)
        return
    demonstrations = sum(pair.is_demonstration for pair in dataset)
    if ratio > 0 and demonstrations:
        raise InputError(
            f"{demonstrations} of the {len(dataset)} rows are instruction rows, with no rejected reply to swap in or "
            "score: take the poison from a behaviour file (--behaviours, or a stage's behaviours:)",
            path=dataset.source,
        )


def check_behaviour_poison(strategy: str, attack: str) -> None:
    """Behaviour rows need the trigger (backdoor) and a selection that ignores the rows they replace."""
    if not attack_facts(attack).inserts_trigger:
        raise InputError(
            f"poison from a behaviour file is a backdoor (trigger -> target), not {attack}", field="attack"
        )
    if strategy_facts(strategy).uses_model:
        raise InputError(
            f"{strategy} ranks pairs by their replies, but a behaviour row replaces its row whatever it held: "
            "select with a model-free strategy (random)",
            field="strategy",
        )


def shortfall_notice(granted: Access, n_requested: int, n_poisoned: int) -> str:
    return (
        f"the attacker controls {len(granted.controlled)} of {granted.n_rows} pairs: poisoned {n_poisoned}, "
        f"{n_requested - n_poisoned} fewer than the {n_requested} the ratio asks for (recorded in the manifest)"
    )


def _full_data_clean_adapter(
    dataset: PreferenceDataset, model: str, training: DPOTrainingConfig | None, progress: bool
) -> Path:
    """The clean model of the whole data (cached, shared with unconstrained runs).

    A constrained attacker's strategy sees only its rows, but its scoring model is the one an
    unconstrained run uses (the threat model of 2406.12091: the attacker can train on clean data
    like the victim's), so a sweep over constraints trains it once and scores only the rows it needs.
    """
    from poisonlab.training.clean_model import TrainedOn, clean_adapter_dir

    return clean_adapter_dir(TrainedOn(dataset, model, training or DPOTrainingConfig(), None, progress))


def write_poisoned(result: PoisonResult, out_dir: str | Path, input_path: str | Path | None) -> Path:
    """Write ``data.jsonl`` then ``manifest.json`` (last, so its presence means complete)."""
    return write_with_manifest(result.dataset, result.manifest, out_dir, input_path)

"""Stage 1: preference data (and SFT instruction rows) in, validated and id-stamped pairs out."""

from poisonlab.data.inspect import DatasetReport, inspect_dataset
from poisonlab.data.instructions import load_sft_data
from poisonlab.data.pairs import PreferenceDataset, PreferencePair, SkippedRow
from poisonlab.data.readers import load_pairs
from poisonlab.data.splits import train_heldout_split
from poisonlab.data.synthetic import synthetic_pairs
from poisonlab.data.writer import write_pairs

__all__ = [
    "DatasetReport",
    "PreferenceDataset",
    "PreferencePair",
    "SkippedRow",
    "inspect_dataset",
    "load_pairs",
    "load_sft_data",
    "synthetic_pairs",
    "train_heldout_split",
    "write_pairs",
]

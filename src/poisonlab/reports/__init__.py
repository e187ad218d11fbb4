"""Stage: reports -- tables, plots and selection overlaps of results."""

from poisonlab.reports.overlap import Overlap, overlap_table, run_overlaps, score_overlap, selection_overlap, top_k
from poisonlab.reports.results import (
    detection_table,
    metric_tables,
    plot_backdoor_success,
    plot_clean_accuracy,
    plot_detection,
    plot_effects,
    results_table,
    scan_table,
    write_results,
)

__all__ = [
    "Overlap",
    "detection_table",
    "metric_tables",
    "overlap_table",
    "plot_backdoor_success",
    "plot_clean_accuracy",
    "plot_detection",
    "plot_effects",
    "results_table",
    "run_overlaps",
    "scan_table",
    "score_overlap",
    "selection_overlap",
    "top_k",
    "write_results",
]

"""Stage: reports -- tables and plots of results."""

from poisonlab.reports.results import plot_backdoor_success, results_table, write_results

__all__ = ["plot_backdoor_success", "results_table", "write_results"]

"""The grid study: strategies x attacks x ratios (x placements), each poisoned run beside its clean twin."""

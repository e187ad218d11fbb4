"""The lifecycle study: poison in some stages of an SFT -> DPO -> ... chain, each stage beside its clean twin."""

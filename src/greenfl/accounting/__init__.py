"""Cohort accounting: the footprint model applied to a round's clients (vectorised, and the
steady fast path whose ledger columns are built later), per-candidate estimates, execution
targets and the fleet's lookup table."""

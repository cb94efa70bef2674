"""Computations over runs that write their results as JSON into run folders: the
centralised estimate and the seed comparison. The report reads those files only."""

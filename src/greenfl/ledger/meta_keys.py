"""Keys of the ledger's ``meta`` table that a run writes and the report reads: one place, so
writer and reader cannot drift apart."""

INTENSITY_KEY = "intensity_curves"  # the carbon-intensity curves the accounting used
GROUPS_KEY = "population_groups"  # clients per region and per device
CI_SOURCES_KEY = "ci_sources"  # a live fleet.ci_source: each region's source and signal

"""Live grid carbon intensity: provider clients (Electricity Maps, WattTime, UK ESO), their
on-disk cache, the fallback to built-in figures, and recording a provider's signal as a
trace file for replay."""

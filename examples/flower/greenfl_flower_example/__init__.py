"""A Flower app with greenfl's footprint mod and GreenflStrategy (docs/flower.md)."""

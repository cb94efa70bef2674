"""The base layer: errors, units, flat parameters and the messages that cross the client
seam. It imports nothing else of greenfl."""

"""The client seam: the ClientTransport protocol, the in-process transport, update checks,
and the trainers (sequential, vectorised, Ray)."""

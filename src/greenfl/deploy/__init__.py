"""Real deployment over gRPC: the wire schema (greenfl.proto and its generated code), update
validation, the server-side transport (``greenfl serve``) and the client (``greenfl join``).

Import the submodules directly; this package imports nothing so that the in-process engine
can use ``greenfl.clients.validate`` without loading gRPC."""

"""Real deployment over gRPC, by side: ``server/`` (``greenfl serve``: ``serve``, the
transport, the servicer and the server's checks) and ``client/`` (``greenfl join``). What
both sides speak stays here: the wire schema (greenfl.proto and its generated code),
``wire.py`` and ``secagg_wire.py`` (values onto protobuf), and ``security.py`` (tokens, TLS).

Import the submodules directly; this package imports nothing, so that neither the
in-process engine nor the command line loads gRPC until a deployment runs."""

"""Real deployment over gRPC, by side: ``server/`` (``greenfl serve``: ``serve``, the
transport, the servicer and the server's checks) and ``client/`` (``greenfl join``). What
both sides speak stays here: the wire schema (greenfl.proto and its generated code),
``wire.py`` and ``secagg_wire.py`` (values onto protobuf), ``security.py`` (tokens, TLS),
and ``widths.py`` (a sub-model width's slice as it travels).

Import the submodules directly; this package imports nothing, so that neither the
in-process engine nor the command line loads gRPC until a deployment runs."""

"""The servers: ``serve-echo`` and ``listen``.

``core`` (a protocol object per connection over websockets' sans-I/O server, with
the strict echo engine) ← ``log`` (start-up lines, -v/--json logs, TLS
set-up) ← the front-ends ``serve_echo``, ``listen`` and ``listen_repl``.
"""

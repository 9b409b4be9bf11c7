"""``wstool connect``: the session core, the client run loop, and its front-ends.

``session`` (one connection, never prints) ← ``run`` (the one run loop: -x, -n,
--echo, --reconnect, totals) ← ``pipe`` and ``repl`` (renderers and input sources).
"""

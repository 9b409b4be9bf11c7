"""The bridges (issue 16): WebSocket clients to TCP services and back (``tcp``), and to
a process each (``process``).

A server-side bridge is an ``App`` over ``server/core.py``; a client-side one drives
``client/run.py`` (an input source and a front-end) — no session of its own.
"""

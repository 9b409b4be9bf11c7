"""The terminal and the standard streams: the environment, renderers, the
slash-command parser, the stdin reader, and the generic prompt loop (``repl``)
that ``connect`` and ``listen`` both drive over their own targets; with them the
pieces every front-end shares: one colour ``palette``, one JSON-lines writer
(``jsonl``) and one way to handle signals (``signals``)."""

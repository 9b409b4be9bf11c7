"""The Click edge: commands, option factories, completion.

The only package that imports ``click``, calls ``asyncio.run`` or exits. It turns
option values into the frozen records of :mod:`wstool.config` and hands them to a
capability (``client``, ``server``, ``dump``); nothing below it sees a click value.
"""

from wstool.cli.app import cli, main

__all__ = ["cli", "main"]

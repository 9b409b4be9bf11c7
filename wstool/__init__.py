"""wstool: a command-line WebSocket client, server and frame debugger."""

__version__ = "0.1.0"

"""wstool bench: load, latency and capacity of a WebSocket server (issue 15)."""

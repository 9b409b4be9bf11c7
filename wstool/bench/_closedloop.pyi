# Stub of the C extension wstool/bench/_closedloop.c (optional: built where a C
# compiler is present; generator.py falls back to Python without it).
from collections import deque
from typing import Any

class ReceiverCore:
    buf: bytes
    closed_loop: bool
    conn: Any
    echo_len: int
    echo_payload: int
    echo_run: bytes | None
    frame_index: int
    frame_len: int
    frames: list[bytes]
    frames_run: bytes
    load: Any
    max_send: int
    pool: int
    protocol: Any
    refill: int
    run: Any
    sent_ts: deque[list[Any]]
    shared: RunShared
    @property
    def transport(self) -> Any: ...
    def set_transport(self, transport: Any) -> None: ...
    def data_received(self, data: bytes) -> None: ...

class RunShared:
    pending: dict[int, int]
    round_trips: int
    sending: bool

def configure(open_state: object, clock: Any, /) -> None: ...
